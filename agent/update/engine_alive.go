package update

import (
	"context"
	"time"
)

// DefaultHeartbeat is how often the engine checks in while it waits, when
// EngineConfig.Heartbeat is zero.
const DefaultHeartbeat = 10 * time.Second

// Alive reports whether the engine checked in within the last within, by
// EngineConfig.Now. Run checks in at every turn of its loop and every
// Heartbeat while it waits for work; while a check of the channel, an
// install or a health gate runs, or the Rebooter, it checks in every
// Heartbeat as it waits for them, since each ends by limits of its own (the
// channel's CheckTimeout; the installer's idle timeout, backoff and
// retries; the gate's deadline; the reboot lease's wait and the drain's
// timeout). Anything else that hangs in Run stops the
// check-ins: the state file or boot environment on a hung disk, a lock
// never released. The daemon pings systemd's
// watchdog only while the engine is alive (docs/update.md, "systemd").
func (e *Engine) Alive(within time.Duration) bool {
	last := time.Unix(0, e.beat.Load())
	return e.cfg.Now().Sub(last) <= within
}

func (e *Engine) checkIn() { e.beat.Store(e.cfg.Now().UnixNano()) }

// await runs step, bounded by limits of its own, on a goroutine of its own
// and checks in every Heartbeat until it returns. A panic in step goes on
// in the caller, as if step had run there.
func (e *Engine) await(step func() error) error {
	type result struct {
		err      error
		panicked bool
		value    any
	}
	done := make(chan result, 1)
	go func() {
		r := result{panicked: true}
		defer func() {
			if r.panicked {
				r.value = recover()
			}
			done <- r
		}()
		r.err = step()
		r.panicked = false
	}()
	t := time.NewTicker(e.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case r := <-done:
			e.checkIn()
			if r.panicked {
				panic(r.value)
			}
			return r.err
		case <-t.C:
			e.checkIn()
		}
	}
}

// rebootMachine asks the Rebooter for the reboot, which may first wait for
// the cluster's reboot lease and drain the node.
func (e *Engine) rebootMachine(ctx context.Context, why string) error {
	return e.await(func() error { return e.cfg.Rebooter.Reboot(ctx, why) })
}
