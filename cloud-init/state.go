package cloudinit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-edge/cairn/internal/atomicfile"
)

// ErrNoLastGood means no configuration has validated on this device yet.
var ErrNoLastGood = errors.New("no last good configuration")

// Store keeps this package's state in a directory on /var (normally
// /var/lib/cairn/cloud-init): the last configuration that validated, the
// cached network seeds, and the instance-id whose first boot completed.
type Store struct {
	Dir string
}

const (
	lastGoodFile   = "last-good.json"
	instanceIDFile = "instance-id"
	seedCacheDir   = "seed-cache"
)

// FetchSeed fetches the seed at seedURL and caches it; when the fetch fails
// (network down, server gone) it returns the cached copy with fromCache set,
// so a rebooting box comes up with its last config. Without a cache it
// returns the fetch error.
func (s Store) FetchSeed(ctx context.Context, f *Fetcher, seedURL string) (seed Seed, fromCache bool, err error) {
	sum := sha256.Sum256([]byte(seedURL))
	cache := filepath.Join(s.Dir, seedCacheDir, hex.EncodeToString(sum[:8])+".json")
	seed, fetchErr := f.Fetch(ctx, seedURL)
	if fetchErr == nil {
		b, err := json.Marshal(seed)
		if err != nil {
			return Seed{}, false, fmt.Errorf("seed cache %s: %w", cache, err)
		}
		if err := atomicfile.Write(cache, b, 0o600); err != nil {
			return seed, false, err
		}
		return seed, false, nil
	}
	b, err := os.ReadFile(cache)
	if errors.Is(err, fs.ErrNotExist) {
		return Seed{}, false, fetchErr
	}
	if err != nil {
		return Seed{}, false, fmt.Errorf("%w; seed cache %s: %v", fetchErr, cache, err)
	}
	if err := json.Unmarshal(b, &seed); err != nil {
		return Seed{}, false, fmt.Errorf("%w; seed cache %s: %v", fetchErr, cache, err)
	}
	return seed, true, nil
}

// FirstBootNeeded tells whether the first-boot steps (users, write_files,
// runcmd) must run for instanceID: yes on a fresh /var, and yes again when
// the operator changed instance-id to ask for it.
func (s Store) FirstBootNeeded(instanceID string) (bool, error) {
	path := filepath.Join(s.Dir, instanceIDFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("instance-id %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)) != instanceID, nil
}

// MarkFirstBootDone records that the first-boot steps completed for
// instanceID. Call it only after they all succeeded, so a power cut in the
// middle runs them again.
func (s Store) MarkFirstBootDone(instanceID string) error {
	return atomicfile.Write(filepath.Join(s.Dir, instanceIDFile), []byte(instanceID+"\n"), 0o644)
}

// KeepLastGood resolves seeds (see Resolve). When they validate, the new
// configuration becomes the last good one and is returned with a nil error.
// When they do not, it returns the last good configuration together with the
// ValidationErrors of the new one: the agent keeps running what it has, logs
// the errors and shows them in status. With no last good configuration yet,
// the config is nil and the error also wraps ErrNoLastGood.
func (s Store) KeepLastGood(seeds []Seed) (*Config, error) {
	cfg, verr := Resolve(seeds...)
	if verr == nil {
		b, err := json.Marshal(seeds)
		if err != nil {
			return nil, fmt.Errorf("last good config: %w", err)
		}
		if err := atomicfile.Write(filepath.Join(s.Dir, lastGoodFile), b, 0o600); err != nil {
			return nil, err
		}
		return cfg, nil
	}
	last, err := s.LastGood()
	if err != nil {
		return nil, errors.Join(verr, err)
	}
	return last, verr
}

// LastGood returns the last configuration that validated, re-resolved from
// the seeds it was made of.
func (s Store) LastGood() (*Config, error) {
	path := filepath.Join(s.Dir, lastGoodFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoLastGood
	}
	if err != nil {
		return nil, fmt.Errorf("last good config %s: %w", path, err)
	}
	var seeds []Seed
	if err := json.Unmarshal(b, &seeds); err != nil {
		return nil, fmt.Errorf("last good config %s: %w", path, err)
	}
	cfg, err := Resolve(seeds...)
	if err != nil {
		// Only possible if validation became stricter in a newer release.
		return nil, fmt.Errorf("last good config %s no longer validates: %w", path, err)
	}
	return cfg, nil
}
