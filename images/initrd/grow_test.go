package initrd

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"unsafe"
)

// TestExt4BytesReadsWhatMkfsMade checks the superblock reader against
// mkfs.ext4 and resize2fs, with and without the 64bit feature.
func TestExt4BytesReadsWhatMkfsMade(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Fatalf("mkfs.ext4 not found (package e2fsprogs): %v", err)
	}
	for _, c := range []struct {
		features  string
		blockSize int
	}{{"64bit", 4096}, {"^64bit", 1024}} {
		t.Run(c.features, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "fs.img")
			run := func(name string, args ...string) {
				if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
					t.Fatalf("%s %v: %v\n%s", name, args, err, out)
				}
			}
			run("mkfs.ext4", "-q", "-F", "-O", c.features, "-b", fmt.Sprint(c.blockSize), img, "24M")
			if got, err := ext4Bytes(img); err != nil || got != 24<<20 {
				t.Fatalf("ext4Bytes = %d, %v; want %d", got, err, 24<<20)
			}
			run("truncate", "-s", "40M", img)
			run("resize2fs", "-f", img)
			if got, err := ext4Bytes(img); err != nil || got != 40<<20 {
				t.Errorf("after resize2fs: ext4Bytes = %d, %v; want %d", got, err, 40<<20)
			}
		})
	}
}

func TestBlkpgPartitionMatchesTheKernelStruct(t *testing.T) {
	// long long start, length; int pno; char devname[64], volname[64];
	if got := unsafe.Sizeof(blkpgPartition{}); got != 152 {
		t.Errorf("sizeof(blkpg_partition) = %d, want 152", got)
	}
}
