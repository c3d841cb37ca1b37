package partitions

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// sgdisk runs Debian's sgdisk, the oracle for the tables we write.
func sgdisk(t *testing.T, args ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("sgdisk oracle: not under -short")
	}
	if _, err := exec.LookPath("sgdisk"); err != nil {
		t.Fatal("sgdisk not found: run scripts/install-deps.sh (package gdisk)")
	}
	out, err := exec.Command("sgdisk", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var sgdiskRow = regexp.MustCompile(`(?m)^\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+[0-9A-F]{4}\s+(\S+)$`)

func TestWriteImageIsWhatSgdiskSees(t *testing.T) {
	for _, tc := range []struct {
		layout string
		disk   int64
	}{
		{"x86_64-uefi", 4 << 30},
		{"arm64-uboot", 3 << 30},
		// Past 2 TiB the protective MBR can no longer cover the disk and
		// must stop at the largest 32-bit sector count.
		{"x86_64-uefi", 3 << 40},
	} {
		t.Run(tc.layout+"/"+FormatSize(tc.disk), func(t *testing.T) {
			l, err := LoadLayout(tc.layout)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := l.Plan(tc.disk, true)
			if err != nil {
				t.Fatal(err)
			}
			img := filepath.Join(t.TempDir(), "disk.img")
			if err := WriteImage(img, plan); err != nil {
				t.Fatal(err)
			}
			read, err := ReadTable(img)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(read, plan.Partitions) {
				t.Errorf("ReadTable\n %+v\nwant the plan\n %+v", read, plan.Partitions)
			}
			var want []string
			for _, p := range plan.Partitions {
				want = append(want, strings.Join([]string{strconv.Itoa(p.Number), u(p.FirstLBA), u(p.LastLBA), p.Label}, " "))
			}
			out := sgdisk(t, "-p", img)
			var got []string
			for _, m := range sgdiskRow.FindAllStringSubmatch(out, -1) {
				got = append(got, strings.Join(m[1:], " "))
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("sgdisk -p sees\n %q\nwant\n %q\n%s", got, want, out)
			}
			if !strings.Contains(out, "Disk identifier (GUID): "+plan.DiskGUID) {
				t.Errorf("sgdisk -p does not show disk GUID %s:\n%s", plan.DiskGUID, out)
			}
			for _, p := range plan.Partitions {
				info := sgdisk(t, "-i", strconv.Itoa(p.Number), img)
				if !strings.Contains(info, "Partition GUID code: "+p.TypeGUID) || !strings.Contains(info, "Partition unique GUID: "+p.GUID) {
					t.Errorf("sgdisk -i %d: want type %s and GUID %s:\n%s", p.Number, p.TypeGUID, p.GUID, info)
				}
			}
			if v := sgdisk(t, "-v", img); !strings.Contains(v, "No problems found.") {
				t.Errorf("sgdisk -v:\n%s", v)
			}
		})
	}
}

func u(n uint64) string { return strconv.FormatUint(n, 10) }

func TestWriteImageIsSparse(t *testing.T) {
	l, _ := LoadLayout("arm64-uboot")
	plan, err := l.Plan(4<<30, true)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := WriteImage(img, plan); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 4<<30 || fi.Mode().Perm() != 0o644 {
		t.Errorf("%d B, mode %v; want 4 GiB, 0644", fi.Size(), fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 > 1<<20 {
		t.Errorf("%d B allocated, want a sparse file", st.Blocks*512)
	}
}

// tiny is a valid layout of a few MiB, small enough to compare whole images.
const tiny = `name: tiny
alignment: 1MiB
partitions:
  - {label: CAIRN_BOOT, type: basic-data, size: 1MiB}
  - {label: CAIRN_ROOT_A, type: linux-root-arm64, size: 2MiB}
  - {label: CAIRN_ROOT_B, type: linux-root-arm64, size: 2MiB}
  - {label: CAIRN_STATE, type: linux-generic, size: 1MiB, grow: true}
`

func TestWriteImageIsReproducible(t *testing.T) {
	l, err := ParseLayout("tiny.yaml", []byte(tiny))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := l.Plan(16<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var images [3][]byte
	for i := range images {
		if i == 2 {
			plan.Seed("another release")
		}
		img := filepath.Join(dir, "disk.img")
		if err := WriteImage(img, plan); err != nil {
			t.Fatal(err)
		}
		if images[i], err = os.ReadFile(img); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(images[0], images[1]) {
		t.Error("two images of the same plan differ")
	}
	if bytes.Equal(images[0], images[2]) {
		t.Error("images with different seeds are the same")
	}
}

func TestWriteImageRefusesABadPlanAndLeavesTheOldImage(t *testing.T) {
	l, _ := LoadLayout("x86_64-uefi")
	plan, _ := l.Plan(4<<30, true)
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	plan.Partitions[2].FirstLBA = plan.Partitions[1].LastLBA // overlaps slot A
	err := WriteImage(img, plan)
	if err == nil || !strings.Contains(err.Error(), "partition CAIRN_ROOT_B: sectors 2230271-4327423 overlap the GPT or the partition before") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(img); string(b) != "old" {
		t.Error("the old image was touched")
	}
	if entries, _ := os.ReadDir(filepath.Dir(img)); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestReadTableRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	l, _ := LoadLayout("x86_64-uefi")
	plan, _ := l.Plan(l.MinDiskBytes(true), true)
	img := filepath.Join(dir, "disk.img")
	if err := WriteImage(img, plan); err != nil {
		t.Fatal(err)
	}
	// A flipped byte in the primary partition array breaks its CRC.
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xFF}, 2*SectorSize+60); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := ReadTable(img); !errors.Is(err, ErrNoGPT) || !strings.Contains(err.Error(), "primary GPT damaged") {
		t.Errorf("damaged primary: %v", err)
	}
	blank := filepath.Join(dir, "blank.img")
	if err := os.WriteFile(blank, bytes.Repeat([]byte{0}, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTable(blank); !errors.Is(err, ErrNoGPT) {
		t.Errorf("blank medium: %v", err)
	}
}
