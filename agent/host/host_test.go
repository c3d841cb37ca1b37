package host

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
	"github.com/cairn-edge/cairn/images/kmod"
)

// TestExamplesGiveTheGoldenTreeAndASecondApplyChangesNothing applies each
// shipped example to an image-like tree on its first boot and compares the
// tree, the kernel calls and the actions with testdata; then applies it
// again, which must do nothing.
func TestExamplesGiveTheGoldenTreeAndASecondApplyChangesNothing(t *testing.T) {
	needRoot(t)
	examples := "../../cloud-init/examples/"
	for _, ex := range []struct{ name, userData, metaData, networkConfig string }{
		{"store-box", examples + "store-box.yaml", "", ""},
		{"factory-agent", examples + "factory-agent/user-data", examples + "factory-agent/meta-data", examples + "factory-agent/network-config"},
		{"ha-server-1", examples + "ha-cluster/server-1.yaml", "", ""},
	} {
		t.Run(ex.name, func(t *testing.T) {
			seed := cloudinit.Seed{UserData: read(t, ex.userData), MetaData: []byte("instance-id: " + ex.name + "\n")}
			if ex.metaData != "" {
				seed.MetaData = read(t, ex.metaData)
				seed.NetworkConfig = read(t, ex.networkConfig)
			}
			cfg, err := cloudinit.Resolve(seed)
			if err != nil {
				t.Fatal(err)
			}
			root, sys := imageRoot(t)
			// The cloud kernel has no CAN modules: say they are loaded
			// (loading is TestModulesLoadAfterTheirDependencies).
			sys.loaded["can"], sys.loaded["can_raw"] = true, true
			h := &Host{Root: root, Sys: sys}
			acts := apply(t, h, cfg, true)
			var got string
			for _, a := range acts {
				got += "action " + a.String() + "\n"
			}
			got += sys.dump() + "\n" + dumpTree(t, root)
			golden(t, ex.name+".golden", got)

			if again := apply(t, h, cfg, false); len(again) != 0 {
				t.Errorf("second apply: %v", again)
			}
			// A crash before MarkFirstBootDone makes the next boot a first
			// boot again; files already written are not rewritten.
			if again := apply(t, h, cfg, true); len(again) != 0 {
				t.Errorf("first-boot apply again: %v", again)
			}
		})
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTimezoneIsAPersistedLinkAndUnsettingItFallsBackToUTC(t *testing.T) {
	needRoot(t)
	root, sys := imageRoot(t)
	h := &Host{Root: root, Sys: sys}
	apply(t, h, resolve(t, "#cloud-config\ntimezone: Europe/Berlin\n", "instance-id: tz\n"), false)
	for link, want := range map[string]string{"etc/localtime": "/var/lib/cairn/etc/localtime",
		"var/lib/cairn/etc/localtime": "/usr/share/zoneinfo/Europe/Berlin"} {
		if got, err := os.Readlink(filepath.Join(root, link)); err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %s", link, got, err, want)
		}
	}
	acts := apply(t, h, resolve(t, "#cloud-config\nhostname: x\n", "instance-id: tz\n"), false)
	if !contains(acts, "remove /var/lib/cairn/etc/localtime") {
		t.Errorf("actions %v", acts)
	}
	_, err := h.Apply(t.Context(), resolve(t, "#cloud-config\ntimezone: Mars/Olympus\n", "instance-id: tz\n"), false)
	if err == nil {
		t.Errorf("an unknown zone applied")
	}
}

func TestSysctlPathFollowsSysctl8(t *testing.T) {
	for key, want := range map[string]string{
		"net.ipv4.ip_forward":               "net/ipv4/ip_forward",
		"net.ipv4.conf.eth0/100.forwarding": "net/ipv4/conf/eth0.100/forwarding",
		"net/ipv4/conf/eth0.100/forwarding": "net/ipv4/conf/eth0.100/forwarding",
		"vm.max_map_count":                  "vm/max_map_count",
	} {
		if got := SysctlPath(key); got != want {
			t.Errorf("SysctlPath(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestModulesLoadAfterTheirDependenciesOnce(t *testing.T) {
	root, sys := imageRoot(t)
	h := &Host{Root: root, Sys: sys}
	cfg := resolve(t, "#cloud-config\ncairn:\n  modules: [8021q, dummy]\n", "instance-id: m\n")
	apply(t, h, cfg, false)
	if got := strings.Join(sys.loads, " "); got != "mrp llc stp garp 8021q dummy" {
		t.Errorf("loaded %q, want mrp llc stp garp 8021q dummy (dependencies first)", got)
	}
	if again := apply(t, h, cfg, false); len(again) != 0 {
		t.Errorf("second apply: %v", again)
	}
	_, err := h.Apply(t.Context(), resolve(t, "#cloud-config\ncairn:\n  modules: [no_such_mod]\n", "instance-id: m\n"), false)
	if !errors.Is(err, kmod.ErrNoModule) {
		t.Errorf("unknown module: %v, want kmod.ErrNoModule", err)
	}
}
