// Package grub builds the GRUB EFI binary whose embedded grub.cfg boots the A/B root slots by Cairn's boot-state rule.
package grub

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/cairn-edge/cairn/internal/atomicfile"

	"github.com/cairn-edge/cairn/partitions"
)

// script is the boot-state rule in GRUB script; Config puts the board
// settings above it.
//
//go:embed grub.cfg
var script []byte

// Paths on the ESP, relative to its root.
const (
	// BootPath is where UEFI firmware looks for a removable medium's
	// bootloader on x86_64, so no boot entry is needed.
	BootPath = "EFI/BOOT/BOOTX64.EFI"
	// EnvPath is the GRUB environment block holding the boot state. GRUB
	// rewrites it in place: once written, the file must never move.
	EnvPath = "EFI/cairn/grubenv"
)

// DefaultModuleDir is where Debian's grub-efi-amd64-bin keeps the modules.
const DefaultModuleDir = "/usr/lib/grub/x86_64-efi"

// Modules are the GRUB modules built into the binary: GPT, the FAT ESP, the
// ext4 slots, the environment block, the script's commands and the Linux
// loader. Nothing is loaded at run time.
var Modules = []string{
	"part_gpt", "fat", "ext2", "loadenv", "test", "regexp", "echo",
	"sleep", "reboot", "linux", "normal",
}

// ErrBadOption means a board setting cannot be written into grub.cfg.
var ErrBadOption = errors.New("bad GRUB option")

// Options are the board's settings for the boot script.
type Options struct {
	// Layout is the board's partition layout; the slots' partition numbers
	// come from it, because GRUB 2.06 cannot find a partition by its GPT
	// label.
	Layout *partitions.Layout
	// Console is the kernel's console, e.g. "ttyS0,115200"; empty for none.
	Console string
	// Cmdline is more kernel parameters, e.g. "quiet".
	Cmdline string
	// ModuleDir holds GRUB's x86_64-efi modules; empty for DefaultModuleDir.
	ModuleDir string
}

// Config returns the complete grub.cfg for a board: its settings, then the
// embedded boot-state rule.
func Config(opts Options) ([]byte, error) {
	a, b, err := SlotPartitions(opts.Layout)
	if err != nil {
		return nil, err
	}
	cmdline, err := partitions.BootCmdline(opts.Console, opts.Cmdline)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOption, err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Board settings (layout %s).\n", opts.Layout.Name)
	fmt.Fprintf(&buf, "set cairn_a_part=gpt%d\n", a)
	fmt.Fprintf(&buf, "set cairn_b_part=gpt%d\n", b)
	fmt.Fprintf(&buf, "set cairn_cmdline='%s'\n\n", cmdline)
	buf.Write(script)
	return buf.Bytes(), nil
}

// SlotPartitions returns the GPT partition numbers of slots A and B in every
// disk planned from layout. It refuses a layout where an optional partition
// comes before a slot, since the slot's number would then depend on whether
// the image has that partition.
func SlotPartitions(layout *partitions.Layout) (a, b int, err error) {
	if layout == nil {
		return 0, 0, fmt.Errorf("%w: no layout", ErrBadOption)
	}
	n := 0
	optional := ""
	for _, p := range layout.Partitions {
		if p.Optional {
			optional = p.Label
			continue
		}
		n++
		var dst *int
		switch p.Label {
		case partitions.SlotA.Label():
			dst = &a
		case partitions.SlotB.Label():
			dst = &b
		default:
			continue
		}
		if optional != "" {
			return 0, 0, fmt.Errorf("%w: layout %s: optional partition %s comes before %s, so its number is not fixed", ErrBadOption, layout.Name, optional, p.Label)
		}
		*dst = n
	}
	if a == 0 || b == 0 {
		return 0, 0, fmt.Errorf("%w: layout %s has no %s and %s", ErrBadOption, layout.Name, partitions.SlotA.Label(), partitions.SlotB.Label())
	}
	return a, b, nil
}

// BuildEFI writes the GRUB EFI binary for a board to out, with Config's
// grub.cfg and Modules built in, using grub-mkstandalone (Debian
// grub-efi-amd64-bin). The file appears at out complete or not at all.
func BuildEFI(ctx context.Context, opts Options, out string) error {
	cfg, err := Config(opts)
	if err != nil {
		return err
	}
	moduleDir := opts.ModuleDir
	if moduleDir == "" {
		moduleDir = DefaultModuleDir
	}
	work, err := os.MkdirTemp(filepath.Dir(out), ".grub-build-*")
	if err != nil {
		return fmt.Errorf("grub efi %s: %w", out, err)
	}
	defer os.RemoveAll(work)
	cfgPath := filepath.Join(work, "grub.cfg")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return fmt.Errorf("grub efi %s: %w", out, err)
	}
	tmp := filepath.Join(work, "grub.efi")
	mods := strings.Join(Modules, " ")
	cmd := exec.CommandContext(ctx, "grub-mkstandalone",
		"--format=x86_64-efi", "--directory="+moduleDir, "--output="+tmp,
		"--modules="+mods, "--install-modules="+mods,
		"--locales=", "--fonts=", "--themes=",
		"boot/grub/grub.cfg="+cfgPath)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("grub efi %s: grub-mkstandalone: %w: %s", out, err, bytes.TrimSpace(msg))
	}
	return install(tmp, out)
}

// install copies src to dst through a synced temporary file and a rename.
func install(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("install %s: %w", dst, err)
	}
	if err := atomicfile.Write(dst, data, 0o644); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return nil
}
