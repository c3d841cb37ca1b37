package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/api"
)

// TestTamperedImageDiffersInOneByteAlsoWhenResumed serves an image through
// the channel's tampering with and without a Range request: exactly the
// middle byte differs from the file.
func TestTamperedImageDiffersInOneByteAlsoWhenResumed(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "repository", "targets", "b", "1.4.0")
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	if err := os.WriteFile(filepath.Join(target, "x.img.zst"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Channel{Dir: dir, nonces: map[string]bool{}}
	c.Tamper("1.4.0")
	srv := httptest.NewServer(c)
	defer srv.Close()
	for _, from := range []int{0, len(data) / 4} {
		req, _ := http.NewRequest("GET", srv.URL+"/targets/b/1.4.0/x.img.zst", nil)
		if from > 0 {
			req.Header.Set("Range", "bytes="+strconv.Itoa(from)+"-")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var diffs []int
		for i := range got {
			if got[i] != data[from+i] {
				diffs = append(diffs, from+i)
			}
		}
		if len(diffs) != 1 || diffs[0] != len(data)/2 {
			t.Errorf("from %d: bytes differing at %v, want only %d", from, diffs, len(data)/2)
		}
	}
	if _, ranges := c.Served(); !resumedFromOffset(ranges) {
		t.Errorf("ranges %q: the resumed request is not seen", ranges)
	}
}

// TestStatusesSkipGarbledLines reads the reporter's lines: a line cut by a
// kernel message is skipped, a whole one is decoded.
func TestStatusesSkipGarbledLines(t *testing.T) {
	raw, _ := json.Marshal(api.DeviceStatus{Status: &agent.Status{Booted: "B"}})
	line := base64.StdEncoding.EncodeToString(raw)
	console := "cairn-e2e status " + line[:10] + "\n[  12.3] kernel says\n" + "cairn-e2e status " + line + "\n"
	got := Statuses(console, 0)
	if len(got) != 1 || got[0].Booted() != "B" || got[0].Offset != len(console)-1 {
		t.Fatalf("Statuses = %+v, want the one whole line", got)
	}
}

// TestReporterLinesAfterLoginPrompt reads lines that the getty's "login: "
// prompt, which ends without a line break, runs into.
func TestReporterLinesAfterLoginPrompt(t *testing.T) {
	raw, _ := json.Marshal(api.DeviceStatus{Status: &agent.Status{Booted: "B"}})
	nonce := strings.Repeat("ab", 32)
	console := "cairn-e2e login: cairn-e2e attest " + nonce + " eyJ2IjoxfQ==\n" +
		"cairn-e2e login: cairn-e2e status " + base64.StdEncoding.EncodeToString(raw) + "\n"
	if m := attestLine.FindStringSubmatch(console); m == nil || m[1] != nonce || m[2] != "eyJ2IjoxfQ==" {
		t.Errorf("attestation after the login prompt: got %q", m)
	}
	if got := Statuses(console, 0); len(got) != 1 || got[0].Booted() != "B" {
		t.Errorf("status after the login prompt: got %+v", got)
	}
}

// TestBootFinishedNamesFailedUnits reads the reporter's lines about
// systemd's state and the watchdog: running with none failed, and the
// watchdog active with systemd's timeout, passes; anything else names the
// state and the units, or the watchdog's state and timeout.
func TestBootFinishedNamesFailedUnits(t *testing.T) {
	const wd = "cairn-e2e watchdog active 120 Software Watchdog\n"
	for _, c := range []struct{ console, wantErr string }{
		{wd + "cairn-e2e login: cairn-e2e units running failed:\n", ""},
		{wd + "cairn-e2e units degraded failed: systemd-remount-fs.service dev-disk-by\\x2dlabel-X.device\n",
			"systemd is degraded with failed units [systemd-remount-fs.service dev-disk-by\\x2dlabel-X.device]"},
		{wd + "cairn-e2e units stopping failed:\n", "systemd is stopping"},
		{"cairn-e2e watchdog active 300 Software Watchdog\ncairn-e2e units running failed:\n",
			"watchdog0 (Software Watchdog) is active with a timeout of 300s, want active with systemd's 120s"},
		{"cairn-e2e watchdog cat: /sys/class/watchdog/watchdog0/state: No such file or directory\ncairn-e2e units running failed:\n",
			"watchdog0"},
	} {
		m := &Machine{console: &Console{}, exited: make(chan struct{})}
		m.console.Write([]byte("[  1.0] booting\n" + c.console))
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		err := m.WaitBootFinished(ctx, 0)
		cancel()
		if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%q: got %v, want %q", c.console, err, c.wantErr)
		}
	}
}

// TestReleaseUnitsAreValidForSystemd has systemd's own parser read the
// units every kind of release adds: a quoting slip there silently keeps a
// release from being what its scenario needs (a never-ready release whose
// node became Ready after all), which only shows many minutes into QEMU.
func TestReleaseUnitsAreValidForSystemd(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if testing.Short() {
			t.Skip("needs systemd-analyze (Debian package systemd)")
		}
		t.Fatalf("systemd-analyze (Debian package systemd) is needed: %v", err)
	}
	for _, kind := range []Kind{Good, NeverReady, KernelPanic} {
		dir := t.TempDir()
		var units []string
		for _, f := range (Release{Version: "1.0.0", Kind: kind}).overlay() {
			if !strings.HasSuffix(f.path, ".service") {
				continue
			}
			// The reporter's script is not on this machine; systemd checks
			// that ExecStart's program exists.
			data := strings.ReplaceAll(f.data, "/"+reportScript, "/bin/true")
			p := filepath.Join(dir, filepath.Base(f.path))
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			units = append(units, p)
		}
		if len(units) != 2 {
			t.Fatalf("%s: %d units in the overlay, want the reporter's and the k3s switch", kind, len(units))
		}
		out, err := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, units...)...).CombinedOutput()
		if err != nil || strings.Contains(string(out), filepath.Base(k3sUnit)) || strings.Contains(string(out), "quoting") {
			t.Errorf("%s release: systemd-analyze verify: %v\n%s", kind, err, out)
		}
	}
}

// TestPruneCacheRemovesOnlyEntriesUnusedForADay builds a cache with
// entries of several ages: only those unused for longer than the TTL go,
// never the one in use, and a used entry's age starts again.
func TestPruneCacheRemovesOnlyEntriesUnusedForADay(t *testing.T) {
	cache := t.TempDir()
	now := time.Now()
	entry := func(name string, done bool, age time.Duration) string {
		dir := filepath.Join(cache, name)
		if err := os.MkdirAll(filepath.Join(dir, "releases"), 0o755); err != nil {
			t.Fatal(err)
		}
		at := now.Add(-age)
		if done {
			if err := os.WriteFile(filepath.Join(dir, "done"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(filepath.Join(dir, "done"), at, at); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chtimes(dir, at, at); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	old := entry("qemu-x86_64-old", true, 2*CacheTTL)
	recent := entry("qemu-x86_64-recent", true, time.Hour)
	unfinished := entry("qemu-aarch64-unfinished", false, 2*CacheTTL)
	inUse := entry("qemu-x86_64-in-use", true, 3*CacheTTL)
	used := entry("qemu-aarch64-used", true, 2*CacheTTL)
	if err := touchEntry(used, now); err != nil {
		t.Fatal(err)
	}
	if err := pruneCache(cache, inUse, CacheTTL, now, t.Logf); err != nil {
		t.Fatal(err)
	}
	for dir, kept := range map[string]bool{old: false, unfinished: false, recent: true, inUse: true, used: true} {
		_, err := os.Stat(dir)
		if kept && err != nil || !kept && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: kept %v, stat %v", filepath.Base(dir), kept, err)
		}
	}
}
