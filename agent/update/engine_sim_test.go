package update

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
	"github.com/cairn-edge/cairn/partitions/grubenv"
)

// A simulated device for the update engine: a channel repository served
// over HTTP, a real GRUB environment block in a file, two slot files, and
// bootstate.Boot standing in for grub.cfg at every power-on.

type behaviour int

const (
	healthy   behaviour = iota
	unhealthy           // boots, fails the health gate
	panics              // the kernel never reaches the agent
)

// killed is raised at a chosen engine step, like SIGKILL there.
type killed struct{ step string }

type simDevice struct {
	t       *testing.T
	f       *fixture
	envPath string
	slots   map[partitions.Slot]string
	content map[string]string // slot file → version fully written into it
	kinds   map[string]behaviour
	booted  partitions.Slot
	policy  RebootPolicy
	now     func() time.Time
	clock   Clock

	rebootAsked  int      // reboots the agent asked for since the last power-on
	reboots      []string // every reason, in order
	powerOns     int
	installErr   error // the next install fails with this
	tpmFloor     func(ctx context.Context, v *semver.Version) error
	onTransition func(State)
	steps        []string
	killAt       int // kill the agent at this step number (1-based); 0: never
}

func newSim(t *testing.T) *simDevice {
	t.Helper()
	f := newFixture(t, 1, 1)
	f.publish(board, "1.0.0", "stable", 100)
	dir := t.TempDir()
	d := &simDevice{t: t, f: f, envPath: filepath.Join(dir, "grubenv"),
		slots:   map[partitions.Slot]string{partitions.SlotA: filepath.Join(dir, "slot-A"), partitions.SlotB: filepath.Join(dir, "slot-B")},
		content: map[string]string{}, kinds: map[string]behaviour{}}
	b := grubenv.NewBlock(grubenv.Size)
	for _, v := range bootstate.InitialVars(partitions.SlotA) {
		if err := b.Set(v.Name, v.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(d.envPath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range d.slots {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.content[d.slots[partitions.SlotA]] = "1.0.0"
	if err := NewVersionFloor(filepath.Join(f.varDir, "version-floor")).Raise(semver.MustParse("1.0.0")); err != nil {
		t.Fatal(err)
	}
	d.powerOn()
	return d
}

func (d *simDevice) env() *grubenv.Env {
	env, err := grubenv.Open(d.envPath)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { env.Close() })
	return env
}

func (d *simDevice) bootState() bootstate.State {
	st, err := bootstate.New(d.env()).Read()
	if err != nil {
		d.t.Fatal(err)
	}
	return st
}

// powerOn runs the bootloader until a kernel reaches the agent.
func (d *simDevice) powerOn() {
	d.t.Helper()
	d.rebootAsked = 0
	for range 20 {
		d.powerOns++
		dec, err := bootstate.Boot(d.env())
		if err != nil {
			d.t.Fatalf("bootloader: %v", err)
		}
		v, ok := d.content[d.slots[dec.Slot]]
		if !ok {
			d.t.Fatalf("bootloader chose slot %s, which holds no complete release", dec.Slot)
		}
		if d.kinds[v] == panics {
			continue
		}
		d.booted = dec.Slot
		return
	}
	d.t.Fatal("no slot reached the agent in 20 boots")
}

// Install is the stand-in for the streaming installer: it downloads the
// signed image, checks it against the target and writes it to the slot.
func (d *simDevice) Install(ctx context.Context, req InstallRequest, progress func(done, total int64)) error {
	delete(d.content, req.Device)
	if d.installErr != nil {
		err := d.installErr
		d.installErr = nil
		return err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, req.Target.URL, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if err := req.Target.Verify(int64(len(data)), sum[:]); err != nil {
		return err
	}
	if err := os.WriteFile(req.Device, data, 0o644); err != nil {
		return err
	}
	progress(int64(len(data)), int64(len(data)))
	d.content[req.Device] = req.Manifest.Version
	return nil
}

func (d *simDevice) Reboot(_ context.Context, reason string) error {
	d.rebootAsked++
	d.reboots = append(d.reboots, reason)
	return nil
}

func (d *simDevice) health(context.Context) error {
	if d.kinds[d.content[d.slots[d.booted]]] == unhealthy {
		return errors.New("health gate failed after 10m: check http://localhost:8080/healthz: status 503")
	}
	return nil
}

// agent starts cairn-agent's update engine on the booted slot.
func (d *simDevice) agent() *Engine {
	d.t.Helper()
	e, err := NewEngine(EngineConfig{
		StatePath: filepath.Join(d.f.varDir, "update-state.json"),
		Boot: &partitions.Boot{Slot: d.booted, Device: d.slots[d.booted],
			OtherDevice: d.slots[d.booted.Other()]},
		BootState:     bootstate.New(d.env()),
		Channel:       d.f.channel(),
		Installer:     d,
		Floor:         NewVersionFloor(filepath.Join(d.f.varDir, "version-floor")),
		BootedVersion: d.content[d.slots[d.booted]],
		TPMFloor:      d.tpmFloor,
		OnTransition:  d.onTransition,
		Health:        d.health,
		Rebooter:      d,
		Policy:        d.policy,
		Now:           d.now,
		Clock:         d.clock,
	})
	if err != nil {
		d.t.Fatal(err)
	}
	e.step = func(name string) {
		d.steps = append(d.steps, name)
		if len(d.steps) == d.killAt {
			panic(killed{name})
		}
	}
	return e
}

// survive runs fn and reports the step the agent was killed at, if any.
func survive(fn func() error) (step string, err error) {
	defer func() {
		if p := recover(); p != nil {
			k, ok := p.(killed)
			if !ok {
				panic(p)
			}
			step = k.step
		}
	}()
	return "", fn()
}

// settle boots the device and runs agents until no reboot is pending,
// as many times as the engine asks. It returns the last engine.
func (d *simDevice) settle() *Engine {
	d.t.Helper()
	for range 10 {
		e := d.agent()
		if _, err := survive(func() error { return e.Resume(context.Background()) }); err != nil {
			d.t.Fatalf("resume on slot %s: %v", d.booted, err)
		}
		if d.rebootAsked == 0 {
			return e
		}
		d.powerOn()
	}
	d.t.Fatal("the device did not settle in 10 boots")
	return nil
}

// update runs one update from a settled device to its settled end.
func (d *simDevice) update() (*Engine, error) {
	d.t.Helper()
	e := d.agent()
	_, err := e.Update(context.Background())
	if err != nil {
		return e, err
	}
	if d.rebootAsked == 0 {
		return e, nil
	}
	d.powerOn()
	return d.settle(), nil
}

func (d *simDevice) floor() string {
	v, err := NewVersionFloor(filepath.Join(d.f.varDir, "version-floor")).Get()
	if err != nil || v == nil {
		d.t.Fatalf("floor %v: %v", v, err)
	}
	return v.String()
}

func (d *simDevice) wantSettled(e *Engine, phase Phase, version string, booted partitions.Slot) Status {
	d.t.Helper()
	st := e.Status()
	if st.Phase != phase || st.Version != version || d.booted != booted {
		d.t.Fatalf("settled in %s %s on slot %s (reason %q, error %q); want %s %s on slot %s",
			st.Phase, st.Version, d.booted, st.Reason, st.LastError, phase, version, booted)
	}
	if !d.bootState().Slot(booted).Committed() {
		d.t.Fatalf("settled on slot %s, which is not committed: %+v", booted, d.bootState())
	}
	return st
}

func (d *simDevice) String() string {
	return fmt.Sprintf("booted %s, boot env %+v, steps %v", d.booted, d.bootState(), d.steps)
}
