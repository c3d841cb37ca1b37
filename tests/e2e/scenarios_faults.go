package e2e

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-edge/cairn/agent/update"
	"github.com/cairn-edge/cairn/partitions"
)

// KernelPanicFallsBack publishes 1.3.0, whose kernel cannot mount root:
// the agent never runs on it, and GRUB's tries counter alone brings the
// device back to 1.1.0, where the agent records the rollback.
func (l *Lab) KernelPanicFallsBack(ctx context.Context) (*Step, error) {
	m, err := l.machine()
	if err != nil {
		return nil, err
	}
	from, start := m.Console().Len(), time.Now()
	if err := l.Channel.Publish(ctx, "stable", "1.3.0"); err != nil {
		return nil, err
	}
	if _, _, err := m.WaitFor(ctx, from, regexpKernelPanic); err != nil {
		return nil, err
	}
	l.Timing("publish to the first kernel panic", time.Since(start))
	st, err := m.WaitStatus(ctx, from, func(s *Status) bool {
		return s.Booted() == partitions.SlotB && s.Phase() == update.PhaseRolledBack && s.Update.Version == "1.3.0"
	})
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	l.Timing("publish to rolled back on B", took)
	var errs []error
	if !st.IsBad("1.3.0") || st.MeasuredVersion() != "1.1.0" {
		errs = append(errs, fmt.Errorf("after the bootloader's fallback: %s, want 1.1.0 on B and 1.3.0 bad", st.Describe()))
	}
	if a := st.Slot(partitions.SlotA); a.OK || a.TriesLeft != 0 {
		errs = append(errs, fmt.Errorf("slot A after its panics: %+v, want no tries left and not ok", a))
	}
	if err := l.notRetried(ctx, m, st, "1.3.0"); err != nil {
		errs = append(errs, err)
	}
	return &Step{Release: "1.3.0", Slot: "A, back to B", Result: "kernel panic, bootloader fell back", Took: took}, errors.Join(errs...)
}

// TamperedReleaseIsRefused publishes 1.4.0 and serves its image with one
// byte flipped: the device refuses it and its boot state stays as it was.
func (l *Lab) TamperedReleaseIsRefused(ctx context.Context) (*Step, error) {
	m, err := l.machine()
	if err != nil {
		return nil, err
	}
	before := m.LastStatus(0)
	if before == nil {
		return nil, errors.New("the device printed no status yet")
	}
	from, start := m.Console().Len(), time.Now()
	l.Channel.Tamper("1.4.0")
	if err := l.Channel.Publish(ctx, "stable", "1.4.0"); err != nil {
		return nil, err
	}
	st, err := m.WaitStatus(ctx, from, func(s *Status) bool {
		return s.Phase() == update.PhaseFailed && s.Update.Version == "1.4.0"
	})
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	l.Timing("publish to refused", took)
	l.Logf("refused: %s", st.Update.LastError)
	var errs []error
	if st.Booted() != before.Booted() {
		errs = append(errs, fmt.Errorf("booted slot changed from %s: %s", before.Booted(), st.Describe()))
	}
	for _, slot := range partitions.Slots {
		if b, a := before.Slot(slot), st.Slot(slot); b.Priority != a.Priority || b.TriesLeft != a.TriesLeft || b.OK != a.OK {
			errs = append(errs, fmt.Errorf("boot state of slot %s changed: %+v before, %+v after", slot, b, a))
		}
	}
	if st.NextBoot == nil || before.NextBoot == nil || st.NextBoot.Slot != before.NextBoot.Slot {
		errs = append(errs, fmt.Errorf("next boot changed: %+v before, %+v after", before.NextBoot, st.NextBoot))
	}
	return &Step{Release: "1.4.0 (tampered)", Slot: string(st.Booted()), Result: "refused, boot state untouched", Took: took}, errors.Join(errs...)
}

// PowerCutResumes cuts the power while 1.4.0 (served intact now, slowly)
// streams into slot A: the device boots 1.1.0 again, resumes the download
// from its checkpoint, and commits 1.4.0.
func (l *Lab) PowerCutResumes(ctx context.Context) (*Step, error) {
	l.Channel.Tamper("")
	size, err := l.Channel.ImageSize("1.4.0")
	if err != nil {
		return nil, err
	}
	servedBefore, _ := l.Channel.Served()
	l.Channel.Throttle(size / 40)
	start := time.Now()
	for {
		served, _ := l.Channel.Served()
		if served-servedBefore > size/3 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the device never downloaded a third of 1.4.0 (%d of %d bytes): %s",
				served-servedBefore, size, l.Device.Machine.LastStatus(0).Describe())
		case <-time.After(200 * time.Millisecond):
		}
	}
	l.Device.PowerOff()
	served, ranges := l.Channel.Served()
	l.Timing("retry to power cut mid-download", time.Since(start))
	l.Logf("power cut after %d of %d bytes", served-servedBefore, size)
	l.Channel.Throttle(0)
	m, err := l.Device.PowerOn(ctx)
	if err != nil {
		return nil, err
	}
	var errs []error
	first, err := m.WaitStatus(ctx, 0, func(s *Status) bool { return true })
	if err != nil {
		return nil, err
	}
	if first.Booted() != partitions.SlotB || first.MeasuredVersion() != "1.1.0" {
		errs = append(errs, fmt.Errorf("after the power cut: %s, want 1.1.0 on B", first.Describe()))
	}
	st, err := m.WaitStatus(ctx, 0, func(s *Status) bool {
		return s.Booted() == partitions.SlotA && s.Phase() == update.PhaseCommitted && s.Update.Version == "1.4.0"
	})
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	took := time.Since(start)
	l.Timing("power on to 1.4.0 committed on A", m.Uptime())
	if st.MeasuredVersion() != "1.4.0" {
		errs = append(errs, fmt.Errorf("after the resumed install: %s, want 1.4.0 measured", st.Describe()))
	}
	if _, after := l.Channel.Served(); !resumedFromOffset(after[len(ranges):]) {
		errs = append(errs, fmt.Errorf("no download after the power cut asked for a range past 0 (requests %q): the install did not resume", after[len(ranges):]))
	}
	return &Step{Release: "1.4.0", Slot: "A", Result: "power cut, resumed, committed", Took: took}, errors.Join(errs...)
}
