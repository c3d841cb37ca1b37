package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"go.uber.org/zap"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/k3s"
	"github.com/cairn-edge/cairn/agent/update"
)

// k3sUpgrades takes k3s binaries from the signed channel (docs/k3s.md,
// "Upgrades and snapshots"): on every check that finds the OS up to date
// and no OS update in flight, a k3s in the release's manifest that is
// newer than the running one and never rolled back here is downloaded,
// verified, and switched to by k3s.Upgrader, which restores the binary and
// the datastore snapshot when the new k3s does not get ready.
type k3sUpgrades struct {
	d       *Daemon
	n       *k3sNode
	channel *update.Channel
	state   string // the upgrade record, k3s.UpgradeState
	dir     string // downloads, on /var beside the staged binaries
	arch    string
	log     *zap.Logger
}

// followK3sUpgrades polls the channel for k3s binaries as long as ctx
// lives, when the device follows a channel automatically.
func (d *Daemon) followK3sUpgrades(ctx context.Context, n *k3sNode) {
	u := d.device.UserData.Cairn.Update
	if u == nil || u.MetadataURL == "" || (u.Auto != nil && !*u.Auto) {
		return
	}
	metaDir := filepath.Join(d.cfg.VarDir, "k3s", "tuf")
	// Its own metadata cache: the engine's channel client may refresh at
	// the same time, and go-tuf does not share a directory.
	ch, err := d.newChannel(u, update.NewVersionFloor(filepath.Join(d.cfg.VarDir, "update", "version-floor")), metaDir)
	if err != nil {
		n.log.Error("k3s upgrades disabled", zap.Error(err))
		return
	}
	arch := runtime.GOARCH
	if d.booted != nil && d.booted.Manifest.Arch != "" {
		arch = d.booted.Manifest.Arch
	}
	k := &k3sUpgrades{d: d, n: n, channel: ch, state: n.setup.UpgradeState,
		dir: filepath.Join(filepath.Dir(n.setup.Binaries.Dir), "download"), arch: arch, log: n.log}
	every := n.setup.UpgradeInterval
	if every == 0 {
		every = d.cfg.PollInterval
	}
	p := &update.Poller{Interval: every, Jitter: 0.2, MinBackoff: every / 60, MaxBackoff: every, Poll: k.poll, OnError: func(err error, next time.Duration) {
		n.log.Warn("k3s upgrade check failed", zap.Error(err), zap.Duration("next", next))
	}}
	p.Run(ctx)
}

// poll is one check; nothing to do is not an error.
func (k *k3sUpgrades) poll(ctx context.Context) error {
	if !k.osAtRest() || k.n.probe.Check(ctx) != nil {
		return nil // an OS update in flight, or k3s not healthy to begin with
	}
	o, err := k.channel.Current(ctx)
	if update.Idle(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if booted, err := semver.StrictNewVersion(k.d.osVersion()); err == nil && o.Manifest.SemVer() != nil && o.Manifest.SemVer().GreaterThan(booted) {
		k.log.Debug("k3s upgrade waits for the OS update", zap.String("release", o.Manifest.Version))
		return nil
	}
	art, ok := o.Manifest.K3s[k.arch]
	if !ok {
		return nil
	}
	st, err := k3s.LoadUpgradeState(k.state)
	if err != nil {
		return err
	}
	_, running, err := k.n.setup.Binaries.Current()
	if err != nil {
		return err
	}
	// A binary seen before is known by its signed hash: no download to
	// learn that it is not newer, or that it rolled back here.
	if st.Artifact == art.SHA256 && (!k3s.Newer(st.ArtifactVersion, running) || st.IsBad(st.ArtifactVersion)) {
		return nil
	}
	bin := filepath.Join(k.dir, "k3s")
	defer os.Remove(bin)
	if err := k.channel.DownloadArtifact(ctx, o.K3s[k.arch], art, bin, 0o755); err != nil {
		return fmt.Errorf("k3s of release %s: %w", o.Manifest.Version, err)
	}
	version, err := k3s.BinaryVersion(ctx, bin)
	if err != nil {
		return err
	}
	st.Artifact, st.ArtifactVersion = art.SHA256, version
	if !k3s.Newer(version, running) || st.IsBad(version) {
		return st.Save(k.state)
	}
	st.Staged = version
	if err := st.Save(k.state); err != nil {
		return err
	}
	return k.upgrade(ctx, st, bin, version)
}

// upgrade runs the Upgrader and records how it ended.
func (k *k3sUpgrades) upgrade(ctx context.Context, st *k3s.UpgradeState, bin, version string) error {
	if !k.osAtRest() {
		return nil
	}
	n := k.n
	up := &k3s.Upgrader{Role: n.role, Runner: n.runner, Binaries: n.setup.Binaries,
		Ready: n.waitReady, HealthTimeout: n.setup.UpgradeTimeout,
		ServerVersions: func(ctx context.Context) ([]string, error) {
			c, err := n.client(false)
			if err != nil {
				return nil, err
			}
			return k3s.ServerVersions(ctx, c)
		}}
	if n.role == k3s.RoleServer {
		up.Snapshots = &k3s.Snapshotter{DataDir: n.dataDir, Dir: n.setup.SnapshotDir, Keep: n.setup.SnapshotKeep,
			Binary: n.setup.Binaries.Link, Config: n.setup.Paths.Config}
	}
	k.log.Info("k3s upgrade", zap.String("to", version))
	res, err := up.Upgrade(ctx, bin, version)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	st.Record(time.Now(), res, err)
	if serr := st.Save(k.state); serr != nil {
		return errors.Join(err, serr)
	}
	fields := []zap.Field{zap.String("from", res.From), zap.String("to", res.To), zap.String("snapshot", res.Snapshot)}
	switch {
	case err == nil:
		k.log.Info("k3s upgraded", fields...)
	case errors.Is(err, k3s.ErrServersBehind):
		k.log.Info("k3s upgrade waits for the servers", append(fields, zap.Error(err))...)
	case res.RolledBack:
		k.log.Error("k3s upgrade rolled back", append(fields, zap.Error(err))...)
	default:
		return err
	}
	return nil
}

// osAtRest reports whether the update engine runs and has no OS update in
// flight, so a k3s upgrade does not overlap one.
func (k *k3sUpgrades) osAtRest() bool {
	eng := k.d.Engine()
	return eng != nil && eng.Status().Phase.AtRest()
}

// waitReady is the upgrade's health gate: the role's probe until it passes
// or ctx ends, with the probe's last reason.
func (n *k3sNode) waitReady(ctx context.Context) error {
	for {
		err := n.probe.Check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// K3sStatus is the k3s line of the status: the running version, what is
// staged, and the upgrade record; nil when the device runs no k3s.
func (d *Daemon) K3sStatus() *agent.K3sStatus {
	if d.k3s == nil {
		return nil
	}
	s := d.k3s.setup
	st := &agent.K3sStatus{LastUpgrade: "none", Token: d.k3s.token}
	if _, v, err := s.Binaries.Current(); err == nil {
		st.Running = v
	}
	rec, err := k3s.LoadUpgradeState(s.UpgradeState)
	if err != nil {
		st.LastUpgrade = err.Error()
		return st
	}
	st.Staged, st.LastUpgrade = rec.Staged, rec.Last.Summary()
	for _, b := range rec.Bad {
		st.Bad = append(st.Bad, b.Version)
	}
	return st
}

// dataDir is k3s's data dir: --data-dir from extra_args, else k3s's own.
func dataDir(spec k3s.Spec) string {
	for i, a := range spec.ExtraArgs {
		if v, ok := strings.CutPrefix(a, "--data-dir="); ok {
			return v
		}
		if (a == "--data-dir" || a == "-d") && i+1 < len(spec.ExtraArgs) {
			return spec.ExtraArgs[i+1]
		}
	}
	return "/var/lib/rancher/k3s"
}
