package kmod_test

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/images/kmod"
	"github.com/cairn-edge/cairn/tests/vmtest"
)

func TestCheckTakesOnlyModulesOfTheKernelsReleaseAndArchitecture(t *testing.T) {
	k := vmtest.TestKernel(t)
	file := filepath.Join(k.Modules, "kernel/drivers/net/veth.ko")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	info, err := kmod.Check(file, data, elf.EM_X86_64, k.Release)
	if err != nil {
		t.Fatalf("the kernel's own veth.ko: %v", err)
	}
	if info.Name != "veth" || !strings.HasPrefix(info.Vermagic, k.Release+" ") {
		t.Errorf("info = %+v, want name veth and vermagic starting %q", info, k.Release)
	}
	for _, tc := range []struct {
		name    string
		machine elf.Machine
		release string
	}{
		{"other architecture", elf.EM_AARCH64, k.Release},
		{"other release", elf.EM_X86_64, "6.1.0-99-cloud-amd64"},
		{"release prefix only", elf.EM_X86_64, k.Release[:len(k.Release)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kmod.Check(file, data, tc.machine, tc.release)
			if !errors.Is(err, kmod.ErrWrongKernel) {
				t.Fatalf("err = %v, want kmod.ErrWrongKernel", err)
			}
			for _, want := range []string{file, info.Vermagic, tc.release, tc.machine.String()} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
		})
	}
	if _, err := kmod.Check("notes.txt", []byte("not ELF"), elf.EM_X86_64, k.Release); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Errorf("a text file: err = %v, want an error naming notes.txt", err)
	}
}

func TestResolveModulesPrefersUpdatesOverTheKernelPackage(t *testing.T) {
	k := vmtest.TestKernel(t)
	veth, err := os.ReadFile(filepath.Join(k.Modules, "kernel/drivers/net/veth.ko"))
	if err != nil {
		t.Fatal(err)
	}
	dummy, err := os.ReadFile(filepath.Join(k.Modules, "kernel/drivers/net/dummy.ko"))
	if err != nil {
		t.Fatal(err)
	}
	// A modules directory whose kernel/ has an old veth and whose updates/
	// has the one a board vendor ships, as depmod would rank them.
	dir := t.TempDir()
	for path, data := range map[string][]byte{
		"modules.builtin":            nil,
		"kernel/drivers/net/veth.ko": dummy,
		"updates/veth.ko":            veth,
		"updates/vendor/dummy.ko":    dummy,
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, path), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mods, err := kmod.ResolveModules(dir, []string{"veth", "dummy"})
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != 2 || !bytes.Equal(mods[0].Data, veth) || !bytes.Equal(mods[1].Data, dummy) {
		t.Errorf("resolved %d modules; want veth from updates/ and dummy from updates/vendor/", len(mods))
	}
}
