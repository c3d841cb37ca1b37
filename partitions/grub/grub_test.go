package grub_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/grub"
)

func TestSlotPartitionsOfTheShippedLayouts(t *testing.T) {
	for _, name := range partitions.Layouts() {
		l, err := partitions.LoadLayout(name)
		if err != nil {
			t.Fatal(err)
		}
		a, b, err := grub.SlotPartitions(l)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Check against the plan with and without the optional partitions:
		// the numbers must hold for every image of the layout.
		for _, withOptional := range []bool{false, true} {
			plan, err := l.Plan(l.MinDiskBytes(true), withOptional)
			if err != nil {
				t.Fatal(err)
			}
			pa, _ := plan.Partition(partitions.SlotA.Label())
			pb, _ := plan.Partition(partitions.SlotB.Label())
			if pa.Number != a || pb.Number != b {
				t.Errorf("%s (optional %v): SlotPartitions says %d, %d; the plan has %d, %d", name, withOptional, a, b, pa.Number, pb.Number)
			}
		}
	}
}

func TestSlotPartitionsRefusesANumberThatDependsOnAnOptionalPartition(t *testing.T) {
	l, err := partitions.ParseLayout("opt.yaml", []byte(`name: opt
alignment: 1MiB
partitions:
  - {label: CAIRN_EFI, type: esp, size: 64MiB}
  - {label: CIDATA, type: basic-data, size: 16MiB, optional: true}
  - {label: CAIRN_ROOT_A, type: linux-root-x86-64, size: 1GiB}
  - {label: CAIRN_ROOT_B, type: linux-root-x86-64, size: 1GiB}
  - {label: CAIRN_STATE, type: linux-generic, size: 512MiB, grow: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := grub.SlotPartitions(l); !errors.Is(err, grub.ErrBadOption) || !strings.Contains(err.Error(), "CIDATA") {
		t.Fatalf("got %v, want ErrBadOption naming CIDATA", err)
	}
}

func TestConfigRefusesParametersGRUBWouldMangle(t *testing.T) {
	l, err := partitions.LoadLayout("x86_64-uefi")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmdline := range []string{"a'b", "a\nb", `a\b`, "cairn.slot=B", "quiet rw"} {
		if _, err := grub.Config(grub.Options{Layout: l, Cmdline: cmdline}); !errors.Is(err, grub.ErrBadOption) {
			t.Errorf("Cmdline %q: got %v, want ErrBadOption", cmdline, err)
		}
	}
}

// TestConfigPassesGrubScriptCheck runs GRUB's own parser over the complete
// grub.cfg, so a syntax error shows without booting.
func TestConfigPassesGrubScriptCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("runs grub-script-check; skipped with -short")
	}
	if _, err := exec.LookPath("grub-script-check"); err != nil {
		t.Fatalf("grub-script-check (grub-common) not found: %v", err)
	}
	l, err := partitions.LoadLayout("x86_64-uefi")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := grub.Config(grub.Options{Layout: l, Console: "ttyS0,115200", Cmdline: "quiet"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"set cairn_a_part=gpt2\n", "set cairn_b_part=gpt3\n", "set cairn_cmdline='ro console=ttyS0,115200 quiet'\n"} {
		if !bytes.Contains(cfg, []byte(want)) {
			t.Errorf("grub.cfg lacks %q", want)
		}
	}
	path := filepath.Join(t.TempDir(), "grub.cfg")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("grub-script-check", path).CombinedOutput(); err != nil {
		t.Fatalf("grub-script-check: %v\n%s", err, out)
	}
}
