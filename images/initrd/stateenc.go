package initrd

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/images/statecrypt"
	"github.com/cairn-edge/cairn/internal/atomicfile"
)

// StateCryptName is the device-mapper name of the decrypted payload of
// the state partition.
const StateCryptName = "cairn-state"

// ErrStateLocked means the state partition is encrypted (or must be) and
// this boot may not open it: no TPM, a TPM that refuses the booted slot's
// policy, or a damaged header. The partition is left as it is.
var ErrStateLocked = errors.New("state partition is encrypted and this boot may not open it")

// StateCrypt is what cairn-init needs to open the state partition: the
// board's switch, and the TPM with the policy the booted slot is approved
// by.
type StateCrypt struct {
	// Encrypt is the board's encrypt_state: a blank state partition is
	// created encrypted. A partition with a header is opened as encrypted
	// whatever Encrypt says.
	Encrypt bool
	// TPM seals and unseals the payload key; nil when there is none.
	TPM *tpm.TPM
	// TPMErr says why TPM is nil on a device that has a TPM which did not
	// open; nil with TPM nil means the device has no TPM.
	TPMErr error
	// PolicyKey is the release key; Approved the booted slot's footer's
	// policy signatures (footer.Footer.PolicySignatures).
	PolicyKey *ecdsa.PublicKey
	Approved  []*tpm.PolicySignature
	// DevDir is where device-mapper nodes are made: "/dev".
	DevDir string
}

// Open returns the block device holding the state file system on dev:
// dev itself when plain, a dm-crypt mapping when encrypted. On a first
// boot with Encrypt (no header, no file system) it creates the header
// first. Any error leaves dev's bytes as they were.
func (s StateCrypt) Open(dev string, logf func(string, ...any)) (string, statecrypt.Report, error) {
	rep := statecrypt.Report{Device: dev}
	h, err := readStateHeader(dev)
	switch {
	case err == nil:
		rep.Encrypted = true
		node, err := s.unlock(dev, h)
		rep.Mapped = node
		return node, rep, err
	case !errors.Is(err, statecrypt.ErrBadMagic):
		rep.Encrypted = true
		return "", rep, fmt.Errorf("%w: %w", ErrStateLocked, err)
	case !s.Encrypt:
		return dev, rep, nil
	}
	plain, err := hasExt4(dev)
	switch {
	case err != nil:
		return "", rep, err
	case plain:
		rep.Note = "encrypt_state is on, but this state partition was made in plaintext before; it stays so"
	case s.TPM == nil && s.TPMErr != nil:
		rep.Encrypted = true
		return "", rep, fmt.Errorf("%w: first boot, not creating it in plaintext: %w", ErrStateLocked, s.TPMErr)
	case s.TPM == nil:
		rep.Note = "encrypt_state is on, but the device has no TPM: the state partition is plaintext"
	default:
		rep.Encrypted, rep.Created = true, true
		node, err := s.create(dev, logf)
		rep.Mapped = node
		return node, rep, err
	}
	logf("state %s: %s", dev, rep.Note)
	return dev, rep, nil
}

// create seals a new random key, proves this boot can unseal it and the
// kernel can map the payload with it, then writes and syncs the header,
// before anything is written to the payload.
func (s StateCrypt) create(dev string, logf func(string, ...any)) (string, error) {
	key := make([]byte, statecrypt.KeySize)
	defer clear(key)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return "", fmt.Errorf("state %s: key: %w", dev, err)
	}
	sealed, err := s.TPM.Seal(s.PolicyKey, key)
	if err != nil {
		return "", fmt.Errorf("%w: first boot: %w", ErrStateLocked, err)
	}
	// A key this boot cannot unseal would lock the next boot out of
	// everything stored now: write nothing then.
	check, err := s.TPM.Unseal(sealed, s.PolicyKey, s.Approved)
	if err != nil {
		return "", fmt.Errorf("%w: first boot: the new key does not unseal on this boot, nothing written: %w", ErrStateLocked, err)
	}
	clear(check)
	// Mapping writes nothing; done first, it shows the kernel has the
	// cipher before the header commits the partition to it.
	h := &statecrypt.Header{PayloadOffset: statecrypt.PayloadOffset, Cipher: statecrypt.Cipher, Key: sealed}
	node, err := SetupCrypt(s.DevDir, StateCryptName, dev, key, int64(h.PayloadOffset))
	if err != nil {
		return "", err
	}
	if err := writeStateHeader(dev, h); err != nil {
		if rerr := RemoveCrypt(s.DevDir, StateCryptName); rerr != nil {
			logf("state %s: %v", dev, rerr)
		}
		return "", err
	}
	logf("first boot: state %s encrypted (%s), key sealed by the TPM to the release key's policy", dev, statecrypt.Cipher)
	return node, nil
}

// unlock unseals the header's key with the booted slot's policy and maps
// the payload.
func (s StateCrypt) unlock(dev string, h *statecrypt.Header) (string, error) {
	if s.TPM == nil {
		why := s.TPMErr
		if why == nil {
			why = tpm.ErrNoTPM
		}
		return "", fmt.Errorf("%w: %w", ErrStateLocked, why)
	}
	key, err := s.TPM.Unseal(h.Key, s.PolicyKey, s.Approved)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrStateLocked, dev, err)
	}
	defer clear(key)
	return SetupCrypt(s.DevDir, StateCryptName, dev, key, int64(h.PayloadOffset))
}

// readStateHeader decodes the header at the start of dev; an
// unencrypted partition gives statecrypt.ErrBadMagic.
func readStateHeader(dev string) (*statecrypt.Header, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, statecrypt.PayloadOffset)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: read header: %w", dev, err)
	}
	h, err := statecrypt.Decode(b[:n])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dev, err)
	}
	return h, nil
}

// writeStateHeader writes h in place at the start of dev, padded with
// zeros to whole 4 KiB blocks, and syncs it: the key must be on disk
// before any data depends on it.
func writeStateHeader(dev string, h *statecrypt.Header) error {
	b, err := h.Encode()
	if err != nil {
		return fmt.Errorf("state %s: %w", dev, err)
	}
	b = append(b, make([]byte, (4096-len(b)%4096)%4096)...)
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("state %s: write header at offset 0: %w", dev, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("state %s: sync header: %w", dev, err)
	}
	return f.Close()
}

// mountVar mounts sysroot/var from the state partition dev, through
// dm-crypt when it is encrypted, and writes the report to report. A
// partition this boot may not open is left as it is and /var is a tmpfs:
// the boot goes on, and the agent's health gate, reading the report, fails
// it, so a trial boot falls back.
func mountVar(sysroot, dev, report string, s StateCrypt, logf func(string, ...any)) error {
	fsdev, rep, err := s.Open(dev, logf)
	if err != nil {
		logf("state %s: %v", dev, err)
		logf("state %s left as it is; /var is a tmpfs for this boot", dev)
		rep.Var, rep.Error = statecrypt.VarTmpfs, err.Error()
		if err := mountRAMState(sysroot); err != nil {
			return err
		}
		return writeStateReport(report, rep)
	}
	if err := mountState(sysroot, fsdev, logf); err != nil {
		return err
	}
	rep.Var = statecrypt.VarPartition
	return writeStateReport(report, rep)
}

func writeStateReport(path string, rep statecrypt.Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// stateCryptFor gathers what opening the state partition takes on this
// device: the switch of the board the booted slot is for, the release key,
// the slot's footer's policy signatures and the TPM, which the returned
// function closes.
func stateCryptFor(ctx context.Context, f *footer.Footer, logf func(string, ...any)) (StateCrypt, func(), error) {
	s := StateCrypt{Approved: f.PolicySignatures(), DevDir: "/dev"}
	if b, err := boards.Load(f.Manifest.Board); err != nil {
		logf("state: encrypt_state unknown, taken as off: %v", err)
	} else {
		s.Encrypt = b.EncryptState
	}
	key, err := channel.ReadReleasePublicKey("/" + ReleaseKeyPath)
	if err != nil {
		return s, nil, err
	}
	s.PolicyKey = key
	t, err := tpm.Open(ctx, tpm.DefaultDevice)
	switch {
	case errors.Is(err, tpm.ErrNoTPM):
	case err != nil:
		s.TPMErr = err
	default:
		s.TPM = t
	}
	return s, func() {
		if t != nil {
			t.Close()
		}
	}, nil
}
