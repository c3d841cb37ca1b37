package host

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
	"github.com/cairn-edge/cairn/images/kmod"
	"github.com/cairn-edge/cairn/tests/vmtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fakeSys is the kernel for tests that must not touch the host's: it
// records what Apply asked for.
type fakeSys struct {
	hostname string
	sysctl   map[string]string
	loaded   map[string]bool
	release  string
	loads    []string
}

func newFakeSys(release string) *fakeSys {
	return &fakeSys{hostname: "cairn-1a2b3c", release: release, loaded: map[string]bool{},
		sysctl: map[string]string{"vm/max_map_count": "65530\n", "net/ipv4/ip_forward": "0\n"}}
}

func (f *fakeSys) Hostname() (string, error)      { return f.hostname, nil }
func (f *fakeSys) SetHostname(n string) error     { f.hostname = n; return nil }
func (f *fakeSys) KernelRelease() (string, error) { return f.release, nil }
func (f *fakeSys) ModuleLoaded(n string) bool     { return f.loaded[n] }
func (f *fakeSys) LoadModule(m kmod.Module) error {
	f.loaded[m.Name] = true
	f.loads = append(f.loads, m.Name)
	return nil
}
func (f *fakeSys) Sysctl(p string) (string, error) {
	v, ok := f.sysctl[p]
	if !ok {
		return "", fs.ErrNotExist
	}
	return v, nil
}
func (f *fakeSys) SetSysctl(p, v string) error { f.sysctl[p] = v + "\n"; return nil }

// imageRoot lays out a temp tree the way a Cairn image is at run time:
// the image's accounts in /etc, /etc/hostname a symlink into /var, a
// zone file, and the modules of the Debian kernel vmtest boots.
func imageRoot(t *testing.T) (string, *fakeSys) {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" +
			"sshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n",
		"etc/group":                             "root:x:0:\ndaemon:x:1:\nadm:x:4:\nshadow:x:42:\nnogroup:x:65534:\n",
		"etc/shadow":                            "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nsshd:!:19000::::::\n",
		"usr/share/zoneinfo/Europe/Berlin":      "TZif2 fake zone\n",
		"usr/share/zoneinfo/UTC":                "TZif2 fake zone\n",
		"var/lib/cairn/etc/hostname":            "cairn-1a2b3c\n",
		"var/lib/cairn/etc/ssh/.keep-host-keys": "",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/var/lib/cairn/etc/hostname", filepath.Join(root, "etc/hostname")); err != nil {
		t.Fatal(err)
	}
	k := vmtest.TestKernel(t)
	if err := os.MkdirAll(filepath.Join(root, "lib/modules"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(k.Modules, filepath.Join(root, "lib/modules", k.Release)); err != nil {
		t.Fatal(err)
	}
	return root, newFakeSys(k.Release)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if testing.Short() {
		t.Skip("needs root (file owners); skipped under -short")
	}
	t.Fatal("needs root: file owners and namespaces")
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if testing.Short() {
			t.Skipf("%s not installed (scripts/install-deps.sh)", name)
		}
		t.Fatalf("%s not installed: run scripts/install-deps.sh", name)
	}
}

func resolve(t *testing.T, userData, metaData string) *cloudinit.Config {
	t.Helper()
	cfg, err := cloudinit.Resolve(cloudinit.Seed{UserData: []byte(userData), MetaData: []byte(metaData)})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func apply(t *testing.T, h *Host, cfg *cloudinit.Config, firstBoot bool) []Action {
	t.Helper()
	acts, err := h.Apply(context.Background(), cfg, firstBoot)
	if err != nil {
		t.Fatalf("apply: %v (actions %v)", err, acts)
	}
	return acts
}

// dumpTree lists every entry under root with type, mode, owner and
// content (or link target), skipping the kernel's modules.
func dumpTree(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." || rel == "lib" || strings.HasPrefix(rel, "lib/") {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %s %d:%d", rel, fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if len(b) > 0 {
				line += "\n\t" + strings.ReplaceAll(strings.TrimSuffix(string(b), "\n"), "\n", "\n\t")
			}
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n") + "\n"
}

func (f *fakeSys) dump() string {
	var keys []string
	for k := range f.sysctl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := "hostname " + f.hostname + "\n"
	for _, k := range keys {
		s += "sysctl " + k + " = " + strings.TrimSpace(f.sysctl[k]) + "\n"
	}
	return s + "modules loaded " + strings.Join(f.loads, " ") + "\n"
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func opsOf(acts []Action) []string {
	var s []string
	for _, a := range acts {
		s = append(s, a.String())
	}
	return s
}

func contains(acts []Action, s string) bool { return slices.Contains(opsOf(acts), s) }
