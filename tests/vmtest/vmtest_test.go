package vmtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// selfTestFail tells the guest half of TestGuestRunsTestsWithModulesAndTools
// to fail, so the host half can see a failure reported as one.
const selfTestFail = "VMTEST_SELFTEST_FAIL"

func TestGuestRunsTestsWithModulesAndTools(t *testing.T) {
	if InGuest() {
		guestChecks(t)
		return
	}
	if testing.Short() {
		t.Skip("boots a QEMU guest; skipped under -short")
	}
	cache, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	g := Guest{Run: "^TestGuestRunsTestsWithModulesAndTools$", Modules: []string{"8021q", "veth"}, Tools: []string{"ip"},
		Files: map[string]string{"/srv/files/vmtest.go": "vmtest.go", "/srv/tree": "internal"}}
	res, err := Boot(context.Background(), g, cache, t.TempDir(), func(l string) { t.Log(l) })
	if err != nil {
		t.Fatalf("passing guest: %v", err)
	}
	t.Logf("kernel %s: build %v, boot and test %v", res.Kernel.Release, res.Build, res.Boot)

	g.Env = []string{selfTestFail + "=1"}
	res, err = Boot(context.Background(), g, cache, t.TempDir(), func(l string) { t.Log(l) })
	if !errors.Is(err, ErrGuestFailed) || res == nil || res.ExitCode != 1 {
		t.Fatalf("failing guest: err = %v, result %+v; want ErrGuestFailed with exit code 1", err, res)
	}
}

// guestChecks runs inside the guest: root, the module loaded with its
// dependencies, the host files copied, the host tool working with its
// libraries.
func guestChecks(t *testing.T) {
	if os.Getenv(selfTestFail) == "1" {
		t.Fatal("failing on purpose")
	}
	if os.Geteuid() != 0 {
		t.Errorf("euid %d, want root", os.Geteuid())
	}
	mods, err := os.ReadFile("/proc/modules")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"8021q ", "garp ", "mrp "} {
		if !strings.Contains(string(mods), m) {
			t.Errorf("module %s not loaded:\n%s", m, mods)
		}
	}
	for _, f := range []string{"/srv/files/vmtest.go", "/srv/tree/plan/plan.go"} {
		if b, err := os.ReadFile(f); err != nil || !strings.Contains(string(b), "\npackage ") {
			t.Errorf("guest file %s: %v", f, err)
		}
	}
	for _, args := range [][]string{
		{"link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"link", "add", "link", "v0", "name", "v0.7", "type", "vlan", "id", "7"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	out, err := exec.Command("ip", "-d", "link", "show", "v0.7").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "vlan protocol 802.1Q id 7") {
		t.Fatalf("ip -d link show v0.7: %v\n%s", err, out)
	}
}

func TestParseResult(t *testing.T) {
	for _, c := range []struct {
		in     string
		code   int
		detail string
		ok     bool
	}{
		{"exit=0", 0, "", true},
		{"exit=1\r", 1, "", true},
		{"exit=-1 read plan: no such file", -1, "read plan: no such file", true},
		{"exit=", -1, "", false},
		{"garbage", -1, "", false},
	} {
		code, detail, ok := parseResult(c.in)
		if code != c.code || detail != c.detail || ok != c.ok {
			t.Errorf("parseResult(%q) = %d, %q, %v; want %d, %q, %v", c.in, code, detail, ok, c.code, c.detail, c.ok)
		}
	}
}
