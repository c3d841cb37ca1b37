package ubootenv

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"maps"
	"strings"
	"testing"
)

// rawCopy builds a copy with the given data area and a correct CRC.
func rawCopy(size int, redundant bool, flag byte, data string) []byte {
	h := headerSize(redundant)
	out := make([]byte, size)
	copy(out[h:], data)
	if redundant {
		out[4] = flag
	}
	binary.LittleEndian.PutUint32(out, crc32.ChecksumIEEE(out[h:]))
	return out
}

func TestDecodeReadsEntriesUpToTheEmptyOne(t *testing.T) {
	data := rawCopy(64, true, 7, "a=1\x00b=x=y z\x00a=2\x00\x00stale=9\x00\x00")
	vars, flag, err := Decode(data, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"a": "2", "b": "x=y z"}; !maps.Equal(vars, want) || flag != 7 {
		t.Errorf("Decode = %q, flag %d; want %q, flag 7", vars, flag, want)
	}
}

func TestDecodeRejectsMalformedCopies(t *testing.T) {
	badCRC := rawCopy(64, false, 0, "a=1\x00\x00")
	badCRC[10] ^= 1
	tests := []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"too short", make([]byte, 4), ErrMalformed, "too short"},
		{"bad CRC", badCRC, ErrBadCRC, "stored 0x"},
		{"entry without '='", rawCopy(64, false, 0, "a=1\x00novalue\x00\x00"), ErrMalformed, "offset 8: entry \"novalue\""},
		{"empty name", rawCopy(64, false, 0, "=1\x00\x00"), ErrMalformed, "offset 4:"},
		{"no end marker", rawCopy(8, false, 0, "a=1\x00"), ErrMalformed, "offset 8: no empty entry"},
		{"unterminated entry", rawCopy(8, false, 0, "a=12"), ErrMalformed, "offset 4: entry not terminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Decode(tt.data, false)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Decode = %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
}

func TestEncodeSortsPadsWithZeroAndRoundTrips(t *testing.T) {
	vars := map[string]string{"cairn_b_ok": "0", "cairn_a_ok": "1", "bootcmd": "run x; run y"}
	data, err := Encode(vars, 64, true, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := rawCopy(64, true, 3, "bootcmd=run x; run y\x00cairn_a_ok=1\x00cairn_b_ok=0\x00\x00")
	if string(data) != string(want) {
		t.Errorf("Encode = %q\nwant     %q", data, want)
	}
	got, flag, err := Decode(data, true)
	if err != nil || !maps.Equal(got, vars) || flag != 3 {
		t.Errorf("Decode(Encode) = %q, %d, %v", got, flag, err)
	}
}

func TestEncodeReportsNoSpace(t *testing.T) {
	// 4 bytes CRC + "a=1\0" + end marker fills 9 bytes exactly.
	if _, err := Encode(map[string]string{"a": "1"}, 9, false, 0); err != nil {
		t.Fatalf("an exactly fitting environment: %v", err)
	}
	if _, err := Encode(map[string]string{"a": "12"}, 9, false, 0); !errors.Is(err, ErrNoSpace) {
		t.Errorf("Encode of a too large environment = %v, want ErrNoSpace", err)
	}
	for _, bad := range []map[string]string{{"": "1"}, {"a=b": "1"}, {"a": "x\x00"}} {
		if _, err := Encode(bad, 64, false, 0); err == nil {
			t.Errorf("Encode(%q) accepted", bad)
		}
	}
}

func TestNewerFollowsUBootFlagOrder(t *testing.T) {
	tests := []struct {
		a, b byte
		want bool
	}{
		{2, 1, true}, {1, 2, false}, {0, 255, true}, {255, 0, false},
		{1, 0, true}, {5, 5, false}, {128, 3, true},
	}
	for _, tt := range tests {
		if got := newer(tt.a, tt.b); got != tt.want {
			t.Errorf("newer(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
