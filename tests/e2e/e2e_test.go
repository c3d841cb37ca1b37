package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// require skips under -short and fails when a tool the x86 scenarios
// need is missing or the test is not root: CI must never skip them
// silently.
func require(t *testing.T) {
	t.Helper()
	requireTools(t, []string{"qemu-system-x86_64", "swtpm", "mmdebstrap", "mkfs.vfat", "mcopy", "mkfs.ext4", "grub-mkstandalone", "cp", "zstd", "sgdisk"},
		OVMFCode, OVMFVars)
}

// requireTools skips under -short and fails when one of tools is not on
// PATH, one of files is missing, or the test is not root.
func requireTools(t *testing.T, tools []string, files ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end scenarios boot QEMU; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the end-to-end scenarios build Debian roots with mmdebstrap: run as root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (scripts/install-deps.sh installs it): %v", tool, err)
		}
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v (scripts/install-deps.sh installs it)", err)
		}
	}
}

// build builds or finds the artifacts opts name.
func build(t *testing.T, opts BuildOptions) *Artifacts {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	opts.WorkDir, opts.Logf = t.TempDir(), t.Logf
	art, err := Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return art
}

// timings collects how long each step took and prints them when the test
// ends.
type timings struct {
	t     *testing.T
	rows  []string
	start time.Time
}

func newTimings(t *testing.T) *timings {
	tm := &timings{t: t, start: time.Now()}
	t.Cleanup(func() {
		t.Logf("timings:\n  %s\n  total %v", strings.Join(tm.rows, "\n  "), time.Since(tm.start).Round(time.Second))
	})
	return tm
}

func (tm *timings) add(step string, d time.Duration) {
	row := fmt.Sprintf("%-48s %v", step, d.Round(time.Second))
	tm.rows = append(tm.rows, row)
	tm.t.Log(row)
}

// consoleForDebugging shows the device's console on stderr when
// CAIRN_E2E_CONSOLE is set.
func consoleForDebugging() io.Writer {
	if os.Getenv("CAIRN_E2E_CONSOLE") == "" {
		return nil
	}
	return os.Stderr
}
