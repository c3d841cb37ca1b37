package network

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
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

var dhcp6Addr = regexp.MustCompile(`inet6 (2001:db8:77::1[0-9a-f]{2})/128 scope global dynamic noprefixroute \n\s+valid_lft (\d+)sec preferred_lft (\d+)sec`)

// dhcp6Address returns the DHCPv6 address on link with its remaining
// valid and preferred lifetimes as the kernel counts them.
func dhcp6Address(t *testing.T, n *testNS, link string) (addr string, valid, preferred int) {
	m := dhcp6Addr.FindStringSubmatch(n.ip(t, "-6", "addr", "show", "dev", link))
	if m == nil {
		return "", 0, 0
	}
	valid, _ = strconv.Atoi(m[2])
	preferred, _ = strconv.Atoi(m[3])
	return m[1], valid, preferred
}

// TestDHCPv6LeaseIsAppliedRenewedAndKeptAcrossARestart runs a link with
// dhcp6 against dnsmasq advertising the prefix for SLAAC with the M flag
// and serving addresses by DHCPv6 with a two-minute lease (its minimum;
// T1 is then a minute). The leased address lands on the link as a /128
// with the lease's lifetimes next to the SLAAC address, DNS reaches
// resolv.conf, and at T1 a Renew moves the lifetimes back up. A
// restarted agent sends no Release and keeps the address until it holds
// the same lease again.
func TestDHCPv6LeaseIsAppliedRenewedAndKeptAcrossARestart(t *testing.T) {
	needRoot(t, "dnsmasq")
	t.Parallel()
	dev, srv := newNS(t), newNS(t)
	veth(t, dev, "eth0", nil, srv, "srv0")
	dir := t.TempDir()
	srv.ip(t, "-6", "addr", "add", "2001:db8:77::1/64", "dev", "srv0", "nodad")
	runDnsmasq(t, srv, "srv0", dir, "--enable-ra", "--ra-param=srv0,5",
		"--dhcp-range=2001:db8:77::100,2001:db8:77::1ff,slaac,64,2m",
		"--dhcp-option=option6:dns-server,[2001:db8:77::53]",
		"--dhcp-option=option6:domain-search,v6.store.example")
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	cfg := &Config{Ethernets: []Ethernet{{ID: "eth0", Interface: Interface{DHCP6: true}}}}
	rec := &recorder[Lease6]{}
	opts := Options{ResolvConf: resolv, DHCP: DHCPOptions{Timeout: 500 * time.Millisecond, RetryFloor: 200 * time.Millisecond, OnEvent6: rec.record}}
	r := newReconciler(t, dev, cfg, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { rec.mu.Lock(); t.Logf("lease events: %v", rec.events); rec.mu.Unlock() })

	waitFor(t, "the DHCPv6 address on eth0", func() bool { a, _, _ := dhcp6Address(t, dev, "eth0"); return a != "" })
	_, lease := rec.count(LeaseAcquired)
	addr, valid, preferred := dhcp6Address(t, dev, "eth0")
	if len(lease.Addresses) != 1 || lease.Addresses[0].Addr.String() != addr || lease.Addresses[0].Valid != 2*time.Minute {
		t.Fatalf("lease %+v, kernel has %s", lease, addr)
	}
	if valid <= 0 || valid > 120 || preferred <= 0 || preferred > valid {
		t.Errorf("%s: valid_lft %d preferred_lft %d, want the lease's two minutes counting down", addr, valid, preferred)
	}
	if lease.T1 <= 0 || lease.T1 >= lease.T2 || lease.T2 >= 2*time.Minute {
		t.Errorf("T1 %v T2 %v", lease.T1, lease.T2)
	}
	waitFor(t, "SLAAC next to DHCPv6", func() bool { return slaac(t, dev, "eth0") != "" })
	waitFor(t, "DNS from DHCPv6 in resolv.conf", func() bool {
		got, _ := os.ReadFile(resolv)
		return strings.Contains(string(got), "search v6.store.example\nnameserver 2001:db8:77::53\n")
	})
	if err := r.Converged(ctx); err != nil {
		t.Errorf("not converged with a DHCPv6 lease on a dhcp6-only link: %v", err)
	}

	// Renewal at T1: dnsmasq logs the Renew, and the kernel's lifetime of
	// the address goes back up to the renewed lease's, past what was left
	// of the first one.
	waitForWithin(t, lease.T2, "a renewal", func() bool { n, _ := rec.count(LeaseRenewed); return n >= 1 })
	waitFor(t, "the renewed lifetime on the address", func() bool {
		a, v, _ := dhcp6Address(t, dev, "eth0")
		return a == addr && v > int(time.Until(lease.Expires()).Seconds())+30
	})
	log, _ := os.ReadFile(filepath.Join(dir, "dnsmasq.log"))
	if !strings.Contains(string(log), "DHCPRENEW(srv0)") {
		t.Errorf("dnsmasq logged no Renew")
	}

	// A restart: the client stops without a Release, the address stays,
	// and the next agent's first reconcile leaves it while it has no
	// lease yet; then it gets the same address again.
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run returned %v", err)
	}
	if a, _, _ := dhcp6Address(t, dev, "eth0"); a != addr {
		t.Errorf("address %q after the agent stopped, want %s kept", a, addr)
	}
	r2 := newReconciler(t, dev, cfg, opts)
	if acts, err := r2.Apply(context.Background()); err != nil || strings.Contains(actionList(acts), addr) {
		t.Errorf("restarted agent's first reconcile: %v, %v; want %s left alone", acts, err, addr)
	}
	before, _ := rec.count(LeaseAcquired)
	runInBackground(t, r2)
	waitFor(t, "a lease after the restart", func() bool { n, _ := rec.count(LeaseAcquired); return n > before })
	if _, again := rec.count(LeaseAcquired); again.Addresses[0].Addr.String() != addr {
		t.Errorf("after the restart leased %v, want %s again", again.Addresses, addr)
	}
	log, _ = os.ReadFile(filepath.Join(dir, "dnsmasq.log"))
	if strings.Contains(string(log), "DHCPRELEASE") {
		t.Errorf("the client sent a Release")
	}
}
