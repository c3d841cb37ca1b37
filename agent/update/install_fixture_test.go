package update

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/images/release"
)

// slotData is deterministic data that compresses like a root file system:
// zero runs, incompressible runs and text-like runs from a small
// vocabulary, in 64 KiB pieces.
func slotData(size int64, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	words := []string{"kernel ", "cairn ", "slot ", "/usr/lib/", "systemd ", "0x1f2e ", "config\n", "k3s ", "\x00\x01", "verity "}
	data := make([]byte, size)
	for off := int64(0); off < size; off += 64 << 10 {
		end := min(off+64<<10, size)
		switch r.IntN(4) {
		case 0: // zeros
		case 1:
			for i := off; i < end; i += 8 {
				v := r.Uint64()
				for j := i; j < min(i+8, end); j++ {
					data[j] = byte(v)
					v >>= 8
				}
			}
		default:
			for i := off; i < end; {
				i += int64(copy(data[i:end], words[r.IntN(len(words))]))
			}
		}
	}
	return data
}

// testRelease is a release made by release.Create, served over HTTP.
type testRelease struct {
	image    []byte
	zst      string // path of the compressed image
	manifest *release.Manifest
}

func makeRelease(t testing.TB, size, frameSize int64, seed uint64) *testRelease {
	t.Helper()
	dir := t.TempDir()
	img := slotData(size, seed)
	src := filepath.Join(dir, "slot.img")
	if err := os.WriteFile(src, img, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := release.Create(context.Background(), release.CreateOptions{
		Image: src, Version: "1.2.0", Board: "qemu-x86", Arch: "amd64",
		OutDir: filepath.Join(dir, "out"), FrameSize: frameSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testRelease{image: img, zst: filepath.Join(dir, "out", m.Image.Path), manifest: m}
}

func (r *testRelease) target(url string) Target {
	sum, _ := hex.DecodeString(r.manifest.Image.CompressedSHA256)
	return Target{Path: "qemu-x86/1.2.0/" + r.manifest.Image.Path, URL: url, Length: r.manifest.Image.CompressedSize, SHA256: sum}
}

func (r *testRelease) maxFrame() int64 {
	var m int64
	for _, cs := range r.manifest.Image.Frames.CompressedSizes {
		m = max(m, cs)
	}
	return m
}

// server serves a release's compressed image with Range support; fault,
// when set, may take over a request (returning true when it did).
type server struct {
	*httptest.Server
	mu     sync.Mutex
	ranges []string // Range header of every request, "" for none
	fault  func(w http.ResponseWriter, r *http.Request, n int) bool
}

func serve(t testing.TB, rel *testRelease) *server {
	s := &server{}
	data, err := os.ReadFile(rel.zst)
	if err != nil {
		t.Fatal(err)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		n, fault := len(s.ranges), s.fault
		s.mu.Unlock()
		if fault != nil && fault(w, r, n) {
			return
		}
		http.ServeContent(w, r, "image.zst", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func (s *server) setFault(f func(w http.ResponseWriter, r *http.Request, n int) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault, s.ranges = f, nil
}

// newSlot makes a file-backed slot of size bytes holding an old release.
func newSlot(t testing.TB, dir string, size int64) string {
	t.Helper()
	path := filepath.Join(dir, "slot-b.img")
	if err := os.WriteFile(path, bytes.Repeat([]byte("old release "), int(size/12)+1)[:size], 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fastDir is a tmpfs when running as root (fsync costs nothing there, so
// hundreds of installs fit in seconds), else a plain temporary directory.
func fastDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		return dir
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// requireRoot fails a test that needs root, unless -short skips it.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if testing.Short() {
		t.Skip("needs root")
	}
	t.Fatal("this test needs root (CI runs as root); -short skips it")
}

func mustEqualFile(t testing.TB, path string, want []byte, slotSize int64) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != slotSize {
		t.Fatalf("slot is %d bytes, was %d", len(got), slotSize)
	}
	if !bytes.Equal(got[:len(want)], want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		t.Fatalf("slot differs from the image at offset %d", i)
	}
}

// killTransport plays a power cut: once the installer has consumed the
// body up to absolute offset at, it cancels the install's context and the
// body fails, as if the process had died there.
type killTransport struct {
	at     int64
	cancel context.CancelFunc
}

func (k *killTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	var start int64
	if rng := r.Header.Get("Range"); rng != "" {
		if _, err := fmt.Sscanf(rng, "bytes=%d-", &start); err != nil {
			return nil, err
		}
	}
	resp.Body = &killBody{ReadCloser: resp.Body, pos: start, k: k}
	return resp, nil
}

type killBody struct {
	io.ReadCloser
	pos int64
	k   *killTransport
}

func (b *killBody) Read(p []byte) (int, error) {
	if b.pos >= b.k.at {
		b.k.cancel()
		return 0, context.Canceled
	}
	p = p[:min(int64(len(p)), b.k.at-b.pos)]
	n, err := b.ReadCloser.Read(p)
	b.pos += int64(n)
	return n, err
}
