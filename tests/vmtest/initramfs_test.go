package vmtest

import (
	"os"
	"path"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

func TestInitramfsHasParentsFirstTheConsoleAndToolLibraries(t *testing.T) {
	r := newInitramfs()
	if err := r.addTool("ip"); err != nil {
		t.Fatal(err)
	}
	r.addFile("/lib/modules/veth.ko", []byte("x"), 0o644)
	file := filepath.Join(t.TempDir(), "initramfs.cpio")
	if err := r.write(file); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(f))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]cpio.Record{}
	for _, rec := range recs {
		if dir := path.Dir(rec.Name); dir != "." {
			if _, ok := seen[dir]; !ok {
				t.Errorf("%s comes before its directory %s", rec.Name, dir)
			}
		}
		seen[rec.Name] = rec
	}
	console, ok := seen["dev/console"]
	if !ok || console.Mode&cpio.S_IFMT != cpio.S_IFCHR || console.Rmajor != 5 || console.Rminor != 1 {
		t.Errorf("dev/console = %+v, want character device 5:1", console.Info)
	}
	var libc bool
	for name := range seen {
		libc = libc || path.Base(name) == "libc.so.6"
	}
	for _, want := range []string{"bin/ip", "lib64/ld-linux-x86-64.so.2", "lib/modules/veth.ko", "var/run"} {
		if _, ok := seen[want]; !ok {
			t.Errorf("archive lacks %s", want)
		}
	}
	if !libc {
		t.Errorf("archive lacks libc.so.6, which ip needs")
	}
}
