package tpm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"
)

func policyKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signPolicy(t *testing.T, k *ecdsa.PrivateKey, ids ...SlotIdentity) *PolicySignature {
	s, err := SignPCRPolicy(k, ExpectedPCR(ids...))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The device seals under release 1.2.0 in slot A, installs 1.3.0 into slot B
// and reboots: 1.3.0 ships its own policy signature and unseals without a
// re-seal step.
func TestSecretSurvivesSignedUpdateWithoutReseal(t *testing.T) {
	eachTPM(t, func(t *testing.T, tp *TPM) {
		key := policyKey(t)
		secret := []byte("k3s-token-0123456789")
		sealed, err := tp.Seal(&key.PublicKey, secret)
		if err != nil {
			t.Fatal(err)
		}
		newRelease := testIdentity("B", "1.3.0")
		if _, err := tp.Measure(filepath.Join(t.TempDir(), "m.json"), newRelease); err != nil {
			t.Fatal(err)
		}
		approved := []*PolicySignature{
			signPolicy(t, key, testIdentity("A", "1.2.0")),
			signPolicy(t, key, testIdentity("A", "1.3.0")),
			signPolicy(t, key, newRelease),
		}
		got, err := tp.Unseal(sealed, &key.PublicKey, approved)
		if err != nil {
			t.Fatalf("Unseal: %v", err)
		}
		if !bytes.Equal(got, secret) {
			t.Fatalf("Unseal = %q, want %q", got, secret)
		}
	})
}

func TestTamperedSlotDoesNotUnseal(t *testing.T) {
	eachTPM(t, func(t *testing.T, tp *TPM) {
		key := policyKey(t)
		sealed, err := tp.Seal(&key.PublicKey, []byte("disk key"))
		if err != nil {
			t.Fatal(err)
		}
		release := testIdentity("B", "1.3.0")
		tampered := release
		tampered.RootHash = bytes.Clone(release.RootHash)
		tampered.RootHash[7] ^= 0x01
		if _, err := tp.Measure(filepath.Join(t.TempDir(), "m.json"), tampered); err != nil {
			t.Fatal(err)
		}
		genuine := signPolicy(t, key, release)
		if _, err := tp.Unseal(sealed, &key.PublicKey, []*PolicySignature{genuine}); !errors.Is(err, ErrNoApprovedPolicy) {
			t.Fatalf("Unseal = %v, want ErrNoApprovedPolicy", err)
		}
		// Presenting the genuine signature anyway: the TPM itself refuses.
		if _, err := tp.unsealWith(sealed, &key.PublicKey, genuine); !errors.Is(err, ErrPolicyNotSatisfied) {
			t.Fatalf("unsealWith(genuine signature) = %v, want ErrPolicyNotSatisfied", err)
		}
		// A policy for the tampered value signed by another key: refused too.
		forged := signPolicy(t, policyKey(t), tampered)
		if _, err := tp.unsealWith(sealed, &key.PublicKey, forged); !errors.Is(err, ErrBadPolicySignature) {
			t.Fatalf("unsealWith(forged signature) = %v, want ErrBadPolicySignature", err)
		}
	})
}
