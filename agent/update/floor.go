package update

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/Masterminds/semver/v3"
)

// ErrBelowVersionFloor means a release is older than one this device has
// committed; it is refused even when correctly signed.
var ErrBelowVersionFloor = errors.New("release is below the version floor")

// VersionFloor is the anti-rollback floor on /var: the newest release this
// device has committed, one semantic version and a newline. It only goes up.
type VersionFloor struct {
	path string
}

// NewVersionFloor keeps the floor in the file at path.
func NewVersionFloor(path string) *VersionFloor { return &VersionFloor{path: path} }

// Get returns the floor, or nil when none was ever set. A damaged file is an
// error, never "no floor".
func (f *VersionFloor) Get() (*semver.Version, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("version floor %s: %w", f.path, err)
	}
	line, ok := bytes.CutSuffix(data, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("version floor %s: line 1: missing newline", f.path)
	}
	v, err := semver.StrictNewVersion(string(line))
	if err != nil {
		return nil, fmt.Errorf("version floor %s: line 1: %q: %w", f.path, line, err)
	}
	return v, nil
}

// Check refuses v when it is below the floor.
func (f *VersionFloor) Check(v *semver.Version) error {
	floor, err := f.Get()
	if err != nil {
		return err
	}
	if floor != nil && v.LessThan(floor) {
		return fmt.Errorf("release %s, floor %s: %w", v, floor, ErrBelowVersionFloor)
	}
	return nil
}

// Raise sets the floor to v; lowering it is refused.
func (f *VersionFloor) Raise(v *semver.Version) error {
	if err := f.Check(v); err != nil {
		return err
	}
	return writeFileAtomic(f.path, []byte(v.String()+"\n"), 0o644)
}

// writeFileAtomic writes a temporary file beside path, syncs it, renames it
// over path and syncs the directory, so a power cut leaves old or new.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("%s: write: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("%s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%s: sync dir: %w", path, err)
	}
	return nil
}
