package initrd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/partitions"
)

// growMargin is how much smaller than its partition a state filesystem may
// be before it is grown: resize2fs leaves off a last block group too small
// to be worth its metadata, and a second boot must not try again.
const growMargin = 4 << 20

// blkpgIoctl is BLKPG from linux/blkpg.h: _IO(0x12, 105).
const blkpgIoctl = 0x1269

// blkpgPartition is struct blkpg_partition.
type blkpgPartition struct {
	Start, Length int64
	Pno           int32
	Devname       [64]byte
	Volname       [64]byte
}

// growStatePartition gives the state partition dev the rest of its disk
// when the image was flashed to a larger medium: the GPT through
// partitions.GrowLast, aligned as the board's layout, then the kernel's
// view of the partition through BLKPG, since the slot partitions are in use
// and the disk cannot be re-read.
func growStatePartition(dev, boardName string, logf func(string, ...any)) error {
	b, err := boards.Load(boardName)
	if err != nil {
		return err
	}
	layout, err := partitions.LoadLayout(b.Layout)
	if err != nil {
		return err
	}
	disk, number, err := diskOf(dev)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	p, changed, err := partitions.GrowLast(f, partitions.LabelState, layout.Alignment)
	if err != nil || !changed {
		return err
	}
	arg := blkpgPartition{Start: int64(p.FirstLBA) * partitions.SectorSize, Length: p.Bytes, Pno: int32(number)}
	req := unix.BlkpgIoctlArg{Op: unix.BLKPG_RESIZE_PARTITION, Datalen: int32(unsafe.Sizeof(arg)), Data: (*byte)(unsafe.Pointer(&arg))}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), blkpgIoctl, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return fmt.Errorf("%s: BLKPG resize partition %d to %d bytes: %w", disk, number, p.Bytes, errno)
	}
	logf("state partition %s now reaches the end of %s: %s", dev, disk, partitions.FormatSize(p.Bytes))
	return nil
}

// diskOf returns the whole disk holding the partition dev and its number,
// from sysfs.
func diskOf(dev string) (string, int, error) {
	sys, err := filepath.EvalSymlinks(filepath.Join("/sys/class/block", filepath.Base(dev)))
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", dev, err)
	}
	data, err := os.ReadFile(filepath.Join(sys, "partition"))
	if err != nil {
		return "", 0, fmt.Errorf("%s: not a partition: %w", dev, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return "", 0, fmt.Errorf("%s: partition number %q: %w", sys, data, err)
	}
	return "/dev/" + strings.ReplaceAll(filepath.Base(filepath.Dir(sys)), "!", "/"), n, nil
}

// ext4Bytes is the size of the ext2/3/4 filesystem on dev, from its
// superblock.
func ext4Bytes(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return 0, fmt.Errorf("%s: read superblock: %w", dev, err)
	}
	blocks := uint64(binary.LittleEndian.Uint32(sb[0x4:]))
	const incompat64bit = 0x80
	if binary.LittleEndian.Uint32(sb[0x60:])&incompat64bit != 0 {
		blocks |= uint64(binary.LittleEndian.Uint32(sb[0x150:])) << 32
	}
	return int64(blocks) << (10 + binary.LittleEndian.Uint32(sb[0x18:])), nil
}

// deviceBytes is the size of the block device dev.
func deviceBytes(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("%s: size: %w", dev, err)
	}
	return n, nil
}

// growState grows the filesystem on dev to its partition when the
// partition has grown since the filesystem was made: e2fsck -f, which
// resize2fs requires, then resize2fs, both the root's own.
func growState(sysroot, dev string, logf func(string, ...any)) error {
	fsBytes, err := ext4Bytes(dev)
	if err != nil {
		return err
	}
	partBytes, err := deviceBytes(dev)
	if err != nil {
		return err
	}
	if fsBytes+growMargin >= partBytes {
		return nil
	}
	logf("growing the state filesystem on %s from %s to %s", dev, partitions.FormatSize(fsBytes), partitions.FormatSize(partBytes))
	err = inRoot(sysroot, "/sbin/e2fsck", "-f", "-p", dev)
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 { // errors corrected
		err = nil
	}
	if err != nil {
		return err
	}
	return inRoot(sysroot, "/sbin/resize2fs", dev)
}

// inRoot runs a tool of the root filesystem chrooted into sysroot, with the
// initramfs's /dev and /proc bound into it, so that the initramfs carries
// no e2fsprogs.
func inRoot(sysroot, name string, args ...string) (err error) {
	for _, d := range []string{"dev", "proc"} {
		dir := filepath.Join(sysroot, d)
		if err := unix.Mount("/"+d, dir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /%s into %s: %w", d, sysroot, err)
		}
		defer func() {
			if uerr := unix.Unmount(dir, 0); err == nil && uerr != nil {
				err = fmt.Errorf("unmount %s: %w", dir, uerr)
			}
		}()
	}
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: sysroot}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
