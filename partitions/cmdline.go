package partitions

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadCmdline means kernel parameters a boot script cannot carry.
var ErrBadCmdline = errors.New("bad kernel parameters")

// BootCmdline joins a board's console and kernel parameters for the boot
// scripts (grub.cfg, boot.scr), which hold them in single quotes and add
// cairn.slot= themselves: a quote, a backslash, a newline or a cairn.slot
// of the board's own is refused.
func BootCmdline(console, cmdline string) (string, error) {
	var args []string
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
	if strings.Contains(joined, "cairn.slot=") {
		return "", fmt.Errorf("%w: %q set cairn.slot, which only the boot script may set", ErrBadCmdline, joined)
	}
	return joined, nil
}
