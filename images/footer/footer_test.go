package footer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/images/verity"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// testKey is a fixed release key, so that the golden footer is stable.
func testKey(t testing.TB, seed string) *ecdsa.PrivateKey {
	t.Helper()
	d := sha256.Sum256([]byte(seed))
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// testFooter describes a 64 MiB slot holding a 48 MiB filesystem.
func testFooter(t testing.TB) *Footer {
	t.Helper()
	const dataSize = 48 << 20
	l, err := verity.NewLayout(dataSize)
	if err != nil {
		t.Fatal(err)
	}
	root := sha256.Sum256([]byte("root hash of 1.3.0"))
	return &Footer{
		SlotSize: 64 << 20, DataSize: dataSize, HashOffset: l.HashOffset, HashSize: l.HashSize,
		RootHash: root[:], Salt: []byte("0123456789abcdef0123456789abcdef"),
		Manifest: &release.Manifest{
			Format: release.ManifestFormat, Version: "1.3.0", Board: "qemu-amd64", Arch: "amd64",
			Created: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), VerityRootHash: hex.EncodeToString(root[:]),
		},
	}
}

func signedFooter(t testing.TB) []byte {
	t.Helper()
	f := testFooter(t)
	if err := f.Sign(testKey(t, "release key")); err != nil {
		t.Fatal(err)
	}
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGoldenFooter(t *testing.T) {
	got := signedFooter(t)
	golden := filepath.Join("testdata", "footer-v1.bin")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("footer differs from %s (run with -update after a deliberate format change)", golden)
	}
	f, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Verify(&testKey(t, "release key").PublicKey); err != nil {
		t.Fatal(err)
	}
	again, err := f.Encode()
	if err != nil || !bytes.Equal(again, want) {
		t.Fatalf("decode and encode do not round-trip: %v", err)
	}
}

func TestSigningTwiceGivesTheSameBytes(t *testing.T) {
	if !bytes.Equal(signedFooter(t), signedFooter(t)) {
		t.Fatal("two signatures of the same footer differ")
	}
}

func TestVerifyRefusesAnotherKey(t *testing.T) {
	f, err := Decode(signedFooter(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Verify(&testKey(t, "someone else").PublicKey); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("verify with another key: %v, want ErrBadSignature", err)
	}
}

// TestFlippedByteIsRefused flips one byte in each part of the footer: the
// header and manifest either fail to decode or fail the signature, the
// signatures fail to verify.
func TestFlippedByteIsRefused(t *testing.T) {
	clean := signedFooter(t)
	f, _ := Decode(clean)
	body := len(f.ManifestJSON) + headerSize
	pub := &testKey(t, "release key").PublicKey
	for _, tc := range []struct {
		name string
		off  int
	}{
		{"slot size", offSlotSize + 1},
		{"root hash", offRootHash},
		{"salt", offSalt + 3},
		{"manifest version digit", headerSize + strings.Index(string(f.ManifestJSON), "1.3.0")},
		{"release signature", body + 5},
		{"policy A value", body + sigSize + 2 + 2},
		{"policy B signature", body + sigSize + 2 + policySize + 100},
		{"padding", Size - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(clean)
			b[tc.off] ^= 0x01
			g, err := Decode(b)
			if err == nil {
				err = g.Verify(pub)
			}
			if err == nil {
				t.Fatalf("byte %d flipped: accepted", tc.off)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, release.ErrInvalidManifest) {
				t.Fatalf("byte %d flipped: %v, want a footer error", tc.off, err)
			}
		})
	}
}

func TestDecodeNamesOffsetAndField(t *testing.T) {
	clean := signedFooter(t)
	for _, tc := range []struct {
		name string
		edit func(b []byte)
		want string
	}{
		{"no magic", func(b []byte) { clear(b) }, "no slot footer: offset 0"},
		{"version", func(b []byte) { b[offVersion] = 2 }, "offset 8 (format version): 2, want 1"},
		{"body size", func(b []byte) { b[offBodySize+1] = 0 }, "offset 12 (body size)"},
		{"hash size", func(b []byte) { b[offHashSize] ^= 0x10 }, "offset 40 (hash size)"},
		{"algorithm", func(b []byte) { copy(b[offAlgorithm:], "sha1\x00\x00") }, `offset 64 (hash algorithm): "sha1"`},
		{"salt padding", func(b []byte) { b[offSalt+200] = 1 }, "offset 344 (salt padding): not zero"},
		{"reserved", func(b []byte) { b[offReserved+1] = 1 }, "offset 405 (reserved)"},
		{"manifest", func(b []byte) { b[headerSize] = '[' }, "offset 512 (manifest): invalid release manifest"},
		{"trailing byte", func(b []byte) { b[Size-2] = 9 }, "offset 65534 (padding): not zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(clean)
			tc.edit(b)
			_, err := Decode(b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := Decode(clean[:100]); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short footer: %v", err)
	}
}

func TestManifestMustMatchHeaderAndHaveNoImage(t *testing.T) {
	key := testKey(t, "release key")
	f := testFooter(t)
	f.Manifest.VerityRootHash = strings.Repeat("ab", 32)
	if err := f.Sign(key); err == nil || !strings.Contains(err.Error(), "verity_root_hash") {
		t.Fatalf("mismatched root hash: %v", err)
	}
	f = testFooter(t)
	f.Manifest.Image.Path = "x.img.zst"
	if err := f.Sign(key); !errors.Is(err, release.ErrInvalidManifest) {
		t.Fatalf("image artifact in a footer: %v", err)
	}
	f = testFooter(t)
	f.HashOffset += 4096
	if err := f.Sign(key); err == nil || !strings.Contains(err.Error(), "hash offset") {
		t.Fatalf("tree not right after the data: %v", err)
	}
	f = testFooter(t)
	f.SlotSize = f.HashOffset + f.HashSize
	if err := f.Sign(key); err == nil || !strings.Contains(err.Error(), "slot size") {
		t.Fatalf("no room for the footer: %v", err)
	}
}

func TestReadFromDevice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slot")
	fo := testFooter(t)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFromDevice(path); !errors.Is(err, ErrNoFooter) {
		t.Fatalf("empty file: %v, want ErrNoFooter", err)
	}
	if err := os.Truncate(path, fo.SlotSize); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFromDevice(path); !errors.Is(err, ErrNoFooter) {
		t.Fatalf("zeroed slot: %v, want ErrNoFooter", err)
	}
	fb := signedFooter(t)
	file, _ := os.OpenFile(path, os.O_RDWR, 0)
	if _, err := file.WriteAt(fb, fo.SlotSize-Size); err != nil {
		t.Fatal(err)
	}
	file.Close()
	f, err := ReadFromDevice(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Manifest.Version != "1.3.0" {
		t.Fatalf("version %q", f.Manifest.Version)
	}
	if err := os.Truncate(path, fo.SlotSize+4096); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFromDevice(path); !errors.Is(err, ErrNoFooter) {
		t.Fatalf("footer not at the end: %v, want ErrNoFooter", err)
	}
}

// seeds are the fuzz seed corpus: the used part of a signed footer, and
// variants that stop in each field.
func seeds(t testing.TB) map[string][]byte {
	b := signedFooter(t)
	used := len(bytes.TrimRight(b, "\x00"))
	return map[string][]byte{
		"signed":        b[:used],
		"header-only":   b[:headerSize],
		"no-policies":   b[:used-2*policySize],
		"magic-only":    b[:len(Magic)],
		"bad-manifest":  append(bytes.Clone(b[:headerSize]), `{"format":1}`...),
		"policy-slot-c": append(bytes.Clone(b[:used-policySize]), 'C'),
	}
}

// TestFuzzSeedCorpus keeps testdata/fuzz/FuzzDecode in step with the
// format (rewritten with -update).
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for name, b := range seeds(t) {
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		path := filepath.Join(dir, name)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("seed %s is stale (run with -update): %v", path, err)
		}
	}
}

// FuzzDecode places the input at the start of a zeroed footer: whatever
// decodes must encode to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > Size {
			return
		}
		b := make([]byte, Size)
		copy(b, in)
		fo, err := Decode(b)
		if err != nil {
			return
		}
		again, err := fo.Encode()
		if err != nil {
			t.Fatalf("decoded footer does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("decode and encode do not round-trip")
		}
	})
}

// TestDigestIsSHA256OfTheBody checks the recipe docs/formats.md gives for
// the footer digest: SHA-256 of the first B bytes, B read at offset 12.
func TestDigestIsSHA256OfTheBody(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "footer-v1.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.Digest()
	if err != nil {
		t.Fatal(err)
	}
	bodySize := int(b[12]) | int(b[13])<<8 | int(b[14])<<16 | int(b[15])<<24
	want := sha256.Sum256(b[:bodySize])
	if !bytes.Equal(d, want[:]) {
		t.Fatalf("digest %x, SHA-256 of the first %d bytes %x", d, bodySize, want)
	}
	id, err := f.Identity("B")
	if err != nil || !bytes.Equal(id.FooterDigest, d) || id.Release != "1.3.0" || !bytes.Equal(id.RootHash, f.RootHash) {
		t.Fatalf("identity %+v, %v", id, err)
	}
}
