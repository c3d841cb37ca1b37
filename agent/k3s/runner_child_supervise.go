package k3s

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// supervise restarts k3s when it exits by itself, until stop is closed.
func (r *ChildRunner) supervise(stop, done chan struct{}) {
	defer close(done)
	backoff := r.MinBackoff
	for {
		r.mu.Lock()
		c := r.cur
		r.mu.Unlock()
		if c != nil {
			select {
			case <-stop:
				return
			case <-c.exited:
			}
			if time.Since(c.since) > r.MaxBackoff {
				backoff = r.MinBackoff
			}
		}
		r.mu.Lock()
		r.cur, r.phase = nil, "restarting"
		r.mu.Unlock()
		select {
		case <-stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, r.MaxBackoff)
		r.mu.Lock()
		select {
		case <-stop:
			r.mu.Unlock()
			return
		default:
		}
		nc, err := r.spawn()
		if nc != nil {
			r.cur, r.phase = nc, "running"
			r.restarts++
		}
		if err != nil && nc == nil {
			r.phase = "failed: " + err.Error()
		}
		r.mu.Unlock()
	}
}

// endSupervision stops the supervisor and returns the current process.
func (r *ChildRunner) endSupervision() *child {
	r.mu.Lock()
	stop, done := r.stop, r.done
	r.stop, r.done = nil, nil
	r.mu.Unlock()
	if stop == nil {
		return nil
	}
	close(stop)
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.cur
	r.cur = nil
	return c
}

// Stop sends k3s SIGTERM, and SIGKILL if it has not exited after
// StopTimeout or when ctx ends, and forgets it. Only the k3s process is
// signalled: container shims in its session keep running, like
// KillMode=process.
func (r *ChildRunner) Stop(ctx context.Context) error {
	c := r.endSupervision()
	if c == nil {
		// Not supervised by us, but maybe recorded by an earlier agent.
		var err error
		if c, err = r.adopt(); err != nil || c == nil {
			r.setPhase("stopped")
			return err
		}
	}
	defer c.pidfd.Close()
	select {
	case <-c.exited:
	default:
		if err := unix.PidfdSendSignal(int(c.pidfd.Fd()), unix.SIGTERM, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("k3s pid %d: SIGTERM: %w", c.pid, err)
		}
		timer := time.NewTimer(r.StopTimeout)
		defer timer.Stop()
		select {
		case <-c.exited:
		case <-ctx.Done():
		case <-timer.C:
		}
		select {
		case <-c.exited:
		default:
			if err := unix.PidfdSendSignal(int(c.pidfd.Fd()), unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("k3s pid %d: SIGKILL: %w", c.pid, err)
			}
			<-c.exited
		}
	}
	r.setPhase("stopped")
	if err := os.Remove(r.state); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("k3s runner state %s: %w", r.state, err)
	}
	return nil
}

// Restart stops k3s and starts it again.
func (r *ChildRunner) Restart(ctx context.Context) error {
	if err := r.Stop(ctx); err != nil {
		return err
	}
	return r.Start(ctx)
}

// Detach ends supervision and leaves k3s running, for the agent's exit: the
// next agent adopts it.
func (r *ChildRunner) Detach() {
	if c := r.endSupervision(); c != nil {
		// Closing the pidfd ends the waiter; the process is not touched.
		c.pidfd.Close()
	}
	r.setPhase("detached")
}

// Status reports the supervised k3s process.
func (r *ChildRunner) Status(context.Context) (Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{State: r.phase, Restarts: r.restarts}
	if c := r.cur; c != nil {
		select {
		case <-c.exited:
		default:
			st.Running, st.PID, st.Since = true, c.pid, c.since
		}
	}
	return st, nil
}

func (r *ChildRunner) setPhase(p string) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
}
