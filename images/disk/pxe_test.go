package disk

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/grub/boottest"
)

// agentRan is cairn-agent writing to the console, whatever it made of a
// boot without a slot partition.
var agentRan = regexp.MustCompile(`cairn-agent\[\d+\]: |booted slot [AB]; boot env`)

// pxeBundle builds the release's slot image and its PXE bundle, served
// over HTTP to QEMU's user network, where the host is 10.0.2.2.
func pxeBundle(t *testing.T, installDisk string) (string, *PXEResult) {
	t.Helper()
	boottest.Require(t, "qemu-system-x86_64", ovmfCode, "debugfs")
	r := newRelease(t, "qemu-x86_64")
	dir := t.TempDir()
	slot := filepath.Join(dir, "slot.img")
	r.slotImage(t, "1.0.0", slot)
	out := filepath.Join(dir, "pxe")
	var files http.Handler = http.FileServer(http.Dir(out))
	srv := httptest.NewServer(files)
	t.Cleanup(srv.Close)
	base := "http://10.0.2.2:" + srv.URL[strings.LastIndex(srv.URL, ":")+1:] + "/"
	start := time.Now()
	res, err := BuildPXE(context.Background(), PXEOptions{Board: r.board, Slot: slot, Out: out, BaseURL: base,
		InstallDisk: installDisk, SourceDateEpoch: testEpoch, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PXE bundle built in %v", time.Since(start).Round(time.Millisecond))
	for _, f := range res.Files {
		t.Logf("  %s %d bytes", filepath.Base(f.Path), f.Bytes)
	}
	return out, res
}

// pxeNet boots from QEMU's user network, whose TFTP server hands out the
// script. The CPU has RDRAND, which the kernel trusts to seed its random
// number generator at once: without it, under TCG getrandom blocks for
// minutes and with it the DHCP client.
func pxeNet(dir, script string) []string {
	return []string{"-cpu", "max", "-netdev", "user,id=n0,tftp=" + dir + ",bootfile=" + script, "-device", "virtio-net-pci,netdev=n0,bootindex=2"}
}

// TestPXEDisklessRunsTheSlotFromRAM boots a diskless machine with OVMF's
// iPXE from the bundle: cairn-init gets a DHCP lease, fetches the slot
// image into RAM, checks its signature, runs it under dm-verity on a loop
// device with /var in RAM, and systemd runs cairn-agent status.
func TestPXEDisklessRunsTheSlotFromRAM(t *testing.T) {
	dir, _ := pxeBundle(t, "")
	text, took := console(t, 10*time.Minute, agentRan, "qemu-system-x86_64", qemuX86(t, "", pxeNet(dir, PXEDiskless)...)...)
	t.Logf("PXE boot to cairn-agent status in %v", took.Round(time.Second))
	for _, want := range []string{`cairn-init: network: eth0 is 10\.0\.2\.15`, `cairn-init: fetched http://10\.0\.2\.2:\d+/slot\.img\.zst: 1 GiB`,
		`slot pxe: release 1\.0\.0 for qemu-x86_64, signature good`, `no CAIRN_STATE partition: /var is in RAM`,
		`root /dev/mapper/cairn-root read-only from RAM`} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("console lacks %q:\n%s", want, tailOf(text, 8000))
		}
	}
}

// TestPXEInstallWritesTheDiskAndBootsFromIt boots a machine with an empty
// disk from the bundle's install script: cairn-init writes the layout and
// slot A onto the disk, reads it back and reboots; OVMF then boots the disk,
// which reaches cairn-agent in slot A with the state made on first boot.
func TestPXEInstallWritesTheDiskAndBootsFromIt(t *testing.T) {
	dir, _ := pxeBundle(t, "/dev/vda")
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 4<<30); err != nil {
		t.Fatal(err)
	}
	text, took := console(t, 15*time.Minute, agentUp, "qemu-system-x86_64", qemuX86(t, disk, pxeNet(dir, PXEInstall)...)...)
	t.Logf("PXE install, reboot and boot from disk to cairn-agent in %v", took.Round(time.Second))
	installed := regexp.MustCompile(`cairn-init: installed release 1\.0\.0 on /dev/vda in \S+, verified; rebooting into it`).FindStringIndex(text)
	if installed == nil {
		t.Fatalf("console does not show the install:\n%s", tailOf(text, 8000))
	}
	after := text[installed[1]:]
	for _, want := range []string{`cairn: booting slot A`, `first boot: creating the state filesystem`} {
		if !strings.Contains(after, want) && !regexp.MustCompile(want).MatchString(after) {
			t.Errorf("boot after the install lacks %q:\n%s", want, tailOf(after, 6000))
		}
	}
	if m := agentUp.FindStringSubmatch(after); m == nil || m[1] != "A" {
		t.Errorf("boot from the installed disk did not reach cairn-agent in slot A:\n%s", tailOf(after, 6000))
	}
	parts, err := partitions.ReadTable(disk)
	if err != nil {
		t.Fatal(err)
	}
	if last := parts[len(parts)-1]; last.Label != partitions.LabelState || last.LastLBA != 4<<30/512-2048-1 {
		t.Errorf("installed table ends with %s at sector %d, want %s to the disk's end", last.Label, last.LastLBA, partitions.LabelState)
	}
	if v := output(t, "sgdisk", "-v", disk); !strings.Contains(v, "No problems found.") {
		t.Errorf("sgdisk -v on the installed disk:\n%s", v)
	}
}
