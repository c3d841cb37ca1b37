// Package footer reads and writes the signed slot footer, the last 64 KiB of
// a root slot that says which release the slot holds, where its dm-verity
// tree is and what its root hash is (docs/formats.md, "Slot footer").
package footer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/images/verity"
	"github.com/cairn-edge/cairn/partitions"
)

// Size is the footer's size: it occupies the last Size bytes of a slot.
const Size = 64 << 10

// Magic starts every footer.
const Magic = "CAIRNSLT"

// Version is the footer format version this package reads and writes.
const Version = 1

// Fixed offsets of the signed header (docs/formats.md, "Slot footer").
const (
	offMagic        = 0
	offVersion      = 8
	offBodySize     = 12
	offSlotSize     = 16
	offDataSize     = 24
	offHashOffset   = 32
	offHashSize     = 40
	offHashType     = 48
	offDataBlock    = 52
	offHashBlock    = 56
	offSaltSize     = 60
	offRootHashSize = 62
	offAlgorithm    = 64
	offRootHash     = 80
	offSalt         = 144
	offManifestSize = 400
	offReserved     = 404
	headerSize      = 512

	algorithmSize = 16
	rootHashMax   = 64
	sigSize       = 64  // ECDSA P-256 r || s
	policySize    = 130 // slot, PCR, PCR value, approved policy, r, s
	// MaxManifestSize is the most manifest JSON a footer holds with a
	// policy for each of Slots.
	MaxManifestSize = Size - headerSize - sigSize - 2 - len(Slots)*policySize
	// LegacyPolicies is the policy count of footers signed before diskless
	// boots were approved: Slots A and B only.
	LegacyPolicies = 2
	// maxBodySize is the largest body any footer can have: one with
	// LegacyPolicies policies.
	maxBodySize = Size - sigSize - 2 - LegacyPolicies*policySize
)

// Slots are the slot names a footer carries a PCR policy signature for, in
// the order they are stored: the two disk slots, then the slot name of a
// diskless network boot. Sign approves all of them; a footer signed before
// diskless boots were approved carries the first LegacyPolicies.
var Slots = [...]string{string(partitions.SlotA), string(partitions.SlotB), string(partitions.SlotNetwork)}

// Errors callers tell apart.
var (
	// ErrNoFooter: the bytes do not start with Magic; the slot was never
	// written (or not by Cairn).
	ErrNoFooter = errors.New("no slot footer")
	// ErrInvalid: a footer whose bytes break the format.
	ErrInvalid = errors.New("invalid slot footer")
	// ErrBadSignature: a footer signature that the release key did not make.
	ErrBadSignature = errors.New("slot footer signature does not verify with the release key")
	// ErrPolicyCount: a footer whose policy count is neither LegacyPolicies
	// nor len(Slots). It wraps ErrInvalid too.
	ErrPolicyCount = errors.New("unsupported policy count")
	// ErrPolicySlot: a policy record for another slot than Slots names at
	// its place. It wraps ErrInvalid too.
	ErrPolicySlot = errors.New("policy record for the wrong slot")
)

// Footer is a decoded slot footer. Offsets are from the start of the slot.
type Footer struct {
	SlotSize   int64 // bytes of the whole slot, footer included
	DataSize   int64 // bytes of the filesystem, a whole number of 4096-byte blocks
	HashOffset int64 // where the dm-verity tree starts
	HashSize   int64 // bytes of the dm-verity tree
	RootHash   []byte
	Salt       []byte
	// Manifest is the release manifest of the slot's content; its image
	// artifact is empty, since a slot cannot hold its own digest.
	Manifest *release.Manifest
	// ManifestJSON is the manifest as signed; Encode writes Manifest's JSON
	// when it is empty.
	ManifestJSON []byte
	// Signature is the release key's ECDSA P-256 signature (r || s) over
	// the SHA-256 of the signed header and manifest (see Digest).
	Signature []byte
	// Policies are the release key's approvals of the PCR value this
	// release measures to when booted as each of Slots, in that order: A,
	// B and pxe (a diskless network boot), or only A and B in a footer
	// signed before diskless boots were approved.
	Policies []Policy
}

// Policy is the release key's approval of the TPM policy "PCR holds
// PCRValue" (see agent/tpm.SignPCRPolicy) for the footer's release booted
// from Slot.
type Policy struct {
	Slot           string
	PCR            int
	PCRValue       []byte // 32 bytes
	ApprovedPolicy []byte // 32 bytes: TPM2_PolicyPCR digest for PCRValue
	R, S           []byte // 32 bytes each
}

func invalid(off int, field, format string, args ...any) error {
	return fmt.Errorf("%w: offset %d (%s): %s", ErrInvalid, off, field, fmt.Sprintf(format, args...))
}

// invalidPolicy is invalid for the errors callers tell apart by kind.
func invalidPolicy(kind error, off int, field, format string, args ...any) error {
	return fmt.Errorf("%w: offset %d (%s): %w: %s", ErrInvalid, off, field, kind, fmt.Sprintf(format, args...))
}

// slotCode is how a policy record stores its slot: the first byte of the
// slot name ('A', 'B', 'p').
func slotCode(slot string) byte { return slot[0] }

// checkPolicyCount accepts the policy counts a footer may have.
func checkPolicyCount(n int) error {
	if n != LegacyPolicies && n != len(Slots) {
		return fmt.Errorf("%w: %d, want %d (%s) or %d (%s)", ErrPolicyCount, n,
			LegacyPolicies, strings.Join(Slots[:LegacyPolicies], ", "), len(Slots), strings.Join(Slots[:], ", "))
	}
	return nil
}

// VerityParams are the dm-verity parameters the footer records.
func (f *Footer) VerityParams() verity.Params { return verity.Params{Salt: f.Salt} }

// manifestBytes is the manifest as stored.
func (f *Footer) manifestBytes() ([]byte, error) {
	if len(f.ManifestJSON) > 0 {
		return f.ManifestJSON, nil
	}
	if f.Manifest == nil {
		return nil, fmt.Errorf("%w: no manifest", ErrInvalid)
	}
	return json.Marshal(f.Manifest)
}

// body encodes the signed part: header and manifest.
func (f *Footer) body() ([]byte, error) {
	m, err := f.manifestBytes()
	if err != nil {
		return nil, err
	}
	b := make([]byte, headerSize+len(m))
	le := binary.LittleEndian
	copy(b[offMagic:], Magic)
	le.PutUint32(b[offVersion:], Version)
	le.PutUint32(b[offBodySize:], uint32(len(b)))
	le.PutUint64(b[offSlotSize:], uint64(f.SlotSize))
	le.PutUint64(b[offDataSize:], uint64(f.DataSize))
	le.PutUint64(b[offHashOffset:], uint64(f.HashOffset))
	le.PutUint64(b[offHashSize:], uint64(f.HashSize))
	le.PutUint32(b[offHashType:], verity.HashType)
	le.PutUint32(b[offDataBlock:], verity.BlockSize)
	le.PutUint32(b[offHashBlock:], verity.BlockSize)
	le.PutUint16(b[offSaltSize:], uint16(len(f.Salt)))
	le.PutUint16(b[offRootHashSize:], uint16(len(f.RootHash)))
	copy(b[offAlgorithm:offAlgorithm+algorithmSize], verity.Algorithm)
	copy(b[offRootHash:offRootHash+rootHashMax], f.RootHash)
	copy(b[offSalt:offSalt+verity.MaxSaltSize], f.Salt)
	le.PutUint32(b[offManifestSize:], uint32(len(m)))
	copy(b[headerSize:], m)
	// Decoding what we encode is the one validation path for both sides.
	if _, err := decodeBody(b); err != nil {
		return nil, err
	}
	return b, nil
}

// Encode returns the Size bytes of a signed footer.
func (f *Footer) Encode() ([]byte, error) {
	body, err := f.body()
	if err != nil {
		return nil, err
	}
	if len(f.Signature) != sigSize {
		return nil, fmt.Errorf("%w: not signed", ErrInvalid)
	}
	if err := checkPolicyCount(len(f.Policies)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if end := len(body) + sigSize + 2 + len(f.Policies)*policySize; end > Size {
		return nil, fmt.Errorf("%w: manifest of %d bytes: %d policies leave room for %d", ErrInvalid,
			len(body)-headerSize, len(f.Policies), Size-sigSize-2-len(f.Policies)*policySize-headerSize)
	}
	out := make([]byte, Size)
	copy(out, body)
	p := len(body)
	copy(out[p:], f.Signature)
	p += sigSize
	binary.LittleEndian.PutUint16(out[p:], uint16(len(f.Policies)))
	p += 2
	for i, pol := range f.Policies {
		if pol.Slot != Slots[i] {
			return nil, fmt.Errorf("%w: %w: policy signature %d is for slot %q, want %q", ErrInvalid, ErrPolicySlot, i, pol.Slot, Slots[i])
		}
		if pol.PCR < 0 || pol.PCR > 255 || len(pol.PCRValue) != 32 ||
			len(pol.ApprovedPolicy) != 32 || len(pol.R) != 32 || len(pol.S) != 32 {
			return nil, fmt.Errorf("%w: policy signature %d (slot %q) is incomplete", ErrInvalid, i, pol.Slot)
		}
		out[p] = slotCode(pol.Slot)
		out[p+1] = byte(pol.PCR)
		copy(out[p+2:], pol.PCRValue)
		copy(out[p+34:], pol.ApprovedPolicy)
		copy(out[p+66:], pol.R)
		copy(out[p+98:], pol.S)
		p += policySize
	}
	return out, nil
}

// Decode parses and validates a footer; every error names the byte offset
// and the field. It checks the format only: Verify checks the signatures.
func Decode(b []byte) (*Footer, error) {
	if len(b) != Size {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrInvalid, len(b), Size)
	}
	if !bytes.Equal(b[:len(Magic)], []byte(Magic)) {
		return nil, fmt.Errorf("%w: offset 0: magic %q, want %q", ErrNoFooter, b[:len(Magic)], Magic)
	}
	bodySize := int(binary.LittleEndian.Uint32(b[offBodySize:]))
	if bodySize < headerSize || bodySize > maxBodySize {
		return nil, invalid(offBodySize, "body size", "%d: want %d to %d", bodySize, headerSize, maxBodySize)
	}
	f, err := decodeBody(b[:bodySize])
	if err != nil {
		return nil, err
	}
	p := bodySize
	f.Signature = bytes.Clone(b[p : p+sigSize])
	p += sigSize
	n := int(binary.LittleEndian.Uint16(b[p:]))
	if err := checkPolicyCount(n); err != nil {
		return nil, fmt.Errorf("%w: offset %d (policy count): %w", ErrInvalid, p, err)
	}
	if end := p + 2 + n*policySize; end > Size {
		return nil, invalidPolicy(ErrPolicyCount, p, "policy count", "%d records end at %d, past the footer's %d bytes", n, end, Size)
	}
	p += 2
	f.Policies = make([]Policy, n)
	for i := range f.Policies {
		if got, want := b[p], slotCode(Slots[i]); got != want {
			return nil, invalidPolicy(ErrPolicySlot, p, "policy slot", "%q, want %q (slot %s)", got, want, Slots[i])
		}
		f.Policies[i] = Policy{
			Slot: Slots[i], PCR: int(b[p+1]),
			PCRValue:       bytes.Clone(b[p+2 : p+34]),
			ApprovedPolicy: bytes.Clone(b[p+34 : p+66]),
			R:              bytes.Clone(b[p+66 : p+98]),
			S:              bytes.Clone(b[p+98 : p+130]),
		}
		p += policySize
	}
	if i := bytes.IndexFunc(b[p:], func(r rune) bool { return r != 0 }); i >= 0 {
		return nil, invalid(p+i, "padding", "not zero")
	}
	return f, nil
}
