package statecrypt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cairn-edge/cairn/agent/tpm"
)

func testHeader() *Header {
	return &Header{PayloadOffset: PayloadOffset, Cipher: Cipher,
		Key: &tpm.Sealed{Public: []byte("sealed public part"), Private: []byte("sealed private part")}}
}

func TestHeaderRoundTrip(t *testing.T) {
	b, err := testHeader().Encode()
	if err != nil {
		t.Fatal(err)
	}
	// The header is read from the start of the partition: bytes after it
	// (the rest of the first MiB) do not matter.
	h, err := Decode(append(b, make([]byte, 4096)...))
	if err != nil {
		t.Fatal(err)
	}
	if h.PayloadOffset != PayloadOffset || h.Cipher != Cipher || !bytes.Equal(h.Key.Private, []byte("sealed private part")) {
		t.Fatalf("decoded %+v", h)
	}
}

func TestBadHeadersAreNamed(t *testing.T) {
	good, err := testHeader().Encode()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty partition", nil, ErrTruncated},
		{"ext4, never encrypted", make([]byte, 4096), ErrBadMagic},
		{"bad magic", edit(func(b []byte) []byte { b[0] = 'X'; return b }), ErrBadMagic},
		{"fixed part truncated", good[:20], ErrTruncated},
		{"JSON truncated", good[:len(good)-1], ErrTruncated},
		{"wrong version", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 2); return b }), ErrUnsupportedVersion},
		{"flipped JSON byte", edit(func(b []byte) []byte { b[len(b)-3] ^= 1; return b }), ErrChecksum},
		{"flipped payload offset", edit(func(b []byte) []byte { b[17] ^= 1; return b }), ErrChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("Decode: %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	good, err := testHeader().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Decode(b)
		if err != nil {
			return
		}
		again, err := h.Encode()
		if err != nil {
			t.Fatalf("a decoded header does not encode: %v", err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("re-encoded header does not decode: %v", err)
		}
	})
}
