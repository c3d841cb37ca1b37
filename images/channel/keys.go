package channel

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cairn-edge/cairn/internal/atomicfile"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ErrNotEnoughKeys means the keys directory holds fewer private keys of a
// role than its threshold needs.
var ErrNotEnoughKeys = errors.New("not enough private keys to meet the threshold")

// Key is a private signing key with its TUF key ID.
type Key struct {
	ID      string
	Role    string
	Path    string
	Private ed25519.PrivateKey
}

// Public is the key as root metadata lists it.
func (k *Key) Public() *metadata.Key {
	pub, err := metadata.KeyFromPublicKey(k.Private.Public())
	if err != nil {
		panic(err) // an ed25519 public key always converts
	}
	return pub
}

// Signer signs metadata with the key.
func (k *Key) Signer() (signature.Signer, error) {
	return signature.LoadSigner(k.Private, crypto.Hash(0))
}

// GenerateKey makes an ed25519 key for role and writes it, PKCS#8 PEM with
// mode 0600, into dir as <role>-<keyid prefix>.pem.
func GenerateKey(dir, role string) (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	k := &Key{Role: role, Private: priv}
	if k.ID, err = k.Public().ID(); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	k.Path = filepath.Join(dir, fmt.Sprintf("%s-%s.pem", role, k.ID[:16]))
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := atomicfile.Write(k.Path, data, 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// ReadKey reads a PEM private key written by GenerateKey.
func ReadKey(path string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("key %s: not a PEM private key", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key %s: %T, want ed25519", path, parsed)
	}
	k := &Key{Path: path, Private: priv, Role: strings.SplitN(filepath.Base(path), "-", 2)[0]}
	if k.ID, err = k.Public().ID(); err != nil {
		return nil, err
	}
	return k, nil
}

// keysFor returns the private keys in dir whose IDs the role lists in root,
// and fails unless they meet the role's threshold.
func keysFor(dir string, root *metadata.RootType, role string) ([]*Key, error) {
	r, ok := root.Roles[role]
	if !ok {
		return nil, fmt.Errorf("root has no role %q", role)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.pem"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var keys []*Key
	for _, p := range paths {
		k, err := ReadKey(p)
		if err != nil {
			return nil, err
		}
		for _, id := range r.KeyIDs {
			if id == k.ID {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) < r.Threshold {
		return nil, fmt.Errorf("keys %s: role %s: %d of %d: %w", dir, role, len(keys), r.Threshold, ErrNotEnoughKeys)
	}
	return keys, nil
}

// sign replaces the signatures of meta with ones from keys.
func sign[T metadata.Roles](meta *metadata.Metadata[T], keys ...*Key) error {
	meta.ClearSignatures()
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.ID] {
			continue
		}
		seen[k.ID] = true
		s, err := k.Signer()
		if err != nil {
			return err
		}
		if _, err := meta.Sign(s); err != nil {
			return fmt.Errorf("sign with key %s: %w", k.ID, err)
		}
	}
	return nil
}
