package kmod_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/cairn-edge/cairn/images/kmod"
	"github.com/cairn-edge/cairn/tests/vmtest"
)

func TestResolveModulesPutsDependenciesFirst(t *testing.T) {
	k := vmtest.TestKernel(t)
	mods, err := kmod.ResolveModules(k.Modules, []string{"8021q", "bonding", "veth"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mods {
		deps, err := kmod.ModuleDepends(m.Name, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range deps {
			if !slices.Contains(names, kmod.ModuleName(d)) {
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
	if _, err := kmod.ResolveModules(k.Modules, []string{"no_such_module"}); !errors.Is(err, kmod.ErrNoModule) {
		t.Errorf("unknown module: err = %v, want kmod.ErrNoModule", err)
	}
}
