package tpm

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestVersionFloorOnlyGoesUp(t *testing.T) {
	eachTPM(t, func(t *testing.T, tp *TPM) {
		key := policyKey(t)
		id := testIdentity("A", "1.3.0")
		if _, err := tp.Measure(filepath.Join(t.TempDir(), "m.json"), id); err != nil {
			t.Fatal(err)
		}
		approved := []*PolicySignature{signPolicy(t, key, id)}
		if f, err := tp.Floor(); err != nil || f != 0 {
			t.Fatalf("Floor() on a fresh TPM = %d, %v; want 0", f, err)
		}
		for _, v := range []uint64{5, 7, 7} {
			if err := tp.RaiseFloor(v, &key.PublicKey, approved); err != nil {
				t.Fatalf("RaiseFloor(%d): %v", v, err)
			}
		}
		if err := tp.RaiseFloor(6, &key.PublicKey, approved); !errors.Is(err, ErrBelowFloor) {
			t.Fatalf("RaiseFloor(6) after 7 = %v, want ErrBelowFloor", err)
		}
		if f, err := tp.Floor(); err != nil || f != 7 {
			t.Fatalf("Floor() = %d, %v; want 7", f, err)
		}
		// Another policy key cannot take the index over.
		other := policyKey(t)
		if err := tp.RaiseFloor(9, &other.PublicKey, []*PolicySignature{signPolicy(t, other, id)}); !errors.Is(err, ErrFloorPolicy) {
			t.Fatalf("RaiseFloor with another key = %v, want ErrFloorPolicy", err)
		}
	})
}

// A slot that is not a signed release cannot write the floor: the TPM
// refuses the write policy even when shown a genuine signature.
func TestTamperedSlotCannotMoveFloor(t *testing.T) {
	eachTPM(t, func(t *testing.T, tp *TPM) {
		key := policyKey(t)
		id := testIdentity("A", "1.3.0")
		tampered := id
		tampered.Release = "1.3.1"
		if _, err := tp.Measure(filepath.Join(t.TempDir(), "m.json"), tampered); err != nil {
			t.Fatal(err)
		}
		genuine := signPolicy(t, key, id)
		genuine.PCRValue = ExpectedPCR(tampered) // lie about which value it approves
		err := tp.RaiseFloor(3, &key.PublicKey, []*PolicySignature{genuine})
		if !errors.Is(err, ErrPolicyNotSatisfied) {
			t.Fatalf("RaiseFloor from a tampered slot = %v, want ErrPolicyNotSatisfied", err)
		}
		if f, err := tp.Floor(); err != nil || f != 0 {
			t.Fatalf("Floor() = %d, %v; want 0", f, err)
		}
	})
}
