package partitions

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// flashed writes layout's image at its minimum size into a medium of
// mediumBytes, as dd onto a larger disk leaves it.
func flashed(t *testing.T, layout string, mediumBytes int64) (string, *Plan) {
	t.Helper()
	l, err := LoadLayout(layout)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := l.Plan(l.MinDiskBytes(false), false)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := WriteImage(img, plan); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, mediumBytes); err != nil {
		t.Fatal(err)
	}
	return img, plan
}

func grow(t *testing.T, img, label string) (PartitionInfo, bool, error) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return GrowLast(f, label, 1<<20)
}

func TestGrowLastTakesTheLargerMediumAndSgdiskAgrees(t *testing.T) {
	for _, layout := range []string{"x86_64-uefi", "arm64-uboot"} {
		t.Run(layout, func(t *testing.T) {
			const medium = 8<<30 + 100*512 // not a whole MiB: the end is aligned down
			img, plan := flashed(t, layout, medium)
			p, changed, err := grow(t, img, LabelState)
			if err != nil || !changed {
				t.Fatalf("GrowLast: changed %v, %v", changed, err)
			}
			before, _ := plan.Partition(LabelState)
			wantLast := uint64(8<<30/SectorSize - 1) // the backup GPT fits in the 100 sectors after 8 GiB
			if p.FirstLBA != before.FirstLBA || p.LastLBA != wantLast || p.Bytes != int64(wantLast-p.FirstLBA+1)*SectorSize {
				t.Errorf("grown to %d-%d (%d B), want %d-%d", p.FirstLBA, p.LastLBA, p.Bytes, before.FirstLBA, wantLast)
			}
			if v := sgdisk(t, "-v", img); !strings.Contains(v, "No problems found.") {
				t.Errorf("sgdisk -v after growing:\n%s", v)
			}
			read, err := ReadTable(img)
			if err != nil {
				t.Fatal(err)
			}
			for i, q := range read {
				want := plan.Partitions[i]
				if q.Label == LabelState {
					want = p
				}
				if q != want {
					t.Errorf("partition %d reads back as %+v, want %+v", q.Number, q, want)
				}
			}
			out := sgdisk(t, "-p", img)
			m := sgdiskRow.FindAllStringSubmatch(out, -1)
			if last := m[len(m)-1]; last[3] != u(wantLast) || last[4] != LabelState {
				t.Errorf("sgdisk -p: last partition %v, want %s ending at %d:\n%s", last[1:], LabelState, wantLast, out)
			}
			if _, changed, err := grow(t, img, LabelState); err != nil || changed {
				t.Errorf("second GrowLast: changed %v, %v; want nothing to do", changed, err)
			}
		})
	}
}

func TestGrowLastOnlyMovesTheBackupWhenTheAlignedEndIsReached(t *testing.T) {
	const medium = 4<<30 + 100*512
	img, _ := flashed(t, "x86_64-uefi", medium)
	grown, _, err := grow(t, img, LabelState)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, medium+512*1024); err != nil { // half a MiB more
		t.Fatal(err)
	}
	p, changed, err := grow(t, img, LabelState)
	if err != nil || !changed {
		t.Fatalf("GrowLast: changed %v, %v; want the backup moved", changed, err)
	}
	if p != grown {
		t.Errorf("partition %+v, want it as it was %+v", p, grown)
	}
	if v := sgdisk(t, "-v", img); !strings.Contains(v, "No problems found.") {
		t.Errorf("sgdisk -v:\n%s", v)
	}
}

func TestGrowLastRefuses(t *testing.T) {
	img, _ := flashed(t, "x86_64-uefi", 4<<30)
	if _, _, err := grow(t, img, "CAIRN_ROOT_A"); !errors.Is(err, ErrCannotGrow) {
		t.Errorf("growing a partition that is not last: %v, want ErrCannotGrow", err)
	}
	if _, _, err := grow(t, img, "NOPE"); !errors.Is(err, ErrCannotGrow) {
		t.Errorf("growing a missing partition: %v, want ErrCannotGrow", err)
	}
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	if _, _, err := grow(t, img, LabelState); !errors.Is(err, ErrCannotGrow) {
		t.Errorf("growing on a medium smaller than the table: %v, want ErrCannotGrow", err)
	}
	damaged, _ := flashed(t, "x86_64-uefi", 4<<30)
	f, err := os.OpenFile(damaged, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, SectorSize+16); err != nil { // the header CRC
		t.Fatal(err)
	}
	f.Close()
	if _, _, err := grow(t, damaged, LabelState); !errors.Is(err, ErrNoGPT) {
		t.Errorf("growing with a damaged primary GPT: %v, want ErrNoGPT", err)
	}
}
