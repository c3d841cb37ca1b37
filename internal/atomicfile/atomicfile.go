// Package atomicfile writes files so that a power cut or a crash leaves
// either the old content or the new one, never a mix: the data goes to a
// temporary file beside the target, is synced, renamed over the target, and
// the directory is synced so the rename itself survives.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data. The temporary file gets perm before any
// byte is written, so a secret is never readable by others, not even
// half-written.
func Write(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("%s: write: %w", path, err)
	}
	return f.Commit()
}

// File is a replacement for a file, being written. Nothing at the target
// path changes until Commit.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts a replacement for path with permissions perm, creating
// missing parent directories (0755: the file's own mode guards secrets).
func Create(path string, perm fs.FileMode) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("%s: chmod: %w", path, err)
	}
	return &File{File: tmp, path: path}, nil
}

// Commit syncs the new content, renames it over the target and syncs the
// directory.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("%s: already committed or aborted", f.path)
	}
	f.done = true
	if err := f.File.Sync(); err != nil {
		f.cleanup()
		return fmt.Errorf("%s: fsync: %w", f.path, err)
	}
	if err := f.File.Close(); err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("%s: close: %w", f.path, err)
	}
	if err := os.Rename(f.File.Name(), f.path); err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("%s: rename: %w", f.path, err)
	}
	return SyncDir(filepath.Dir(f.path))
}

// Abort drops the replacement; the target stays as it was. It does nothing
// after Commit, so it can be deferred.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.cleanup()
}

func (f *File) cleanup() {
	f.File.Close()
	os.Remove(f.File.Name())
}

// SyncDir makes the entries of dir (a rename, a new file) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%s: fsync: %w", dir, err)
	}
	return nil
}
