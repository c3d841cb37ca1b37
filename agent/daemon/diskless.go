package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/update"
	"github.com/cairn-edge/cairn/partitions"
)

// ErrDiskless: the device booted diskless (partitions.Boot.Diskless). It
// has no second slot to install into and no boot environment to roll back
// with: the network boot server decides what the next boot runs.
var ErrDiskless = errors.New("diskless: updates come from the network boot server")

// disklessPolicy is the reboot policy status shows on a diskless device,
// which never reboots for an update.
const disklessPolicy = "none"

// runDiskless is Run for a diskless boot: the same config, network, time
// and k3s, and the health gate's checks for the log and status, but no
// update engine and no boot state: there is nothing to install, commit
// or roll back.
func (d *Daemon) runDiskless(ctx context.Context) error {
	if err := d.bringUp(ctx); err != nil {
		return err
	}
	gate, err := d.gate()
	if err != nil {
		return err
	}
	eng := &disklessEngine{booted: d.boot.Slot}
	if err := d.serveDiskless(ctx, eng); err != nil {
		return err
	}
	if d.k3s != nil {
		d.k3s.publishAsync(update.PhaseIdle)
	}
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		d.log.Warn("systemd notify", zap.Error(err))
	}
	// Nothing here can hang the way an update engine can: ping while the
	// agent runs.
	go watchdog(ctx, d.log, func(time.Duration) bool { return true })
	d.log.Info("agent running", zap.String("booted_slot", string(d.boot.Slot)), zap.Bool("diskless", true),
		zap.String("slot_url", d.boot.SlotURL), zap.String("os_version", d.osVersion()), zap.String("socket", d.cfg.Socket))
	eng.gateVerdict(d.runGate(ctx, gate))
	<-ctx.Done()
	return ctx.Err()
}

// runGate runs the health gate once and logs its verdict; there is no
// slot to commit, whatever it says.
func (d *Daemon) runGate(ctx context.Context, gate *health.Gate) error {
	v := gate.Run(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	d.log.Info("health gate", zap.Bool("passed", v.Passed), zap.String("reason", v.Reason),
		zap.Duration("elapsed", v.Elapsed), zap.String("commit", "none: diskless boot"))
	return v.Err()
}

// serveDiskless serves the local API with the diskless status.
func (d *Daemon) serveDiskless(ctx context.Context, eng *disklessEngine) error {
	return d.serve(ctx, eng, func() (*agent.Status, error) {
		return agent.DisklessSlotStatus(d.boot, d.osVersion()), nil
	})
}

// disklessEngine answers the API's update calls on a diskless device: the
// update state is idle for good, and every action is refused with
// ErrDiskless.
type disklessEngine struct {
	booted partitions.Slot
	mu     sync.Mutex
	gate   string // the health gate's failure; empty while it runs or when it passed
}

func (e *disklessEngine) gateVerdict(err error) {
	if err == nil || errors.Is(err, context.Canceled) {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gate = "health gate: " + err.Error()
}

func (e *disklessEngine) Status() update.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return update.Status{State: update.State{Phase: update.PhaseIdle, Reason: ErrDiskless.Error(), LastError: e.gate},
		Booted: e.booted, Policy: disklessPolicy}
}

func (e *disklessEngine) CheckNow(context.Context) (*update.Offer, error) {
	return nil, ErrDiskless
}

func (e *disklessEngine) Apply(context.Context) error {
	return fmt.Errorf("%w: %w", ErrDiskless, update.ErrNothingToApply)
}

func (e *disklessEngine) Rollback(context.Context) error {
	return fmt.Errorf("%w: %w", ErrDiskless, update.ErrNoRollback)
}
