package update

import (
	"context"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/partitions"
)

// live runs a device from power-on through one update to a settled state,
// restarting the agent after every kill: in the same boot (the agent was
// killed) or after a power-on (the power was cut). It returns the settled
// engine and the steps it was killed at.
func (d *simDevice) live(powerCut bool) (*Engine, []string) {
	d.t.Helper()
	ctx := context.Background()
	attempted := false
	var kills []string
	for range 30 {
		e := d.agent()
		step, err := survive(func() error {
			if err := e.Resume(ctx); err != nil {
				return err
			}
			if d.rebootAsked == 0 && !attempted && e.Status().Phase.AtRest() {
				attempted = true
				_, err := e.Update(ctx)
				return err
			}
			return nil
		})
		if err != nil {
			d.t.Fatalf("agent on slot %s: %v (%s)", d.booted, err, d)
		}
		if step != "" {
			kills = append(kills, step)
			d.checkAfterKill(step)
		}
		if d.rebootAsked > 0 || (step != "" && powerCut) {
			d.powerOn()
			continue
		}
		if step == "" && attempted {
			return e, kills
		}
	}
	d.t.Fatalf("did not settle (%s)", d)
	return nil, nil
}

// checkAfterKill checks what must hold at any moment: the boot env decodes,
// the slot updated from is still committed, and the next boot is either
// that slot or a complete release in the other one.
func (d *simDevice) checkAfterKill(step string) {
	d.t.Helper()
	bs := d.bootState()
	if !bs.A.Committed() {
		d.t.Fatalf("killed at %q: slot A, the fallback, is no longer committed: %+v", step, bs)
	}
	dec, err := bs.Choose()
	if err != nil {
		d.t.Fatalf("killed at %q: no slot boots: %v", step, err)
	}
	if dec.Slot == partitions.SlotB && d.content[d.slots[partitions.SlotB]] == "" {
		d.t.Fatalf("killed at %q: the next boot is slot B, which is not fully written", step)
	}
}

func TestAgentKilledAtEveryStepResumesToADefinedState(t *testing.T) {
	outcomes := []struct {
		kind   behaviour
		phase  Phase
		booted partitions.Slot
		reason string
	}{
		{healthy, PhaseCommitted, partitions.SlotB, ""},
		{unhealthy, PhaseRolledBack, partitions.SlotA, "status 503"},
		{panics, PhaseRolledBack, partitions.SlotA, ReasonTriesExhausted},
	}
	total := 0
	for _, o := range outcomes {
		clean := newSim(t)
		clean.f.publish(board, "1.1.0", "stable", 100)
		clean.kinds["1.1.0"] = o.kind
		clean.live(false)
		steps := clean.steps
		for _, powerCut := range []bool{false, true} {
			for k := 1; k <= len(steps); k++ {
				d := newSim(t)
				d.f.publish(board, "1.1.0", "stable", 100)
				d.kinds["1.1.0"] = o.kind
				d.killAt = k
				e, kills := d.live(powerCut)
				if len(kills) != 1 {
					t.Fatalf("%v release, kill at step %d (%s): killed at %v", o.kind, k, steps[k-1], kills)
				}
				st := d.wantSettled(e, o.phase, "1.1.0", o.booted)
				if !strings.Contains(st.Reason, o.reason) {
					t.Fatalf("%v release, killed at %q (power cut %v): reason %q, want %q", o.kind, kills[0], powerCut, st.Reason, o.reason)
				}
				if o.phase == PhaseRolledBack && !st.IsBad("1.1.0") {
					t.Fatalf("%v release, killed at %q: 1.1.0 not remembered as bad", o.kind, kills[0])
				}
				if want := map[bool]string{true: "1.1.0", false: "1.0.0"}[o.phase == PhaseCommitted]; d.floor() != want {
					t.Fatalf("%v release, killed at %q: floor %s, want %s", o.kind, kills[0], d.floor(), want)
				}
				total++
			}
		}
		t.Logf("%v release: %d steps %v, each killed with and without a power cut", o.kind, len(steps), steps)
	}
	t.Logf("%d kill points, each resumed to its defined end", total)
}

func (b behaviour) String() string { return [...]string{"healthy", "unhealthy", "panicking"}[b] }
