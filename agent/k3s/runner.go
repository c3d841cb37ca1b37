package k3s

import (
	"context"
	"errors"
	"os"
	"time"
)

// Runner starts and stops k3s. Both implementations leave k3s and its pods
// running when the agent exits, and a new agent takes over the running k3s
// instead of starting a second one.
type Runner interface {
	// Start starts k3s, or takes over a k3s that is already running.
	Start(ctx context.Context) error
	// Stop stops k3s itself; containers keep running, as with k3s's own
	// KillMode=process unit.
	Stop(ctx context.Context) error
	// Restart stops and starts k3s.
	Restart(ctx context.Context) error
	// Status reports whether k3s runs.
	Status(ctx context.Context) (Status, error)
}

// Status is what a Runner knows about k3s.
type Status struct {
	Running  bool      `json:"running"`
	PID      int       `json:"pid,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Restarts int       `json:"restarts"` // restarts after k3s exited by itself
	State    string    `json:"state"`    // running, stopped, restarting, failed...
}

// ErrNotRunning is returned by operations that need a running k3s.
var ErrNotRunning = errors.New("k3s is not running")

// Command is how k3s is invoked.
type Command struct {
	Path string   // the k3s binary, or the symlink the upgrader swaps
	Args []string // subcommand and flags
	Env  []string // extra environment, KEY=value
}

// K3sCommand runs k3s in the given role with an explicit config file, so
// that a non-default path is honoured too.
func K3sCommand(binary string, role Role, configPath string) Command {
	return Command{Path: binary, Args: []string{string(role), "--config", configPath}}
}

// SystemdBooted says whether systemd is the service manager of this system,
// the same test sd_booted(3) makes.
func SystemdBooted() bool {
	st, err := os.Lstat("/run/systemd/system")
	return err == nil && st.IsDir()
}
