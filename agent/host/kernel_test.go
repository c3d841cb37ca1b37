package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/tests/vmtest"
)

// TestModulesLoadIntoARealKernel loads cairn.modules through Apply and
// Kernel (finit_module from a memfd) into the Debian kernel of a QEMU
// guest, whose /lib/modules holds only the module files a device would
// have for them: nothing is loaded beforehand, so /proc/modules shows
// what Apply did.
func TestModulesLoadIntoARealKernel(t *testing.T) {
	if vmtest.InGuest() {
		loadModulesInGuest(t)
		return
	}
	k := vmtest.TestKernel(t)
	dst := "/lib/modules/" + k.Release
	files := map[string]string{dst + "/modules.builtin": filepath.Join(k.Modules, "modules.builtin")}
	for _, dir := range []string{"kernel/net/8021q", "kernel/net/802", "kernel/net/llc", "kernel/drivers/net"} {
		files[dst+"/"+dir] = filepath.Join(k.Modules, dir)
	}
	vmtest.Run(t, vmtest.Guest{Run: "^TestModulesLoadIntoARealKernel$", Files: files})
}

func loadModulesInGuest(t *testing.T) {
	h := &Host{Root: "/", Sys: Kernel{}}
	cfg := resolve(t, "#cloud-config\ncairn:\n  modules: [8021q, dummy]\n", "instance-id: m\n")
	if loaded := procModules(t); strings.Contains(loaded, "8021q ") || strings.Contains(loaded, "dummy ") {
		t.Fatalf("modules loaded before Apply:\n%s", loaded)
	}
	acts, err := h.Apply(t.Context(), cfg, false)
	if err != nil {
		t.Fatalf("apply: %v (after %v)", err, acts)
	}
	var loads []string
	for _, a := range acts {
		if a.Op == OpModule {
			loads = append(loads, a.Detail)
		}
	}
	if got := strings.Join(loads, " "); got != "mrp llc stp garp 8021q dummy" {
		t.Errorf("loaded %q, want mrp llc stp garp 8021q dummy (dependencies first)", got)
	}
	loaded := procModules(t)
	for _, m := range []string{"8021q", "garp", "mrp", "stp", "llc", "dummy"} {
		if !strings.Contains(loaded, "\n"+m+" ") && !strings.HasPrefix(loaded, m+" ") {
			t.Errorf("%s not in /proc/modules:\n%s", m, loaded)
		}
		if _, err := os.Stat("/sys/module/" + m); err != nil {
			t.Errorf("/sys/module/%s: %v", m, err)
		}
	}
	if again, err := h.Apply(t.Context(), cfg, false); err != nil || len(again) != 0 {
		t.Errorf("second apply: %v, %v; want nothing to do", again, err)
	}
}

func procModules(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/modules")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
