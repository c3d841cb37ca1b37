package update

import (
	"context"
	"math/rand/v2"
	"time"
)

// Clock is the time source a Poller waits on; tests inject a fake one.
type Clock interface {
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Poller runs a poll at an interval with jitter, so a fleet booted at once
// does not hit the server at once, and backs off exponentially on errors.
type Poller struct {
	Interval   time.Duration  // between successful polls
	Jitter     float64        // spread around every delay, as a fraction (0.2: ±20%)
	MinBackoff time.Duration  // first delay after an error
	MaxBackoff time.Duration  // cap of the doubling delay after errors
	Clock      Clock          // nil: the real clock
	Rand       func() float64 // uniform in [0,1); nil: math/rand/v2
	// Poll does one check. A nil error resets the backoff; idle outcomes
	// (ErrUpToDate, ErrNotInRollout) should be returned as nil.
	Poll func(ctx context.Context) error
	// OnError, when set, sees every failed poll and the delay before the next.
	OnError func(err error, next time.Duration)
}

// Delay is the wait before the next poll after failures consecutive errors.
func (p *Poller) Delay(failures int) time.Duration {
	base := p.Interval
	if failures > 0 {
		base = p.MinBackoff
		for i := 1; i < failures && base < p.MaxBackoff; i++ {
			base *= 2
		}
		base = min(base, p.MaxBackoff)
	}
	r := rand.Float64
	if p.Rand != nil {
		r = p.Rand
	}
	spread := 1 + p.Jitter*(2*r()-1)
	return time.Duration(float64(base) * spread)
}

// Run polls until ctx is done. The first poll waits a random part of the
// jitter window, so devices powered on together spread out.
func (p *Poller) Run(ctx context.Context) error {
	clock := p.Clock
	if clock == nil {
		clock = realClock{}
	}
	r := rand.Float64
	if p.Rand != nil {
		r = p.Rand
	}
	wait := time.Duration(float64(p.Interval) * p.Jitter * r())
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-clock.After(wait):
		}
		if err := p.Poll(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failures++
			wait = p.Delay(failures)
			if p.OnError != nil {
				p.OnError(err, wait)
			}
			continue
		}
		failures = 0
		wait = p.Delay(0)
	}
}
