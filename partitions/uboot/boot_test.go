package uboot_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
	"github.com/cairn-edge/cairn/partitions/grub/boottest"
	"github.com/cairn-edge/cairn/partitions/uboot"
	"github.com/cairn-edge/cairn/partitions/ubootenv"
)

const ubootBin = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"

// envCase is one boot: how the environment got to its state before it.
type envCase struct {
	name string
	// sets are fw_setenv-style writes after the image build's format, each
	// to the copy that is not current, so the flags advance as on a device.
	sets []bootstate.Var
	// tear damages copies after the writes, as a power cut in the middle of
	// a write would have: 1 tears the current copy, so the other one must
	// be used; 2 tears both, a lost environment.
	tear int
}

func set(name string, v int) bootstate.Var { return bootstate.Var{Name: name, Value: strconv.Itoa(v)} }

var cases = []envCase{
	{name: "fresh"},
	{name: "B on trial with 3 tries", sets: trialB(3)},
	{name: "B on trial with 1 try", sets: trialB(1)},
	{name: "B out of tries falls back to A", sets: trialB(0)},
	{name: "both committed tie goes to A", sets: []bootstate.Var{set("cairn_b_ok", 1), set("cairn_b_priority", 1)}},
	{name: "B committed primary keeps its tries", sets: append(trialB(2), set("cairn_b_ok", 1))},
	// The newest copy (B on trial) is torn: U-Boot must read the one
	// before it, where B is still disabled, and boot A.
	{name: "torn newest copy is ignored", sets: trialB(3), tear: 1},
	{name: "no valid copy boots A and writes nothing", sets: trialB(3), tear: 2},
	{name: "A on trial with 9 tries", sets: []bootstate.Var{
		set("cairn_b_ok", 1), set("cairn_b_priority", 1), // B committed
		set("cairn_a_priority", 0), set("cairn_a_ok", 0), set("cairn_a_tries", 9), set("cairn_a_priority", 2),
	}},
	// Copy 2 is current here, so the write goes to copy 1.
	{name: "B on trial from copy 2", sets: append(trialB(3), set("cairn_b_tries", 2))},
}

// trialB is what SetTrial(B, n) writes on a fresh disk (n=0 leaves a slot
// that ran out of tries).
func trialB(n int) []bootstate.Var {
	return []bootstate.Var{set("cairn_b_tries", n), set("cairn_b_priority", 2)}
}

// memDev is a disk region held in memory, for running bootstate.Boot on a
// copy of the environment.
type memDev struct{ buf []byte }

func (m *memDev) ReadAt(p []byte, off int64) (int, error)  { return copy(p, m.buf[off:]), nil }
func (m *memDev) WriteAt(p []byte, off int64) (int, error) { return copy(m.buf[off:], p), nil }
func (m *memDev) Sync() error                              { return nil }

// expect runs the Go twin of boot.cmd on a copy of both env copies: the
// slot it boots and the copies it leaves. No bootable slot, or no valid
// copy, boots A and writes nothing, the rule docs/boards.md gives for a lost
// environment.
func expect(t *testing.T, copies [2][]byte) (partitions.Slot, [2][]byte) {
	dev := &memDev{buf: append(bytes.Clone(copies[0]), copies[1]...)}
	regions := []ubootenv.Region{{Dev: dev, Size: uboot.EnvCopySize}, {Dev: dev, Offset: uboot.EnvCopySize, Size: uboot.EnvCopySize}}
	d, err := bootstate.Boot(ubootenv.New(regions, true))
	if errors.Is(err, bootstate.ErrNoBootableSlot) || errors.Is(err, ubootenv.ErrNoValidCopy) {
		return partitions.SlotA, copies
	}
	if err != nil {
		t.Fatalf("bootstate.Boot: %v", err)
	}
	return d.Slot, [2][]byte{dev.buf[:uboot.EnvCopySize], dev.buf[uboot.EnvCopySize:]}
}

// TestUBootBootsTheSlotBootstateChooses boots Debian's qemu_arm64 U-Boot
// with boot.scr under QEMU for each environment and checks that the slot
// whose kernel and initramfs ran, and both environment copies U-Boot left,
// are those of bootstate.Boot over ubootenv.
func TestUBootBootsTheSlotBootstateChooses(t *testing.T) {
	boottest.Require(t, "qemu-system-aarch64", "mkimage", "mkfs.vfat", "mcopy", "mkfs.ext4", "fw_printenv", ubootBin)
	ctx := context.Background()
	disk, regions, bootBytes := buildDisk(t)
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range regions {
		regions[i].Dev = f
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prepare(t, regions, c)
			before := readCopies(t, regions)
			wantSlot, want := expect(t, before)

			boot := boottest.QEMU(ctx, t, 4*time.Minute, "qemu-system-aarch64",
				"-M", "virt", "-cpu", "cortex-a57", "-accel", "tcg", "-m", "512", "-smp", "1",
				"-display", "none", "-serial", "stdio", "-monitor", "none", "-nic", "none", "-no-reboot",
				"-bios", ubootBin,
				"-drive", "if=none,id=disk,format=raw,file="+disk,
				"-device", "virtio-blk-device,drive=disk")
			t.Logf("booted slot %s in %v", boot.CmdlineSlot, boot.Elapsed.Round(time.Millisecond))

			if boot.CmdlineSlot != string(wantSlot) || boot.InitrdSlot != string(wantSlot) {
				t.Errorf("cairn.slot=%s from slot %s's initramfs, bootstate.Boot chose %s", boot.CmdlineSlot, boot.InitrdSlot, wantSlot)
			}
			got := readCopies(t, regions)
			for i := range got {
				gv, gf, gerr := ubootenv.Decode(got[i], true)
				wv, wf, werr := ubootenv.Decode(want[i], true)
				if fmt.Sprint(gv, gf, gerr) != fmt.Sprint(wv, wf, werr) {
					t.Errorf("copy %d: U-Boot left %v flag %d (%v), bootstate.Boot leaves %v flag %d (%v)", i+1, gv, gf, gerr, wv, wf, werr)
				}
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("copy %d: U-Boot's bytes differ from ubootenv's", i+1)
				}
			}
			if c.tear < 2 {
				checkDeviceView(t, got, bootBytes)
			}
		})
	}
}

// prepare formats the environment as an image build does and replays the
// case's writes through ubootenv, as the agent would have made them.
func prepare(t *testing.T, regions []ubootenv.Region, c envCase) {
	vars := map[string]string{}
	for _, v := range bootstate.InitialVars(partitions.SlotA) {
		vars[v.Name] = v.Value
	}
	if err := ubootenv.Format(regions, true, vars); err != nil {
		t.Fatal(err)
	}
	env := ubootenv.New(regions, true)
	for _, v := range c.sets {
		if err := env.Set(v.Name, v.Value); err != nil {
			t.Fatal(err)
		}
	}
	copies := readCopies(t, regions)
	_, f0, _ := ubootenv.Decode(copies[0], true)
	_, f1, _ := ubootenv.Decode(copies[1], true)
	torn := []ubootenv.Region{regions[0]}
	if f1 > f0 {
		torn[0] = regions[1]
	}
	if c.tear == 2 {
		torn = regions
	}
	for _, r := range torn[:min(c.tear, len(torn))] {
		// A write cut short: the start of the new data went out, the rest
		// is what was there before.
		if _, err := r.Dev.WriteAt([]byte("cairn_a_ok=0\x00cairn_a_pri"), r.Offset+5); err != nil {
			t.Fatal(err)
		}
	}
}

func readCopies(t *testing.T, regions []ubootenv.Region) [2][]byte {
	var out [2][]byte
	for i, r := range regions {
		out[i] = make([]byte, r.Size)
		if _, err := r.Dev.ReadAt(out[i], r.Offset); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// buildDisk writes an arm64-uboot disk image with boot.scr on CAIRN_BOOT's
// FAT and a kernel with a slot-marked initramfs in each slot. It returns
// the image and where the two environment copies are in it.
func buildDisk(t *testing.T) (string, []ubootenv.Region, int64) {
	start := time.Now()
	dir := t.TempDir()
	layout, err := partitions.LoadLayout("arm64-uboot")
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
	scr := filepath.Join(dir, "boot.scr")
	opts := uboot.Options{Console: "ttyAMA0,115200", Cmdline: "quiet panic=-1"}
	if err := uboot.BuildScript(context.Background(), opts, scr); err != nil {
		t.Fatal(err)
	}
	boot, _ := plan.Partition(partitions.LabelBoot)
	fat := filepath.Join(dir, "boot.fat")
	boottest.Run(t, "mkfs.vfat", "-C", "-n", "CAIRN_BOOT", fat, fmt.Sprint((boot.Bytes-uboot.ReservedTail)/1024))
	boottest.Run(t, "mcopy", "-i", fat, scr, "::"+uboot.ScriptPath)
	bootStart := int64(boot.FirstLBA) * partitions.SectorSize
	boottest.CopyInto(t, disk, bootStart, fat)
	regions, err := uboot.EnvRegions(nil, bootStart, boot.Bytes)
	if err != nil {
		t.Fatal(err)
	}

	vmlinuz := boottest.Kernel(t, "arm64")
	for _, s := range partitions.Slots {
		p, _ := plan.Partition(s.Label())
		fs := boottest.SlotFS(t, vmlinuz, boottest.Initrd(t, "arm64", string(s)), 64<<20)
		boottest.CopyInto(t, disk, int64(p.FirstLBA)*partitions.SectorSize, fs)
	}
	t.Logf("built the arm64 disk in %v", time.Since(start).Round(time.Millisecond))
	return disk, regions, boot.Bytes
}

// checkDeviceView reads the environment U-Boot left the way a running
// device does: fw_printenv and bootstate.Open's ubootenv, both through
// FwEnvConfig on a CAIRN_BOOT partition holding those copies. Both must see
// the variables of the copy U-Boot reads next.
func checkDeviceView(t *testing.T, copies [2][]byte, partBytes int64) {
	dir := t.TempDir()
	part := filepath.Join(dir, "CAIRN_BOOT")
	f, err := os.Create(part)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(partBytes); err != nil {
		t.Fatal(err)
	}
	for i, off := range uboot.EnvCopyOffsets {
		if _, err := f.WriteAt(copies[i], partBytes+off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cfg, err := uboot.FwEnvConfig(part, partBytes)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "fw_env.config")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	locs, err := ubootenv.ParseConfig(cfgPath, bytes.NewReader(cfg))
	if err != nil {
		t.Fatal(err)
	}
	env, err := ubootenv.Open(locs)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	want, err := env.Vars()
	if err != nil {
		t.Fatalf("ubootenv through fw_env.config: %v", err)
	}
	out, err := exec.Command("fw_printenv", "-c", cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("fw_printenv -c %s: %v\n%s", cfgPath, err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, value, _ := strings.Cut(line, "=")
		got[name] = value
	}
	if !maps.Equal(got, want) {
		t.Errorf("fw_printenv reads %v, ubootenv reads %v", got, want)
	}
}
