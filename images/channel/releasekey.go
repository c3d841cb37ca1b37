package channel

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cairn-edge/cairn/internal/atomicfile"
)

// The release key is the one ECDSA P-256 key that signs slot footers and
// the TPM PCR policies a release approves. It is not a TUF key: TPMs verify
// ECDSA but not ed25519, and a TPM policy names one fixed key. Its private
// half lives in the keys directory as release.key (not *.pem, so the TUF
// key loaders never see it); its public half is baked into images.
const (
	ReleaseKeyFile       = "release.key"
	ReleasePublicKeyFile = "release-key.pub"
)

// ErrReleaseKeyExists: a release key is already there. Replacing it would
// orphan every secret devices sealed to it, so it is never overwritten.
var ErrReleaseKeyExists = errors.New("release key already exists")

// ReleaseKeyPath is the release key's private half in the repository.
func (r *Repo) ReleaseKeyPath() string { return filepath.Join(r.KeysDir(), ReleaseKeyFile) }

// ReleasePublicKeyPath is the release key's public half, to bake into images.
func (r *Repo) ReleasePublicKeyPath() string { return filepath.Join(r.Dir, ReleasePublicKeyFile) }

// GenerateReleaseKey makes the release key: the private half as PKCS#8 PEM,
// mode 0600, at keyPath (its directory made 0700 if missing), the public half
// as PKIX PEM at pubPath. An existing key is left alone: ErrReleaseKeyExists.
func GenerateReleaseKey(keyPath, pubPath string) (*ecdsa.PrivateKey, error) {
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("release key %s: %w", p, ErrReleaseKeyExists)
		}
	}
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return nil, fmt.Errorf("release key: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("release key: %w", err)
	}
	if err := atomicfile.Write(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return nil, fmt.Errorf("release key: %w", err)
	}
	return key, nil
}

// ReadReleaseKey reads the private release key written by GenerateReleaseKey.
func ReadReleaseKey(path string) (*ecdsa.PrivateKey, error) {
	block, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block)
	if err != nil {
		return nil, fmt.Errorf("release key %s: %w", path, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("release key %s: %T, want ECDSA P-256", path, parsed)
	}
	return key, nil
}

// ReadReleasePublicKey reads the public release key written by
// GenerateReleaseKey.
func ReadReleasePublicKey(path string) (*ecdsa.PublicKey, error) {
	block, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKIXPublicKey(block)
	if err != nil {
		return nil, fmt.Errorf("release public key %s: %w", path, err)
	}
	key, ok := parsed.(*ecdsa.PublicKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("release public key %s: %T, want ECDSA P-256", path, parsed)
	}
	return key, nil
}

func readPEM(path, typ string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("release key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("release key %s: not a PEM %s", path, typ)
	}
	return block.Bytes, nil
}
