package channel

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cairn-edge/cairn/internal/atomicfile"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ErrExists means keys init found a repository already there.
var ErrExists = errors.New("repository already exists")

// Expiry is how long each role's metadata stays valid after it is signed.
type Expiry struct {
	Root, Targets, Snapshot, Timestamp time.Duration
}

// DefaultExpiry suits a timestamp re-signed daily by a cron job and
// releases published at least twice a year.
var DefaultExpiry = Expiry{
	Root:      365 * 24 * time.Hour,
	Targets:   365 * 24 * time.Hour,
	Snapshot:  365 * 24 * time.Hour,
	Timestamp: 7 * 24 * time.Hour,
}

// Repo is a channel repository workspace: DIR/keys holds the private keys,
// DIR/repository the metadata and targets to serve.
type Repo struct {
	Dir    string
	Expiry Expiry
	// Now is the signing clock; nil means time.Now.
	Now func() time.Time
	// Progress, when set, is called while target files are copied.
	Progress func(file string, done, total int64)

	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
}

// KeysDir is where the private keys are.
func (r *Repo) KeysDir() string { return filepath.Join(r.Dir, "keys") }

// ServeDir is the directory to publish with a static web server.
func (r *Repo) ServeDir() string { return filepath.Join(r.Dir, "repository") }

// RootPath is the newest root metadata; bake it into images as the trusted root.
func (r *Repo) RootPath() string { return filepath.Join(r.ServeDir(), "root.json") }

func (r *Repo) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

func (r *Repo) expires(d time.Duration) time.Time {
	return r.now().Add(d).Truncate(time.Second)
}

// InitOptions shape a new repository.
type InitOptions struct {
	RootKeys      int // number of root keys, at least RootThreshold
	RootThreshold int
	Expiry        Expiry
	Now           func() time.Time
}

// Init creates keys (one per online role, opts.RootKeys for root) and the
// first, empty version of every role's metadata.
func Init(dir string, opts InitOptions) (*Repo, error) {
	if opts.RootKeys < 1 || opts.RootThreshold < 1 || opts.RootThreshold > opts.RootKeys {
		return nil, fmt.Errorf("keys init %s: root threshold %d of %d keys: want 1 <= threshold <= keys", dir, opts.RootThreshold, opts.RootKeys)
	}
	if opts.Expiry == (Expiry{}) {
		opts.Expiry = DefaultExpiry
	}
	r := &Repo{Dir: dir, Expiry: opts.Expiry, Now: opts.Now}
	for _, d := range []string{r.KeysDir(), r.ServeDir()} {
		if entries, err := os.ReadDir(d); err == nil && len(entries) > 0 {
			return nil, fmt.Errorf("keys init %s: %w", d, ErrExists)
		}
	}
	if err := os.MkdirAll(r.KeysDir(), 0o700); err != nil {
		return nil, fmt.Errorf("keys init: %w", err)
	}
	if err := os.Chmod(r.KeysDir(), 0o700); err != nil {
		return nil, fmt.Errorf("keys init: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(r.ServeDir(), "targets"), 0o755); err != nil {
		return nil, fmt.Errorf("keys init: %w", err)
	}
	root := metadata.Root(r.expires(r.Expiry.Root))
	root.Signed.ConsistentSnapshot = true
	root.Signed.Roles[metadata.ROOT].Threshold = opts.RootThreshold
	var rootKeys []*Key
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		n := 1
		if role == metadata.ROOT {
			n = opts.RootKeys
		}
		for range n {
			k, err := GenerateKey(r.KeysDir(), role)
			if err != nil {
				return nil, fmt.Errorf("keys init: %w", err)
			}
			if err := root.Signed.AddKey(k.Public(), role); err != nil {
				return nil, fmt.Errorf("keys init: %w", err)
			}
			if role == metadata.ROOT {
				rootKeys = append(rootKeys, k)
			}
		}
	}
	if err := sign(root, rootKeys...); err != nil {
		return nil, err
	}
	if err := r.writeRoot(root); err != nil {
		return nil, err
	}
	r.root = root
	r.targets = metadata.Targets(r.expires(r.Expiry.Targets))
	r.targets.Signed.Version = 0 // commit bumps every role it writes
	r.snapshot = metadata.Snapshot(r.expires(r.Expiry.Snapshot))
	r.snapshot.Signed.Version = 0
	r.timestamp = metadata.Timestamp(r.expires(r.Expiry.Timestamp))
	r.timestamp.Signed.Version = 0
	if err := r.commit(metadata.TARGETS); err != nil {
		return nil, err
	}
	return r, nil
}

// Open loads the newest metadata of the repository in dir.
func Open(dir string) (*Repo, error) {
	r := &Repo{Dir: dir, Expiry: DefaultExpiry}
	var err error
	if r.root, err = metadata.Root().FromFile(r.RootPath()); err != nil {
		return nil, fmt.Errorf("repository %s: root.json: %w", dir, err)
	}
	ts := filepath.Join(r.ServeDir(), "timestamp.json")
	if r.timestamp, err = metadata.Timestamp().FromFile(ts); err != nil {
		return nil, fmt.Errorf("repository %s: %w", ts, err)
	}
	snapMeta, ok := r.timestamp.Signed.Meta["snapshot.json"]
	if !ok {
		return nil, fmt.Errorf("repository %s: key \"meta.snapshot.json\" missing", ts)
	}
	snap := r.versioned(metadata.SNAPSHOT, snapMeta.Version)
	if r.snapshot, err = metadata.Snapshot().FromFile(snap); err != nil {
		return nil, fmt.Errorf("repository %s: %w", snap, err)
	}
	targetsMeta, ok := r.snapshot.Signed.Meta["targets.json"]
	if !ok {
		return nil, fmt.Errorf("repository %s: key \"meta.targets.json\" missing", snap)
	}
	tp := r.versioned(metadata.TARGETS, targetsMeta.Version)
	if r.targets, err = metadata.Targets().FromFile(tp); err != nil {
		return nil, fmt.Errorf("repository %s: %w", tp, err)
	}
	return r, nil
}

func (r *Repo) versioned(role string, version int64) string {
	return filepath.Join(r.ServeDir(), strconv.FormatInt(version, 10)+"."+role+".json")
}

// writeRoot stores root as N.root.json (what clients walk) and root.json
// (what images bake in).
func (r *Repo) writeRoot(root *metadata.Metadata[metadata.RootType]) error {
	data, err := root.ToBytes(true)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(r.versioned(metadata.ROOT, root.Signed.Version), data, 0o644); err != nil {
		return err
	}
	return atomicfile.Write(r.RootPath(), data, 0o644)
}

// commit re-signs the role `from` and every role above it (targets →
// snapshot → timestamp) with bumped versions, writing the timestamp last so
// a server never shows a timestamp whose snapshot is not there yet.
func (r *Repo) commit(from string) error {
	if from == metadata.TARGETS {
		r.targets.Signed.Version++
		r.targets.Signed.Expires = r.expires(r.Expiry.Targets)
		data, err := signed(r, metadata.TARGETS, r.targets)
		if err != nil {
			return err
		}
		if err := atomicfile.Write(r.versioned(metadata.TARGETS, r.targets.Signed.Version), data, 0o644); err != nil {
			return err
		}
		r.snapshot.Signed.Meta["targets.json"] = metaFile(r.targets.Signed.Version, data)
		from = metadata.SNAPSHOT
	}
	if from == metadata.SNAPSHOT {
		r.snapshot.Signed.Version++
		r.snapshot.Signed.Expires = r.expires(r.Expiry.Snapshot)
		data, err := signed(r, metadata.SNAPSHOT, r.snapshot)
		if err != nil {
			return err
		}
		if err := atomicfile.Write(r.versioned(metadata.SNAPSHOT, r.snapshot.Signed.Version), data, 0o644); err != nil {
			return err
		}
		r.timestamp.Signed.Meta["snapshot.json"] = metaFile(r.snapshot.Signed.Version, data)
	}
	r.timestamp.Signed.Version++
	r.timestamp.Signed.Expires = r.expires(r.Expiry.Timestamp)
	data, err := signed(r, metadata.TIMESTAMP, r.timestamp)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(r.ServeDir(), "timestamp.json"), data, 0o644)
}

// signed signs meta with the role's keys from the keys directory.
func signed[T metadata.Roles](r *Repo, role string, meta *metadata.Metadata[T]) ([]byte, error) {
	keys, err := keysFor(r.KeysDir(), &r.root.Signed, role)
	if err != nil {
		return nil, err
	}
	if err := sign(meta, keys...); err != nil {
		return nil, err
	}
	return meta.ToBytes(true)
}

func metaFile(version int64, data []byte) *metadata.MetaFiles {
	s := sha256.Sum256(data)
	return &metadata.MetaFiles{Version: version, Length: int64(len(data)), Hashes: metadata.Hashes{"sha256": s[:]}}
}
