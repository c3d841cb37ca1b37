package k3s

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/cairn-edge/cairn/internal/atomicfile"
)

// DefaultUpgradeStatePath is where a device keeps its k3s upgrade record.
const DefaultUpgradeStatePath = "/var/lib/cairn/k3s/upgrade.json"

// Outcomes of an upgrade attempt, as the record and the status name them.
const (
	OutcomeUpgraded   = "upgraded"
	OutcomeRolledBack = "rolled-back"
	OutcomeWaiting    = "waiting-for-servers"
	OutcomeFailed     = "failed"
)

// UpgradeState is the k3s upgrade record on /var (docs/k3s.md, "Upgrades
// and snapshots"): what is staged, how the last attempt ended, and the
// versions that rolled back, which are never tried again.
type UpgradeState struct {
	Staged string         `json:"staged,omitempty"` // version downloaded and staged, not yet running
	Last   *UpgradeRecord `json:"last,omitempty"`
	Bad    []BadVersion   `json:"bad,omitempty"`
	// Artifact is the SHA-256 of the last k3s binary downloaded, as the
	// signed manifest names it, and ArtifactVersion what it said it is:
	// a binary seen before needs no second download to be judged.
	Artifact        string `json:"artifact,omitempty"`
	ArtifactVersion string `json:"artifact_version,omitempty"`
}

// UpgradeRecord is one upgrade attempt.
type UpgradeRecord struct {
	At       time.Time `json:"at"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Outcome  string    `json:"outcome"`
	Reason   string    `json:"reason,omitempty"`
	Snapshot string    `json:"snapshot,omitempty"`
}

// BadVersion is a k3s version that did not become ready on this node.
type BadVersion struct {
	Version string    `json:"version"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

// LoadUpgradeState reads the record at path; a missing file is an empty
// record, a damaged one an error.
func LoadUpgradeState(path string) (*UpgradeState, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &UpgradeState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("k3s upgrade state %s: %w", path, err)
	}
	var s UpgradeState
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("k3s upgrade state %s: %w", path, err)
	}
	return &s, nil
}

// Save writes the record to path atomically.
func (s *UpgradeState) Save(path string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("k3s upgrade state %s: %w", path, err)
	}
	return atomicfile.Write(path, append(data, '\n'), 0o644)
}

// IsBad reports whether version rolled back on this node before.
func (s *UpgradeState) IsBad(version string) bool {
	return slices.ContainsFunc(s.Bad, func(b BadVersion) bool { return b.Version == version })
}

// Record notes how Upgrade ended (its result and error) at time at. A
// version that rolled back joins Bad; a finished attempt clears Staged.
func (s *UpgradeState) Record(at time.Time, res Result, err error) {
	rec := &UpgradeRecord{At: at.UTC(), From: res.From, To: res.To, Snapshot: res.Snapshot}
	switch {
	case err == nil:
		rec.Outcome = OutcomeUpgraded
	case res.RolledBack:
		rec.Outcome, rec.Reason = OutcomeRolledBack, err.Error()
		if !s.IsBad(res.To) {
			s.Bad = append(s.Bad, BadVersion{Version: res.To, Reason: res.Reason, At: rec.At})
		}
	case errors.Is(err, ErrServersBehind):
		rec.Outcome, rec.Reason = OutcomeWaiting, err.Error()
	default:
		rec.Outcome, rec.Reason = OutcomeFailed, err.Error()
	}
	if rec.Outcome != OutcomeWaiting {
		s.Staged = ""
	}
	s.Last = rec
}

// Summary is the last attempt in one line, for status.
func (r *UpgradeRecord) Summary() string {
	if r == nil {
		return "none"
	}
	s := fmt.Sprintf("%s %s → %s at %s", r.Outcome, r.From, r.To, r.At.Format(time.RFC3339))
	if r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}
