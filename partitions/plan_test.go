package partitions

import (
	"errors"
	"reflect"
	"testing"
)

func TestPlanPlacesX86LayoutOnA4GiBDisk(t *testing.T) {
	l, err := LoadLayout("x86_64-uefi")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := l.Plan(4<<30, true)
	if err != nil {
		t.Fatal(err)
	}
	type span struct {
		label       string
		first, last uint64
	}
	var got []span
	for _, p := range plan.Partitions {
		got = append(got, span{p.Label, p.FirstLBA, p.LastLBA})
		if p.Bytes != int64(p.LastLBA-p.FirstLBA+1)*SectorSize || p.FirstLBA%2048 != 0 || (p.LastLBA+1)%2048 != 0 {
			t.Errorf("%s: %d-%d (%d B) is not 1 MiB aligned or miscounted", p.Label, p.FirstLBA, p.LastLBA, p.Bytes)
		}
	}
	want := []span{
		{"CAIRN_EFI", 2048, 133119},
		{"CAIRN_ROOT_A", 133120, 2230271},
		{"CAIRN_ROOT_B", 2230272, 4327423},
		{"CIDATA", 4327424, 4360191},
		// 4 GiB is 8388608 sectors; the backup GPT takes the last 33, and the
		// state partition ends on the last whole MiB before it.
		{"CAIRN_STATE", 4360192, 8386559},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan\n %v\nwant\n %v", got, want)
	}
	state, ok := plan.Partition(LabelState)
	if !ok || state.Number != 5 || state.Type != "linux-generic" || state.TypeGUID != PartitionTypes["linux-generic"] {
		t.Errorf("Partition(CAIRN_STATE) = %+v, %v", state, ok)
	}
	if _, ok := plan.Partition("CAIRN_ROOT_C"); ok {
		t.Error("Partition(CAIRN_ROOT_C) found")
	}
}

func TestPlanWithoutOptionalPartitionsKeepsNumbersConsecutive(t *testing.T) {
	l, _ := LoadLayout("x86_64-uefi")
	plan, err := l.Plan(l.MinDiskBytes(false), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := plan.Partition(LabelCIData); ok {
		t.Error("CIDATA planned without optional partitions")
	}
	state, _ := plan.Partition(LabelState)
	if state.Number != 4 || state.FirstLBA != 4327424 || state.Bytes != 512<<20 {
		t.Errorf("state at a minimal disk: %+v, want number 4 from sector 4327424 with exactly 512 MiB", state)
	}
}

func TestPlanHonoursExplicitOffsets(t *testing.T) {
	l, _ := LoadLayout("arm64-uboot")
	plan, err := l.Plan(3<<30, true)
	if err != nil {
		t.Fatal(err)
	}
	boot, _ := plan.Partition(LabelBoot)
	a, _ := plan.Partition(SlotA.Label())
	if boot.FirstLBA != 16<<20/SectorSize || a.FirstLBA != boot.LastLBA+1 {
		t.Errorf("boot %d-%d, slot A from %d; want boot at 16 MiB and slot A right after", boot.FirstLBA, boot.LastLBA, a.FirstLBA)
	}
}

func TestPlanSaysHowMuchTheMediumIsShort(t *testing.T) {
	l, _ := LoadLayout("x86_64-uefi")
	_, err := l.Plan(2<<30, true)
	if !errors.Is(err, ErrDoesNotFit) {
		t.Fatalf("err = %v, want ErrDoesNotFit", err)
	}
	want := "layout x86_64-uefi: needs 2642 MiB, the medium has 2 GiB: 594 MiB short: layout does not fit the medium"
	if err.Error() != want {
		t.Errorf("error\n %s\nwant\n %s", err, want)
	}
	if _, err := l.Plan(4<<30+100, true); err == nil {
		t.Error("a disk size that is not whole sectors was accepted")
	}
}

func TestPlanGUIDsFollowTheSeed(t *testing.T) {
	l, _ := LoadLayout("x86_64-uefi")
	p1, _ := l.Plan(4<<30, true)
	p2, _ := l.Plan(4<<30, true)
	if !reflect.DeepEqual(p1, p2) {
		t.Fatal("two plans of the same layout and size differ")
	}
	a, _ := p1.Partition(SlotA.Label())
	b, _ := p1.Partition(SlotB.Label())
	if a.GUID == b.GUID || a.GUID == p1.DiskGUID {
		t.Errorf("GUIDs repeat: disk %s, A %s, B %s", p1.DiskGUID, a.GUID, b.GUID)
	}
	p2.Seed("release 1.4.0")
	a2, _ := p2.Partition(SlotA.Label())
	if p2.DiskGUID == p1.DiskGUID || a2.GUID == a.GUID {
		t.Error("a different seed kept the same GUIDs")
	}
}
