package partitions

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestShippedLayoutsParseAndFitTheirImages(t *testing.T) {
	names := Layouts()
	if strings.Join(names, " ") != "arm64-uboot x86_64-uefi" {
		t.Fatalf("Layouts() = %v", names)
	}
	for _, name := range names {
		l, err := LoadLayout(name)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := l.Partition(SlotA.Label())
		b, _ := l.Partition(SlotB.Label())
		if a.Size != 1<<30 || b.Size != a.Size {
			t.Errorf("%s: slot sizes %d and %d, want 1 GiB each", name, a.Size, b.Size)
		}
		// The shipped layouts are meant for 2 to 4 GB images.
		if min := l.MinDiskBytes(true); min > 3<<30 || min < 2<<30 {
			t.Errorf("%s: minimum disk %s, want between 2 and 3 GiB", name, FormatSize(min))
		}
	}
	if _, err := LoadLayout("riscv-sbi"); !errors.Is(err, ErrUnknownLayout) {
		t.Errorf("LoadLayout(riscv-sbi) = %v, want ErrUnknownLayout", err)
	}
	if _, err := LoadLayout("../go"); !errors.Is(err, ErrUnknownLayout) {
		t.Errorf("LoadLayout(../go) = %v, want ErrUnknownLayout", err)
	}
}

// valid is the smallest layout that passes; every broken case below is this
// file with one thing wrong.
const valid = `name: t
alignment: 1MiB
partitions:
  - label: CAIRN_EFI
    type: esp
    size: 64MiB
  - label: CAIRN_ROOT_A
    type: linux-root-x86-64
    size: 1GiB
  - label: CAIRN_ROOT_B
    type: linux-root-x86-64
    size: 1GiB
  - label: CAIRN_STATE
    type: linux-generic
    size: 512MiB
    grow: true
`

func TestParseLayoutAcceptsTheMinimalLayout(t *testing.T) {
	l, err := ParseLayout("t.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if l.Name != "t" || l.Alignment != 1<<20 || len(l.Partitions) != 4 || !l.Partitions[3].Grow {
		t.Errorf("parsed %+v", l)
	}
	if got := l.MinDiskBytes(false); got != (1+64+2048+512+1)<<20 {
		t.Errorf("MinDiskBytes = %s", FormatSize(got))
	}
}

func TestParseLayoutRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		line int
		msg  string // the whole error text after "layout bad.yaml:LINE: "
	}{
		{"unknown top-level key", strings.Replace(valid, "alignment: 1MiB\n", "alignment: 1MiB\nsector-size: 4096\n", 1),
			3, "sector-size: unknown key (want one of name, description, alignment, partitions)"},
		{"unknown partition key", strings.Replace(valid, "    type: esp\n", "    type: esp\n    fs: vfat\n", 1),
			6, "partitions[0].fs: unknown key (want one of label, type, size, offset, grow, optional)"},
		{"repeated key", strings.Replace(valid, "    type: esp\n", "    type: esp\n    type: esp\n", 1),
			6, "partitions[0].type: repeated (first on line 5)"},
		{"duplicate label", strings.Replace(valid, "label: CAIRN_ROOT_B", "label: CAIRN_ROOT_A", 1),
			10, "partitions[2].label: CAIRN_ROOT_A repeated (first on line 7)"},
		{"missing root slot", strings.Replace(valid, "label: CAIRN_ROOT_B", "label: CAIRN_ROOT_C", 1),
			3, "partitions: no CAIRN_ROOT_B partition; a Cairn disk needs CAIRN_EFI or CAIRN_BOOT, CAIRN_ROOT_A, CAIRN_ROOT_B and CAIRN_STATE"},
		{"missing boot partition", strings.Replace(valid, "label: CAIRN_EFI", "label: ESP", 1),
			3, "partitions: no CAIRN_EFI or CAIRN_BOOT partition; a Cairn disk needs CAIRN_EFI or CAIRN_BOOT, CAIRN_ROOT_A, CAIRN_ROOT_B and CAIRN_STATE"},
		{"missing state", strings.Replace(valid, "label: CAIRN_STATE", "label: DATA", 1),
			3, "partitions: no CAIRN_STATE partition; a Cairn disk needs CAIRN_EFI or CAIRN_BOOT, CAIRN_ROOT_A, CAIRN_ROOT_B and CAIRN_STATE"},
		{"both boot partitions", strings.Replace(valid, "partitions:\n", "partitions:\n  - {label: CAIRN_BOOT, type: basic-data, size: 64MiB}\n", 1),
			5, "partitions[1].label: a layout has either CAIRN_EFI (UEFI) or CAIRN_BOOT (U-Boot), not both"},
		{"required partition optional", strings.Replace(valid, "    size: 64MiB\n", "    size: 64MiB\n    optional: true\n", 1),
			7, "partitions[0].optional: CAIRN_EFI is required and cannot be optional"},
		{"slots of different sizes", strings.Replace(valid, "    type: linux-root-x86-64\n    size: 1GiB\n  - label: CAIRN_STATE", "    type: linux-root-x86-64\n    size: 2GiB\n  - label: CAIRN_STATE", 1),
			12, "partitions[2].size: CAIRN_ROOT_B is 2 GiB but CAIRN_ROOT_A (line 9) is 1 GiB; both slots must be the same size so that either holds any release"},
		{"size off the alignment", strings.Replace(valid, "size: 64MiB", "size: 1000KiB", 1),
			6, "partitions[0].size: 1000 KiB is not a multiple of the alignment 1 MiB"},
		{"offset off the alignment", strings.Replace(valid, "    type: esp\n", "    type: esp\n    offset: 1536KiB\n", 1),
			6, "partitions[0].offset: 1536 KiB is not a multiple of the alignment 1 MiB"},
		{"decimal unit", strings.Replace(valid, "size: 64MiB", "size: 64MB", 1),
			6, `partitions[0].size: size "64MB": decimal units are ambiguous, write KiB, MiB, GiB or TiB`},
		{"label too long for GPT", strings.Replace(valid, "label: CAIRN_STATE", "label: CAIRN_STATE_WITH_A_NAME_FAR_TOO_LONGER", 1),
			13, `partitions[3].label: "CAIRN_STATE_WITH_A_NAME_FAR_TOO_LONGER" is 38 UTF-16 code units, a GPT label holds 1 to 36`},
		{"label counted in UTF-16, not runes", strings.Replace(valid, "label: CAIRN_STATE", "label: CAIRN_STATE_\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E", 1),
			13, "partitions[3].label: \"CAIRN_STATE_\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\U0001D11E\" is 38 UTF-16 code units, a GPT label holds 1 to 36"},
		{"two partitions grow", strings.Replace(valid, "    size: 64MiB\n", "    size: 64MiB\n    grow: true\n", 1),
			17, "partitions[3].grow: CAIRN_EFI already grows (line 7); a layout grows at most one partition"},
		{"grow not last", valid + "  - {label: CIDATA, type: basic-data, size: 16MiB}\n",
			16, "partitions[3].grow: CAIRN_STATE is followed by CIDATA; only the last partition can grow to the end of the medium"},
		{"root slot grows", strings.Replace(strings.Replace(valid, "    grow: true\n", "", 1), "    size: 1GiB\n  - label: CAIRN_STATE", "    size: 1GiB\n    grow: true\n  - label: CAIRN_STATE", 1),
			13, "partitions[2].grow: root slots have a fixed size and cannot grow"},
		{"overlapping offsets", strings.Replace(valid, "    type: linux-root-x86-64\n    size: 1GiB\n  - label: CAIRN_ROOT_B", "    type: linux-root-x86-64\n    size: 1GiB\n    offset: 32MiB\n  - label: CAIRN_ROOT_B", 1),
			10, "partitions[1].offset: CAIRN_ROOT_A at 32 MiB overlaps CAIRN_EFI (line 4), which ends at 65 MiB; partitions are laid out in file order"},
		{"offset inside the GPT", strings.Replace(valid, "    type: esp\n", "    type: esp\n    offset: 0\n", 1),
			6, "partitions[0].offset: 0 B lies in the primary GPT, which ends at 17408 B"},
		{"unknown type", strings.Replace(valid, "type: esp", "type: efi", 1),
			5, `partitions[0].type: "efi": want a GUID or one of basic-data, esp, linux-generic, linux-root-arm64, linux-root-x86-64`},
		{"grow not a bool", strings.Replace(valid, "grow: true", "grow: yes", 1),
			16, `partitions[3].grow: "yes": want true or false`},
		{"zero size", strings.Replace(valid, "size: 64MiB", "size: 0", 1),
			6, "partitions[0].size: must not be zero"},
		{"missing size", strings.Replace(valid, "    size: 64MiB\n", "", 1),
			4, "partitions[0].size: missing"},
		{"missing alignment", strings.Replace(valid, "alignment: 1MiB\n", "", 1),
			1, "alignment: missing"},
		{"alignment not a power of two", strings.Replace(valid, "alignment: 1MiB", "alignment: 3KiB", 1),
			2, "alignment: 3 KiB: want a power of two from 512 B to 1 GiB"},
		{"partitions not a list", "name: t\nalignment: 1MiB\npartitions:\n  label: CAIRN_EFI\n",
			3, "partitions: want a list of partitions"},
		{"YAML syntax", strings.Replace(valid, "size: 64MiB", "size: 64MiB: big", 1),
			6, "mapping values are not allowed in this context"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLayout("bad.yaml", []byte(tc.yaml))
			var le *LayoutError
			if !errors.As(err, &le) {
				t.Fatalf("error %v, want a *LayoutError", err)
			}
			if le.Line != tc.line {
				t.Errorf("line %d, want %d (%v)", le.Line, tc.line, err)
			}
			if want := fmt.Sprintf("layout bad.yaml:%d: %s", tc.line, tc.msg); err.Error() != want {
				t.Errorf("error\n %s\nwant\n %s", err, want)
			}
		})
	}
}

func TestParseLayoutRejectsAnEmptyFile(t *testing.T) {
	_, err := ParseLayout("empty.yaml", nil)
	if err == nil || err.Error() != "layout empty.yaml: empty file" {
		t.Errorf("got %v", err)
	}
}

func TestParseSizeRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{{"512", 512}, {"64MiB", 64 << 20}, {"1 GiB", 1 << 30}, {"8G", 8 << 30}, {"3K", 3072}, {"2TiB", 2 << 40}} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if back, err := ParseSize(FormatSize(got)); err != nil || back != got {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", got, back, err)
		}
	}
	for _, bad := range []string{"", "-1", "+5", "1.5GiB", "1GB", "4 k", "MiB", "2000TiB", "99999999999999999999"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}
