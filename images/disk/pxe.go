package disk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/images/initrd"
	"github.com/cairn-edge/cairn/images/rootfs"
	"github.com/cairn-edge/cairn/internal/atomicfile"
	"github.com/cairn-edge/cairn/partitions"
)

// The files of a PXE bundle.
const (
	PXEKernel   = "vmlinuz"
	PXEInitrd   = "initrd"
	PXESlot     = "slot.img"
	PXESlotZst  = "slot.img.zst"
	PXEBoot     = "boot.img"
	PXEDiskless = "boot.ipxe"
	PXEInstall  = "install.ipxe"
)

// PXEOptions say what goes into a PXE bundle.
type PXEOptions struct {
	Board *boards.Board
	// Slot is the slot image (cairn slot build); its kernel and initramfs
	// are the bundle's.
	Slot string
	// Out is the directory to create.
	Out string
	// BaseURL is where Out is served over HTTP, as the machines see it.
	BaseURL string
	// InstallDisk, when set, adds install.ipxe, which installs onto it.
	InstallDisk     string
	SourceDateEpoch int64
	Logf            func(format string, args ...any)
}

// PXEResult summarises a bundle.
type PXEResult struct {
	Board   string     `json:"board"`
	Release string     `json:"release"`
	Files   []Artifact `json:"files"`
	Seconds float64    `json:"seconds"`
}

// BuildPXE writes the network boot bundle of a slot image: its kernel and
// initramfs (taken out of the slot's filesystem with debugfs), the slot
// image and its .zst, which the scripts fetch, the boot partition an
// install writes, and iPXE scripts: boot.ipxe
// runs the slot from RAM, install.ipxe writes it onto a local disk and
// reboots into it.
func BuildPXE(ctx context.Context, o PXEOptions) (*PXEResult, error) {
	start := time.Now()
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if !strings.HasPrefix(o.BaseURL, "http://") && !strings.HasPrefix(o.BaseURL, "https://") {
		return nil, fmt.Errorf("pxe: base URL %q: want http:// or https://", o.BaseURL)
	}
	if o.InstallDisk != "" && !strings.HasPrefix(o.InstallDisk, "/dev/") {
		return nil, fmt.Errorf("pxe: install disk %q: want a /dev path", o.InstallDisk)
	}
	f, err := footer.ReadFromDevice(o.Slot)
	if err != nil {
		return nil, fmt.Errorf("pxe: slot %s: %w", o.Slot, err)
	}
	if f.Manifest.Board != o.Board.Name {
		return nil, fmt.Errorf("pxe: slot %s: built for board %q, not %q", o.Slot, f.Manifest.Board, o.Board.Name)
	}
	if err := os.Mkdir(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("pxe: %w", err)
	}
	for name, src := range map[string]string{PXEKernel: rootfs.KernelPath, PXEInitrd: rootfs.InitrdPath} {
		if err := run(ctx, "debugfs", "-R", "dump /"+src+" "+filepath.Join(o.Out, name), o.Slot); err != nil {
			return nil, fmt.Errorf("pxe: %s from %s: %w", src, o.Slot, err)
		}
		if fi, err := os.Stat(filepath.Join(o.Out, name)); err != nil || fi.Size() == 0 {
			return nil, fmt.Errorf("pxe: slot %s has no /%s", o.Slot, src)
		}
	}
	logf("pxe %s: kernel and initramfs from %s", o.Out, o.Slot)
	if err := run(ctx, "cp", "--sparse=always", o.Slot, filepath.Join(o.Out, PXESlot)); err != nil {
		return nil, fmt.Errorf("pxe: %w", err)
	}
	if _, err := Compress(ctx, filepath.Join(o.Out, PXESlot), filepath.Join(o.Out, PXESlotZst)); err != nil {
		return nil, fmt.Errorf("pxe: %w", err)
	}
	if err := BootImage(ctx, Options{Board: o.Board, SlotA: o.Slot, SourceDateEpoch: o.SourceDateEpoch}, filepath.Join(o.Out, PXEBoot)); err != nil {
		return nil, fmt.Errorf("pxe: %w", err)
	}
	logf("pxe %s: slot image and boot partition", o.Out)
	names := []string{PXEKernel, PXEInitrd, PXESlot, PXESlotZst, PXEBoot, PXEDiskless}
	scripts := map[string]string{PXEDiskless: ""}
	if o.InstallDisk != "" {
		names = append(names, PXEInstall)
		scripts[PXEInstall] = o.InstallDisk
	}
	for name, installDisk := range scripts {
		text, err := IPXEScript(o.Board, f.Manifest.Version, o.BaseURL, installDisk)
		if err != nil {
			return nil, fmt.Errorf("pxe: %w", err)
		}
		if err := atomicfile.Write(filepath.Join(o.Out, name), []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("pxe: %w", err)
		}
	}
	res := &PXEResult{Board: o.Board.Name, Release: f.Manifest.Version}
	for _, n := range names {
		a, err := artifact(filepath.Join(o.Out, n))
		if err != nil {
			return nil, err
		}
		res.Files = append(res.Files, a)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// IPXEScript is the iPXE script that boots the bundle at baseURL: diskless
// from RAM, or, with installDisk, installing onto that disk. Its kernel
// parameters are the boot scripts' (partitions.BootCmdline) and the
// network boot's own.
func IPXEScript(b *boards.Board, version, baseURL, installDisk string) (string, error) {
	base := strings.TrimSuffix(baseURL, "/") + "/"
	cmdline, err := partitions.BootCmdline(b.Console, b.Cmdline)
	if err != nil {
		return "", fmt.Errorf("board %s: %w", b.Name, err)
	}
	args := []string{"initrd=" + PXEInitrd, cmdline}
	what := "runs it from RAM"
	if installDisk != "" {
		what = "installs it onto " + installDisk + " and reboots into it"
		args = append(args, initrd.ParamInstall+"="+installDisk, initrd.ParamBootURL+"="+base+PXEBoot)
	} else {
		args = append(args, initrd.ParamPXE+"=diskless")
	}
	args = append(args, initrd.ParamSlotURL+"="+base+PXESlotZst)
	return fmt.Sprintf("#!ipxe\n# Cairn %s release %s: fetches the slot image and %s.\nkernel %s%s %s\ninitrd %s%s\nboot\n",
		b.Name, version, what, base, PXEKernel, strings.Join(args, " "), base, PXEInitrd), nil
}
