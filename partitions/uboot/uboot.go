// Package uboot builds the U-Boot boot script that boots the A/B root slots by Cairn's boot-state rule and says where its redundant environment lives.
package uboot

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/cairn-edge/cairn/internal/atomicfile"

	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/ubootenv"
)

// script is the boot-state rule in U-Boot's hush; Script puts the board
// settings above it.
//
//go:embed boot.cmd
var script []byte

// ScriptPath is where U-Boot's distro boot looks for the script on the
// CAIRN_BOOT filesystem (its first partition).
const ScriptPath = "boot.scr"

// The boot-state environment: two copies of EnvCopySize bytes in the last
// 64 KiB of the CAIRN_BOOT partition, outside its FAT filesystem, which must
// end at least ReservedTail bytes before the partition does. boot.cmd
// hard-codes the same numbers in 512-byte blocks.
const (
	EnvCopySize  = 0x4000
	ReservedTail = 1 << 20
)

// EnvCopyOffsets are the copies' offsets from the end of CAIRN_BOOT.
var EnvCopyOffsets = [2]int64{-0x10000, -0x8000}

// DefaultEnvDevice is the CAIRN_BOOT partition on a running device.
var DefaultEnvDevice = "/dev/disk/by-partlabel/" + partitions.LabelBoot

// ErrBadOption means a board setting cannot be written into the script.
var ErrBadOption = errors.New("bad U-Boot option")

// Options are the board's settings for the boot script.
type Options struct {
	// Console is the kernel's console, e.g. "ttyAMA0,115200"; empty for none.
	Console string
	// Cmdline is more kernel parameters, e.g. "quiet".
	Cmdline string
	// Arch is mkimage's architecture for the script image; empty for arm64.
	Arch string
}

// Script returns the complete boot.cmd for a board: its settings, then the
// embedded boot-state rule.
func Script(opts Options) ([]byte, error) {
	cmdline, err := partitions.BootCmdline(opts.Console, opts.Cmdline)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOption, err)
	}
	var buf bytes.Buffer
	buf.WriteString("# Board settings.\n")
	fmt.Fprintf(&buf, "setenv cairn_cmdline '%s'\n\n", cmdline)
	buf.Write(script)
	return buf.Bytes(), nil
}

// BuildScript writes the board's boot.scr to out with mkimage (Debian
// u-boot-tools). The file appears at out complete or not at all.
func BuildScript(ctx context.Context, opts Options, out string) error {
	text, err := Script(opts)
	if err != nil {
		return err
	}
	arch := opts.Arch
	if arch == "" {
		arch = "arm64"
	}
	work, err := os.MkdirTemp(filepath.Dir(out), ".uboot-build-*")
	if err != nil {
		return fmt.Errorf("boot script %s: %w", out, err)
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "boot.cmd")
	if err := os.WriteFile(src, text, 0o644); err != nil {
		return fmt.Errorf("boot script %s: %w", out, err)
	}
	tmp := filepath.Join(work, "boot.scr")
	cmd := exec.CommandContext(ctx, "mkimage", "-A", arch, "-O", "linux", "-T", "script", "-C", "none",
		"-n", "cairn boot-state rule", "-d", src, tmp)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("boot script %s: mkimage: %w: %s", out, err, bytes.TrimSpace(msg))
	}
	return install(tmp, out)
}

// EnvLocations names the two copies on device, the CAIRN_BOOT partition of
// partBytes bytes: what fw_env.config says and ubootenv.Open takes. The
// offsets are counted from the partition's start, because libubootenv's
// fw_printenv and fw_setenv refuse negative ones.
func EnvLocations(device string, partBytes int64) ([]ubootenv.Location, error) {
	if err := checkPartition(0, partBytes); err != nil {
		return nil, err
	}
	var locs []ubootenv.Location
	for _, off := range EnvCopyOffsets {
		locs = append(locs, ubootenv.Location{Device: device, Offset: partBytes + off, Size: EnvCopySize})
	}
	return locs, nil
}

// FwEnvConfig is the fw_env.config for the boot-state environment on
// device, the CAIRN_BOOT partition of partBytes bytes: fw_printenv,
// fw_setenv and bootstate.Open read it.
func FwEnvConfig(device string, partBytes int64) ([]byte, error) {
	locs, err := EnvLocations(device, partBytes)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteString("# Cairn boot state: a redundant U-Boot environment in the last 64 KiB of\n")
	buf.WriteString("# CAIRN_BOOT, read and written by boot.scr.\n")
	buf.WriteString("# device offset size\n")
	for _, l := range locs {
		fmt.Fprintf(&buf, "%s %#x %#x\n", l.Device, l.Offset, l.Size)
	}
	return buf.Bytes(), nil
}

// EnvRegions are the two copies inside a whole-disk image or device dev
// whose CAIRN_BOOT partition starts at byte partStart and is partBytes long,
// for an image build to format with ubootenv.Format.
func EnvRegions(dev ubootenv.Device, partStart, partBytes int64) ([]ubootenv.Region, error) {
	if err := checkPartition(partStart, partBytes); err != nil {
		return nil, err
	}
	var regions []ubootenv.Region
	for _, off := range EnvCopyOffsets {
		regions = append(regions, ubootenv.Region{Dev: dev, Offset: partStart + partBytes + off, Size: EnvCopySize})
	}
	return regions, nil
}

func checkPartition(start, size int64) error {
	if size < ReservedTail || start < 0 || start%512 != 0 || size%512 != 0 {
		return fmt.Errorf("%w: %s at byte %d, %d bytes: want whole 512-byte blocks and at least %d bytes",
			ErrBadOption, partitions.LabelBoot, start, size, ReservedTail)
	}
	return nil
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
