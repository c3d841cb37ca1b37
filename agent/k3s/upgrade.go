package k3s

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Masterminds/semver/v3"
)

// Sentinel errors of Upgrade that callers act on.
var (
	// ErrServersBehind: an agent waits until every server runs at least the
	// target version; try again later.
	ErrServersBehind = errors.New("k3s servers not yet upgraded")
	// ErrDowngrade: k3s refuses to run on a datastore a newer k3s wrote.
	ErrDowngrade = errors.New("k3s downgrade refused")
	// ErrRolledBack: the new k3s did not become healthy; the previous binary
	// and datastore are back.
	ErrRolledBack = errors.New("k3s upgrade rolled back")
)

// Upgrader moves this node to a new k3s binary with a way back.
type Upgrader struct {
	Role      Role
	Runner    Runner // runs k3s through Binaries.Link
	Binaries  Binaries
	Snapshots *Snapshotter // nil on agents, which keep no datastore
	// Ready returns nil once k3s on this node is healthy; it is called with
	// a context that ends after HealthTimeout.
	Ready         func(ctx context.Context) error
	HealthTimeout time.Duration
	// ServerVersions lists the k3s version of every server node; agents
	// upgrade only when all are at least the target.
	ServerVersions func(ctx context.Context) ([]string, error)
}

// Result says what an upgrade did, for the log and the status.
type Result struct {
	From, To   string
	Snapshot   string // snapshot taken before the switch
	RolledBack bool
	Reason     string // why it rolled back
}

// Upgrade switches this node to the verified k3s binary of the given version:
// snapshot the datastore, switch the binary, restart, and gate on Ready. If
// k3s does not become ready, the previous binary and the snapshot come back
// and the error wraps ErrRolledBack.
func (u *Upgrader) Upgrade(ctx context.Context, verified, version string) (Result, error) {
	prevPath, prevVersion, err := u.Binaries.Current()
	res := Result{From: prevVersion, To: version}
	if err != nil {
		return res, err
	}
	if err := u.checkOrder(ctx, prevVersion, version); err != nil {
		return res, err
	}
	staged, err := u.Binaries.Stage(verified, version)
	if err != nil {
		return res, err
	}
	snap, err := u.snapshotAndStop(ctx, prevVersion)
	if err != nil {
		return res, err
	}
	if snap != nil {
		res.Snapshot = snap.Name
	}
	if err := u.Binaries.Switch(staged); err != nil {
		return res, errors.Join(err, u.Runner.Start(ctx))
	}
	healthErr := u.Runner.Start(ctx)
	if healthErr == nil {
		hctx, cancel := context.WithTimeout(ctx, u.HealthTimeout)
		healthErr = u.Ready(hctx)
		cancel()
	}
	if healthErr == nil {
		// The previous binary stays for a manual way back; older ones go.
		return res, u.Binaries.prune(staged, prevPath)
	}
	res.RolledBack, res.Reason = true, healthErr.Error()
	if err := u.rollback(ctx, prevPath, snap); err != nil {
		return res, fmt.Errorf("k3s %s did not become ready (%v), and the rollback to %s failed: %w", version, healthErr, prevVersion, err)
	}
	return res, fmt.Errorf("%w: k3s %s not ready: %v; back on %s", ErrRolledBack, version, healthErr, prevVersion)
}

// checkOrder refuses downgrades and keeps agents behind the servers.
func (u *Upgrader) checkOrder(ctx context.Context, current, target string) error {
	tv, err := semver.NewVersion(target)
	if err != nil {
		return fmt.Errorf("k3s target version %q: %w", target, err)
	}
	if cv, err := semver.NewVersion(current); err == nil && tv.LessThan(cv) {
		return fmt.Errorf("%w: %s is older than the running %s", ErrDowngrade, target, current)
	}
	if u.Role != RoleAgent {
		return nil
	}
	versions, err := u.ServerVersions(ctx)
	if err != nil {
		return fmt.Errorf("k3s server versions: %w", err)
	}
	if len(versions) == 0 {
		return fmt.Errorf("%w: no server node found", ErrServersBehind)
	}
	for _, v := range versions {
		sv, err := semver.NewVersion(v)
		if err != nil {
			return fmt.Errorf("k3s server version %q: %w", v, err)
		}
		if sv.LessThan(tv) {
			return fmt.Errorf("%w: a server runs %s, below %s", ErrServersBehind, v, target)
		}
	}
	return nil
}

// snapshotAndStop takes the pre-upgrade snapshot and stops k3s: etcd is
// saved while k3s runs, SQLite copied once it has stopped.
func (u *Upgrader) snapshotAndStop(ctx context.Context, version string) (*Snapshot, error) {
	if u.Snapshots == nil {
		return nil, u.Runner.Stop(ctx)
	}
	kind, err := u.Snapshots.Datastore()
	if errors.Is(err, ErrNoDatastore) {
		return nil, u.Runner.Stop(ctx)
	}
	var snap *Snapshot
	if kind == DatastoreEtcd {
		if snap, err = u.Snapshots.Take(ctx, version); err != nil {
			return nil, fmt.Errorf("k3s upgrade: snapshot: %w", err)
		}
	}
	if err := u.Runner.Stop(ctx); err != nil {
		return nil, err
	}
	if kind == DatastoreSQLite {
		if snap, err = u.Snapshots.Take(ctx, version); err != nil {
			return nil, errors.Join(fmt.Errorf("k3s upgrade: snapshot: %w", err), u.Runner.Start(ctx))
		}
	}
	return snap, nil
}

func (u *Upgrader) rollback(ctx context.Context, prevPath string, snap *Snapshot) error {
	if err := u.Runner.Stop(ctx); err != nil {
		return err
	}
	if err := u.Binaries.Switch(prevPath); err != nil {
		return err
	}
	if snap != nil {
		if err := u.Snapshots.Restore(ctx, snap); err != nil {
			return err
		}
	}
	return u.Runner.Start(ctx)
}
