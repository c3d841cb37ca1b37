// Package daemon runs the device agent: it walks the boot phases (config,
// desired state, reconcilers, health gate, update engine, boot state) and
// keeps the reconcilers, the update engine and the local API running.
package daemon

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/cairn-edge/cairn/agent/config"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/network"
	"github.com/cairn-edge/cairn/agent/update"
	cloudinit "github.com/cairn-edge/cairn/cloud-init"
	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
)

// Config wires the daemon to a device. On a device only Log is needed;
// everything else has the device's default (Defaults), and tests point the
// fields at a fake device.
type Config struct {
	// Root is the device's filesystem root ("/"): /proc, /sys, /dev, the
	// boot environment and what the image baked into /etc are read under it.
	Root   string
	VarDir string // agent state on /var; agent.StateDir
	Socket string // the local API; api.DefaultSocket
	// Board releases are selected for; empty: the contents of agent.BoardPath.
	Board        string
	TrustedRoot  string // the TUF root baked into the image, under Root
	BootLocation bootstate.Location
	TPM          string // TPM address; empty: Root's /dev/tpmrm0

	// LoadConfig returns the device's resolved configuration; nil is the
	// device's own: NoCloud sources under Root merged and validated by
	// agent/config, the last good configuration kept (config.go).
	LoadConfig func(ctx context.Context) (*cloudinit.Config, error)
	// ApplyHost applies the host part of the configuration (users, SSH keys,
	// write_files, bootcmd, sysctl, modules, timezone); nil is agent/host
	// on Root when LoadConfig is nil too, and nothing otherwise.
	ApplyHost func(ctx context.Context, cfg *cloudinit.Config) error

	// NetNS is the network namespace the reconciler manages; its zero
	// value is the daemon's own (the host's).
	NetNS      netns.NsHandle
	ResolvConf string                 // written by the reconciler; Root's /etc/resolv.conf or where it links to
	Hostname   network.HostnameSetter // nil: the host name is left alone
	DHCP       network.DHCPOptions
	// Wired picks the links that run DHCP when the device has no
	// network-config; nil: network.IsWired (tests use veth pairs).
	Wired func(netlink.Link) bool
	// NetworkWait bounds how long time sync, the first update check and
	// k3s wait for the network to converge; 2 minutes when zero.
	NetworkWait time.Duration
	// Clock is stepped by the clock floor and time sync; network.SystemClock.
	Clock network.Clock

	K3s K3sSetup

	// Rebooter restarts the machine; update.SystemRebooter when nil.
	Rebooter update.Rebooter
	// PollInterval is how often the channel is asked; an hour when zero.
	PollInterval time.Duration
	// GateInterval is the pause between rounds of the health gate.
	GateInterval time.Duration
	Log          *zap.Logger
}

// Defaults fills in the device's paths.
func (c *Config) defaults() {
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	set(&c.Root, "/")
	set(&c.VarDir, agent.StateDir)
	set(&c.Socket, api.DefaultSocket)
	set(&c.TrustedRoot, agent.TrustedRootPath)
	set(&c.ResolvConf, resolvConfPath(c.Root))
	if c.BootLocation == (bootstate.Location{}) {
		c.BootLocation = bootstate.DefaultLocation()
	}
	if c.NetworkWait == 0 {
		c.NetworkWait = 2 * time.Minute
	}
	if c.Clock == nil {
		c.Clock = network.SystemClock{}
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Hour
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	if c.Rebooter == nil {
		c.Rebooter = update.SystemRebooter{Log: c.Log}
	}
	set(&c.K3s.Token.Unsealed, c.path(agent.DefaultUnsealedTokenPath))
	c.K3s.defaults(c.VarDir)
}

func (c *Config) path(p string) string { return filepath.Join(c.Root, p) }

// Daemon is the running agent.
type Daemon struct {
	cfg    Config
	log    *zap.Logger
	device *cloudinit.Config
	boot   *partitions.Boot
	booted *footer.Footer // the booted slot's signed footer; nil when unreadable
	env    *bootstate.DeviceEnv
	net    *network.Reconciler
	k3s    *k3sNode // nil without cairn.k3s
	engine *update.Engine
	built  atomic.Pointer[update.Engine] // engine, for readers outside Run
	// config is what the device's config phase found; nil with an
	// injected LoadConfig.
	config  atomic.Pointer[config.Result]
	hostErr error // the host configuration's failure, which keeps first boot pending
}

// New returns a daemon for cfg; Run starts it.
func New(cfg Config) *Daemon {
	cfg.defaults()
	return &Daemon{cfg: cfg, log: cfg.Log}
}

// Engine is the update engine once Run has built it, else nil.
func (d *Daemon) Engine() *update.Engine { return d.built.Load() }

// Run walks the boot phases and then serves until ctx ends: config →
// host → desired state of the booted slot and clock floor → network
// reconciler and time sync → k3s → health gate and update engine → local
// API and channel polling. It returns ctx's error, or the error of a phase
// the agent cannot run without (no booted slot, no boot environment).
func (d *Daemon) Run(ctx context.Context) error {
	cfg, err := d.loadConfig(ctx)
	if err != nil {
		return err
	}
	d.device = cfg
	if err := d.applyHost(ctx, cfg); err != nil {
		// The host part must not keep the node from updating itself out of
		// a bad config: log, and go on.
		d.log.Error("host configuration", zap.Error(err))
	}
	if err := d.discover(); err != nil {
		return err
	}
	if d.boot.Diskless {
		return d.runDiskless(ctx)
	}
	defer d.env.Close()
	if err := d.bringUp(ctx); err != nil {
		return err
	}
	if d.engine, err = d.newEngine(); err != nil {
		return err
	}
	d.built.Store(d.engine)
	if err := d.serveAPI(ctx); err != nil {
		return err
	}
	d.startPolling(ctx)
	if d.k3s != nil {
		go d.k3s.afterBoot(ctx, d.engine)
		d.k3s.publishAsync(d.engine.Status().Phase)
	}
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		d.log.Warn("systemd notify", zap.Error(err))
	}
	go watchdog(ctx, d.log, d.engine.Alive)
	d.log.Info("agent running", zap.String("booted_slot", string(d.boot.Slot)), zap.String("os_version", d.osVersion()),
		zap.String("socket", d.cfg.Socket))
	return d.engine.Run(ctx)
}

// bringUp is the middle of every boot, from disk or diskless: the clock
// floor, the network, time, first-boot commands and k3s.
func (d *Daemon) bringUp(ctx context.Context) error {
	d.applyClockFloor()
	if err := d.startNetwork(ctx); err != nil {
		return err
	}
	d.waitNetwork(ctx)
	d.syncTime(ctx)
	d.firstBootCommands(ctx)
	if k := d.device.UserData.Cairn.K3s; k != nil {
		var err error
		if d.k3s, err = d.startK3s(ctx, k); err != nil {
			// The gate's k3s check reports it; the engine must still run
			// so that a trial boot with a broken k3s rolls back.
			d.log.Error("k3s", zap.Error(err))
		}
	}
	return nil
}

// loadConfig is the config phase.
func (d *Daemon) loadConfig(ctx context.Context) (*cloudinit.Config, error) {
	if d.cfg.LoadConfig != nil {
		return d.cfg.LoadConfig(ctx)
	}
	return d.loadDeviceConfig(ctx)
}

// discover finds the booted slot, opens the boot environment (a diskless
// boot has none) and reads the booted slot's signed footer: the release
// this boot runs.
func (d *Daemon) discover() error {
	boot, err := partitions.Discover(d.cfg.Root)
	if err != nil {
		return err
	}
	d.boot = boot
	if !boot.Diskless {
		if d.env, err = bootstate.Open(d.cfg.Root, d.cfg.BootLocation); err != nil {
			return err
		}
	}
	f, err := d.measured().SignedFooter(boot.Device)
	if err != nil {
		d.log.Warn("booted slot footer", zap.String("device", boot.Device), zap.Error(err))
		return nil
	}
	d.booted = f
	return nil
}

// osVersion is the release the booted slot holds.
func (d *Daemon) osVersion() string {
	if d.booted == nil {
		return ""
	}
	return d.booted.Manifest.Version
}

func (d *Daemon) measured() agent.MeasuredBoot {
	return agent.MeasuredBoot{Root: d.cfg.Root, TPM: d.cfg.TPM, RequireTPM: d.requireTPM()}
}

func (d *Daemon) requireTPM() bool {
	h := d.device.UserData.Cairn.Health
	return h != nil && h.RequireTPM
}

// watchdog pings systemd at half the WatchdogSec interval while ctx lives
// and the update engine checked in within that half: a hung engine stops
// the pings, and systemd restarts the agent.
func watchdog(ctx context.Context, log *zap.Logger, alive func(within time.Duration) bool) {
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
			if !alive(interval / 2) {
				log.Warn("systemd watchdog: the update engine has not checked in, not pinging", zap.Duration("within", interval/2))
				continue
			}
			if _, err := daemon.SdNotify(false, daemon.SdNotifyWatchdog); err != nil {
				log.Warn("systemd watchdog", zap.Error(err))
			}
		}
	}
}
