// Package slot builds a root slot image from a directory: a reproducible
// ext4 filesystem, its dm-verity hash tree and the signed footer, padded to
// the slot's size (docs/images.md).
package slot

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/images/verity"
)

// ErrTooBig: the filesystem, its hash tree and the footer do not fit the slot.
var ErrTooBig = errors.New("slot image does not fit the slot")

// Options say what goes into a slot image.
type Options struct {
	RootDir  string // the root filesystem's tree; /boot/vmlinuz and /boot/initrd inside
	Output   string // the slot image file to write
	SlotSize int64  // bytes of the slot partition, a multiple of 4096
	// FSSize is the filesystem's size; 0 makes it as large as the slot
	// allows after the hash tree and the footer.
	FSSize int64
	// Manifest names the release: format, version, board, arch and the
	// optional keys. Created defaults to SourceDateEpoch; the image artifact
	// stays empty and verity_root_hash is filled in by Build.
	Manifest release.Manifest
	// ReleaseKey signs the footer and the slots' PCR policies.
	ReleaseKey *ecdsa.PrivateKey
	// SourceDateEpoch is every timestamp in the filesystem, in seconds.
	SourceDateEpoch int64
	// Seed derives the filesystem UUID, its directory hash seed and the
	// verity salt; empty means one derived from board, version and epoch.
	Seed string
}

// Result describes a built slot image.
type Result struct {
	Path     string         `json:"path"`
	SlotSize int64          `json:"slot_size"`
	FSSize   int64          `json:"fs_size"`
	HashSize int64          `json:"hash_size"`
	RootHash string         `json:"verity_root_hash"`
	SHA256   string         `json:"sha256"` // of the whole slot image
	Footer   *footer.Footer `json:"-"`
}

// Fit returns the filesystem size Build uses for a slot of slotSize bytes
// when fsSize is 0, and checks that fsSize (or that size) leaves room for
// the hash tree and the footer.
func Fit(slotSize, fsSize int64) (int64, error) {
	if slotSize <= 0 || slotSize%verity.BlockSize != 0 {
		return 0, fmt.Errorf("slot size %d: want a positive multiple of %d", slotSize, verity.BlockSize)
	}
	if fsSize == 0 {
		// Largest whole number of blocks whose tree and footer still fit.
		fsSize = (slotSize - footer.Size) / verity.BlockSize * verity.BlockSize
		for fsSize > 0 && need(fsSize) > slotSize {
			fsSize -= verity.BlockSize
		}
	}
	if fsSize <= 0 || fsSize%verity.BlockSize != 0 {
		return 0, fmt.Errorf("%w: filesystem size %d: want a positive multiple of %d", ErrTooBig, fsSize, verity.BlockSize)
	}
	if n := need(fsSize); n > slotSize {
		l, _ := verity.NewLayout(fsSize)
		return 0, fmt.Errorf("%w: filesystem %d + hash tree %d + footer %d bytes = %d, %d bytes more than the slot's %d",
			ErrTooBig, fsSize, l.HashSize, footer.Size, n, n-slotSize, slotSize)
	}
	return fsSize, nil
}

func need(fsSize int64) int64 {
	l, err := verity.NewLayout(fsSize)
	if err != nil {
		return 1 << 62
	}
	return l.HashOffset + l.HashSize + footer.Size
}

// Build writes the slot image: filesystem, hash tree, zeros, footer. The
// image appears at opts.Output only once complete and synced.
func Build(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	fsSize, err := Fit(opts.SlotSize, opts.FSSize)
	if err != nil {
		return nil, err
	}
	seed := []byte(opts.Seed)
	if len(seed) == 0 {
		seed = fmt.Appendf(nil, "%s %s %d", opts.Manifest.Board, opts.Manifest.Version, opts.SourceDateEpoch)
	}
	tmp, err := os.CreateTemp(filepath.Dir(opts.Output), "."+filepath.Base(opts.Output)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("slot %s: %w", opts.Output, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	defer tmp.Close()
	if err := tmp.Truncate(fsSize); err != nil {
		return nil, fmt.Errorf("slot %s: %w", opts.Output, err)
	}
	if err := makeExt4(ctx, tmp.Name(), opts.RootDir, fsSize, opts.SourceDateEpoch, seed); err != nil {
		if errors.Is(err, errNoSpace) {
			return nil, fmt.Errorf("%w: %v; a larger --slot-size or --fs-size is needed", ErrTooBig, err)
		}
		return nil, fmt.Errorf("slot %s: %w", opts.Output, err)
	}
	salt := sha256.Sum256(append([]byte("verity salt "), seed...))
	root, hashSize, err := verity.Build(ctx, tmp, tmp, fsSize, verity.Params{Salt: salt[:]})
	if err != nil {
		return nil, fmt.Errorf("slot %s: %w", opts.Output, err)
	}
	f, err := opts.footer(fsSize, hashSize, root, salt[:])
	if err != nil {
		return nil, fmt.Errorf("slot %s: %w", opts.Output, err)
	}
	fb, err := f.Encode()
	if err != nil {
		return nil, fmt.Errorf("slot %s: %w", opts.Output, err)
	}
	if err := tmp.Truncate(opts.SlotSize); err != nil {
		return nil, fmt.Errorf("slot %s: %w", opts.Output, err)
	}
	if _, err := tmp.WriteAt(fb, opts.SlotSize-footer.Size); err != nil {
		return nil, fmt.Errorf("slot %s: write footer: %w", opts.Output, err)
	}
	sum, err := fileSHA256(ctx, tmp)
	if err != nil {
		return nil, fmt.Errorf("slot %s: %w", opts.Output, err)
	}
	if err := commit(tmp, opts.Output); err != nil {
		return nil, err
	}
	return &Result{Path: opts.Output, SlotSize: opts.SlotSize, FSSize: fsSize, HashSize: hashSize,
		RootHash: hex.EncodeToString(root), SHA256: sum, Footer: f}, nil
}

func (o *Options) check() error {
	if st, err := os.Stat(o.RootDir); err != nil || !st.IsDir() {
		return fmt.Errorf("slot: root directory %q: want a directory (%v)", o.RootDir, err)
	}
	if o.Output == "" {
		return fmt.Errorf("slot: no output file")
	}
	if o.ReleaseKey == nil {
		return fmt.Errorf("slot: no release key")
	}
	if o.SourceDateEpoch <= 0 {
		return fmt.Errorf("slot: source date epoch %d: want seconds since 1970, more than 0", o.SourceDateEpoch)
	}
	return nil
}

// footer makes the signed footer for the built filesystem and tree.
func (o *Options) footer(fsSize, hashSize int64, root, salt []byte) (*footer.Footer, error) {
	m := o.Manifest
	if m.Format == 0 {
		m.Format = release.ManifestFormat
	}
	if m.Created.IsZero() {
		m.Created = time.Unix(o.SourceDateEpoch, 0).UTC()
	}
	m.Image = release.Artifact{}
	m.VerityRootHash = hex.EncodeToString(root)
	f := &footer.Footer{SlotSize: o.SlotSize, DataSize: fsSize, HashOffset: fsSize, HashSize: hashSize,
		RootHash: root, Salt: salt, Manifest: &m}
	if err := f.Sign(o.ReleaseKey); err != nil {
		return nil, err
	}
	return f, nil
}

func fileSHA256(ctx context.Context, f *os.File) (string, error) {
	h := sha256.New()
	r := io.NewSectionReader(f, 0, 1<<62)
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := r.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return "", err
		}
	}
}

// commit syncs tmp, renames it to path and syncs the directory.
func commit(tmp *os.File, path string) error {
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("slot %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("slot %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("slot %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("slot %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("slot %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("slot %s: sync directory: %w", path, err)
	}
	return nil
}
