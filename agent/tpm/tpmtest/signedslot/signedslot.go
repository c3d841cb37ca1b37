// Package signedslot writes slot images that hold nothing but a signed
// footer, and fake devices booted from them, for tests of code that reads
// the booted slot's footer.
package signedslot

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/images/verity"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/fakedevice"
)

// dataSize is the filesystem area of the slots Write makes.
const dataSize = 1 << 20

// RootHash is the dm-verity root hash Write records for version.
func RootHash(version string) []byte {
	h := sha256.Sum256([]byte("rootfs of " + version))
	return h[:]
}

// Write writes a sparse slot image at path (making its directory) holding
// release version for board, with a footer signed by the release key, and
// returns the footer. The filesystem and hash tree areas are zeros.
func Write(t testing.TB, path string, key *ecdsa.PrivateKey, version, board string) *footer.Footer {
	t.Helper()
	l, err := verity.NewLayout(dataSize)
	if err != nil {
		t.Fatal(err)
	}
	end := l.HashOffset + l.HashSize + footer.Size
	f := &footer.Footer{
		SlotSize: (end + verity.BlockSize - 1) / verity.BlockSize * verity.BlockSize,
		DataSize: dataSize, HashOffset: l.HashOffset, HashSize: l.HashSize,
		RootHash: RootHash(version), Salt: []byte("cairn test salt"),
		Manifest: &release.Manifest{
			Format: release.ManifestFormat, Version: version, Board: board, Arch: "amd64",
			Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), VerityRootHash: hex.EncodeToString(RootHash(version)),
		},
	}
	if err := f.Sign(key); err != nil {
		t.Fatal(err)
	}
	Put(t, path, f)
	return f
}

// Put writes a sparse slot image at path (making its directory) that
// carries f as it is: a footer a test changed after signing stays changed.
func Put(t testing.TB, path string, f *footer.Footer) {
	t.Helper()
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := out.WriteAt(b, f.SlotSize-footer.Size); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// Device is a fake device (package fakedevice) booted from slot B, whose
// slot holds a release signed by Key.
type Device struct {
	Root   string
	Boot   *partitions.Boot
	Key    *ecdsa.PrivateKey
	Footer *footer.Footer
}

// NewDevice makes a Device with release version for board in slot B and a
// new release key, whose public half it puts at pubPath under the root
// (where the image keeps it: agent.ReleaseKeyPath).
func NewDevice(t testing.TB, pubPath, version, board string) *Device {
	t.Helper()
	root := fakedevice.Root(t, "console=ttyS0 cairn.slot=B", "8:3", fakedevice.SDA()...)
	boot, err := partitions.Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(root, pubPath)
	if err := os.MkdirAll(filepath.Dir(pub), 0o755); err != nil {
		t.Fatal(err)
	}
	key, err := channel.GenerateReleaseKey(filepath.Join(t.TempDir(), "release.key"), pub)
	if err != nil {
		t.Fatal(err)
	}
	f := Write(t, filepath.Join(root, boot.Device), key, version, board)
	return &Device{Root: root, Boot: boot, Key: key, Footer: f}
}
