package partitions

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrBadCmdline means kernel parameters a boot script cannot carry.
var ErrBadCmdline = errors.New("bad kernel parameters")

// BootCmdline joins "ro", a board's console and its kernel parameters for
// the boot scripts (grub.cfg, boot.scr, the iPXE scripts), which hold them
// in single quotes and add cairn.slot= themselves: a quote, a backslash, a
// newline or a cairn.slot of the board's own is refused.
//
// "ro" tells systemd the root stays read-only: it is a dm-verity device
// (or a verified image in RAM), and without "ro" systemd-remount-fs tries
// to make it writable and fails on every boot. A board's "rw" is refused.
func BootCmdline(console, cmdline string) (string, error) {
	args := []string{"ro"}
	if console != "" {
		args = append(args, "console="+console)
	}
	if cmdline != "" {
		args = append(args, cmdline)
	}
	joined := strings.Join(args, " ")
	if strings.ContainsAny(joined, "'\n\\") {
		return "", fmt.Errorf("%w: %q contain a quote, backslash or newline", ErrBadCmdline, joined)
	}
	if slices.Contains(strings.Fields(cmdline), "rw") {
		return "", fmt.Errorf("%w: %q set rw, but the root is a read-only dm-verity device", ErrBadCmdline, cmdline)
	}
	if strings.Contains(joined, "cairn.slot=") {
		return "", fmt.Errorf("%w: %q set cairn.slot, which only the boot script may set", ErrBadCmdline, joined)
	}
	return joined, nil
}
