package partitions

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeDevice is one block device of a fake sysfs tree.
type fakeDevice struct {
	name     string   // kernel name: sda, sda2, dm-0
	majMin   string   // e.g. 8:2
	disk     string   // for a partition, the disk it is on
	label    string   // GPT label of a partition
	slaves   []string // for a device-mapper device
	devName  string   // DEVNAME when it differs from name
	hardware string   // sysfs path of the disk's controller
}

// fakeRoot builds proc and sys under a temporary root the way Linux lays
// them out: devices under /sys/devices, symlinks to them from
// /sys/class/block, /sys/block and /sys/dev/block.
func fakeRoot(t *testing.T, cmdline, rootMajMin string, devs ...fakeDevice) string {
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
		maj, min, _ := strings.Cut(d.majMin, ":")
		devName := d.devName
		if devName == "" {
			devName = d.name
		}
		switch {
		case d.disk != "":
			dir = dirs[d.disk] + "/" + d.name
			uevent = fmt.Sprintf("MAJOR=%s\nMINOR=%s\nDEVNAME=%s\nDEVTYPE=partition\nPARTN=1\nPARTNAME=%s\n", maj, min, devName, d.label)
			write(dir+"/partition", "1\n")
		case strings.HasPrefix(d.name, "dm-"):
			dir = "sys/devices/virtual/block/" + d.name
			uevent = fmt.Sprintf("MAJOR=%s\nMINOR=%s\nDEVNAME=%s\nDEVTYPE=disk\n", maj, min, devName)
			write(dir+"/dm/name", "root\n")
			for _, s := range d.slaves {
				link(dir+"/slaves/"+s, dirs[s])
			}
		default:
			dir = d.hardware + "/block/" + d.name
			uevent = fmt.Sprintf("MAJOR=%s\nMINOR=%s\nDEVNAME=%s\nDEVTYPE=disk\n", maj, min, devName)
			link("sys/block/"+d.name, dir)
		}
		dirs[d.name] = dir
		write(dir+"/uevent", uevent)
		link("sys/class/block/"+d.name, dir)
		link("sys/dev/block/"+d.majMin, dir)
	}
	write("proc/cmdline", cmdline+"\n")
	write("proc/self/mountinfo", "1 0 0:2 / / rw - rootfs rootfs rw\n"+
		"22 1 "+rootMajMin+" / / ro,relatime shared:1 - ext4 /dev/root ro\n"+
		"23 22 0:21 / /proc rw shared:12 - proc proc rw\n"+
		"30 22 8:4 / /var rw shared:13 - ext4 /dev/sda4 rw\n")
	return root
}

const pciDisk = "sys/devices/pci0000:00/0000:00:04.0/virtio1/host0/target0:0:0/0:0:0:0"

// sda is a Cairn disk: EFI, the two slots and state.
func sda() []fakeDevice {
	return []fakeDevice{
		{name: "sda", majMin: "8:0", hardware: pciDisk},
		{name: "sda1", majMin: "8:1", disk: "sda", label: "CAIRN_EFI"},
		{name: "sda2", majMin: "8:2", disk: "sda", label: "CAIRN_ROOT_A"},
		{name: "sda3", majMin: "8:3", disk: "sda", label: "CAIRN_ROOT_B"},
		{name: "sda4", majMin: "8:4", disk: "sda", label: "CAIRN_STATE"},
	}
}

const cmdline = "BOOT_IMAGE=/boot/vmlinuz console=ttyS0 ro quiet"

func TestDiscoverPlainPartitionRoot(t *testing.T) {
	root := fakeRoot(t, cmdline+" cairn.slot=B", "8:3", sda()...)
	boot, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	want := Boot{Slot: SlotB, Device: "/dev/sda3", OtherDevice: "/dev/sda2", Disk: "/dev/sda", RootDevice: "/dev/sda3"}
	if *boot != want {
		t.Errorf("Discover = %+v, want %+v", *boot, want)
	}
}

func TestDiscoverFollowsDmVerityToTheSlot(t *testing.T) {
	devs := append(sda(), fakeDevice{name: "dm-0", majMin: "253:0", slaves: []string{"sda2"}})
	root := fakeRoot(t, "cairn.slot=A "+cmdline, "253:0", devs...)
	boot, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	want := Boot{Slot: SlotA, Device: "/dev/sda2", OtherDevice: "/dev/sda3", Disk: "/dev/sda", RootDevice: "/dev/dm-0"}
	if *boot != want {
		t.Errorf("Discover = %+v, want %+v", *boot, want)
	}
}

func TestDiscoverOnEMMCWithVerityHashOnItsOwnPartition(t *testing.T) {
	mmc := "sys/devices/platform/soc/fe340000.mmc/mmc_host/mmc0/mmc0:0001"
	root := fakeRoot(t, cmdline+" cairn.slot=A", "253:0",
		fakeDevice{name: "mmcblk0", majMin: "179:0", hardware: mmc},
		fakeDevice{name: "mmcblk0p1", majMin: "179:1", disk: "mmcblk0", label: "CAIRN_BOOT"},
		fakeDevice{name: "mmcblk0p2", majMin: "179:2", disk: "mmcblk0", label: "CAIRN_ROOT_A"},
		fakeDevice{name: "mmcblk0p3", majMin: "179:3", disk: "mmcblk0", label: "CAIRN_ROOT_B"},
		fakeDevice{name: "mmcblk0p4", majMin: "179:4", disk: "mmcblk0", label: "VERITY_A"},
		fakeDevice{name: "dm-0", majMin: "253:0", slaves: []string{"mmcblk0p2", "mmcblk0p4"}},
	)
	boot, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	if boot.Device != "/dev/mmcblk0p2" || boot.OtherDevice != "/dev/mmcblk0p3" || boot.Disk != "/dev/mmcblk0" {
		t.Errorf("Discover = %+v", *boot)
	}
}

func TestDiscoverRefusesASlotMismatch(t *testing.T) {
	root := fakeRoot(t, cmdline+" cairn.slot=A", "8:3", sda()...)
	_, err := Discover(root)
	if !errors.Is(err, ErrSlotMismatch) {
		t.Fatalf("err = %v, want ErrSlotMismatch", err)
	}
	if !strings.Contains(err.Error(), "cairn.slot=A but / is mounted from CAIRN_ROOT_B (/dev/sda3)") {
		t.Errorf("error does not name both: %v", err)
	}
}

func TestDiscoverWithoutCmdlineTokenIsNotACairnDevice(t *testing.T) {
	root := fakeRoot(t, cmdline+" cairn.slotx=A", "8:2", sda()...)
	_, err := Discover(root)
	if !errors.Is(err, ErrNotCairnDevice) || !strings.Contains(err.Error(), "/proc/cmdline has no cairn.slot=") {
		t.Errorf("err = %v, want ErrNotCairnDevice saying /proc/cmdline has no cairn.slot=", err)
	}
	root = fakeRoot(t, cmdline+" cairn.slot=C", "8:2", sda()...)
	if _, err := Discover(root); err == nil || errors.Is(err, ErrNotCairnDevice) || !strings.Contains(err.Error(), `slot "C": want A or B`) {
		t.Errorf("cairn.slot=C: %v", err)
	}
}

func TestDiscoverFailsWhenTheOtherSlotIsMissing(t *testing.T) {
	devs := sda()
	devs = append(devs[:3], devs[4]) // no sda3, CAIRN_ROOT_B
	root := fakeRoot(t, cmdline+" cairn.slot=A", "8:2", devs...)
	_, err := Discover(root)
	if !errors.Is(err, ErrPartitionNotFound) || !strings.Contains(err.Error(), "no CAIRN_ROOT_B on /dev/sda") {
		t.Errorf("err = %v, want ErrPartitionNotFound naming CAIRN_ROOT_B and /dev/sda", err)
	}
}

// A device booted from its eMMC with the USB stick it was flashed from still
// plugged in sees every Cairn label twice.
func TestDiscoverPicksTheOtherSlotOnTheBootedDisk(t *testing.T) {
	usb := "sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host2/target2:0:0/2:0:0:0"
	stick := []fakeDevice{
		{name: "sda", majMin: "8:0", hardware: usb},
		{name: "sda2", majMin: "8:2", disk: "sda", label: "CAIRN_ROOT_A"},
		{name: "sda3", majMin: "8:3", disk: "sda", label: "CAIRN_ROOT_B"},
	}
	emmc := []fakeDevice{
		{name: "mmcblk0", majMin: "179:0", hardware: "sys/devices/platform/mmc0"},
		{name: "mmcblk0p2", majMin: "179:2", disk: "mmcblk0", label: "CAIRN_ROOT_A"},
		{name: "mmcblk0p3", majMin: "179:3", disk: "mmcblk0", label: "CAIRN_ROOT_B"},
	}
	// The stick sorts first, so a search that ignored the disk would take it.
	root := fakeRoot(t, cmdline+" cairn.slot=A", "179:2", append(stick, emmc...)...)
	boot, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	if boot.OtherDevice != "/dev/mmcblk0p3" || boot.Disk != "/dev/mmcblk0" {
		t.Errorf("Discover = %+v, want the other slot on /dev/mmcblk0", *boot)
	}
	if _, err := FindByLabel(root, "CAIRN_ROOT_B"); !errors.Is(err, ErrAmbiguousLabel) ||
		!strings.Contains(err.Error(), "/dev/mmcblk0p3, /dev/sda3") {
		t.Errorf("FindByLabel on two disks: %v", err)
	}
	// With the eMMC's other slot gone, the stick's is still not taken.
	root = fakeRoot(t, cmdline+" cairn.slot=A", "179:2", append(stick, emmc[:2]...)...)
	if _, err := Discover(root); !errors.Is(err, ErrPartitionNotFound) ||
		!strings.Contains(err.Error(), "only on /dev/sda3, another disk") {
		t.Errorf("other slot only on another disk: %v", err)
	}
}

func TestFindByLabel(t *testing.T) {
	root := fakeRoot(t, cmdline, "8:2", sda()...)
	if dev, err := FindByLabel(root, LabelState); err != nil || dev != "/dev/sda4" {
		t.Errorf("FindByLabel(CAIRN_STATE) = %q, %v", dev, err)
	}
	if _, err := FindByLabel(root, LabelCIData); !errors.Is(err, ErrPartitionNotFound) {
		t.Errorf("FindByLabel(CIDATA) = %v, want ErrPartitionNotFound", err)
	}
}
