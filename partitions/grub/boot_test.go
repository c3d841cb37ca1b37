package grub_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
	"github.com/cairn-edge/cairn/partitions/grub"
	"github.com/cairn-edge/cairn/partitions/grub/boottest"
	"github.com/cairn-edge/cairn/partitions/grubenv"
)

const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// envCase is one boot: the environment before it, as slot states.
type envCase struct {
	name string
	a, b bootstate.SlotState
	// empty leaves the block without Cairn's variables: a damaged or lost
	// environment, where no slot qualifies.
	empty bool
}

func st(prio, tries, ok int) bootstate.SlotState {
	return bootstate.SlotState{Priority: prio, TriesLeft: tries, OK: ok}
}

var cases = []envCase{
	{name: "fresh", a: st(1, 0, 1), b: st(0, 0, 0)},
	{name: "B on trial with 3 tries", a: st(1, 0, 1), b: st(2, 3, 0)},
	{name: "B on trial with 1 try", a: st(1, 0, 1), b: st(2, 1, 0)},
	{name: "B out of tries falls back to A", a: st(1, 0, 1), b: st(2, 0, 0)},
	{name: "both committed tie goes to A", a: st(1, 0, 1), b: st(1, 0, 1)},
	{name: "B committed primary keeps its tries", a: st(1, 0, 1), b: st(2, 2, 1)},
	{name: "A on trial with 9 tries", a: st(2, 9, 0), b: st(1, 2, 1)},
	{name: "no bootable slot boots A and writes nothing", empty: true},
}

// block is the environment block an image build writes for c.
func (c envCase) block(t *testing.T) []byte {
	b := grubenv.NewBlock(grubenv.Size)
	if !c.empty {
		for _, v := range stateVars(c.a, c.b) {
			if err := b.Set(v.Name, v.Value); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b.Bytes()
}

func stateVars(a, b bootstate.SlotState) []bootstate.Var {
	var out []bootstate.Var
	for _, s := range []struct {
		name string
		st   bootstate.SlotState
	}{{"a", a}, {"b", b}} {
		out = append(out,
			bootstate.Var{Name: "cairn_" + s.name + "_priority", Value: fmt.Sprint(s.st.Priority)},
			bootstate.Var{Name: "cairn_" + s.name + "_tries", Value: fmt.Sprint(s.st.TriesLeft)},
			bootstate.Var{Name: "cairn_" + s.name + "_ok", Value: fmt.Sprint(s.st.OK)})
	}
	return out
}

// memDev is a block held in memory, for running bootstate.Boot on a copy.
type memDev struct{ buf []byte }

func (m *memDev) ReadAt(p []byte, off int64) (int, error)  { return copy(p, m.buf[off:]), nil }
func (m *memDev) WriteAt(p []byte, off int64) (int, error) { return copy(m.buf[off:], p), nil }
func (m *memDev) Sync() error                              { return nil }

// expect runs the Go twin of grub.cfg on a copy of block: the slot it
// boots and the block it leaves. No bootable slot boots A and writes
// nothing, the rule docs/boards.md gives for a lost environment.
func expect(t *testing.T, block []byte) (partitions.Slot, []byte) {
	dev := &memDev{buf: bytes.Clone(block)}
	d, err := bootstate.Boot(grubenv.New(dev, int64(len(block))))
	if errors.Is(err, bootstate.ErrNoBootableSlot) {
		return partitions.SlotA, block
	}
	if err != nil {
		t.Fatalf("bootstate.Boot: %v", err)
	}
	return d.Slot, dev.buf
}

// TestGrubBootsTheSlotBootstateChooses boots the real GRUB EFI binary with
// OVMF under QEMU for each environment and checks that the slot whose
// kernel and initramfs ran, and the block GRUB wrote back, are those of
// bootstate.Boot.
func TestGrubBootsTheSlotBootstateChooses(t *testing.T) {
	boottest.Require(t, "qemu-system-x86_64", "grub-mkstandalone", "mkfs.vfat", "mmd", "mcopy",
		"mkfs.ext4", ovmfCode, ovmfVars, filepath.Join(grub.DefaultModuleDir, "loadenv.mod"))
	ctx := context.Background()
	disk, envOff := buildDisk(t)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			block := c.block(t)
			wantSlot, wantBlock := expect(t, block)
			writeAt(t, disk, envOff, block)
			vars := filepath.Join(t.TempDir(), "OVMF_VARS.fd")
			copyFile(t, ovmfVars, vars)

			boot := boottest.QEMU(ctx, t, 4*time.Minute, "qemu-system-x86_64",
				"-M", "q35", "-accel", "tcg", "-m", "512", "-smp", "1",
				"-display", "none", "-serial", "stdio", "-monitor", "none", "-nic", "none", "-no-reboot",
				"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode,
				"-drive", "if=pflash,format=raw,unit=1,file="+vars,
				"-drive", "if=none,id=disk,format=raw,file="+disk,
				"-device", "virtio-blk-pci,drive=disk")
			t.Logf("booted slot %s in %v", boot.CmdlineSlot, boot.Elapsed.Round(time.Millisecond))

			if boot.CmdlineSlot != string(wantSlot) || boot.InitrdSlot != string(wantSlot) {
				t.Errorf("cairn.slot=%s from slot %s's initramfs, bootstate.Boot chose %s", boot.CmdlineSlot, boot.InitrdSlot, wantSlot)
			}
			got := readAt(t, disk, envOff, grubenv.Size)
			gotBlock, err := grubenv.Parse(got)
			if err != nil {
				t.Fatalf("GRUB left a block grubenv cannot parse: %v", err)
			}
			want, err := grubenv.Parse(wantBlock)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(gotBlock.Vars(), want.Vars()) {
				t.Errorf("GRUB left\n%v\nbootstate.Boot leaves\n%v", gotBlock.Vars(), want.Vars())
			}
			// The rule rests on single-byte edits: GRUB must edit in place
			// exactly as grubenv does, not move the line or the padding.
			if !bytes.Equal(got, wantBlock) {
				t.Errorf("GRUB's block differs from grubenv's byte for byte:\n%q\n%q", got, wantBlock)
			}
		})
	}
}

// buildDisk writes an x86_64-uefi disk image with the GRUB EFI binary and a
// grubenv on the ESP and a kernel with a slot-marked initramfs in each slot.
// It returns the image and the byte offset of the grubenv's block in it.
func buildDisk(t *testing.T) (string, int64) {
	start := time.Now()
	dir := t.TempDir()
	layout, err := partitions.LoadLayout("x86_64-uefi")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := layout.Plan(layout.MinDiskBytes(false), false)
	if err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk.img")
	if err := partitions.WriteImage(disk, plan); err != nil {
		t.Fatal(err)
	}

	efi := filepath.Join(dir, "BOOTX64.EFI")
	opts := grub.Options{Layout: layout, Console: "ttyS0,115200", Cmdline: "quiet panic=-1"}
	if err := grub.BuildEFI(context.Background(), opts, efi); err != nil {
		t.Fatal(err)
	}
	esp, _ := plan.Partition(partitions.LabelEFI)
	espImg := filepath.Join(dir, "esp.fat")
	boottest.Run(t, "mkfs.vfat", "-C", "-n", "CAIRN_EFI", espImg, fmt.Sprint(esp.Bytes/1024))
	boottest.Run(t, "mmd", "-i", espImg, "::EFI", "::EFI/BOOT", "::EFI/cairn")
	boottest.Run(t, "mcopy", "-i", espImg, efi, "::"+grub.BootPath)
	// A marker block, unlike any case's, finds the file's sectors below.
	marker := grubenv.NewBlock(grubenv.Size)
	if err := marker.Set("cairn_marker", "where-is-the-grubenv"); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(dir, "grubenv")
	if err := os.WriteFile(envFile, marker.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	boottest.Run(t, "mcopy", "-i", espImg, envFile, "::"+grub.EnvPath)
	espStart := int64(esp.FirstLBA) * partitions.SectorSize
	boottest.CopyInto(t, disk, espStart, espImg)
	envOff := findBlock(t, espImg, marker.Bytes()) + espStart

	vmlinuz := boottest.Kernel(t, "amd64")
	for _, s := range partitions.Slots {
		p, _ := plan.Partition(s.Label())
		fs := boottest.SlotFS(t, vmlinuz, boottest.Initrd(t, "amd64", string(s)), 64<<20)
		boottest.CopyInto(t, disk, int64(p.FirstLBA)*partitions.SectorSize, fs)
	}
	t.Logf("built the x86_64 disk in %v", time.Since(start).Round(time.Millisecond))
	return disk, envOff
}

// findBlock returns the offset of the sector-aligned block in img.
func findBlock(t *testing.T, img string, block []byte) int64 {
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	found := int64(-1)
	for off := 0; off+len(block) <= len(data); off += partitions.SectorSize {
		if bytes.Equal(data[off:off+len(block)], block) {
			if found >= 0 {
				t.Fatalf("the grubenv block is at offsets %d and %d of %s", found, off, img)
			}
			found = int64(off)
		}
	}
	if found < 0 {
		t.Fatalf("the grubenv block is not in %s", img)
	}
	return found
}

func writeAt(t *testing.T, path string, off int64, data []byte) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil {
		t.Fatal(err)
	}
	return buf
}

func copyFile(t *testing.T, src, dst string) {
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
