package rootfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// BinfmtDir is where the kernel's binfmt_misc is mounted.
const BinfmtDir = "/proc/sys/fs/binfmt_misc"

// BinfmtConfDir holds the binfmt registrations qemu-user-static ships, one
// file per architecture in the kernel's register format.
const BinfmtConfDir = "/usr/lib/binfmt.d"

// ErrNoEmulator means a root of a foreign architecture was asked for and
// qemu-user-static's registration for it is missing.
var ErrNoEmulator = errors.New("no qemu-user-static registration for the architecture")

// qemuNames are QEMU's names of the Debian architectures boards use.
var qemuNames = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "armhf": "arm"}

// EnableArch makes the kernel run binaries of the Debian architecture arch,
// so that mmdebstrap can run a foreign root's maintainer scripts: on a host
// of another architecture it mounts binfmt_misc when it is not mounted and
// registers qemu-user-static's interpreter unless it is registered. The
// registration has the F flag, so it works inside the root's chroot too.
func EnableArch(arch string) error {
	if arch == runtime.GOARCH {
		return nil
	}
	name, ok := qemuNames[arch]
	if !ok {
		return fmt.Errorf("architecture %s: %w", arch, ErrNoEmulator)
	}
	if _, err := os.Stat(filepath.Join(BinfmtDir, "register")); errors.Is(err, fs.ErrNotExist) {
		if err := unix.Mount("binfmt_misc", BinfmtDir, "binfmt_misc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount binfmt_misc on %s: %w", BinfmtDir, err)
		}
	}
	entry := filepath.Join(BinfmtDir, "qemu-"+name)
	if data, err := os.ReadFile(entry); err == nil {
		if bytes.HasPrefix(data, []byte("enabled")) {
			return nil
		}
		return fmt.Errorf("%s: registered but disabled", entry)
	}
	conf := filepath.Join(BinfmtConfDir, "qemu-"+name+".conf")
	line, err := os.ReadFile(conf)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("architecture %s: %s missing (package qemu-user-static): %w", arch, conf, ErrNoEmulator)
	}
	if err != nil {
		return fmt.Errorf("architecture %s: %w", arch, err)
	}
	reg, err := os.OpenFile(filepath.Join(BinfmtDir, "register"), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("binfmt_misc: %w", err)
	}
	defer reg.Close()
	if _, err := reg.Write(bytes.TrimSpace(line)); err != nil {
		return fmt.Errorf("binfmt_misc: register %s from %s: %w", name, conf, err)
	}
	return nil
}
