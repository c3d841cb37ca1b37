package daemon

import (
	"time"

	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"
	"go.uber.org/zap"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/update"
	cloudinit "github.com/cairn-edge/cairn/cloud-init"
	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/partitions/bootstate"
)

// newEngine builds the update engine: the channel, the installer with the
// slot verifier, the health gate, the version floors and the rebooter that
// asks the cluster first.
func (d *Daemon) newEngine() (*update.Engine, error) {
	stateDir := filepath.Join(d.cfg.VarDir, "update")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("update state %s: %w", stateDir, err)
	}
	floor := update.NewVersionFloor(filepath.Join(stateDir, "version-floor"))
	u := d.device.UserData.Cairn.Update
	var checker update.Checker = noChannel{}
	policy, tries := rebootPolicy(u)
	if u != nil && u.MetadataURL != "" {
		c, err := d.newChannel(u, floor, filepath.Join(stateDir, "tuf"))
		if err != nil {
			return nil, err
		}
		checker = c
	}
	key, err := channel.ReadReleasePublicKey(d.cfg.path(agent.ReleaseKeyPath))
	if err != nil {
		return nil, fmt.Errorf("installer: %w", err)
	}
	gate, err := d.gate()
	if err != nil {
		return nil, err
	}
	var rebooter update.Rebooter = d.cfg.Rebooter
	if d.k3s != nil {
		rebooter = &clusterRebooter{next: rebooter, node: d.k3s, log: d.log}
	}
	// The installer writes slot devices by their path, so it gets them
	// under Root; the measured boot joins Root itself.
	slots := *d.boot
	slots.Device, slots.OtherDevice = d.cfg.path(slots.Device), d.cfg.path(slots.OtherDevice)
	return update.NewEngine(update.EngineConfig{
		StatePath: filepath.Join(stateDir, "state.json"),
		Boot:      &slots,
		BootState: bootstate.New(d.env),
		Channel:   checker,
		Installer: &update.Installer{StateDir: stateDir, Root: d.cfg.Root, Log: d.log,
			VerifyVerity: update.SlotVerifier{ReleaseKey: key}.Verify},
		Floor:         floor,
		BootedVersion: d.osVersion(),
		TPMFloor: func(ctx context.Context, v *semver.Version) error {
			return d.measured().RaiseTPMFloor(ctx, d.boot, v)
		},
		Health: func(ctx context.Context) error {
			v := gate.Run(ctx)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.log.Info("health gate", zap.Bool("passed", v.Passed), zap.String("reason", v.Reason),
				zap.Duration("elapsed", v.Elapsed))
			return v.Err()
		},
		Rebooter:     rebooter,
		Policy:       policy,
		Tries:        tries,
		Log:          d.log,
		OnTransition: d.transition,
	})
}

// rebootPolicy copies the configured policy, window weekdays included.
func rebootPolicy(u *cloudinit.Update) (update.RebootPolicy, int) {
	var p update.RebootPolicy
	if u == nil {
		return p, 0
	}
	p.Mode = u.RebootPolicy
	if w := u.RebootWindow; w != nil {
		p.Window = update.Window{Days: w.Days, Start: w.Start, End: w.End}
	}
	return p, u.BootTries
}

// gate is the boot health gate: the agent, the network, the measured slot,
// k3s when configured, and the user's checks.
func (d *Daemon) gate() (*health.Gate, error) {
	checks, deadline, err := health.FromConfig(d.device.UserData.Cairn.Health)
	if err != nil {
		return nil, err
	}
	all := []health.Check{health.AgentUp(nil), health.Network(d.net), d.measured().HealthCheck(d.boot)}
	if d.device.UserData.Cairn.K3s != nil {
		all = append(all, health.Ready("k3s", k3sReadiness{d.k3s}))
	}
	return &health.Gate{Checks: append(all, checks...), Deadline: deadline, Interval: d.cfg.GateInterval}, nil
}

// transition publishes every persisted update state on the node.
func (d *Daemon) transition(st update.State) {
	if d.k3s != nil {
		d.k3s.publishAsync(st.Phase)
	}
}

func (d *Daemon) newChannel(u *cloudinit.Update, floor *update.VersionFloor, metaDir string) (*update.Channel, error) {
	board := d.cfg.Board
	if board == "" {
		data, err := os.ReadFile(d.cfg.path(agent.BoardPath))
		if err != nil {
			return nil, fmt.Errorf("board: %w", err)
		}
		board = strings.TrimSpace(string(data))
	}
	machineID, _ := os.ReadFile(d.cfg.path(agent.MachineIDPath))
	name := u.Channel
	if name == "" {
		name = "stable"
	}
	if err := os.MkdirAll(metaDir, 0o700); err != nil {
		return nil, fmt.Errorf("channel metadata %s: %w", metaDir, err)
	}
	return update.NewChannel(update.ChannelConfig{
		TrustedRoot: d.cfg.path(d.cfg.TrustedRoot), MetadataDir: metaDir, RepositoryURL: string(u.MetadataURL),
		Channel: name, Board: board, MachineID: strings.TrimSpace(string(machineID)), Floor: floor,
		ClockFloor: d.clockFloor(),
	})
}

// noChannel is the channel of a device configured without one: it still
// runs the engine, which gates trial boots.
type noChannel struct{}

func (noChannel) Check(context.Context) (*update.Offer, error) {
	return nil, fmt.Errorf("no cairn.update.metadata_url configured: %w", update.ErrNoRelease)
}

// serveAPI listens on the local socket and serves it in the background.
func (d *Daemon) serveAPI(ctx context.Context) error {
	return d.serve(ctx, d.engine, func() (*agent.Status, error) {
		return agent.SlotStatus(d.boot, agent.BootEnv{Kind: d.env.Kind, Path: d.env.Path, Env: d.env})
	})
}

// serve listens on the local socket and serves eng's update calls and the
// status of slots, with the agent's config and k3s sections, in the
// background.
func (d *Daemon) serve(ctx context.Context, eng api.Engine, slots func() (*agent.Status, error)) error {
	ln, err := api.Listen(d.cfg.Socket)
	if err != nil {
		return err
	}
	srv := &api.Server{Engine: eng, Log: d.log, Slots: func() (*agent.Status, error) {
		st, err := slots()
		if err != nil {
			return nil, err
		}
		st.Config = d.configStatus()
		st.K3s = d.K3sStatus()
		return st, nil
	}}
	go func() {
		if err := srv.Serve(ctx, ln); err != nil && ctx.Err() == nil {
			d.log.Error("local API", zap.Error(err))
		}
	}()
	return nil
}

// startPolling follows the channel when updates are automatic.
func (d *Daemon) startPolling(ctx context.Context) {
	u := d.device.UserData.Cairn.Update
	if u == nil || u.MetadataURL == "" || (u.Auto != nil && !*u.Auto) {
		return
	}
	p := &update.Poller{Interval: d.cfg.PollInterval, Jitter: 0.2, MinBackoff: d.cfg.PollInterval / 60, MaxBackoff: d.cfg.PollInterval,
		Poll: d.engine.Poll, OnError: func(err error, next time.Duration) {
			d.log.Warn("update check failed", zap.Error(err), zap.Duration("next", next))
		}}
	go p.Run(ctx)
}
