package partitions

import (
	"errors"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/partitions/fakedevice"
)

func TestDiscoverDisklessFindsTheLoopDeviceUnderDmVerity(t *testing.T) {
	root := fakedevice.Root(t, fakedevice.NetbootCmdline, "253:0", fakedevice.Netboot()...)
	boot, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	want := Boot{Slot: SlotNetwork, Device: "/dev/loop0", RootDevice: "/dev/dm-0", Diskless: true,
		SlotURL: fakedevice.NetbootSlotURL}
	if *boot != want {
		t.Errorf("Discover = %+v, want %+v", *boot, want)
	}
}

func TestDiscoverDisklessWithRootOnTheLoopDevice(t *testing.T) {
	root := fakedevice.Root(t, fakedevice.NetbootCmdline, "7:0", fakedevice.Netboot()...)
	boot, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	if !boot.Diskless || boot.Device != "/dev/loop0" || boot.RootDevice != "/dev/loop0" || boot.OtherDevice != "" || boot.Disk != "" {
		t.Errorf("Discover = %+v, want diskless on /dev/loop0", *boot)
	}
}

// A device with a local disk (its state partition, or Cairn slots from an
// earlier install) that booted diskless runs from the network all the
// same: cairn-init ignores cairn.slot= when cairn.pxe=diskless is set.
func TestDiscoverDisklessIgnoresTheLocalDisk(t *testing.T) {
	devs := append(fakedevice.SDA(), fakedevice.Netboot()...)
	root := fakedevice.Root(t, fakedevice.NetbootCmdline+" cairn.slot=A", "253:0", devs...)
	boot, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	if !boot.Diskless || boot.Slot != SlotNetwork || boot.Device != "/dev/loop0" || boot.OtherDevice != "" {
		t.Errorf("Discover = %+v, want diskless on /dev/loop0, no other slot", *boot)
	}
}

func TestDiscoverDisklessRefusesARootNotOnALoopDevice(t *testing.T) {
	netboot := fakedevice.Netboot()
	for _, tc := range []struct {
		name   string
		rootMM string
		devs   []fakedevice.Device
		want   string
	}{
		{"/ on a slot partition", "8:2", fakedevice.SDA(),
			"/ is mounted from /dev/sda2: neither a loop device nor a device-mapper device over one"},
		{"/ on dm-verity over a partition", "253:0",
			append(fakedevice.SDA(), fakedevice.Device{Name: "dm-0", MajMin: "253:0", Slaves: []string{"sda2"}}),
			"/ is mounted from /dev/dm-0 over /dev/sda2"},
		{"/ on dm over two devices", "253:0", []fakedevice.Device{
			netboot[0], {Name: "loop1", MajMin: "7:1", Backing: "/run/hash.img"},
			{Name: "dm-0", MajMin: "253:0", Slaves: []string{"loop0", "loop1"}}},
			"a device-mapper device over 2 devices (loop0, loop1), want one loop device"},
		{"/ on a detached loop device", "253:0", []fakedevice.Device{
			{Name: "loop0", MajMin: "7:0"}, netboot[1]},
			"/ is mounted from /dev/dm-0 over /dev/loop0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakedevice.Root(t, fakedevice.NetbootCmdline, tc.rootMM, tc.devs...)
			_, err := Discover(root)
			if !errors.Is(err, ErrDisklessRoot) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrDisklessRoot saying %q", err, tc.want)
			}
		})
	}
}

func TestDiscoverRefusesAnUnknownNetworkBootMode(t *testing.T) {
	root := fakedevice.Root(t, cmdline+" cairn.pxe=ramdisk cairn.slot=A", "253:0", fakedevice.Netboot()...)
	_, err := Discover(root)
	if !errors.Is(err, ErrNotCairnDevice) || !strings.Contains(err.Error(), "cairn.pxe=ramdisk, want diskless") {
		t.Errorf("err = %v, want ErrNotCairnDevice naming cairn.pxe=ramdisk", err)
	}
}

// The last cairn.pxe= wins, as for every kernel parameter.
func TestDiscoverTakesTheLastNetworkBootMode(t *testing.T) {
	root := fakedevice.Root(t, cmdline+" cairn.pxe=ramdisk cairn.pxe=diskless", "253:0", fakedevice.Netboot()...)
	boot, err := Discover(root)
	if err != nil || !boot.Diskless || boot.SlotURL != "" {
		t.Errorf("Discover = %+v, %v; want diskless without a slot URL", boot, err)
	}
}
