package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// MaxSmallTarget bounds what Download holds in memory; images stream
// through the installer instead.
const MaxSmallTarget = 16 << 20

// Verify checks that n bytes with SHA-256 sum are the target. The streaming
// installer calls it once the last byte is hashed.
func (t Target) Verify(n int64, sum []byte) error {
	switch {
	case n < t.Length:
		return fmt.Errorf("target %s: %d of %d bytes: %w", t.Path, n, t.Length, ErrTargetTruncated)
	case n > t.Length:
		return fmt.Errorf("target %s: more than %d bytes: %w", t.Path, t.Length, ErrEndlessData)
	case len(t.SHA256) == 0 || !bytes.Equal(sum, t.SHA256):
		return fmt.Errorf("target %s: sha256 %x, signed %x: %w", t.Path, sum, t.SHA256, ErrTargetCorrupted)
	}
	return nil
}

// Download fetches a small target, verifies it and only then writes it to
// dst atomically: a refused target leaves nothing at dst.
func (c *Channel) Download(ctx context.Context, t Target, dst string) error {
	f := &fetcher{ctx: ctx, client: c.cfg.HTTPClient, stats: &PollStats{}}
	data, err := c.fetchVerified(ctx, f, t, MaxSmallTarget)
	if err != nil {
		return err
	}
	return writeFileAtomic(dst, data, 0o644)
}

func (c *Channel) fetchVerified(ctx context.Context, f *fetcher, t Target, limit int64) ([]byte, error) {
	if t.Length > limit {
		return nil, fmt.Errorf("target %s: %d bytes, more than %d for an in-memory download", t.Path, t.Length, limit)
	}
	data, err := f.get(t.URL, t.Length)
	var tooLong *metadata.ErrDownloadLengthMismatch
	if errors.As(err, &tooLong) {
		return nil, fmt.Errorf("target %s: %w: %v", t.Path, ErrEndlessData, err)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("target %s: %w", t.Path, err)
	}
	sum := sha256.Sum256(data)
	if err := t.Verify(int64(len(data)), sum[:]); err != nil {
		return nil, err
	}
	return data, nil
}
