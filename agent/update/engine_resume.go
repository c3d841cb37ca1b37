package update

import (
	"context"
	"errors"
	"fmt"

	"github.com/Masterminds/semver/v3"
	"go.uber.org/zap"

	"github.com/cairn-edge/cairn/partitions/bootstate"
)

// ReasonTriesExhausted is the rollback reason when the bootloader fell back
// by itself: the new slot never got as far as a health verdict.
const ReasonTriesExhausted = "bootloader fell back: tries exhausted"

// Resume brings the state machine to a defined state after the agent
// starts: it finishes or undoes whatever the previous run left in flight,
// judged by the state file, the booted slot and the boot environment
// (docs/update.md, "After a restart"). It runs the health gate when this
// boot is a trial.
func (e *Engine) Resume(ctx context.Context) error {
	e.op.Lock()
	defer e.op.Unlock()
	st := e.state()
	bs, err := e.cfg.BootState.Read()
	if err != nil {
		return fmt.Errorf("update engine: %w", err)
	}
	booted := e.cfg.Boot.Slot
	e.cfg.Log.Info("update engine resumes", zap.String("state", string(st.Phase)),
		zap.String("version", st.Version), zap.String("booted_slot", string(booted)))
	if st.Phase.AtRest() {
		return e.resumeAtRest(ctx, st, bs)
	}
	target := bs.Slot(st.Target)
	switch {
	case st.Phase == PhaseDownloading && booted == st.From:
		return e.install(ctx)
	case st.Phase == PhaseDownloading:
		// The slot being written booted: the boot env was changed behind
		// the agent's back. Nothing it wrote can be trusted.
		return e.fail(st, fmt.Errorf("booted slot %s while installing into it", booted))
	case booted == st.Target && st.Phase != PhaseTrial:
		// SetTrial landed and the machine rebooted into the new slot, by
		// the policy or by a power cut.
		next := st.clone()
		next.Phase = PhaseTrial
		if err := e.commit(next, "trial boot"); err != nil {
			return err
		}
		return e.trial(ctx)
	case booted == st.Target:
		return e.trial(ctx)
	case st.Phase == PhaseTrial || st.Reason != "":
		return e.rollBack(st, e.rollbackReason(st, target))
	case fellBack(target):
		return e.rollBack(st, ReasonTriesExhausted)
	case st.Phase == PhaseInstalled:
		// SetTrial may not have run, or not to its end: it is idempotent.
		return e.setTrial(ctx)
	case target.Priority == bootstate.PriorityPrimary && target.Bootable():
		// Rebooting, yet the old slot runs with the trial still pending:
		// the agent restarted before the machine did.
		return e.reboot(ctx, "reboot into "+st.Version+" on slot "+string(st.Target))
	default:
		return e.rollBack(st, e.rollbackReason(st, target))
	}
}

// fellBack reports whether the bootloader spent every try of a slot that
// never became good.
func fellBack(s bootstate.SlotState) bool {
	return s.Priority > 0 && s.OK == 0 && s.TriesLeft == 0
}

// rollbackReason says why the device is back on the previous slot: the
// health gate's reason recorded before the revert, or what the boot
// environment shows.
func (e *Engine) rollbackReason(st State, target bootstate.SlotState) string {
	switch {
	case st.Reason != "":
		return st.Reason
	case fellBack(target):
		return ReasonTriesExhausted
	}
	return fmt.Sprintf("booted slot %s while slot %s was on trial", st.From, st.Target)
}

// trial runs the health gate of a trial boot, unless a verdict is already
// on record, and commits or reverts.
func (e *Engine) trial(ctx context.Context) error {
	st := e.state()
	bs, err := e.cfg.BootState.Read()
	if err != nil {
		return fmt.Errorf("update engine: %w", err)
	}
	switch {
	case bs.Slot(st.Target).OK == 1:
		// MarkGood landed before the agent stopped.
		return e.finishCommit(ctx, st)
	case st.Reason != "":
		return e.revert(ctx, st)
	}
	e.cfg.Log.Info("health gate started", zap.String("version", st.Version), zap.String("slot", string(st.Target)))
	gateErr := e.await(func() error { return e.cfg.Health(ctx) })
	if ctx.Err() != nil {
		// Stopped, not failed: the next start runs the gate again.
		return ctx.Err()
	}
	if gateErr == nil {
		return e.finishCommit(ctx, st)
	}
	next := st.clone()
	next.Reason = gateErr.Error()
	if err := e.commit(next, "health gate failed"); err != nil {
		return err
	}
	return e.revert(ctx, next)
}

// finishCommit marks the trial slot good, raises the version floor (the
// file, then the TPM's) and records the release as committed. Each step is
// safe to repeat.
func (e *Engine) finishCommit(ctx context.Context, st State) error {
	if err := e.cfg.BootState.MarkGood(st.Target); err != nil {
		return fmt.Errorf("commit %s: %w", st.Version, err)
	}
	e.stepDone("mark good")
	if m := manifestOf(st); m != nil {
		if err := e.cfg.Floor.Raise(m.SemVer()); err != nil && !errors.Is(err, ErrBelowVersionFloor) {
			return fmt.Errorf("commit %s: %w", st.Version, err)
		}
		e.raiseTPMFloor(ctx, st, m.SemVer())
	}
	e.stepDone("raise floor")
	next := st.clone()
	next.Phase, next.Offer, next.Reason, next.LastError = PhaseCommitted, nil, "", ""
	return e.commit(next, "release committed")
}

// raiseTPMFloor raises the TPM's copy of the version floor. A failure is
// logged, not returned: the boot is good and the floor file already refuses
// older releases, while a commit held back by a TPM fault would keep the
// device in its trial, taking no further updates.
func (e *Engine) raiseTPMFloor(ctx context.Context, st State, v *semver.Version) {
	if e.cfg.TPMFloor == nil || v == nil {
		return
	}
	if err := e.cfg.TPMFloor(ctx, v); err != nil {
		e.cfg.Log.Error("TPM version floor not raised", zap.String("version", st.Version), zap.Error(err))
	}
}

// revert disables the booted trial slot after its health gate failed and
// reboots into the previous one, where Resume records the rollback.
func (e *Engine) revert(ctx context.Context, st State) error {
	if err := e.cfg.BootState.MarkBad(st.Target); err != nil {
		return fmt.Errorf("revert %s: %w", st.Version, err)
	}
	e.stepDone("mark bad booted")
	if err := e.rebootMachine(ctx, "revert "+st.Version+": "+st.Reason); err != nil {
		return fmt.Errorf("revert %s: reboot: %w", st.Version, err)
	}
	e.stepDone("reboot")
	return nil
}

// rollBack records that the device is back on the slot it updated from:
// the failed slot is disabled and its release never offered again.
func (e *Engine) rollBack(st State, reason string) error {
	if st.Reason != reason && !st.Phase.AtRest() {
		// The reason goes on record before MarkBad erases what the boot
		// env shows about it.
		st.Reason = reason
		if err := e.commit(st, "rollback found"); err != nil {
			return err
		}
	}
	if err := e.cfg.BootState.MarkBad(st.Target); err != nil {
		return fmt.Errorf("record rollback of %s: %w", st.Version, err)
	}
	e.stepDone("mark bad target")
	next := st.clone()
	next.Phase, next.Reason, next.Offer = PhaseRolledBack, reason, nil
	next.markBad(st.Version, reason, e.cfg.Now().UTC())
	if next.SlotVersions != nil {
		delete(next.SlotVersions, st.Target)
	}
	return e.commit(next, "rolled back")
}

// resumeAtRest handles a boot with no update in flight on record: a trial
// of the other slot still pending means the state file was lost after
// SetTrial (a rollback, recorded as such); a booted slot that is not yet
// good is judged by the health gate like any trial.
func (e *Engine) resumeAtRest(ctx context.Context, st State, bs bootstate.State) error {
	booted := e.cfg.Boot.Slot
	other := booted.Other()
	if o := bs.Slot(other); o.Priority > 0 && o.OK == 0 && bs.Slot(booted).Committed() {
		lost := st.clone()
		lost.Target, lost.From = other, booted
		lost.Version = st.SlotVersions[other]
		return e.rollBack(lost, fmt.Sprintf("slot %s was on trial with no update on record", other))
	}
	if b := bs.Slot(booted); b.OK == 0 && b.Priority > 0 && bs.Slot(other).Committed() {
		lost := st.clone()
		lost.Phase, lost.Target, lost.From = PhaseTrial, booted, other
		lost.Version = st.SlotVersions[booted]
		if err := e.commit(lost, "trial boot with no update on record"); err != nil {
			return err
		}
		return e.trial(ctx)
	}
	if bs.Slot(booted).Committed() {
		e.floorAtLeastBooted()
	}
	return nil
}

// floorAtLeastBooted raises the version floor to the committed release
// the device runs, when it is lower or unset. A failure is logged: the
// floor file then stays as it was, as before this step existed.
func (e *Engine) floorAtLeastBooted() {
	if e.cfg.BootedVersion == "" {
		return
	}
	v, err := semver.StrictNewVersion(e.cfg.BootedVersion)
	if err != nil {
		e.cfg.Log.Warn("version floor: booted release", zap.String("version", e.cfg.BootedVersion), zap.Error(err))
		return
	}
	if err := e.cfg.Floor.Raise(v); err != nil && !errors.Is(err, ErrBelowVersionFloor) {
		e.cfg.Log.Error("version floor: raise to the booted release", zap.String("version", v.String()), zap.Error(err))
	}
}

// Apply reboots into the installed release now, whatever the policy.
func (e *Engine) Apply(ctx context.Context) error {
	if !e.op.TryLock() {
		return ErrBusy
	}
	defer e.op.Unlock()
	st := e.state()
	if st.Phase != PhaseInstalled {
		return fmt.Errorf("apply: state %s: %w", st.Phase, ErrNothingToApply)
	}
	return e.reboot(ctx, "apply "+st.Version+" on slot "+string(st.Target))
}

// Rollback goes back on purpose to the release in the other slot, which
// must be committed, and reboots into it. The release left is remembered
// as bad so that the channel does not bring it back.
func (e *Engine) Rollback(ctx context.Context) error {
	if !e.op.TryLock() {
		return ErrBusy
	}
	defer e.op.Unlock()
	st := e.state()
	if !st.Phase.AtRest() {
		return fmt.Errorf("rollback: update %s (%s): %w", st.Version, st.Phase, ErrBusy)
	}
	booted := e.cfg.Boot.Slot
	other := booted.Other()
	err := e.cfg.BootState.Prefer(other)
	if errors.Is(err, bootstate.ErrNotCommitted) {
		return fmt.Errorf("rollback to slot %s: %w", other, ErrNoRollback)
	}
	if err != nil {
		return fmt.Errorf("rollback to slot %s: %w", other, err)
	}
	e.stepDone("prefer")
	next := st.clone()
	next.Phase, next.Target, next.From, next.Offer = PhaseRolledBack, other, booted, nil
	next.Version = st.SlotVersions[booted]
	next.Reason = fmt.Sprintf("rolled back by the operator from slot %s to slot %s", booted, other)
	next.markBad(next.Version, next.Reason, e.cfg.Now().UTC())
	if err := e.commit(next, "rollback on purpose"); err != nil {
		return err
	}
	return e.rebootMachine(ctx, next.Reason)
}
