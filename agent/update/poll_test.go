package update

import (
	"context"
	"errors"
	"testing"
	"time"
)

// stepClock records every wait and fires at once.
type stepClock struct{ waits []time.Duration }

func (c *stepClock) After(d time.Duration) <-chan time.Time {
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return ch
}

func TestPollerBacksOffExponentiallyAndResetsOnSuccess(t *testing.T) {
	clock := &stepClock{}
	results := []error{errors.New("dns"), errors.New("dns"), errors.New("dns"), errors.New("dns"), errors.New("dns"), nil, errors.New("dns")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	p := &Poller{
		Interval: time.Hour, Jitter: 0.5, MinBackoff: time.Minute, MaxBackoff: 8 * time.Minute,
		Clock: clock, Rand: func() float64 { return 0.5 }, // the middle: no spread
		Poll: func(context.Context) error {
			err := results[calls]
			calls++
			if calls == len(results) {
				cancel()
			}
			return err
		},
	}
	if err := p.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	want := []time.Duration{15 * time.Minute, // Interval × Jitter × rand before the first poll
		time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 8 * time.Minute, time.Hour}
	if len(clock.waits) != len(want) {
		t.Fatalf("waits %v, want %v", clock.waits, want)
	}
	for i := range want {
		if clock.waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", clock.waits, want)
		}
	}
}

func TestPollerJitterSpreadsDelays(t *testing.T) {
	p := &Poller{Interval: 100 * time.Minute, Jitter: 0.2}
	for _, c := range []struct {
		r    float64
		want time.Duration
	}{{0, 80 * time.Minute}, {0.5, 100 * time.Minute}, {0.999999, 120 * time.Minute}} {
		p.Rand = func() float64 { return c.r }
		if got := p.Delay(0).Round(time.Minute); got != c.want {
			t.Errorf("rand %v: delay %v, want %v", c.r, got, c.want)
		}
	}
}
