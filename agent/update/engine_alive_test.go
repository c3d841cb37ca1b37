package update

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/partitions"
)

// hangingBootState is a boot environment on a disk that stops answering
// at SetTrial.
type hangingBootState struct {
	BootState
	entered, never chan struct{}
}

func (b *hangingBootState) SetTrial(partitions.Slot, int) error {
	close(b.entered)
	<-b.never
	return errors.New("disk gone")
}

type installFunc func(ctx context.Context, req InstallRequest, progress func(done, total int64)) error

func (f installFunc) Install(ctx context.Context, req InstallRequest, progress func(done, total int64)) error {
	return f(ctx, req, progress)
}

// TestEngineThatHangsStopsCheckingIn: the watchdog may be pinged only
// while the engine checks in. An idle engine and one waiting for a long
// install do; one stuck in a step of its own (here a boot environment
// write that never returns) does not, however long it stays stuck.
func TestEngineThatHangsStopsCheckingIn(t *testing.T) {
	d := newSim(t)
	var now atomic.Int64
	now.Store(time.Date(2026, 6, 5, 12, 0, 0, 0, time.UTC).UnixNano())
	d.now = func() time.Time { return time.Unix(0, now.Load()) }
	advance := func(by time.Duration) { now.Add(int64(by)) }
	d.f.publish(board, "1.1.0", "stable", 100)
	e := d.agent()
	e.cfg.Heartbeat = time.Millisecond
	installing, finishInstall := make(chan struct{}), make(chan struct{})
	e.cfg.Installer = installFunc(func(ctx context.Context, req InstallRequest, progress func(int64, int64)) error {
		close(installing)
		<-finishInstall
		return d.Install(ctx, req, progress)
	})
	hung := &hangingBootState{BootState: e.cfg.BootState, entered: make(chan struct{}), never: make(chan struct{})}
	e.cfg.BootState = hung
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		close(hung.never)
		cancel()
		<-done
	})

	const within = time.Minute
	// Each wait checks in again after the clock moved on; none of them
	// can pass for an engine that does not.
	waitAlive := func(what string) {
		t.Helper()
		advance(2 * within)
		for i := 0; !e.Alive(within); i++ {
			if i == 10000 {
				t.Fatalf("%s: the engine did not check in", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitAlive("idle")
	if _, err := e.CheckNow(ctx); err != nil {
		t.Fatal(err)
	}
	<-installing
	waitAlive("waiting for the install")
	close(finishInstall)
	<-hung.entered
	advance(2 * within)
	// Run is inside SetTrial: nothing of the engine can check in now.
	if e.Alive(within) {
		t.Fatal("an engine stuck in a boot environment write still counts as alive")
	}
	if !e.Alive(3 * within) {
		t.Fatal("the last check-in before the write is lost")
	}
}

// slowChannel answers its first check at once and holds the next ones
// until released, as a channel server that has stopped answering does
// until the check's timeout.
type slowChannel struct {
	Checker
	calls   atomic.Int32
	waiting chan struct{}
	release chan struct{}
}

func (c *slowChannel) Check(ctx context.Context) (*Offer, error) {
	if c.calls.Add(1) > 1 {
		close(c.waiting)
		<-c.release
		return nil, errors.New("update channel: no complete answer within 2m0s")
	}
	return c.Checker.Check(ctx)
}

// TestEngineChecksInWhileTheChannelIsSlow: a check of the channel ends by
// the channel's own timeout, so the engine waiting for it checks in, as
// for an install; the watchdog does not restart an agent whose update
// server is slow.
func TestEngineChecksInWhileTheChannelIsSlow(t *testing.T) {
	d := newSim(t)
	var now atomic.Int64
	now.Store(time.Date(2026, 6, 5, 12, 0, 0, 0, time.UTC).UnixNano())
	d.now = func() time.Time { return time.Unix(0, now.Load()) }
	d.f.publish(board, "1.1.0", "stable", 100)
	e := d.agent()
	e.cfg.Heartbeat = time.Millisecond
	slow := &slowChannel{Checker: e.cfg.Channel, waiting: make(chan struct{}), release: make(chan struct{})}
	e.cfg.Channel = slow
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		close(slow.release)
		cancel()
		<-done
	}()
	if _, err := e.CheckNow(ctx); err != nil {
		t.Fatal(err)
	}
	<-slow.waiting // Run's Update is inside the second check
	const within = time.Minute
	now.Add(int64(2 * within))
	for i := 0; !e.Alive(within); i++ {
		if i == 10000 {
			t.Fatal("the engine waiting for a slow channel did not check in")
		}
		time.Sleep(time.Millisecond)
	}
}
