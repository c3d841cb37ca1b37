package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
	"github.com/cairn-edge/cairn/partitions/grub"
	"github.com/cairn-edge/cairn/partitions/grubenv"
	"github.com/cairn-edge/cairn/partitions/uboot"
	"github.com/cairn-edge/cairn/partitions/ubootenv"
)

// fat is a FAT filesystem image being filled with mtools.
type fat struct {
	path  string
	epoch time.Time
}

// newFAT makes a FAT image of size bytes with mkfs.vfat; the volume id
// derives from seed and --invariant fixes the rest, so the same inputs give
// the same bytes.
func newFAT(ctx context.Context, path, label, seed string, size int64, epoch int64) (*fat, error) {
	id := sha256.Sum256([]byte(seed))
	if err := run(ctx, "mkfs.vfat", "--invariant", "-i", fmt.Sprintf("%x", id[:4]), "-n", label, "-C", path, fmt.Sprint(size/1024)); err != nil {
		return nil, err
	}
	return &fat{path: path, epoch: time.Unix(epoch, 0)}, nil
}

// add copies data to name (slash-separated, parents made as needed).
func (f *fat) add(ctx context.Context, name string, data []byte) error {
	src := filepath.Join(filepath.Dir(f.path), ".fat-src")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		return err
	}
	defer os.Remove(src)
	if err := os.Chtimes(src, f.epoch, f.epoch); err != nil {
		return err
	}
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		dir := "::" + strings.Join(parts[:i], "/")
		if exec.CommandContext(ctx, "mdir", "-i", f.path, dir).Run() != nil {
			if err := run(ctx, "mmd", "-i", f.path, dir); err != nil {
				return err
			}
		}
	}
	return run(ctx, "mcopy", "-m", "-i", f.path, src, "::"+name)
}

func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// writeBoot fills the boot partition: its filesystem (bootFS), then on
// U-Boot boards the redundant environment after it.
func writeBoot(ctx context.Context, disk *os.File, plan *partitions.Plan, layout *partitions.Layout, opts Options, vars []bootstate.Var, work string) error {
	img, p, err := bootFS(ctx, plan, layout, opts, vars, work)
	if err != nil {
		return err
	}
	if err := copyFile(ctx, disk, int64(p.FirstLBA)*partitions.SectorSize, img); err != nil {
		return err
	}
	return writeBootEnv(disk, opts.Board, p, vars)
}

// bootPartition is the board's boot partition in plan.
func bootPartition(b *boards.Board, plan *partitions.Plan) (partitions.PartitionInfo, error) {
	label := partitions.LabelEFI
	if b.Bootloader == boards.UBoot {
		label = partitions.LabelBoot
	}
	p, ok := plan.Partition(label)
	if !ok {
		return p, fmt.Errorf("layout %s has no %s", plan.Layout, label)
	}
	return p, nil
}

// bootFS makes the boot partition's FAT filesystem in work: GRUB EFI and
// its environment block on UEFI boards; boot.scr and firmware on U-Boot
// boards, whose filesystem ends uboot.ReservedTail before the partition
// (docs/boards.md).
func bootFS(ctx context.Context, plan *partitions.Plan, layout *partitions.Layout, opts Options, vars []bootstate.Var, work string) (string, partitions.PartitionInfo, error) {
	b := opts.Board
	p, err := bootPartition(b, plan)
	if err != nil {
		return "", p, err
	}
	fsBytes := p.Bytes
	if b.Bootloader == boards.UBoot {
		fsBytes -= uboot.ReservedTail
	}
	img := filepath.Join(work, "boot.fat")
	fs, err := newFAT(ctx, img, p.Label, plan.DiskGUID, fsBytes, opts.SourceDateEpoch)
	if err != nil {
		return "", p, err
	}
	files, err := bootFiles(ctx, opts, layout, vars, work)
	if err != nil {
		return "", p, err
	}
	for _, name := range sortedKeys(files) {
		if err := fs.add(ctx, name, files[name]); err != nil {
			return "", p, err
		}
	}
	return img, p, nil
}

// writeBootEnv formats the boot-state environment of U-Boot boards on the
// boot partition p of disk; GRUB boards keep theirs in the filesystem.
func writeBootEnv(disk *os.File, b *boards.Board, p partitions.PartitionInfo, vars []bootstate.Var) error {
	if b.Bootloader != boards.UBoot {
		return nil
	}
	regions, err := uboot.EnvRegions(disk, int64(p.FirstLBA)*partitions.SectorSize, p.Bytes)
	if err != nil {
		return err
	}
	m := map[string]string{}
	for _, v := range vars {
		m[v.Name] = v.Value
	}
	return ubootenv.Format(regions, true, m)
}

// bootFiles are the files of the boot filesystem by path.
func bootFiles(ctx context.Context, opts Options, layout *partitions.Layout, vars []bootstate.Var, work string) (map[string][]byte, error) {
	b := opts.Board
	files := map[string][]byte{}
	for name, text := range b.BootFiles {
		files[name] = []byte(text)
	}
	switch b.Bootloader {
	case boards.UEFIGrub:
		efi := filepath.Join(work, "BOOTX64.EFI")
		if err := grub.BuildEFI(ctx, grub.Options{Layout: layout, Console: b.Console, Cmdline: b.Cmdline}, efi); err != nil {
			return nil, err
		}
		env := filepath.Join(work, "grubenv")
		var gv []grubenv.Var
		for _, v := range vars {
			gv = append(gv, grubenv.Var{Name: v.Name, Value: v.Value})
		}
		if err := grubenv.Create(env, gv); err != nil {
			return nil, err
		}
		for name, path := range map[string]string{grub.BootPath: efi, grub.EnvPath: env} {
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			files[name] = data
		}
	case boards.UBoot:
		scr := filepath.Join(work, "boot.scr")
		if err := uboot.BuildScript(ctx, uboot.Options{Console: b.Console, Cmdline: b.Cmdline}, scr); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(scr)
		if err != nil {
			return nil, err
		}
		files[uboot.ScriptPath] = data
	}
	for _, fw := range b.Firmware {
		if !fw.OnDisk() {
			continue
		}
		if opts.RootDir == "" {
			return nil, fmt.Errorf("board %s puts %s on the boot partition: the root tree it comes from is needed", b.Name, fw.Dest)
		}
		matches, _ := filepath.Glob(filepath.Join(opts.RootDir, fw.Path))
		if len(matches) != 1 {
			return nil, fmt.Errorf("firmware %s (package %s): %d files match in %s, want 1", fw.Path, fw.Package, len(matches), opts.RootDir)
		}
		data, err := os.ReadFile(matches[0])
		if err != nil {
			return nil, err
		}
		files[fw.Dest] = data
	}
	return files, nil
}

// writeCIData makes the NoCloud seed: a FAT filesystem labelled CIDATA
// holding user-data and meta-data.
func writeCIData(ctx context.Context, disk *os.File, plan *partitions.Plan, opts Options, work string) error {
	p, ok := plan.Partition(partitions.LabelCIData)
	if !ok {
		return fmt.Errorf("layout %s has no %s", plan.Layout, partitions.LabelCIData)
	}
	img := filepath.Join(work, "cidata.fat")
	fs, err := newFAT(ctx, img, partitions.LabelCIData, plan.DiskGUID+"cidata", p.Bytes, opts.SourceDateEpoch)
	if err != nil {
		return err
	}
	meta := opts.MetaData
	if meta == nil {
		meta = []byte("instance-id: cairn-" + opts.Board.Name + "\n")
	}
	for name, data := range map[string][]byte{"user-data": opts.UserData, "meta-data": meta} {
		if err := fs.add(ctx, name, data); err != nil {
			return err
		}
	}
	return copyFile(ctx, disk, int64(p.FirstLBA)*partitions.SectorSize, img)
}

// copyFile writes the file at path into disk at off, leaving zero blocks
// as holes.
func copyFile(ctx context.Context, disk *os.File, off int64, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return sparseCopy(ctx, disk, off, f, fi.Size())
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
