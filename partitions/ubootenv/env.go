package ubootenv

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"sync"
)

// Device is the storage a copy lives on; *os.File satisfies it. Tests wrap
// it to cut writes short like a power cut does.
type Device interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// Region is where one copy lives: Size bytes at Offset of Dev.
type Region struct {
	Dev          Device
	Offset, Size int64
}

// Env is a U-Boot environment of one copy or a redundant pair, read fresh on
// every call.
//
// With a redundant pair, Set never touches the copy readers use: it writes
// the other copy with the flag advanced by one and a fresh CRC, then syncs.
// A write cut short leaves that copy with a bad CRC, so U-Boot, fw_printenv
// and Vars keep reading the old copy. A single copy is rewritten in place,
// which is not power-safe: a cut write leaves no valid environment and
// U-Boot falls back to its built-in default. Cairn boards use redundant
// environments.
type Env struct {
	copies    []Region
	redundant bool
	files     []*os.File // opened by Open, closed by Close

	mu sync.Mutex // serialises read-modify-write in Set
}

// New returns an Env over copies: one copy, or two when redundant. The caller
// keeps ownership of the devices; Close does not close them. An inconsistent
// set of regions makes Vars and Set fail.
func New(copies []Region, redundant bool) *Env {
	return &Env{copies: copies, redundant: redundant}
}

// Open opens the devices of locations (from ParseConfig) for reading and
// writing: one location is a single copy, two are a redundant pair.
func Open(locations []Location) (*Env, error) {
	regions, files, err := openLocations(locations, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	return &Env{copies: regions, redundant: len(regions) == 2, files: files}, nil
}

func openLocations(locations []Location, flag int) ([]Region, []*os.File, error) {
	var regions []Region
	var files []*os.File
	fail := func(err error) ([]Region, []*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, nil, err
	}
	for _, loc := range locations {
		f, err := os.OpenFile(loc.Device, flag, 0o644)
		if err != nil {
			return fail(fmt.Errorf("ubootenv: %w", err))
		}
		files = append(files, f)
		fi, err := f.Stat()
		if err != nil {
			return fail(fmt.Errorf("ubootenv: %w", err))
		}
		if fi.Mode()&os.ModeCharDevice != 0 {
			return fail(fmt.Errorf("ubootenv %s: character (MTD) devices need erase-before-write, which is not supported", loc.Device))
		}
		off := loc.Offset
		if off < 0 {
			end, err := f.Seek(0, io.SeekEnd)
			if err != nil {
				return fail(fmt.Errorf("ubootenv %s: size: %w", loc.Device, err))
			}
			off += end
		}
		regions = append(regions, Region{Dev: f, Offset: off, Size: loc.Size})
	}
	return regions, files, nil
}

// Close closes the devices Open opened.
func (e *Env) Close() error {
	var errs []error
	for _, f := range e.files {
		errs = append(errs, f.Close())
	}
	e.files = nil
	return errors.Join(errs...)
}

func (e *Env) check() error {
	return checkRegions(e.copies, e.redundant)
}

func checkRegions(copies []Region, redundant bool) error {
	want := 1
	if redundant {
		want = 2
	}
	if len(copies) != want {
		return fmt.Errorf("ubootenv: %d copies, want %d (redundant=%v)", len(copies), want, redundant)
	}
	for _, c := range copies {
		if c.Size != copies[0].Size || c.Size < int64(headerSize(redundant))+1 || c.Offset < 0 {
			return fmt.Errorf("ubootenv: copies must have one valid size and offset, got %+v", copies)
		}
	}
	return nil
}

// where names a copy in errors: its device and offset.
func where(r Region) string {
	name := "device"
	if n, ok := r.Dev.(interface{ Name() string }); ok {
		name = n.Name()
	}
	return fmt.Sprintf("%s offset %#x", name, r.Offset)
}

// copyState is what one copy holds.
type copyState struct {
	vars map[string]string
	flag byte
	err  error
}

// load reads every copy and returns which one readers use.
func (e *Env) load() (int, []copyState, error) {
	if err := e.check(); err != nil {
		return 0, nil, err
	}
	states := make([]copyState, len(e.copies))
	var errs []error
	for i, r := range e.copies {
		buf := make([]byte, r.Size)
		if _, err := r.Dev.ReadAt(buf, r.Offset); err != nil {
			// An unreadable copy is an I/O problem, not a torn write: stop.
			return 0, nil, fmt.Errorf("ubootenv %s: read: %w", where(r), err)
		}
		vars, flag, err := Decode(buf, e.redundant)
		if err != nil {
			err = fmt.Errorf("ubootenv %s: %w", where(r), err)
			errs = append(errs, err)
		}
		states[i] = copyState{vars: vars, flag: flag, err: err}
	}
	switch {
	case len(errs) == len(states):
		return 0, nil, fmt.Errorf("%w: %w", ErrNoValidCopy, errors.Join(errs...))
	case states[0].err != nil:
		return 1, states, nil
	case len(states) == 1 || states[1].err != nil:
		return 0, states, nil
	case newer(states[1].flag, states[0].flag):
		return 1, states, nil
	}
	return 0, states, nil
}

// Vars reads the copies and returns the variables of the one U-Boot uses:
// of two valid copies the one with the newer flag.
func (e *Env) Vars() (map[string]string, error) {
	cur, states, err := e.load()
	if err != nil {
		return nil, err
	}
	return states[cur].vars, nil
}

// Set stores name=value durably and keeps every other variable. An empty
// value removes the variable, as in U-Boot, which has no empty variables.
// When nothing changes, nothing is written. Set fails with ErrNoValidCopy
// rather than invent an environment: Format makes a fresh one.
func (e *Env) Set(name, value string) error {
	if err := checkVar(name, value); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cur, states, err := e.load()
	if err != nil {
		return err
	}
	vars := maps.Clone(states[cur].vars)
	if value == "" {
		delete(vars, name)
	} else {
		vars[name] = value
	}
	target, flag := 0, byte(0)
	if e.redundant {
		target, flag = 1-cur, states[cur].flag+1
	}
	r := e.copies[target]
	if maps.Equal(vars, states[cur].vars) {
		r = e.copies[cur]
	} else if err := writeCopy(r, vars, e.redundant, flag); err != nil {
		return err
	}
	// Sync even when nothing changed: the copy may be in the page cache only.
	if err := r.Dev.Sync(); err != nil {
		return fmt.Errorf("ubootenv %s: sync: %w", where(r), err)
	}
	return nil
}

func writeCopy(r Region, vars map[string]string, redundant bool, flag byte) error {
	buf, err := Encode(vars, int(r.Size), redundant, flag)
	if err != nil {
		return fmt.Errorf("ubootenv %s: %w", where(r), err)
	}
	if _, err := r.Dev.WriteAt(buf, r.Offset); err != nil {
		return fmt.Errorf("ubootenv %s: write: %w", where(r), err)
	}
	return nil
}

// Format writes a fresh environment holding vars to every copy and syncs.
// It is for image builds. A redundant pair gets the same data in both copies,
// the first with flag 1 and the second with flag 0, so U-Boot reads the first
// and the next Set writes the second.
func Format(copies []Region, redundant bool, vars map[string]string) error {
	if err := checkRegions(copies, redundant); err != nil {
		return err
	}
	for i, r := range copies {
		flag := byte(0)
		if redundant && i == 0 {
			flag = 1
		}
		if err := writeCopy(r, vars, redundant, flag); err != nil {
			return err
		}
		if err := r.Dev.Sync(); err != nil {
			return fmt.Errorf("ubootenv %s: sync: %w", where(r), err)
		}
	}
	return nil
}

// Create formats the environment at locations (from ParseConfig) with vars,
// creating missing image files. It writes in place: the copies live at
// offsets inside a larger image or device, whose other bytes stay as they are.
func Create(locations []Location, vars map[string]string) error {
	regions, files, err := openLocations(locations, os.O_RDWR|os.O_CREATE)
	if err != nil {
		return err
	}
	err = Format(regions, len(regions) == 2, vars)
	for _, f := range files {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("ubootenv %s: close: %w", f.Name(), cerr)
		}
	}
	return err
}
