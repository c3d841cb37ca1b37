package e2e

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// CacheTTL is how long an entry of the artifacts cache is kept unused.
// Every change to the agent, init or the tests builds new entries of a
// few GiB each; without pruning, a developer's cache would grow with
// each `make test`.
const CacheTTL = 24 * time.Hour

// touchEntry marks the cache entry dir used now, through its done file.
func touchEntry(dir string, now time.Time) error {
	return os.Chtimes(filepath.Join(dir, "done"), now, now)
}

// pruneCache removes the entries of cache, other than keep, unused for
// longer than ttl: a built entry by its done file's time, which each use
// touches, one never finished by its directory's.
func pruneCache(cache, keep string, ttl time.Duration, now time.Time, logf func(string, ...any)) error {
	entries, err := os.ReadDir(cache)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		dir := filepath.Join(cache, e.Name())
		if !e.IsDir() || dir == filepath.Clean(keep) {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, "done"))
		if errors.Is(err, fs.ErrNotExist) {
			fi, err = os.Stat(dir)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if age := now.Sub(fi.ModTime()); age > ttl {
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, err)
				continue
			}
			logf("release artifacts %s: unused for %v, removed", dir, age.Round(time.Hour))
		}
	}
	return errors.Join(errs...)
}
