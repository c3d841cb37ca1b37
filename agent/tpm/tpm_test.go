package tpm

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/cairn-edge/cairn/agent/tpm/tpmtest"
)

// tpmOpener starts a fresh TPM for one test.
type tpmOpener struct {
	name string
	open func(t *testing.T) *TPM
}

// tpmOpeners are the TPMs every scenario runs against: the in-process
// reference simulator and a real swtpm process.
var tpmOpeners = []tpmOpener{
	{"simulator", openSimulator},
	{"swtpm", openSwtpm},
}

// eachTPM runs body once per TPM implementation, each with a fresh TPM.
func eachTPM(t *testing.T, body func(t *testing.T, tp *TPM)) {
	for _, o := range tpmOpeners {
		t.Run(o.name, func(t *testing.T) { body(t, o.open(t)) })
	}
}

func openSimulator(t *testing.T) *TPM {
	sim, err := simulator.Get()
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	tp := New(transport.FromReadWriteCloser(sim))
	t.Cleanup(func() { tp.Close() })
	return tp
}

// openSwtpm starts a real swtpm process and connects to it.
func openSwtpm(t *testing.T) *TPM {
	tp, err := Open(context.Background(), tpmtest.Swtpm(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

func testIdentity(slot, release string) SlotIdentity {
	root := sha256.Sum256([]byte("rootfs of " + release))
	footer := sha256.Sum256([]byte("footer of " + release + " in slot " + slot))
	return SlotIdentity{Slot: slot, Release: release, RootHash: root[:], FooterDigest: footer[:]}
}

func manifestOf(id SlotIdentity) Manifest {
	return Manifest{Release: id.Release, RootHash: id.RootHash}
}

func TestOpenMissingDeviceIsNoTPM(t *testing.T) {
	_, err := Open(context.Background(), filepath.Join(t.TempDir(), "tpmrm0"))
	if !errors.Is(err, ErrNoTPM) {
		t.Fatalf("Open(missing) = %v, want ErrNoTPM", err)
	}
}
