package ubootenv

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Location is one line of a fw_env.config: where one copy of the
// environment lives.
type Location struct {
	Device     string // file or block device holding the copy
	Offset     int64  // byte offset of the copy; negative counts from the end of the device
	Size       int64  // size of the copy: header and data area
	SectorSize int64  // erase block size (MTD only; 0 when not given)
	Sectors    int64  // erase blocks for the copy (MTD only; 0 when not given)
}

// ParseConfig reads a fw_env.config: one line per copy, "device offset size
// [sector-size [sectors]]", '#' starting a comment. One line is a single
// copy, two lines are a redundant pair. The numbers are read as fw_setenv
// reads them, so both agree on the same file: the offset is a C integer
// (0x hex, leading 0 octal, else decimal), while size, sector size and
// sectors are always hexadecimal, with or without 0x ("4000" is 16 KiB).
// name is used in errors.
func ParseConfig(name string, r io.Reader) ([]Location, error) {
	var locs []Location
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		loc, err := parseLocation(fields)
		if err != nil {
			return nil, fmt.Errorf("ubootenv %s:%d: %w", name, n, err)
		}
		if len(locs) == 2 {
			return nil, fmt.Errorf("ubootenv %s:%d: a third location; an environment has one or two copies", name, n)
		}
		if len(locs) == 1 && locs[0].Size != loc.Size {
			return nil, fmt.Errorf("ubootenv %s:%d: size %#x differs from the first copy's %#x", name, n, loc.Size, locs[0].Size)
		}
		locs = append(locs, loc)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ubootenv %s: %w", name, err)
	}
	if len(locs) == 0 {
		return nil, fmt.Errorf("ubootenv %s: no environment location", name)
	}
	return locs, nil
}

func parseLocation(fields []string) (Location, error) {
	if len(fields) < 3 || len(fields) > 5 {
		return Location{}, fmt.Errorf("%d fields, want: device offset size [sector-size [sectors]]", len(fields))
	}
	loc := Location{Device: fields[0]}
	off, err := strconv.ParseInt(cInteger(fields[1]), 0, 64)
	if err != nil {
		return Location{}, fmt.Errorf("offset %q: want a decimal, 0x hex or 0 octal number", fields[1])
	}
	loc.Offset = off
	dst := []*int64{&loc.Size, &loc.SectorSize, &loc.Sectors}
	what := []string{"size", "sector size", "sectors"}
	for i, f := range fields[2:] {
		v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(f, "0x"), "0X"), 16, 63)
		if err != nil {
			return Location{}, fmt.Errorf("%s %q: want a hexadecimal number", what[i], f)
		}
		*dst[i] = int64(v)
	}
	if loc.Size == 0 {
		return Location{}, fmt.Errorf("size is zero")
	}
	return loc, nil
}

// cInteger maps C integer syntax onto strconv's base-0 syntax, rejecting the
// forms strconv accepts and C does not (underscores, 0b, 0o).
func cInteger(s string) string {
	digits := strings.TrimLeft(s, "+-")
	if strings.ContainsRune(s, '_') || len(s)-len(digits) > 1 {
		return "!"
	}
	if len(digits) > 1 && digits[0] == '0' && digits[1] != 'x' && digits[1] != 'X' {
		return s[:len(s)-len(digits)] + "0o" + digits[1:]
	}
	return s
}
