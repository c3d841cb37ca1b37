package network

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// dnsmasq is a real DHCP server in a test namespace.
type dnsmasq struct {
	cmd *exec.Cmd
}

// startDnsmasq serves 10.77.0.50-60 on iface of n with a two-minute lease
// (dnsmasq's minimum) and T1/T2 of 2 s / 4 s, so clients renew and rebind
// within seconds.
func startDnsmasq(t *testing.T, n *testNS, iface, dir string, extra ...string) *dnsmasq {
	t.Helper()
	return runDnsmasq(t, n, iface, dir, append([]string{
		"--dhcp-range=10.77.0.50,10.77.0.60,255.255.255.0,2m",
		"--dhcp-option=option:router,10.77.0.1",
		"--dhcp-option=option:dns-server,10.77.0.53",
		"--dhcp-option=option:ntp-server,10.77.0.123",
		"--dhcp-option=option:domain-search,store.example",
		"--dhcp-option=option:T1,2", "--dhcp-option=option:T2,4",
	}, extra...)...)
}

// runDnsmasq runs dnsmasq on iface of n with no DNS service and the
// given DHCP or RA settings, logging to dir/dnsmasq.log.
func runDnsmasq(t *testing.T, n *testNS, iface, dir string, settings ...string) *dnsmasq {
	t.Helper()
	args := []string{"netns", "exec", n.name, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
		"--port=0", "--interface=" + iface, "--bind-interfaces", "--dhcp-authoritative",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"),
		"--pid-file=" + filepath.Join(dir, "dnsmasq.pid"),
		"--log-dhcp", "--log-facility=" + filepath.Join(dir, "dnsmasq.log"),
	}
	cmd := exec.Command("ip", append(args, settings...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dnsmasq: %v", err)
	}
	d := &dnsmasq{cmd: cmd}
	t.Cleanup(d.stop)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "dnsmasq.log"))
			t.Logf("dnsmasq log:\n%s", log)
		}
	})
	return d
}

func (d *dnsmasq) stop() {
	if d.cmd.Process != nil && d.cmd.ProcessState == nil {
		d.cmd.Process.Kill()
		d.cmd.Wait()
	}
}

// recorder collects the lease events of DHCPv4 (L = Lease) or DHCPv6
// (L = Lease6) clients in order.
type recorder[L any] struct {
	mu     sync.Mutex
	events []LeaseEvent
	leases []*L
}

func (l *recorder[L]) record(link string, ev LeaseEvent, lease *L) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
	l.leases = append(l.leases, lease)
}

// count returns how often ev happened and the lease of the last one.
func (l *recorder[L]) count(ev LeaseEvent) (int, *L) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, last := 0, (*L)(nil)
	for i, e := range l.events {
		if e == ev {
			n, last = n+1, l.leases[i]
		}
	}
	return n, last
}

// leaseExpiry reads the expiry time dnsmasq recorded for mac.
func leaseExpiry(t *testing.T, dir string, mac net.HardwareAddr) string {
	data, _ := os.ReadFile(filepath.Join(dir, "leases"))
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == mac.String() {
			return f[0]
		}
	}
	return ""
}

// TestNoConfigGetsDHCPThatRenewsAndRebinds runs the agent with no network
// config against a real dnsmasq: the wired link gets a lease with address,
// default route, DNS, NTP servers and host name; the lease is renewed at
// T1 with the granting server, and rebound at T2 with another server when
// the first is gone.
func TestNoConfigGetsDHCPThatRenewsAndRebinds(t *testing.T) {
	needRoot(t, "dnsmasq")
	dev, srv := newNS(t), newNS(t)
	mac := net.HardwareAddr{0x02, 0xca, 0x1f, 0x00, 0x00, 0x42}
	veth(t, dev, "eth0", mac, srv, "srv0")
	srv.ip(t, "addr", "add", "10.77.0.1/24", "dev", "srv0")
	dir := t.TempDir()
	first := startDnsmasq(t, srv, "srv0", dir, "--dhcp-host="+mac.String()+",storebox-7")

	rec := &recorder[Lease]{}
	host := &fakeHostname{}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	r := newReconciler(t, dev, nil, Options{
		ResolvConf: resolv,
		Hostname:   host,
		DHCP:       DHCPOptions{Timeout: 500 * time.Millisecond, RetryFloor: 200 * time.Millisecond, OnEvent: rec.record},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v", err)
		}
	})

	waitFor(t, "a lease applied to eth0", func() bool {
		return strings.Contains(dev.ip(t, "route", "show", "default"), "default via 10.77.0.1 dev eth0 proto dhcp")
	})
	_, lease := rec.count(LeaseAcquired)
	if lease == nil || lease.Address.Addr().String() < "10.77.0.50" || lease.Address.Bits() != 24 {
		t.Fatalf("lease %+v", lease)
	}
	if out := dev.ip(t, "addr", "show", "eth0"); !strings.Contains(out, "inet "+lease.Address.String()) {
		t.Errorf("eth0 lacks the leased %s:\n%s", lease.Address, out)
	}
	if lease.T1 <= 0 || lease.T1 >= lease.T2 || lease.T2 > 4*time.Second || lease.Duration != 2*time.Minute {
		t.Errorf("lease times T1 %v T2 %v lease %v", lease.T1, lease.T2, lease.Duration)
	}
	waitFor(t, "resolv.conf and host name from the lease", func() bool {
		got, _ := os.ReadFile(resolv)
		name, _ := host.Hostname()
		return string(got) != "" && name == "storebox-7"
	})
	if got, _ := os.ReadFile(resolv); !strings.Contains(string(got), "search store.example\nnameserver 10.77.0.53\n") {
		t.Errorf("resolv.conf:\n%s", got)
	}
	if got := r.NTPServers(); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.77.0.123")}) {
		t.Errorf("NTP servers %v", got)
	}

	// Renewal at T1: dnsmasq moves the expiry it keeps for us.
	before := leaseExpiry(t, dir, mac)
	t.Cleanup(func() { rec.mu.Lock(); t.Logf("lease events: %v", rec.events); rec.mu.Unlock() })
	waitFor(t, "a renewal", func() bool { n, _ := rec.count(LeaseRenewed); return n >= 1 })
	waitFor(t, "dnsmasq to record the renewal", func() bool { return leaseExpiry(t, dir, mac) != before })
	_, renewed := rec.count(LeaseRenewed)
	if renewed.Address != lease.Address || renewed.Server != netip.MustParseAddr("10.77.0.1") {
		t.Errorf("renewed lease %+v, want %s from 10.77.0.1", renewed, lease.Address)
	}

	// The granting server goes away; another one on .2 takes over. The
	// client's unicast renewals to .1 go unanswered, and at T2 its
	// broadcast finds .2.
	first.stop()
	srv.ip(t, "addr", "del", "10.77.0.1/24", "dev", "srv0")
	srv.ip(t, "addr", "add", "10.77.0.2/24", "dev", "srv0")
	startDnsmasq(t, srv, "srv0", dir)
	waitFor(t, "a rebinding with the second server", func() bool {
		_, l := rec.count(LeaseRebound)
		return l != nil && l.Server == netip.MustParseAddr("10.77.0.2")
	})
	_, rebound := rec.count(LeaseRebound)
	if rebound.Address != lease.Address {
		t.Errorf("rebound to %s, want the same %s", rebound.Address, lease.Address)
	}
	if n, _ := rec.count(LeaseExpired); n != 0 {
		t.Errorf("lease expired %d times", n)
	}
}
