package update

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/Masterminds/semver/v3"

	"github.com/cairn-edge/cairn/partitions"
)

func TestCommitRaisesTheTPMFloorAfterTheFloorFile(t *testing.T) {
	d := newSim(t)
	var raised []string
	d.tpmFloor = func(_ context.Context, v *semver.Version) error {
		if d.floor() != v.String() {
			t.Errorf("TPM floor raised to %s while the floor file holds %s", v, d.floor())
		}
		raised = append(raised, v.String())
		return nil
	}
	d.f.publish(board, "1.1.0", "stable", 100)
	e, err := d.update()
	if err != nil {
		t.Fatal(err)
	}
	d.wantSettled(e, PhaseCommitted, "1.1.0", partitions.SlotB)
	if len(raised) != 1 || raised[0] != "1.1.0" {
		t.Fatalf("TPM floor raised to %q, want [1.1.0]", raised)
	}
}

func TestTPMFloorFailureDoesNotHoldBackTheCommit(t *testing.T) {
	d := newSim(t)
	d.tpmFloor = func(context.Context, *semver.Version) error { return errors.New("TPM_RC_POLICY_FAIL") }
	d.f.publish(board, "1.1.0", "stable", 100)
	e, err := d.update()
	if err != nil {
		t.Fatal(err)
	}
	d.wantSettled(e, PhaseCommitted, "1.1.0", partitions.SlotB)
	if d.floor() != "1.1.0" {
		t.Fatalf("floor file %s, want 1.1.0", d.floor())
	}
}

func TestEveryPersistedTransitionIsReported(t *testing.T) {
	d := newSim(t)
	var phases []Phase
	d.onTransition = func(st State) { phases = append(phases, st.Phase) }
	d.f.publish(board, "1.1.0", "stable", 100)
	e, err := d.update()
	if err != nil {
		t.Fatal(err)
	}
	d.wantSettled(e, PhaseCommitted, "1.1.0", partitions.SlotB)
	want := []Phase{PhaseDownloading, PhaseInstalled, PhaseRebooting, PhaseTrial, PhaseCommitted}
	if !slices.Equal(phases, want) {
		t.Fatalf("transitions %v, want %v", phases, want)
	}
}
