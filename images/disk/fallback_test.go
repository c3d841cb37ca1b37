package disk

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/partitions/bootstate"
	"github.com/cairn-edge/cairn/partitions/grub/boottest"
)

// TestFlippedSlotIsRefusedAndTheBootloaderFallsBack puts release 1.0.0 in
// A (committed) and 1.1.0 in B on trial with one try, B's filesystem
// superblock carrying one flipped byte: dm-verity refuses the block,
// cairn-init reboots, GRUB has spent B's try and boots A.
func TestFlippedSlotIsRefusedAndTheBootloaderFallsBack(t *testing.T) {
	boottest.Require(t, "qemu-system-x86_64", ovmfCode)
	out := flippedBOnTrial(t, newRelease(t, "qemu-x86_64"))
	text, took := console(t, 10*time.Minute, agentUp, "qemu-system-x86_64", qemuX86(t, out)...)
	checkFellBack(t, text, took)
}

// flippedBOnTrial builds a disk with release 1.0.0 in A (committed) and
// 1.1.0 in B on trial with one try, B's filesystem superblock carrying one
// flipped byte.
func flippedBOnTrial(t *testing.T, r *testRelease) string {
	t.Helper()
	dir := t.TempDir()
	slotA, slotB := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	r.slotImage(t, "1.0.0", slotA)
	r.slotImage(t, "1.1.0", slotB)
	flipByte(t, slotB, 1024+0x78) // s_volume_name, inside verity data block 0
	out := filepath.Join(dir, "disk.img")
	vars := []bootstate.Var{
		{Name: "cairn_a_priority", Value: "1"}, {Name: "cairn_a_tries", Value: "0"}, {Name: "cairn_a_ok", Value: "1"},
		{Name: "cairn_b_priority", Value: "2"}, {Name: "cairn_b_tries", Value: "1"}, {Name: "cairn_b_ok", Value: "0"},
	}
	if _, err := Build(context.Background(), Options{Board: r.board, SlotA: slotA, SlotB: slotB, Out: out,
		BootVars: vars, NoCompress: true, SourceDateEpoch: testEpoch}); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkFellBack checks that the console shows cairn-init refusing B and
// the agent running in A afterwards.
func checkFellBack(t *testing.T, text string, took time.Duration) {
	t.Helper()
	t.Logf("refused B and booted A to cairn-agent in %v", took.Round(time.Second))
	refused := regexp.MustCompile(`cairn-init: boot failed: slot B: slot refused: mount /dev/mapper/cairn-root .*: input/output error`)
	if !refused.MatchString(text) {
		t.Errorf("console does not show cairn-init refusing B:\n%s", tailOf(text, 8000))
	}
	if m := agentUp.FindStringSubmatch(text); m[1] != "A" {
		t.Errorf("booted slot %s after the refusal, want A", m[1])
	}
}

// TestBuilderIsReproducibleAndBmaptoolCopiesTheImage builds the slot image
// twice from the same root, key and SOURCE_DATE_EPOCH, then checks the disk
// image's .bmap with bmaptool, which copies only the mapped blocks and
// verifies each range's checksum.
func TestBuilderIsReproducibleAndBmaptoolCopiesTheImage(t *testing.T) {
	r := newRelease(t, "qemu-x86_64")
	boottest.Require(t, "bmaptool", "zstd")
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one.img"), filepath.Join(dir, "two.img")
	a, b := r.slotImage(t, "1.0.0", one), r.slotImage(t, "1.0.0", two)
	if a.SHA256 != b.SHA256 || a.RootHash != b.RootHash {
		t.Fatalf("two builds differ: %s and %s", a.SHA256, b.SHA256)
	}
	out := filepath.Join(dir, "disk.img")
	res, err := Build(context.Background(), Options{Board: r.board, SlotA: one, Out: out, SourceDateEpoch: testEpoch})
	if err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(dir, "copy.img")
	boottest.Run(t, "bmaptool", "copy", "--bmap", out+".bmap", out, copied)
	if got := fileSum(t, copied); got != res.Image.SHA256 {
		t.Errorf("bmaptool copy gives %s, the image is %s", got, res.Image.SHA256)
	}
	boottest.Run(t, "zstd", "-q", "-d", "-f", out+".zst", "-o", filepath.Join(dir, "unzst.img"))
	if got := fileSum(t, filepath.Join(dir, "unzst.img")); got != res.Image.SHA256 {
		t.Errorf(".zst decompresses to %s, the image is %s", got, res.Image.SHA256)
	}
	flipByte(t, out, int64(res.Partitions[1].FirstLBA)*512+4096)
	if err := runErr("bmaptool", "copy", "--bmap", out+".bmap", out, copied); err == nil {
		t.Error("bmaptool copied an image whose mapped block changed")
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}
