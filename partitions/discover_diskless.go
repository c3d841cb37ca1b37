package partitions

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SlotNetwork is the slot name of a diskless boot: the slot image cairn-init
// fetched over the network and runs from RAM. cairn-init measures it under
// this name, so the measurement log and Boot.Slot agree.
const SlotNetwork Slot = "pxe"

// ErrDisklessRoot: the kernel command line says cairn.pxe=diskless, but /
// is not on the loop device cairn-init attaches over the fetched slot image.
var ErrDisklessRoot = errors.New("diskless boot, but / is not on a loop device")

// Kernel parameters of a diskless boot (docs/images.md, "PXE"), as the
// iPXE script of the network boot bundle sets them.
const (
	paramPXE     = "cairn.pxe"
	paramSlotURL = "cairn.slot_url"
	pxeDiskless  = "diskless"
)

// KernelParams returns the key=value parameters of the kernel command
// line under root (its /proc/cmdline); the last of a key wins, as for the
// kernel.
func KernelParams(root string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "proc/cmdline"))
	if err != nil {
		return nil, fmt.Errorf("discover: %w", err)
	}
	params := map[string]string{}
	for _, tok := range strings.Fields(string(b)) {
		if k, v, ok := strings.Cut(tok, "="); ok {
			params[k] = v
		}
	}
	return params, nil
}

// disklessCmdline reports whether the kernel was booted diskless, with
// the URL the slot image came from. cairn-init runs a diskless boot
// whatever cairn.slot= says, and refuses any other cairn.pxe mode.
func disklessCmdline(root string) (bool, string, error) {
	params, err := KernelParams(root)
	if err != nil {
		return false, "", err
	}
	mode, ok := params[paramPXE]
	switch {
	case !ok:
		return false, "", nil
	case mode != pxeDiskless:
		return false, "", fmt.Errorf("discover: /proc/cmdline has %s=%s, want %s: %w", paramPXE, mode, pxeDiskless, ErrNotCairnDevice)
	}
	return true, params[paramSlotURL], nil
}

// discoverDiskless finds the loop device holding the fetched slot image
// below /: / is dm-verity over it, or the loop device itself.
func discoverDiskless(root, slotURL string) (*Boot, error) {
	rootDev, err := rootBlockDev(root)
	if err != nil {
		return nil, err
	}
	loop := rootDev
	if !isLoop(rootDev) {
		if loop, err = singleSlave(root, rootDev); err != nil {
			return nil, fmt.Errorf("discover: cairn.pxe=diskless, / is mounted from %s: %w", rootDev.path(), err)
		}
	}
	if !isLoop(loop) {
		return nil, fmt.Errorf("discover: cairn.pxe=diskless, / is mounted from %s over %s: %w", rootDev.path(), loop.path(), ErrDisklessRoot)
	}
	return &Boot{Slot: SlotNetwork, Diskless: true, SlotURL: slotURL, Device: loop.path(), RootDevice: rootDev.path()}, nil
}

// singleSlave is the one device below a device-mapper device: dm-verity
// over a slot image keeps its hash tree in the same image.
func singleSlave(root string, d *blockDev) (*blockDev, error) {
	slaves, err := os.ReadDir(filepath.Join(d.dir, "slaves"))
	if err != nil || len(slaves) == 0 {
		return nil, fmt.Errorf("neither a loop device nor a device-mapper device over one: %w", ErrDisklessRoot)
	}
	if len(slaves) != 1 {
		var names []string
		for _, s := range slaves {
			names = append(names, s.Name())
		}
		return nil, fmt.Errorf("a device-mapper device over %d devices (%s), want one loop device: %w",
			len(slaves), strings.Join(names, ", "), ErrDisklessRoot)
	}
	s, err := readBlockDev(filepath.Join(root, "sys/class/block", slaves[0].Name()))
	if err != nil {
		return nil, fmt.Errorf("below %s: %w", d.path(), err)
	}
	return s, nil
}

// isLoop reports whether d is a loop device with a file attached: sysfs
// gives an attached loop device a loop directory.
func isLoop(d *blockDev) bool {
	if !strings.HasPrefix(d.name, "loop") || d.partition {
		return false
	}
	_, err := os.Stat(filepath.Join(d.dir, "loop"))
	return err == nil
}
