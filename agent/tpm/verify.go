package tpm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/google/go-tpm/tpm2"
)

// Errors Verify tells apart, besides those of Replay (ErrEventLogEdited,
// ErrPCRMismatch) and of the manifest check (ErrUnknownRootHash,
// ErrReleaseMismatch).
var (
	// ErrBadBundle: the bundle is not well formed.
	ErrBadBundle = errors.New("malformed attestation bundle")
	// ErrBadSignature: the quote is not signed by the bundle's AK.
	ErrBadSignature = errors.New("quote signature does not verify")
	// ErrWrongNonce: the bundle answers another challenge than ours.
	ErrWrongNonce = errors.New("wrong nonce")
	// ErrReplayedQuote: the bundle claims our nonce, but the signed quote
	// was made over another one: an old quote passed off as fresh.
	ErrReplayedQuote = errors.New("replayed quote: signed over another nonce")
	// ErrPCRDigest: the PCR values in the bundle are not those the quote signed.
	ErrPCRDigest = errors.New("PCR values do not match the quoted digest")
)

// Verify checks a bundle against the verifier's nonce and the releases it
// trusts (from signed manifests): the AK signature over the quote, the nonce,
// the quoted PCR digest, the replay of Cairn's log against the quoted PCR, and
// that every measured root hash belongs to a trusted release.
//
// The AK is taken from the bundle: Verify proves the quote came from the key
// in it, not that the key lives in a genuine TPM (see docs/tpm.md).
// The firmware log is carried, not replayed.
func Verify(b *Bundle, nonce []byte, known []Manifest) (Result, error) {
	var r Result
	if b.Log != nil && len(b.Log.Events) > 0 {
		last := b.Log.Events[len(b.Log.Events)-1]
		r = Result{Slot: last.Slot, Release: last.Release, RootHash: last.RootHash}
	}
	attest, err := verifyQuoteSignature(b)
	if err != nil {
		return r, err
	}
	if !bytes.Equal(b.Nonce, nonce) {
		return r, fmt.Errorf("%w: bundle answers %x, we asked %x", ErrWrongNonce, []byte(b.Nonce), nonce)
	}
	if !bytes.Equal(attest.ExtraData.Buffer, nonce) {
		return r, fmt.Errorf("%w: quote covers %x", ErrReplayedQuote, attest.ExtraData.Buffer)
	}
	if err := checkPCRDigest(b, attest); err != nil {
		return r, err
	}
	if b.Log == nil {
		return r, fmt.Errorf("%w: no measurement log", ErrBadBundle)
	}
	if err := b.Log.Replay(b.PCRs[PCR]); err != nil {
		return r, fmt.Errorf("measurement log: %w", err)
	}
	r.Measured = true
	if err := matchManifests(b.Log, known); err != nil {
		return r, fmt.Errorf("measurement log: %w", err)
	}
	r.MatchesManifest = true
	return r, nil
}

// verifyQuoteSignature checks that b.Quote is a TPM-generated quote signed by
// the restricted key in b.AKPublic, and returns it decoded.
func verifyQuoteSignature(b *Bundle) (*tpm2.TPMSAttest, error) {
	akPub, err := tpm2.Unmarshal[tpm2.TPMTPublic](b.AKPublic)
	if err != nil {
		return nil, fmt.Errorf("%w: ak_public: %v", ErrBadBundle, err)
	}
	a := akPub.ObjectAttributes
	if !a.Restricted || !a.SignEncrypt || a.Decrypt || !a.FixedTPM || !a.SensitiveDataOrigin {
		return nil, fmt.Errorf("%w: ak_public is not a restricted signing key created in a TPM", ErrBadBundle)
	}
	pub, err := tpm2.Pub(*akPub)
	if err != nil {
		return nil, fmt.Errorf("%w: ak_public: %v", ErrBadBundle, err)
	}
	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](b.Signature)
	if err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrBadBundle, err)
	}
	digest := sha256.Sum256(b.Quote)
	if err := verifySignature(pub, digest[:], sig); err != nil {
		return nil, err
	}
	attest, err := tpm2.Unmarshal[tpm2.TPMSAttest](b.Quote)
	if err != nil {
		return nil, fmt.Errorf("%w: quote: %v", ErrBadBundle, err)
	}
	if attest.Magic != tpm2.TPMGeneratedValue || attest.Type != tpm2.TPMSTAttestQuote {
		return nil, fmt.Errorf("%w: quote is not a TPM-generated TPM2_Quote", ErrBadBundle)
	}
	return attest, nil
}

// verifySignature checks a SHA-256 ECDSA or RSASSA signature.
func verifySignature(pub any, digest []byte, sig *tpm2.TPMTSignature) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		s, err := sig.Signature.ECDSA()
		if sig.SigAlg != tpm2.TPMAlgECDSA || err != nil || s.Hash != tpm2.TPMAlgSHA256 {
			return fmt.Errorf("%w: want an ECDSA SHA-256 signature", ErrBadSignature)
		}
		rr, ss := new(big.Int).SetBytes(s.SignatureR.Buffer), new(big.Int).SetBytes(s.SignatureS.Buffer)
		if !ecdsa.Verify(k, digest, rr, ss) {
			return ErrBadSignature
		}
	case *rsa.PublicKey:
		s, err := sig.Signature.RSASSA()
		if sig.SigAlg != tpm2.TPMAlgRSASSA || err != nil || s.Hash != tpm2.TPMAlgSHA256 {
			return fmt.Errorf("%w: want an RSASSA SHA-256 signature", ErrBadSignature)
		}
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, s.Sig.Buffer); err != nil {
			return ErrBadSignature
		}
	default:
		return fmt.Errorf("%w: AK type %T", ErrBadBundle, pub)
	}
	return nil
}

// checkPCRDigest checks that the quote selects exactly QuotedPCRs and that
// the bundle's PCR values hash to the quoted digest.
func checkPCRDigest(b *Bundle, attest *tpm2.TPMSAttest) error {
	q, err := attest.Attested.Quote()
	if err != nil {
		return fmt.Errorf("%w: quote info: %v", ErrBadBundle, err)
	}
	sel := selectedPCRs(q.PCRSelect)
	if !slices.Equal(sel, QuotedPCRs()) {
		return fmt.Errorf("%w: quote selects PCRs %v, want %v", ErrBadBundle, sel, QuotedPCRs())
	}
	h := sha256.New()
	for _, p := range sel {
		v, ok := b.PCRs[p]
		if !ok || len(v) != sha256.Size {
			return fmt.Errorf("%w: no SHA-256 value for PCR %d", ErrBadBundle, p)
		}
		h.Write(v)
	}
	if !bytes.Equal(h.Sum(nil), q.PCRDigest.Buffer) {
		return ErrPCRDigest
	}
	return nil
}
