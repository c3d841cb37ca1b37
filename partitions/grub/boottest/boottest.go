// Package boottest builds throwaway Cairn disks with real Debian kernels and boots them in QEMU, for the tests of the GRUB and U-Boot boot scripts.
package boottest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/internal/filelock"
)

// Require skips the test under -short and otherwise fails it when a tool is
// missing: CI must never skip a boot test silently.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
	for _, tool := range tools {
		if strings.HasPrefix(tool, "/") {
			if _, err := os.Stat(tool); err != nil {
				t.Fatalf("%v (scripts/install-deps.sh installs it)", err)
			}
			continue
		}
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (scripts/install-deps.sh installs it): %v", tool, err)
		}
	}
}

// repoRoot is the directory holding go.mod, above the test's directory.
func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// Kernel returns a Debian kernel image for arch ("amd64" or "arm64"),
// fetched by scripts/fetch-test-kernels.sh into CAIRN_TEST_KERNELS or the
// user's cache directory, so that it is downloaded once per machine.
func Kernel(t testing.TB, arch string) string {
	t.Helper()
	cache := os.Getenv("CAIRN_TEST_KERNELS")
	if cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("no cache directory for the test kernels (set CAIRN_TEST_KERNELS): %v", err)
		}
		cache = filepath.Join(dir, "cairn", "test-kernels")
	}
	path := filepath.Join(cache, arch, "vmlinuz")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	// Tests of several packages may fetch at once: one fetches, the others
	// wait and find the kernels.
	unlock, err := filelock.Lock(cache + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	script := filepath.Join(repoRoot(t), "scripts", "fetch-test-kernels.sh")
	start := time.Now()
	out, err := exec.Command("bash", script, cache).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, cache, err, out)
	}
	t.Logf("fetched the test kernels into %s in %v", cache, time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s did not leave %s: %v", script, path, err)
	}
	return path
}

// Initrd returns an uncompressed newc cpio holding slotinit as /init (built
// for goarch), /slot with the given slot name, and the /dev/console and
// /proc it needs.
func Initrd(t testing.TB, goarch, slot string) []byte {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "init")
	src := filepath.Join(repoRoot(t), "partitions", "grub", "testdata", "slotinit")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build slotinit for %s: %v\n%s", goarch, err, out)
	}
	init, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var w cpioWriter
	w.add("dev", 0o040755, 0, nil)
	w.add("dev/console", 0o020600, 5<<8|1, nil)
	w.add("proc", 0o040755, 0, nil)
	w.add("init", 0o100755, 0, init)
	w.add("slot", 0o100644, 0, []byte(slot+"\n"))
	return w.finish()
}

// cpioWriter writes the "newc" format the kernel unpacks an initramfs from.
type cpioWriter struct {
	buf bytes.Buffer
	ino int
}

func (w *cpioWriter) add(name string, mode uint32, rdev int, data []byte) {
	w.ino++
	fmt.Fprintf(&w.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		w.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev>>8, rdev&0xff, len(name)+1, 0)
	w.buf.WriteString(name)
	w.buf.WriteByte(0)
	w.pad()
	w.buf.Write(data)
	w.pad()
}

func (w *cpioWriter) pad() {
	for w.buf.Len()%4 != 0 {
		w.buf.WriteByte(0)
	}
}

func (w *cpioWriter) finish() []byte {
	w.add("TRAILER!!!", 0, 0, nil)
	for w.buf.Len()%512 != 0 {
		w.buf.WriteByte(0)
	}
	return w.buf.Bytes()
}

// SlotFS returns an ext4 image of size bytes with /boot/vmlinuz and
// /boot/initrd, made with mkfs.ext4 -d.
func SlotFS(t testing.TB, vmlinuz string, initrd []byte, size int64) string {
	t.Helper()
	dir := t.TempDir()
	boot := filepath.Join(dir, "root", "boot")
	if err := os.MkdirAll(boot, 0o755); err != nil {
		t.Fatal(err)
	}
	kernel, err := os.ReadFile(vmlinuz)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(boot, "vmlinuz"), kernel, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(boot, "initrd"), initrd, 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "slot.ext4")
	Run(t, "mkfs.ext4", "-q", "-F", "-d", filepath.Join(dir, "root"), img, fmt.Sprintf("%dk", size/1024))
	return img
}

// Run runs a tool and fails the test with its output when it fails.
func Run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// CopyInto writes the file src into the image at byte offset off.
func CopyInto(t testing.TB, image string, off int64, src string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(image, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.NewOffsetWriter(out, off), in); err != nil {
		t.Fatalf("copy %s into %s at %d: %v", src, image, off, err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// Boot is what one QEMU boot showed on its serial console.
type Boot struct {
	Console string
	// CmdlineSlot is cairn.slot= as the kernel got it; InitrdSlot is the
	// slot whose initramfs ran.
	CmdlineSlot, InitrdSlot string
	Elapsed                 time.Duration
}

var slotLine = regexp.MustCompile(`CAIRN-SLOTINIT cmdline=(\S+) initrd=(\S+)`)

// QEMU runs qemu with args until the guest powers off or timeout passes,
// and reads what slotinit printed on the serial console.
func QEMU(ctx context.Context, t testing.TB, timeout time.Duration, qemu string, args ...string) Boot {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var console bytes.Buffer
	cmd := exec.CommandContext(ctx, qemu, args...)
	cmd.Stdout = &console
	cmd.Stderr = &console
	start := time.Now()
	err := cmd.Run()
	b := Boot{Console: console.String(), Elapsed: time.Since(start)}
	if m := slotLine.FindStringSubmatch(b.Console); m != nil {
		b.CmdlineSlot, b.InitrdSlot = m[1], m[2]
	}
	if err != nil || b.CmdlineSlot == "" {
		t.Fatalf("%s: %v after %v; no slot line on the console:\n%s", qemu, err, b.Elapsed.Round(time.Millisecond), tail(b.Console, 6000))
	}
	return b
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}
