package ubootenv

import (
	"bytes"
	"errors"
	"maps"
	"strings"
	"testing"
)

// memDevice is a device in memory that writes at most budget more bytes and
// then fails, like a power cut in the middle of a write.
type memDevice struct {
	buf    []byte
	budget int
	writes int
}

var errPowerCut = errors.New("power cut")

func (d *memDevice) ReadAt(p []byte, off int64) (int, error) {
	return copy(p, d.buf[off:]), nil
}

func (d *memDevice) WriteAt(p []byte, off int64) (int, error) {
	d.writes++
	n := min(len(p), d.budget)
	copy(d.buf[off:], p[:n])
	d.budget -= n
	if n < len(p) {
		return n, errPowerCut
	}
	return n, nil
}

func (d *memDevice) Sync() error { return nil }

const memSize = 0x1000

func pair(d *memDevice) []Region {
	return []Region{{Dev: d, Offset: 0, Size: memSize}, {Dev: d, Offset: memSize, Size: memSize}}
}

func TestPowerCutDuringRedundantSetKeepsTheOldEnvironment(t *testing.T) {
	base := &memDevice{buf: make([]byte, 2*memSize), budget: 1 << 30}
	older := map[string]string{"cairn_a_priority": "1", "cairn_a_ok": "1"}
	if err := Format(pair(base), true, older); err != nil {
		t.Fatal(err)
	}
	if err := New(pair(base), true).Set("cairn_b_priority", "2"); err != nil {
		t.Fatal(err)
	}
	old := maps.Clone(older)
	old["cairn_b_priority"] = "2"
	next := maps.Clone(old)
	next["cairn_b_tries"] = "3"
	// The write goes to copy 0 with flag 3. Once every byte that differs from
	// what copy 0 held is written, the copy is complete and the new one.
	full, err := Encode(next, memSize, true, 3)
	if err != nil {
		t.Fatal(err)
	}
	complete := 0
	for i := range full {
		if full[i] != base.buf[i] {
			complete = i + 1
		}
	}
	for k := 0; k <= memSize; k++ {
		dev := &memDevice{buf: bytes.Clone(base.buf), budget: k}
		err := New(pair(dev), true).Set("cairn_b_tries", "3")
		if k < memSize && !errors.Is(err, errPowerCut) {
			t.Fatalf("cut after %d bytes: Set = %v, want the power cut error", k, err)
		}
		got, err := New(pair(dev), true).Vars()
		if err != nil {
			t.Fatalf("cut after %d bytes: no environment left: %v", k, err)
		}
		want := old
		if k >= complete {
			want = next
		}
		if !maps.Equal(got, want) {
			t.Fatalf("cut after %d bytes (copy complete at %d): Vars = %q, want %q", k, complete, got, want)
		}
	}
}

func TestNoValidCopyNamesDeviceAndOffset(t *testing.T) {
	dev := &memDevice{buf: make([]byte, 2*memSize)}
	_, err := New(pair(dev), true).Vars()
	if !errors.Is(err, ErrNoValidCopy) || !errors.Is(err, ErrBadCRC) {
		t.Fatalf("Vars of a blank device = %v, want ErrNoValidCopy and ErrBadCRC", err)
	}
	for _, want := range []string{"device offset 0x0: bad CRC", "device offset 0x1000: bad CRC"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if err := New(pair(dev), true).Set("a", "1"); !errors.Is(err, ErrNoValidCopy) || dev.writes != 0 {
		t.Errorf("Set on a blank device = %v after %d writes, want ErrNoValidCopy and no write", err, dev.writes)
	}
}

func TestSetThatDoesNotFitWritesNothing(t *testing.T) {
	dev := &memDevice{buf: make([]byte, 2*memSize), budget: 1 << 30}
	if err := Format(pair(dev), true, map[string]string{"a": "1"}); err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(dev.buf)
	err := New(pair(dev), true).Set("big", strings.Repeat("x", memSize))
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Set of a too large value = %v, want ErrNoSpace", err)
	}
	if !bytes.Equal(before, dev.buf) {
		t.Errorf("the device changed although the value did not fit")
	}
}

func TestSetOfAnUnchangedValueWritesNothing(t *testing.T) {
	dev := &memDevice{buf: make([]byte, 2*memSize), budget: 1 << 30}
	if err := Format(pair(dev), true, map[string]string{"a": "1"}); err != nil {
		t.Fatal(err)
	}
	dev.writes = 0
	env := New(pair(dev), true)
	if err := env.Set("a", "1"); err != nil {
		t.Fatal(err)
	}
	if err := env.Set("absent", ""); err != nil {
		t.Fatal(err)
	}
	if dev.writes != 0 {
		t.Errorf("%d writes for values that did not change", dev.writes)
	}
}

func TestInconsistentRegionsAreRejected(t *testing.T) {
	dev := &memDevice{buf: make([]byte, 2*memSize)}
	for _, tc := range []struct {
		regions   []Region
		redundant bool
	}{
		{pair(dev), false},
		{pair(dev)[:1], true},
		{[]Region{{Dev: dev, Size: memSize}, {Dev: dev, Offset: memSize, Size: 16}}, true},
	} {
		if _, err := New(tc.regions, tc.redundant).Vars(); err == nil {
			t.Errorf("Vars over %d regions, redundant=%v: no error", len(tc.regions), tc.redundant)
		}
	}
	if _, err := Open([]Location{{Device: "/dev/null", Size: memSize}}); err == nil {
		t.Errorf("Open of a character device: no error")
	}
}
