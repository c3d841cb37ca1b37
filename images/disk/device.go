package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
)

// ErrVerify means what was written to a device does not read back.
var ErrVerify = errors.New("device does not read back what was written")

// planFor places the board's layout on a medium of size bytes (0: the
// layout's minimum), seeded with the board and the release of slot A so
// that the same inputs give the same GUIDs.
func planFor(b *boards.Board, slotA string, size int64, withOptional bool) (*partitions.Plan, *partitions.Layout, *footer.Footer, error) {
	layout, err := partitions.LoadLayout(b.Layout)
	if err != nil {
		return nil, nil, nil, err
	}
	if size == 0 {
		size = layout.MinDiskBytes(withOptional)
	}
	plan, err := layout.Plan(size, withOptional)
	if err != nil {
		return nil, nil, nil, err
	}
	fa, err := footer.ReadFromDevice(slotA)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("slot A %s: %w", slotA, err)
	}
	if fa.Manifest.Board != b.Name {
		return nil, nil, nil, fmt.Errorf("slot A %s: built for board %q, not %q", slotA, fa.Manifest.Board, b.Name)
	}
	plan.Seed(b.Name + "\x00" + fa.Manifest.Version)
	return plan, layout, fa, nil
}

// BootImage writes to out the boot partition's filesystem of a disk with
// opts.SlotA in slot A and the initial boot state: what WriteDevice puts on
// a device, which has no mkfs.vfat or grub-mkstandalone of its own.
func BootImage(ctx context.Context, opts Options, out string) error {
	plan, layout, _, err := planFor(opts.Board, opts.SlotA, 0, false)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".work-*")
	if err != nil {
		return fmt.Errorf("boot image %s: %w", out, err)
	}
	defer os.RemoveAll(work)
	vars := opts.BootVars
	if vars == nil {
		vars = bootstate.InitialVars(partitions.SlotA)
	}
	img, _, err := bootFS(ctx, plan, layout, opts, vars, work)
	if err != nil {
		return fmt.Errorf("boot image %s: %w", out, err)
	}
	return os.Rename(img, out)
}

// DeviceOptions say what WriteDevice writes.
type DeviceOptions struct {
	Board *boards.Board
	// Device is the whole disk (a block device, or an image file of the
	// disk's size).
	Device string
	// SlotA is the slot image for CAIRN_ROOT_A; BootImage the boot
	// partition's filesystem from BootImage.
	SlotA, BootImage string
	// BootVars is the boot state for U-Boot boards, which keep it outside
	// the filesystem; nil means slot A committed.
	BootVars []bootstate.Var
	Logf     func(format string, args ...any)
}

// WriteDevice writes the board's full disk layout onto a device: the GPT
// sized to the device (CAIRN_STATE to its end, created on first boot), the
// boot partition and its boot state, and slot A; slot B's footer and the
// state's superblock are cleared, so that nothing of an earlier install is
// taken for valid. It then reads back the table and slot A.
func WriteDevice(ctx context.Context, o DeviceOptions) error {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dev, err := os.OpenFile(o.Device, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	defer dev.Close()
	size, err := dev.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("install %s: size: %w", o.Device, err)
	}
	plan, _, _, err := planFor(o.Board, o.SlotA, size, false)
	if err != nil {
		return fmt.Errorf("install %s: %w", o.Device, err)
	}
	if err := writeTable(dev, plan, filepath.Dir(o.SlotA)); err != nil {
		return fmt.Errorf("install %s: %w", o.Device, err)
	}
	logf("install %s: %s GPT over %s", o.Device, plan.Layout, partitions.FormatSize(size))
	boot, err := bootPartition(o.Board, plan)
	if err != nil {
		return err
	}
	if err := denseCopy(ctx, dev, boot, o.BootImage); err != nil {
		return fmt.Errorf("install %s: %w", o.Device, err)
	}
	vars := o.BootVars
	if vars == nil {
		vars = bootstate.InitialVars(partitions.SlotA)
	}
	if err := writeBootEnv(dev, o.Board, boot, vars); err != nil {
		return fmt.Errorf("install %s: boot state: %w", o.Device, err)
	}
	slotA, _ := plan.Partition(partitions.SlotA.Label())
	if err := denseCopy(ctx, dev, slotA, o.SlotA); err != nil {
		return fmt.Errorf("install %s: %w", o.Device, err)
	}
	logf("install %s: boot partition and slot A written", o.Device)
	slotB, _ := plan.Partition(partitions.SlotB.Label())
	state, _ := plan.Partition(partitions.LabelState)
	for _, z := range []struct{ off, n int64 }{
		{int64(slotB.LastLBA+1)*partitions.SectorSize - footer.Size, footer.Size},
		{int64(state.FirstLBA) * partitions.SectorSize, 1 << 20},
	} {
		if _, err := dev.WriteAt(make([]byte, z.n), z.off); err != nil {
			return fmt.Errorf("install %s: clear %d bytes at %d: %w", o.Device, z.n, z.off, err)
		}
	}
	if err := dev.Sync(); err != nil {
		return fmt.Errorf("install %s: %w", o.Device, err)
	}
	return verifyDevice(dev, plan, slotA, o.SlotA)
}

// writeTable writes plan's protective MBR and GPTs onto dev: made by
// partitions.WriteImage as a sparse image in work, then its first and last
// sectors copied.
func writeTable(dev *os.File, plan *partitions.Plan, work string) error {
	tmp, err := os.MkdirTemp(work, ".gpt-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	img := filepath.Join(tmp, "gpt.img")
	if err := partitions.WriteImage(img, plan); err != nil {
		return err
	}
	src, err := os.Open(img)
	if err != nil {
		return err
	}
	defer src.Close()
	const head, tail = 34 * partitions.SectorSize, 33 * partitions.SectorSize
	for _, off := range []int64{0, plan.DiskBytes - tail} {
		n := int64(head)
		if off != 0 {
			n = tail
		}
		buf := make([]byte, n)
		if _, err := src.ReadAt(buf, off); err != nil {
			return fmt.Errorf("GPT: %w", err)
		}
		if _, err := dev.WriteAt(buf, off); err != nil {
			return fmt.Errorf("GPT: write at %d: %w", off, err)
		}
	}
	return nil
}

// denseCopy writes the file at path over the start of partition p, zero
// blocks included: a device holds whatever was there before.
func denseCopy(ctx context.Context, dev *os.File, p partitions.PartitionInfo, path string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > p.Bytes {
		return fmt.Errorf("%w: %s is %d bytes, %s %d", ErrSlotSize, path, fi.Size(), p.Label, p.Bytes)
	}
	w := io.NewOffsetWriter(dev, int64(p.FirstLBA)*partitions.SectorSize)
	if _, err := io.Copy(w, &ctxReader{ctx: ctx, r: src}); err != nil {
		return fmt.Errorf("%s from %s: %w", p.Label, path, err)
	}
	return nil
}

// verifyDevice reads back the GPT and slot A.
func verifyDevice(dev *os.File, plan *partitions.Plan, slotA partitions.PartitionInfo, slotPath string) error {
	parts, err := partitions.ReadTable(dev.Name())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	if fmt.Sprint(parts) != fmt.Sprint(plan.Partitions) {
		return fmt.Errorf("%w: %s: GPT reads back as %v, wrote %v", ErrVerify, dev.Name(), parts, plan.Partitions)
	}
	src, err := os.Open(slotPath)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	want, got := sha256.New(), sha256.New()
	if _, err := io.Copy(want, src); err != nil {
		return err
	}
	if _, err := io.Copy(got, io.NewSectionReader(dev, int64(slotA.FirstLBA)*partitions.SectorSize, fi.Size())); err != nil {
		return fmt.Errorf("%w: read slot A: %w", ErrVerify, err)
	}
	if !bytes.Equal(want.Sum(nil), got.Sum(nil)) {
		return fmt.Errorf("%w: %s: slot A reads back different from %s", ErrVerify, dev.Name(), slotPath)
	}
	return nil
}
