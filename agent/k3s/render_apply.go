package k3s

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cairn-edge/cairn/internal/atomicfile"
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
		return true, atomicfile.SyncDir(filepath.Dir(f.Path))
	}
	old, err := os.ReadFile(f.Path)
	if err == nil && bytes.Equal(old, f.Data) {
		st, err := os.Stat(f.Path)
		if err == nil && uint32(st.Mode().Perm()) == f.Mode {
			return false, nil
		}
	}
	return true, atomicfile.Write(f.Path, f.Data, fs.FileMode(f.Mode))
}
