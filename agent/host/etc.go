package host

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
	"github.com/cairn-edge/cairn/internal/atomicfile"
)

// stateEtc is where the /etc entries of one device live (initrd.StateEtc
// on the state partition): the root is read-only and shared by every
// device (docs/images.md).
const stateEtc = "/var/lib/cairn/etc"

// applyHostname sets the kernel's host name and the persisted
// /etc/hostname. fqdn gives the host name when hostname and meta-data's
// local-hostname are both unset.
func (h *Host) applyHostname(cfg *cloudinit.Config, acts *[]Action) error {
	name := cfg.Hostname()
	if name == "" && cfg.UserData.FQDN != "" {
		name, _, _ = strings.Cut(cfg.UserData.FQDN, ".")
	}
	if name == "" {
		return nil // keep the name cairn-init made from the machine id
	}
	persisted := stateEtc + "/hostname"
	if err := h.writeFile(persisted, []byte(name+"\n"), 0o644, 0, 0, acts); err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	if err := h.symlink("/etc/hostname", persisted, acts); err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	cur, err := h.Sys.Hostname()
	if err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	if cur != name {
		if err := h.Sys.SetHostname(name); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
		*acts = append(*acts, Action{OpHostname, name})
	}
	return nil
}

// applyTimezone points the persisted /etc/localtime at the zone's file;
// without timezone it removes it, and glibc falls back to UTC.
func (h *Host) applyTimezone(tz string, acts *[]Action) error {
	persisted := stateEtc + "/localtime"
	if tz == "" {
		err := os.Remove(h.path(persisted))
		if err == nil {
			*acts = append(*acts, Action{OpRemove, persisted})
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("timezone: %w", err)
		}
		return nil
	}
	zone := "/usr/share/zoneinfo/" + tz
	if !filepath.IsLocal(tz) {
		return fmt.Errorf("timezone %q: not a zone name like Europe/Berlin", tz)
	}
	if fi, err := os.Stat(h.path(zone)); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("timezone %q: no zone file %s in the image", tz, zone)
	}
	if err := h.symlink(persisted, zone, acts); err != nil {
		return fmt.Errorf("timezone: %w", err)
	}
	return wrap("timezone", h.symlink("/etc/localtime", persisted, acts))
}

// symlink makes the device path link point at target unless it already
// does, replacing whatever is there in one rename.
func (h *Host) symlink(link, target string, acts *[]Action) error {
	p := h.path(link)
	if cur, err := os.Readlink(p); err == nil && cur == target {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp-link")
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := atomicfile.SyncDir(filepath.Dir(p)); err != nil {
		return err
	}
	*acts = append(*acts, Action{OpSymlink, link + " -> " + target})
	return nil
}

// writeFile makes the device path hold data with mode and owner, writing
// only what differs: content through a temp file and rename, mode and
// owner in place.
func (h *Host) writeFile(path string, data []byte, mode fs.FileMode, uid, gid int, acts *[]Action) error {
	p := h.path(path)
	fi, err := os.Lstat(p)
	if err == nil && fi.Mode().IsRegular() {
		old, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Equal(old, data) {
			return h.fixAttrs(path, fi, mode, uid, gid, acts)
		}
	}
	f, err := atomicfile.Create(p, mode)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("%s: write: %w", p, err)
	}
	if err := f.Chown(uid, gid); err != nil {
		return fmt.Errorf("%s: chown: %w", p, err)
	}
	// chown clears set-id bits; the mode goes on last.
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("%s: chmod: %w", p, err)
	}
	if err := f.Commit(); err != nil {
		return err
	}
	*acts = append(*acts, Action{OpWriteFile, path})
	return nil
}

// fixAttrs sets mode and owner of an existing file when they differ.
func (h *Host) fixAttrs(path string, fi fs.FileInfo, mode fs.FileMode, uid, gid int, acts *[]Action) error {
	p := h.path(path)
	st := fi.Sys().(*syscall.Stat_t)
	changed := false
	if int(st.Uid) != uid || int(st.Gid) != gid {
		if err := os.Lchown(p, uid, gid); err != nil {
			return err
		}
		changed = true
	}
	if changed || fileMode(fi) != mode {
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		changed = true
	}
	if changed {
		*acts = append(*acts, Action{OpWriteFile, path + " (owner, mode)"})
	}
	return nil
}

// fileMode is the permission and set-id bits of fi, as chmod takes them.
func fileMode(fi fs.FileInfo) fs.FileMode {
	return fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

// mkdir makes a directory with mode and owner when missing; an existing
// one is left as it is (its owner may have changed it).
func (h *Host) mkdir(path string, mode fs.FileMode, uid, gid int, acts *[]Action) error {
	p := h.path(path)
	if fi, err := os.Stat(p); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s: not a directory", p)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(p, mode); err != nil {
		return err
	}
	if err := os.Chown(p, uid, gid); err != nil {
		return err
	}
	if err := os.Chmod(p, mode); err != nil {
		return err
	}
	*acts = append(*acts, Action{OpMkdir, path})
	return atomicfile.SyncDir(filepath.Dir(p))
}
