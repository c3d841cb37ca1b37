package disk

import (
	"testing"

	"github.com/cairn-edge/cairn/boards"
)

func TestIPXEScripts(t *testing.T) {
	b, err := boards.Load("qemu-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ disk, want string }{
		{"", "#!ipxe\n# Cairn qemu-x86_64 release 1.2.0: fetches the slot image and runs it from RAM.\n" +
			"kernel http://10.0.2.2:8080/c/vmlinuz initrd=initrd ro console=ttyS0,115200 panic=10 cairn.pxe=diskless cairn.slot_url=http://10.0.2.2:8080/c/slot.img.zst\n" +
			"initrd http://10.0.2.2:8080/c/initrd\nboot\n"},
		{"/dev/sda", "#!ipxe\n# Cairn qemu-x86_64 release 1.2.0: fetches the slot image and installs it onto /dev/sda and reboots into it.\n" +
			"kernel http://10.0.2.2:8080/c/vmlinuz initrd=initrd ro console=ttyS0,115200 panic=10 cairn.install=/dev/sda cairn.boot_url=http://10.0.2.2:8080/c/boot.img cairn.slot_url=http://10.0.2.2:8080/c/slot.img.zst\n" +
			"initrd http://10.0.2.2:8080/c/initrd\nboot\n"},
	} {
		got, err := IPXEScript(b, "1.2.0", "http://10.0.2.2:8080/c", c.disk)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("install disk %q:\n%s\nwant\n%s", c.disk, got, c.want)
		}
	}
}

func TestBuildPXERefusesBadOptions(t *testing.T) {
	b, err := boards.Load("qemu-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []PXEOptions{
		{Board: b, Slot: "slot.img", Out: t.TempDir() + "/x", BaseURL: "tftp://server/"},
		{Board: b, Slot: "slot.img", Out: t.TempDir() + "/x", BaseURL: "http://server/", InstallDisk: "sda"},
	} {
		if _, err := BuildPXE(t.Context(), o); err == nil {
			t.Errorf("BuildPXE(%+v) accepted", o)
		}
	}
}
