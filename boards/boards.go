// Package boards loads the board definitions Cairn images are built for: one
// YAML file per board naming its architecture, bootloader, console, kernel,
// partition layout and firmware.
package boards

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed *.yaml
var boardFiles embed.FS

// Bootloaders a board may name.
const (
	UEFIGrub = "uefi-grub" // UEFI firmware runs GRUB EFI from the ESP (partitions/grub)
	UBoot    = "u-boot"    // U-Boot runs boot.scr from CAIRN_BOOT (partitions/uboot)
)

// ErrUnknownBoard is returned by Load for a name no board file has.
var ErrUnknownBoard = errors.New("unknown board")

// Board is a parsed and validated board file.
type Board struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Arch is the Debian architecture: amd64 or arm64.
	Arch       string `json:"arch"`
	Bootloader string `json:"bootloader"`
	// Console is the kernel's console= value, e.g. ttyS0,115200.
	Console string `json:"console"`
	// Cmdline is more kernel parameters; cairn.slot= is the bootloader's.
	Cmdline string `json:"cmdline,omitempty"`
	// Layout names a partitions layout.
	Layout        string `json:"layout"`
	KernelPackage string `json:"kernel_package"`
	// SlotSize is the slot image's size in bytes: the layout's slot size.
	SlotSize int64 `json:"slot_size"`
	// Packages are more Debian packages for the root filesystem, and
	// Components the archive components they come from (default main).
	Packages   []string `json:"packages,omitempty"`
	Components []string `json:"components"`
	// InitrdModules are the kernel modules cairn-init loads, in order, when
	// the kernel has them as modules: disk drivers, dm-mod, dm-verity.
	InitrdModules []string   `json:"initrd_modules,omitempty"`
	Firmware      []Firmware `json:"firmware,omitempty"`
	// BootFiles are small files written as they are onto the boot
	// partition, by name (rpi4's config.txt).
	BootFiles map[string]string `json:"boot_files,omitempty"`
	// EncryptState makes cairn-init create the state partition encrypted
	// with dm-crypt, its key sealed by the TPM, on a device that has one
	// (docs/tpm.md, "Encrypted state partition").
	EncryptState bool `json:"encrypt_state,omitempty"`
	// HardwareTested says whether the image has booted on the real board.
	HardwareTested bool `json:"hardware_tested"`
}

// Firmware is one file the board needs besides the kernel.
type Firmware struct {
	// Package is the Debian package that ships it.
	Package string `json:"package"`
	// Path is where the package installs it; a glob for files whose path
	// holds a version (the kernel's device trees).
	Path string `json:"path"`
	// Dest is where it goes on the boot partition; empty for the machine's
	// own firmware (OVMF, QEMU's U-Boot), which is not written to the disk.
	Dest string `json:"dest,omitempty"`
}

// OnDisk reports whether the file is copied onto the boot partition.
func (f Firmware) OnDisk() bool { return f.Dest != "" }

// MachineFirmware returns the first firmware file that is not on the disk
// (what QEMU gets as -bios or pflash), or "" when there is none.
func (b *Board) MachineFirmware() string {
	for _, f := range b.Firmware {
		if !f.OnDisk() {
			return f.Path
		}
	}
	return ""
}

// Error is a problem in a board file, located by line and key.
type Error struct {
	File string
	Line int    // 1-based; 0 when the problem has no line
	Key  string // e.g. "firmware[1].dest"; empty for the whole file
	Msg  string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key == "" {
		return fmt.Sprintf("board %s: %s", loc, e.Msg)
	}
	return fmt.Sprintf("board %s: %s: %s", loc, e.Key, e.Msg)
}

// Names lists the boards shipped with Cairn, sorted.
func Names() []string {
	entries, err := fs.ReadDir(boardFiles, ".")
	if err != nil {
		return nil // the embedded directory always reads
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// Load parses the shipped board with the given name.
func Load(name string) (*Board, error) {
	file := name + ".yaml"
	if name == "" || path.Base(name) != name || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("board %q: %w (known: %s)", name, ErrUnknownBoard, strings.Join(Names(), ", "))
	}
	data, err := boardFiles.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("board %q: %w (known: %s)", name, ErrUnknownBoard, strings.Join(Names(), ", "))
	}
	b, err := Parse(file, data)
	if err != nil {
		return nil, err
	}
	if b.Name != name {
		return nil, &Error{File: file, Key: "name", Msg: fmt.Sprintf("%q does not match the file name", b.Name)}
	}
	return b, nil
}

// All loads every shipped board.
func All() ([]*Board, error) {
	var all []*Board
	for _, n := range Names() {
		b, err := Load(n)
		if err != nil {
			return nil, err
		}
		all = append(all, b)
	}
	return all, nil
}
