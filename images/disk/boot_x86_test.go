package disk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/partitions/grub/boottest"
)

const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// agentUp is what cairn-boot-report.service prints once systemd is up:
// cairn-agent status with the booted slot.
var agentUp = regexp.MustCompile(`booted slot ([AB]); boot env`)

// swtpm starts a TPM emulator for one VM boot and returns the chardev
// arguments for QEMU.
func swtpm(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "swtpm.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "swtpm", "socket", "--tpm2", "--tpmstate", "dir="+dir, "--ctrl", "type=unixio,path="+sock, "--flags", "startup-clear")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return []string{"-chardev", "socket,id=chrtpm,path=" + sock, "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0"}
}

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

func TestQemuX86ImageBootsToTheAgentWithTPM(t *testing.T) {
	r := newRelease(t, "qemu-x86_64")
	dir := t.TempDir()
	slotA := filepath.Join(dir, "a.img")
	r.slotImage(t, "1.0.0", slotA)
	out := filepath.Join(dir, "disk.img")
	start := time.Now()
	res, err := Build(context.Background(), Options{Board: r.board, SlotA: slotA, Out: out, SourceDateEpoch: testEpoch,
		UserData: []byte("#cloud-config\n"), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("disk image built in %v: %d bytes, %d mapped, zst %d bytes", time.Since(start).Round(time.Millisecond), res.Image.Bytes, res.MappedBytes, res.Zstd.Bytes)
	boottest.Require(t, "qemu-system-x86_64", "swtpm", ovmfCode)
	text, took := console(t, 8*time.Minute, agentUp, "qemu-system-x86_64", qemuX86(t, out, swtpm(t)...)...)
	t.Logf("booted to cairn-agent in %v", took.Round(time.Second))
	if m := agentUp.FindStringSubmatch(text); m[1] != "A" {
		t.Errorf("booted slot %s, want A", m[1])
	}
	for _, want := range []string{"signature good", "measured slot A into PCR 13", "first boot: creating the state filesystem"} {
		if !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(text) {
			t.Errorf("console lacks %q:\n%s", want, tailOf(text, 6000))
		}
	}
}
