package tpm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"
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

// openSwtpm starts `swtpm socket` on a fresh state directory, already
// initialised and started up, and connects to its Unix socket.
func openSwtpm(t *testing.T) *TPM {
	if testing.Short() {
		t.Skip("swtpm: skipped in -short mode")
	}
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Fatalf("swtpm not installed (scripts/install-deps.sh): %v", err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "tpm.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "socket", "--tpm2",
		"--tpmstate", "dir="+dir,
		"--server", "type=unixio,path="+sock,
		"--ctrl", "type=unixio,path="+filepath.Join(dir, "ctrl.sock"),
		"--flags", "not-need-init,startup-clear")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start swtpm: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("swtpm stderr:\n%s", stderr.String())
		}
	})

	// Connect once swtpm listens, without a fixed deadline: swtpm either
	// listens or exits, and either is reported.
	var tp *TPM
	for {
		if tp, err = Open(ctx, sock); err == nil {
			break
		}
		select {
		case werr := <-exited:
			t.Fatalf("swtpm exited before listening: %v (last dial: %v)", werr, err)
		case <-time.After(10 * time.Millisecond):
		}
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
