package footer

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/cairn-edge/cairn/agent/tpm"
)

// TestFooterPolicyUnsealsInTheSlotItNames seals a secret to the release key
// on a TPM simulator, measures the footer's identity as cairn-init does, and
// unseals with the footer's policy signatures: slot B's measurement unseals,
// and the same footer measured with another slot name does not.
func TestFooterPolicyUnsealsInTheSlotItNames(t *testing.T) {
	key := testKey(t, "release key")
	f, err := Decode(signedFooter(t))
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
