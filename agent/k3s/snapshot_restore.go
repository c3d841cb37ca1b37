package k3s

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
)

// ErrSnapshotCorrupt is returned when a snapshot's files do not match the
// checksums recorded when it was taken.
var ErrSnapshotCorrupt = errors.New("k3s snapshot does not match its checksums")

// Restore puts the datastore back to the snapshot. k3s must be stopped.
// The snapshot is checked first, so a damaged snapshot never replaces a
// datastore.
func (s *Snapshotter) Restore(ctx context.Context, snap *Snapshot) error {
	for name, want := range snap.Files {
		got, err := fileSHA256(filepath.Join(snap.Dir, name))
		if err != nil {
			return fmt.Errorf("k3s snapshot %s: %w", snap.Dir, err)
		}
		if got != want {
			return fmt.Errorf("k3s snapshot %s: file %s: %w", snap.Dir, name, ErrSnapshotCorrupt)
		}
	}
	switch snap.Datastore {
	case DatastoreSQLite:
		return s.restoreSQLite(snap)
	case DatastoreEtcd:
		return s.restoreEtcd(ctx, snap)
	}
	return fmt.Errorf("k3s snapshot %s: unknown datastore %q", snap.Dir, snap.Datastore)
}

func (s *Snapshotter) restoreSQLite(snap *Snapshot) error {
	db := filepath.Join(s.DataDir, "server", "db")
	if err := os.MkdirAll(db, 0o700); err != nil {
		return fmt.Errorf("k3s datastore %s: %w", db, err)
	}
	// A WAL or shm file the failed version left beside the database would be
	// replayed into the restored one: remove what the snapshot lacks.
	current, _ := filepath.Glob(filepath.Join(db, "state.db*"))
	for _, p := range current {
		if _, ok := snap.Files[filepath.Base(p)]; !ok {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("k3s datastore %s: %w", p, err)
			}
		}
	}
	names := make([]string, 0, len(snap.Files))
	for name := range snap.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if _, err := copyFileSync(filepath.Join(snap.Dir, name), filepath.Join(db, name), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// restoreEtcd runs k3s's own cluster reset from the snapshot file; k3s
// exits when it is done. Other servers of the cluster must be reset from
// this one afterwards, as k3s documents for any etcd restore.
func (s *Snapshotter) restoreEtcd(ctx context.Context, snap *Snapshot) error {
	if len(snap.Files) != 1 {
		return fmt.Errorf("k3s snapshot %s: want one etcd snapshot file, have %d", snap.Dir, len(snap.Files))
	}
	var file string
	for name := range snap.Files {
		file = filepath.Join(snap.Dir, name)
	}
	args := []string{"server", "--cluster-reset", "--cluster-reset-restore-path=" + file, "--data-dir", s.DataDir}
	if s.Config != "" {
		args = append(args, "--config", s.Config)
	}
	if out, err := exec.CommandContext(ctx, s.Binary, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("k3s cluster-reset from %s: %w: %s", file, err, lastLine(out))
	}
	return nil
}
