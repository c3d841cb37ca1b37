package disk

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/partitions/grub/boottest"
)

// ubootQEMU is Debian's U-Boot for QEMU's arm64 virt machine (u-boot-qemu).
const ubootQEMU = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"

func qemuArm64(disk string, extra ...string) []string {
	args := []string{"-M", "virt", "-cpu", "cortex-a57", "-accel", "tcg", "-m", "1024", "-smp", "1",
		"-display", "none", "-serial", "stdio", "-monitor", "none", "-nic", "none", "-no-user-config",
		"-bios", ubootQEMU,
		"-drive", "if=none,id=disk,format=raw,file=" + disk,
		"-device", "virtio-blk-device,drive=disk"}
	return append(args, extra...)
}

// TestQemuArm64ImageBootsToTheAgent builds the qemu-aarch64 image from an
// arm64 Debian root (its maintainer scripts run under qemu-user-static) and
// boots it with Debian's U-Boot: boot.scr picks slot A, cairn-init checks
// and mounts it, systemd starts and cairn-agent reports the slot.
func TestQemuArm64ImageBootsToTheAgent(t *testing.T) {
	boottest.Require(t, "qemu-system-aarch64", "qemu-aarch64-static", ubootQEMU)
	r := newRelease(t, "qemu-aarch64")
	dir := t.TempDir()
	slotA := filepath.Join(dir, "a.img")
	r.slotImage(t, "1.0.0", slotA)
	out := filepath.Join(dir, "disk.img")
	start := time.Now()
	res, err := Build(context.Background(), Options{Board: r.board, SlotA: slotA, Out: out, SourceDateEpoch: testEpoch, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("disk image built in %v: %d bytes, %d mapped", time.Since(start).Round(time.Millisecond), res.Image.Bytes, res.MappedBytes)
	text, took := console(t, 10*time.Minute, agentUp, "qemu-system-aarch64", qemuArm64(out)...)
	t.Logf("booted to cairn-agent in %v", took.Round(time.Second))
	if m := agentUp.FindStringSubmatch(text); m[1] != "A" {
		t.Errorf("booted slot %s, want A", m[1])
	}
	for _, want := range []string{"cairn: booting slot A", "signature good", "first boot: creating the state filesystem"} {
		if !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(text) {
			t.Errorf("console lacks %q:\n%s", want, tailOf(text, 6000))
		}
	}
}

// TestFlippedSlotIsRefusedAndUBootFallsBack is the arm64 twin of
// TestFlippedSlotIsRefusedAndTheBootloaderFallsBack: B on trial with one
// try and a flipped byte, refused by cairn-init; boot.scr has spent B's
// try and boots A.
func TestFlippedSlotIsRefusedAndUBootFallsBack(t *testing.T) {
	boottest.Require(t, "qemu-system-aarch64", "qemu-aarch64-static", ubootQEMU)
	out := flippedBOnTrial(t, newRelease(t, "qemu-aarch64"))
	text, took := console(t, 12*time.Minute, agentUp, "qemu-system-aarch64", qemuArm64(out)...)
	checkFellBack(t, text, took)
}
