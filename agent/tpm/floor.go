package tpm

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// FloorIndex is the NV index (owner range, TCG handle registry) holding the
// version floor: 8 bytes, big-endian.
const FloorIndex tpm2.TPMHandle = 0x01800CA1

// Errors of the version floor.
var (
	// ErrBelowFloor: the requested floor is lower than the one in the TPM.
	ErrBelowFloor = errors.New("below the version floor")
	// ErrFloorPolicy: the floor index exists with another write policy
	// (another policy signing key): it is not ours to overwrite.
	ErrFloorPolicy = errors.New("version floor index has a foreign write policy")
)

// floorPolicy is the floor index's write policy: a boot whose PCR value the
// release key approved, writing with TPM2_NV_Write.
func floorPolicy(policyKey *ecdsa.PublicKey) ([]byte, error) {
	return authorizePolicy(policyKey, tpm2.PolicyCommandCode{Code: tpm2.TPMCCNVWrite})
}

// Floor returns the version floor kept in the TPM, 0 when none was set.
func (t *TPM) Floor() (uint64, error) {
	data, err := t.readNV(FloorIndex)
	if errors.Is(err, tpm2.TPMRCHandle) || errors.Is(err, tpm2.TPMRCNVUninitialized) {
		return 0, nil // never defined, or defined and never written
	}
	if err != nil {
		return 0, fmt.Errorf("version floor NV %#x: %w", uint32(FloorIndex), err)
	}
	if len(data) != 8 {
		return 0, fmt.Errorf("version floor NV %#x: %d bytes, want 8", uint32(FloorIndex), len(data))
	}
	return binary.BigEndian.Uint64(data), nil
}

// RaiseFloor sets the version floor to v. A lower v is refused with
// ErrBelowFloor; an equal one is a no-op. The TPM accepts the write only from
// a boot that satisfies a PCR policy in approved, signed by policyKey, so a
// tampered slot cannot move the floor. The agent raises it only after the
// booted release passed the health gate and was committed.
func (t *TPM) RaiseFloor(v uint64, policyKey *ecdsa.PublicKey, approved []*PolicySignature) error {
	cur, err := t.Floor()
	if err != nil {
		return err
	}
	if v < cur {
		return fmt.Errorf("version floor: %d: %w %d", v, ErrBelowFloor, cur)
	}
	if v == cur && cur != 0 {
		return nil
	}
	policy, err := floorPolicy(policyKey)
	if err != nil {
		return fmt.Errorf("version floor: %w", err)
	}
	pub, err := t.ensureFloorIndex(policy)
	if err != nil {
		return err
	}
	sig, err := t.pickPolicy(approved)
	if err != nil {
		return fmt.Errorf("version floor: %w", err)
	}
	sess, closeSess, err := tpm2.PolicySession(t.t, tpm2.TPMAlgSHA256, 16)
	if err != nil {
		return fmt.Errorf("version floor: policy session: %w", err)
	}
	defer closeSess()
	if err := t.satisfyReleasePolicy(sess.Handle(), policyKey, sig); err != nil {
		return fmt.Errorf("version floor: %w", err)
	}
	if _, err := (tpm2.PolicyCommandCode{PolicySession: sess.Handle(), Code: tpm2.TPMCCNVWrite}).Execute(t.t); err != nil {
		return fmt.Errorf("version floor: PolicyCommandCode: %w", err)
	}
	data := binary.BigEndian.AppendUint64(nil, v)
	_, err = tpm2.NVWrite{
		AuthHandle: tpm2.AuthHandle{Handle: FloorIndex, Name: pub.name, Auth: sess},
		NVIndex:    tpm2.NamedHandle{Handle: FloorIndex, Name: pub.name},
		Data:       tpm2.TPM2BMaxNVBuffer{Buffer: data},
	}.Execute(t.t)
	if err != nil {
		return fmt.Errorf("version floor NV %#x: write %d: %w", uint32(FloorIndex), v, err)
	}
	return nil
}

type nvIndex struct{ name tpm2.TPM2BName }

// ensureFloorIndex defines the floor index with policy as its write policy
// unless it exists, and checks an existing one carries that policy.
func (t *TPM) ensureFloorIndex(policy []byte) (*nvIndex, error) {
	rsp, err := tpm2.NVReadPublic{NVIndex: FloorIndex}.Execute(t.t)
	if err == nil {
		info, err := rsp.NVPublic.Contents()
		if err != nil {
			return nil, fmt.Errorf("version floor NV %#x: %w", uint32(FloorIndex), err)
		}
		if !bytes.Equal(info.AuthPolicy.Buffer, policy) {
			return nil, fmt.Errorf("version floor NV %#x: %w", uint32(FloorIndex), ErrFloorPolicy)
		}
		return &nvIndex{name: rsp.NVName}, nil
	}
	if !errors.Is(err, tpm2.TPMRCHandle) {
		return nil, fmt.Errorf("version floor NV %#x: %w", uint32(FloorIndex), err)
	}
	pub := tpm2.TPMSNVPublic{
		NVIndex: FloorIndex,
		NameAlg: tpm2.TPMAlgSHA256,
		Attributes: tpm2.TPMANV{
			PolicyWrite: true, AuthRead: true, NoDA: true, WriteAll: true,
			NT: tpm2.TPMNTOrdinary,
		},
		AuthPolicy: tpm2.TPM2BDigest{Buffer: policy},
		DataSize:   8,
	}
	_, err = tpm2.NVDefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		PublicInfo: tpm2.New2B(pub),
	}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("version floor NV %#x: define: %w", uint32(FloorIndex), err)
	}
	// The name changes once the index is written (TPMA_NV_WRITTEN): read it back.
	rsp, err = tpm2.NVReadPublic{NVIndex: FloorIndex}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("version floor NV %#x: %w", uint32(FloorIndex), err)
	}
	return &nvIndex{name: rsp.NVName}, nil
}
