// Package tpmtest starts a real swtpm process for tests of code that talks to
// a TPM through an address, as cairn-agent does with its --tpm flag.
package tpmtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"testing"
)

// Swtpm starts `swtpm socket --tpm2` on a fresh state directory, already
// initialised and started up, and returns the address agent/tpm.Open
// takes for it. The process stops when the test ends. Under -short the
// test is skipped; without swtpm installed it fails.
//
// swtpm serves an abstract Unix socket the test listens on and hands over:
// a path under t.TempDir() may exceed the 108 bytes a socket path can have.
func Swtpm(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("swtpm: skipped in -short mode")
	}
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Fatalf("swtpm not installed (scripts/install-deps.sh): %v", err)
	}
	name := make([]byte, 12)
	if _, err := rand.Read(name); err != nil {
		t.Fatal(err)
	}
	addr := "@cairn-swtpm-" + hex.EncodeToString(name)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		t.Fatalf("swtpm socket: %v", err)
	}
	defer l.Close() // swtpm holds its own copy
	sock, err := l.File()
	if err != nil {
		t.Fatalf("swtpm socket: %v", err)
	}
	defer sock.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "socket", "--tpm2",
		"--tpmstate", "dir=.",
		"--server", "type=unixio,fd=3",
		"--flags", "not-need-init,startup-clear")
	// Options are comma-separated and test names may hold commas: the
	// state directory is swtpm's working directory instead.
	cmd.Dir = t.TempDir()
	cmd.ExtraFiles = []*os.File{sock}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start swtpm: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("swtpm stderr:\n%s", stderr.String())
		}
	})
	return "unix:" + addr
}
