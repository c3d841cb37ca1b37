package initrd

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadCmdlineTakesTheLastOfAKey(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	line := "console=ttyS0 cairn.pxe=install quiet cairn.pxe=diskless cairn.slot_url=http://10.0.2.2:8080/slot.img?a=b\n"
	if err := os.WriteFile(filepath.Join(root, "proc/cmdline"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := readCmdline(root)
	if err != nil {
		t.Fatal(err)
	}
	if p[ParamPXE] != "diskless" || p[ParamSlotURL] != "http://10.0.2.2:8080/slot.img?a=b" || p[ParamInstall] != "" {
		t.Errorf("parameters %v", p)
	}
}

// TestCopySparseKeepsZerosAsHoles copies 3 MiB holding data only in its
// first and last blocks: the copy reads back equal and allocates little.
func TestCopySparseKeepsZerosAsHoles(t *testing.T) {
	src := make([]byte, 3<<20+100)
	copy(src, "head")
	copy(src[len(src)-4:], "tail")
	f, err := os.Create(filepath.Join(t.TempDir(), "slot.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := copySparse(f, bytes.NewReader(src))
	if err != nil || n != int64(len(src)) {
		t.Fatalf("copySparse = %d, %v; want %d", n, err, len(src))
	}
	if err := f.Truncate(n); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("copy differs (%v)", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 64<<10 {
		t.Errorf("copy allocates %d bytes, want only the two data blocks", st.Blocks*512)
	}
}
