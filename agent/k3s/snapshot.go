package k3s

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/internal/atomicfile"
)

// Datastore kinds a snapshot can hold.
const (
	DatastoreSQLite = "sqlite" // kine on embedded SQLite, the single-server default
	DatastoreEtcd   = "etcd"   // embedded etcd, cluster-init and joined servers
)

// DefaultSnapshotDir is where a device keeps its datastore snapshots.
const DefaultSnapshotDir = "/var/lib/cairn/k3s/snapshots"

// ErrNoDatastore is returned when the node keeps no datastore: an agent, or
// a server that has never started.
var ErrNoDatastore = errors.New("no k3s datastore on this node")

// Snapshotter takes and restores datastore snapshots. Each snapshot is a
// directory under Dir, written under a temp name and renamed when complete,
// so a power cut never leaves a half snapshot that looks whole.
type Snapshotter struct {
	DataDir string // k3s data dir, /var/lib/rancher/k3s
	Dir     string // where snapshots are kept
	Keep    int    // how many to keep; older ones are removed after a new one
	Binary  string // k3s binary, for etcd-snapshot and cluster-reset
	Config  string // k3s config file, for cluster-reset
	Now     func() time.Time
}

// Snapshot describes one snapshot; it is also the snapshot's meta.json.
type Snapshot struct {
	Name       string            `json:"name"`
	Datastore  string            `json:"datastore"`
	Created    time.Time         `json:"created"`
	K3sVersion string            `json:"k3s_version"` // the version that wrote the data
	Files      map[string]string `json:"files"`       // file name → sha256
	Dir        string            `json:"-"`
}

// Datastore says which datastore this node keeps.
func (s *Snapshotter) Datastore() (string, error) {
	db := filepath.Join(s.DataDir, "server", "db")
	if st, err := os.Stat(filepath.Join(db, "etcd")); err == nil && st.IsDir() {
		return DatastoreEtcd, nil
	}
	if _, err := os.Stat(filepath.Join(db, "state.db")); err == nil {
		return DatastoreSQLite, nil
	}
	return "", ErrNoDatastore
}

// Take snapshots the datastore. SQLite is copied and needs k3s stopped;
// etcd is saved by `k3s etcd-snapshot save` and needs k3s running.
func (s *Snapshotter) Take(ctx context.Context, k3sVersion string) (*Snapshot, error) {
	kind, err := s.Datastore()
	if err != nil {
		return nil, err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now().UTC()
	snap := &Snapshot{Name: "cairn-" + t.Format("20060102T150405.000000000Z"), Datastore: kind,
		Created: t, K3sVersion: k3sVersion, Files: map[string]string{}}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("k3s snapshots %s: %w", s.Dir, err)
	}
	tmp, err := os.MkdirTemp(s.Dir, ".tmp-"+snap.Name)
	if err != nil {
		return nil, fmt.Errorf("k3s snapshots %s: %w", s.Dir, err)
	}
	defer os.RemoveAll(tmp)
	switch kind {
	case DatastoreSQLite:
		err = s.copySQLite(tmp, snap)
	case DatastoreEtcd:
		err = s.saveEtcd(ctx, tmp, snap)
	}
	if err != nil {
		return nil, err
	}
	meta, _ := json.MarshalIndent(snap, "", "  ")
	if err := atomicfile.Write(filepath.Join(tmp, "meta.json"), append(meta, '\n'), 0o600); err != nil {
		return nil, err
	}
	snap.Dir = filepath.Join(s.Dir, snap.Name)
	if err := os.Rename(tmp, snap.Dir); err != nil {
		return nil, fmt.Errorf("k3s snapshot %s: %w", snap.Dir, err)
	}
	if err := atomicfile.SyncDir(s.Dir); err != nil {
		return nil, err
	}
	return snap, s.prune()
}

// copySQLite copies state.db and its WAL and shared-memory files: with k3s
// stopped they are consistent together.
func (s *Snapshotter) copySQLite(dst string, snap *Snapshot) error {
	db := filepath.Join(s.DataDir, "server", "db")
	names, err := filepath.Glob(filepath.Join(db, "state.db*"))
	if err != nil {
		return err
	}
	for _, src := range names {
		sum, err := copyFileSync(src, filepath.Join(dst, filepath.Base(src)), 0o600)
		if err != nil {
			return err
		}
		snap.Files[filepath.Base(src)] = sum
	}
	return nil
}

func (s *Snapshotter) saveEtcd(ctx context.Context, dst string, snap *Snapshot) error {
	cmd := exec.CommandContext(ctx, s.Binary, "etcd-snapshot", "save",
		"--data-dir", s.DataDir, "--name", snap.Name, "--dir", dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("k3s etcd-snapshot save: %w: %s", err, lastLine(out))
	}
	ents, err := os.ReadDir(dst)
	if err != nil {
		return err
	}
	for _, e := range ents {
		sum, err := fileSHA256(filepath.Join(dst, e.Name()))
		if err != nil {
			return err
		}
		snap.Files[e.Name()] = sum
	}
	if len(snap.Files) == 0 {
		return fmt.Errorf("k3s etcd-snapshot save: no snapshot file in %s", dst)
	}
	return nil
}

// List returns the complete snapshots, oldest first.
func (s *Snapshotter) List() ([]*Snapshot, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("k3s snapshots %s: %w", s.Dir, err)
	}
	var out []*Snapshot
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "cairn-") {
			continue
		}
		dir := filepath.Join(s.Dir, e.Name())
		data, err := os.ReadFile(filepath.Join(dir, "meta.json"))
		if err != nil {
			continue
		}
		snap := &Snapshot{}
		if err := json.Unmarshal(data, snap); err != nil {
			return nil, fmt.Errorf("k3s snapshot %s: meta.json: %w", dir, err)
		}
		snap.Dir = dir
		out = append(out, snap)
	}
	slices.SortFunc(out, func(a, b *Snapshot) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// prune removes all but the newest Keep snapshots.
func (s *Snapshotter) prune() error {
	if s.Keep <= 0 {
		return nil
	}
	snaps, err := s.List()
	if err != nil {
		return err
	}
	for len(snaps) > s.Keep {
		if err := os.RemoveAll(snaps[0].Dir); err != nil {
			return fmt.Errorf("k3s snapshot %s: remove: %w", snaps[0].Dir, err)
		}
		snaps = snaps[1:]
	}
	return atomicfile.SyncDir(s.Dir)
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// copyFileSync copies src to dst (temp, fsync, rename) and returns the
// sha256 of what it copied.
func copyFileSync(src, dst string, mode fs.FileMode) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", dst, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	if err := tmp.Chmod(mode); err != nil {
		return "", fmt.Errorf("copy %s: %w", dst, err)
	}
	if _, err := io.Copy(io.MultiWriter(tmp, h), in); err != nil {
		return "", fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("copy %s: fsync: %w", dst, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("copy %s: %w", dst, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("copy %s: %w", dst, err)
	}
	return hex.EncodeToString(h.Sum(nil)), atomicfile.SyncDir(filepath.Dir(dst))
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
