package partitions

import (
	"errors"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/partitions/fakedevice"
)

const cmdline = "BOOT_IMAGE=/boot/vmlinuz console=ttyS0 ro quiet"

func TestDiscoverPlainPartitionRoot(t *testing.T) {
	root := fakedevice.Root(t, cmdline+" cairn.slot=B", "8:3", fakedevice.SDA()...)
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
	devs := append(fakedevice.SDA(), fakedevice.Device{Name: "dm-0", MajMin: "253:0", Slaves: []string{"sda2"}})
	root := fakedevice.Root(t, "cairn.slot=A "+cmdline, "253:0", devs...)
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
	root := fakedevice.Root(t, cmdline+" cairn.slot=A", "253:0",
		fakedevice.Device{Name: "mmcblk0", MajMin: "179:0", Hardware: mmc},
		fakedevice.Device{Name: "mmcblk0p1", MajMin: "179:1", Disk: "mmcblk0", Label: "CAIRN_BOOT"},
		fakedevice.Device{Name: "mmcblk0p2", MajMin: "179:2", Disk: "mmcblk0", Label: "CAIRN_ROOT_A"},
		fakedevice.Device{Name: "mmcblk0p3", MajMin: "179:3", Disk: "mmcblk0", Label: "CAIRN_ROOT_B"},
		fakedevice.Device{Name: "mmcblk0p4", MajMin: "179:4", Disk: "mmcblk0", Label: "VERITY_A"},
		fakedevice.Device{Name: "dm-0", MajMin: "253:0", Slaves: []string{"mmcblk0p2", "mmcblk0p4"}},
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
	root := fakedevice.Root(t, cmdline+" cairn.slot=A", "8:3", fakedevice.SDA()...)
	_, err := Discover(root)
	if !errors.Is(err, ErrSlotMismatch) {
		t.Fatalf("err = %v, want ErrSlotMismatch", err)
	}
	if !strings.Contains(err.Error(), "cairn.slot=A but / is mounted from CAIRN_ROOT_B (/dev/sda3)") {
		t.Errorf("error does not name both: %v", err)
	}
}

func TestDiscoverWithoutCmdlineTokenIsNotACairnDevice(t *testing.T) {
	root := fakedevice.Root(t, cmdline+" cairn.slotx=A", "8:2", fakedevice.SDA()...)
	_, err := Discover(root)
	if !errors.Is(err, ErrNotCairnDevice) || !strings.Contains(err.Error(), "/proc/cmdline has no cairn.slot=") {
		t.Errorf("err = %v, want ErrNotCairnDevice saying /proc/cmdline has no cairn.slot=", err)
	}
	root = fakedevice.Root(t, cmdline+" cairn.slot=C", "8:2", fakedevice.SDA()...)
	if _, err := Discover(root); err == nil || errors.Is(err, ErrNotCairnDevice) || !strings.Contains(err.Error(), `slot "C": want A or B`) {
		t.Errorf("cairn.slot=C: %v", err)
	}
}

func TestDiscoverFailsWhenTheOtherSlotIsMissing(t *testing.T) {
	devs := fakedevice.SDA()
	devs = append(devs[:3], devs[4]) // no sda3, CAIRN_ROOT_B
	root := fakedevice.Root(t, cmdline+" cairn.slot=A", "8:2", devs...)
	_, err := Discover(root)
	if !errors.Is(err, ErrPartitionNotFound) || !strings.Contains(err.Error(), "no CAIRN_ROOT_B on /dev/sda") {
		t.Errorf("err = %v, want ErrPartitionNotFound naming CAIRN_ROOT_B and /dev/sda", err)
	}
}

// A device booted from its eMMC with the USB stick it was flashed from still
// plugged in sees every Cairn label twice.
func TestDiscoverPicksTheOtherSlotOnTheBootedDisk(t *testing.T) {
	usb := "sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host2/target2:0:0/2:0:0:0"
	stick := []fakedevice.Device{
		{Name: "sda", MajMin: "8:0", Hardware: usb},
		{Name: "sda2", MajMin: "8:2", Disk: "sda", Label: "CAIRN_ROOT_A"},
		{Name: "sda3", MajMin: "8:3", Disk: "sda", Label: "CAIRN_ROOT_B"},
	}
	emmc := []fakedevice.Device{
		{Name: "mmcblk0", MajMin: "179:0", Hardware: "sys/devices/platform/mmc0"},
		{Name: "mmcblk0p2", MajMin: "179:2", Disk: "mmcblk0", Label: "CAIRN_ROOT_A"},
		{Name: "mmcblk0p3", MajMin: "179:3", Disk: "mmcblk0", Label: "CAIRN_ROOT_B"},
	}
	// The stick sorts first, so a search that ignored the disk would take it.
	root := fakedevice.Root(t, cmdline+" cairn.slot=A", "179:2", append(stick, emmc...)...)
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
	root = fakedevice.Root(t, cmdline+" cairn.slot=A", "179:2", append(stick, emmc[:2]...)...)
	if _, err := Discover(root); !errors.Is(err, ErrPartitionNotFound) ||
		!strings.Contains(err.Error(), "only on /dev/sda3, another disk") {
		t.Errorf("other slot only on another Disk: %v", err)
	}
}

func TestFindByLabel(t *testing.T) {
	root := fakedevice.Root(t, cmdline, "8:2", fakedevice.SDA()...)
	if dev, err := FindByLabel(root, LabelState); err != nil || dev != "/dev/sda4" {
		t.Errorf("FindByLabel(CAIRN_STATE) = %q, %v", dev, err)
	}
	if _, err := FindByLabel(root, LabelCIData); !errors.Is(err, ErrPartitionNotFound) {
		t.Errorf("FindByLabel(CIDATA) = %v, want ErrPartitionNotFound", err)
	}
}
