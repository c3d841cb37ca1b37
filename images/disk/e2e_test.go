package disk

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/images/rootfs"
	"github.com/cairn-edge/cairn/images/slot"
	"github.com/cairn-edge/cairn/partitions/grub/boottest"
)

const testEpoch = 1735689600 // 2025-01-01

// repoRoot is the directory holding go.mod.
func repoRoot(t testing.TB) string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = filepath.Dir(dir)
	}
}

// goBinary builds ./cmd/NAME for arch as make build does.
func goBinary(t testing.TB, name, arch string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/"+name)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s for %s: %v\n%s", name, arch, err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// release is what one test release needs: its key and the built root.
type testRelease struct {
	board   *boards.Board
	keyPath string
	pubPEM  []byte
	root    string // the customised root tree
}

// newRelease builds the board's Debian root (cached under the user's cache
// directory), copies it and installs Cairn on it.
func newRelease(t *testing.T, boardName string) *testRelease {
	t.Helper()
	boottest.Require(t, "mmdebstrap", "mkfs.ext4", "debugfs", "mkfs.vfat", "mcopy", "mmd", "mdir", "grub-mkstandalone", "mkimage", "cp")
	if os.Geteuid() != 0 {
		t.Fatal("building a Debian root needs root (mmdebstrap, owners in the slot image)")
	}
	b, err := boards.Load(boardName)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	deb, err := rootfs.ForBoard(b, "/etc/apt", testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	// An arm64 root's maintainer scripts run under qemu-user-static.
	if err := rootfs.EnableArch(b.Arch); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	base, err := rootfs.Bootstrap(context.Background(), deb, filepath.Join(cache, "cairn", "rootfs"), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("debian root for %s ready in %v", b.Name, time.Since(start).Round(time.Millisecond))
	dir := t.TempDir()
	r := &testRelease{board: b, keyPath: filepath.Join(dir, "release.key"), root: filepath.Join(dir, "root")}
	pubPath := filepath.Join(dir, "release.pub")
	if _, err := channel.GenerateReleaseKey(r.keyPath, pubPath); err != nil {
		t.Fatal(err)
	}
	if r.pubPEM, err = os.ReadFile(pubPath); err != nil {
		t.Fatal(err)
	}
	boottest.Run(t, "cp", "-a", base, r.root)
	err = rootfs.Install(r.root, rootfs.Cairn{
		Board: b, Agent: goBinary(t, "cairn-agent", b.Arch), Init: goBinary(t, "cairn-init", b.Arch),
		ReleaseKeyPEM: r.pubPEM,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// slotImage builds a slot image of the release's root.
func (r *testRelease) slotImage(t *testing.T, version, out string) *slot.Result {
	t.Helper()
	key, err := channel.ReadReleaseKey(r.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := slot.Build(context.Background(), slot.Options{
		RootDir: r.root, Output: out, SlotSize: r.board.SlotSize, ReleaseKey: key, SourceDateEpoch: testEpoch,
		Manifest: release.Manifest{Format: release.ManifestFormat, Version: version, Board: r.board.Name, Arch: r.board.Arch},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("slot image %s (%s) built in %v", version, filepath.Base(out), time.Since(start).Round(time.Millisecond))
	return res
}

// console runs qemu until the console matches want (then stops it) or the
// timeout passes, and returns what the console showed.
func console(t *testing.T, timeout time.Duration, want *regexp.Regexp, qemu string, args ...string) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out lockedBuffer
	cmd := exec.CommandContext(ctx, qemu, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			s := out.String()
			if !want.MatchString(s) {
				t.Fatalf("%s exited (%v) after %v before the console showed %q:\n%s", qemu, err, time.Since(start).Round(time.Second), want, tailOf(s, 8000))
			}
			return s, time.Since(start)
		case <-tick.C:
			if s := out.String(); want.MatchString(s) {
				elapsed := time.Since(start)
				cancel()
				<-done
				return s, elapsed
			}
		}
	}
}

func tailOf(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.ReplaceAll(b.buf.String(), "\r", "")
}

func runErr(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}
