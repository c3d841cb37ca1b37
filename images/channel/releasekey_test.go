package channel

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"crypto/ecdsa"
)

func TestReleaseKeyIsPrivateAndNeverReplaced(t *testing.T) {
	r, err := Init(t.TempDir(), InitOptions{RootKeys: 1, RootThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	key, err := GenerateReleaseKey(r.ReleaseKeyPath(), r.ReleasePublicKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(r.ReleaseKeyPath())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("release key mode %v, %v: want 0600", st.Mode().Perm(), err)
	}
	if filepath.Dir(r.ReleaseKeyPath()) != r.KeysDir() {
		t.Fatalf("release key outside the keys dir: %s", r.ReleaseKeyPath())
	}
	priv, err := ReadReleaseKey(r.ReleaseKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ReadReleasePublicKey(r.ReleasePublicKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("footer"))
	sig, err := ecdsa.SignASN1(nil, priv, d[:])
	if err != nil || !ecdsa.VerifyASN1(pub, d[:], sig) || !priv.PublicKey.Equal(&key.PublicKey) {
		t.Fatalf("keys read back do not pair: %v", err)
	}
	if _, err := GenerateReleaseKey(r.ReleaseKeyPath(), r.ReleasePublicKeyPath()); !errors.Is(err, ErrReleaseKeyExists) {
		t.Fatalf("second generate: %v, want ErrReleaseKeyExists", err)
	}
	// The TUF key loaders glob *.pem in the keys dir: the release key must
	// not break them.
	if _, err := Open(r.Dir); err != nil {
		t.Fatal(err)
	}
	if _, err := keysFor(r.KeysDir(), &r.root.Signed, "timestamp"); err != nil {
		t.Fatalf("TUF keys with a release key beside them: %v", err)
	}
	if _, err := ReadReleaseKey(filepath.Join(r.KeysDir(), "missing")); err == nil {
		t.Fatal("missing key: no error")
	}
}
