package api

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/update"
)

// DeviceStatus is GET /v1/status: the slot table (its fields inline, as
// `cairn-agent status` always printed them) and the update state.
type DeviceStatus struct {
	*agent.Status
	Update *update.Status `json:"update,omitempty"` // nil when the agent did not answer
}

// CheckResult is POST /v1/update/check.
type CheckResult struct {
	Offer      *update.Offer `json:"offer,omitempty"`
	Installing bool          `json:"installing"`
	Message    string        `json:"message,omitempty"` // why there is nothing to install
}

// Message is the answer of an action that started.
type Message struct {
	Message string `json:"message"`
}

// Error is every error answer; Code names the errors callers tell apart.
type Error struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

// codes map the engine's sentinel errors to the API's error codes.
var codes = []struct {
	code string
	err  error
}{
	{"busy", update.ErrBusy},
	{"nothing_to_apply", update.ErrNothingToApply},
	{"no_rollback", update.ErrNoRollback},
}

// ErrPeerRefused means the agent refused the caller: it is not root.
var ErrPeerRefused = errors.New("refused by the agent")

// WithVersions fills the slot table's versions from the update state.
func WithVersions(s *agent.Status, u update.Status) *agent.Status {
	for i := range s.Slots {
		if v := u.SlotVersions[s.Slots[i].Slot]; v != "" && s.Slots[i].Version == "" {
			s.Slots[i].Version = v
		}
	}
	return s
}

// WriteText prints the slot table and, when known, the update state.
func (d *DeviceStatus) WriteText(w io.Writer) error {
	if err := d.Status.WriteText(w); err != nil {
		return err
	}
	u := d.Update
	if u == nil {
		_, err := fmt.Fprintln(w, "\nupdate: unknown (the agent is not running)")
		return err
	}
	fmt.Fprintf(w, "\nupdate: %s", u.Phase)
	if u.Version != "" {
		fmt.Fprintf(w, " %s", u.Version)
	}
	if u.Target != "" && !u.Phase.AtRest() {
		fmt.Fprintf(w, " (slot %s)", u.Target)
	}
	fmt.Fprintln(w)
	if u.Total > 0 && u.Phase == update.PhaseDownloading {
		fmt.Fprintf(w, "  installed %d of %d bytes\n", u.Done, u.Total)
	}
	if u.Reason != "" {
		fmt.Fprintf(w, "  reason: %s\n", u.Reason)
	}
	if u.LastError != "" {
		fmt.Fprintf(w, "  last error: %s\n", u.LastError)
	}
	fmt.Fprintf(w, "  reboot policy: %s", u.Policy)
	if u.Window != "" {
		fmt.Fprintf(w, " %s", u.Window)
	}
	if u.RebootAt != nil {
		fmt.Fprintf(w, "; reboot at %s", u.RebootAt.Local().Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	for _, b := range u.Bad {
		fmt.Fprintf(w, "  bad release %s (%s): %s\n", b.Version, b.At.Format(time.RFC3339), b.Reason)
	}
	return nil
}
