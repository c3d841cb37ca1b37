package vmtest

import (
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
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

func TestResolveModulesPutsDependenciesFirst(t *testing.T) {
	if testing.Short() {
		t.Skip("fetches a Debian kernel package; skipped under -short")
	}
	cache, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	k, err := DebianKernel(context.Background(), cache)
	if err != nil {
		t.Fatal(err)
	}
	mods, err := ResolveModules(k.Modules, []string{"8021q", "bonding", "veth"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mods {
		deps, err := moduleDepends(m.Name, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range deps {
			if !slices.Contains(names, moduleName(d)) {
				t.Errorf("%s comes before its dependency %s: %v", m.Name, d, names)
			}
		}
		names = append(names, m.Name)
	}
	for _, want := range []string{"8021q", "garp", "mrp", "bonding", "tls", "veth"} {
		if !slices.Contains(names, want) {
			t.Errorf("resolved %v, lacks %s", names, want)
		}
	}
	if _, err := ResolveModules(k.Modules, []string{"no_such_module"}); !errors.Is(err, ErrNoModule) {
		t.Errorf("unknown module: err = %v, want ErrNoModule", err)
	}
}
