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
	"syscall"
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
	return NewMachine(t).Addr()
}

// Machine is a swtpm a test can power-cycle: its state directory outlives
// the process, as a TPM's seeds and NV survive a reboot, while PCRs start
// over from zero.
type Machine struct {
	t    testing.TB
	dir  string
	addr string
	stop func()
}

// NewMachine starts a swtpm on a fresh state directory, like Swtpm. Under
// -short the test is skipped; without swtpm installed it fails.
func NewMachine(t testing.TB) *Machine {
	t.Helper()
	if testing.Short() {
		t.Skip("swtpm: skipped in -short mode")
	}
	m := &Machine{t: t, dir: t.TempDir()}
	m.addr, m.stop = start(t, m.dir)
	t.Cleanup(func() { m.stop() })
	return m
}

// Addr is the address agent/tpm.Open takes for the running swtpm; it
// changes with every Reboot.
func (m *Machine) Addr() string { return m.addr }

// Reboot stops swtpm and starts it again on the same state: a power cycle.
func (m *Machine) Reboot() {
	m.t.Helper()
	m.stop()
	m.addr, m.stop = start(m.t, m.dir)
}

// start runs swtpm on the state directory dir until stop is called.
func start(t testing.TB, dir string) (addr string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Fatalf("swtpm not installed (scripts/install-deps.sh): %v", err)
	}
	name := make([]byte, 12)
	if _, err := rand.Read(name); err != nil {
		t.Fatal(err)
	}
	addr = "@cairn-swtpm-" + hex.EncodeToString(name)
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
	cmd.Dir = dir
	// A power cycle, not a crash: swtpm saves its state on SIGTERM.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.ExtraFiles = []*os.File{sock}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start swtpm: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stopped := false
	return "unix:" + addr, func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		if t.Failed() {
			t.Logf("swtpm stderr:\n%s", stderr.String())
		}
	}
}
