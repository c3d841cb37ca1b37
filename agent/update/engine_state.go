package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/cairn-edge/cairn/partitions"
)

// Phase is where an update stands (docs/update.md, "State machine").
type Phase string

// The phases of the update state machine. Idle, committed, rolled-back and
// failed are at rest: a new check may start from them. The others belong to
// an update in flight and are resumed after a restart.
const (
	PhaseIdle        Phase = "idle"
	PhaseDownloading Phase = "downloading"
	PhaseInstalled   Phase = "installed"
	PhaseRebooting   Phase = "rebooting"
	PhaseTrial       Phase = "trial"
	PhaseCommitted   Phase = "committed"
	PhaseRolledBack  Phase = "rolled-back"
	PhaseFailed      Phase = "failed"
)

// AtRest reports whether no update is in flight.
func (p Phase) AtRest() bool {
	switch p {
	case PhaseIdle, PhaseCommitted, PhaseRolledBack, PhaseFailed:
		return true
	}
	return false
}

func (p Phase) valid() bool {
	return p.AtRest() || p == PhaseDownloading || p == PhaseInstalled || p == PhaseRebooting || p == PhaseTrial
}

// BadRelease is a release this device rolled back from; it is never
// installed again.
type BadRelease struct {
	Version string    `json:"version"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

// State is the update state file on /var, written only by the Engine.
type State struct {
	Phase Phase `json:"state"`
	// Version is the release of the update in flight, or the one the phase
	// at rest is about (committed, rolled back from, failed to install).
	Version string `json:"version,omitempty"`
	// Target is the slot the release goes to; From the slot that was booted
	// when the update began, the fallback.
	Target partitions.Slot `json:"target_slot,omitempty"`
	From   partitions.Slot `json:"from_slot,omitempty"`
	// Offer is what the channel signed for the update in flight: a resumed
	// install needs its URL, length and hashes.
	Offer *Offer `json:"offer,omitempty"`
	// Reason says why the last update was rolled back, or why the health
	// gate of the trial in flight failed (then the rollback is under way).
	Reason string `json:"reason,omitempty"`
	// LastError is the last error an update step met.
	LastError string `json:"last_error,omitempty"`
	// SlotVersions is the release each slot holds, as far as this device
	// installed it.
	SlotVersions map[partitions.Slot]string `json:"slot_versions,omitempty"`
	Bad          []BadRelease               `json:"bad_releases,omitempty"`
	Started      time.Time                  `json:"started,omitzero"` // when the update in flight began
	Changed      time.Time                  `json:"changed,omitzero"` // when the phase last changed
}

// IsBad reports whether version was rolled back from on this device.
func (s *State) IsBad(version string) bool {
	return slices.ContainsFunc(s.Bad, func(b BadRelease) bool { return b.Version == version })
}

func (s *State) markBad(version, reason string, at time.Time) {
	if version == "" || s.IsBad(version) {
		return
	}
	s.Bad = append(s.Bad, BadRelease{Version: version, Reason: reason, At: at})
}

func (s *State) clone() State {
	c := *s
	c.Bad = slices.Clone(s.Bad)
	if s.SlotVersions != nil {
		c.SlotVersions = make(map[partitions.Slot]string, len(s.SlotVersions))
		for k, v := range s.SlotVersions {
			c.SlotVersions[k] = v
		}
	}
	return c
}

// ErrStateFile is wrapped by errors about a state file that cannot be used.
var ErrStateFile = errors.New("update state file is damaged")

// loadState reads the state at path; a missing file is idle. A damaged
// one is an error naming the file: every write is atomic, so damage means
// something other than Cairn wrote it, and guessing could reinstall a
// release this device rolled back from.
func loadState(path string) (State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return State{Phase: PhaseIdle}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("update state %s: %w", path, err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, fmt.Errorf("update state %s: %w: %v", path, ErrStateFile, err)
	}
	if !st.Phase.valid() {
		return State{}, fmt.Errorf("update state %s: key state: %q: %w", path, st.Phase, ErrStateFile)
	}
	if !st.Phase.AtRest() && (!st.Target.Valid() || !st.From.Valid() || st.Offer == nil || st.Offer.Manifest == nil) {
		return State{}, fmt.Errorf("update state %s: %s without target slot, fallback slot or offer: %w", path, st.Phase, ErrStateFile)
	}
	return st, nil
}

func saveState(path string, st State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("update state %s: %w", path, err)
	}
	return writeFileAtomic(path, append(data, '\n'), 0o600)
}
