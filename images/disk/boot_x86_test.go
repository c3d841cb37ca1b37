package disk

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// agentUp is what cairn-boot-report.service prints once systemd is up:
// cairn-agent status with the booted slot.
var agentUp = regexp.MustCompile(`booted slot ([AB]); boot env`)

// qemuX86 runs OVMF with the disk image disk as its first boot device;
// disk "" leaves the machine without one.
func qemuX86(t *testing.T, disk string, extra ...string) []string {
	vars := filepath.Join(t.TempDir(), "OVMF_VARS.fd")
	data, err := os.ReadFile(ovmfVars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vars, data, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-accel", "tcg", "-M", "q35", "-m", "2048", "-smp", "1", "-nographic", "-no-user-config", "-nodefaults",
		"-serial", "stdio", "-net", "none",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + ovmfCode,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars}
	if disk != "" {
		args = append(args, "-drive", "if=none,id=disk,format=raw,file="+disk, "-device", "virtio-blk-pci,drive=disk,bootindex=1")
	}
	return append(args, extra...)
}

// The qemu-x86_64 image booting to the agent, measured into the TPM, is
// scenario 1 of tests/e2e.
