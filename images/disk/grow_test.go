package disk

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/grub/boottest"
)

// poweredOff is what the kernel prints as the last thing of a poweroff.
var poweredOff = regexp.MustCompile(`reboot: Power down`)

// powerOffUnit shuts the test VM down once the agent reported the boot, so
// that the host reads a cleanly unmounted disk.
const powerOffUnit = `[Unit]
Description=Cairn test: power off once the boot was reported
After=cairn-boot-report.service

[Service]
Type=oneshot
ExecStart=/bin/systemctl --no-block poweroff

[Install]
WantedBy=multi-user.target
`

// powerOffAfterBoot adds powerOffUnit to the release's root.
func (r *testRelease) powerOffAfterBoot(t *testing.T) {
	t.Helper()
	unit := filepath.Join(r.root, "etc/systemd/system/cairn-test-poweroff.service")
	if err := os.WriteFile(unit, []byte(powerOffUnit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../cairn-test-poweroff.service", filepath.Join(r.root, "etc/systemd/system/multi-user.target.wants/cairn-test-poweroff.service")); err != nil {
		t.Fatal(err)
	}
}

// TestStateGrowsToTheEndOfALargerDisk flashes the image onto a disk three
// times its size. The first boot moves the backup GPT to the end, extends
// CAIRN_STATE to it and makes the filesystem over all of it; after the
// guest powers off, sgdisk and e2fsck on the host agree. A second boot
// changes nothing.
func TestStateGrowsToTheEndOfALargerDisk(t *testing.T) {
	boottest.Require(t, "qemu-system-x86_64", ovmfCode, "sgdisk", "dumpe2fs", "e2fsck")
	r := newRelease(t, "qemu-x86_64")
	r.powerOffAfterBoot(t)
	dir := t.TempDir()
	slotA := filepath.Join(dir, "a.img")
	r.slotImage(t, "1.0.0", slotA)
	out := filepath.Join(dir, "disk.img")
	res, err := Build(context.Background(), Options{Board: r.board, SlotA: slotA, Out: out, NoCompress: true, SourceDateEpoch: testEpoch})
	if err != nil {
		t.Fatal(err)
	}
	const medium = 8 << 30
	big := filepath.Join(dir, "big.img")
	boottest.Run(t, "cp", "--sparse=always", out, big)
	if err := os.Truncate(big, medium); err != nil {
		t.Fatal(err)
	}
	text, took := console(t, 10*time.Minute, poweredOff, "qemu-system-x86_64", qemuX86(t, big)...)
	t.Logf("first boot on a %d GiB disk to poweroff in %v", medium>>30, took.Round(time.Second))
	for _, want := range []*regexp.Regexp{agentUp, regexp.MustCompile(`state partition \S+ now reaches the end of \S+`), regexp.MustCompile(`first boot: creating the state filesystem`)} {
		if !want.MatchString(text) {
			t.Fatalf("console lacks %q:\n%s", want, tailOf(text, 8000))
		}
	}
	state := lastPartition(t, big)
	wantLast := uint64(medium/partitions.SectorSize - 2048 - 1) // the last whole MiB holds the backup GPT
	if state.Label != partitions.LabelState || state.LastLBA != wantLast {
		t.Errorf("last partition %s ends at sector %d, want %s at %d", state.Label, state.LastLBA, partitions.LabelState, wantLast)
	}
	if v := output(t, "sgdisk", "-v", big); !strings.Contains(v, "No problems found.") {
		t.Errorf("sgdisk -v:\n%s", v)
	}
	blocks := checkStateFS(t, big, state)
	if blocks*4096+4<<20 < state.Bytes {
		t.Errorf("state filesystem has %d blocks of 4 KiB, the partition %d bytes", blocks, state.Bytes)
	}
	t.Logf("image %d MiB, CAIRN_STATE grown from %d MiB to %d MiB", res.Image.Bytes>>20, res.Partitions[len(res.Partitions)-1].Bytes>>20, state.Bytes>>20)

	text, took = console(t, 10*time.Minute, poweredOff, "qemu-system-x86_64", qemuX86(t, big)...)
	t.Logf("second boot to poweroff in %v", took.Round(time.Second))
	if !agentUp.MatchString(text) || regexp.MustCompile(`now reaches the end|growing the state|first boot`).MatchString(text) {
		t.Errorf("second boot did not leave the state alone:\n%s", tailOf(text, 8000))
	}
	if again := lastPartition(t, big); again != state {
		t.Errorf("second boot changed the partition: %+v, was %+v", again, state)
	}
	if again := checkStateFS(t, big, state); again != blocks {
		t.Errorf("second boot changed the filesystem: %d blocks, was %d", again, blocks)
	}
}

// lastPartition reads the disk's GPT as sgdisk -p shows it and returns its
// last partition through partitions.ReadTable, after checking both agree.
func lastPartition(t *testing.T, disk string) partitions.PartitionInfo {
	t.Helper()
	parts, err := partitions.ReadTable(disk)
	if err != nil {
		t.Fatal(err)
	}
	last := parts[len(parts)-1]
	out := output(t, "sgdisk", "-p", disk)
	row := regexp.MustCompile(fmt.Sprintf(`(?m)^\s+%d\s+%d\s+(\d+)\s.*%s$`, last.Number, last.FirstLBA, last.Label)).FindStringSubmatch(out)
	if row == nil || row[1] != strconv.FormatUint(last.LastLBA, 10) {
		t.Fatalf("sgdisk -p does not show %s ending at %d:\n%s", last.Label, last.LastLBA, out)
	}
	return last
}

// checkStateFS runs e2fsck -fn on the state filesystem in the disk image
// (it must be clean) and returns its block count from dumpe2fs.
func checkStateFS(t *testing.T, disk string, p partitions.PartitionInfo) int64 {
	t.Helper()
	dev := fmt.Sprintf("%s?offset=%d", disk, int64(p.FirstLBA)*partitions.SectorSize)
	if out, err := exec.Command("e2fsck", "-fn", dev).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn on the state filesystem: %v\n%s", err, out)
	}
	out := output(t, "dumpe2fs", "-h", dev)
	m := regexp.MustCompile(`(?m)^Block count:\s+(\d+)$`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "Filesystem state:         clean") {
		t.Fatalf("dumpe2fs -h: no block count or not clean:\n%s", out)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
