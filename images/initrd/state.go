package initrd

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// ext4Magic is at byte 0x438 of an ext2/3/4 filesystem.
const (
	ext4MagicOffset = 0x438
	ext4Magic       = 0xEF53
)

// PersistentEtc are the /etc entries of a Cairn root that are symlinks into
// /var (the state partition), relative to StateEtc: the machine's identity
// and its configuration, which must survive updates that replace the slot.
var PersistentEtc = []string{"machine-id", "hostname", "ssh", "rancher/k3s"}

// StateEtc is where PersistentEtc live, relative to the state partition's
// root (mounted at /var).
const StateEtc = "lib/cairn/etc"

// hasExt4 reports whether dev holds an ext2/3/4 filesystem.
func hasExt4(dev string) (bool, error) {
	f, err := os.Open(dev)
	if err != nil {
		return false, err
	}
	defer f.Close()
	b := make([]byte, 2)
	if _, err := f.ReadAt(b, ext4MagicOffset); err != nil {
		return false, fmt.Errorf("%s: read superblock: %w", dev, err)
	}
	return uint16(b[0])|uint16(b[1])<<8 == ext4Magic, nil
}

// formatState makes the ext4 filesystem of a new state partition with the
// root filesystem's own mkfs.ext4.
func formatState(sysroot, dev string) error {
	return inRoot(sysroot, "/sbin/mkfs.ext4", "-q", "-F", "-L", "cairn-state", "-E", "lazy_itable_init=1,lazy_journal_init=1", dev)
}

// seedState fills a new state filesystem mounted at dst: the image's /var
// from src (what the packages put there), then the persistent /etc entries
// that must exist before systemd starts: the directories, a fresh
// machine-id and a hostname made from it.
func seedState(src, dst string) error {
	if err := copyTree(src, dst); err != nil {
		return fmt.Errorf("copy %s to the state partition: %w", src, err)
	}
	etc := filepath.Join(dst, StateEtc)
	for _, d := range []string{"ssh", "rancher/k3s"} {
		if err := os.MkdirAll(filepath.Join(etc, d), 0o755); err != nil {
			return err
		}
	}
	id := make([]byte, 16)
	if _, err := io.ReadFull(rand.Reader, id); err != nil {
		return fmt.Errorf("machine-id: %w", err)
	}
	if err := os.WriteFile(filepath.Join(etc, "hostname"), []byte("cairn-"+hex.EncodeToString(id[:3])+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(etc, "machine-id"), []byte(hex.EncodeToString(id)+"\n"), 0o444)
}

// copyTree copies directories, regular files and symlinks from src into dst
// with their modes and owners.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.IsDir():
			if err := os.MkdirAll(to, fi.Mode().Perm()); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, to); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		case fi.Mode().IsRegular():
			if err := copyFile(path, to, fi.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil // sockets, fifos, devices: nothing a package leaves in /var needs
		}
		if st != nil {
			if err := os.Lchown(to, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
		if fi.IsDir() || fi.Mode().IsRegular() {
			return os.Chmod(to, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		}
		return nil
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// mountState mounts the state partition at sysroot/var, creating its
// filesystem on first boot and growing it when its partition has grown.
func mountState(sysroot, dev string, logf func(string, ...any)) error {
	ok, err := hasExt4(dev)
	if err != nil {
		return err
	}
	varDir := filepath.Join(sysroot, "var")
	if ok {
		if err := growState(sysroot, dev, logf); err != nil {
			// A state that cannot grow still holds the device's data.
			logf("state %s: not grown: %v", dev, err)
		}
	} else {
		logf("first boot: creating the state filesystem on %s", dev)
		if err := formatState(sysroot, dev); err != nil {
			return err
		}
		staging := "/run/cairn/state"
		if err := os.MkdirAll(staging, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(dev, staging, "ext4", 0, ""); err != nil {
			return fmt.Errorf("mount new state %s: %w", dev, err)
		}
		err = seedState(varDir, staging)
		if uerr := unix.Unmount(staging, 0); err == nil && uerr != nil {
			err = fmt.Errorf("unmount %s: %w", staging, uerr)
		}
		if err != nil {
			return err
		}
	}
	if err := unix.Mount(dev, varDir, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount state %s on %s: %w", dev, varDir, err)
	}
	return nil
}
