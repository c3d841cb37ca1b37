package footer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"fmt"
	"math/big"

	"github.com/cairn-edge/cairn/agent/tpm"
)

// Digest is the SHA-256 of the signed body (header and manifest): what the
// release signature covers, and the footer digest cairn-init measures. The
// PCR policy signatures are not part of it, since they sign a PCR value
// computed from it.
func (f *Footer) Digest() ([]byte, error) {
	body, err := f.body()
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256(body)
	return d[:], nil
}

// Identity is what cairn-init measures for this footer's release booted
// as slot: "A" or "B" from a disk, "pxe" (partitions.SlotNetwork) diskless.
func (f *Footer) Identity(slot string) (tpm.SlotIdentity, error) {
	d, err := f.Digest()
	if err != nil {
		return tpm.SlotIdentity{}, err
	}
	id := tpm.SlotIdentity{Slot: slot, Release: f.Manifest.Version, RootHash: bytes.Clone(f.RootHash), FooterDigest: d}
	return id, id.Validate()
}

// Sign signs the footer with the release key: the body, and the PCR policy
// of each of Slots, so that the release unseals booted from either disk
// slot and booted diskless. Signatures are deterministic (RFC 6979), so the same inputs
// give the same footer bytes.
func (f *Footer) Sign(key *ecdsa.PrivateKey) error {
	if key.Curve != elliptic.P256() {
		return fmt.Errorf("slot footer: release key: want ECDSA P-256")
	}
	if len(f.ManifestJSON) == 0 {
		m, err := f.manifestBytes()
		if err != nil {
			return err
		}
		f.ManifestJSON = m
	}
	d, err := f.Digest()
	if err != nil {
		return err
	}
	if f.Signature, err = signRS(key, d); err != nil {
		return err
	}
	f.Policies = make([]Policy, len(Slots))
	for i, slot := range Slots {
		id, err := f.Identity(slot)
		if err != nil {
			return err
		}
		pcrValue := tpm.ExpectedPCR(id)
		policy, err := tpm.PCRPolicyDigest(pcrValue)
		if err != nil {
			return fmt.Errorf("slot footer: policy for slot %s: %w", slot, err)
		}
		rs, err := signRS(key, authorizeHash(policy))
		if err != nil {
			return err
		}
		f.Policies[i] = Policy{Slot: slot, PCR: tpm.PCR, PCRValue: pcrValue, ApprovedPolicy: policy, R: rs[:32], S: rs[32:]}
	}
	return nil
}

// authorizeHash is the digest a TPM2_PolicyAuthorize ticket is made for,
// as agent/tpm verifies it: SHA-256(approvedPolicy || tpm.PolicyRef).
func authorizeHash(approvedPolicy []byte) []byte {
	h := sha256.New()
	h.Write(approvedPolicy)
	h.Write([]byte(tpm.PolicyRef))
	return h.Sum(nil)
}

// signRS signs digest deterministically and returns r || s, 32 bytes each.
func signRS(key *ecdsa.PrivateKey, digest []byte) ([]byte, error) {
	der, err := key.Sign(nil, digest, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("slot footer: sign: %w", err)
	}
	var sig struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		return nil, fmt.Errorf("slot footer: sign: %w", err)
	}
	out := make([]byte, 64)
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out, nil
}

func verifyRS(pub *ecdsa.PublicKey, digest, r, s []byte) bool {
	return ecdsa.Verify(pub, digest, new(big.Int).SetBytes(r), new(big.Int).SetBytes(s))
}

// Verify checks the release signature and every policy signature with the
// release key's public half, and that each policy approves exactly the PCR
// value this footer measures to in its slot. A footer with LegacyPolicies
// policies (A and B, no diskless boot) verifies too.
func (f *Footer) Verify(pub *ecdsa.PublicKey) error {
	if pub == nil || pub.Curve != elliptic.P256() {
		return fmt.Errorf("slot footer: release key: want ECDSA P-256")
	}
	d, err := f.Digest()
	if err != nil {
		return err
	}
	if len(f.Signature) != 64 || !verifyRS(pub, d, f.Signature[:32], f.Signature[32:]) {
		return fmt.Errorf("%w: release signature", ErrBadSignature)
	}
	if err := checkPolicyCount(len(f.Policies)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for i, p := range f.Policies {
		id, err := f.Identity(Slots[i])
		if err != nil {
			return err
		}
		want := tpm.ExpectedPCR(id)
		policy, err := tpm.PCRPolicyDigest(want)
		if err != nil {
			return err
		}
		switch {
		case p.Slot != Slots[i] || p.PCR != tpm.PCR:
			return fmt.Errorf("%w: policy %d is for slot %q PCR %d, want slot %s PCR %d", ErrBadSignature, i, p.Slot, p.PCR, Slots[i], tpm.PCR)
		case !bytes.Equal(p.PCRValue, want) || !bytes.Equal(p.ApprovedPolicy, policy):
			return fmt.Errorf("%w: policy for slot %s approves PCR value %x, this footer measures to %x", ErrBadSignature, p.Slot, p.PCRValue, want)
		case !verifyRS(pub, authorizeHash(p.ApprovedPolicy), p.R, p.S):
			return fmt.Errorf("%w: policy signature for slot %s", ErrBadSignature, p.Slot)
		}
	}
	return nil
}

// PolicySignatures are the footer's policy approvals in the form
// agent/tpm.Unseal takes.
func (f *Footer) PolicySignatures() []*tpm.PolicySignature {
	out := make([]*tpm.PolicySignature, 0, len(f.Policies))
	for _, p := range f.Policies {
		out = append(out, &tpm.PolicySignature{PCR: p.PCR, PCRValue: p.PCRValue, ApprovedPolicy: p.ApprovedPolicy, R: p.R, S: p.S})
	}
	return out
}
