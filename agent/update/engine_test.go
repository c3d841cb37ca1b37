package update

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
)

func TestHealthyReleaseIsCommittedAndRaisesTheFloor(t *testing.T) {
	d := newSim(t)
	d.f.publish(board, "1.1.0", "stable", 100)
	e, err := d.update()
	if err != nil {
		t.Fatal(err)
	}
	st := d.wantSettled(e, PhaseCommitted, "1.1.0", partitions.SlotB)
	if d.floor() != "1.1.0" {
		t.Errorf("floor %s after committing 1.1.0", d.floor())
	}
	if len(d.reboots) != 1 || st.SlotVersions[partitions.SlotB] != "1.1.0" || st.Offer != nil {
		t.Errorf("reboots %q, state %+v", d.reboots, st.State)
	}
	if b := d.bootState(); b.B != (bootstate.SlotState{Priority: 2, TriesLeft: 2, OK: 1}) || !b.A.Committed() {
		t.Errorf("boot env after commit: %+v", b)
	}
	if _, err := d.agent().Update(context.Background()); !errors.Is(err, ErrUpToDate) {
		t.Errorf("check after commit: %v, want ErrUpToDate", err)
	}
}

func TestUnhealthyReleaseRollsBackAndIsNeverOfferedAgain(t *testing.T) {
	d := newSim(t)
	d.f.publish(board, "1.1.0", "stable", 100)
	d.kinds["1.1.0"] = unhealthy
	e, err := d.update()
	if err != nil {
		t.Fatal(err)
	}
	st := d.wantSettled(e, PhaseRolledBack, "1.1.0", partitions.SlotA)
	if !strings.Contains(st.Reason, "check http://localhost:8080/healthz: status 503") || !st.IsBad("1.1.0") {
		t.Fatalf("rollback reason %q, bad %v", st.Reason, st.Bad)
	}
	if b := d.bootState(); b.B.Priority != 0 || d.floor() != "1.0.0" {
		t.Fatalf("boot env %+v, floor %s", b, d.floor())
	}
	t.Logf("rolled back: %s", st.Reason)
	if _, err := d.agent().Update(context.Background()); !errors.Is(err, ErrKnownBad) {
		t.Fatalf("next check: %v, want ErrKnownBad", err)
	}
	if len(d.reboots) != 2 {
		t.Fatalf("reboots %q: want one into the trial and one out of it", d.reboots)
	}
	// A fixed release goes through.
	d.f.publish(board, "1.2.0", "stable", 100)
	if e, err = d.update(); err != nil {
		t.Fatal(err)
	}
	st = d.wantSettled(e, PhaseCommitted, "1.2.0", partitions.SlotB)
	if !st.IsBad("1.1.0") || d.floor() != "1.2.0" {
		t.Fatalf("after 1.2.0: bad %v, floor %s", st.Bad, d.floor())
	}
}

func TestBootloaderFallbackIsRecordedAsRollback(t *testing.T) {
	d := newSim(t)
	d.f.publish(board, "1.1.0", "stable", 100)
	d.kinds["1.1.0"] = panics
	e, err := d.update()
	if err != nil {
		t.Fatal(err)
	}
	st := d.wantSettled(e, PhaseRolledBack, "1.1.0", partitions.SlotA)
	if st.Reason != ReasonTriesExhausted || !st.IsBad("1.1.0") {
		t.Fatalf("reason %q, bad %v", st.Reason, st.Bad)
	}
	// Three trial boots that panicked, then the fallback.
	if d.powerOns != 1+3+1 {
		t.Errorf("%d power-ons, want 5", d.powerOns)
	}
	if _, err := d.agent().Update(context.Background()); !errors.Is(err, ErrKnownBad) {
		t.Fatalf("next check: %v, want ErrKnownBad", err)
	}
}

func TestFailedInstallLeavesTheOldSlotAndTheNextAttemptSucceeds(t *testing.T) {
	d := newSim(t)
	d.f.publish(board, "1.1.0", "stable", 100)
	d.installErr = errors.New("download stalled")
	e, err := d.update()
	if err == nil || !strings.Contains(err.Error(), "install 1.1.0 into slot B: download stalled") {
		t.Fatalf("update with a failing install: %v", err)
	}
	st := e.Status()
	if st.Phase != PhaseFailed || st.LastError != err.Error() || len(d.reboots) != 0 {
		t.Fatalf("state %+v, reboots %q", st.State, d.reboots)
	}
	if dec, _ := d.bootState().Choose(); dec.Slot != partitions.SlotA || dec.Trial {
		t.Fatalf("next boot %+v after a failed install", dec)
	}
	if e, err = d.update(); err != nil {
		t.Fatal(err)
	}
	d.wantSettled(e, PhaseCommitted, "1.1.0", partitions.SlotB)
}

func TestManualPolicyWaitsForApply(t *testing.T) {
	d := newSim(t)
	d.policy = RebootPolicy{Mode: RebootManual}
	d.f.publish(board, "1.1.0", "stable", 100)
	e, err := d.update()
	if err != nil {
		t.Fatal(err)
	}
	if st := e.Status(); st.Phase != PhaseInstalled || len(d.reboots) != 0 || st.RebootAt != nil {
		t.Fatalf("manual policy: state %s, reboots %q", st.Phase, d.reboots)
	}
	// The device keeps serving; an agent restart keeps waiting.
	e = d.settle()
	if st := e.Status(); st.Phase != PhaseInstalled || len(d.reboots) != 0 {
		t.Fatalf("after restart: state %s, reboots %q", st.Phase, d.reboots)
	}
	if err := e.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.powerOn()
	d.wantSettled(d.settle(), PhaseCommitted, "1.1.0", partitions.SlotB)
	if err := d.agent().Apply(context.Background()); !errors.Is(err, ErrNothingToApply) {
		t.Fatalf("apply with nothing installed: %v", err)
	}
}

func TestOperatorRollbackGoesToTheOtherCommittedSlot(t *testing.T) {
	d := newSim(t)
	if err := d.agent().Rollback(context.Background()); !errors.Is(err, ErrNoRollback) {
		t.Fatalf("rollback with an empty other slot: %v", err)
	}
	d.f.publish(board, "1.1.0", "stable", 100)
	if _, err := d.update(); err != nil {
		t.Fatal(err)
	}
	if err := d.agent().Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.powerOn()
	e := d.settle()
	st := d.wantSettled(e, PhaseRolledBack, "1.1.0", partitions.SlotA)
	if !strings.Contains(st.Reason, "by the operator") || !st.IsBad("1.1.0") {
		t.Fatalf("reason %q, bad %v", st.Reason, st.Bad)
	}
	if b := d.bootState(); !b.B.Committed() || b.A.Priority != 2 {
		t.Fatalf("boot env %+v: B stays as fallback, A preferred", b)
	}
}

func TestDamagedStateFileIsAnErrorNamingIt(t *testing.T) {
	d := newSim(t)
	path := filepath.Join(d.f.varDir, "update-state.json")
	for _, data := range []string{"{", `{"state":"sleeping"}`, `{"state":"trial","version":"1.1.0"}`} {
		os.WriteFile(path, []byte(data), 0o600)
		_, err := NewEngine(EngineConfig{StatePath: path, Boot: &partitions.Boot{Slot: partitions.SlotA},
			BootState: bootstate.New(d.env()), Channel: d.f.channel(), Installer: d,
			Floor: NewVersionFloor(filepath.Join(d.f.varDir, "version-floor")), Health: d.health, Rebooter: d})
		if !errors.Is(err, ErrStateFile) || !strings.Contains(err.Error(), path) {
			t.Errorf("state %s: %v", data, err)
		}
	}
}

// TestFreshDeviceDoesNotTakeTheReleaseItRuns: a device flashed (or network-
// installed) with 1.0.0 has no version floor on record; its channel offers
// 1.0.0. The committed release it runs is the floor, so there is nothing
// to install.
func TestFreshDeviceDoesNotTakeTheReleaseItRuns(t *testing.T) {
	d := newSim(t)
	if err := os.Remove(filepath.Join(d.f.varDir, "version-floor")); err != nil {
		t.Fatal(err)
	}
	e := d.agent()
	if err := e.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d.floor() != "1.0.0" {
		t.Fatalf("floor %s after the first start on 1.0.0", d.floor())
	}
	if o, err := e.Update(context.Background()); !errors.Is(err, ErrUpToDate) {
		t.Fatalf("update offered %+v, %v: want ErrUpToDate", o, err)
	}
	if st := e.Status(); st.Phase != PhaseIdle || len(d.reboots) != 0 {
		t.Fatalf("state %s, reboots %q", st.Phase, d.reboots)
	}
}
