package agent_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest/signedslot"
	cloudinit "github.com/cairn-edge/cairn/cloud-init"
	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/images/statecrypt"
	"github.com/cairn-edge/cairn/internal/atomicfile"
	"github.com/cairn-edge/cairn/partitions"
)

// measuredDevice is a device booted from slot B holding release 1.3.0,
// with the release key's public half where the image keeps it.
type measuredDevice struct {
	root   string
	boot   *partitions.Boot
	key    *ecdsa.PrivateKey
	footer *footer.Footer
}

func newMeasuredDevice(t *testing.T) *measuredDevice {
	t.Helper()
	d := signedslot.NewDevice(t, agent.DefaultReleaseKeyPath, "1.3.0", "qemu-x86_64")
	return &measuredDevice{root: d.Root, boot: d.Boot, key: d.Key, footer: d.Footer}
}

// measure does what cairn-init does before mounting root: extend the TPM
// with the identity of the footer's release booted from slot.
func (d *measuredDevice) measure(t *testing.T, addr string, f *footer.Footer, slot string) {
	t.Helper()
	tp, err := tpm.Open(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	id, err := f.Identity(slot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Measure(filepath.Join(d.root, tpm.DefaultLogPath), id); err != nil {
		t.Fatal(err)
	}
}

func TestMeasuredSlotInStatusAndHealthGate(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tpm        bool
		tamper     func(d *measuredDevice) *footer.Footer // what cairn-init measured instead
		requireTPM bool
		summary    string
		gateError  error // nil: the check passes
	}{
		{name: "measured", tpm: true,
			summary: "slot B: release 1.3.0, measured, matches signed manifest"},
		{name: "measured, TPM required", tpm: true, requireTPM: true,
			summary: "slot B: release 1.3.0, measured, matches signed manifest"},
		{name: "no TPM", summary: "slot B: release 1.3.0, unmeasured"},
		{name: "no TPM, TPM required", requireTPM: true,
			summary: "slot B: release 1.3.0, unmeasured", gateError: agent.ErrTPMRequired},
		{name: "slot holds another release than was measured", tpm: true,
			tamper: func(d *measuredDevice) *footer.Footer {
				return signedslot.Write(t, filepath.Join(t.TempDir(), "other.img"), d.key, "1.2.0", "qemu-x86_64")
			},
			summary: "slot B: release 1.2.0, measured, does not match signed manifest", gateError: tpm.ErrUnknownRootHash},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newMeasuredDevice(t)
			m := agent.MeasuredBoot{Root: d.root, RequireTPM: tc.requireTPM}
			if tc.tpm {
				m.TPM = tpmtest.Swtpm(t)
				measured := d.footer
				if tc.tamper != nil {
					measured = tc.tamper(d)
				}
				d.measure(t, m.TPM, measured, "B")
			}

			ms := m.Measurement(context.Background(), d.boot)
			if ms.Summary != tc.summary {
				t.Errorf("status summary %q, want %q", ms.Summary, tc.summary)
			}
			st := &agent.Status{Booted: d.boot.Slot, Measurement: ms}
			var text bytes.Buffer
			if err := st.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text.String(), "measured boot: "+tc.summary) {
				t.Errorf("status text lacks the measured boot line:\n%s", text.String())
			}

			check := m.HealthCheck(d.boot)
			if check.Name() != "measured slot matches signed manifest" {
				t.Errorf("check named %q", check.Name())
			}
			err := check.Run(context.Background())
			if tc.gateError == nil && err != nil || tc.gateError != nil && !errors.Is(err, tc.gateError) {
				t.Fatalf("health check: %v, want %v", err, tc.gateError)
			}
			if err != nil && !strings.HasPrefix(err.Error(), tc.summary) {
				t.Errorf("health check reason %q does not start with %q", err, tc.summary)
			}
		})
	}
}

func TestHealthGateFailsABootThatCouldNotOpenTheEncryptedState(t *testing.T) {
	for _, tc := range []struct {
		name, report string
		want         error
		reason       string // in the check's error; "" for a check that passes
	}{
		{"opened", `{"device": "/dev/vda4", "encrypted": true, "var": "partition"}`, nil, ""},
		{"not opened", `{"device": "/dev/vda4", "encrypted": true, "var": "tmpfs", "error": "unseal: no signed PCR policy"}`,
			agent.ErrStateNotOpened, "no signed PCR policy"},
		{"unreadable report", `{"var": `, nil, "state.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newMeasuredDevice(t)
			m := agent.MeasuredBoot{Root: d.root, TPM: tpmtest.Swtpm(t)}
			d.measure(t, m.TPM, d.footer, "B")
			if err := atomicfile.Write(filepath.Join(d.root, statecrypt.ReportPath), []byte(tc.report), 0o644); err != nil {
				t.Fatal(err)
			}
			err := m.HealthCheck(d.boot).Run(context.Background())
			if (err == nil) != (tc.reason == "") || !errors.Is(err, tc.want) && tc.want != nil || err != nil && !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("health check: %v; want %v naming %q", err, tc.want, tc.reason)
			}
		})
	}
}

func TestMeasuredSlotRefusesAFooterTheReleaseKeyDidNotSign(t *testing.T) {
	d := newMeasuredDevice(t)
	other, err := channel.GenerateReleaseKey(filepath.Join(t.TempDir(), "k"), filepath.Join(t.TempDir(), "k.pub"))
	if err != nil {
		t.Fatal(err)
	}
	signedslot.Write(t, filepath.Join(d.root, d.boot.Device), other, "1.3.0", "qemu-x86_64")
	m := agent.MeasuredBoot{Root: d.root}
	if err := m.HealthCheck(d.boot).Run(context.Background()); !errors.Is(err, footer.ErrBadSignature) {
		t.Fatalf("health check with a footer signed by another key: %v, want footer.ErrBadSignature", err)
	}
}

func TestMeasurementLogOfAnotherSlotFails(t *testing.T) {
	d := newMeasuredDevice(t)
	m := agent.MeasuredBoot{Root: d.root, TPM: tpmtest.Swtpm(t)}
	d.measure(t, m.TPM, d.footer, "A")
	if _, err := m.CheckMeasuredSlot(context.Background(), d.boot); !errors.Is(err, agent.ErrMeasuredOtherSlot) {
		t.Fatalf("log of slot A on a device booted from B: %v, want ErrMeasuredOtherSlot", err)
	}
}

func TestCommitRaisesTheTPMFloor(t *testing.T) {
	d := newMeasuredDevice(t)
	m := agent.MeasuredBoot{Root: d.root, TPM: tpmtest.Swtpm(t)}
	d.measure(t, m.TPM, d.footer, "B")
	ctx := context.Background()
	if err := m.RaiseTPMFloor(ctx, d.boot, semver.MustParse("1.3.0")); err != nil {
		t.Fatal(err)
	}
	tp, err := tpm.Open(ctx, m.TPM)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tp.Floor()
	tp.Close()
	want, _ := agent.FloorNumber(semver.MustParse("1.3.0"))
	if err != nil || got != want {
		t.Fatalf("TPM floor %d, %v; want %d", got, err, want)
	}
	// The slot holds 1.3.0: committing another version is a wiring error.
	if err := m.RaiseTPMFloor(ctx, d.boot, semver.MustParse("1.4.0")); err == nil {
		t.Fatal("raised the floor to a release the booted slot does not hold")
	}

	// Without a TPM the floor file is the only floor, and raising is a no-op.
	noTPM := agent.MeasuredBoot{Root: d.root}
	if err := noTPM.RaiseTPMFloor(ctx, d.boot, semver.MustParse("1.3.0")); err != nil {
		t.Fatalf("no TPM: %v", err)
	}
}

func TestFloorNumberKeepsReleaseOrder(t *testing.T) {
	ordered := []string{"0.0.1", "0.1.0", "0.1.2097151", "1.0.0-rc.1", "1.0.0", "1.2.3", "1.10.0", "2.0.0"}
	var last uint64
	for i, s := range ordered {
		n, err := agent.FloorNumber(semver.MustParse(s))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && n < last {
			t.Errorf("FloorNumber(%s) = %d, below %s's %d", s, n, ordered[i-1], last)
		}
		last = n
	}
	if pre, _ := agent.FloorNumber(semver.MustParse("1.0.0-rc.1")); pre != mustFloor(t, "1.0.0") {
		t.Error("a pre-release does not count as its release")
	}
	if _, err := agent.FloorNumber(semver.MustParse("1.2097152.0")); err == nil {
		t.Error("minor version 2^21 accepted")
	}
}

func mustFloor(t *testing.T, v string) uint64 {
	n, err := agent.FloorNumber(semver.MustParse(v))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRequireTPMFromTheConfigFailsABootWithoutTPM(t *testing.T) {
	for _, tc := range []struct {
		userData string
		want     error
	}{
		{"#cloud-config\ncairn:\n  health:\n    require_tpm: true\n", agent.ErrTPMRequired},
		{"#cloud-config\ncairn:\n  health:\n    require_tpm: false\n", nil},
		{"#cloud-config\nhostname: box\n", nil},
	} {
		ud, err := cloudinit.ParseUserData("user-data", []byte(tc.userData))
		if err != nil {
			t.Fatal(err)
		}
		d := newMeasuredDevice(t)
		m := agent.MeasuredBoot{Root: d.root}
		if ud.Cairn.Health != nil {
			m.RequireTPM = ud.Cairn.Health.RequireTPM
		}
		if err := m.HealthCheck(d.boot).Run(context.Background()); !errors.Is(err, tc.want) {
			t.Errorf("%q on a device without TPM: %v, want %v", tc.userData, err, tc.want)
		}
	}
}
