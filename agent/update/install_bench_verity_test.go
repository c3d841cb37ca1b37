package update

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/images/slot"
	"github.com/cairn-edge/cairn/images/verity"
)

// makeVerityRelease is makeRelease for a slot as cairn slot build lays it
// out: slotData as the filesystem, its dm-verity tree, and a footer signed
// by a fresh release key, so that an install checks the slot it wrote as
// it does on a device. It returns the key to check the footer with, in
// PKIX DER.
func makeVerityRelease(b *testing.B, size int64, seed uint64) (*testRelease, []byte) {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	fsSize, err := slot.Fit(size, 0)
	if err != nil {
		b.Fatal(err)
	}
	img := slotData(size, seed)
	clear(img[fsSize:])
	dir := b.TempDir()
	src := filepath.Join(dir, "slot.img")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(img); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	salt := sha256.Sum256([]byte("benchmark salt"))
	root, hashSize, err := verity.Build(ctx, f, f, fsSize, verity.Params{Salt: salt[:]})
	if err != nil {
		b.Fatal(err)
	}
	created := time.Unix(1700000000, 0).UTC()
	m := release.Manifest{Format: release.ManifestFormat, Version: "1.2.0", Board: "qemu-x86", Arch: "amd64",
		Created: created, VerityRootHash: hex.EncodeToString(root)}
	ft := &footer.Footer{SlotSize: size, DataSize: fsSize, HashOffset: fsSize, HashSize: hashSize,
		RootHash: root, Salt: salt[:], Manifest: &m}
	if err := ft.Sign(key); err != nil {
		b.Fatal(err)
	}
	fb, err := ft.Encode()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.WriteAt(fb, size-footer.Size); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	if img, err = os.ReadFile(src); err != nil {
		b.Fatal(err)
	}
	rm, err := release.Create(ctx, release.CreateOptions{
		Image: src, Version: m.Version, Board: m.Board, Arch: m.Arch, VerityRootHash: m.VerityRootHash,
		OutDir: filepath.Join(dir, "out"), Created: created,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := os.Remove(src); err != nil {
		b.Fatal(err)
	}
	return &testRelease{image: img, zst: filepath.Join(dir, "out", rm.Image.Path), manifest: rm}, pub
}

// slotVerifier is the check a device runs on the written slot, with the
// release key the benchmark signed the footer with.
func slotVerifier(t testing.TB, pub []byte) func(context.Context, string, *release.Manifest) error {
	k, err := x509.ParsePKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("release key is %T, want ECDSA", k)
	}
	return SlotVerifier{ReleaseKey: ek}.Verify
}
