package update

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"

	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/internal/atomicfile"
)

// ErrArtifactMismatch means an artifact's decompressed content differs from
// what the signed manifest says it is.
var ErrArtifactMismatch = errors.New("artifact differs from its signed manifest entry")

// DownloadArtifact fetches a release artifact too big for Download (a k3s
// binary), checks it and writes its decompressed content to dst with perm.
// The compressed bytes stream to a temporary file beside dst and are
// checked against the signed target's length and SHA-256 before anything
// reads them; only then are they decompressed, bounded by and checked
// against the manifest's size and SHA-256, into a second temporary file
// that is synced and renamed to dst. A refused artifact leaves nothing at
// dst and no temporary file behind.
func (c *Channel) DownloadArtifact(ctx context.Context, t Target, a release.Artifact, dst string, perm fs.FileMode) error {
	if a.Compression != release.CompressionZstd {
		return fmt.Errorf("artifact %s: compression %q, want %q", a.Path, a.Compression, release.CompressionZstd)
	}
	if a.CompressedSize != t.Length || a.CompressedSHA256 != hex.EncodeToString(t.SHA256) {
		return fmt.Errorf("artifact %s: manifest entry differs from the signed target %s: %w", a.Path, t.Path, ErrMixAndMatch)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("artifact %s: %w", dst, err)
	}
	compressed, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".zst*")
	if err != nil {
		return fmt.Errorf("artifact %s: %w", dst, err)
	}
	defer os.Remove(compressed.Name())
	defer compressed.Close()
	if err := c.fetchToFile(ctx, t, compressed); err != nil {
		return err
	}
	if _, err := compressed.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("artifact %s: %w", compressed.Name(), err)
	}
	return decompressVerified(compressed, a, dst, perm)
}

// fetchToFile streams target t into f, reading at most one byte more than
// the signed length, and verifies length and SHA-256.
func (c *Channel) fetchToFile(ctx context.Context, t Target, f *os.File) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return fmt.Errorf("target %s: %w", t.Path, err)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("target %s: %w", t.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("target %s: GET %s: %s", t.Path, t.URL, resp.Status)
	}
	if resp.ContentLength > t.Length {
		return fmt.Errorf("target %s: %d bytes announced, %d signed: %w", t.Path, resp.ContentLength, t.Length, ErrEndlessData)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, t.Length+1))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("target %s: after %d bytes: %w", t.Path, n, err)
	}
	return t.Verify(n, h.Sum(nil))
}

// decompressVerified decompresses the verified artifact src into dst,
// checking size and SHA-256 against the manifest before the rename.
func decompressVerified(src io.Reader, a release.Artifact, dst string, perm fs.FileMode) error {
	dec, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return fmt.Errorf("artifact %s: %w", a.Path, err)
	}
	defer dec.Close()
	out, err := atomicfile.Create(dst, perm)
	if err != nil {
		return fmt.Errorf("artifact %s: %w", a.Path, err)
	}
	defer out.Abort()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(dec, a.Size+1))
	if err != nil {
		return fmt.Errorf("artifact %s: decompress at byte %d: %w", a.Path, n, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != a.Size || sum != a.SHA256 {
		return fmt.Errorf("artifact %s: %d bytes with sha256 %s, manifest says %d bytes with %s: %w",
			a.Path, n, sum, a.Size, a.SHA256, ErrArtifactMismatch)
	}
	return out.Commit()
}
