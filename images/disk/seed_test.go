package disk

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
	"github.com/cairn-edge/cairn/partitions"
)

// TestImageCarriesItsSeed builds an image with user-data and meta-data:
// its CIDATA partition is a FAT volume that the agent's own seed reader
// reads back byte for byte.
func TestImageCarriesItsSeed(t *testing.T) {
	r := newRelease(t, "qemu-x86_64")
	dir := t.TempDir()
	slotA := filepath.Join(dir, "a.img")
	r.slotImage(t, "1.0.0", slotA)
	out := filepath.Join(dir, "disk.img")
	userData := []byte("#cloud-config\nhostname: store-0042\n")
	metaData := []byte("instance-id: store-0042\n")
	if _, err := Build(context.Background(), Options{Board: r.board, SlotA: slotA, Out: out, NoCompress: true,
		SourceDateEpoch: testEpoch, UserData: userData, MetaData: metaData}); err != nil {
		t.Fatal(err)
	}
	parts, err := partitions.ReadTable(out)
	if err != nil {
		t.Fatal(err)
	}
	seed, ok := (&partitions.Plan{Partitions: parts}).Partition(partitions.LabelCIData)
	if !ok {
		t.Fatalf("no %s partition in %+v", partitions.LabelCIData, parts)
	}
	vol := filepath.Join(dir, "cidata.img")
	extract(t, out, vol, int64(seed.FirstLBA)*partitions.SectorSize, seed.Bytes)
	got, err := cloudinit.ReadSeedImage(vol)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.UserData) != string(userData) || string(got.MetaData) != string(metaData) {
		t.Errorf("seed read back: user-data %q, meta-data %q; want %q, %q", got.UserData, got.MetaData, userData, metaData)
	}
}

// extract copies n bytes at off of the file src into a new file dst.
func extract(t *testing.T, src, dst string, off, n int64) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	outF, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer outF.Close()
	if _, err := io.Copy(outF, io.NewSectionReader(in, off, n)); err != nil {
		t.Fatal(err)
	}
}
