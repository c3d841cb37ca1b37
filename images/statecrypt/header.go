// Package statecrypt reads and writes the Cairn header at the start of an
// encrypted state partition: the TPM-sealed dm-crypt key and where the
// encrypted payload begins (docs/formats.md, "Encrypted state partition"),
// and the report in which cairn-init tells the agent how it opened it.
package statecrypt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cairn-edge/cairn/agent/tpm"
)

// The header's fixed values.
const (
	Magic   = "CAIRNENC"
	Version = 1
	// Cipher is the dm-crypt cipher of the payload; its key is KeySize bytes.
	Cipher  = "aes-xts-plain64"
	KeySize = 64
	// PayloadOffset is where the encrypted payload starts: 1 MiB, so the
	// payload stays aligned for any erase block and the header has room.
	PayloadOffset = 1 << 20
	// fixedSize is magic, version, JSON length, payload offset and the
	// SHA-256 of all of the header but itself.
	fixedSize = 8 + 4 + 4 + 8 + sha256.Size
)

// Errors a reader tells apart.
var (
	ErrBadMagic           = errors.New("not a Cairn encrypted state partition (bad magic)")
	ErrTruncated          = errors.New("state partition header truncated")
	ErrUnsupportedVersion = errors.New("unsupported state partition header version")
	ErrChecksum           = errors.New("state partition header checksum mismatch")
)

// Header is the Cairn header of an encrypted state partition.
type Header struct {
	// PayloadOffset is the byte offset of the dm-crypt payload.
	PayloadOffset uint64 `json:"-"`
	// Cipher is the dm-crypt cipher, Cipher for version 1.
	Cipher string `json:"cipher"`
	// Key is the payload key, sealed by the TPM to the release key's policy.
	Key *tpm.Sealed `json:"sealed_key"`
}

// Encode returns the header's bytes; they fit before PayloadOffset.
func (h *Header) Encode() ([]byte, error) {
	if h.Key == nil || h.Cipher == "" || h.PayloadOffset == 0 {
		return nil, fmt.Errorf("state partition header: sealed key, cipher and payload offset are required")
	}
	body, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("state partition header: %w", err)
	}
	if uint64(fixedSize+len(body)) > h.PayloadOffset {
		return nil, fmt.Errorf("state partition header: %d bytes do not fit before the payload at %d", fixedSize+len(body), h.PayloadOffset)
	}
	b := make([]byte, fixedSize, fixedSize+len(body))
	copy(b, Magic)
	binary.BigEndian.PutUint32(b[8:], Version)
	binary.BigEndian.PutUint32(b[12:], uint32(len(body)))
	binary.BigEndian.PutUint64(b[16:], h.PayloadOffset)
	b = append(b, body...)
	sum := checksum(b)
	copy(b[24:fixedSize], sum[:])
	return b, nil
}

// Decode reads a header from the start of a partition (at least the
// header's bytes; more is ignored).
func Decode(b []byte) (*Header, error) {
	if len(b) < len(Magic) {
		return nil, fmt.Errorf("%w: %d bytes", ErrTruncated, len(b))
	}
	if !bytes.Equal(b[:len(Magic)], []byte(Magic)) {
		return nil, fmt.Errorf("offset 0: %w", ErrBadMagic)
	}
	if len(b) < fixedSize {
		return nil, fmt.Errorf("%w: %d bytes, the fixed part has %d", ErrTruncated, len(b), fixedSize)
	}
	if v := binary.BigEndian.Uint32(b[8:]); v != Version {
		return nil, fmt.Errorf("offset 8: %w: %d, want %d", ErrUnsupportedVersion, v, Version)
	}
	n := int(binary.BigEndian.Uint32(b[12:]))
	if len(b)-fixedSize < n {
		return nil, fmt.Errorf("%w: JSON of %d bytes at offset %d, %d present", ErrTruncated, n, fixedSize, len(b)-fixedSize)
	}
	b = b[:fixedSize+n]
	if sum := checksum(b); !bytes.Equal(sum[:], b[24:fixedSize]) {
		return nil, fmt.Errorf("offset 24: %w", ErrChecksum)
	}
	h := &Header{PayloadOffset: binary.BigEndian.Uint64(b[16:])}
	if err := json.Unmarshal(b[fixedSize:], h); err != nil {
		return nil, fmt.Errorf("offset %d: state partition header JSON: %w", fixedSize, err)
	}
	switch {
	case h.Cipher != Cipher:
		return nil, fmt.Errorf("offset %d: cipher %q, want %q", fixedSize, h.Cipher, Cipher)
	case h.Key == nil || len(h.Key.Public) == 0 || len(h.Key.Private) == 0:
		return nil, fmt.Errorf("offset %d: sealed key missing", fixedSize)
	case h.PayloadOffset < uint64(len(b)) || h.PayloadOffset%4096 != 0:
		return nil, fmt.Errorf("offset 16: payload offset %d is inside the header or not 4096-aligned", h.PayloadOffset)
	}
	return h, nil
}

// checksum is SHA-256 of b with its checksum field taken as zeros.
func checksum(b []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(b[:24])
	h.Write(make([]byte, sha256.Size))
	h.Write(b[fixedSize:])
	var s [sha256.Size]byte
	copy(s[:], h.Sum(nil))
	return s
}
