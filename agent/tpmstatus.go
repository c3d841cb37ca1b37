package agent

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/images/statecrypt"
	"github.com/cairn-edge/cairn/partitions"
)

// Where the device keeps what the measured boot needs (docs/tpm.md).
const (
	// DefaultReleaseKeyPath is ReleaseKeyPath, under the name the
	// measured boot's callers know.
	DefaultReleaseKeyPath = ReleaseKeyPath
	// DefaultAKPath is the attestation key blob, on the state partition.
	DefaultAKPath = "/var/lib/cairn/tpm/ak.json"
	// DefaultFirmwareLogPath is the firmware's TCG event log, when the
	// kernel exposes one.
	DefaultFirmwareLogPath = "/sys/kernel/security/tpm0/binary_bios_measurements"
)

// MeasuredSlotCheckName names the health gate's check of the measured boot.
const MeasuredSlotCheckName = "measured slot matches signed manifest"

var (
	// ErrTPMRequired: the device has no TPM but the configuration sets
	// cairn.health.require_tpm.
	ErrTPMRequired = errors.New("no TPM, and cairn.health.require_tpm is set")
	// ErrMeasuredOtherSlot: the measurement log names another slot than
	// the one the device runs from.
	ErrMeasuredOtherSlot = errors.New("measured slot is not the booted slot")
	// ErrStateNotOpened: cairn-init could not open the encrypted state
	// partition on this boot (statecrypt.Report's error) and /var is a tmpfs.
	ErrStateNotOpened = errors.New("encrypted state partition not opened on this boot, /var is a tmpfs")
)

// MeasuredBoot says where the measured boot's pieces are on a device. Paths
// are relative to Root ("/" on a device, a test's directory otherwise).
type MeasuredBoot struct {
	Root string
	// TPM is the address tpm.Open takes; empty: Root's /dev/tpmrm0.
	TPM string
	// Open opens the TPM in place of TPM's address when set (tests: the
	// in-process simulator); it returns tpm.ErrNoTPM for a device without.
	Open func(context.Context) (*tpm.TPM, error)
	// ReleaseKey verifies the booted slot's footer; nil: the key at
	// DefaultReleaseKeyPath under Root.
	ReleaseKey *ecdsa.PublicKey
	// RequireTPM fails the health check on a device without TPM
	// (cairn.health.require_tpm); otherwise such a device passes unmeasured.
	RequireTPM bool
}

func (m MeasuredBoot) path(p string) string { return filepath.Join(m.Root, p) }

func (m MeasuredBoot) tpmAddr() string {
	if m.TPM == "" {
		return m.path(tpm.DefaultDevice)
	}
	return m.TPM
}

// openTPM opens the TPM, or returns nil, nil when the device has none.
func (m MeasuredBoot) openTPM(ctx context.Context) (*tpm.TPM, error) {
	open := m.Open
	if open == nil {
		open = func(ctx context.Context) (*tpm.TPM, error) { return tpm.Open(ctx, m.tpmAddr()) }
	}
	t, err := open(ctx)
	if errors.Is(err, tpm.ErrNoTPM) {
		return nil, nil
	}
	return t, err
}

func (m MeasuredBoot) releaseKey() (*ecdsa.PublicKey, error) {
	if m.ReleaseKey != nil {
		return m.ReleaseKey, nil
	}
	return channel.ReadReleasePublicKey(m.path(DefaultReleaseKeyPath))
}

// SignedFooter reads the footer of the slot on device (a path under Root)
// and checks it is a release signed by the release key: what the slot holds,
// as far as anyone may trust it.
func (m MeasuredBoot) SignedFooter(device string) (*footer.Footer, error) {
	return m.signedFooter(device)
}

func (m MeasuredBoot) signedFooter(device string) (*footer.Footer, error) {
	key, err := m.releaseKey()
	if err != nil {
		return nil, err
	}
	f, err := footer.ReadFromDevice(m.path(device))
	if err != nil {
		return nil, err
	}
	if err := f.Verify(key); err != nil {
		return nil, fmt.Errorf("slot footer %s: %w", device, err)
	}
	return f, nil
}

// CheckMeasuredSlot replays the measurement log against the TPM and checks
// that the booted slot was measured as the release its signed footer names.
// Without a TPM the result is unmeasured and the error nil. The Result
// names the booted slot and its release even when the check fails early.
func (m MeasuredBoot) CheckMeasuredSlot(ctx context.Context, boot *partitions.Boot) (tpm.Result, error) {
	r := tpm.Result{Slot: string(boot.Slot)}
	f, err := m.signedFooter(boot.Device)
	if err != nil {
		return r, err
	}
	r.Release = f.Manifest.Version
	log, err := tpm.ReadLog(m.path(tpm.DefaultLogPath))
	if err != nil {
		return r, err
	}
	if n := len(log.Events); n > 0 && log.Events[n-1].Slot != string(boot.Slot) {
		return r, fmt.Errorf("%w: log says slot %s, booted slot %s", ErrMeasuredOtherSlot, log.Events[n-1].Slot, boot.Slot)
	}
	t, err := m.openTPM(ctx)
	if err != nil {
		return r, err
	}
	if t != nil {
		defer t.Close()
	}
	got, err := tpm.Check(t, log, tpm.Manifest{Release: f.Manifest.Version, RootHash: f.RootHash})
	if got.Slot == "" {
		got.Slot, got.Release = r.Slot, r.Release
	}
	return got, err
}

// MeasurementStatus is the measured-boot line of `cairn-agent status`.
type MeasurementStatus struct {
	Summary         string `json:"summary"` // e.g. "slot B: release 1.3.0, measured, matches signed manifest"
	Measured        bool   `json:"measured"`
	MatchesManifest bool   `json:"matches_manifest"`
	Error           string `json:"error,omitempty"`
}

// Measurement runs CheckMeasuredSlot for status: a failure is part of the
// status, not a reason to show none.
func (m MeasuredBoot) Measurement(ctx context.Context, boot *partitions.Boot) *MeasurementStatus {
	r, err := m.CheckMeasuredSlot(ctx, boot)
	s := &MeasurementStatus{Summary: r.String(), Measured: r.Measured, MatchesManifest: r.MatchesManifest}
	if err != nil {
		s.Error = err.Error()
	}
	return s
}

// HealthCheck is the health gate's check that the measured slot matches its
// signed manifest. A device without TPM passes unmeasured unless
// RequireTPM is set. A boot on which cairn-init could not open the
// encrypted state partition fails it too (ErrStateNotOpened): the slot
// the TPM does not approve is the usual reason.
func (m MeasuredBoot) HealthCheck(boot *partitions.Boot) health.Check {
	return health.Func(MeasuredSlotCheckName, func(ctx context.Context) error {
		r, err := m.CheckMeasuredSlot(ctx, boot)
		switch {
		case err != nil:
			return fmt.Errorf("%s: %w", r, err)
		case !r.Measured && m.RequireTPM:
			return fmt.Errorf("%s: %w", r, ErrTPMRequired)
		}
		if err := m.stateOpened(); err != nil {
			return fmt.Errorf("%s: %w", r, err)
		}
		return nil
	})
}

// stateOpened reads cairn-init's report on the state partition; none
// (a diskless boot, an older cairn-init) is fine.
func (m MeasuredBoot) stateOpened() error {
	rep, err := statecrypt.ReadReport(m.path(statecrypt.ReportPath))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case rep.Error != "" || rep.Var == statecrypt.VarTmpfs:
		return fmt.Errorf("%w: %s", ErrStateNotOpened, rep.Error)
	}
	return nil
}
