package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/update"
	cloudinit "github.com/cairn-edge/cairn/cloud-init"
	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
)

type runFlags struct {
	root, userData, varDir, trustedRoot, board, socket string
	loc                                                bootstate.Location
}

func newRunCmd(opts *cli.Options) *cobra.Command {
	f := runFlags{loc: bootstate.DefaultLocation()}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent daemon (under systemd, Type=notify): update engine, health gate, local API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := opts.Logger()
			if err != nil {
				return err
			}
			defer log.Sync()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			err = runDaemon(ctx, log, f)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.root, "root", "/", "filesystem root of the device (/proc, /sys, boot env)")
	fl.StringVar(&f.userData, "user-data", "/var/lib/cairn/cloud-init/user-data", "the device's resolved #cloud-config")
	fl.StringVar(&f.varDir, "var-dir", "/var/lib/cairn", "agent state on /var")
	fl.StringVar(&f.trustedRoot, "trusted-root", "/etc/cairn/root.json", "the channel's TUF root baked into the image")
	fl.StringVar(&f.board, "board", "", "board name releases are selected for (default: contents of /etc/cairn/board)")
	fl.StringVar(&f.loc.GrubEnv, "grubenv", f.loc.GrubEnv, "GRUB environment block, on UEFI boards")
	fl.StringVar(&f.loc.FwEnvConfig, "fw-env-config", f.loc.FwEnvConfig, "fw_env.config of the U-Boot environment, on U-Boot boards")
	socketFlag(cmd, &f.socket)
	return cmd
}

// runDaemon wires the daemon and runs it until ctx ends.
func runDaemon(ctx context.Context, log *zap.Logger, f runFlags) error {
	cfg, err := readUserData(f.userData)
	if err != nil {
		return err
	}
	boot, err := partitions.Discover(f.root)
	if err != nil {
		return err
	}
	env, err := bootstate.Open(f.root, f.loc)
	if err != nil {
		return err
	}
	defer env.Close()
	eng, err := newEngine(log, f, cfg, boot, env)
	if err != nil {
		return err
	}
	ln, err := api.Listen(f.socket)
	if err != nil {
		return err
	}
	srv := &api.Server{Engine: eng, Log: log, Slots: func() (*agent.Status, error) {
		return agent.SlotStatus(boot, agent.BootEnv{Kind: env.Kind, Path: env.Path, Env: env})
	}}
	go func() {
		if err := srv.Serve(ctx, ln); err != nil && ctx.Err() == nil {
			log.Error("local API", zap.Error(err))
		}
	}()
	if u := cfg.Cairn.Update; u != nil && u.MetadataURL != "" && (u.Auto == nil || *u.Auto) {
		p := &update.Poller{Interval: time.Hour, Jitter: 0.2, MinBackoff: time.Minute, MaxBackoff: time.Hour,
			Poll: eng.Poll, OnError: func(err error, next time.Duration) {
				log.Warn("update check failed", zap.Error(err), zap.Duration("next", next))
			}}
		go p.Run(ctx)
	}
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("systemd notify", zap.Error(err))
	}
	go watchdog(ctx, log)
	log.Info("agent running", zap.String("booted_slot", string(boot.Slot)), zap.String("socket", f.socket))
	return eng.Run(ctx)
}

func newEngine(log *zap.Logger, f runFlags, cfg *cloudinit.UserData, boot *partitions.Boot, env bootstate.Env) (*update.Engine, error) {
	stateDir := filepath.Join(f.varDir, "update")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	floor := update.NewVersionFloor(filepath.Join(stateDir, "version-floor"))
	var channel update.Checker = noChannel{}
	policy := update.RebootPolicy{}
	tries := 0
	if u := cfg.Cairn.Update; u != nil {
		policy.Mode, tries = u.RebootPolicy, u.BootTries
		if w := u.RebootWindow; w != nil {
			policy.Window = update.Window{Start: w.Start, End: w.End}
		}
		if u.MetadataURL != "" {
			c, err := newChannel(f, u, floor, filepath.Join(stateDir, "tuf"))
			if err != nil {
				return nil, err
			}
			channel = c
		}
	}
	checks, deadline, err := health.FromConfig(cfg.Cairn.Health)
	if err != nil {
		return nil, err
	}
	gate := &health.Gate{Checks: append([]health.Check{health.AgentUp(nil)}, checks...), Deadline: deadline}
	return update.NewEngine(update.EngineConfig{
		StatePath: filepath.Join(stateDir, "state.json"),
		Boot:      boot,
		BootState: bootstate.New(env),
		Channel:   channel,
		Installer: &update.Installer{StateDir: stateDir, Root: f.root, Log: log},
		Floor:     floor,
		Health: func(ctx context.Context) error {
			v := gate.Run(ctx)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return v.Err()
		},
		Rebooter: update.SystemRebooter{Log: log},
		Policy:   policy,
		Tries:    tries,
		Log:      log,
	})
}

func newChannel(f runFlags, u *cloudinit.Update, floor *update.VersionFloor, metaDir string) (*update.Channel, error) {
	board := f.board
	if board == "" {
		data, err := os.ReadFile(filepath.Join(f.root, "etc/cairn/board"))
		if err != nil {
			return nil, fmt.Errorf("board: %w (or pass --board)", err)
		}
		board = strings.TrimSpace(string(data))
	}
	machineID, _ := os.ReadFile(filepath.Join(f.root, "etc/machine-id"))
	name := u.Channel
	if name == "" {
		name = "stable"
	}
	if err := os.MkdirAll(metaDir, 0o700); err != nil {
		return nil, err
	}
	return update.NewChannel(update.ChannelConfig{
		TrustedRoot: f.trustedRoot, MetadataDir: metaDir, RepositoryURL: string(u.MetadataURL),
		Channel: name, Board: board, MachineID: strings.TrimSpace(string(machineID)), Floor: floor,
	})
}

// noChannel is the channel of a device configured without one: it still
// runs the engine, which gates trial boots.
type noChannel struct{}

func (noChannel) Check(context.Context) (*update.Offer, error) {
	return nil, fmt.Errorf("no cairn.update.metadata_url configured: %w", update.ErrNoRelease)
}

// readUserData reads the device's resolved configuration; a device without
// one runs with the defaults.
func readUserData(path string) (*cloudinit.UserData, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &cloudinit.UserData{}, nil
	}
	if err != nil {
		return nil, err
	}
	return cloudinit.ParseUserData(path, data)
}

// watchdog pings systemd at half the WatchdogSec interval while ctx lives.
func watchdog(ctx context.Context, log *zap.Logger) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := daemon.SdNotify(false, daemon.SdNotifyWatchdog); err != nil {
				log.Warn("systemd watchdog", zap.Error(err))
			}
		}
	}
}
