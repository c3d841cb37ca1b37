package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
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
