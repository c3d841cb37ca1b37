package update

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Masterminds/semver/v3"
	"go.uber.org/zap"

	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
)

// Errors of the engine that callers (the local API, the CLI) tell apart.
var (
	ErrBusy           = errors.New("an update is in flight")
	ErrNothingToApply = errors.New("no installed release waits for a reboot")
	ErrKnownBad       = errors.New("the newest release was rolled back on this device before")
	ErrNoRollback     = errors.New("the other slot holds no committed release to roll back to")
)

// Checker is the update channel as the engine sees it (*Channel).
type Checker interface {
	Check(ctx context.Context) (*Offer, error)
}

// ImageInstaller streams a release image into a slot and verifies it,
// resuming an install interrupted earlier and leaving the boot state alone
// (*Installer).
type ImageInstaller interface {
	Install(ctx context.Context, req InstallRequest, progress func(done, total int64)) error
}

// BootState is the boot environment store (*bootstate.Store).
type BootState interface {
	Read() (bootstate.State, error)
	SetTrial(slot partitions.Slot, tries int) error
	MarkGood(slot partitions.Slot) error
	MarkBad(slot partitions.Slot) error
	Prefer(slot partitions.Slot) error
}

// Rebooter restarts the machine. On a device it syncs and calls reboot(2)
// and does not return; tests record the call.
type Rebooter interface {
	Reboot(ctx context.Context, reason string) error
}

// HealthGate runs the boot health gate: nil when the boot is healthy, an
// error carrying the reason when not, ctx's error when interrupted.
type HealthGate func(ctx context.Context) error

// EngineConfig wires an Engine to the device.
type EngineConfig struct {
	StatePath string           // the state file on /var
	Boot      *partitions.Boot // the booted slot and both slot devices
	BootState BootState
	Channel   Checker
	Installer ImageInstaller
	Floor     *VersionFloor
	// BootedVersion is the release the booted slot holds (its signed
	// footer's manifest). Booted from a committed slot, it is the least the
	// version floor can be: a device flashed or network-installed with
	// 1.0.0 has no floor on record yet, and must not take 1.0.0 on its
	// channel for an update.
	BootedVersion string
	// TPMFloor, when set, raises the TPM's version floor to a release just
	// committed, after the floor file (agent.MeasuredBoot.RaiseTPMFloor).
	TPMFloor func(ctx context.Context, v *semver.Version) error
	Health   HealthGate
	Rebooter Rebooter
	Policy   RebootPolicy
	Tries    int              // trial boots of a new release; 0: bootstate.DefaultTries
	Now      func() time.Time // nil: time.Now
	Clock    Clock            // waits for a reboot window; nil: the real clock
	Log      *zap.Logger      // nil: no logs
	// Heartbeat is how often the engine checks in while it waits (see
	// Engine.Alive); zero means DefaultHeartbeat.
	Heartbeat time.Duration
	// OnTransition, when set, is told every persisted state, after the
	// write (the daemon publishes it as a node label). It must not block.
	OnTransition func(State)
}

// Engine is the update state machine: it takes a release from the channel
// to committed or rolled back, one persisted phase at a time, and resumes
// from the state file after any restart or power cut.
type Engine struct {
	cfg EngineConfig
	// op serialises the operations that change the state: one update, apply
	// or rollback at a time.
	op sync.Mutex
	mu sync.Mutex // guards st and progress for readers
	st State
	// progress of the install in flight.
	done, total int64
	// step, when set by tests, is called after every step that changes
	// persistent state, to kill the agent there.
	step func(name string)
	// wake tells Run that the phase changed (an install finished, an apply
	// was asked for).
	wake chan struct{}
	// updateNow asks Run to run an update (CheckNow found one).
	updateNow chan struct{}
	// beat is when the engine last checked in (Alive), in Unix
	// nanoseconds of cfg.Now.
	beat atomic.Int64
}

// NewEngine loads the state file and checks the configuration.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	switch {
	case cfg.StatePath == "" || cfg.Boot == nil || cfg.BootState == nil || cfg.Floor == nil:
		return nil, errors.New("update engine: state path, booted slot, boot state and version floor are required")
	case cfg.Channel == nil || cfg.Installer == nil || cfg.Health == nil || cfg.Rebooter == nil:
		return nil, errors.New("update engine: channel, installer, health gate and rebooter are required")
	case !cfg.Boot.Slot.Valid():
		return nil, fmt.Errorf("update engine: booted slot %q", cfg.Boot.Slot)
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("update engine: %w", err)
	}
	if cfg.Tries == 0 {
		cfg.Tries = bootstate.DefaultTries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	st, err := loadState(cfg.StatePath)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, st: st, wake: make(chan struct{}, 1), updateNow: make(chan struct{}, 1)}
	e.checkIn()
	return e, nil
}

// Status is the update state for the local API and status command.
type Status struct {
	State
	Booted   partitions.Slot `json:"booted_slot"`
	Policy   string          `json:"reboot_policy"`
	Window   string          `json:"reboot_window,omitempty"`
	RebootAt *time.Time      `json:"reboot_at,omitempty"` // an installed release waits for this time
	Done     int64           `json:"install_done,omitempty"`
	Total    int64           `json:"install_total,omitempty"`
}

// Status returns a copy of the state and the install progress.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Status{State: e.st.clone(), Booted: e.cfg.Boot.Slot, Policy: e.cfg.Policy.Mode, Done: e.done, Total: e.total}
	if s.Policy == "" {
		s.Policy = RebootImmediate
	}
	if s.Policy == RebootWindow {
		s.Window = e.cfg.Policy.Window.String()
	}
	if e.st.Phase == PhaseInstalled {
		if at, ok := e.cfg.Policy.Next(e.cfg.Now()); ok {
			s.RebootAt = &at
		}
	}
	return s
}

// commit persists a new state and logs the transition.
func (e *Engine) commit(next State, msg string) error {
	e.mu.Lock()
	prev := e.st.Phase
	e.mu.Unlock()
	next.Changed = e.cfg.Now().UTC()
	if err := saveState(e.cfg.StatePath, next); err != nil {
		return err
	}
	e.mu.Lock()
	e.st = next
	e.mu.Unlock()
	fields := []zap.Field{zap.String("from", string(prev)), zap.String("to", string(next.Phase)),
		zap.String("version", next.Version), zap.String("booted_slot", string(e.cfg.Boot.Slot))}
	if next.Target != "" {
		fields = append(fields, zap.String("target_slot", string(next.Target)))
	}
	if next.Reason != "" {
		fields = append(fields, zap.String("reason", next.Reason))
	}
	if next.LastError != "" && next.Phase == PhaseFailed {
		fields = append(fields, zap.String("error", next.LastError))
	}
	e.cfg.Log.Info(msg, fields...)
	if e.cfg.OnTransition != nil {
		e.cfg.OnTransition(next.clone())
	}
	e.stepDone("persist " + string(next.Phase))
	return nil
}

func (e *Engine) stepDone(name string) {
	if e.step != nil {
		e.step(name)
	}
}

func (e *Engine) state() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.clone()
}

// Check asks the channel for a release this device should take, leaving
// out releases it rolled back from. It changes nothing.
func (e *Engine) Check(ctx context.Context) (*Offer, error) {
	o, err := e.cfg.Channel.Check(ctx)
	if err != nil {
		return nil, err
	}
	if st := e.state(); st.IsBad(o.Manifest.Version) {
		return nil, fmt.Errorf("release %s: %w", o.Manifest.Version, ErrKnownBad)
	}
	return o, nil
}

// Update runs one update: check the channel, install the release into the
// inactive slot, set it for trial and reboot as the policy says. It returns
// the offer it acted on; with nothing to do, the channel's reason
// (ErrUpToDate, ErrNotInRollout, ErrKnownBad ...).
func (e *Engine) Update(ctx context.Context) (*Offer, error) {
	e.op.Lock()
	defer e.op.Unlock()
	st := e.state()
	if !st.Phase.AtRest() {
		return nil, fmt.Errorf("update %s (%s): %w", st.Version, st.Phase, ErrBusy)
	}
	// The check is bounded by the channel's own timeout; the engine checks
	// in while it waits, as for an install.
	var o *Offer
	err := e.await(func() (err error) {
		o, err = e.Check(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	booted := e.cfg.Boot.Slot
	next := st.clone()
	next.Phase, next.Version, next.Offer = PhaseDownloading, o.Manifest.Version, o
	next.Target, next.From = booted.Other(), booted
	next.Reason, next.LastError = "", ""
	next.Started = e.cfg.Now().UTC()
	if next.SlotVersions != nil {
		delete(next.SlotVersions, next.Target)
	}
	if err := e.commit(next, "update found"); err != nil {
		return nil, err
	}
	return o, e.install(ctx)
}

// install runs the downloading phase to its end: disable the target slot,
// stream the image into it, then set it for trial.
func (e *Engine) install(ctx context.Context) error {
	st := e.state()
	// The target is disabled before the first byte lands in it; MarkBad
	// skips writes that change nothing, so a resumed install repeats it
	// safely.
	if err := e.cfg.BootState.MarkBad(st.Target); err != nil {
		return e.fail(st, fmt.Errorf("disable slot %s before writing it: %w", st.Target, err))
	}
	e.stepDone("mark bad target")
	req := InstallRequest{Target: st.Offer.Image, Manifest: st.Offer.Manifest, Device: e.slotDevice(st.Target)}
	err := e.await(func() error { return e.cfg.Installer.Install(ctx, req, e.setProgress) })
	if err != nil {
		if ctx.Err() != nil {
			// Stopped, not failed: the next start resumes the install.
			return ctx.Err()
		}
		return e.fail(st, fmt.Errorf("install %s into slot %s: %w", st.Version, st.Target, err))
	}
	e.stepDone("install")
	next := st.clone()
	next.Phase = PhaseInstalled
	if next.SlotVersions == nil {
		next.SlotVersions = map[partitions.Slot]string{}
	}
	next.SlotVersions[st.Target] = st.Version
	if err := e.commit(next, "release installed"); err != nil {
		return err
	}
	return e.setTrial(ctx)
}

// setTrial gives the installed slot its trial boots, then reboots if the
// policy says now.
func (e *Engine) setTrial(ctx context.Context) error {
	st := e.state()
	if err := e.cfg.BootState.SetTrial(st.Target, e.cfg.Tries); err != nil {
		return e.fail(st, fmt.Errorf("set slot %s for trial: %w", st.Target, err))
	}
	e.stepDone("set trial")
	e.cfg.Log.Info("trial set", zap.String("version", st.Version), zap.String("target_slot", string(st.Target)), zap.Int("tries", e.cfg.Tries))
	e.poke()
	if at, ok := e.cfg.Policy.Next(e.cfg.Now()); ok && !at.After(e.cfg.Now()) {
		return e.reboot(ctx, "reboot into "+st.Version+" on slot "+string(st.Target))
	}
	return nil
}

// reboot persists the rebooting phase and restarts the machine.
func (e *Engine) reboot(ctx context.Context, why string) error {
	next := e.state()
	next.Phase = PhaseRebooting
	if err := e.commit(next, "rebooting"); err != nil {
		return err
	}
	if err := e.rebootMachine(ctx, why); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	e.stepDone("reboot")
	return nil
}

// fail records a failed update. The target slot stays disabled and the
// booted slot keeps booting; the next check starts over.
func (e *Engine) fail(st State, err error) error {
	next := st.clone()
	next.Phase, next.LastError, next.Offer = PhaseFailed, err.Error(), nil
	if cerr := e.commit(next, "update failed"); cerr != nil {
		return errors.Join(err, cerr)
	}
	return err
}

func (e *Engine) setProgress(done, total int64) {
	e.mu.Lock()
	e.done, e.total = done, total
	e.mu.Unlock()
}

func (e *Engine) slotDevice(s partitions.Slot) string {
	if s == e.cfg.Boot.Slot {
		return e.cfg.Boot.Device
	}
	return e.cfg.Boot.OtherDevice
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// manifestOf is the manifest of the update in flight, for raising the floor.
func manifestOf(st State) *release.Manifest {
	if st.Offer == nil {
		return nil
	}
	return st.Offer.Manifest
}
