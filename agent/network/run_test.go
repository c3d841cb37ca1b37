package network

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// runInBackground runs r until the test ends.
func runInBackground(t *testing.T, r *Reconciler) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v", err)
		}
	})
}

// The resync timer is set to an hour, so only link events can bring the
// link back within the test.
func TestLinkSetDownComesBackThroughLinkEvents(t *testing.T) {
	needRoot(t)
	dev, peer := newNS(t), newNS(t)
	veth(t, dev, "eth0", nil, peer, "peer0")
	applied := make(chan []Action, 100)
	r := newReconciler(t, dev, &Config{Ethernets: []Ethernet{{ID: "eth0", Interface: Interface{
		Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")},
		Routes:    []Route{{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("192.0.2.1")}},
	}}}}, Options{Resync: time.Hour, OnApply: func(a []Action, err error) {
		if err != nil {
			t.Errorf("reconcile: %v", err)
		}
		applied <- a
	}})
	runInBackground(t, r)
	if first := <-applied; !hasAction(first, "eth0", OpAddRoute) {
		t.Fatalf("first reconcile did %v", first)
	}

	// Setting the link down makes the kernel drop its routes.
	dev.ip(t, "link", "set", "eth0", "down")
	var repaired []Action
	waitFor(t, "eth0 back up with its default route", func() bool {
		select {
		case a := <-applied:
			repaired = append(repaired, a...)
		default:
		}
		return hasAction(repaired, "eth0", OpSetUp) && hasAction(repaired, "eth0", OpAddRoute)
	})
	if out := dev.ip(t, "route", "show", "default"); !strings.Contains(out, "default via 192.0.2.1 dev eth0 proto static") {
		t.Errorf("default route not restored:\n%s", out)
	}
}

// A cable pulled and plugged back in (the peer's side going down and up
// drops and restores the carrier) makes the client ask for a lease again.
func TestCarrierLossAndReturnReacquiresTheLease(t *testing.T) {
	needRoot(t, "dnsmasq")
	dev, srv := newNS(t), newNS(t)
	mac := net.HardwareAddr{0x02, 0xca, 0x1f, 0x00, 0x00, 0x43}
	veth(t, dev, "eth0", mac, srv, "srv0")
	srv.ip(t, "addr", "add", "10.77.0.1/24", "dev", "srv0")
	startDnsmasq(t, srv, "srv0", t.TempDir())
	rec := &recorder[Lease]{}
	r := newReconciler(t, dev, &Config{Ethernets: []Ethernet{{ID: "wan", Match: Match{MAC: mac}, Interface: Interface{DHCP4: true}}}},
		Options{Resync: time.Hour, DHCP: DHCPOptions{Timeout: 500 * time.Millisecond, RetryFloor: 200 * time.Millisecond, OnEvent: rec.record}})
	runInBackground(t, r)
	waitFor(t, "a first lease", func() bool { n, _ := rec.count(LeaseAcquired); return n >= 1 })
	before, _ := rec.count(LeaseAcquired)

	srv.ip(t, "link", "set", "srv0", "down")
	waitFor(t, "carrier loss on eth0", func() bool { return strings.Contains(dev.ip(t, "link", "show", "eth0"), "NO-CARRIER") })
	srv.ip(t, "link", "set", "srv0", "up")
	waitFor(t, "a lease after the carrier came back", func() bool { n, _ := rec.count(LeaseAcquired); return n > before })
	waitFor(t, "the DHCP default route", func() bool {
		return strings.Contains(dev.ip(t, "route", "show", "default"), "default via 10.77.0.1 dev eth0 proto dhcp")
	})
}
