package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cairn-edge/cairn/agent/k3s"
	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/internal/atomicfile"
	"github.com/cairn-edge/cairn/partitions"
)

// Where the k3s token is kept on a device with a TPM (docs/tpm.md, "The k3s
// token").
const (
	// DefaultSealedTokenPath is the token sealed by the TPM, on /var.
	DefaultSealedTokenPath = StateDir + "/k3s/token.sealed"
	// DefaultUnsealedTokenPath is the token k3s reads, on tmpfs: it is
	// gone at power-off, and only a boot the release key approved writes it.
	DefaultUnsealedTokenPath = "/run/cairn/k3s/token"
)

// How the k3s token is kept, as K3sTokenStatus.Kept says it.
const (
	TokenSealed    = "sealed"    // sealed by the TPM on /var, unsealed to /run
	TokenPlaintext = "plaintext" // no TPM: a 0600 file on /var, or the operator's token_file
	TokenNone      = "none"      // no token configured: k3s makes its own
	TokenWithheld  = "withheld"  // k3s gets no token on this boot; Error says why
)

var (
	// ErrTokenSealed: the k3s token is sealed by the TPM and this boot may
	// not unseal it (slot modified, release not signed, policy refused).
	ErrTokenSealed = errors.New("k3s token is sealed and this boot may not unseal it")
	// ErrTokenNeedsTPM: the device has no TPM but cairn.health.require_tpm
	// is set, so the token is not kept in plaintext.
	ErrTokenNeedsTPM = errors.New("no TPM, and cairn.health.require_tpm is set: the k3s token is not kept in plaintext")
)

// K3sTokenFiles says where the token is kept on a device with a TPM. The
// paths are the device's own, not joined with MeasuredBoot.Root, like
// those of k3s.Paths.
type K3sTokenFiles struct {
	Sealed   string // tpm.Sealed JSON on /var; DefaultSealedTokenPath
	Unsealed string // what k3s reads, on /run; DefaultUnsealedTokenPath
}

// K3sTokenStatus is the token line of status' k3s section.
type K3sTokenStatus struct {
	Kept    string `json:"kept"` // TokenSealed, TokenPlaintext, TokenNone or TokenWithheld
	Summary string `json:"summary"`
	Error   string `json:"error,omitempty"`
}

// PrepareK3sToken decides where this boot keeps the k3s token and rewrites
// spec and paths so that k3s.Render puts it there. With a TPM, the token
// (spec.Token or the content of spec.TokenFile) is kept sealed in
// files.Sealed to the release key's policy, and the plaintext goes only to
// files.Unsealed, which paths.Token then names; a plaintext token file
// left on /var is removed. The first boot seals; every boot, the first
// included, must unseal with the policy signatures of boot's signed
// footer, or the error wraps ErrTokenSealed and k3s must not start. A
// changed token is sealed anew once this boot has proven it may unseal.
// Without a TPM spec and paths stay as they are (plaintext 0600 on /var),
// unless RequireTPM is set (ErrTokenNeedsTPM). The status is never nil.
func (m MeasuredBoot) PrepareK3sToken(ctx context.Context, boot *partitions.Boot, spec *k3s.Spec, paths *k3s.Paths, files K3sTokenFiles) (*K3sTokenStatus, error) {
	withheld := func(err error) (*K3sTokenStatus, error) {
		removeFile(files.Unsealed) // k3s must not find one from earlier
		return &K3sTokenStatus{Kept: TokenWithheld, Summary: "withheld, k3s not started", Error: err.Error()}, err
	}
	tok, err := spec.TokenValue()
	if err != nil {
		return withheld(fmt.Errorf("k3s token: %w", err))
	}
	t, err := m.openTPM(ctx)
	if err != nil {
		return withheld(fmt.Errorf("k3s token: %w", err))
	}
	switch {
	case tok == "":
		if t != nil {
			t.Close()
		}
		return &K3sTokenStatus{Kept: TokenNone, Summary: "none configured (k3s makes its own)"}, nil
	case t == nil && m.RequireTPM:
		return withheld(ErrTokenNeedsTPM)
	case t == nil && spec.TokenFile != "":
		return &K3sTokenStatus{Kept: TokenPlaintext, Summary: "plaintext in " + spec.TokenFile + " (no TPM)"}, nil
	case t == nil:
		return &K3sTokenStatus{Kept: TokenPlaintext, Summary: "plaintext in " + paths.Token + " (no TPM)"}, nil
	}
	defer t.Close()
	if err := m.unsealToken(t, boot, []byte(tok), files.Sealed); err != nil {
		return withheld(err)
	}
	if err := removeFile(paths.Token); err != nil {
		return withheld(fmt.Errorf("k3s token: plaintext left on /var: %w", err))
	}
	spec.Token, spec.TokenFile = tok, ""
	paths.Token = files.Unsealed
	return &K3sTokenStatus{Kept: TokenSealed, Summary: "sealed by the TPM in " + files.Sealed + ", unsealed for this boot to " + files.Unsealed}, nil
}

// unsealToken seals tok into path when nothing is sealed there yet, and
// unseals it with the booted footer's policy signatures.
func (m MeasuredBoot) unsealToken(t *tpm.TPM, boot *partitions.Boot, tok []byte, path string) error {
	key, err := m.releaseKey()
	if err != nil {
		return fmt.Errorf("k3s token: %w", err)
	}
	f, err := m.signedFooter(boot.Device)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTokenSealed, err)
	}
	s, err := readSealed(path)
	if errors.Is(err, fs.ErrNotExist) {
		s, err = sealTo(t, key, tok, path)
	}
	if err != nil {
		return fmt.Errorf("k3s token: %w", err)
	}
	got, err := t.Unseal(s, key, f.PolicySignatures())
	if err != nil {
		return fmt.Errorf("%w: %s: slot %s, release %s: %w", ErrTokenSealed, path, boot.Slot, f.Manifest.Version, err)
	}
	if !bytes.Equal(got, tok) {
		// The operator changed the token; this boot may hold it.
		_, err = sealTo(t, key, tok, path)
	}
	return err
}

func readSealed(path string) (*tpm.Sealed, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := tpm.ParseSealed(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func sealTo(t *tpm.TPM, key *ecdsa.PublicKey, tok []byte, path string) (*tpm.Sealed, error) {
	s, err := t.Seal(key, tok)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b, err := s.Marshal()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return nil, err
	}
	return s, nil
}

func removeFile(path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}
