package update

import (
	"context"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/partitions"
)

// windowClock hands every wait to the test, which decides when it ends.
type windowClock struct {
	waits chan time.Duration
	fire  chan time.Time
}

func (c *windowClock) After(d time.Duration) <-chan time.Time {
	c.waits <- d
	return c.fire
}

func TestWindowPolicyRebootsWhenTheWindowOpens(t *testing.T) {
	d := newSim(t)
	w, err := ParseWindow("Sat 02:00-04:00")
	if err != nil {
		t.Fatal(err)
	}
	friday := time.Date(2026, 6, 5, 12, 0, 0, 0, time.UTC)
	clock := &windowClock{waits: make(chan time.Duration, 10), fire: make(chan time.Time)}
	d.policy = RebootPolicy{Mode: RebootWindow, Window: w, Location: time.UTC}
	d.now = func() time.Time { return friday }
	d.clock = clock
	d.f.publish(board, "1.1.0", "stable", 100)

	e := d.agent()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	o, err := e.CheckNow(ctx)
	if err != nil || o.Manifest.Version != "1.1.0" {
		t.Fatalf("check: %v, %v", o, err)
	}
	if wait := <-clock.waits; wait != 14*time.Hour {
		t.Fatalf("waits %s for the window, want 14h (Friday 12:00 to Saturday 02:00)", wait)
	}
	st := e.Status()
	if st.Phase != PhaseInstalled || len(d.reboots) != 0 || st.RebootAt == nil || st.Window != "Sat 02:00-04:00" {
		t.Fatalf("before the window: %+v, reboots %q", st, d.reboots)
	}
	clock.fire <- friday.Add(14 * time.Hour)
	// Run has taken the tick; it reboots before it looks at ctx again.
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("run: %v", err)
	}
	if len(d.reboots) != 1 || e.Status().Phase != PhaseRebooting {
		t.Fatalf("after the window opened: state %s, reboots %q", e.Status().Phase, d.reboots)
	}
	d.powerOn()
	d.wantSettled(d.settle(), PhaseCommitted, "1.1.0", partitions.SlotB)
}
