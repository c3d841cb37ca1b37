package network

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// needRoot skips only under -short; a full run without root fails.
func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root and network namespaces; skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root for network namespaces (run as root, or with -short to skip)")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/install-deps.sh installs it): %v", tool, err)
		}
	}
}

var nsCounter atomic.Int64

// testNS is a network namespace made for one test.
type testNS struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
}

func newNS(t *testing.T) *testNS {
	t.Helper()
	name := fmt.Sprintf("cairn-t%d-%d", os.Getpid(), nsCounter.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return &testNS{name: name, ns: ns, h: h}
}

// veth makes a pair: name in n, peer in p, with the given MAC on name
// (nil: the kernel picks one). The peer is up.
func veth(t *testing.T, n *testNS, name string, mac net.HardwareAddr, p *testNS, peer string) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: mac}, PeerName: peer}
	if err := n.h.LinkAdd(v); err != nil {
		t.Fatalf("veth %s/%s: %v", name, peer, err)
	}
	pl, err := n.h.LinkByName(peer)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.h.LinkSetNsFd(pl, int(p.ns)); err != nil {
		t.Fatal(err)
	}
	pl, err = p.h.LinkByName(peer)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.h.LinkSetUp(pl); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ip runs ip(8) in n: the oracle for what the kernel holds.
func (n *testNS) ip(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"-n", n.name}, args...)...)
}

// wiredVeth stands in for IsWired: in a test namespace veths are the
// wired NICs.
func wiredVeth(l netlink.Link) bool { return l.Type() == "veth" }

func newReconciler(t *testing.T, n *testNS, cfg *Config, opts Options) *Reconciler {
	t.Helper()
	if opts.Wired == nil {
		opts.Wired = wiredVeth
	}
	r, err := New(n.ns, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// applyTwice applies cfg, then checks that a second apply changes nothing.
func applyTwice(t *testing.T, r *Reconciler) []Action {
	t.Helper()
	acts, err := r.Apply(context.Background())
	if err != nil {
		t.Fatalf("apply: %v (after %v)", err, acts)
	}
	again, err := r.Apply(context.Background())
	if err != nil {
		t.Fatalf("second apply: %v", err)
	}
	if len(again) != 0 {
		t.Fatalf("second apply changed %v, want nothing", again)
	}
	return acts
}

func hasAction(acts []Action, link string, op Op) bool {
	for _, a := range acts {
		if a.Link == link && a.Op == op {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds; the deadline only keeps a broken
// feature from hanging the test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitForWithin(t, time.Minute, what, cond)
}

// waitForWithin is waitFor for what comes only after a lease's T1 or so.
func waitForWithin(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fakeHostname records the host name instead of setting the machine's.
type fakeHostname struct{ name atomic.Value }

func (f *fakeHostname) Hostname() (string, error) {
	s, _ := f.name.Load().(string)
	return s, nil
}

func (f *fakeHostname) SetHostname(name string) error {
	f.name.Store(name)
	return nil
}
