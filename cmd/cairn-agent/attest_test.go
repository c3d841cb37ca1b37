package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest/signedslot"
	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
	"github.com/cairn-edge/cairn/partitions/fakedevice"
	"github.com/cairn-edge/cairn/partitions/grubenv"
)

// bootedDevice is a GRUB device booted from slot B, which holds release
// 1.3.0 signed by the release key baked into the image. With a TPM
// address, cairn-init's measurement of the slot is in the TPM and the log.
func bootedDevice(t *testing.T, tpmAddr string) (root string, f *footer.Footer) {
	t.Helper()
	root = fakedevice.Root(t, "console=ttyS0 cairn.slot=B", "8:3", fakedevice.SDA()...)
	var vars []grubenv.Var
	for _, v := range bootstate.InitialVars(partitions.SlotB) {
		vars = append(vars, grubenv.Var{Name: v.Name, Value: v.Value})
	}
	envPath := filepath.Join(root, bootstate.DefaultLocation().GrubEnv)
	pub := filepath.Join(root, agent.DefaultReleaseKeyPath)
	for _, dir := range []string{filepath.Dir(envPath), filepath.Dir(pub)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := grubenv.Create(envPath, vars); err != nil {
		t.Fatal(err)
	}
	key, err := channel.GenerateReleaseKey(filepath.Join(t.TempDir(), "release.key"), pub)
	if err != nil {
		t.Fatal(err)
	}
	f = signedslot.Write(t, filepath.Join(root, "dev", "sda3"), key, "1.3.0", "qemu-x86_64")
	if tpmAddr == "" {
		return root, f
	}
	tp, err := tpm.Open(context.Background(), tpmAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	id, err := f.Identity("B")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Measure(filepath.Join(root, tpm.DefaultLogPath), id); err != nil {
		t.Fatal(err)
	}
	return root, f
}

func randomNonce(t *testing.T) []byte {
	n := make([]byte, 32)
	if _, err := rand.Read(n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAttestWritesABundleThatVerifies(t *testing.T) {
	addr := tpmtest.Swtpm(t)
	root, f := bootedDevice(t, addr)
	firmwareLog := []byte("TCG PC Client event log bytes")
	mustWrite(t, filepath.Join(root, agent.DefaultFirmwareLogPath), string(firmwareLog))
	trusted := []tpm.Manifest{{Release: "1.3.0", RootHash: f.RootHash}}

	nonce := randomNonce(t)
	out := filepath.Join(t.TempDir(), "bundle.json")
	if msg, err := runAgent(t, "attest", "--nonce", hex.EncodeToString(nonce), "--out", out, "--root", root, "--tpm", addr); err != nil {
		t.Fatalf("attest --out: %v\n%s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tpm.ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tpm.Verify(b, nonce, trusted)
	if err != nil {
		t.Fatalf("verify the bundle attest wrote: %v", err)
	}
	if got, want := r.String(), "slot B: release 1.3.0, measured, matches signed manifest"; got != want {
		t.Errorf("verified %q, want %q", got, want)
	}
	if !bytes.Equal(b.FirmwareLog, firmwareLog) {
		t.Errorf("bundle carries firmware log %q", b.FirmwareLog)
	}
	if _, err := os.Stat(filepath.Join(root, agent.DefaultAKPath)); err != nil {
		t.Errorf("attestation key not kept on /var: %v", err)
	}

	// Without --out the bundle goes to stdout, quoted by the same AK.
	nonce2 := randomNonce(t)
	stdout, err := runAgent(t, "attest", "--nonce", hex.EncodeToString(nonce2), "--root", root, "--tpm", addr)
	if err != nil {
		t.Fatalf("attest: %v\n%s", err, stdout)
	}
	b2, err := tpm.ParseBundle([]byte(stdout))
	if err != nil {
		t.Fatalf("attest stdout is not a bundle: %v", err)
	}
	if _, err := tpm.Verify(b2, nonce2, trusted); err != nil {
		t.Fatalf("verify the printed bundle: %v", err)
	}
	if !bytes.Equal(b.AKPublic, b2.AKPublic) {
		t.Error("the second attest made another attestation key")
	}
}

func TestAttestRefusesWithoutTPMOrNonce(t *testing.T) {
	root, _ := bootedDevice(t, "")
	for _, tc := range []struct {
		name  string
		args  []string
		want  error
		words string
	}{
		{"no TPM", []string{"--nonce", hex.EncodeToString(make([]byte, 32))}, tpm.ErrNoTPM, "dev/tpmrm0"},
		{"nonce not hex", []string{"--nonce", "xyz"}, hex.InvalidByteError('x'), "--nonce"},
		{"no nonce", nil, nil, "nonce"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runAgent(t, append([]string{"attest", "--root", root}, tc.args...)...)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("attest %v: %v, want %v naming %q\n%s", tc.args, err, tc.want, tc.words, out)
			}
		})
	}
}

func TestStatusShowsTheMeasuredBoot(t *testing.T) {
	addr := tpmtest.Swtpm(t)
	for _, tc := range []struct {
		name string
		tpm  string
		want string
	}{
		{"TPM", addr, "measured boot: slot B: release 1.3.0, measured, matches signed manifest\n"},
		{"no TPM", "", "measured boot: slot B: release 1.3.0, unmeasured\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := bootedDevice(t, tc.tpm)
			args := []string{"status", "--root", root}
			if tc.tpm != "" {
				args = append(args, "--tpm", tc.tpm)
			}
			out, err := runAgent(t, args...)
			if err != nil {
				t.Fatalf("status: %v\n%s", err, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("status lacks %q:\n%s", tc.want, out)
			}
		})
	}
}
