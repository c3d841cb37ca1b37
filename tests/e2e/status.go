package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/update"
	"github.com/cairn-edge/cairn/images/rootfs"
	"github.com/cairn-edge/cairn/partitions"
)

// Status is one `cairn-agent status --output json` the device printed.
type Status struct {
	api.DeviceStatus
	Offset int // console offset just after the line
}

// The reporter's lines share the serial console with the kernel and the
// getty, whose "login: " prompt has no line break: a line may start after
// such a prefix, so the patterns are anchored only at their end.
var (
	statusLine = regexp.MustCompile(`(?m)\bcairn-e2e status ([A-Za-z0-9+/=]+)$`)
	attestLine = regexp.MustCompile(`(?m)\bcairn-e2e attest ([0-9a-f]{64}) ([A-Za-z0-9+/=]+)$`)
	unitsLine  = regexp.MustCompile(`(?m)\bcairn-e2e units (\S+) failed:((?: \S+)*)$`)
	// watchdogLine is /dev/watchdog0's state, timeout and identity.
	watchdogLine = regexp.MustCompile(`(?m)\bcairn-e2e watchdog (\S+) (\S+) (.*)$`)
)

// WaitBootFinished waits for the reporter's lines, printed once per boot
// after from when systemd has finished starting, and fails unless systemd
// says the system is running with no failed unit and has taken over the
// watchdog cairn-init armed (its timeout is systemd's, not cairn-init's).
func (m *Machine) WaitBootFinished(ctx context.Context, from int) error {
	sub, _, err := m.WaitFor(ctx, from, unitsLine)
	if err != nil {
		return fmt.Errorf("systemd never finished starting: %w", err)
	}
	if state, failed := sub[1], strings.Fields(sub[2]); state != "running" || len(failed) > 0 {
		return fmt.Errorf("systemd is %s with failed units %v, want running with none", state, failed)
	}
	wd, _, err := m.WaitFor(ctx, from, watchdogLine)
	if err != nil {
		return fmt.Errorf("no watchdog line: %w", err)
	}
	want := fmt.Sprint(int(rootfs.RuntimeWatchdog / time.Second))
	if wd[1] != "active" || wd[2] != want {
		return fmt.Errorf("watchdog0 (%s) is %s with a timeout of %ss, want active with systemd's %ss", wd[3], wd[1], wd[2], want)
	}
	return nil
}

// Statuses are the status lines the console shows from offset from on;
// lines garbled by interleaved kernel messages are skipped.
func Statuses(console string, from int) []Status {
	var out []Status
	for _, loc := range statusLine.FindAllStringSubmatchIndex(console[min(from, len(console)):], -1) {
		raw, err := base64.StdEncoding.DecodeString(console[from+loc[2] : from+loc[3]])
		if err != nil {
			continue
		}
		var s Status
		if json.Unmarshal(raw, &s.DeviceStatus) != nil || s.DeviceStatus.Status == nil {
			continue
		}
		s.Offset = from + loc[1]
		out = append(out, s)
	}
	return out
}

// WaitStatus waits for a status printed after offset from for which ok
// returns true, and returns it. describe, when the wait fails, says what
// the device last reported.
func (m *Machine) WaitStatus(ctx context.Context, from int, ok func(*Status) bool) (*Status, error) {
	for {
		_, next, err := m.WaitFor(ctx, from, statusLine)
		if err != nil {
			return nil, fmt.Errorf("%w; last status: %s", err, m.LastStatus(0).Describe())
		}
		for _, s := range Statuses(m.console.String()[:next], from) {
			if ok(&s) {
				return &s, nil
			}
		}
		from = next
	}
}

// LastStatus is the newest status printed after from, or nil.
func (m *Machine) LastStatus(from int) *Status {
	all := Statuses(m.console.String(), from)
	if len(all) == 0 {
		return nil
	}
	return &all[len(all)-1]
}

// Booted is the slot the device runs from.
func (s *Status) Booted() partitions.Slot { return s.Status.Booted }

// Phase is the update phase, "" when the agent did not answer.
func (s *Status) Phase() update.Phase {
	if s.Update == nil {
		return ""
	}
	return s.Update.Phase
}

// Slot is the row of one slot.
func (s *Status) Slot(slot partitions.Slot) (row struct {
	Version   string
	Priority  int
	TriesLeft int
	OK        bool
}) {
	for _, r := range s.Slots {
		if r.Slot == slot {
			row.Version, row.Priority, row.TriesLeft, row.OK = r.Version, r.Priority, r.TriesLeft, r.OK
		}
	}
	return row
}

// RunningVersion is the release of the booted slot as the device reports it.
func (s *Status) RunningVersion() string { return s.Slot(s.Booted()).Version }

// IsBad reports whether the device lists version as a bad release.
func (s *Status) IsBad(version string) bool {
	if s.Update == nil {
		return false
	}
	for _, b := range s.Update.Bad {
		if b.Version == version {
			return true
		}
	}
	return false
}

// Describe is a one-line summary for failure messages.
func (s *Status) Describe() string {
	if s == nil {
		return "none printed"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "booted %s", s.Booted())
	for _, r := range s.Slots {
		fmt.Fprintf(&b, "; %s %s prio %d tries %d ok %v", r.Slot, r.Version, r.Priority, r.TriesLeft, r.OK)
	}
	if u := s.Update; u != nil {
		fmt.Fprintf(&b, "; update %s %s", u.Phase, u.Version)
		if u.Reason != "" {
			fmt.Fprintf(&b, " (%s)", u.Reason)
		}
		if u.LastError != "" {
			fmt.Fprintf(&b, " last error: %s", u.LastError)
		}
	} else {
		b.WriteString("; agent not answering")
	}
	if s.Measurement != nil {
		raw, _ := json.Marshal(s.Measurement)
		fmt.Fprintf(&b, "; measurement %s", raw)
	}
	return b.String()
}

// Attestation is a bundle the device printed with the nonce it answered.
type Attestation struct {
	Nonce  string
	Bundle []byte
}

// WaitAttestation waits for an attestation bundle printed after from.
func (m *Machine) WaitAttestation(ctx context.Context, from int) (*Attestation, int, error) {
	for {
		subs, next, err := m.WaitFor(ctx, from, attestLine)
		if err != nil {
			return nil, from, err
		}
		if b, err := base64.StdEncoding.DecodeString(subs[2]); err == nil {
			return &Attestation{Nonce: subs[1], Bundle: b}, next, nil
		}
		from = next
	}
}

// Verification is what `cairn attest verify --output json` reports.
type Verification struct {
	Summary         string `json:"summary"`
	Slot            string `json:"slot"`
	Release         string `json:"release"`
	Board           string `json:"board"`
	Measured        bool   `json:"measured"`
	MatchesManifest bool   `json:"matches_manifest"`
}

// Verify checks the bundle on the host with `cairn attest verify` against
// the channel's trusted root and signed releases.
func (c *Channel) Verify(ctx context.Context, a *Attestation, dir string) (*Verification, error) {
	if !c.IssuedNonce(a.Nonce) {
		return nil, fmt.Errorf("attestation answers nonce %s, which this host never issued", a.Nonce)
	}
	bundle := filepath.Join(dir, "bundle-"+a.Nonce[:8]+".json")
	if err := os.WriteFile(bundle, a.Bundle, 0o644); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, c.art.Cairn, "attest", "verify", bundle, "--nonce", a.Nonce,
		"--trusted-root", c.TrustedRoot(), "--repository", filepath.Join(c.Dir, "repository"), "--output", "json")
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		return nil, fmt.Errorf("cairn attest verify: %w: %s", err, msg)
	}
	var v Verification
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("cairn attest verify output %q: %w", out, err)
	}
	return &v, nil
}

var measuredRelease = regexp.MustCompile(`release ([^ ,]+)`)

// MeasuredVersion is the release the device measured into its TPM at boot
// (from the measurement summary), "" when it has none.
func (s *Status) MeasuredVersion() string {
	if s.Measurement == nil {
		return ""
	}
	if m := measuredRelease.FindStringSubmatch(s.Measurement.Summary); m != nil {
		return m[1]
	}
	return ""
}

// regexpKernelPanic is the kernel's last word when it cannot go on.
var regexpKernelPanic = regexp.MustCompile(`Kernel panic - not syncing`)
