package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

func TestConvergedOnlyOnceTheStaticConfigIsApplied(t *testing.T) {
	needRoot(t)
	dev, peer := newNS(t), newNS(t)
	veth(t, dev, "eth0", nil, peer, "peer0")
	r := newReconciler(t, dev, &Config{Ethernets: []Ethernet{
		{ID: "eth0", Interface: Interface{Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}}},
		{ID: "spare", Interface: Interface{DHCP4: true, Optional: true}},
	}}, Options{})
	ctx := context.Background()
	if err := r.Converged(ctx); !errors.Is(err, ErrNotConverged) || !strings.Contains(err.Error(), "not applied yet") {
		t.Fatalf("before the first apply: %v", err)
	}
	if _, err := r.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Converged(ctx); err != nil {
		t.Fatalf("after apply, with only an optional link missing: %v", err)
	}
}

func TestNotConvergedWhileARequiredLinkIsMissing(t *testing.T) {
	needRoot(t)
	dev, peer := newNS(t), newNS(t)
	veth(t, dev, "eth0", nil, peer, "peer0")
	r := newReconciler(t, dev, &Config{Ethernets: []Ethernet{
		{ID: "eth0", Interface: Interface{Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}}},
		{ID: "lan", Match: Match{Name: "lan*"}, Interface: Interface{Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}}},
	}}, Options{})
	ctx := context.Background()
	if _, err := r.Apply(ctx); !errors.Is(err, ErrLinkMissing) {
		t.Fatalf("apply: %v, want ErrLinkMissing", err)
	}
	err := r.Converged(ctx)
	if !errors.Is(err, ErrNotConverged) || !errors.Is(err, ErrLinkMissing) || !strings.Contains(err.Error(), "lan") {
		t.Fatalf("converged with lan missing: %v", err)
	}
	t.Logf("reason: %v", err)
}

// A DHCP link is converged once it holds a lease that an Apply put in
// place; before the server answers, the reason names the link.
func TestConvergedWaitsForTheDHCPLease(t *testing.T) {
	needRoot(t, "dnsmasq")
	dev, srv := newNS(t), newNS(t)
	mac := net.HardwareAddr{0x02, 0xca, 0x1f, 0x00, 0x00, 0x44}
	veth(t, dev, "eth0", mac, srv, "srv0")
	srv.ip(t, "addr", "add", "10.77.0.1/24", "dev", "srv0")
	applied := make(chan struct{}, 100)
	r := newReconciler(t, dev, &Config{Ethernets: []Ethernet{{ID: "eth0", Interface: Interface{DHCP4: true}}}},
		Options{Resync: time.Hour, DHCP: DHCPOptions{Timeout: 500 * time.Millisecond, RetryFloor: 200 * time.Millisecond},
			OnApply: func([]Action, error) { applied <- struct{}{} }})
	runInBackground(t, r)
	<-applied
	err := r.Converged(context.Background())
	if !errors.Is(err, ErrNotConverged) || !strings.Contains(err.Error(), "no DHCP lease yet on eth0") {
		t.Fatalf("without a DHCP server: %v", err)
	}
	startDnsmasq(t, srv, "srv0", t.TempDir())
	waitFor(t, "convergence with a lease", func() bool { return r.Converged(context.Background()) == nil })
	if out := dev.ip(t, "addr", "show", "eth0"); !strings.Contains(out, "inet 10.77.0.") {
		t.Fatalf("converged, but eth0 has no leased address:\n%s", out)
	}
}

// A config that names no interface, which is what FromCloudInit makes of a
// device without network-config, gets DHCP on every wired link exactly as
// a nil one does; before, it was a network of no links that converged at
// once and never configured a NIC.
func TestConfigWithoutInterfacesMeansDHCPOnEveryWiredLink(t *testing.T) {
	needRoot(t)
	fromSeed, err := FromCloudInit(&cloudinit.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  *Config
	}{
		{"nil", nil},
		{"empty", &Config{}},
		{"only a host name", &Config{Hostname: "storebox-9"}},
		{"from a seed without network-config", fromSeed},
	} {
		t.Run(c.name, func(t *testing.T) {
			dev, peer := newNS(t), newNS(t)
			veth(t, dev, "eth0", nil, peer, "peer0")
			veth(t, dev, "eth1", nil, peer, "peer1")
			host := &fakeHostname{}
			r := newReconciler(t, dev, c.cfg, Options{Hostname: host})
			if _, err := r.Apply(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := r.dhcpLinkNames(); !got[dhcpKey{"eth0", 4}] || !got[dhcpKey{"eth1", 4}] || len(got) != 2 {
				t.Errorf("DHCP links %v, want eth0 and eth1", got)
			}
			err := r.Converged(context.Background())
			if !errors.Is(err, ErrNotConverged) || !strings.Contains(err.Error(), "no DHCP lease yet on any of eth0, eth1") {
				t.Errorf("converged before any lease: %v", err)
			}
			if name, _ := host.Hostname(); c.cfg != nil && name != c.cfg.Hostname {
				t.Errorf("host name %q, want the config's %q", name, c.cfg.Hostname)
			}
		})
	}
}
