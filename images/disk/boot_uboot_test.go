package disk

import (
	"testing"
	"time"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/partitions/grub/boottest"
)

// qemuArm64 runs disk on QEMU's arm64 virt machine with the board's
// machine firmware (Debian's U-Boot, u-boot-qemu) as -bios.
func qemuArm64(bios, disk string, extra ...string) []string {
	args := []string{"-M", "virt", "-cpu", "cortex-a57", "-accel", "tcg", "-m", "1024", "-smp", "1",
		"-display", "none", "-serial", "stdio", "-monitor", "none", "-nic", "none", "-no-user-config",
		"-bios", bios,
		"-drive", "if=none,id=disk,format=raw,file=" + disk,
		"-device", "virtio-blk-device,drive=disk"}
	return append(args, extra...)
}

// The qemu-aarch64 image booting to the agent is scenario 8 of tests/e2e.

// TestFlippedSlotIsRefusedAndUBootFallsBack is the arm64 twin of
// TestFlippedSlotIsRefusedAndTheBootloaderFallsBack: B on trial with one
// try and a flipped byte, refused by cairn-init; boot.scr has spent B's
// try and boots A.
func TestFlippedSlotIsRefusedAndUBootFallsBack(t *testing.T) {
	b, err := boards.Load("qemu-aarch64")
	if err != nil {
		t.Fatal(err)
	}
	boottest.Require(t, "qemu-system-aarch64", "qemu-aarch64-static", b.MachineFirmware())
	out := flippedBOnTrial(t, newRelease(t, b.Name))
	text, took := console(t, 12*time.Minute, agentUp, "qemu-system-aarch64", qemuArm64(b.MachineFirmware(), out)...)
	checkFellBack(t, text, took)
}
