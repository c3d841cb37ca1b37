// Package ubootenv reads and writes U-Boot environments (single or redundant copies, as fw_setenv does) byte-exactly.
package ubootenv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
	"strings"
)

var (
	// ErrBadCRC means a copy's stored CRC32 does not match its data.
	ErrBadCRC = errors.New("bad CRC")
	// ErrNoValidCopy means no copy of the environment is valid.
	ErrNoValidCopy = errors.New("no valid copy of the environment")
	// ErrNoSpace means the variables do not fit in the environment's size.
	ErrNoSpace = errors.New("environment full")
	// ErrMalformed means a copy's CRC matches but its data is not a list
	// of name=value entries ending with an empty one.
	ErrMalformed = errors.New("malformed environment data")
)

// headerSize is the bytes before the data: the CRC32, and in redundant
// environments one flag byte.
func headerSize(redundant bool) int {
	if redundant {
		return 5
	}
	return 4
}

// Decode reads one copy of an environment: a little-endian CRC32 (IEEE) of
// the data area, a flag byte if redundant, then the data area of
// "name=value\x00" entries ended by an empty entry; what follows that is
// padding. A later entry for the same name wins, as in U-Boot and
// libubootenv. flag is 0 for single-copy environments.
func Decode(data []byte, redundant bool) (vars map[string]string, flag byte, err error) {
	h := headerSize(redundant)
	if len(data) < h+1 {
		return nil, 0, fmt.Errorf("%w: %d bytes, too short for a header and an end marker", ErrMalformed, len(data))
	}
	stored := binary.LittleEndian.Uint32(data)
	if sum := crc32.ChecksumIEEE(data[h:]); sum != stored {
		return nil, 0, fmt.Errorf("%w: stored %#08x, computed %#08x", ErrBadCRC, stored, sum)
	}
	if redundant {
		flag = data[4]
	}
	vars = make(map[string]string)
	p := h
	for {
		if p >= len(data) {
			return nil, 0, fmt.Errorf("%w: offset %d: no empty entry ends the list", ErrMalformed, p)
		}
		if data[p] == 0 {
			return vars, flag, nil
		}
		n := bytes.IndexByte(data[p:], 0)
		if n < 0 {
			return nil, 0, fmt.Errorf("%w: offset %d: entry not terminated by NUL", ErrMalformed, p)
		}
		name, value, ok := strings.Cut(string(data[p:p+n]), "=")
		if !ok || name == "" {
			return nil, 0, fmt.Errorf("%w: offset %d: entry %q is not name=value", ErrMalformed, p, data[p:p+n])
		}
		vars[name] = value
		p += n + 1
	}
}

// Encode builds one copy of size bytes holding vars sorted by name, as U-Boot
// and fw_setenv write them, padded with zero bytes as both do.
func Encode(vars map[string]string, size int, redundant bool, flag byte) ([]byte, error) {
	h := headerSize(redundant)
	if size < h+1 {
		return nil, fmt.Errorf("ubootenv: size %d too small for a header", size)
	}
	names := make([]string, 0, len(vars))
	for n, v := range vars {
		if err := checkVar(n, v); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]byte, size)
	p := h
	for _, n := range names {
		entry := n + "=" + vars[n]
		// Keep room for this entry's NUL and the final empty entry.
		if p+len(entry)+2 > size {
			return nil, fmt.Errorf("ubootenv: %q does not fit in %d bytes: %w", n, size, ErrNoSpace)
		}
		p += copy(out[p:], entry) + 1
	}
	if redundant {
		out[4] = flag
	}
	binary.LittleEndian.PutUint32(out, crc32.ChecksumIEEE(out[h:]))
	return out, nil
}

func checkVar(name, value string) error {
	if name == "" || strings.ContainsAny(name, "=\x00") {
		return fmt.Errorf("ubootenv: variable name %q is empty or contains '=' or NUL", name)
	}
	if strings.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("ubootenv: value of %q contains NUL", name)
	}
	return nil
}

// newer reports whether a redundant copy with flag a is newer than one with
// flag b, by U-Boot's rule: the counter advances by one on every write and
// wraps from 255 to 0; of equal flags the first copy counts as newer. Boolean
// flags (1 active, 0 obsolete) order the same way.
func newer(a, b byte) bool {
	switch {
	case a == 255 && b == 0:
		return false
	case a == 0 && b == 255:
		return true
	}
	return a > b
}
