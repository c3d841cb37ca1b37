package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"

	"github.com/cairn-edge/cairn/agent/network"
	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

// A device whose seed has no network-config runs DHCP on its wired links:
// the network converges only with a lease, and the link has its address.
func TestNoNetworkConfigLeasesOnWiredLink(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root, network namespaces and dnsmasq")
	}
	ns := dhcpLAN(t)
	ud, err := cloudinit.ParseUserData("user-data", []byte("#cloud-config\nhostname: store-0042\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := New(Config{NetNS: ns, ResolvConf: filepath.Join(t.TempDir(), "resolv.conf"),
		DHCP:  network.DHCPOptions{Timeout: 500 * time.Millisecond, RetryFloor: 200 * time.Millisecond},
		Wired: func(l netlink.Link) bool { return l.Attrs().Name == "eth0" },
		Log:   zap.NewNop()})
	d.device = &cloudinit.Config{UserData: *ud}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.startNetwork(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		if err := d.net.Converged(ctx); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no lease on eth0: %v", d.net.Converged(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
	out, err := exec.Command("ip", "-n", nsName(t), "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "inet 10.79.0.") {
		t.Errorf("converged, but eth0 has no address from the DHCP server:\n%s", out)
	}
}

func nsName(t *testing.T) string { return fmt.Sprintf("cairn-n%d-dev", os.Getpid()) }

// dhcpLAN is a namespace with eth0, whose veth peer in a second namespace
// has a dnsmasq handing out 10.79.0.0/24.
func dhcpLAN(t *testing.T) netns.NsHandle {
	t.Helper()
	dev, srv := nsName(t), fmt.Sprintf("cairn-n%d-srv", os.Getpid())
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, n := range []string{dev, srv} {
		sh("ip", "netns", "add", n)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", n).Run() })
	}
	sh("ip", "link", "add", "eth0", "netns", dev, "type", "veth", "peer", "name", "srv0", "netns", srv)
	sh("ip", "-n", srv, "addr", "add", "10.79.0.1/24", "dev", "srv0")
	sh("ip", "-n", srv, "link", "set", "srv0", "up")
	dir := t.TempDir()
	cmd := exec.Command("ip", "netns", "exec", srv, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
		"--port=0", "--interface=srv0", "--bind-interfaces", "--dhcp-authoritative",
		"--dhcp-range=10.79.0.50,10.79.0.60,255.255.255.0,2m", "--dhcp-option=option:router,10.79.0.1",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "pid"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ns, err := netns.GetFromName(dev)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}
