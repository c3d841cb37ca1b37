package network

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/tests/vmtest"
)

func TestStaticAddressesRoutesAndDNSAreAppliedOnceAndDriftIsUndone(t *testing.T) {
	needRoot(t)
	dev, peer := newNS(t), newNS(t)
	veth(t, dev, "eth0", nil, peer, "peer0")
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	cfg := &Config{Ethernets: []Ethernet{{ID: "eth0", Interface: Interface{
		Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24"), netip.MustParsePrefix("2001:db8::10/64")},
		Routes: []Route{
			{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("192.0.2.1")},
			{To: netip.MustParsePrefix("198.51.100.0/24"), Via: netip.MustParseAddr("192.0.2.254"), Metric: 50},
			{To: netip.MustParsePrefix("203.0.113.0/25")},
		},
		Nameservers: Nameservers{Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.53")}, Search: []string{"store.example"}},
		MTU:         1400,
	}}}}
	r := newReconciler(t, dev, cfg, Options{ResolvConf: resolv})
	acts := applyTwice(t, r)
	for _, op := range []Op{OpSetMTU, OpSetUp, OpAddAddress, OpAddRoute} {
		if !hasAction(acts, "eth0", op) {
			t.Errorf("first apply did no %s on eth0: %v", op, acts)
		}
	}

	link := dev.ip(t, "link", "show", "eth0")
	if !strings.Contains(link, "mtu 1400") || !strings.Contains(link, ",UP") {
		t.Errorf("eth0 not up with mtu 1400:\n%s", link)
	}
	addrs := dev.ip(t, "addr", "show", "eth0")
	for _, want := range []string{"inet 192.0.2.10/24", "inet6 2001:db8::10/64"} {
		if !strings.Contains(addrs, want) {
			t.Errorf("eth0 lacks %s:\n%s", want, addrs)
		}
	}
	routes := dev.ip(t, "route", "show", "dev", "eth0")
	for _, want := range []string{
		"default via 192.0.2.1 proto static",
		"198.51.100.0/24 via 192.0.2.254 proto static metric 50",
		"203.0.113.0/25 proto static scope link",
	} {
		if !strings.Contains(routes, want) {
			t.Errorf("routes lack %q:\n%s", want, routes)
		}
	}
	got, err := os.ReadFile(resolv)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "search store.example\nnameserver 192.0.2.53\n") {
		t.Errorf("resolv.conf:\n%s", got)
	}

	// Someone removes our address and route and adds their own address.
	dev.ip(t, "addr", "del", "192.0.2.10/24", "dev", "eth0")
	dev.ip(t, "addr", "add", "10.9.9.9/8", "dev", "eth0")
	acts = applyTwice(t, r)
	for _, want := range []string{"eth0: add-address 192.0.2.10/24", "eth0: del-address 10.9.9.9/8", "eth0: add-route 0.0.0.0/0 via 192.0.2.1 metric 0"} {
		if !strings.Contains(actionList(acts), want) {
			t.Errorf("drift repair %v lacks %q", acts, want)
		}
	}
}

func actionList(acts []Action) string {
	var b strings.Builder
	for _, a := range acts {
		b.WriteString(a.String() + "\n")
	}
	return b.String()
}

func TestRenameByMAC(t *testing.T) {
	needRoot(t)
	dev, peer := newNS(t), newNS(t)
	mac := net.HardwareAddr{0x02, 0xca, 0x1f, 0x00, 0x00, 0x07}
	veth(t, dev, "eth0", nil, peer, "peer0")
	veth(t, dev, "eth1", mac, peer, "peer1")
	r := newReconciler(t, dev, &Config{Ethernets: []Ethernet{{
		ID: "uplink", Match: Match{MAC: mac}, SetName: "lan0",
		Interface: Interface{Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.7/24")}},
	}}}, Options{})
	acts := applyTwice(t, r)
	if !hasAction(acts, "lan0", OpRename) {
		t.Errorf("no rename in %v", acts)
	}
	out := dev.ip(t, "addr", "show", "lan0")
	if !strings.Contains(out, mac.String()) || !strings.Contains(out, "192.0.2.7/24") {
		t.Errorf("lan0 is not the link with %s or lacks its address:\n%s", mac, out)
	}
	if out := dev.ip(t, "link", "show", "eth0"); !strings.Contains(out, "eth0") {
		t.Errorf("the other link was touched:\n%s", out)
	}
}

func TestBridgeTakesItsMembersAndReleasesDroppedOnes(t *testing.T) {
	needRoot(t)
	dev, peer := newNS(t), newNS(t)
	veth(t, dev, "eth0", nil, peer, "peer0")
	veth(t, dev, "eth1", nil, peer, "peer1")
	cfg := &Config{
		Ethernets: []Ethernet{{ID: "eth0"}, {ID: "eth1"}},
		Bridges: []Bridge{{ID: "br0", Interfaces: []string{"eth0", "eth1"},
			Interface: Interface{Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24")}}}},
	}
	acts := applyTwice(t, newReconciler(t, dev, cfg, Options{}))
	if !hasAction(acts, "br0", OpCreate) || !hasAction(acts, "eth0", OpSetMaster) || !hasAction(acts, "eth1", OpSetMaster) {
		t.Errorf("actions %v", acts)
	}
	for _, m := range []string{"eth0", "eth1"} {
		if out := dev.ip(t, "link", "show", m); !strings.Contains(out, "master br0") {
			t.Errorf("%s not in br0:\n%s", m, out)
		}
	}
	if out := dev.ip(t, "-d", "addr", "show", "br0"); !strings.Contains(out, "bridge") || !strings.Contains(out, "192.0.2.2/24") {
		t.Errorf("br0:\n%s", out)
	}

	cfg.Bridges[0].Interfaces = []string{"eth0"}
	acts = applyTwice(t, newReconciler(t, dev, cfg, Options{}))
	if len(acts) != 1 || !hasAction(acts, "eth1", OpNoMaster) {
		t.Errorf("dropping eth1 from br0 did %v", acts)
	}
	if out := dev.ip(t, "link", "show", "eth1"); strings.Contains(out, "master") {
		t.Errorf("eth1 still enslaved:\n%s", out)
	}
}

// TestVLANAndBondLinksInAGuestKernel runs the VLAN and bond scenarios in
// a QEMU guest whose Debian kernel has 8021q and bonding: the build
// machines' kernels lack both, and a test that cannot reach a kernel with
// them must fail, not skip.
func TestVLANAndBondLinksInAGuestKernel(t *testing.T) {
	if !vmtest.InGuest() {
		vmtest.Run(t, vmtest.Guest{
			Run:     "^TestVLANAndBondLinksInAGuestKernel$",
			Modules: []string{"8021q", "bonding", "veth"},
			Tools:   []string{"ip"},
		})
		return
	}
	t.Run("VLANOnAnEthernet", testVLANOnAnEthernet)
	t.Run("BondActiveBackup", testBondActiveBackup)
}

func testVLANOnAnEthernet(t *testing.T) {
	needRoot(t)
	dev, peer := newNS(t), newNS(t)
	veth(t, dev, "eth0", nil, peer, "peer0")
	cfg := &Config{
		Ethernets: []Ethernet{{ID: "eth0"}},
		VLANs: []VLAN{{ID: "vlan42", VLANID: 42, Link: "eth0",
			Interface: Interface{Addresses: []netip.Prefix{netip.MustParsePrefix("10.42.0.5/24")}}}},
	}
	acts := applyTwice(t, newReconciler(t, dev, cfg, Options{}))
	if !hasAction(acts, "vlan42", OpCreate) {
		t.Errorf("actions %v", acts)
	}
	out := dev.ip(t, "-d", "addr", "show", "vlan42")
	if !strings.Contains(out, "vlan42@eth0") || !strings.Contains(out, "vlan protocol 802.1Q id 42") || !strings.Contains(out, "10.42.0.5/24") {
		t.Errorf("vlan42:\n%s", out)
	}
	// A VLAN with the wrong id is recreated.
	cfg.VLANs[0].VLANID = 43
	acts = applyTwice(t, newReconciler(t, dev, cfg, Options{}))
	if !hasAction(acts, "vlan42", OpDelete) || !hasAction(acts, "vlan42", OpCreate) {
		t.Errorf("changing the id did %v", acts)
	}
}

func testBondActiveBackup(t *testing.T) {
	needRoot(t)
	dev, peer := newNS(t), newNS(t)
	veth(t, dev, "eth0", nil, peer, "peer0")
	veth(t, dev, "eth1", nil, peer, "peer1")
	cfg := &Config{
		Ethernets: []Ethernet{{ID: "eth0"}, {ID: "eth1"}},
		Bonds: []Bond{{ID: "bond0", Interfaces: []string{"eth0", "eth1"}, Mode: BondActiveBackup,
			Interface: Interface{Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.9/24")}}}},
	}
	acts := applyTwice(t, newReconciler(t, dev, cfg, Options{}))
	if !hasAction(acts, "bond0", OpCreate) || !hasAction(acts, "eth0", OpSetMaster) || !hasAction(acts, "eth1", OpSetMaster) {
		t.Errorf("actions %v", acts)
	}
	out := dev.ip(t, "-d", "addr", "show", "bond0")
	if !strings.Contains(out, "mode active-backup") || !strings.Contains(out, "192.0.2.9/24") {
		t.Errorf("bond0:\n%s", out)
	}
	for _, m := range []string{"eth0", "eth1"} {
		if out := dev.ip(t, "link", "show", m); !strings.Contains(out, "master bond0") {
			t.Errorf("%s not in bond0:\n%s", m, out)
		}
	}
}

func TestMissingEthernetIsReportedButTheRestApplies(t *testing.T) {
	needRoot(t)
	dev, peer := newNS(t), newNS(t)
	veth(t, dev, "eth0", nil, peer, "peer0")
	r := newReconciler(t, dev, &Config{Ethernets: []Ethernet{
		{ID: "eth0", Interface: Interface{Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.3/24")}}},
		{ID: "usb", Match: Match{Driver: "r8152"}},
		{ID: "wifi", Match: Match{Name: "wl*"}, Interface: Interface{Optional: true}},
	}}, Options{})
	acts, err := r.Apply(context.Background())
	if err == nil || !strings.Contains(err.Error(), "usb") || strings.Contains(err.Error(), "wifi") {
		t.Fatalf("err = %v, want ErrLinkMissing naming usb only", err)
	}
	if !hasAction(acts, "eth0", OpAddAddress) {
		t.Errorf("eth0 not configured: %v", acts)
	}
}
