package update

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// openSlot opens the slot for writing after making sure it is nobody's:
// not mounted, not held by device-mapper or a loop device, and large
// enough for size bytes.
func openSlot(root, device string, size int64) (*os.File, error) {
	st, err := os.Stat(device)
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", device, err)
	}
	flags := os.O_RDWR
	switch {
	case st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0:
		if err := checkBlockUnused(root, device, st); err != nil {
			return nil, err
		}
		// The kernel refuses O_EXCL on a block device that is mounted or
		// held, whatever our reading of /proc and /sys missed.
		flags |= unix.O_EXCL
	case st.Mode().IsRegular():
		if err := checkFileUnused(root, device); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("install %s: not a block device or regular file (%s)", device, st.Mode().Type())
	}
	f, err := os.OpenFile(device, flags, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("install %s: %w: %v", device, ErrTargetMounted, err)
	}
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", device, err)
	}
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("install %s: size: %w", device, err)
	}
	if have < size {
		f.Close()
		return nil, fmt.Errorf("install %s: image of %d bytes, slot of %d: %w", device, size, have, ErrSlotTooSmall)
	}
	return f, nil
}

// mount is one line of /proc/self/mountinfo.
type mountEntry struct {
	majMin, point, source string
}

func readMountinfo(root string) ([]mountEntry, error) {
	path := filepath.Join(root, "proc/self/mountinfo")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	var out []mountEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			continue
		}
		out = append(out, mountEntry{majMin: f[2], point: unescapeMount(f[4]), source: unescapeMount(f[sep+2])})
	}
	return out, sc.Err()
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func checkBlockUnused(root, device string, st os.FileInfo) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("install %s: no device number", device)
	}
	majMin := fmt.Sprintf("%d:%d", unix.Major(uint64(sys.Rdev)), unix.Minor(uint64(sys.Rdev)))
	mounts, err := readMountinfo(root)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if m.majMin == majMin {
			return fmt.Errorf("install %s: device %s is mounted on %s: %w", device, majMin, m.point, ErrTargetMounted)
		}
	}
	// A slot under dm-verity is not in mountinfo itself: the dm device on
	// top of it is. Its holders name it.
	holders, _ := os.ReadDir(filepath.Join(root, "sys/dev/block", majMin, "holders"))
	if len(holders) > 0 {
		return fmt.Errorf("install %s: device %s is held by %s: %w", device, majMin, holders[0].Name(), ErrTargetMounted)
	}
	return nil
}

func checkFileUnused(root, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("install %s: %w", path, err)
	}
	mounts, err := readMountinfo(root)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if m.point == abs || m.source == abs {
			return fmt.Errorf("install %s: mounted on %s: %w", path, m.point, ErrTargetMounted)
		}
	}
	loops, _ := filepath.Glob(filepath.Join(root, "sys/block/loop*/loop/backing_file"))
	for _, l := range loops {
		b, err := os.ReadFile(l)
		if err == nil && strings.TrimSpace(string(b)) == abs {
			return fmt.Errorf("install %s: backs %s: %w", path, filepath.Base(filepath.Dir(filepath.Dir(l))), ErrTargetMounted)
		}
	}
	return nil
}
