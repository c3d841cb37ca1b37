package bootstate

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/cairn-edge/cairn/partitions"
)

// ErrNotCommitted means a slot that has not passed its health gate was asked
// to become the preferred one.
var ErrNotCommitted = errors.New("slot is not committed")

// Store changes the boot state through an Env. Every change is a sequence of
// single-variable writes ordered so that a power cut between any two of them
// (or inside one, which leaves the old or the new value) still leaves a
// committed slot the bootloader will boot.
type Store struct {
	env Env
}

// New returns a Store over env.
func New(env Env) *Store { return &Store{env: env} }

// Read returns the current state.
func (s *Store) Read() (State, error) {
	vars, err := s.env.Vars()
	if err != nil {
		return State{}, fmt.Errorf("boot env: read: %w", err)
	}
	return Decode(vars)
}

// Choose returns what the bootloader will do on the next boot.
func (s *Store) Choose() (Decision, error) {
	st, err := s.Read()
	if err != nil {
		return Decision{}, err
	}
	return st.Choose()
}

// SetTrial makes slot the one the next boot tries, tries times, with the
// other slot as fallback. The other slot must be committed: a trial with
// nothing to fall back on could leave the device without a bootable slot.
// Call it only after every byte of the slot has been written and verified.
func (s *Store) SetTrial(slot partitions.Slot, tries int) error {
	if tries < 1 || tries > MaxTries {
		return fmt.Errorf("set trial %s: tries %d: want 1 to %d", slot, tries, MaxTries)
	}
	return s.change("set trial "+string(slot), func(st State) ([]write, error) {
		other := slot.Other()
		if !st.Slot(other).Committed() {
			return nil, fmt.Errorf("slot %s is not committed: %w", other, ErrNoFallback)
		}
		// The slot stays disabled until its tries and ok are in place, and
		// only the last write makes it the primary.
		return []write{
			{slot, fieldPriority, PriorityDisabled},
			{slot, fieldOK, 0},
			{slot, fieldTries, tries},
			{other, fieldPriority, PriorityFallback},
			{slot, fieldPriority, PriorityPrimary},
		}, nil
	})
}

// MarkGood records that slot passed its health gate: the bootloader boots it
// from now on without counting tries.
func (s *Store) MarkGood(slot partitions.Slot) error {
	return s.change("mark good "+string(slot), func(st State) ([]write, error) {
		if st.Slot(slot).Priority == PriorityDisabled {
			return nil, fmt.Errorf("slot %s is disabled; only a slot set for trial can be marked good", slot)
		}
		return []write{{slot, fieldOK, 1}}, nil
	})
}

// MarkBad disables slot: it failed its trial, or is about to be overwritten.
// The other slot must be committed, so the device always has one to boot.
func (s *Store) MarkBad(slot partitions.Slot) error {
	return s.change("mark bad "+string(slot), func(st State) ([]write, error) {
		if !st.Slot(slot.Other()).Committed() {
			return nil, fmt.Errorf("slot %s is not committed: %w", slot.Other(), ErrNoFallback)
		}
		// Disabling first makes the slot unbootable in one write.
		return []write{
			{slot, fieldPriority, PriorityDisabled},
			{slot, fieldOK, 0},
			{slot, fieldTries, 0},
		}, nil
	})
}

// Prefer makes the committed slot the one that boots, on purpose: an
// operator's rollback to the release kept in the other slot. The other slot
// stays enabled as the fallback (or disabled, if it was). Both writes keep a
// committed slot at the top: between them the two share a priority, and the
// tie boots slot A, which is committed too or disabled.
func (s *Store) Prefer(slot partitions.Slot) error {
	return s.change("prefer "+string(slot), func(st State) ([]write, error) {
		if !st.Slot(slot).Committed() {
			return nil, fmt.Errorf("slot %s: %w", slot, ErrNotCommitted)
		}
		other := slot.Other()
		var writes []write
		if st.Slot(other).Priority > PriorityFallback {
			writes = append(writes, write{other, fieldPriority, PriorityFallback})
		}
		return append(writes, write{slot, fieldPriority, PriorityPrimary}), nil
	})
}

type write struct {
	slot  partitions.Slot
	field string
	value int
}

// change plans writes against the current state and applies those that
// change something, in order.
func (s *Store) change(what string, plan func(State) ([]write, error)) error {
	st, err := s.Read()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	writes, err := plan(st)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	for _, w := range writes {
		field := st.slot(w.slot).field(w.field)
		if *field == w.value {
			continue
		}
		name := varName(w.slot, w.field)
		if err := s.env.Set(name, strconv.Itoa(w.value)); err != nil {
			return fmt.Errorf("%s: write %s: %w", what, name, err)
		}
		*field = w.value
	}
	return nil
}

// Boot does what the bootloader does at power-on: choose a slot and, for a
// slot on trial, spend one try. The Go twin of grub.cfg and boot.scr, for
// tests and for simulating a device.
func Boot(env Env) (Decision, error) {
	vars, err := env.Vars()
	if err != nil {
		return Decision{}, fmt.Errorf("boot env: read: %w", err)
	}
	st, err := Decode(vars)
	if err != nil {
		return Decision{}, err
	}
	d, err := st.Choose()
	if err != nil {
		return Decision{}, err
	}
	if d.Trial {
		if err := env.Set(varName(d.Slot, fieldTries), strconv.Itoa(d.TriesAfter)); err != nil {
			return Decision{}, fmt.Errorf("boot env: spend a try of slot %s: %w", d.Slot, err)
		}
	}
	return d, nil
}
