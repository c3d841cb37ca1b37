package systemd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unitKeys reads a unit file's keys as "Section.Key" (the last setting
// wins, as in systemd for these keys).
func unitKeys(t *testing.T, unit []byte) map[string]string {
	t.Helper()
	keys := map[string]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("unit line %q: no '='", line)
			}
			keys[section+"."+k] = v
		}
	}
	return keys
}

// TestAgentUnitIsValidForSystemd has systemd's own parser read the unit,
// with ExecStart pointed at a binary that exists here.
func TestAgentUnitIsValidForSystemd(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if testing.Short() {
			t.Skip("needs systemd-analyze (Debian package systemd)")
		}
		t.Fatalf("systemd-analyze (Debian package systemd) is needed: %v", err)
	}
	dir := t.TempDir()
	unit := bytes.ReplaceAll(AgentUnit, []byte("/usr/bin/cairn-agent"), []byte("/bin/true"))
	if err := os.WriteFile(filepath.Join(dir, AgentUnitName), unit, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("systemd-analyze", "verify", "--man=no", filepath.Join(dir, AgentUnitName))
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestAgentThatCrashesOnEveryStartRebootsTheMachine: restarted every
// RestartSec, a crashing agent reaches StartLimitBurst starts well within
// StartLimitIntervalSec, and the action is a reboot, which spends a
// trial boot's try.
func TestAgentThatCrashesOnEveryStartRebootsTheMachine(t *testing.T) {
	k := unitKeys(t, AgentUnit)
	want := map[string]string{"Unit.StartLimitAction": "reboot", "Service.Restart": "always", "Service.Type": "notify"}
	for key, v := range want {
		if k[key] != v {
			t.Errorf("%s=%q, want %q", key, k[key], v)
		}
	}
	dur := func(key string) time.Duration {
		// systemd's "min" is Go's "m"; the rest of the unit's spans read alike.
		d, err := time.ParseDuration(strings.Replace(k[key], "min", "m", 1))
		if err != nil {
			t.Fatalf("%s=%q: %v", key, k[key], err)
		}
		return d
	}
	interval, restart := dur("Unit.StartLimitIntervalSec"), dur("Service.RestartSec")
	burst, err := strconv.Atoi(k["Unit.StartLimitBurst"])
	if err != nil || burst < 2 {
		t.Fatalf("StartLimitBurst=%q: want a number above 1", k["Unit.StartLimitBurst"])
	}
	// A crash loop of starts RestartSec apart must hit the limit, even
	// when each start takes until the watchdog kills it.
	if loop := time.Duration(burst) * (restart + dur("Service.WatchdogSec")); loop >= interval {
		t.Errorf("%d starts of a hanging agent take %s, not within StartLimitIntervalSec=%s", burst, loop, interval)
	}
}
