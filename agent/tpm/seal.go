package tpm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// PolicyRef qualifies every release policy signature, so a signature made by
// the policy signing key for anything else never authorizes a Cairn policy.
const PolicyRef = "cairn-pcr-policy-v1"

// Errors unsealing tells apart.
var (
	// ErrNoApprovedPolicy: no policy signature names the PCR value this boot
	// measured: the slot is not a signed release (or its signature is missing).
	ErrNoApprovedPolicy = errors.New("no signed PCR policy for this boot's measurement")
	// ErrPolicyNotSatisfied: the TPM refused the signed policy for this boot.
	ErrPolicyNotSatisfied = errors.New("TPM refused the PCR policy")
	// ErrBadPolicySignature: the policy signature was not made by the policy signing key.
	ErrBadPolicySignature = errors.New("policy signature does not verify with the policy signing key")
)

// PolicySignature is what a release carries for each slot it may be
// installed in: the policy signing key's approval of "PCR holds PCRValue".
type PolicySignature struct {
	PCR            int `json:"pcr"`
	PCRValue       Hex `json:"pcr_value"`       // the Cairn PCR after measuring the release in that slot
	ApprovedPolicy Hex `json:"approved_policy"` // TPM2_PolicyPCR digest for PCRValue
	R              Hex `json:"r"`               // ECDSA P-256 signature over SHA-256(ApprovedPolicy || PolicyRef)
	S              Hex `json:"s"`
}

// PCRPolicyDigest is the TPM2_PolicyPCR policy digest that PCR equals pcrValue.
func PCRPolicyDigest(pcrValue []byte) ([]byte, error) {
	calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256(pcrValue)
	if err := (tpm2.PolicyPCR{PcrDigest: tpm2.TPM2BDigest{Buffer: d[:]}, Pcrs: pcrSelection(PCR)}).Update(calc); err != nil {
		return nil, err
	}
	return calc.Hash().Digest, nil
}

// SignPCRPolicy is the release side: it approves the policy "PCR holds
// pcrValue" (see ExpectedPCR) with the policy signing key.
func SignPCRPolicy(key *ecdsa.PrivateKey, pcrValue []byte) (*PolicySignature, error) {
	if key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("policy signing key: want ECDSA P-256")
	}
	policy, err := PCRPolicyDigest(pcrValue)
	if err != nil {
		return nil, fmt.Errorf("sign PCR policy: %w", err)
	}
	aHash := authorizeHash(policy)
	r, s, err := ecdsa.Sign(rand.Reader, key, aHash)
	if err != nil {
		return nil, fmt.Errorf("sign PCR policy: %w", err)
	}
	return &PolicySignature{PCR: PCR, PCRValue: pcrValue, ApprovedPolicy: policy, R: r.FillBytes(make([]byte, 32)), S: s.FillBytes(make([]byte, 32))}, nil
}

// authorizeHash is the digest TPM2_PolicyAuthorize needs a signature over.
func authorizeHash(approvedPolicy []byte) []byte {
	h := sha256.New()
	h.Write(approvedPolicy)
	h.Write([]byte(PolicyRef))
	return h.Sum(nil)
}

// policyKeyPublic is the TPM form of the policy signing key. Its name, and so
// every sealed object's policy, depends on each field: never change them.
func policyKeyPublic(pub *ecdsa.PublicKey) (tpm2.TPMTPublic, error) {
	if pub.Curve != elliptic.P256() {
		return tpm2.TPMTPublic{}, fmt.Errorf("policy signing key: want ECDSA P-256")
	}
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		return tpm2.TPMTPublic{}, fmt.Errorf("policy signing key: %w", err)
	}
	return tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgECC,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{SignEncrypt: true, UserWithAuth: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: raw[1:33]},
			Y: tpm2.TPM2BECCParameter{Buffer: raw[33:]},
		}),
	}, nil
}

// authorizePolicy is the policy digest of "a PCR policy signed by pub":
// TPM2_PolicyAuthorize with PolicyRef, followed by extra commands.
func authorizePolicy(pub *ecdsa.PublicKey, then ...tpm2.PolicyCommand) ([]byte, error) {
	tp, err := policyKeyPublic(pub)
	if err != nil {
		return nil, err
	}
	name, err := tpm2.ObjectName(&tp)
	if err != nil {
		return nil, err
	}
	calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		return nil, err
	}
	cmds := append([]tpm2.PolicyCommand{tpm2.PolicyAuthorize{
		PolicyRef: tpm2.TPM2BDigest{Buffer: []byte(PolicyRef)},
		KeySign:   *name,
	}}, then...)
	for _, c := range cmds {
		if err := c.Update(calc); err != nil {
			return nil, err
		}
	}
	return calc.Hash().Digest, nil
}

// pickPolicy returns the signature, among approved, for the value PCR holds now.
func (t *TPM) pickPolicy(approved []*PolicySignature) (*PolicySignature, error) {
	v, err := t.ReadPCRs(PCR)
	if err != nil {
		return nil, err
	}
	for _, s := range approved {
		if s.PCR == PCR && bytes.Equal(s.PCRValue, v[PCR]) {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w: PCR %d is %x", ErrNoApprovedPolicy, PCR, v[PCR])
}

// satisfyReleasePolicy runs PolicyPCR then PolicyAuthorize in session, with
// the ticket the TPM gives for sig. The TPM itself checks the PCR: sig only
// tells it which value was approved.
func (t *TPM) satisfyReleasePolicy(session tpm2.TPMHandle, policyKey *ecdsa.PublicKey, sig *PolicySignature) error {
	pub, err := policyKeyPublic(policyKey)
	if err != nil {
		return err
	}
	key, err := tpm2.LoadExternal{InPublic: tpm2.New2B(pub), Hierarchy: tpm2.TPMRHOwner}.Execute(t.t)
	if err != nil {
		return fmt.Errorf("load policy signing key: %w", err)
	}
	defer t.flush(key.ObjectHandle)
	aHash := authorizeHash(sig.ApprovedPolicy)
	ticket, err := tpm2.VerifySignature{
		KeyHandle: tpm2.NamedHandle{Handle: key.ObjectHandle, Name: key.Name},
		Digest:    tpm2.TPM2BDigest{Buffer: aHash},
		Signature: tpm2.TPMTSignature{
			SigAlg: tpm2.TPMAlgECDSA,
			Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
				Hash:       tpm2.TPMAlgSHA256,
				SignatureR: tpm2.TPM2BECCParameter{Buffer: sig.R},
				SignatureS: tpm2.TPM2BECCParameter{Buffer: sig.S},
			}),
		},
	}.Execute(t.t)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadPolicySignature, err)
	}
	if _, err := (tpm2.PolicyPCR{PolicySession: session, Pcrs: pcrSelection(PCR)}).Execute(t.t); err != nil {
		return fmt.Errorf("PolicyPCR: %w", err)
	}
	_, err = tpm2.PolicyAuthorize{
		PolicySession:  session,
		ApprovedPolicy: tpm2.TPM2BDigest{Buffer: sig.ApprovedPolicy},
		PolicyRef:      tpm2.TPM2BDigest{Buffer: []byte(PolicyRef)},
		KeySign:        key.Name,
		CheckTicket:    ticket.Validation,
	}.Execute(t.t)
	if err != nil {
		return fmt.Errorf("%w: PolicyAuthorize: %v", ErrPolicyNotSatisfied, err)
	}
	return nil
}

// Sealed is a secret sealed by this TPM, as kept on the state partition.
type Sealed struct {
	Public  []byte `json:"public"`  // TPMT_PUBLIC of the sealed data object
	Private []byte `json:"private"` // TPM2B_PRIVATE contents, wrapped by the SRK
}

// ParseSealed decodes a Sealed written by Marshal.
func ParseSealed(data []byte) (*Sealed, error) {
	var s Sealed
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("sealed secret: %w", err)
	}
	if len(s.Public) == 0 || len(s.Private) == 0 {
		return nil, fmt.Errorf("sealed secret: public or private part missing")
	}
	return &s, nil
}

// Marshal encodes s as JSON.
func (s *Sealed) Marshal() ([]byte, error) { return json.MarshalIndent(s, "", "  ") }

// Seal seals secret (at most 128 bytes, e.g. the k3s token or a disk key)
// so that only a boot whose PCR value has a policy signature by policyKey
// unseals it. No PCR value is fixed now: a release installed later unseals
// with its own signature.
func (t *TPM) Seal(policyKey *ecdsa.PublicKey, secret []byte) (*Sealed, error) {
	if len(secret) == 0 || len(secret) > 128 {
		return nil, fmt.Errorf("seal: secret is %d bytes, want 1 to 128", len(secret))
	}
	policy, err := authorizePolicy(policyKey)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	srk, err := t.createSRK()
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	defer t.flush(srk.Handle)
	rsp, err := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: srk.Handle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InSensitive:  tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: secret})}},
		InPublic: tpm2.New2B(tpm2.TPMTPublic{
			Type:             tpm2.TPMAlgKeyedHash,
			NameAlg:          tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, NoDA: true},
			AuthPolicy:       tpm2.TPM2BDigest{Buffer: policy},
			Parameters:       tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull}}),
		}),
	}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("seal: create: %w", err)
	}
	return &Sealed{Public: rsp.OutPublic.Bytes(), Private: rsp.OutPrivate.Buffer}, nil
}

// Unseal returns the secret if PCR holds a value one of approved signs.
func (t *TPM) Unseal(s *Sealed, policyKey *ecdsa.PublicKey, approved []*PolicySignature) ([]byte, error) {
	sig, err := t.pickPolicy(approved)
	if err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	return t.unsealWith(s, policyKey, sig)
}

func (t *TPM) unsealWith(s *Sealed, policyKey *ecdsa.PublicKey, sig *PolicySignature) ([]byte, error) {
	srk, err := t.createSRK()
	if err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	defer t.flush(srk.Handle)
	obj, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: srk.Handle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    tpm2.TPM2BPrivate{Buffer: s.Private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](s.Public),
	}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("unseal: load sealed object: %w", err)
	}
	defer t.flush(obj.ObjectHandle)
	sess, closeSess, err := tpm2.PolicySession(t.t, tpm2.TPMAlgSHA256, 16)
	if err != nil {
		return nil, fmt.Errorf("unseal: policy session: %w", err)
	}
	defer closeSess()
	if err := t.satisfyReleasePolicy(sess.Handle(), policyKey, sig); err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	rsp, err := tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: obj.ObjectHandle, Name: obj.Name, Auth: sess}}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("unseal: %w: %v", ErrPolicyNotSatisfied, err)
	}
	return rsp.OutData.Buffer, nil
}

// createSRK recreates the owner hierarchy's ECC storage key from the TCG
// default template (the same key every time).
func (t *TPM) createSRK() (*loadedKey, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("storage root key: create primary: %w", err)
	}
	return &loadedKey{Handle: rsp.ObjectHandle, Name: rsp.Name, Public: rsp.OutPublic}, nil
}
