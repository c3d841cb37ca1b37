package rootfs_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/images/initrd"
	"github.com/cairn-edge/cairn/images/kmod"
	"github.com/cairn-edge/cairn/images/rootfs"
	"github.com/cairn-edge/cairn/tests/vmtest"
)

// vendorRoot is a small stand-in for a Debian root whose kernel is the
// amd64 one vmtest fetches, with a modules directory that lacks veth: the
// test's vendor module. It returns the root and the real veth.ko.
func vendorRoot(t *testing.T) (root, release, vethFile string) {
	t.Helper()
	if testing.Short() {
		t.Skip("fetches a Debian kernel package and runs depmod; skipped under -short")
	}
	if _, err := exec.LookPath("depmod"); err != nil {
		if _, err := os.Stat("/usr/sbin/depmod"); err != nil {
			t.Fatal("depmod not installed (Debian package kmod, scripts/install-deps.sh)")
		}
	}
	k := vmtest.TestKernel(t)
	root = t.TempDir()
	mods := filepath.Join(root, "lib/modules", k.Release)
	files := map[string]string{
		"etc/nsswitch.conf":              "passwd: files\ngroup: files\nshadow: files\n",
		"boot/vmlinuz-" + k.Release:      "kernel",
		"lib/modules/" + k.Release + "/": "",
	}
	for name, text := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(name, "/") {
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range []string{"modules.builtin", "modules.order", "kernel/drivers/net/dummy.ko"} {
		data, err := os.ReadFile(filepath.Join(k.Modules, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(mods, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mods, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, k.Release, filepath.Join(k.Modules, "kernel/drivers/net/veth.ko")
}

func testBoard(arch string, initrdModules ...string) *boards.Board {
	return &boards.Board{Name: "vendor-test", Arch: arch, Bootloader: boards.UEFIGrub, InitrdModules: initrdModules}
}

func TestInstallPutsAVendorModuleInTheRootAndTheInitramfs(t *testing.T) {
	root, release, veth := vendorRoot(t)
	err := rootfs.Install(root, rootfs.Cairn{
		Board: testBoard("amd64", "veth"), Agent: []byte("agent"), Init: []byte("init"),
		ReleaseKeyPEM: []byte("key"), Modules: []string{veth},
	})
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(veth)
	if err != nil {
		t.Fatal(err)
	}
	mods := filepath.Join(root, "lib/modules", release)
	got, err := os.ReadFile(filepath.Join(mods, rootfs.UpdatesDir, "veth.ko"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("updates/veth.ko: %v (equal: %v)", err, bytes.Equal(got, want))
	}
	dep, err := os.ReadFile(filepath.Join(mods, "modules.dep"))
	if err != nil {
		t.Fatalf("depmod wrote no index: %v", err)
	}
	if !strings.Contains(string(dep), rootfs.UpdatesDir+"/veth.ko:") {
		t.Errorf("modules.dep lacks updates/veth.ko:\n%s", dep)
	}
	files := initramfsFiles(t, filepath.Join(root, rootfs.InitrdPath))
	if !strings.Contains(string(files[initrd.ModuleList]), "lib/modules/veth.ko\n") {
		t.Errorf("initramfs module list %q lacks veth", files[initrd.ModuleList])
	}
	if !bytes.Equal(files["lib/modules/veth.ko"], want) {
		t.Errorf("initramfs lib/modules/veth.ko is not the vendor module")
	}
}

func TestInstallRefusesAModuleForAnotherKernelBeforeWritingAnything(t *testing.T) {
	root, release, veth := vendorRoot(t)
	for _, tc := range []struct {
		name, arch, release string
	}{
		{"other architecture", "arm64", release},
		{"other release", "amd64", "6.1.0-99-cloud-amd64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.release != release {
				if err := os.Rename(filepath.Join(root, "lib/modules", release), filepath.Join(root, "lib/modules", tc.release)); err != nil {
					t.Fatal(err)
				}
				defer os.Rename(filepath.Join(root, "lib/modules", tc.release), filepath.Join(root, "lib/modules", release))
			}
			err := rootfs.Install(root, rootfs.Cairn{
				Board: testBoard(tc.arch), Agent: []byte("agent"), Init: []byte("init"),
				ReleaseKeyPEM: []byte("key"), Modules: []string{veth},
			})
			if !errors.Is(err, kmod.ErrWrongKernel) {
				t.Fatalf("err = %v, want kmod.ErrWrongKernel", err)
			}
			for _, want := range []string{veth, release + " SMP", tc.release} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			for _, p := range []string{rootfs.AgentPath, rootfs.BoardPath, "lib/modules/" + tc.release + "/updates"} {
				if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s written despite the refused module (%v)", p, err)
				}
			}
		})
	}
}

// initramfsFiles returns the regular files of the newc archive at path.
func initramfsFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(f))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, r := range recs {
		if r.Mode&cpio.S_IFMT != cpio.S_IFREG {
			continue
		}
		data, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatal(err)
		}
		out[r.Name] = data
	}
	return out
}
