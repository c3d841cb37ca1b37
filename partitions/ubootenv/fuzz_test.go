package ubootenv

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"maps"
	"testing"
)

// FuzzDecode checks that what Decode accepts encodes back to a copy that
// decodes to the same variables, in both header layouts.
// Seeds are in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add(rawCopy(64, true, 1, "a=1\x00\x00"), true)
	f.Fuzz(func(t *testing.T, data []byte, redundant bool) {
		roundTrip(t, data, redundant)
		// Random bytes rarely pass the CRC; also try them with a correct one,
		// so the data area parser gets explored.
		if h := headerSize(redundant); len(data) > h {
			fixed := bytes.Clone(data)
			binary.LittleEndian.PutUint32(fixed, crc32.ChecksumIEEE(fixed[h:]))
			roundTrip(t, fixed, redundant)
		}
	})
}

func roundTrip(t *testing.T, data []byte, redundant bool) {
	t.Helper()
	vars, flag, err := Decode(data, redundant)
	if err != nil {
		return
	}
	if !redundant && flag != 0 {
		t.Fatalf("flag %d in a single-copy environment", flag)
	}
	again, err := Encode(vars, len(data), redundant, flag)
	if err != nil {
		// Duplicates dropped make it shorter, never longer.
		t.Fatalf("Encode of decoded variables: %v", err)
	}
	got, gotFlag, err := Decode(again, redundant)
	if err != nil {
		t.Fatalf("Decode(Encode(Decode)): %v", err)
	}
	if !maps.Equal(got, vars) || gotFlag != flag {
		t.Fatalf("round trip changed the environment: %q/%d, want %q/%d", got, gotFlag, vars, flag)
	}
}
