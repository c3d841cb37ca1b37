package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netns"
	"go.uber.org/zap"

	"github.com/cairn-edge/cairn/agent/network"
	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

// startNetwork builds the desired network state from the configuration and
// runs the reconciler in the background for the daemon's lifetime.
func (d *Daemon) startNetwork(ctx context.Context) error {
	want, hostname, err := desiredNetwork(d.device, d.cfg.Hostname)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(d.cfg.ResolvConf), 0o755); err != nil {
		return fmt.Errorf("resolv.conf %s: %w", d.cfg.ResolvConf, err)
	}
	ns, err := namespace(d.cfg.NetNS)
	if err != nil {
		return err
	}
	r, err := network.New(ns, want, network.Options{
		ResolvConf: d.cfg.ResolvConf,
		Hostname:   hostname,
		DHCP:       d.cfg.DHCP,
		Wired:      d.cfg.Wired,
		Logger:     slogger(d.log.Named("network")),
	})
	if err != nil {
		return err
	}
	d.net = r
	go func() {
		defer r.Close()
		if err := r.Run(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("network reconciler stopped", zap.Error(err))
		}
	}()
	return nil
}

// resolvConfPath is where the reconciler writes resolv.conf: root's
// /etc/resolv.conf, or the file it links to. On a read-only root /etc
// cannot take the reconciler's temp file and rename, so the image links
// resolv.conf into a writable place (such as /run) and the agent writes
// there, as resolvconf and systemd-resolved do.
func resolvConfPath(root string) string {
	p := filepath.Join(root, "etc/resolv.conf")
	target, err := os.Readlink(p)
	switch {
	case err != nil:
		return p
	case filepath.IsAbs(target):
		return filepath.Join(root, target)
	default:
		return filepath.Join(root, "etc", target)
	}
}

// desiredNetwork is what the reconciler is given: the network-config, or,
// without one, a config of no interfaces, which the reconciler takes for
// DHCP on every wired link. The config's host name rides along, so a DHCP
// server's name never overrides the one the config names.
func desiredNetwork(c *cloudinit.Config, hostname network.HostnameSetter) (*network.Config, network.HostnameSetter, error) {
	want, err := network.FromCloudInit(c)
	return want, hostname, err
}

// waitNetwork waits, at most NetworkWait, for the network to converge:
// time sync, the first update check and k3s want it, but a device whose
// network never comes up must still reach its health gate (and roll back).
func (d *Daemon) waitNetwork(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.NetworkWait)
	defer cancel()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		err := d.net.Converged(ctx)
		if err == nil {
			d.log.Info("network converged")
			return
		}
		select {
		case <-ctx.Done():
			d.log.Warn("network not converged, going on", zap.Duration("waited", d.cfg.NetworkWait), zap.Error(err))
			return
		case <-t.C:
		}
	}
}

// clockFloor is the build time of the booted release, from its signed
// footer (the slot build's SOURCE_DATE_EPOCH): the device cannot be earlier.
func (d *Daemon) clockFloor() time.Time {
	if d.booted == nil {
		return time.Time{}
	}
	return d.booted.Manifest.Created
}

// applyClockFloor steps a clock that is behind the build time (a box with
// no RTC starts at 1970) up to it, so certificates and TUF expiry are
// judged at a time at least that recent until time sync sets it right.
func (d *Daemon) applyClockFloor() {
	floor := d.clockFloor()
	if floor.IsZero() || !d.cfg.Clock.Now().Before(floor) {
		return
	}
	if err := d.cfg.Clock.Set(floor); err != nil {
		d.log.Error("clock floor", zap.Time("floor", floor), zap.Error(err))
		return
	}
	d.log.Warn("clock was behind the image build time; stepped to it", zap.Time("floor", floor))
}

// timeServers are the configured NTP servers and pools, then the ones the
// DHCP leases name.
func (d *Daemon) timeServers() []string {
	var out []string
	if n := d.device.UserData.NTP; n != nil {
		if n.Enabled != nil && !*n.Enabled {
			return nil
		}
		out = append(append(out, n.Servers...), n.Pools...)
	}
	for _, a := range d.net.NTPServers() {
		out = append(out, netip.AddrPortFrom(a, 123).String())
	}
	return out
}

// syncTime sets the clock from the time servers once, before k3s starts
// and before the first update check. A failure is logged: the clock floor
// still holds, and the TUF client refuses what a wrong clock cannot judge.
func (d *Daemon) syncTime(ctx context.Context) {
	servers := d.timeServers()
	if len(servers) == 0 {
		d.log.Info("time sync: no servers configured or offered by DHCP")
		return
	}
	ns := d.cfg.NetNS
	ts := &network.TimeSync{Servers: servers, Clock: d.cfg.Clock, Timeout: 3 * time.Second}
	if ns.IsOpen() {
		ts.Namespace = &ns
	}
	res, err := ts.Sync(ctx)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			d.log.Warn("time sync", zap.Error(err))
		}
		return
	}
	d.log.Info("time sync", zap.String("server", res.Server), zap.Duration("offset", res.Offset), zap.Bool("stepped", res.Stepped))
}

// namespace is the network namespace to reconcile: the configured one, or
// the agent's own. A zero handle counts as unset: netns.NsHandle's IsOpen
// would take it for file descriptor 0 (the service's stdin).
func namespace(ns netns.NsHandle) (netns.NsHandle, error) {
	if ns > 0 {
		return ns, nil
	}
	own, err := netns.Get()
	if err != nil {
		return 0, fmt.Errorf("network namespace: %w", err)
	}
	return own, nil
}
