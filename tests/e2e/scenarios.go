package e2e

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/update"
	"github.com/cairn-edge/cairn/partitions"
)

// The scenarios of docs/e2e.md. Each returns what the device ended with,
// and an error naming every expectation the device's own status broke.

// FirstBoot powers the device on: the bootloader picks slot A, cairn-init
// checks its footer and makes the state partition, DHCP, its node joins
// the host's k3s server and is Ready, slot A is committed, and the
// attestation it prints verifies on the host as release 1.0.0 in slot A.
// systemd finishes the boot with no failed unit.
func (l *Lab) FirstBoot(ctx context.Context) (*Step, error) {
	m, errs, err := l.powerOnFirstBoot(ctx)
	if err != nil {
		return nil, err
	}
	node, err := l.K3s.WaitNode(ctx, func(n Node) bool { return n.Ready })
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	l.Timing("power on to the node Ready on the server", m.Uptime())
	l.Logf("node %s is Ready on the k3s server", node.Name)
	if err := l.verifyAttestation(ctx, m, 0, "1.0.0", partitions.SlotA); err != nil {
		errs = append(errs, err)
	}
	if err := firstBootConsole(m); err != nil {
		errs = append(errs, err)
	}
	if err := m.WaitBootFinished(ctx, 0); err != nil {
		errs = append(errs, err)
	}
	return &Step{Release: "1.0.0", Slot: "A", Result: "committed (first boot)", Took: m.Uptime()}, errors.Join(errs...)
}

// powerOnFirstBoot powers the device on for its first boot and waits for
// the agent's first status; errs lists what that status broke of slot A
// booted and committed with release 1.0.0.
func (l *Lab) powerOnFirstBoot(ctx context.Context) (_ *Machine, errs []error, _ error) {
	m, err := l.Device.PowerOn(ctx)
	if err != nil {
		return nil, nil, err
	}
	st, err := m.WaitStatus(ctx, 0, func(s *Status) bool { return s.Update != nil })
	if err != nil {
		return nil, nil, err
	}
	l.Timing("power on to the agent answering", m.Uptime())
	if st.Booted() != partitions.SlotA || !st.Slot(partitions.SlotA).OK {
		errs = append(errs, fmt.Errorf("first boot: %s, want slot A booted and committed", st.Describe()))
	}
	if v := st.MeasuredVersion(); v != "1.0.0" {
		errs = append(errs, fmt.Errorf("measured release %q, want 1.0.0: %s", v, st.Describe()))
	}
	return m, errs, nil
}

// firstBootConsole checks what the bootloader and cairn-init printed on
// the way: slot A chosen, its signed footer checked and measured, the
// state partition made.
func firstBootConsole(m *Machine) error {
	want := []string{"cairn: booting slot A", "signature good", "measured slot A into PCR 13",
		"first boot: creating the state filesystem"}
	text := m.Console().String()
	var errs []error
	for _, w := range want {
		if !strings.Contains(text, w) {
			errs = append(errs, fmt.Errorf("the first boot's console lacks %q", w))
		}
	}
	return errors.Join(errs...)
}

func (l *Lab) verifyAttestation(ctx context.Context, m *Machine, from int, version string, slot partitions.Slot) error {
	a, _, err := m.WaitAttestation(ctx, from)
	if err != nil {
		return err
	}
	v, err := l.Channel.Verify(ctx, a, l.Dir)
	if err != nil {
		return err
	}
	if v.Release != version || v.Slot != string(slot) || !v.Measured || !v.MatchesManifest {
		return fmt.Errorf("cairn attest verify: %+v, want release %s in slot %s, measured, matching its manifest", v, version, slot)
	}
	l.Logf("cairn attest verify on the host: %s", v.Summary)
	return nil
}

// UpdateCommits publishes 1.1.0: the device streams it into slot B,
// reboots, passes the health gate and commits; the node label and the
// attestation name 1.1.0.
func (l *Lab) UpdateCommits(ctx context.Context) (*Step, error) {
	m, err := l.machine()
	if err != nil {
		return nil, err
	}
	from, start := m.Console().Len(), time.Now()
	if err := l.Channel.Publish(ctx, "stable", "1.1.0"); err != nil {
		return nil, err
	}
	l.Logf("published 1.1.0 on stable")
	st, err := m.WaitStatus(ctx, from, func(s *Status) bool {
		return s.Booted() == partitions.SlotB && s.Phase() == update.PhaseCommitted
	})
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	l.Timing("publish to 1.1.0 committed on slot B", took)
	var errs []error
	if v := st.MeasuredVersion(); v != "1.1.0" || st.Update.Version != "1.1.0" || !st.Slot(partitions.SlotB).OK {
		errs = append(errs, fmt.Errorf("after the update: %s, want 1.1.0 committed on B", st.Describe()))
	}
	if _, err := l.K3s.WaitNode(ctx, func(n Node) bool { return n.Ready && n.Labels["cairn.dev/os-version"] == "1.1.0" }); err != nil {
		errs = append(errs, err)
	} else {
		l.Logf("node Ready with label cairn.dev/os-version=1.1.0")
	}
	if err := l.verifyAttestation(ctx, m, from, "1.1.0", partitions.SlotB); err != nil {
		errs = append(errs, err)
	}
	// systemd's lines of the boot of 1.1.0, not of the boot that installed it.
	if _, booted, err := m.WaitFor(ctx, from, slotBootLine(partitions.SlotB)); err != nil {
		errs = append(errs, err)
	} else if err := m.WaitBootFinished(ctx, booted); err != nil {
		errs = append(errs, err)
	}
	return &Step{Release: "1.1.0", Slot: "B", Result: "committed", Took: took}, errors.Join(errs...)
}

// slotBootLine is cairn-init's first line about the slot it boots.
func slotBootLine(slot partitions.Slot) *regexp.Regexp {
	return regexp.MustCompile(`cairn-init: slot ` + regexp.QuoteMeta(string(slot)) + ` is /dev/`)
}

// BadRelease is the release whose node never becomes Ready, in every
// lab's releases.
const BadRelease = "1.2.0"

// BadReleaseRollsBack publishes 1.2.0, whose node never becomes Ready: the
// device installs it into the slot it does not run (A after scenario 2),
// boots it, fails the health gate, goes back by itself to the release it
// ran (1.1.0 on B after scenario 2), marks 1.2.0 bad and does not install
// it again.
func (l *Lab) BadReleaseRollsBack(ctx context.Context) (*Step, error) {
	m, err := l.machine()
	if err != nil {
		return nil, err
	}
	now := m.LastStatus(0)
	if now == nil || !now.Booted().Valid() || now.MeasuredVersion() == "" {
		return nil, fmt.Errorf("bad release: the device reported no release it runs: %s", now.Describe())
	}
	good, slot := now.MeasuredVersion(), now.Booted()
	target := slot.Other()
	from, start := m.Console().Len(), time.Now()
	if err := l.Channel.Publish(ctx, "stable", BadRelease); err != nil {
		return nil, err
	}
	l.Logf("published %s on stable", BadRelease)
	trial, err := m.WaitStatus(ctx, from, func(s *Status) bool {
		return s.Booted() == target && s.Phase() == update.PhaseTrial
	})
	if err != nil {
		return nil, err
	}
	l.Timing(fmt.Sprintf("publish to the trial boot of %s on %s", BadRelease, target), time.Since(start))
	l.Logf("%s is on trial in slot %s; its node never becomes Ready", BadRelease, target)
	st, err := m.WaitStatus(ctx, trial.Offset, func(s *Status) bool {
		return s.Booted() == slot && s.Phase() == update.PhaseRolledBack
	})
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	l.Timing("publish to rolled back on "+string(slot), took)
	errs := l.rolledBack(ctx, m, st, good, target)
	return &Step{Release: BadRelease, Slot: fmt.Sprintf("%s, back to %s", target, slot), Result: "rolled back, marked bad", Took: took},
		errors.Join(errs...)
}

// rolledBack checks the device after BadRelease rolled back to good: good
// runs, the slot BadRelease was in is not committed, BadRelease is bad
// for the node's NotReady reason and is not taken again, and the node is
// Ready with good's label.
func (l *Lab) rolledBack(ctx context.Context, m *Machine, st *Status, good string, target partitions.Slot) []error {
	var errs []error
	if !st.IsBad(BadRelease) || st.MeasuredVersion() != good || st.Slot(target).OK {
		errs = append(errs, fmt.Errorf("after the rollback: %s, want %s on %s and %s bad", st.Describe(), good, st.Booted(), BadRelease))
	}
	l.Logf("rolled back to %s: %s", good, st.Update.Reason)
	if !strings.Contains(st.Update.Reason, NotReadyMessage) {
		errs = append(errs, fmt.Errorf("rollback reason %q does not name the node's NotReady condition %q", st.Update.Reason, NotReadyMessage))
	}
	if _, err := l.K3s.WaitNode(ctx, func(n Node) bool { return n.Ready && n.Labels["cairn.dev/os-version"] == good }); err != nil {
		errs = append(errs, err)
	}
	if err := l.notRetried(ctx, m, st, BadRelease); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// notRetried watches the device through several channel checks (its
// reporter asks every 10 s) and fails if it starts installing version
// again or leaves the slot it runs.
func (l *Lab) notRetried(ctx context.Context, m *Machine, after *Status, version string) error {
	watch, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	st, err := m.WaitStatus(watch, after.Offset, func(s *Status) bool {
		return s.Booted() != after.Booted() || (s.Update != nil && s.Update.Version == version && !s.Phase().AtRest())
	})
	if err == nil {
		return fmt.Errorf("the device took %s again: %s", version, st.Describe())
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}
