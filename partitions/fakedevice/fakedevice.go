// Package fakedevice builds the /proc and /sys trees of a Cairn device in a
// test's temporary directory, for code that discovers slots and partitions.
package fakedevice

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Device is one block device of a fake sysfs tree.
type Device struct {
	Name     string   // kernel Name: sda, sda2, dm-0
	MajMin   string   // e.g. 8:2
	Disk     string   // for a partition, the disk it is on
	Label    string   // GPT label of a partition
	Slaves   []string // for a device-mapper device
	DevName  string   // DEVNAME when it differs from name
	Hardware string   // sysfs path of the disk's controller
	// Backing is the file a loop device (Name loopN) is attached to; a
	// loop device without one is detached, as sysfs shows it.
	Backing string
}

// Root builds proc and sys under a temporary root the way Linux lays
// them out: devices under /sys/devices, symlinks to them from
// /sys/class/block, /sys/block and /sys/dev/block.
func Root(t testing.TB, cmdline, rootMajMin string, devs ...Device) string {
	t.Helper()
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(rel, target string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		r, err := filepath.Rel(filepath.Dir(p), filepath.Join(root, target))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(r, p); err != nil {
			t.Fatal(err)
		}
	}
	dirs := map[string]string{}
	for _, d := range devs {
		var dir, uevent string
		maj, min, _ := strings.Cut(d.MajMin, ":")
		devName := d.DevName
		if devName == "" {
			devName = d.Name
		}
		switch {
		case d.Disk != "":
			dir = dirs[d.Disk] + "/" + d.Name
			uevent = fmt.Sprintf("MAJOR=%s\nMINOR=%s\nDEVNAME=%s\nDEVTYPE=partition\nPARTN=1\nPARTNAME=%s\n", maj, min, devName, d.Label)
			write(dir+"/partition", "1\n")
		case strings.HasPrefix(d.Name, "loop"):
			dir = "sys/devices/virtual/block/" + d.Name
			uevent = fmt.Sprintf("MAJOR=%s\nMINOR=%s\nDEVNAME=%s\nDEVTYPE=disk\n", maj, min, devName)
			if d.Backing != "" {
				write(dir+"/loop/backing_file", d.Backing+"\n")
				write(dir+"/ro", "1\n")
			}
			link("sys/block/"+d.Name, dir)
		case strings.HasPrefix(d.Name, "dm-"):
			dir = "sys/devices/virtual/block/" + d.Name
			uevent = fmt.Sprintf("MAJOR=%s\nMINOR=%s\nDEVNAME=%s\nDEVTYPE=disk\n", maj, min, devName)
			write(dir+"/dm/name", "root\n")
			for _, s := range d.Slaves {
				link(dir+"/slaves/"+s, dirs[s])
			}
		default:
			dir = d.Hardware + "/block/" + d.Name
			uevent = fmt.Sprintf("MAJOR=%s\nMINOR=%s\nDEVNAME=%s\nDEVTYPE=disk\n", maj, min, devName)
			link("sys/block/"+d.Name, dir)
		}
		dirs[d.Name] = dir
		write(dir+"/uevent", uevent)
		link("sys/class/block/"+d.Name, dir)
		link("sys/dev/block/"+d.MajMin, dir)
	}
	write("proc/cmdline", cmdline+"\n")
	write("proc/self/mountinfo", "1 0 0:2 / / rw - rootfs rootfs rw\n"+
		"22 1 "+rootMajMin+" / / ro,relatime shared:1 - ext4 /dev/root ro\n"+
		"23 22 0:21 / /proc rw shared:12 - proc proc rw\n"+
		"30 22 8:4 / /var rw shared:13 - ext4 /dev/sda4 rw\n")
	return root
}

// NetbootCmdline is the kernel command line of a diskless network boot,
// as the iPXE script of the network boot bundle writes it.
const NetbootCmdline = "initrd=initrd.img console=ttyS0 cairn.pxe=diskless cairn.slot_url=" + NetbootSlotURL

// NetbootSlotURL is where NetbootCmdline fetches the slot image.
const NetbootSlotURL = "http://192.0.2.1/cairn/slot.img.zst"

// Netboot is a diskless device as cairn-init leaves it: the fetched slot
// image on loop0 and dm-verity over it as dm-0 (253:0), and no disk.
func Netboot() []Device {
	return []Device{
		{Name: "loop0", MajMin: "7:0", Backing: "/run/cairn/netboot/slot.img"},
		{Name: "dm-0", MajMin: "253:0", Slaves: []string{"loop0"}},
	}
}

// PCIDisk is the sysfs path of a virtio disk controller.
const PCIDisk = "sys/devices/pci0000:00/0000:00:04.0/virtio1/host0/target0:0:0/0:0:0:0"

// SDA is a Cairn Disk: EFI, the two slots and state, as sda1 to sda4.
func SDA() []Device {
	return []Device{
		{Name: "sda", MajMin: "8:0", Hardware: PCIDisk},
		{Name: "sda1", MajMin: "8:1", Disk: "sda", Label: "CAIRN_EFI"},
		{Name: "sda2", MajMin: "8:2", Disk: "sda", Label: "CAIRN_ROOT_A"},
		{Name: "sda3", MajMin: "8:3", Disk: "sda", Label: "CAIRN_ROOT_B"},
		{Name: "sda4", MajMin: "8:4", Disk: "sda", Label: "CAIRN_STATE"},
	}
}
