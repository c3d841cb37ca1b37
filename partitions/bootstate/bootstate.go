// Package bootstate decides which root slot boots next and moves slots between
// trial, good and bad through a bootloader environment, one power-safe
// variable write at a time.
package bootstate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cairn-edge/cairn/partitions"
)

// Env is a bootloader environment: GRUB's environment block or U-Boot's env.
// Set must store one variable durably and leave every other byte as it was.
type Env interface {
	Vars() (map[string]string, error)
	Set(name, value string) error
}

// Priorities the agent uses. The bootloader rule works for any digit; Cairn
// keeps to three so that the slot it chose is always the only one at the top.
const (
	PriorityDisabled = 0
	PriorityFallback = 1
	PriorityPrimary  = 2
)

// MaxTries is the largest tries_left value: values are single digits so that
// changing one is a one-byte write and GRUB script can count down without
// arithmetic.
const MaxTries = 9

// DefaultTries is the number of boots a newly installed slot gets.
const DefaultTries = 3

var (
	// ErrNoFallback means the change would leave no committed slot to fall
	// back on, so the device could end up with no bootable slot.
	ErrNoFallback = errors.New("no committed fallback slot")
	// ErrNoBootableSlot means no slot has priority and either ok or tries left.
	ErrNoBootableSlot = errors.New("no bootable slot")
)

// SlotState is what the boot environment says about one slot.
type SlotState struct {
	Priority  int `json:"priority"`
	TriesLeft int `json:"tries_left"`
	OK        int `json:"ok"` // 1 once the slot passed its health gate
}

func (s *SlotState) field(name string) *int {
	switch name {
	case fieldPriority:
		return &s.Priority
	case fieldTries:
		return &s.TriesLeft
	}
	return &s.OK
}

// Bootable reports whether the bootloader may pick the slot.
func (s SlotState) Bootable() bool { return s.Priority > 0 && (s.OK == 1 || s.TriesLeft > 0) }

// Committed reports whether the slot passed its health gate and is enabled:
// the bootloader will boot it without counting tries.
func (s SlotState) Committed() bool { return s.Priority > 0 && s.OK == 1 }

// State is the boot state of both slots.
type State struct {
	A SlotState `json:"a"`
	B SlotState `json:"b"`
}

// Slot returns the state of one slot.
func (st State) Slot(s partitions.Slot) SlotState {
	if s == partitions.SlotB {
		return st.B
	}
	return st.A
}

func (st *State) slot(s partitions.Slot) *SlotState {
	if s == partitions.SlotB {
		return &st.B
	}
	return &st.A
}

// Decision is what the bootloader will do on the next boot.
type Decision struct {
	Slot partitions.Slot `json:"slot"`
	// Trial is set when the slot is not yet ok: the bootloader spends one of
	// its tries on this boot.
	Trial bool `json:"trial"`
	// TriesAfter is tries_left after this boot's decrement.
	TriesAfter int `json:"tries_after"`
}

// Choose applies the bootloader rule: the highest-priority slot that is ok or
// has tries left; on equal priority, A before B.
func (st State) Choose() (Decision, error) {
	var best partitions.Slot
	for _, s := range partitions.Slots {
		ss := st.Slot(s)
		if !ss.Bootable() {
			continue
		}
		if best == "" || ss.Priority > st.Slot(best).Priority {
			best = s
		}
	}
	if best == "" {
		return Decision{}, ErrNoBootableSlot
	}
	ss := st.Slot(best)
	d := Decision{Slot: best, TriesAfter: ss.TriesLeft}
	if ss.OK != 1 {
		d.Trial = true
		d.TriesAfter = ss.TriesLeft - 1
	}
	return d, nil
}

// Variable names in the boot environment, in the canonical order images are
// built with.
func varName(s partitions.Slot, field string) string {
	return "cairn_" + strings.ToLower(string(s)) + "_" + field
}

const (
	fieldPriority = "priority"
	fieldTries    = "tries"
	fieldOK       = "ok"
)

// Var is one boot environment variable.
type Var struct{ Name, Value string }

// InitialVars is the boot environment of a freshly flashed disk: the given
// slot committed, the other empty and disabled, in canonical order.
func InitialVars(committed partitions.Slot) []Var {
	var st State
	*st.slot(committed) = SlotState{Priority: PriorityFallback, OK: 1}
	return st.vars()
}

func (st State) vars() []Var {
	var out []Var
	for _, s := range partitions.Slots {
		ss := st.Slot(s)
		out = append(out,
			Var{varName(s, fieldPriority), strconv.Itoa(ss.Priority)},
			Var{varName(s, fieldTries), strconv.Itoa(ss.TriesLeft)},
			Var{varName(s, fieldOK), strconv.Itoa(ss.OK)})
	}
	return out
}

// Decode reads the state from environment variables. A missing variable
// reads as 0, the way the bootloader scripts treat an unset one; a value
// that is not a single digit (or 0/1 for ok) is an error naming the variable.
func Decode(vars map[string]string) (State, error) {
	var st State
	var errs []error
	digit := func(name string, max int) int {
		v, ok := vars[name]
		if !ok {
			return 0
		}
		if len(v) != 1 || v[0] < '0' || int(v[0]-'0') > max {
			errs = append(errs, fmt.Errorf("boot env %s=%q: want one digit from 0 to %d", name, v, max))
			return 0
		}
		return int(v[0] - '0')
	}
	for _, s := range partitions.Slots {
		ss := st.slot(s)
		ss.Priority = digit(varName(s, fieldPriority), 9)
		ss.TriesLeft = digit(varName(s, fieldTries), MaxTries)
		ss.OK = digit(varName(s, fieldOK), 1)
	}
	return st, errors.Join(errs...)
}
