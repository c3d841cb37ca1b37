package partitions

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Errors of Discover and FindByLabel that callers act on.
var (
	// ErrNotCairnDevice: the kernel was not booted by a Cairn bootloader.
	ErrNotCairnDevice = errors.New("not a Cairn device")
	// ErrSlotMismatch: the kernel command line names one slot, but / is
	// mounted from another partition. Nothing may be written to either slot.
	ErrSlotMismatch = errors.New("booted slot does not match the root partition")
	// ErrPartitionNotFound: no partition carries the label looked for.
	ErrPartitionNotFound = errors.New("partition not found")
	// ErrAmbiguousLabel: several partitions carry the label looked for.
	ErrAmbiguousLabel = errors.New("label on more than one partition")
)

// Boot is what a running device booted from.
type Boot struct {
	Slot        Slot   `json:"slot"`         // from cairn.slot= on the kernel command line; SlotNetwork when diskless
	Device      string `json:"device"`       // the booted slot's partition, e.g. /dev/sda2; the loop device when diskless
	OtherDevice string `json:"other_device"` // the other slot's partition on the same disk; empty when diskless
	Disk        string `json:"disk"`         // the disk holding both, e.g. /dev/sda; empty when diskless
	RootDevice  string `json:"root_device"`  // what / is mounted from: Device, or a dm-verity device
	// Diskless: the slot image was fetched over the network (cairn.pxe=diskless)
	// and runs from RAM. There is no other slot and no boot environment.
	Diskless bool `json:"diskless,omitempty"`
	// SlotURL is where a diskless boot fetched its slot image (cairn.slot_url=).
	SlotURL string `json:"slot_url,omitempty"`
}

// Discover finds the booted slot of a running device. root is the file
// system root whose proc and sys it reads: "/" on a device. A diskless
// boot (cairn.pxe=diskless) has / on a loop device over the fetched slot
// image, or on dm-verity over one, and no slot partitions.
func Discover(root string) (*Boot, error) {
	diskless, slotURL, err := disklessCmdline(root)
	if err != nil {
		return nil, err
	}
	if diskless {
		return discoverDiskless(root, slotURL)
	}
	slot, err := CmdlineSlot(root)
	if err != nil {
		return nil, err
	}
	rootDev, err := rootBlockDev(root)
	if err != nil {
		return nil, err
	}
	part, err := underlyingPartition(root, rootDev, 0)
	if err != nil {
		return nil, fmt.Errorf("discover: / is mounted from %s: %w", rootDev.path(), err)
	}
	if part.partName != slot.Label() {
		label := part.partName
		if label == "" {
			label = "a partition without GPT label"
		}
		return nil, fmt.Errorf("discover: /proc/cmdline says cairn.slot=%s but / is mounted from %s (%s): %w",
			slot, label, part.path(), ErrSlotMismatch)
	}
	other, err := findOnDisk(root, slot.Other().Label(), part.parent)
	if err != nil {
		return nil, fmt.Errorf("discover: booted slot %s on %s: %w", slot, part.path(), err)
	}
	return &Boot{
		Slot:        slot,
		Device:      part.path(),
		OtherDevice: other.path(),
		Disk:        devPath(part.parent),
		RootDevice:  rootDev.path(),
	}, nil
}

// FindByLabel returns the /dev path of the one partition labelled label,
// looking through root's /sys/class/block.
func FindByLabel(root, label string) (string, error) {
	devs, err := partitionsLabelled(root, label)
	if err != nil {
		return "", err
	}
	switch len(devs) {
	case 0:
		return "", fmt.Errorf("find %s: %w", label, ErrPartitionNotFound)
	case 1:
		return devs[0].path(), nil
	}
	return "", fmt.Errorf("find %s: on %s: %w", label, paths(devs), ErrAmbiguousLabel)
}

// CmdlineSlot is the slot the bootloader chose, from cairn.slot= on the
// kernel command line under root.
func CmdlineSlot(root string) (Slot, error) {
	params, err := KernelParams(root)
	if err != nil {
		return "", err
	}
	value, found := params["cairn.slot"]
	if !found {
		return "", fmt.Errorf("discover: /proc/cmdline has no cairn.slot=: %w", ErrNotCairnDevice)
	}
	slot, err := ParseSlot(value)
	if err != nil {
		return "", fmt.Errorf("discover: /proc/cmdline: cairn.%w", err)
	}
	return slot, nil
}

// rootMajMin reads the device number of / from mountinfo. The last entry
// for / is the one in effect: later mounts hide earlier ones.
func rootMajMin(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return "", fmt.Errorf("discover: %w", err)
	}
	majMin := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 5 && f[4] == "/" {
			majMin = f[2]
		}
	}
	if majMin == "" {
		return "", fmt.Errorf("discover: /proc/self/mountinfo has no entry for /")
	}
	if strings.HasPrefix(majMin, "0:") {
		return "", fmt.Errorf("discover: / is not on a block device (device %s)", majMin)
	}
	return majMin, nil
}

// rootBlockDev is the block device / is mounted from.
func rootBlockDev(root string) (*blockDev, error) {
	majMin, err := rootMajMin(root)
	if err != nil {
		return nil, err
	}
	d, err := readBlockDev(filepath.Join(root, "sys/dev/block", majMin))
	if err != nil {
		return nil, fmt.Errorf("discover: device %s of /: %w", majMin, err)
	}
	return d, nil
}

// underlyingPartition follows device-mapper devices (dm-verity) down to the
// partition below them.
func underlyingPartition(root string, d *blockDev, depth int) (*blockDev, error) {
	if d.partition {
		return d, nil
	}
	slaves, err := os.ReadDir(filepath.Join(d.dir, "slaves"))
	if err != nil || len(slaves) == 0 || depth > 8 {
		return nil, fmt.Errorf("%s is neither a partition nor a device-mapper device over one", d.path())
	}
	var found []*blockDev
	for _, s := range slaves {
		sd, err := readBlockDev(filepath.Join(root, "sys/class/block", s.Name()))
		if err != nil {
			return nil, err
		}
		p, err := underlyingPartition(root, sd, depth+1)
		if err != nil {
			return nil, err
		}
		// A verity hash tree on a partition of its own is a second slave;
		// the slot is the one with a slot label.
		if len(slaves) == 1 || strings.HasPrefix(p.partName, "CAIRN_ROOT_") {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("%s sits on %d root slot partitions, want one", d.path(), len(found))
	}
	return found[0], nil
}

// findOnDisk finds the partition labelled label on disk. One on another disk
// is not taken: that is a second Cairn medium (the stick the device was
// flashed from, say), and writing an update there would be wrong.
func findOnDisk(root, label, disk string) (*blockDev, error) {
	devs, err := partitionsLabelled(root, label)
	if err != nil {
		return nil, err
	}
	var here, elsewhere []*blockDev
	for _, d := range devs {
		if d.parent == disk {
			here = append(here, d)
		} else {
			elsewhere = append(elsewhere, d)
		}
	}
	switch {
	case len(here) == 1:
		return here[0], nil
	case len(here) > 1:
		return nil, fmt.Errorf("%s on %s: %w", label, paths(here), ErrAmbiguousLabel)
	case len(elsewhere) > 0:
		return nil, fmt.Errorf("no %s on %s (only on %s, another disk): %w", label, devPath(disk), paths(elsewhere), ErrPartitionNotFound)
	}
	return nil, fmt.Errorf("no %s on %s: %w", label, devPath(disk), ErrPartitionNotFound)
}
