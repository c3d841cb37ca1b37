package uboot_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/uboot"
	"github.com/cairn-edge/cairn/partitions/ubootenv"
)

func TestFwEnvConfigNamesTheCopiesBootScrUses(t *testing.T) {
	l, err := partitions.LoadLayout("arm64-uboot")
	if err != nil {
		t.Fatal(err)
	}
	boot, _ := l.Partition(partitions.LabelBoot)
	cfg, err := uboot.FwEnvConfig(uboot.DefaultEnvDevice, boot.Size)
	if err != nil {
		t.Fatal(err)
	}
	locs, err := ubootenv.ParseConfig("fw_env.config", bytes.NewReader(cfg))
	if err != nil {
		t.Fatalf("%v\n%s", err, cfg)
	}
	// boot.cmd counts in 512-byte blocks back from the partition's end:
	// copy 1 at end-0x80 blocks, copy 2 at end-0x40 blocks, 0x20 blocks each.
	want := []ubootenv.Location{
		{Device: "/dev/disk/by-partlabel/CAIRN_BOOT", Offset: boot.Size - 0x80*512, Size: 0x20 * 512},
		{Device: "/dev/disk/by-partlabel/CAIRN_BOOT", Offset: boot.Size - 0x40*512, Size: 0x20 * 512},
	}
	if len(locs) != 2 || locs[0] != want[0] || locs[1] != want[1] {
		t.Errorf("fw_env.config gives %+v, want %+v", locs, want)
	}
	regions, err := uboot.EnvRegions(nil, 16<<20, boot.Size)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range regions {
		if r.Offset != 16<<20+want[i].Offset || r.Size != want[i].Size {
			t.Errorf("EnvRegions[%d] = %d+%d, want %d+%d", i, r.Offset, r.Size, 16<<20+want[i].Offset, want[i].Size)
		}
	}
}

func TestEnvRegionsRefusesAPartitionTooSmallForTheReservedTail(t *testing.T) {
	if _, err := uboot.EnvRegions(nil, 0, 512<<10); !errors.Is(err, uboot.ErrBadOption) {
		t.Fatalf("got %v, want ErrBadOption", err)
	}
}

func TestScriptRefusesParametersHushWouldMangle(t *testing.T) {
	for _, cmdline := range []string{"a'b", "a\nb", `a\b`, "cairn.slot=B", "quiet rw"} {
		if _, err := uboot.Script(uboot.Options{Cmdline: cmdline}); !errors.Is(err, uboot.ErrBadOption) {
			t.Errorf("Cmdline %q: got %v, want ErrBadOption", cmdline, err)
		}
	}
	s, err := uboot.Script(uboot.Options{Console: "ttyAMA0,115200", Cmdline: "quiet"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(s), "setenv cairn_cmdline 'ro console=ttyAMA0,115200 quiet'\n") {
		t.Errorf("boot.cmd lacks the board's kernel parameters:\n%.300s", s)
	}
}
