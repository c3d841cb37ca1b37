package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// GuestHost is the host as the guest sees it through QEMU user networking.
const GuestHost = "10.0.2.2"

// Channel is a working copy of the artifacts' channel repository, served
// to devices over HTTP, with knobs to misbehave: a flipped byte in one
// release's image, or a slow image download.
type Channel struct {
	art  *Artifacts
	Dir  string // the repository (keys init layout)
	Port int    // on 127.0.0.1; the guest reaches it at GuestHost

	srv *http.Server
	mu  sync.Mutex
	// tamper is the version whose served image has a byte flipped.
	tamper string
	// rate limits image downloads, bytes per second; 0 is unlimited.
	rate   int64
	nonces map[string]bool
	// served counts image bytes sent; ranges lists the Range header of
	// each image request ("" for a whole-file request).
	served int64
	ranges []string
}

// NewChannel copies the repository made by the build into dir and starts
// serving it.
func NewChannel(art *Artifacts, dir string) (*Channel, error) {
	if msg, err := exec.Command("cp", "-a", art.Repo, dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copy repository %s: %w: %s", art.Repo, err, msg)
	}
	c := &Channel{art: art, Dir: dir, nonces: map[string]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.Port = ln.Addr().(*net.TCPAddr).Port
	c.srv = &http.Server{Handler: c, ReadHeaderTimeout: 30 * time.Second}
	go c.srv.Serve(ln)
	return c, nil
}

// Close stops the server.
func (c *Channel) Close() error { return c.srv.Close() }

// URL is the repository's address as the guest sees it.
func (c *Channel) URL() string { return fmt.Sprintf("http://%s:%d/", GuestHost, c.Port) }

// TrustedRoot is the root.json baked into the images.
func (c *Channel) TrustedRoot() string { return filepath.Join(c.Dir, "repository", "root.json") }

// Publish puts version on channel with `cairn channel publish`.
func (c *Channel) Publish(ctx context.Context, channel, version string) error {
	cmd := exec.CommandContext(ctx, c.art.Cairn, "channel", "publish", "--repo", c.Dir,
		"--releases", c.art.Releases, "--channel", channel, "--release", version)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cairn channel publish %s on %s: %w\n%s", version, channel, err, msg)
	}
	return nil
}

// Tamper flips one byte in the middle of version's image as served ("" to
// stop): the signed metadata stays as published.
func (c *Channel) Tamper(version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tamper = version
}

// Throttle limits image downloads to bytesPerSecond (0: unlimited).
func (c *Channel) Throttle(bytesPerSecond int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rate = bytesPerSecond
}

// Served is the number of image bytes sent so far and the Range header of
// every image request.
func (c *Channel) Served() (int64, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.served, append([]string(nil), c.ranges...)
}

// IssuedNonce reports whether the server handed out nonce.
func (c *Channel) IssuedNonce(nonce string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nonces[nonce]
}

// ServeHTTP serves the repository, and /e2e/nonce: a fresh attestation
// challenge per request.
func (c *Channel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/e2e/nonce" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		n := hex.EncodeToString(b)
		c.mu.Lock()
		c.nonces[n] = true
		c.mu.Unlock()
		io.WriteString(w, n)
		return
	}
	name := path.Clean("/" + r.URL.Path)
	file := filepath.Join(c.Dir, "repository", filepath.FromSlash(name))
	f, err := os.Open(file)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		http.NotFound(w, r)
		return
	}
	image := strings.HasPrefix(name, "/targets/") && strings.HasSuffix(name, ".zst")
	if !image {
		http.ServeContent(w, r, name, fi.ModTime(), f)
		return
	}
	c.mu.Lock()
	c.ranges = append(c.ranges, r.Header.Get("Range"))
	tamper := c.tamper != "" && strings.Contains(name, "/"+c.tamper+"/")
	c.mu.Unlock()
	var content io.ReadSeeker = f
	if tamper {
		content = &flipped{ReadSeeker: f, at: fi.Size() / 2}
	}
	http.ServeContent(&meteredWriter{ResponseWriter: w, c: c}, r, name, fi.ModTime(), content)
}

// flipped reads like its file, with the byte at offset at inverted.
type flipped struct {
	io.ReadSeeker
	pos, at int64
}

func (f *flipped) Seek(off int64, whence int) (int64, error) {
	p, err := f.ReadSeeker.Seek(off, whence)
	f.pos = p
	return p, err
}

func (f *flipped) Read(b []byte) (int, error) {
	n, err := f.ReadSeeker.Read(b)
	if f.at >= f.pos && f.at < f.pos+int64(n) {
		b[f.at-f.pos] ^= 0xff
	}
	f.pos += int64(n)
	return n, err
}

// meteredWriter counts image bytes and holds them to the channel's rate.
type meteredWriter struct {
	http.ResponseWriter
	c *Channel
}

func (m *meteredWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		m.c.mu.Lock()
		rate := m.c.rate
		m.c.mu.Unlock()
		chunk := b
		if rate > 0 && int64(len(chunk)) > rate/10 {
			chunk = chunk[:max(rate/10, 1)]
		}
		n, err := m.ResponseWriter.Write(chunk)
		written += n
		m.c.mu.Lock()
		m.c.served += int64(n)
		m.c.mu.Unlock()
		if err != nil {
			return written, err
		}
		if rate > 0 {
			time.Sleep(time.Duration(int64(n) * int64(time.Second) / rate))
		}
		b = b[n:]
	}
	return written, nil
}

// Seed makes the CIDATA volume a device boots with: user-data, meta-data,
// and e2e.env telling the device's e2e reporter where the test host is.
func (c *Channel) Seed(ctx context.Context, out string, userData []byte, instanceID string) error {
	if err := run(ctx, "mkfs.vfat", "-n", "CIDATA", "-C", out, "4096"); err != nil {
		return err
	}
	dir := filepath.Join(filepath.Dir(out), "seed-files")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := map[string][]byte{
		"user-data": userData,
		"meta-data": []byte("instance-id: " + instanceID + "\nlocal-hostname: " + instanceID + "\n"),
		"e2e.env":   fmt.Appendf(nil, "E2E_HOST=%s\nE2E_PORT=%d\n", GuestHost, c.Port),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
		if err := run(ctx, "mcopy", "-i", out, p, "::"+name); err != nil {
			return err
		}
	}
	return nil
}

func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ImageSize is the length of version's compressed image in the repository.
func (c *Channel) ImageSize(version string) (int64, error) {
	matches, _ := filepath.Glob(filepath.Join(c.Dir, "repository", "targets", "*", version, "*.zst"))
	if len(matches) != 1 {
		return 0, fmt.Errorf("release %s: %d images in the repository, want 1", version, len(matches))
	}
	fi, err := os.Stat(matches[0])
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// resumedFromOffset reports whether one of the Range headers asks for the
// image from a byte past 0.
func resumedFromOffset(ranges []string) bool {
	for _, r := range ranges {
		var from int64
		if _, err := fmt.Sscanf(r, "bytes=%d-", &from); err == nil && from > 0 {
			return true
		}
	}
	return false
}
