package footer

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/partitions"
)

// TestFooterPolicyUnsealsInTheSlotItNames seals a secret to the release key
// on a TPM simulator, measures the footer's identity as cairn-init does, and
// unseals with the footer's policy signatures: slot B's measurement and a
// diskless boot's unseal; without the approval for the slot it was
// measured as (an older release has none for pxe), it does not.
func TestFooterPolicyUnsealsInTheSlotItNames(t *testing.T) {
	key := testKey(t, "release key")
	f, err := Decode(signedFooter(t))
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := Decode(legacyFooter(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		measured  string
		policies  []*tpm.PolicySignature
		wantError error
	}{
		{"booted from B", "B", f.PolicySignatures(), nil},
		{"only slot A's approval", "B", f.PolicySignatures()[:1], tpm.ErrNoApprovedPolicy},
		{"booted diskless", string(partitions.SlotNetwork), f.PolicySignatures(), nil},
		{"older release booted diskless", string(partitions.SlotNetwork), legacy.PolicySignatures(), tpm.ErrNoApprovedPolicy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, err := simulator.Get()
			if err != nil {
				t.Fatalf("simulator: %v", err)
			}
			tp := tpm.New(transport.FromReadWriteCloser(sim))
			defer tp.Close()
			sealed, err := tp.Seal(&key.PublicKey, []byte("k3s token"))
			if err != nil {
				t.Fatal(err)
			}
			id, err := f.Identity(tc.measured)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tp.Measure(filepath.Join(t.TempDir(), "measurements.json"), id); err != nil {
				t.Fatal(err)
			}
			got, err := tp.Unseal(sealed, &key.PublicKey, tc.policies)
			if !errors.Is(err, tc.wantError) {
				t.Fatalf("unseal: %v, want %v", err, tc.wantError)
			}
			if err == nil && !bytes.Equal(got, []byte("k3s token")) {
				t.Fatalf("unsealed %q", got)
			}
		})
	}
}

// TestPolicyForPXEIsWhatADisklessBootExtends measures the footer as
// cairn-init does on a diskless boot (slot partitions.SlotNetwork) on a TPM
// simulator and reads PCR back: the pxe policy approves exactly that value.
func TestPolicyForPXEIsWhatADisklessBootExtends(t *testing.T) {
	f, err := Decode(signedFooter(t))
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.Get()
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	tp := tpm.New(transport.FromReadWriteCloser(sim))
	defer tp.Close()
	id, err := f.Identity(string(partitions.SlotNetwork))
	if err != nil {
		t.Fatal(err)
	}
	e, err := tp.Measure(filepath.Join(t.TempDir(), "measurements.json"), id)
	if err != nil {
		t.Fatal(err)
	}
	pcrs, err := tp.ReadPCRs(tpm.PCR)
	if err != nil {
		t.Fatal(err)
	}
	pxe := f.Policies[2]
	if pxe.Slot != "pxe" || pxe.PCR != tpm.PCR || !bytes.Equal(pxe.PCRValue, pcrs[tpm.PCR]) || !bytes.Equal(e.PCRAfter, pcrs[tpm.PCR]) {
		t.Fatalf("pxe policy slot %q PCR %d value %x; a diskless boot leaves PCR %d at %x", pxe.Slot, pxe.PCR, pxe.PCRValue, tpm.PCR, pcrs[tpm.PCR])
	}
	want, err := tpm.PCRPolicyDigest(pcrs[tpm.PCR])
	if err != nil || !bytes.Equal(pxe.ApprovedPolicy, want) {
		t.Fatalf("pxe approved policy %x, want %x (%v)", pxe.ApprovedPolicy, want, err)
	}
}
