package disk

import (
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

// The qemu-aarch64 image booting to the agent is scenario 8 of tests/e2e.

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
