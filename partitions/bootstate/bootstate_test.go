package bootstate

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/partitions"
)

// memEnv is an Env in memory that records every write.
type memEnv struct {
	vars   map[string]string
	writes []string
}

func newMemEnv(vars []Var) *memEnv {
	e := &memEnv{vars: map[string]string{}}
	for _, v := range vars {
		e.vars[v.Name] = v.Value
	}
	return e
}

func (e *memEnv) Vars() (map[string]string, error) { return maps.Clone(e.vars), nil }

func (e *memEnv) Set(name, value string) error {
	e.vars[name] = value
	e.writes = append(e.writes, name+"="+value)
	return nil
}

func TestChooseFollowsTheBootloaderRule(t *testing.T) {
	slot := func(p, tries, ok int) SlotState { return SlotState{Priority: p, TriesLeft: tries, OK: ok} }
	for _, tc := range []struct {
		name string
		st   State
		want Decision
		err  error
	}{
		{"fresh disk boots A", State{A: slot(1, 0, 1)}, Decision{Slot: "A"}, nil},
		{"trial B spends a try", State{A: slot(1, 0, 1), B: slot(2, 3, 0)}, Decision{Slot: "B", Trial: true, TriesAfter: 2}, nil},
		{"B out of tries falls back to A", State{A: slot(1, 0, 1), B: slot(2, 0, 0)}, Decision{Slot: "A"}, nil},
		{"committed B keeps its tries", State{A: slot(1, 0, 1), B: slot(2, 1, 1)}, Decision{Slot: "B", TriesAfter: 1}, nil},
		{"ok but disabled is skipped", State{A: slot(0, 0, 1), B: slot(1, 0, 1)}, Decision{Slot: "B"}, nil},
		{"tie goes to A", State{A: slot(2, 0, 1), B: slot(2, 0, 1)}, Decision{Slot: "A"}, nil},
		{"nothing bootable", State{A: slot(1, 0, 0), B: slot(0, 3, 1)}, Decision{}, ErrNoBootableSlot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.st.Choose()
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("Choose() = %+v, %v; want %+v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestUpdateCycleWritesOneVariableAtATime(t *testing.T) {
	env := newMemEnv(InitialVars(partitions.SlotA))
	s := New(env)

	// Install into B: disable it, write it, try it.
	must(t, s.MarkBad(partitions.SlotB))
	if len(env.writes) != 0 {
		t.Fatalf("MarkBad of an already disabled slot wrote %v", env.writes)
	}
	must(t, s.SetTrial(partitions.SlotB, 3))
	wantWrites(t, env, "cairn_b_tries=3", "cairn_b_priority=2")
	d, err := Boot(env)
	must(t, err)
	if d != (Decision{Slot: "B", Trial: true, TriesAfter: 2}) {
		t.Fatalf("first boot after SetTrial: %+v", d)
	}
	wantWrites(t, env, "cairn_b_tries=2")
	must(t, s.MarkGood(partitions.SlotB))
	wantWrites(t, env, "cairn_b_ok=1")

	// Next release into A, which is now the fallback.
	must(t, s.MarkBad(partitions.SlotA))
	wantWrites(t, env, "cairn_a_priority=0", "cairn_a_ok=0")
	must(t, s.SetTrial(partitions.SlotA, 3))
	wantWrites(t, env, "cairn_a_tries=3", "cairn_b_priority=1", "cairn_a_priority=2")
	st, err := s.Read()
	must(t, err)
	want := State{A: SlotState{Priority: 2, TriesLeft: 3}, B: SlotState{Priority: 1, TriesLeft: 2, OK: 1}}
	if st != want {
		t.Fatalf("state after second SetTrial: %+v, want %+v", st, want)
	}
}

func TestSetTrialOnAnEnabledSlotDisablesItFirst(t *testing.T) {
	env := newMemEnv(State{A: SlotState{Priority: 1, OK: 1}, B: SlotState{Priority: 2, TriesLeft: 1}}.vars())
	must(t, New(env).SetTrial(partitions.SlotB, 3))
	wantWrites(t, env, "cairn_b_priority=0", "cairn_b_tries=3", "cairn_b_priority=2")
}

func TestChangesThatWouldStrandTheDeviceAreRefused(t *testing.T) {
	// A on trial, B disabled: neither is a committed fallback.
	vars := State{A: SlotState{Priority: 2, TriesLeft: 2}}.vars()
	env := newMemEnv(vars)
	s := New(env)
	if err := s.SetTrial(partitions.SlotB, 3); !errors.Is(err, ErrNoFallback) {
		t.Errorf("SetTrial(B) with A uncommitted: %v", err)
	}
	if err := s.MarkBad(partitions.SlotB); !errors.Is(err, ErrNoFallback) {
		t.Errorf("MarkBad(B) with A uncommitted: %v", err)
	}
	if err := s.MarkGood(partitions.SlotB); err == nil {
		t.Error("MarkGood of a disabled slot accepted")
	}
	if err := s.SetTrial(partitions.SlotB, 10); err == nil {
		t.Error("tries 10 accepted")
	}
	if len(env.writes) != 0 {
		t.Fatalf("refused changes wrote %v", env.writes)
	}
}

func TestDecodeNamesTheBadVariable(t *testing.T) {
	vars := map[string]string{"cairn_a_priority": "1", "cairn_a_ok": "2", "cairn_b_tries": "10"}
	_, err := Decode(vars)
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, want := range []string{`cairn_a_ok="2"`, `cairn_b_tries="10"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	st, err := Decode(map[string]string{"cairn_a_ok": "1", "cairn_a_priority": "1"})
	if err != nil || st != (State{A: SlotState{Priority: 1, OK: 1}}) {
		t.Fatalf("missing variables: %+v %v", st, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantWrites(t *testing.T, env *memEnv, want ...string) {
	t.Helper()
	if strings.Join(env.writes, " ") != strings.Join(want, " ") {
		t.Fatalf("writes %v, want %v", env.writes, want)
	}
	env.writes = nil
}
