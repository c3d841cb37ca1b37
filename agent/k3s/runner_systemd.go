package k3s

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
)

// DefaultUnitDir holds runtime units: on a read-only root /etc may not be
// writable, and the agent writes the unit at every boot anyway.
const DefaultUnitDir = "/run/systemd/system"

// SystemdRunner runs k3s as a systemd service, for systems where systemd is
// PID 1. k3s is then systemd's child, not the agent's, so restarting the
// agent leaves it alone. It talks to systemd over D-Bus on systemd's private
// socket, which needs no dbus-daemon.
type SystemdRunner struct {
	cmd     Command
	unit    string
	unitDir string
	// Connect opens the D-Bus connection to systemd.
	Connect func(ctx context.Context) (*sddbus.Conn, error)
	// StartWait bounds how long Start and Restart wait for the unit's job.
	// k3s's unit is Type=notify, so the job lasts until k3s reports ready,
	// which can take minutes (or never, in a broken release). The agent's
	// boot must not hang on it: after StartWait the job keeps running in
	// systemd and the health gate judges readiness. Zero: 30 s.
	StartWait time.Duration
}

// NewSystemdRunner runs cmd as the service unit (e.g. "k3s.service") whose
// file it writes into unitDir.
func NewSystemdRunner(cmd Command, unit, unitDir string) *SystemdRunner {
	return &SystemdRunner{cmd: cmd, unit: unit, unitDir: unitDir, Connect: sddbus.NewSystemdConnectionContext}
}

// RenderUnit writes the service unit for cmd with the settings of k3s's own
// unit: systemd must not kill the containers when k3s stops
// (KillMode=process), k3s manages cgroups below its own (Delegate=yes), and
// pods need the raised limits.
func RenderUnit(cmd Command) []byte {
	var b bytes.Buffer
	b.WriteString(`# Written by cairn-agent; edits are overwritten.
[Unit]
Description=Lightweight Kubernetes (k3s), run by cairn-agent
Documentation=https://docs.k3s.io
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
`)
	for _, e := range cmd.Env {
		fmt.Fprintf(&b, "Environment=%s\n", unitQuote(e))
	}
	args := []string{unitQuote(cmd.Path)}
	for _, a := range cmd.Args {
		args = append(args, unitQuote(a))
	}
	fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(args, " "))
	b.WriteString(`KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
`)
	return b.Bytes()
}

// unitQuote quotes one word of a unit file command line: systemd expands
// % specifiers and $ variables, and splits on white space.
func unitQuote(s string) string {
	s = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%", "$", "$$").Replace(s)
	if s == "" || strings.ContainsAny(s, " \t'\"\\") {
		return `"` + s + `"`
	}
	return s
}

// install writes the unit file if it differs and reloads systemd then.
func (r *SystemdRunner) install(ctx context.Context, conn *sddbus.Conn) error {
	f := File{Path: filepath.Join(r.unitDir, r.unit), Data: RenderUnit(r.cmd), Mode: 0o644}
	changed, err := applyFile(f)
	if err != nil {
		return err
	}
	if !changed {
		return nil
	}
	if err := conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("systemd daemon-reload for %s: %w", r.unit, err)
	}
	return nil
}

// Start installs the unit and starts it, unless it already runs: a new
// agent finds k3s running and leaves it be.
func (r *SystemdRunner) Start(ctx context.Context) error {
	return r.job(ctx, "start", r.startWait(), func(c *sddbus.Conn, ch chan<- string) (int, error) {
		st, err := r.status(ctx, c)
		if err != nil || st.Running {
			return 0, err
		}
		return c.StartUnitContext(ctx, r.unit, "replace", ch)
	})
}

// Stop stops the unit; with KillMode=process only k3s itself gets the
// signal, and the containers keep running.
func (r *SystemdRunner) Stop(ctx context.Context) error {
	return r.job(ctx, "stop", 0, func(c *sddbus.Conn, ch chan<- string) (int, error) {
		return c.StopUnitContext(ctx, r.unit, "replace", ch)
	})
}

// Restart restarts the unit, starting it if it was stopped.
func (r *SystemdRunner) Restart(ctx context.Context) error {
	return r.job(ctx, "restart", r.startWait(), func(c *sddbus.Conn, ch chan<- string) (int, error) {
		return c.RestartUnitContext(ctx, r.unit, "replace", ch)
	})
}

func (r *SystemdRunner) startWait() time.Duration {
	if r.StartWait > 0 {
		return r.StartWait
	}
	return 30 * time.Second
}

// job installs the unit, queues a job and waits for its result; with a
// positive wait, at most that long, after which the job is left to systemd.
func (r *SystemdRunner) job(ctx context.Context, what string, wait time.Duration, queue func(*sddbus.Conn, chan<- string) (int, error)) error {
	conn, err := r.Connect(ctx)
	if err != nil {
		return fmt.Errorf("systemd: connect: %w", err)
	}
	defer conn.Close()
	if err := r.install(ctx, conn); err != nil {
		return err
	}
	ch := make(chan string, 1)
	id, err := queue(conn, ch)
	if err != nil {
		return fmt.Errorf("systemd %s %s: %w", what, r.unit, err)
	}
	if id == 0 {
		return nil
	}
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("systemd %s %s: job %s", what, r.unit, res)
		}
		return nil
	case <-timeout:
		return nil // still starting; readiness is the health gate's to judge
	case <-ctx.Done():
		return fmt.Errorf("systemd %s %s: %w", what, r.unit, ctx.Err())
	}
}

// Status reads the unit's state from systemd.
func (r *SystemdRunner) Status(ctx context.Context) (Status, error) {
	conn, err := r.Connect(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("systemd: connect: %w", err)
	}
	defer conn.Close()
	return r.status(ctx, conn)
}

func (r *SystemdRunner) status(ctx context.Context, conn *sddbus.Conn) (Status, error) {
	p, err := conn.GetUnitTypePropertiesContext(ctx, r.unit, "Service")
	if err != nil {
		return Status{}, fmt.Errorf("systemd %s: properties: %w", r.unit, err)
	}
	u, err := conn.GetUnitPropertiesContext(ctx, r.unit)
	if err != nil {
		return Status{}, fmt.Errorf("systemd %s: properties: %w", r.unit, err)
	}
	active, _ := u["ActiveState"].(string)
	sub, _ := u["SubState"].(string)
	st := Status{State: active + "/" + sub, Running: active == "active" || active == "reloading"}
	if pid, ok := p["MainPID"].(uint32); ok && pid != 0 {
		st.PID = int(pid)
	}
	if n, ok := p["NRestarts"].(uint32); ok {
		st.Restarts = int(n)
	}
	if us, ok := u["ActiveEnterTimestamp"].(uint64); ok && us != 0 && st.Running {
		st.Since = time.UnixMicro(int64(us))
	}
	return st, nil
}

// NewRunner picks the runner for this system: systemd when it is PID 1,
// else a supervised child process with its state under stateDir.
func NewRunner(cmd Command, stateDir string) Runner {
	if SystemdBooted() {
		return NewSystemdRunner(cmd, "k3s.service", DefaultUnitDir)
	}
	return NewChildRunner(cmd, filepath.Join(stateDir, "k3s.pid.json"), filepath.Join(stateDir, "k3s.log"))
}
