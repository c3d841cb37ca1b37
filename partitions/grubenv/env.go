package grubenv

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/cairn-edge/cairn/internal/atomicfile"
)

// Device is the storage an Env reads and writes; *os.File satisfies it.
// Tests wrap it to cut writes short like a power cut does.
type Device interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// Env is a GRUB environment block on a device, read fresh on every call and
// rewritten in place at offset 0: GRUB's save_env writes to the file's
// existing sectors, so the file must never be replaced by a new one.
type Env struct {
	name string
	dev  Device
	size int64
	file *os.File // set when Open opened dev, so Close closes it

	mu sync.Mutex // serialises read-modify-write in Set
}

// Open opens the existing environment block at path for reading and writing
// in place. Its size is the file's size.
func Open(path string) (*Env, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("grubenv %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("grubenv %s: %w", path, err)
	}
	if fi.Size() == 0 || fi.Size()%sectorSize != 0 {
		f.Close()
		return nil, fmt.Errorf("grubenv %s: %w: size %d bytes: want a positive multiple of %d", path, ErrInvalid, fi.Size(), sectorSize)
	}
	return &Env{name: path, dev: f, size: fi.Size(), file: f}, nil
}

// New returns an Env for a block of size bytes at offset 0 of dev. The
// caller keeps ownership of dev; Close does not close it.
func New(dev Device, size int64) *Env {
	name := "device"
	if n, ok := dev.(interface{ Name() string }); ok {
		name = n.Name()
	}
	return &Env{name: name, dev: dev, size: size}
}

// Close closes the file Open opened.
func (e *Env) Close() error {
	if e.file == nil {
		return nil
	}
	if err := e.file.Close(); err != nil {
		return fmt.Errorf("grubenv %s: close: %w", e.name, err)
	}
	return nil
}

// Block reads and parses the block from the device.
func (e *Env) Block() (*Block, error) {
	buf := make([]byte, e.size)
	if _, err := e.dev.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("grubenv %s: read %d bytes: %w", e.name, e.size, err)
	}
	b, err := Parse(buf)
	if err != nil {
		return nil, fmt.Errorf("grubenv %s: %w", e.name, err)
	}
	return b, nil
}

// Vars reads the block from the device and returns its variables.
func (e *Env) Vars() (map[string]string, error) {
	b, err := e.Block()
	if err != nil {
		return nil, err
	}
	return b.Vars(), nil
}

// Set stores name=value durably: it edits the block as GRUB does, writes the
// whole block back at offset 0, and syncs. Changing a one-digit value to
// another one-digit value changes a single byte, so a write cut short by a
// power loss leaves either the old or the new value in a valid block.
// On ErrNoSpace, and when the value is already set, nothing is written.
func (e *Env) Set(name, value string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, err := e.Block()
	if err != nil {
		return err
	}
	old := b.Bytes()
	if err := b.Set(name, value); err != nil {
		return fmt.Errorf("grubenv %s: %w", e.name, err)
	}
	if !bytes.Equal(old, b.buf) {
		if _, err := e.dev.WriteAt(b.buf, 0); err != nil {
			return fmt.Errorf("grubenv %s: write %s: %w", e.name, name, err)
		}
	}
	// Sync even when nothing changed: the value may be in the page cache only.
	if err := e.dev.Sync(); err != nil {
		return fmt.Errorf("grubenv %s: sync: %w", e.name, err)
	}
	return nil
}

// Var is one variable for Create, which keeps their order.
type Var struct {
	Name, Value string
}

// Create writes a new Size-byte block holding vars, in order, to path. It is
// for image builds, where the file is new: it writes a temporary file, syncs
// it, renames it over path and syncs the directory, so path is either absent
// or complete.
func Create(path string, vars []Var) error {
	b := NewBlock(Size)
	for _, v := range vars {
		if err := b.Set(v.Name, v.Value); err != nil {
			return fmt.Errorf("grubenv %s: %w", path, err)
		}
	}
	if err := atomicfile.Write(path, b.buf, 0o644); err != nil {
		return fmt.Errorf("grubenv: %w", err)
	}
	return nil
}
