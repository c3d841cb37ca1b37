package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/k3s"
	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest/signedslot"
	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

// startRecorder is a k3s runner that only counts starts.
type startRecorder struct {
	mu     sync.Mutex
	starts int
}

func (r *startRecorder) Start(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts++
	return nil
}
func (r *startRecorder) Stop(context.Context) error    { return nil }
func (r *startRecorder) Restart(context.Context) error { return nil }
func (r *startRecorder) Status(context.Context) (k3s.Status, error) {
	return k3s.Status{}, nil
}

// TestTamperedSlotStartsNoK3s boots a device with a TPM twice: its signed
// release starts k3s with the token unsealed to /run; the same slot
// measured with one byte of its root hash flipped gets no token, k3s is
// never started, and the health gate and status say why.
func TestTamperedSlotStartsNoK3s(t *testing.T) {
	dev := signedslot.NewDevice(t, agent.ReleaseKeyPath, "1.3.0", "qemu-x86_64")
	root, boot, f := dev.Root, dev.Boot, dev.Footer
	machine := tpmtest.NewMachine(t)
	varDir, etc := t.TempDir(), t.TempDir()
	image := filepath.Join(t.TempDir(), "k3s")
	if err := os.WriteFile(image, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	powerOn := func(flip bool) (*Daemon, *startRecorder, error) {
		machine.Reboot()
		os.RemoveAll(filepath.Join(root, "run"))
		id, err := f.Identity("B")
		if err != nil {
			t.Fatal(err)
		}
		if flip {
			id.RootHash[0] ^= 0x80
		}
		tp, err := tpm.Open(context.Background(), machine.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tp.Measure(filepath.Join(root, tpm.DefaultLogPath), id); err != nil {
			t.Fatal(err)
		}
		tp.Close()
		rec := &startRecorder{}
		d := New(Config{Root: root, VarDir: varDir, TPM: machine.Addr(), K3s: K3sSetup{
			Paths:     k3s.Paths{Config: filepath.Join(etc, "config.yaml"), Registries: filepath.Join(etc, "registries.yaml")},
			Binaries:  k3s.Binaries{Image: image, ImageVersion: "v1.31.0+k3s1"},
			NewRunner: func(k3s.Command) k3s.Runner { return rec },
		}})
		d.boot, d.device = boot, &cloudinit.Config{}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		d.k3s, err = d.startK3s(ctx, &cloudinit.K3s{Role: "server", Token: "K10feed::server:beef"})
		return d, rec, err
	}

	d, rec, err := powerOn(false)
	if err != nil || rec.starts != 1 {
		t.Fatalf("signed release: k3s started %d times, %v", rec.starts, err)
	}
	unsealed := filepath.Join(root, agent.DefaultUnsealedTokenPath)
	if b, err := os.ReadFile(unsealed); err != nil || string(b) != "K10feed::server:beef\n" {
		t.Fatalf("unsealed token %q, %v", b, err)
	}
	if st := d.K3sStatus(); st.Token == nil || st.Token.Kept != agent.TokenSealed {
		t.Fatalf("status token %+v, want sealed", st.Token)
	}

	d, rec, err = powerOn(true)
	if !errors.Is(err, agent.ErrTokenSealed) || rec.starts != 0 {
		t.Fatalf("tampered slot: k3s started %d times, %v; want none and ErrTokenSealed", rec.starts, err)
	}
	if _, err := os.Stat(unsealed); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("token on /run after a tampered boot: %v", err)
	}
	ready := k3sReadiness{d.k3s}.Ready(context.Background())
	if !errors.Is(ready, agent.ErrTokenSealed) || !strings.HasPrefix(ready.Error(), "k3s not started: ") {
		t.Errorf("health gate's k3s check: %v", ready)
	}
	var text strings.Builder
	if err := (&agent.Status{K3s: d.K3sStatus()}).WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "k3s token: withheld, k3s not started: k3s token is sealed and this boot may not unseal it") {
		t.Errorf("status does not say why k3s did not start:\n%s", text.String())
	}
}
