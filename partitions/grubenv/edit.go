package grubenv

import (
	"bytes"
	"fmt"
	"strings"
)

// checkName rejects names GRUB could not read back as the same variable.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("grubenv: empty variable name")
	case name[0] == '#':
		return fmt.Errorf("grubenv: variable name %q starts with '#' (GRUB reads that as a comment)", name)
	case strings.ContainsAny(name, "=\n\\\x00"):
		return fmt.Errorf("grubenv: variable name %q contains '=', a newline, a backslash or NUL", name)
	}
	return nil
}

// find returns the line that sets name.
func (b *Block) find(name string) (line, bool) {
	for _, l := range b.mustLines() {
		if string(b.buf[l.start:l.eq]) == name {
			return l, true
		}
	}
	return line{}, false
}

// Set sets name to value the way grub_envblk_set does: an existing variable
// keeps its place and only the bytes after its value shift when the length
// changes, eating into or giving back '#' padding; a new variable is appended
// at the start of the padding. Replacing a value with one of the same escaped
// length therefore changes only the bytes that differ. Set returns ErrNoSpace,
// and leaves the block unchanged, when the padding is too short.
func (b *Block) Set(name, value string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if strings.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("grubenv: value of %q contains NUL", name)
	}
	enc := escape(value)
	pad := b.padStart()
	free := len(b.buf) - pad
	l, found := b.find(name)
	if !found {
		need := len(name) + 1 + len(enc) + 1
		if need > free {
			return fmt.Errorf("grubenv: set %q: %d bytes needed, %d free: %w", name, need, free, ErrNoSpace)
		}
		p := pad
		p += copy(b.buf[p:], name)
		b.buf[p] = '='
		p++
		p += copy(b.buf[p:], enc)
		b.buf[p] = '\n'
		return nil
	}
	vstart, old := l.eq+1, l.end-(l.eq+1)
	grow := len(enc) - old
	if grow > free {
		return fmt.Errorf("grubenv: set %q: %d more bytes needed, %d free: %w", name, grow, free, ErrNoSpace)
	}
	// Shift the rest of the block (its later lines and the padding) so the
	// new value fits exactly. When shrinking, GRUB refills a range computed
	// from the old padding start; that range is only right while the padding
	// is at least twice the shrink, so this fills the vacated tail instead,
	// which gives the same bytes whenever GRUB's result is a valid block.
	copy(b.buf[vstart+len(enc):], b.buf[vstart+old:])
	if grow < 0 {
		tail := b.buf[len(b.buf)+grow:]
		for i := range tail {
			tail[i] = '#'
		}
	}
	copy(b.buf[vstart:], enc)
	return nil
}

// Delete removes name like grub_envblk_delete: the following lines move up
// and the end of the block is refilled with '#'. Deleting a name that is not
// set does nothing.
func (b *Block) Delete(name string) {
	l, found := b.find(name)
	if !found {
		return
	}
	n := l.end + 1 - l.start
	copy(b.buf[l.start:], b.buf[l.end+1:])
	copy(b.buf[len(b.buf)-n:], bytes.Repeat([]byte{'#'}, n))
}
