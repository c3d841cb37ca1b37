package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"time"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

// DefaultCheckTimeout bounds one attempt of a user-defined check.
const DefaultCheckTimeout = 10 * time.Second

// AgentUp passes once serving reports that the agent's own services (the
// local API, the update engine) run. nil serving: the gate runs inside the
// agent, which is proof enough that it is up.
func AgentUp(serving func() error) Check {
	return Func("agent", func(context.Context) error {
		if serving == nil {
			return nil
		}
		return serving()
	})
}

// NetworkState is the network reconciler as the gate sees it: Converged
// returns nil once the links, addresses and routes of the configuration are
// in place, or what is still missing.
type NetworkState interface {
	Converged(ctx context.Context) error
}

// Network passes once the configured network state is reached.
func Network(n NetworkState) Check {
	return Func("network", n.Converged)
}

// Readiness is a component that knows when it is ready, like k3s (apiserver
// readyz and the node Ready, or the kubelet healthy and the node Ready).
type Readiness interface {
	Ready(ctx context.Context) error
}

// Ready turns a Readiness into a check named name; k3s joins the gate
// through it.
func Ready(name string, r Readiness) Check { return Func(name, r.Ready) }

// Command passes when argv exits 0 within timeout (0: DefaultCheckTimeout).
// Its output ends up in the error, so the reason says what the command said.
func Command(name string, argv []string, timeout time.Duration) Check {
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	return Func(name, func(ctx context.Context) error {
		if len(argv) == 0 {
			return errors.New("empty command")
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.WaitDelay = time.Second
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("command %q: no exit within %s", argv, timeout)
		}
		if err != nil {
			return fmt.Errorf("command %q: %v: %s", argv, err, lastLine(out.String()))
		}
		return nil
	})
}

// HTTP passes when a GET of url answers with status want (0: any 2xx)
// within timeout (0: DefaultCheckTimeout).
func HTTP(name, url string, want int, timeout time.Duration, client *http.Client) Check {
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	if client == nil {
		client = http.DefaultClient
	}
	return Func(name, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		ok := resp.StatusCode == want || (want == 0 && resp.StatusCode/100 == 2)
		if !ok {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// FromConfig builds the user-defined checks of the cairn.health section and
// returns its deadline (0 when unset). An HTTP check is named by its URL,
// so that a reason reads "check http://localhost:8080/healthz: status 503".
func FromConfig(h *cloudinit.Health) ([]Check, time.Duration, error) {
	if h == nil {
		return nil, 0, nil
	}
	var checks []Check
	for i, c := range h.Checks {
		switch {
		case c.Command != nil && c.HTTP == "":
			argv := c.Command.Argv
			if c.Command.Shell != "" {
				argv = []string{"/bin/sh", "-c", c.Command.Shell}
			}
			checks = append(checks, Command(c.Name, argv, c.Timeout.Duration))
		case c.Command == nil && c.HTTP != "":
			checks = append(checks, HTTP(string(c.HTTP), string(c.HTTP), 0, c.Timeout.Duration, nil))
		default:
			return nil, 0, fmt.Errorf("cairn.health.checks[%d] %q: want exactly one of command or http", i, c.Name)
		}
	}
	return checks, h.Deadline.Duration, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
