// Package tpmtest starts a real swtpm process for tests of code that talks to
// a TPM through an address, as cairn-agent does with its --tpm flag.
package tpmtest

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Swtpm starts `swtpm socket --tpm2` on a fresh state directory, already
// initialised and started up, and returns the path of its Unix socket once
// it listens (an address agent/tpm.Open accepts). The process stops when
// the test ends. Under -short the test is skipped; without swtpm installed
// it fails.
func Swtpm(t testing.TB) string {
	t.Helper()
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

	// Wait until swtpm listens, without a fixed deadline: swtpm either
	// listens or exits, and either is reported. The probe connection is
	// closed at once; swtpm then accepts the next client.
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			return sock
		}
		select {
		case werr := <-exited:
			t.Fatalf("swtpm exited before listening: %v (last dial: %v)", werr, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
