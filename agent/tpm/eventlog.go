package tpm

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/cairn-edge/cairn/internal/atomicfile"
)

// DefaultLogPath is where cairn-init writes the measurement log.
const DefaultLogPath = "/run/cairn/measurements.json"

// LogVersion is the measurement log format version this package writes.
const LogVersion = 1

// Errors a replay tells apart. Each comes wrapped in an *EventError or a
// *PCRMismatchError that says at which event.
var (
	// ErrEventLogEdited: an event's fields do not hash to the digest it
	// says was extended, so the log was changed after the fact.
	ErrEventLogEdited = errors.New("event log edited: fields do not match the extended digest")
	// ErrPCRMismatch: replaying the log does not give the PCR value the log
	// recorded or the TPM reports.
	ErrPCRMismatch = errors.New("PCR mismatch")
)

// Hex is a byte string written as lowercase hex in JSON.
type Hex []byte

// MarshalJSON writes h as a hex string.
func (h Hex) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

// UnmarshalJSON reads a hex string.
func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("hex %q: %w", s, err)
	}
	*h = v
	return nil
}

// Event is one extend of PCR, as recorded in the measurement log.
type Event struct {
	Seq          int    `json:"seq"`
	PCR          int    `json:"pcr"`
	Type         string `json:"type"`
	Slot         string `json:"slot"`
	Release      string `json:"release"`
	RootHash     Hex    `json:"root_hash"`
	FooterDigest Hex    `json:"footer_digest"`
	Digest       Hex    `json:"digest"`    // SHA-256 of the identity's canonical form: what was extended
	PCRAfter     Hex    `json:"pcr_after"` // the PCR as the TPM reported it right after this extend
}

// Identity is the slot identity the event records.
func (e Event) Identity() SlotIdentity {
	return SlotIdentity{Slot: e.Slot, Release: e.Release, RootHash: e.RootHash, FooterDigest: e.FooterDigest}
}

// EventLog is Cairn's measurement log (docs/formats.md, "Measurement log").
type EventLog struct {
	Version int     `json:"version"`
	Bank    string  `json:"bank"`
	Events  []Event `json:"events"`
}

// EventError says which event of a log is wrong.
type EventError struct {
	Index int
	Err   error
}

func (e *EventError) Error() string { return fmt.Sprintf("event %d: %v", e.Index, e.Err) }
func (e *EventError) Unwrap() error { return e.Err }

// PCRMismatchError says where a replay parts from the TPM. Event is the index
// of the first event whose recorded PCR value the replay does not reproduce,
// or len(events) when the whole log replays but the TPM's value differs: the
// PCR was extended by something the log does not record.
type PCRMismatchError struct {
	PCR      int
	Event    int
	Replayed []byte
	Reported []byte
}

func (e *PCRMismatchError) Error() string {
	return fmt.Sprintf("PCR %d mismatch at event %d: replay gives %x, reported %x", e.PCR, e.Event, e.Replayed, e.Reported)
}
func (e *PCRMismatchError) Unwrap() error { return ErrPCRMismatch }

// ParseLog decodes and checks the shape of a measurement log; it does not
// replay it (see Replay).
func ParseLog(data []byte) (*EventLog, error) {
	var l EventLog
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("measurement log: %w", err)
	}
	if l.Version != LogVersion {
		return nil, fmt.Errorf("measurement log: version %d, want %d", l.Version, LogVersion)
	}
	if l.Bank != "sha256" {
		return nil, fmt.Errorf("measurement log: bank %q, want sha256", l.Bank)
	}
	for i, e := range l.Events {
		switch {
		case e.Seq != i:
			return nil, fmt.Errorf("measurement log: event %d: seq %d", i, e.Seq)
		case e.PCR != PCR:
			return nil, fmt.Errorf("measurement log: event %d: pcr %d, want %d", i, e.PCR, PCR)
		case e.Type != EventType:
			return nil, fmt.Errorf("measurement log: event %d: type %q, want %q", i, e.Type, EventType)
		case len(e.Digest) != 32 || len(e.PCRAfter) != 32:
			return nil, fmt.Errorf("measurement log: event %d: digest and pcr_after must be 32 bytes", i)
		}
		if err := e.Identity().Validate(); err != nil {
			return nil, fmt.Errorf("measurement log: event %d: %w", i, err)
		}
	}
	return &l, nil
}

// ReadLog reads the log at path. A missing file is an empty log.
func ReadLog(path string) (*EventLog, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &EventLog{Version: LogVersion, Bank: "sha256", Events: []Event{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("measurement log %s: %w", path, err)
	}
	l, err := ParseLog(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// Marshal encodes the log as indented JSON with a final newline.
func (l *EventLog) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteLog replaces the file at path with l: temp file, fsync, rename, fsync
// of the directory, so a reader sees the old log or the new one, never half.
func WriteLog(path string, l *EventLog) error {
	data, err := l.Marshal()
	if err != nil {
		return fmt.Errorf("measurement log %s: encode: %w", path, err)
	}
	return atomicfile.Write(path, data, 0o644)
}

// Replay recomputes PCR from the log and compares every step with the value
// recorded in the log, then the end result with reported, the value the TPM
// or a quote gives. It returns *EventError (ErrEventLogEdited) or
// *PCRMismatchError (ErrPCRMismatch).
func (l *EventLog) Replay(reported []byte) error {
	v := make([]byte, 32)
	for i, e := range l.Events {
		if !bytes.Equal(e.Identity().Digest(), e.Digest) {
			return &EventError{Index: i, Err: ErrEventLogEdited}
		}
		v = extendValue(v, e.Digest)
		if !bytes.Equal(v, e.PCRAfter) {
			return &PCRMismatchError{PCR: PCR, Event: i, Replayed: v, Reported: e.PCRAfter}
		}
	}
	if !bytes.Equal(v, reported) {
		return &PCRMismatchError{PCR: PCR, Event: len(l.Events), Replayed: v, Reported: reported}
	}
	return nil
}
