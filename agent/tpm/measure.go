package tpm

import (
	"bytes"
	"errors"
	"fmt"
)

// Errors that say a replayed log does not describe a signed release.
var (
	// ErrUnknownRootHash: a measured root hash is not the one of any
	// release the checker trusts (*UnknownRootHashError says which event).
	ErrUnknownRootHash = errors.New("unknown root hash")
	// ErrReleaseMismatch: the root hash is known, but the log names another
	// release version for it.
	ErrReleaseMismatch = errors.New("measured release does not match the signed manifest")
	// ErrNothingMeasured: the log is empty, so no slot was measured this boot.
	ErrNothingMeasured = errors.New("nothing measured")
)

// UnknownRootHashError names the event whose root hash no trusted manifest has.
type UnknownRootHashError struct {
	Event    int
	RootHash []byte
}

func (e *UnknownRootHashError) Error() string {
	return fmt.Sprintf("event %d: unknown root hash %x", e.Event, e.RootHash)
}
func (e *UnknownRootHashError) Unwrap() error { return ErrUnknownRootHash }

// Manifest is what a signed release manifest says about a slot's content.
type Manifest struct {
	Release  string
	RootHash []byte
}

// Result is the outcome of checking a measured boot, for the health gate,
// `cairn-agent status` and `cairn attest verify`.
type Result struct {
	Slot     string
	Release  string
	RootHash []byte
	// Measured: the log was replayed against a TPM's PCR (or a verified quote).
	Measured bool
	// MatchesManifest: every measured event names a trusted signed release.
	MatchesManifest bool
}

// String is the sentence users read, e.g.
// "slot B: release 1.3.0, measured, matches signed manifest".
func (r Result) String() string {
	s := "slot " + r.Slot + ":"
	if r.Slot == "" {
		s = "slot ?:"
	}
	if r.Release != "" {
		s += " release " + r.Release + ","
	}
	switch {
	case !r.Measured:
		return s + " unmeasured"
	case r.MatchesManifest:
		return s + " measured, matches signed manifest"
	default:
		return s + " measured, does not match signed manifest"
	}
}

// Measure extends PCR with id's digest and appends the event to the log at
// logPath. The extend comes first: if the log write fails the PCR holds an
// event the log lacks, and every later replay reports the mismatch rather
// than trusting an incomplete log.
func (t *TPM) Measure(logPath string, id SlotIdentity) (Event, error) {
	if err := id.Validate(); err != nil {
		return Event{}, fmt.Errorf("measure slot %s: %w", id.Slot, err)
	}
	l, err := ReadLog(logPath)
	if err != nil {
		return Event{}, err
	}
	if err := t.extend(PCR, id.Digest()); err != nil {
		return Event{}, fmt.Errorf("measure slot %s: %w", id.Slot, err)
	}
	v, err := t.ReadPCRs(PCR)
	if err != nil {
		return Event{}, fmt.Errorf("measure slot %s: %w", id.Slot, err)
	}
	e := Event{
		Seq: len(l.Events), PCR: PCR, Type: EventType,
		Slot: id.Slot, Release: id.Release, RootHash: id.RootHash, FooterDigest: id.FooterDigest,
		Digest: id.Digest(), PCRAfter: v[PCR],
	}
	l.Events = append(l.Events, e)
	if err := WriteLog(logPath, l); err != nil {
		return Event{}, fmt.Errorf("measure slot %s: %w", id.Slot, err)
	}
	return e, nil
}

// Check replays l against the TPM's PCR and checks that every event names the
// release of want, the signed manifest of the booted slot. With t == nil (no
// TPM) it returns an unmeasured Result and no error: whether that passes the
// health gate is the caller's require_tpm decision.
func Check(t *TPM, l *EventLog, want Manifest) (Result, error) {
	var r Result
	if n := len(l.Events); n > 0 {
		last := l.Events[n-1]
		r = Result{Slot: last.Slot, Release: last.Release, RootHash: last.RootHash}
	}
	if t == nil {
		return r, nil
	}
	v, err := t.ReadPCRs(PCR)
	if err != nil {
		return r, err
	}
	if err := l.Replay(v[PCR]); err != nil {
		return r, fmt.Errorf("measurement log: %w", err)
	}
	r.Measured = true
	if err := matchManifests(l, []Manifest{want}); err != nil {
		return r, fmt.Errorf("measurement log: %w", err)
	}
	r.MatchesManifest = true
	return r, nil
}

// matchManifests checks that every event measured a release in known.
func matchManifests(l *EventLog, known []Manifest) error {
	if len(l.Events) == 0 {
		return ErrNothingMeasured
	}
	for i, e := range l.Events {
		var m *Manifest
		for j := range known {
			if bytes.Equal(known[j].RootHash, e.RootHash) {
				m = &known[j]
				break
			}
		}
		if m == nil {
			return &UnknownRootHashError{Event: i, RootHash: e.RootHash}
		}
		if m.Release != e.Release {
			return &EventError{Index: i, Err: fmt.Errorf("%w: log says %q, manifest %q", ErrReleaseMismatch, e.Release, m.Release)}
		}
	}
	return nil
}
