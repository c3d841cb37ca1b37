package daemon_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/cairn-edge/cairn/agent/k3s"
	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/images/slot"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
	"github.com/cairn-edge/cairn/partitions/fakedevice"
	"github.com/cairn-edge/cairn/partitions/grubenv"
	"github.com/cairn-edge/cairn/tests/k3s-standin/k3stest"
)

const (
	board    = "qemu-x86_64"
	slotSize = 8 << 20
)

// needTools fails (or skips under -short) when the test cannot run here.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a network namespace, dnsmasq, swtpm, mkfs.ext4 and the k3s stand-in; skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root for network namespaces (run as root, or with -short to skip)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/install-deps.sh installs it): %v", tool, err)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// lan is a device namespace with eth0, wired to a server namespace where
// dnsmasq hands out 10.78.0.0/24.
type lan struct {
	dev, srv string
	ns       netns.NsHandle
}

func newLAN(t *testing.T) *lan {
	t.Helper()
	id := fmt.Sprintf("cairn-d%d", os.Getpid())
	l := &lan{dev: id + "-dev", srv: id + "-srv"}
	for _, n := range []string{l.dev, l.srv} {
		run(t, "ip", "netns", "add", n)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", n).Run() })
	}
	run(t, "ip", "link", "add", "eth0", "netns", l.dev, "type", "veth", "peer", "name", "srv0", "netns", l.srv)
	run(t, "ip", "-n", l.srv, "addr", "add", "10.78.0.1/24", "dev", "srv0")
	run(t, "ip", "-n", l.srv, "link", "set", "srv0", "up")
	dir := t.TempDir()
	cmd := exec.Command("ip", "netns", "exec", l.srv, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
		"--port=0", "--interface=srv0", "--bind-interfaces", "--dhcp-authoritative",
		"--dhcp-range=10.78.0.50,10.78.0.60,255.255.255.0,2m", "--dhcp-option=option:router,10.78.0.1",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "pid"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ns, err := netns.GetFromName(l.dev)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	l.ns = ns
	return l
}

// device is the fake device: /proc, /sys and /dev under a root, the slots
// as files, the GRUB env, and what the image bakes into /etc/cairn.
type device struct {
	root string
	boot *partitions.Boot
}

func newDevice(t *testing.T, s partitions.Slot) *device {
	t.Helper()
	majmin := map[partitions.Slot]string{partitions.SlotA: "8:2", partitions.SlotB: "8:3"}[s]
	root := fakedevice.Root(t, "console=ttyS0 cairn.slot="+string(s), majmin, fakedevice.SDA()...)
	boot, err := partitions.Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	return &device{root: root, boot: boot}
}

func (d *device) path(p string) string { return filepath.Join(d.root, p) }

// rebootInto is the device after a reboot into slot s: a new /proc and
// /sys, the same disks and /etc.
func (d *device) rebootInto(t *testing.T, s partitions.Slot) *device {
	t.Helper()
	next := newDevice(t, s)
	for _, p := range []string{"dev/sda2", "dev/sda3", "boot", "etc/cairn"} {
		if err := os.MkdirAll(filepath.Dir(next.path(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(next.path(p))
		if err := os.Rename(d.path(p), next.path(p)); err != nil {
			t.Fatal(err)
		}
	}
	return next
}

func (d *device) writeGrubEnv(t *testing.T) {
	t.Helper()
	b := grubenv.NewBlock(grubenv.Size)
	for _, v := range bootstate.InitialVars(partitions.SlotA) {
		if err := b.Set(v.Name, v.Value); err != nil {
			t.Fatal(err)
		}
	}
	p := d.path(bootstate.DefaultLocation().GrubEnv)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (d *device) bootState(t *testing.T) bootstate.State {
	t.Helper()
	env, err := bootstate.Open(d.root, bootstate.DefaultLocation())
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	st, err := bootstate.New(env).Read()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// bootloader runs the boot decision GRUB makes and returns the slot.
func (d *device) bootloader(t *testing.T) partitions.Slot {
	t.Helper()
	env, err := bootstate.Open(d.root, bootstate.DefaultLocation())
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	dec, err := bootstate.Boot(env)
	if err != nil {
		t.Fatal(err)
	}
	return dec.Slot
}

// measure does what cairn-init does: extend the TPM with the booted
// slot's identity and log it.
func (d *device) measure(t *testing.T, addr string) {
	t.Helper()
	f, err := footer.ReadFromDevice(d.path(d.boot.Device))
	if err != nil {
		t.Fatal(err)
	}
	tp, err := tpm.Open(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	id, err := f.Identity(string(d.boot.Slot))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Measure(d.path(tpm.DefaultLogPath), id); err != nil {
		t.Fatal(err)
	}
}

// buildSlot builds a real slot image (ext4, dm-verity tree, signed footer)
// of version and publishes it as a release.
func buildSlot(t *testing.T, key string, version string) (string, *slot.Result) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, f := range []string{"boot/vmlinuz", "boot/initrd"} {
		if err := os.MkdirAll(filepath.Join(root, "boot"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), []byte(version+" "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	k, err := channel.ReadReleaseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "slot.img")
	res, err := slot.Build(context.Background(), slot.Options{
		RootDir: root, Output: out, SlotSize: slotSize, ReleaseKey: k, SourceDateEpoch: 1780000000,
		Manifest: release.Manifest{Format: release.ManifestFormat, Version: version, Board: board, Arch: "amd64"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

// publish puts a built slot on the channel.
func publish(t *testing.T, repo *channel.Repo, image string, res *slot.Result, version string) {
	t.Helper()
	releases := t.TempDir()
	if _, err := hex.DecodeString(res.RootHash); err != nil {
		t.Fatal(err)
	}
	if _, err := release.Create(context.Background(), release.CreateOptions{
		Image: image, Version: version, Board: board, Arch: "amd64", VerityRootHash: res.RootHash,
		OutDir: release.Dir(releases, version, board),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Publish(context.Background(), releases, version, "stable", 100); err != nil {
		t.Fatal(err)
	}
}

// fakeClock is the device's clock: it starts in 1970, like a box with no
// RTC, and records every step.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Set(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	return nil
}

// rebooter records the reboots the agent asks for.
type rebooter struct{ reasons chan string }

func (r rebooter) Reboot(_ context.Context, reason string) error {
	r.reasons <- reason
	return nil
}

// runners remembers the k3s runners the daemon made, so a simulated power
// cycle can stop k3s as a reboot would.
type runners struct {
	mu  sync.Mutex
	all []*k3s.ChildRunner
	dir string
}

func (r *runners) new(cmd k3s.Command) k3s.Runner {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := k3s.NewChildRunner(cmd, filepath.Join(r.dir, "k3s.pid.json"), filepath.Join(r.dir, "k3s.log"))
	r.all = append(r.all, c)
	return c
}

func (r *runners) stop(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.all {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("stop k3s: %v", err)
		}
	}
	r.all = nil
}

func freePorts(t *testing.T, count int) int {
	t.Helper()
	base, err := k3stest.FreePorts(count)
	if err != nil {
		t.Fatal(err)
	}
	return base
}
