package daemon

import (
	"context"

	"go.uber.org/zap"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/host"
	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

// loadDeviceConfig is the config phase on a device: the NoCloud sources
// (image defaults, CIDATA, a seed on the kernel command line) merged and
// validated, the last good configuration kept when the new one is invalid
// or a source cannot be read. With none ever valid the device runs DHCP on
// every wired link and stays reachable for a fix.
func (d *Daemon) loadDeviceConfig(ctx context.Context) (*cloudinit.Config, error) {
	res, err := config.Load(ctx, config.Options{Root: d.cfg.Root})
	if err != nil {
		return nil, err
	}
	d.config.Store(res)
	for _, e := range res.Invalid {
		d.log.Error("configuration refused, keeping the last good one", zap.String("error", e.Error()))
	}
	for _, e := range res.SourceErrors {
		d.log.Error("configuration source unreadable, keeping the last good configuration", zap.String("error", e))
	}
	d.log.Info("configuration", zap.Strings("sources", res.Sources), zap.Bool("last_good", res.LastGood),
		zap.Bool("first_boot", res.FirstBoot), zap.String("instance_id", res.InstanceID()))
	if res.Config == nil {
		return &cloudinit.Config{}, nil
	}
	return res.Config, nil
}

// applyHost applies user-data to the host: with an injected loader only the
// injected ApplyHost runs; on a device, agent/host and bootcmd.
func (d *Daemon) applyHost(ctx context.Context, cfg *cloudinit.Config) error {
	if d.cfg.ApplyHost != nil {
		return d.cfg.ApplyHost(ctx, cfg)
	}
	res := d.config.Load()
	if res == nil || res.Config == nil {
		return nil
	}
	h := &host.Host{Root: d.cfg.Root, Sys: host.Kernel{}}
	acts, err := h.Apply(ctx, cfg, res.FirstBoot)
	for _, a := range acts {
		d.log.Info("host", zap.Stringer("action", a))
	}
	d.hostErr = err
	if berr := (&host.Commands{}).BootCmd(ctx, cfg); berr != nil {
		d.log.Error("bootcmd", zap.Error(berr))
	}
	return err
}

// firstBootCommands runs runcmd once per instance-id, after the network is
// up, and records the first boot done only when it and the host
// configuration succeeded, so a failed first boot is tried again.
func (d *Daemon) firstBootCommands(ctx context.Context) {
	res := d.config.Load()
	if res == nil || res.Config == nil || !res.FirstBoot {
		return
	}
	if err := (&host.Commands{}).RunCmd(ctx, res.Config, true); err != nil {
		d.log.Error("runcmd", zap.Error(err))
		return
	}
	if d.hostErr != nil {
		return
	}
	if err := res.MarkFirstBootDone(); err != nil {
		d.log.Error("first boot", zap.Error(err))
	}
}

// configStatus is the configuration part of cairn-agent status.
func (d *Daemon) configStatus() *agent.ConfigStatus {
	if res := d.config.Load(); res != nil {
		return agent.NewConfigStatus(res)
	}
	return nil
}
