// Package vmtest runs a Go test binary inside a QEMU guest with a Debian
// kernel, for tests that need kernel features the host lacks.
//
// A test that needs such a feature calls Run on the host; Run compiles the
// test's package with go test -c, packs it into an initramfs with a small
// /init, the requested kernel modules and host tools, boots the guest and
// fails unless the guest's run passed. Inside the guest InGuest reports
// true and the same test does the real work:
//
//	func TestBond(t *testing.T) {
//		if !vmtest.InGuest() {
//			vmtest.Run(t, vmtest.Guest{Run: "^TestBond$", Modules: []string{"bonding"}})
//			return
//		}
//		// ... runs as root against the guest's kernel
//	}
package vmtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// GuestEnv is the environment variable the guest's /init sets to "1" for
// the test binary.
const GuestEnv = "CAIRN_VMTEST"

// InGuest reports whether this process runs inside a vmtest guest.
func InGuest() bool { return os.Getenv(GuestEnv) == "1" }

// ErrGuestFailed means the guest ran but its tests did not pass.
var ErrGuestFailed = errors.New("guest tests failed")

// ErrNoResult means the guest stopped or timed out without reporting a
// result: a kernel panic, a hung test or a broken /init.
var ErrNoResult = errors.New("guest reported no result")

// Guest says what to run in the guest.
type Guest struct {
	// Dir is the directory of the package whose tests run in the guest;
	// "" is the current directory, as in a test.
	Dir string
	// Run is the -test.run pattern the guest's test binary gets.
	Run string
	// Modules are kernel modules to load before the tests, by name
	// ("8021q", "bonding"); their dependencies load first.
	Modules []string
	// Tools are host executables the tests call ("ip"), copied into the
	// guest's /bin with their shared libraries.
	Tools []string
	// Files are host files or directories copied into the guest, keyed by
	// guest path; a directory comes with its regular files and
	// subdirectories. Tests that load modules themselves ship them this
	// way, under /lib/modules/<Kernel.Release> as a device has them.
	Files map[string]string
	// Env is added to the guest test binary's environment.
	Env []string
	// Timeout bounds build, boot and tests; 0 means 5 minutes.
	Timeout time.Duration
	// MemoryMiB is the guest's memory; 0 means 512.
	MemoryMiB int
}

// Result is what a guest run showed.
type Result struct {
	Kernel   *Kernel
	ExitCode int           // the guest test binary's exit code
	Build    time.Duration // compiling and packing the initramfs
	Boot     time.Duration // from starting QEMU to the guest's result line
}

// Run boots g and fails t unless the guest's tests pass. Under -short it
// skips, since it needs QEMU and a Debian kernel; otherwise a missing QEMU
// or kernel fails the test. The guest's console streams into t.Log.
func Run(t *testing.T, g Guest) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a QEMU guest; skipped under -short")
	}
	cache, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-5*time.Second))
		defer cancel()
	}
	res, err := Boot(ctx, g, cache, t.TempDir(), func(line string) { t.Log(line) })
	if res != nil {
		t.Logf("vmtest: kernel %s (%s): build %v, guest boot and tests %v",
			res.Kernel.Release, res.Kernel.Version, res.Build.Round(time.Millisecond), res.Boot.Round(time.Millisecond))
	}
	if err != nil {
		t.Fatal(err)
	}
}

// CacheDir is where fetched kernels are kept: cairn-vmtest under the
// user's cache directory.
func CacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("vmtest cache: %w", err)
	}
	return filepath.Join(dir, "cairn-vmtest"), nil
}

// Boot builds g's initramfs in workDir with a kernel from cacheDir, boots
// it and returns the guest's result; logf gets each console line. The
// error wraps ErrGuestFailed or ErrNoResult when the guest ran but did not
// pass; the Result is non-nil whenever the guest was booted.
func Boot(ctx context.Context, g Guest, cacheDir, workDir string, logf func(string)) (*Result, error) {
	if g.Timeout == 0 {
		g.Timeout = 5 * time.Minute
	}
	if g.MemoryMiB == 0 {
		g.MemoryMiB = 512
	}
	ctx, cancel := context.WithTimeout(ctx, g.Timeout)
	defer cancel()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, fmt.Errorf("vmtest: qemu-system-x86_64 not installed (package qemu-system-x86, scripts/install-deps.sh): %w", err)
	}
	start := time.Now()
	k, err := DebianKernel(ctx, cacheDir)
	if err != nil {
		return nil, fmt.Errorf("vmtest: %w", err)
	}
	initrd := filepath.Join(workDir, "initramfs.cpio")
	if err := buildInitramfs(ctx, g, k, workDir, initrd); err != nil {
		return nil, fmt.Errorf("vmtest: %w", err)
	}
	res := &Result{Kernel: k, Build: time.Since(start)}
	start = time.Now()
	code, err := boot(ctx, qemu, k.Image, initrd, g.MemoryMiB, logf)
	res.Boot, res.ExitCode = time.Since(start), code
	if err != nil {
		return res, fmt.Errorf("vmtest: %w", err)
	}
	if code != 0 {
		return res, fmt.Errorf("vmtest: guest go test -test.run %q exited %d: %w", g.Run, code, ErrGuestFailed)
	}
	return res, nil
}

// TestKernel is the Debian kernel Boot uses, with its modules, for tests
// that read kernel modules on the host. Under -short it skips, since it
// fetches a kernel package; otherwise a kernel it cannot get fails t.
func TestKernel(t testing.TB) *Kernel {
	t.Helper()
	if testing.Short() {
		t.Skip("fetches a Debian kernel package; skipped under -short")
	}
	cache, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	k, err := DebianKernel(context.Background(), cache)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
