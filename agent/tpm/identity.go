package tpm

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// SlotIdentity is what cairn-init measures before mounting root: which slot
// booted and what the slot's signed footer says is in it.
type SlotIdentity struct {
	Slot         string // "A" or "B"; "pxe" (partitions.SlotNetwork) when booted diskless
	Release      string // release version from the slot's manifest, e.g. "1.3.0"
	RootHash     []byte // dm-verity root hash of the slot's filesystem
	FooterDigest []byte // SHA-256 of the slot footer (manifest and its signature)
}

// EventType names the encoding of a SlotIdentity that is hashed into PCR.
const EventType = "cairn-slot-v1"

// ErrInvalidIdentity is returned for a SlotIdentity that cannot be measured.
var ErrInvalidIdentity = errors.New("invalid slot identity")

// Validate checks that every field is present and that the text fields
// cannot change the meaning of the canonical encoding.
func (id SlotIdentity) Validate() error {
	for _, f := range []struct{ key, val string }{{"slot", id.Slot}, {"release", id.Release}} {
		if f.val == "" {
			return fmt.Errorf("%w: %s is empty", ErrInvalidIdentity, f.key)
		}
		for _, r := range f.val {
			if r <= ' ' || r > '~' {
				return fmt.Errorf("%w: %s %q: only printable ASCII without spaces", ErrInvalidIdentity, f.key, f.val)
			}
		}
	}
	if len(id.RootHash) == 0 {
		return fmt.Errorf("%w: root hash is empty", ErrInvalidIdentity)
	}
	if len(id.FooterDigest) != sha256.Size {
		return fmt.Errorf("%w: footer digest is %d bytes, want %d", ErrInvalidIdentity, len(id.FooterDigest), sha256.Size)
	}
	return nil
}

// Canonical is the byte string whose SHA-256 is extended into PCR: one
// "key=value" line per field after an "cairn-slot-v1" line, hashes in
// lowercase hex, every line ending in "\n". docs/formats.md shows how to
// recompute it with printf and sha256sum.
func (id SlotIdentity) Canonical() []byte {
	var b strings.Builder
	b.WriteString(EventType + "\n")
	b.WriteString("slot=" + id.Slot + "\n")
	b.WriteString("release=" + id.Release + "\n")
	b.WriteString("root_hash=" + hex.EncodeToString(id.RootHash) + "\n")
	b.WriteString("footer_digest=" + hex.EncodeToString(id.FooterDigest) + "\n")
	return []byte(b.String())
}

// Digest is the SHA-256 of Canonical: the value extended into PCR.
func (id SlotIdentity) Digest() []byte {
	d := sha256.Sum256(id.Canonical())
	return d[:]
}

// ExpectedPCR is the PCR value after a boot that measured ids in order,
// starting from the all-zero reset value. Release tooling signs policies over
// it (see SignPCRPolicy).
func ExpectedPCR(ids ...SlotIdentity) []byte {
	v := make([]byte, sha256.Size)
	for _, id := range ids {
		v = extendValue(v, id.Digest())
	}
	return v
}

// extendValue is what TPM2_PCR_Extend computes in the SHA-256 bank.
func extendValue(pcr, digest []byte) []byte {
	h := sha256.New()
	h.Write(pcr)
	h.Write(digest)
	return h.Sum(nil)
}
