package network

import (
	"context"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

// startRouter makes srv a router advertising 2001:db8:77::/64 for SLAAC on
// its end of the link, with dnsmasq's router advertisements.
func startRouter(t *testing.T, srv *testNS, iface string, settings ...string) {
	t.Helper()
	srv.ip(t, "-6", "addr", "add", "2001:db8:77::1/64", "dev", iface, "nodad")
	runDnsmasq(t, srv, iface, t.TempDir(), append([]string{"--enable-ra", "--ra-param=" + iface + ",5"}, settings...)...)
}

var slaacAddr = regexp.MustCompile(`inet6 (2001:db8:77:[0-9a-f:]+)/64 scope global dynamic`)

// slaac returns the SLAAC address the kernel made on link, or "".
func slaac(t *testing.T, n *testNS, link string) string {
	m := slaacAddr.FindStringSubmatch(n.ip(t, "-6", "addr", "show", "dev", link))
	if m == nil {
		return ""
	}
	return m[1]
}

// The kernel's SLAAC address is not the reconciler's, whether or not the
// link asks for dhcp6: it used to be deleted on every resync of a link
// without dhcp6 (and added back by the next advertisement). What the
// reconciler put there and the config no longer wants still goes: an
// extra static address, and a DHCPv6 address once dhcp6 is off.
func TestKernelSLAACAddressesAreNeverDeleted(t *testing.T) {
	needRoot(t, "dnsmasq")
	for _, dhcp6 := range []bool{false, true} {
		name := "without dhcp6"
		if dhcp6 {
			name = "with dhcp6"
		}
		t.Run(name, func(t *testing.T) {
			dev, srv := newNS(t), newNS(t)
			veth(t, dev, "eth0", nil, srv, "srv0")
			startRouter(t, srv, "srv0", "--dhcp-range=2001:db8:77::,ra-only,64,2m")
			r := newReconciler(t, dev, &Config{Ethernets: []Ethernet{{ID: "eth0", Interface: Interface{
				DHCP6:     dhcp6,
				Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")},
			}}}}, Options{})
			if _, err := r.Apply(context.Background()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a SLAAC address on eth0", func() bool { return slaac(t, dev, "eth0") != "" })
			addr := slaac(t, dev, "eth0")

			// Someone's static address, and a DHCPv6 address as the
			// client adds them (an earlier run's lease).
			dev.ip(t, "-6", "addr", "add", "2001:db8:99::9/64", "dev", "eth0", "nodad")
			dev.ip(t, "-6", "addr", "add", "2001:db8:77::d6/128", "dev", "eth0", "nodad", "noprefixroute",
				"valid_lft", "600", "preferred_lft", "300")
			acts := applyTwice(t, r)
			got := actionList(acts)
			if strings.Contains(got, addr) {
				t.Errorf("reconcile touched the SLAAC address %s: %v", addr, acts)
			}
			if !strings.Contains(got, "eth0: del-address 2001:db8:99::9/64") {
				t.Errorf("the extra static address stayed: %v", acts)
			}
			if dhcp := strings.Contains(got, "eth0: del-address 2001:db8:77::d6/128"); dhcp == dhcp6 {
				t.Errorf("dhcp6 %v: the DHCPv6 address deleted %v: %v", dhcp6, dhcp, acts)
			}
			if now := slaac(t, dev, "eth0"); now != addr {
				t.Errorf("SLAAC address %q after reconcile, was %q", now, addr)
			}
			if out := dev.ip(t, "-6", "addr", "show", "dev", "eth0"); !strings.Contains(out, "inet6 fe80::") {
				t.Errorf("link-local address gone:\n%s", out)
			}
		})
	}
}
