// Package disk lays out a Cairn disk for a board: the GPT of its layout,
// slot A (and optionally B), the bootloader and its boot state on the boot
// partition, an optional CIDATA seed; written as a flashable image with its
// .bmap and .zst, onto a device by a network install, or served as a PXE
// bundle.
package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
)

// ErrSlotSize means a slot image is not exactly its partition's size.
var ErrSlotSize = errors.New("slot image does not match the slot partition")

// Options say what goes on the disk.
type Options struct {
	Board *boards.Board
	// SlotA is the slot image written to CAIRN_ROOT_A; SlotB, optional, to
	// CAIRN_ROOT_B (empty leaves B a hole, as a fresh disk has it).
	SlotA, SlotB string
	// RootDir is the root tree slot A was built from, for boards whose
	// firmware files go onto the boot partition (rpi4).
	RootDir string
	// Out is the disk image; Out+".bmap" and Out+".zst" are written beside it.
	Out string
	// UserData and MetaData, when UserData is set, make a CIDATA partition
	// (cloud-init NoCloud) holding them.
	UserData, MetaData []byte
	// BootVars is the initial boot state; nil means slot A committed
	// (bootstate.InitialVars).
	BootVars []bootstate.Var
	// SourceDateEpoch is the time stamped on the FAT files.
	SourceDateEpoch int64
	// NoCompress skips the .zst.
	NoCompress bool
	Logf       func(format string, args ...any)
}

// Artifact is one output file.
type Artifact struct {
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Result summarises a build.
type Result struct {
	Board       string                     `json:"board"`
	Layout      string                     `json:"layout"`
	Release     string                     `json:"release"`
	Image       Artifact                   `json:"image"`
	MappedBytes int64                      `json:"mapped_bytes"`
	Bmap        Artifact                   `json:"bmap"`
	Zstd        *Artifact                  `json:"zst,omitempty"`
	Partitions  []partitions.PartitionInfo `json:"partitions"`
	Seconds     float64                    `json:"seconds"`
}

// Build writes the disk image and its companions. The image appears at
// opts.Out only once complete.
func Build(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	b := opts.Board
	withCIData := opts.UserData != nil
	plan, layout, fa, err := planFor(b, opts.SlotA, 0, withCIData)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(filepath.Dir(opts.Out), "."+filepath.Base(opts.Out)+".work-*")
	if err != nil {
		return nil, fmt.Errorf("disk %s: %w", opts.Out, err)
	}
	defer os.RemoveAll(work)
	img := filepath.Join(work, "disk.img")
	if err := partitions.WriteImage(img, plan); err != nil {
		return nil, err
	}
	logf("disk %s: %s GPT, %s", opts.Out, layout.Name, partitions.FormatSize(plan.DiskBytes))
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	for _, s := range []struct {
		slot partitions.Slot
		path string
	}{{partitions.SlotA, opts.SlotA}, {partitions.SlotB, opts.SlotB}} {
		if s.path == "" {
			continue
		}
		p, _ := plan.Partition(s.slot.Label())
		if err := writeSlot(ctx, f, p, s.path); err != nil {
			return nil, err
		}
		logf("disk %s: slot %s from %s", opts.Out, s.slot, s.path)
	}
	vars := opts.BootVars
	if vars == nil {
		vars = bootstate.InitialVars(partitions.SlotA)
	}
	if err := writeBoot(ctx, f, plan, layout, opts, vars, work); err != nil {
		return nil, fmt.Errorf("disk %s: boot partition: %w", opts.Out, err)
	}
	logf("disk %s: %s bootloader and boot state", opts.Out, b.Bootloader)
	if withCIData {
		if err := writeCIData(ctx, f, plan, opts, work); err != nil {
			return nil, fmt.Errorf("disk %s: CIDATA: %w", opts.Out, err)
		}
		logf("disk %s: CIDATA seed", opts.Out)
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := os.Rename(img, opts.Out); err != nil {
		return nil, fmt.Errorf("disk %s: %w", opts.Out, err)
	}
	res := &Result{Board: b.Name, Layout: layout.Name, Release: fa.Manifest.Version, Partitions: plan.Partitions}
	if res.Image, err = artifact(opts.Out); err != nil {
		return nil, err
	}
	bm, mapped, err := WriteBmap(ctx, opts.Out, opts.Out+".bmap")
	if err != nil {
		return nil, err
	}
	res.Bmap, res.MappedBytes = bm, mapped
	logf("disk %s: bmap, %s of %s mapped", opts.Out, partitions.FormatSize(mapped), partitions.FormatSize(plan.DiskBytes))
	if !opts.NoCompress {
		z, err := Compress(ctx, opts.Out, opts.Out+".zst")
		if err != nil {
			return nil, err
		}
		res.Zstd = &z
		logf("disk %s: zstd, %s", opts.Out, partitions.FormatSize(z.Bytes))
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// writeSlot copies a slot image into its partition, skipping all-zero
// blocks so that they stay holes (and unmapped in the bmap).
func writeSlot(ctx context.Context, disk *os.File, p partitions.PartitionInfo, path string) error {
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("slot %s: %w", p.Label, err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != p.Bytes {
		return fmt.Errorf("%w: %s is %d bytes, %s %d", ErrSlotSize, path, fi.Size(), p.Label, p.Bytes)
	}
	return sparseCopy(ctx, disk, int64(p.FirstLBA)*partitions.SectorSize, src, fi.Size())
}

func sparseCopy(ctx context.Context, dst io.WriterAt, off int64, src io.ReaderAt, size int64) error {
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	zero := make([]byte, 4096)
	for pos := int64(0); pos < size; pos += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(chunk, size-pos)
		if _, err := src.ReadAt(buf[:n], pos); err != nil && !(errors.Is(err, io.EOF)) {
			return fmt.Errorf("read at %d: %w", pos, err)
		}
		for b := int64(0); b < n; b += 4096 {
			blk := buf[b:min(b+4096, n)]
			if bytes.Equal(blk, zero[:len(blk)]) {
				continue
			}
			if _, err := dst.WriteAt(blk, off+pos+b); err != nil {
				return fmt.Errorf("write at %d: %w", off+pos+b, err)
			}
		}
	}
	return nil
}

func artifact(path string) (Artifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return Artifact{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Artifact{}, fmt.Errorf("%s: %w", path, err)
	}
	return Artifact{Path: path, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
