package k3s

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Changes says what Apply changed on disk.
type Changes struct {
	// Paths are the files written or removed, in render order.
	Paths []string
	// Restart is set when a file k3s reads changed: k3s must restart to see it.
	Restart bool
	// Images is set when the air-gap image list changed.
	Images bool
}

// Apply writes the rendered files whose content or mode differs from what is
// on disk, and removes files rendered as absent. Unchanged files are not
// touched, so applying the same render twice reports no change.
func Apply(files []File) (Changes, error) {
	var c Changes
	for _, f := range files {
		changed, err := applyFile(f)
		if err != nil {
			return c, err
		}
		if !changed {
			continue
		}
		c.Paths = append(c.Paths, f.Path)
		if f.ReadByK3s {
			c.Restart = true
		} else {
			c.Images = true
		}
	}
	return c, nil
}

func applyFile(f File) (bool, error) {
	if f.Data == nil {
		err := os.Remove(f.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("k3s file %s: remove: %w", f.Path, err)
		}
		return true, syncDir(filepath.Dir(f.Path))
	}
	old, err := os.ReadFile(f.Path)
	if err == nil && bytes.Equal(old, f.Data) {
		st, err := os.Stat(f.Path)
		if err == nil && uint32(st.Mode().Perm()) == f.Mode {
			return false, nil
		}
	}
	return true, WriteFileAtomic(f.Path, f.Data, fs.FileMode(f.Mode))
}

// WriteFileAtomic replaces path with data so that a reader or a power cut
// sees the old content or the new, never a part: temp file, fsync, rename,
// fsync of the directory. Missing parent directories are created.
func WriteFileAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("k3s file %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("k3s file %s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// Chmod before writing so a secret is never readable by others, not even
	// in the temp file.
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("k3s file %s: chmod: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("k3s file %s: write: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("k3s file %s: fsync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("k3s file %s: close: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("k3s file %s: rename: %w", path, err)
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("k3s dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("k3s dir %s: fsync: %w", dir, err)
	}
	return nil
}
