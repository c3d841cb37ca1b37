package channel

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-edge/cairn/internal/atomicfile"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Rotation is the result of RotateKeys.
type Rotation struct {
	Role        string   `json:"role"`
	RootVersion int64    `json:"root_version"`
	NewKeyIDs   []string `json:"new_key_ids"`
	Threshold   int      `json:"threshold"`
	// Retired lists the old private key files, moved to keys/retired for
	// the operator to destroy.
	Retired []string `json:"retired"`
}

// RotateKeys replaces every key of role with count new ones and the given
// threshold, in a new root version signed by the old root keys (old
// threshold) and, for a root rotation, the new ones (new threshold). A
// rotated online role is re-signed at once, so devices fall forward to it.
func (r *Repo) RotateKeys(role string, count, threshold int) (*Rotation, error) {
	if count < 1 || threshold < 1 || threshold > count {
		return nil, fmt.Errorf("rotate %s: threshold %d of %d keys: want 1 <= threshold <= keys", role, threshold, count)
	}
	old := r.root.Signed.Roles[role]
	if old == nil {
		return nil, fmt.Errorf("rotate: no role %q: want root, targets, snapshot or timestamp", role)
	}
	oldRootKeys, err := keysFor(r.KeysDir(), &r.root.Signed, metadata.ROOT)
	if err != nil {
		return nil, fmt.Errorf("rotate %s: %w", role, err)
	}
	var oldFiles []string
	if role != metadata.ROOT {
		if oldKeys, err := keysFor(r.KeysDir(), &r.root.Signed, role); err == nil {
			for _, k := range oldKeys {
				oldFiles = append(oldFiles, k.Path)
			}
		}
	} else {
		for _, k := range oldRootKeys {
			oldFiles = append(oldFiles, k.Path)
		}
	}
	next, err := metadata.Root().FromBytes(mustBytes(r.root))
	if err != nil {
		return nil, err
	}
	for _, id := range append([]string(nil), old.KeyIDs...) {
		if err := next.Signed.RevokeKey(id, role); err != nil {
			return nil, fmt.Errorf("rotate %s: %w", role, err)
		}
	}
	rot := &Rotation{Role: role, Threshold: threshold}
	var newKeys []*Key
	for range count {
		k, err := GenerateKey(r.KeysDir(), role)
		if err != nil {
			return nil, fmt.Errorf("rotate %s: %w", role, err)
		}
		if err := next.Signed.AddKey(k.Public(), role); err != nil {
			return nil, err
		}
		newKeys = append(newKeys, k)
		rot.NewKeyIDs = append(rot.NewKeyIDs, k.ID)
	}
	next.Signed.Roles[role].Threshold = threshold
	next.Signed.Version++
	next.Signed.Expires = r.expires(r.Expiry.Root)
	signers := oldRootKeys
	if role == metadata.ROOT {
		signers = append(signers, newKeys...)
	}
	if err := sign(next, signers...); err != nil {
		return nil, err
	}
	if err := r.writeRoot(next); err != nil {
		return nil, err
	}
	r.root = next
	rot.RootVersion = next.Signed.Version
	if rot.Retired, err = r.retire(oldFiles); err != nil {
		return rot, err
	}
	switch role {
	case metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP:
		return rot, r.commit(role)
	}
	return rot, nil
}

// retire moves private key files out of the signing set.
func (r *Repo) retire(files []string) ([]string, error) {
	dir := filepath.Join(r.KeysDir(), "retired")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		dst := filepath.Join(dir, filepath.Base(f))
		if err := os.Rename(f, dst); err != nil {
			return out, fmt.Errorf("retire key %s: %w", f, err)
		}
		out = append(out, dst)
	}
	return out, atomicfile.SyncDir(r.KeysDir())
}

func mustBytes(m *metadata.Metadata[metadata.RootType]) []byte {
	data, err := m.ToBytes(false)
	if err != nil {
		panic(err)
	}
	return data
}

// RefreshTimestamp re-signs the timestamp when it expires within `within`
// (always when within is negative), for a cron job. It reports whether it
// signed and the expiry now in force.
func (r *Repo) RefreshTimestamp(within time.Duration) (bool, time.Time, error) {
	if within >= 0 && r.timestamp.Signed.Expires.After(r.now().Add(within)) {
		return false, r.timestamp.Signed.Expires, nil
	}
	if err := r.commit(metadata.TIMESTAMP); err != nil {
		return false, time.Time{}, err
	}
	return true, r.timestamp.Signed.Expires, nil
}
