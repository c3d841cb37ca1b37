package tpm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/cairn-edge/cairn/internal/atomicfile"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// BundleVersion is the attestation bundle format version this package writes.
const BundleVersion = 1

// NV indices where TPM makers store the EK certificates (TCG EK Credential
// Profile): RSA 2048 and ECC NIST P-256.
const (
	ekCertIndexRSA = 0x01C00002
	ekCertIndexECC = 0x01C0000A
)

// Bundle is what `cairn-agent attest` writes and `cairn attest verify` reads
// (docs/tpm.md, "Attestation bundle"). Binary TPM structures are in their TPM
// wire encoding, base64 in JSON.
type Bundle struct {
	Version       int         `json:"version"`
	Nonce         Hex         `json:"nonce"`
	Quote         []byte      `json:"quote"`     // TPMS_ATTEST, signed by the AK
	Signature     []byte      `json:"signature"` // TPMT_SIGNATURE over Quote
	PCRs          map[int]Hex `json:"pcrs"`      // SHA-256 bank values of the quoted PCRs
	AKPublic      []byte      `json:"ak_public"` // TPMT_PUBLIC of the attestation key
	EKCertificate []byte      `json:"ek_certificate,omitempty"`
	FirmwareLog   []byte      `json:"firmware_log,omitempty"` // TCG PC Client binary event log
	Log           *EventLog   `json:"log"`                    // Cairn's measurement log
}

// ParseBundle decodes a bundle written by Bundle.Marshal.
func ParseBundle(data []byte) (*Bundle, error) {
	var b Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("attestation bundle: %w", err)
	}
	if b.Version != BundleVersion {
		return nil, fmt.Errorf("attestation bundle: version %d, want %d", b.Version, BundleVersion)
	}
	if b.Log == nil {
		return nil, fmt.Errorf("attestation bundle: no measurement log")
	}
	logJSON, err := json.Marshal(b.Log)
	if err != nil {
		return nil, fmt.Errorf("attestation bundle: %w", err)
	}
	if b.Log, err = ParseLog(logJSON); err != nil {
		return nil, fmt.Errorf("attestation bundle: %w", err)
	}
	return &b, nil
}

// Marshal encodes the bundle as indented JSON.
func (b *Bundle) Marshal() ([]byte, error) {
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Evidence is what a bundle carries besides the quote.
type Evidence struct {
	Log         *EventLog // Cairn's measurement log (required)
	FirmwareLog []byte    // e.g. /sys/kernel/security/tpm0/binary_bios_measurements, when present
}

// QuotedPCRs are the registers a quote covers: the boot PCRs and PCR.
func QuotedPCRs() []int { return append(BootPCRs[:], PCR) }

// Attest quotes QuotedPCRs with the attestation key kept at akPath (created
// on first use) over nonce, and bundles the quote with the evidence a
// verifier needs.
func (t *TPM) Attest(akPath string, nonce []byte, ev Evidence) (*Bundle, error) {
	if len(nonce) < 8 || len(nonce) > 64 {
		return nil, fmt.Errorf("attest: nonce is %d bytes, want 8 to 64", len(nonce))
	}
	if ev.Log == nil {
		return nil, fmt.Errorf("attest: no measurement log")
	}
	ak, err := t.loadOrCreateAK(akPath)
	if err != nil {
		return nil, err
	}
	defer t.flush(ak.Handle)
	q, err := tpm2.Quote{
		SignHandle:     tpm2.AuthHandle{Handle: ak.Handle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
		QualifyingData: tpm2.TPM2BData{Buffer: nonce},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		PCRSelect:      pcrSelection(QuotedPCRs()...),
	}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("attest: quote: %w", err)
	}
	// PCRs are read after the quote; Verify checks them against its digest,
	// so a change in between is reported rather than missed.
	pcrs, err := t.ReadPCRs(QuotedPCRs()...)
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	b := &Bundle{
		Version:     BundleVersion,
		Nonce:       nonce,
		Quote:       q.Quoted.Bytes(),
		Signature:   tpm2.Marshal(q.Signature),
		PCRs:        make(map[int]Hex, len(pcrs)),
		AKPublic:    ak.Public.Bytes(),
		FirmwareLog: ev.FirmwareLog,
		Log:         ev.Log,
	}
	for p, v := range pcrs {
		b.PCRs[p] = v
	}
	if b.EKCertificate, err = t.EKCertificate(); err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	return b, nil
}

// EKCertificate returns the DER EK certificate the TPM maker stored in NV, or
// nil when there is none (as on a swtpm manufactured without certificates).
func (t *TPM) EKCertificate() ([]byte, error) {
	for _, idx := range []tpm2.TPMHandle{ekCertIndexECC, ekCertIndexRSA} {
		c, err := t.readNV(idx)
		if errors.Is(err, tpm2.TPMRCHandle) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("EK certificate NV %#x: %w", uint32(idx), err)
		}
		return c, nil
	}
	return nil, nil
}

// readNV reads a whole NV index with its own (empty) authorization, in
// chunks the TPM accepts.
func (t *TPM) readNV(idx tpm2.TPMHandle) ([]byte, error) {
	pub, err := tpm2.NVReadPublic{NVIndex: idx}.Execute(t.t)
	if err != nil {
		return nil, err
	}
	info, err := pub.NVPublic.Contents()
	if err != nil {
		return nil, err
	}
	var out []byte
	for off := 0; off < int(info.DataSize); off += 512 {
		n := min(512, int(info.DataSize)-off)
		rsp, err := tpm2.NVRead{
			AuthHandle: tpm2.AuthHandle{Handle: idx, Name: pub.NVName, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: idx, Name: pub.NVName},
			Size:       uint16(n),
			Offset:     uint16(off),
		}.Execute(t.t)
		if err != nil {
			return nil, fmt.Errorf("read at offset %d: %w", off, err)
		}
		out = append(out, rsp.Data.Buffer...)
	}
	return out, nil
}

// akBlob is the attestation key as kept on the state partition: the TPM
// wraps the private part so only this TPM's endorsement hierarchy loads it.
type akBlob struct {
	Public  []byte `json:"public"`  // TPM2B_PUBLIC contents (TPMT_PUBLIC)
	Private []byte `json:"private"` // TPM2B_PRIVATE contents
}

// loadedKey is a transient object the caller must flush.
type loadedKey struct {
	Handle tpm2.TPMHandle
	Name   tpm2.TPM2BName
	Public tpm2.TPM2BPublic
}

// akTemplate is a restricted ECDSA P-256 signing key: it signs only data the
// TPM produced itself (quotes), never an outside digest that looks like one.
var akTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true,
		UserWithAuth: true, Restricted: true, SignEncrypt: true, NoDA: true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Scheme: tpm2.TPMTECCScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
		},
		CurveID: tpm2.TPMECCNistP256,
	}),
}

// loadOrCreateAK loads the AK blob at path under the EK, creating and saving
// it first when the file does not exist.
func (t *TPM) loadOrCreateAK(path string) (*loadedKey, error) {
	ek, err := t.createEK()
	if err != nil {
		return nil, err
	}
	defer t.flush(ek.Handle)
	parent := tpm2.AuthHandle{Handle: ek.Handle, Name: ek.Name, Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, ekPolicy)}

	var blob akBlob
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		rsp, err := tpm2.Create{ParentHandle: parent, InPublic: tpm2.New2B(akTemplate)}.Execute(t.t)
		if err != nil {
			return nil, fmt.Errorf("attestation key: create: %w", err)
		}
		blob = akBlob{Public: rsp.OutPublic.Bytes(), Private: rsp.OutPrivate.Buffer}
		out, _ := json.MarshalIndent(blob, "", "  ")
		if err := atomicfile.Write(path, append(out, '\n'), 0o600); err != nil {
			return nil, fmt.Errorf("attestation key: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("attestation key %s: %w", path, err)
	default:
		if err := json.Unmarshal(data, &blob); err != nil {
			return nil, fmt.Errorf("attestation key %s: %w", path, err)
		}
	}
	rsp, err := tpm2.Load{
		ParentHandle: parent,
		InPrivate:    tpm2.TPM2BPrivate{Buffer: blob.Private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](blob.Public),
	}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("attestation key %s: load under EK: %w", path, err)
	}
	return &loadedKey{Handle: rsp.ObjectHandle, Name: rsp.Name, Public: tpm2.BytesAs2B[tpm2.TPMTPublic](blob.Public)}, nil
}

// createEK recreates the ECC endorsement key from the TCG default template;
// it is the same key every time because the endorsement seed does not change.
func (t *TPM) createEK() (*loadedKey, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHEndorsement,
		InPublic:      tpm2.New2B(tpm2.ECCEKTemplate),
	}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("endorsement key: create primary: %w", err)
	}
	return &loadedKey{Handle: rsp.ObjectHandle, Name: rsp.Name, Public: rsp.OutPublic}, nil
}

// ekPolicy satisfies the TCG EK policy: PolicySecret with the endorsement
// hierarchy's (empty) authorization.
func ekPolicy(t transport.TPM, handle tpm2.TPMISHPolicy, nonceTPM tpm2.TPM2BNonce) error {
	_, err := tpm2.PolicySecret{
		AuthHandle:    tpm2.TPMRHEndorsement,
		PolicySession: handle,
		NonceTPM:      nonceTPM,
	}.Execute(t)
	return err
}
