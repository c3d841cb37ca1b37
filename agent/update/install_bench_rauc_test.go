package update

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// raucBundle is a signed plain RAUC bundle holding the benchmark's image
// as the raw image of slot class rootfs.
type raucBundle struct {
	name string // file name in the served directory
	size int64
	cert string // self-signed signing certificate, also the keyring
}

const raucCompatible = "cairn-bench"

// makeRaucBundle writes image into a RAUC bundle in outDir, compressed by
// mksquashfs with zstd at a level comparable to the release's.
func makeRaucBundle(b *testing.B, image []byte, outDir string) *raucBundle {
	dir := b.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	run(b, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
		"-subj", "/CN=cairn install benchmark", "-keyout", key, "-out", cert)
	content := filepath.Join(dir, "content")
	if err := os.Mkdir(content, 0o755); err != nil {
		b.Fatal(err)
	}
	manifest := fmt.Sprintf("[update]\ncompatible=%s\nversion=1.2.0\n\n[bundle]\nformat=plain\n\n[image.rootfs]\nfilename=slot.img\n", raucCompatible)
	if err := os.WriteFile(filepath.Join(content, "manifest.raucm"), []byte(manifest), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(content, "slot.img"), image, 0o644); err != nil {
		b.Fatal(err)
	}
	bundle := &raucBundle{name: "slot.raucb", cert: cert}
	path := filepath.Join(outDir, bundle.name)
	run(b, "rauc", "bundle", "--cert="+cert, "--key="+key,
		"--mksquashfs-args=-comp zstd -Xcompression-level 3", content, path)
	if err := os.RemoveAll(content); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	bundle.size = st.Size()
	return bundle
}

func run(b *testing.B, name string, args ...string) {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// raucService is a rauc service on a D-Bus system bus of its own, which
// believes it booted slot A and installs into slot B, the benchmark's slot.
type raucService struct {
	env     []string // DBUS_SYSTEM_BUS_ADDRESS for rauc install
	slot    string   // slot B
	service *exec.Cmd
	log     string
}

func startRauc(b *testing.B, bundle *raucBundle, slot string) *raucService {
	dir := b.TempDir()
	bus := startBus(b, dir)
	booted := filepath.Join(dir, "slot-a")
	if err := os.WriteFile(booted, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	for _, d := range []string{"data", "mnt"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`[system]
compatible=%s
bootloader=noop
mountprefix=%s
data-directory=%s

[keyring]
path=%s

[slot.rootfs.0]
device=%s
type=raw
bootname=A

[slot.rootfs.1]
device=%s
type=raw
bootname=B
`, raucCompatible, filepath.Join(dir, "mnt"), filepath.Join(dir, "data"), bundle.cert, booted, slot)
	confPath := filepath.Join(dir, "system.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	r := &raucService{env: append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus), slot: slot, log: filepath.Join(dir, "service.log")}
	logf, err := os.Create(r.log)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	r.service = exec.Command("rauc", "service", "--conf="+confPath, "--override-boot-slot=A")
	r.service.Env, r.service.Stdout, r.service.Stderr = r.env, logf, logf
	if err := r.service.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = r.service.Process.Kill()
		_ = r.service.Wait()
	})
	// Ready once it answers on the bus.
	deadline := time.Now().Add(20 * time.Second)
	for {
		cmd := exec.Command("rauc", "status")
		cmd.Env = r.env
		out, err := cmd.CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("rauc service did not answer: %v\n%s\n%s", err, out, r.serviceLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return r
}

// startBus starts a dbus-daemon with a system bus configuration that lets
// everyone own and call everything, and returns its address.
func startBus(b *testing.B, dir string) string {
	sock := filepath.Join(dir, "bus.sock")
	conf := fmt.Sprintf(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`, dbusEscape(sock))
	confPath := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+confPath, "--nofork", "--nopidfile", "--print-address")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	// It complains about fd limits it may not raise; only its address
	// matters, and a failure to start shows as no address.
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// The address is printed once the bus listens.
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("dbus-daemon --config-file=%s gave no address: %v", confPath, err)
	}
	return strings.TrimSpace(addr)
}

// dbusEscape escapes a value of a D-Bus address: bytes other than
// [-0-9A-Za-z_/.\\*] become %xx (a temporary directory may hold '=').
func dbusEscape(s string) string {
	var out strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', strings.IndexByte("-_/.\\*", c) >= 0:
			out.WriteByte(c)
		default:
			fmt.Fprintf(&out, "%%%02x", c)
		}
	}
	return out.String()
}

// install downloads the bundle to dst, installs it and syncs the slot;
// the time counts all three, the CPU time curl, the rauc client and what
// the service used meanwhile.
func (r *raucService) install(b *testing.B, url, dst string) sample {
	_ = os.Remove(dst)
	serviceCPU := r.serviceCPU(b)
	start := time.Now()
	curl := exec.Command("curl", "-sSf", "-o", dst, url)
	if out, err := curl.CombinedOutput(); err != nil {
		b.Fatalf("curl %s: %v\n%s", url, err, out)
	}
	cmd := exec.Command("rauc", "install", dst)
	cmd.Env = r.env
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("rauc install: %v\n%s\n%s", err, out, r.serviceLog())
	}
	syncFile(b, r.slot)
	s := sample{time.Since(start), cpuTime(curl) + cpuTime(cmd) + r.serviceCPU(b) - serviceCPU}
	if err := os.Remove(dst); err != nil {
		b.Fatal(err)
	}
	return s
}

// serviceCPU is the CPU time the rauc service used so far: utime and
// stime of /proc/PID/stat, in clock ticks of 1/100 s (USER_HZ).
func (r *raucService) serviceCPU(b *testing.B) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.service.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name in parentheses, which may hold spaces.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	var ticks int64
	for _, v := range f[11:13] { // utime, stime: fields 14 and 15
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %v", r.service.Process.Pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

func syncFile(b *testing.B, path string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
}

// peakRSS is the rauc service's high-water mark over all its installs.
func (r *raucService) peakRSS(b *testing.B) int64 {
	kb, err := vmHWM(strconv.Itoa(r.service.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	return kb << 10
}

func (r *raucService) serviceLog() string {
	data, _ := os.ReadFile(r.log)
	return string(data)
}
