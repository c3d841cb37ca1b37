package update

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/images/slot"
)

// builtSlot is a real slot image: ext4, dm-verity tree, signed footer.
func builtSlot(t *testing.T, key *ecdsa.PrivateKey) (string, *slot.Result) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds an ext4 slot image with mkfs.ext4 and debugfs")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"boot/vmlinuz", "boot/initrd"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("test payload "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "slot.img")
	res, err := slot.Build(context.Background(), slot.Options{
		RootDir: root, Output: out, SlotSize: 8 << 20,
		Manifest:   release.Manifest{Format: release.ManifestFormat, Version: "1.2.0", Board: "qemu-amd64", Arch: "amd64"},
		ReleaseKey: key, SourceDateEpoch: 1700000000,
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

func releaseOf(t *testing.T, image, rootHash string) *testRelease {
	t.Helper()
	dir := t.TempDir()
	m, err := release.Create(context.Background(), release.CreateOptions{
		Image: image, Version: "1.2.0", Board: "qemu-amd64", Arch: "amd64",
		VerityRootHash: rootHash, OutDir: dir, Created: time.Unix(1700000000, 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	return &testRelease{image: data, zst: filepath.Join(dir, m.Image.Path), manifest: m}
}

func TestInstalledSlotIsCheckedLikeCairnInitWill(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	image, built := builtSlot(t, key)
	wrongHash := sha256.Sum256([]byte("another release"))

	for _, tc := range []struct {
		name     string
		rootHash string
		pub      *ecdsa.PublicKey
		wantErr  bool
	}{
		{"signed slot with the manifest's root hash", built.RootHash, &key.PublicKey, false},
		{"footer signed by another key", built.RootHash, &other.PublicKey, true},
		{"manifest names another root hash", hex.EncodeToString(wrongHash[:]), &key.PublicKey, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rel := releaseOf(t, image, tc.rootHash)
			srv := serve(t, rel)
			dir := t.TempDir()
			dev := newSlot(t, dir, 12<<20) // a partition larger than the image
			in := &Installer{StateDir: dir, VerifyVerity: SlotVerifier{ReleaseKey: tc.pub}.Verify}
			err := in.Install(context.Background(), InstallRequest{Target: rel.target(srv.URL), Manifest: rel.manifest, Device: dev}, nil)
			if tc.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrVerityMismatch)) {
				t.Fatalf("install: %v", err)
			}
		})
	}

	t.Run("a flipped byte in the filesystem after install", func(t *testing.T) {
		rel := releaseOf(t, image, built.RootHash)
		dev := filepath.Join(t.TempDir(), "slot")
		data := append([]byte(nil), rel.image...)
		data[4096*3] ^= 0x01
		if err := os.WriteFile(dev, data, 0o600); err != nil {
			t.Fatal(err)
		}
		err := SlotVerifier{ReleaseKey: &key.PublicKey}.Verify(context.Background(), dev, rel.manifest)
		if !errors.Is(err, ErrVerityMismatch) {
			t.Fatalf("verify a tampered slot: %v", err)
		}
	})
}
