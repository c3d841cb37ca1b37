package bootstate_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
)

// The property test runs a device's life against the bootloader rule: installs
// of good, unhealthy and kernel-panicking releases, trial boots, health gates,
// rollbacks and stray reboots, on a real boot environment format. Every run of
// a life is repeated with the power cut at every byte of every environment
// write it makes. The invariants:
//   - the environment always decodes and always has a bootable slot, and the
//     device always settles on a healthy committed release;
//   - a committed slot is left only for a trial of the other slot;
//   - a slot whose failed trial was recorded is not booted until reinstalled;
//   - a slot being written is never booted.

type releaseKind int

const (
	healthy   releaseKind = iota
	unhealthy             // boots, fails the health gate
	panics                // kernel cannot mount root
)

func (k releaseKind) String() string { return [...]string{"healthy", "unhealthy", "panics"}[k] }

// life is one random sequence of events a device goes through.
type life struct {
	releases []releaseKind
	tries    []int
	reboots  []int  // stray reboots after each settle
	prefer   []bool // an operator rolls back to the other committed slot
}

func randomLife(r *rand.Rand) life {
	n := 1 + r.IntN(4)
	var l life
	for range n {
		l.releases = append(l.releases, releaseKind(r.IntN(3)))
		l.tries = append(l.tries, 1+r.IntN(3))
		l.reboots = append(l.reboots, r.IntN(3))
		l.prefer = append(l.prefer, r.IntN(3) == 0)
	}
	return l
}

// powerCut is raised by the medium when the planned cut is reached.
type powerCut struct{}

// cutPoint says where power is lost: during write number write, after byte
// bytes of it have reached the medium. write < 0: power never fails.
type cutPoint struct{ write, bytes int }

// tornMedium holds the boot environment and loses power at a cut point: the
// write in progress keeps only its first bytes.
type tornMedium struct {
	data   []byte
	cut    cutPoint
	writes []writeRecord // every write attempted, in order
}

type writeRecord struct {
	old, new []byte // new == nil for a slot image write
}

func (m *tornMedium) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.data)) {
		return 0, fmt.Errorf("read %d bytes at %d: out of range", len(p), off)
	}
	return copy(p, m.data[off:]), nil
}

func (m *tornMedium) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.data)) {
		return 0, fmt.Errorf("write %d bytes at %d: out of range", len(p), off)
	}
	m.writes = append(m.writes, writeRecord{old: bytes.Clone(m.data[off : off+int64(len(p))]), new: bytes.Clone(p)})
	if len(m.writes)-1 == m.cut.write {
		copy(m.data[off:], p[:m.cut.bytes])
		panic(powerCut{})
	}
	return copy(m.data[off:], p), nil
}

func (m *tornMedium) Sync() error { return nil }

// slotWrite is a cut point for writing a slot image, which is not on this
// medium: a cut there leaves the slot half written.
func (m *tornMedium) slotWrite() {
	m.writes = append(m.writes, writeRecord{old: []byte{0}})
	if len(m.writes)-1 == m.cut.write {
		panic(powerCut{})
	}
}

// backend is a boot environment format under test.
type backend struct {
	name  string
	size  int
	fresh func(m *tornMedium, vars []bootstate.Var) error
	open  func(m *tornMedium) (bootstate.Env, error)
}

// device is the simulated machine: its boot medium, what its slots hold, and
// the model the invariants are checked against.
type device struct {
	t       *testing.T
	be      backend
	medium  *tornMedium
	content [2]*slotContent
	next    int // index of the next release of the life to install

	committed partitions.Slot
	failed    [2]bool
	boots     int
	// The change in progress when power was cut: after the cut the model
	// believes what reached the medium.
	marking     partitions.Slot
	markingGood bool
	// preferring is set while Prefer runs: after a cut in it, either
	// committed slot may be the one that boots.
	preferring bool
}

type slotContent struct {
	kind     releaseKind
	complete bool
}

func idx(s partitions.Slot) int {
	if s == partitions.SlotB {
		return 1
	}
	return 0
}

type violation struct{ msg string }

func (d *device) violate(format string, args ...any) {
	panic(violation{fmt.Sprintf(format, args...)})
}

func (d *device) check(err error, what string) {
	if err != nil {
		d.violate("%s: %v", what, err)
	}
}

func (d *device) store() *bootstate.Store {
	env, err := d.be.open(d.medium)
	d.check(err, "open boot env")
	return bootstate.New(env)
}

// boot powers the device on and runs it until it settles: the agent runs on
// a committed slot with nothing pending. It returns that slot.
func (d *device) boot() partitions.Slot {
	for range 40 {
		d.boots++
		env, err := d.be.open(d.medium)
		d.check(err, "bootloader: open env")
		dec, err := bootstate.Boot(env)
		d.check(err, "bootloader")
		s := dec.Slot
		if d.failed[idx(s)] {
			d.violate("booted slot %s after its failed trial was recorded", s)
		}
		if s != d.committed && !dec.Trial {
			d.violate("left committed slot %s for %s without a trial", d.committed, s)
		}
		c := d.content[idx(s)]
		if c == nil || !c.complete {
			d.violate("booted slot %s while it was being written", s)
		}
		if c.kind == panics {
			if dec.Trial && dec.TriesAfter == 0 {
				d.failed[idx(s)] = true // its last try failed
			}
			continue
		}
		if d.agent(s, c) {
			return s
		}
	}
	d.violate("did not settle after 40 boots")
	return ""
}

// agent is what cairn-agent does after a boot; true when the device settled.
func (d *device) agent(booted partitions.Slot, c *slotContent) bool {
	store := d.store()
	st, err := store.Read()
	d.check(err, "agent: read boot state")
	if st.Slot(booted).OK == 0 {
		if c.kind == healthy {
			d.marking, d.markingGood = booted, true
			d.check(store.MarkGood(booted), "agent: mark good")
			d.committed, d.marking = booted, ""
			return true
		}
		d.marking, d.markingGood = booted, false
		d.check(store.MarkBad(booted), "agent: health gate failed, mark bad")
		d.failed[idx(booted)], d.marking = true, ""
		return false
	}
	if other := st.Slot(booted.Other()); other.Priority > 0 && other.OK == 0 {
		// Booted the fallback while a trial was pending: a rollback.
		d.marking, d.markingGood = booted.Other(), false
		d.check(store.MarkBad(booted.Other()), "agent: record rollback")
		d.failed[idx(booted.Other())], d.marking = true, ""
	}
	return true
}

// afterCut updates the model with what an interrupted MarkGood or MarkBad
// left on the medium: the slot counts as committed once its ok=1 landed, as
// failed once its priority=0 landed.
func (d *device) afterCut() {
	if d.preferring {
		dec, err := d.store().Choose()
		d.check(err, "after power cut: choose")
		d.committed, d.preferring = dec.Slot, false
		return
	}
	if d.marking == "" {
		return
	}
	st, err := d.store().Read()
	d.check(err, "after power cut: read boot state")
	ss := st.Slot(d.marking)
	if d.markingGood && ss.OK == 1 {
		d.committed = d.marking
	}
	if !d.markingGood && ss.Priority == 0 {
		d.failed[idx(d.marking)] = true
	}
	d.marking = ""
}

// install writes a release into the slot that is not booted and sets it for
// trial, the way the update engine does.
func (d *device) install(booted partitions.Slot, kind releaseKind, tries int) {
	target := booted.Other()
	store := d.store()
	d.check(store.MarkBad(target), "install: disable target")
	d.content[idx(target)] = &slotContent{kind: kind}
	d.medium.slotWrite()
	d.content[idx(target)].complete = true
	d.failed[idx(target)] = false
	d.check(store.SetTrial(target, tries), "install: set trial")
}

// rollBack is an operator's rollback to the other slot when it is
// committed; Prefer must refuse it otherwise.
func (d *device) rollBack(booted partitions.Slot) partitions.Slot {
	other := booted.Other()
	st, err := d.store().Read()
	d.check(err, "rollback: read boot state")
	if !st.Slot(other).Committed() {
		if err := d.store().Prefer(other); !errors.Is(err, bootstate.ErrNotCommitted) {
			d.violate("prefer uncommitted slot %s: %v, want ErrNotCommitted", other, err)
		}
		return booted
	}
	d.preferring = true
	d.check(d.store().Prefer(other), "rollback: prefer")
	d.committed, d.preferring = other, false
	return d.boot()
}

// live runs the rest of the life from a cold boot.
func (d *device) live(l life) {
	booted := d.boot()
	for d.next < len(l.releases) {
		i := d.next
		d.next++
		d.install(booted, l.releases[i], l.tries[i])
		booted = d.boot()
		for range l.reboots[i] {
			booted = d.boot()
		}
		if i < len(l.prefer) && l.prefer[i] {
			booted = d.rollBack(booted)
		}
	}
	if booted != d.committed {
		d.violate("settled on %s, committed is %s", booted, d.committed)
	}
	if c := d.content[idx(booted)]; c.kind != healthy {
		d.violate("settled on a %s release", c.kind)
	}
}

// run lives l from a freshly flashed disk with power cut at cut, then cold
// boots and lives the rest of l. It returns the writes made up to the cut.
func run(t *testing.T, be backend, l life, cut cutPoint) (writes []writeRecord, boots int, err error) {
	m := &tornMedium{data: make([]byte, be.size), cut: cutPoint{write: -1}}
	if err := be.fresh(m, bootstate.InitialVars(partitions.SlotA)); err != nil {
		t.Fatalf("%s: fresh env: %v", be.name, err)
	}
	m.writes, m.cut = nil, cut
	d := &device{t: t, be: be, medium: m, committed: partitions.SlotA}
	d.content[0] = &slotContent{kind: healthy, complete: true}
	defer func() {
		if p := recover(); p != nil {
			v, ok := p.(violation)
			if !ok {
				panic(p)
			}
			err = errors.New(v.msg)
			boots = d.boots
		}
	}()
	defer func() { boots = d.boots }()
	if cut := livesUntilCut(d, l); cut {
		writes = m.writes
		m.cut = cutPoint{write: -1}
		d.afterCut()
		d.live(l)
	} else {
		writes = m.writes
	}
	return writes, boots, nil
}

// livesUntilCut lives l and reports whether power was cut on the way.
func livesUntilCut(d *device, l life) (cut bool) {
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(powerCut); !ok {
				panic(p)
			}
			cut = true
		}
	}()
	d.live(l)
	return false
}

// distinctCuts lists, for one write, the byte counts after which a cut
// leaves a different medium: cutting after k or k' bytes gives the same
// bytes when the write does not change anything between them. The device is
// deterministic, so one cut per class covers all of them.
func distinctCuts(w writeRecord) []int {
	cuts := []int{0}
	for k := 1; k <= len(w.old); k++ {
		if w.new != nil && w.old[k-1] != w.new[k-1] {
			cuts = append(cuts, k)
		}
	}
	return cuts
}

type tally struct {
	lives, cutPoints, simulated, boots int
}

// exercise runs n random lives on be, each with power cut at every byte of
// every write it makes.
func exercise(t *testing.T, be backend, n int, seed uint64) tally {
	r := rand.New(rand.NewPCG(seed, 0xca1e))
	var tl tally
	for range n {
		l := randomLife(r)
		writes, boots, err := run(t, be, l, cutPoint{write: -1})
		tl.boots += boots
		if err != nil {
			t.Fatalf("%s: life %+v without power cuts: %v", be.name, l, err)
		}
		tl.lives++
		for i, w := range writes {
			tl.cutPoints += len(w.old) + 1
			for _, k := range distinctCuts(w) {
				tl.simulated++
				_, boots, err := run(t, be, l, cutPoint{write: i, bytes: k})
				tl.boots += boots
				if err != nil {
					t.Fatalf("%s: life %+v, power cut at byte %d of write %d: %v", be.name, l, k, i, err)
				}
			}
		}
	}
	return tl
}
