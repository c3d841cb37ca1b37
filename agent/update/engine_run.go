package update

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
)

// idle reports whether err is a check that found nothing to do.
func idle(err error) bool {
	return errors.Is(err, ErrUpToDate) || errors.Is(err, ErrNotInRollout) ||
		errors.Is(err, ErrKnownBad) || errors.Is(err, ErrNoRelease) || errors.Is(err, ErrBusy)
}

// Idle reports whether a check error means "nothing to do" rather than a
// failure: up to date, outside the rollout, a known bad release, or an
// update already in flight.
func Idle(err error) bool { return idle(err) }

// Poll runs one update for a Poller: nothing to do is not an error.
func (e *Engine) Poll(ctx context.Context) error {
	_, err := e.Update(ctx)
	if idle(err) {
		return nil
	}
	return err
}

// CheckNow checks the channel and, when it offers a release, has Run
// install it. It returns the offer, or why there is nothing to install.
func (e *Engine) CheckNow(ctx context.Context) (*Offer, error) {
	if st := e.state(); !st.Phase.AtRest() {
		return nil, ErrBusy
	}
	o, err := e.Check(ctx)
	if err != nil {
		return nil, err
	}
	select {
	case e.updateNow <- struct{}{}:
	default:
	}
	return o, nil
}

// Run resumes whatever the last run left in flight, then installs what
// CheckNow found and reboots into an installed release when the policy
// allows, until ctx ends. Errors of single steps are logged and recorded
// in the state; Run goes on, so the local API keeps answering.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.Resume(ctx); err != nil && ctx.Err() == nil {
		e.cfg.Log.Error("update engine: resume", zap.Error(err))
	}
	heartbeat := time.NewTicker(e.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		e.checkIn()
		var window <-chan time.Time
		if st := e.state(); st.Phase == PhaseInstalled {
			now := e.cfg.Now()
			if at, ok := e.cfg.Policy.Next(now); ok {
				e.cfg.Log.Info("reboot scheduled", zap.String("version", st.Version), zap.Time("at", at))
				window = e.cfg.Clock.After(at.Sub(now))
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-heartbeat.C:
		case <-e.wake:
		case <-e.updateNow:
			if _, err := e.Update(ctx); err != nil && !idle(err) && ctx.Err() == nil {
				e.cfg.Log.Error("update", zap.Error(err))
			}
		case <-window:
			if err := e.rebootIfInstalled(ctx); err != nil && ctx.Err() == nil {
				e.cfg.Log.Error("reboot into installed release", zap.Error(err))
			}
		}
	}
}

func (e *Engine) rebootIfInstalled(ctx context.Context) error {
	e.op.Lock()
	defer e.op.Unlock()
	st := e.state()
	if st.Phase != PhaseInstalled {
		return nil
	}
	return e.reboot(ctx, "reboot window: "+st.Version+" on slot "+string(st.Target))
}
