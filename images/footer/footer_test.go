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
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/tpm"
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
		{"policy pxe value", body + sigSize + 2 + 2*policySize + 20},
		{"policy pxe signature", body + sigSize + 2 + 2*policySize + 120},
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
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	count := headerSize + len(f.ManifestJSON) + sigSize // where the policy count is
	used := count + 2 + len(Slots)*policySize
	return map[string][]byte{
		"signed":         b[:used],
		"header-only":    b[:headerSize],
		"no-policies":    b[:count+2],
		"two-policies":   legacyFooter(t)[:used-policySize],
		"policy-count-4": append(bytes.Clone(b[:count]), 4, 0),
		"magic-only":     b[:len(Magic)],
		"bad-manifest":   append(bytes.Clone(b[:headerSize]), `{"format":1}`...),
		"policy-slot-c":  append(bytes.Clone(b[:used-policySize]), 'C'),
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

// legacyGolden is a footer signed before diskless boots were approved: the
// same release as testdata/footer-v1.bin, with policies for A and B only.
var legacyGolden = filepath.Join("testdata", "footer-v1-two-policies.bin")

func legacyFooter(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(legacyGolden)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFooterOfAnOlderReleaseStillDecodesAndVerifies: a slot written by an
// older release carries two policies; it decodes, verifies, encodes to
// the same bytes, and offers its two approvals for unsealing.
func TestFooterOfAnOlderReleaseStillDecodesAndVerifies(t *testing.T) {
	old := legacyFooter(t)
	f, err := Decode(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Verify(&testKey(t, "release key").PublicKey); err != nil {
		t.Fatalf("older footer: %v", err)
	}
	if len(f.Policies) != LegacyPolicies || f.Policies[0].Slot != "A" || f.Policies[1].Slot != "B" || len(f.PolicySignatures()) != LegacyPolicies {
		t.Fatalf("older footer policies %+v", f.Policies)
	}
	again, err := f.Encode()
	if err != nil || !bytes.Equal(again, old) {
		t.Fatalf("older footer does not round-trip: %v", err)
	}
	// Signing the same release now adds the pxe record and nothing else.
	now := signedFooter(t)
	end := len(f.ManifestJSON) + headerSize + sigSize
	if !bytes.Equal(now[:end], old[:end]) || now[end] != byte(len(Slots)) || !bytes.Equal(now[end+2:end+2+2*policySize], old[end+2:end+2+2*policySize]) {
		t.Fatal("the body, release signature or A and B policies changed with the pxe policy")
	}
	if i := bytes.IndexFunc(old[end+2+2*policySize:], func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("older footer has bytes after its two policies at %d", end+2+2*policySize+i)
	}
}

// TestSignApprovesEachSlotsMeasurement: a newly signed footer approves A,
// B and pxe, each the PCR value of the release measured as that slot.
func TestSignApprovesEachSlotsMeasurement(t *testing.T) {
	f, err := Decode(signedFooter(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Policies) != 3 {
		t.Fatalf("%d policies, want 3", len(f.Policies))
	}
	seen := map[string]bool{}
	for i, want := range []string{"A", "B", "pxe"} {
		p := f.Policies[i]
		id, err := f.Identity(want)
		if err != nil {
			t.Fatal(err)
		}
		if p.Slot != want || !bytes.Equal(p.PCRValue, tpm.ExpectedPCR(id)) {
			t.Errorf("policy %d: slot %q PCR value %x, want slot %s, %x", i, p.Slot, p.PCRValue, want, tpm.ExpectedPCR(id))
		}
		seen[string(p.PCRValue)] = true
	}
	if len(seen) != 3 {
		t.Error("two slots share a PCR value: a slot name would not change the measurement")
	}
}

func TestDecodeRefusesPolicyCountAndSlot(t *testing.T) {
	clean := signedFooter(t)
	f, _ := Decode(clean)
	count := len(f.ManifestJSON) + headerSize + sigSize
	rec := func(i int) int { return count + 2 + i*policySize }
	for _, tc := range []struct {
		name string
		b    []byte
		kind error
		want string
	}{
		{"no policies", withByte(clean, count, 0), ErrPolicyCount, "(policy count): unsupported policy count: 0, want 2 (A, B) or 3 (A, B, pxe)"},
		{"one policy", withByte(clean, count, 1), ErrPolicyCount, "(policy count)"},
		{"four policies", withByte(clean, count, 4), ErrPolicyCount, "unsupported policy count: 4"},
		{"65535 policies", withByte(withByte(clean, count, 0xff), count+1, 0xff), ErrPolicyCount, "unsupported policy count: 65535"},
		{"A and B swapped", withByte(withByte(clean, rec(0), 'B'), rec(1), 'A'), ErrPolicySlot, "(policy slot): policy record for the wrong slot: 'B', want 'A' (slot A)"},
		{"pxe as P", withByte(clean, rec(2), 'P'), ErrPolicySlot, "'P', want 'p' (slot pxe)"},
		{"three policies, third one empty", withByte(legacyFooter(t), count, 3), ErrPolicySlot, "'\\x00', want 'p' (slot pxe)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.b)
			if !errors.Is(err, tc.kind) || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %v containing %q", err, tc.kind, tc.want)
			}
			if !strings.Contains(err.Error(), "offset ") {
				t.Errorf("%v does not name the offset", err)
			}
		})
	}
}

func withByte(b []byte, off int, v byte) []byte {
	b = bytes.Clone(b)
	b[off] = v
	return b
}

func TestEncodeRefusesPoliciesNotInSlotOrder(t *testing.T) {
	f, err := Decode(signedFooter(t))
	if err != nil {
		t.Fatal(err)
	}
	pol := f.Policies
	for _, tc := range []struct {
		name     string
		policies []Policy
		kind     error
	}{
		{"A and B swapped", []Policy{pol[1], pol[0], pol[2]}, ErrPolicySlot},
		{"pxe first", []Policy{pol[2], pol[0], pol[1]}, ErrPolicySlot},
		{"A only", pol[:1], ErrPolicyCount},
		{"pxe twice", append(slices.Clone(pol), pol[2]), ErrPolicyCount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := *f
			g.Policies = tc.policies
			if _, err := g.Encode(); !errors.Is(err, tc.kind) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("encode: %v, want %v", err, tc.kind)
			}
			if err := g.Verify(&testKey(t, "release key").PublicKey); err == nil {
				t.Fatal("verify accepted policies out of slot order")
			}
		})
	}
}

// TestLargestManifestLeavesRoomForEveryPolicy: MaxManifestSize bytes of
// manifest encode with all three policies; one byte more does not.
func TestLargestManifestLeavesRoomForEveryPolicy(t *testing.T) {
	key := testKey(t, "release key")
	for _, tc := range []struct {
		size int
		ok   bool
	}{{MaxManifestSize, true}, {MaxManifestSize + 1, false}} {
		f := testFooter(t)
		m, err := f.manifestBytes()
		if err != nil {
			t.Fatal(err)
		}
		// JSON allows trailing spaces: the same manifest, padded.
		f.ManifestJSON = append(m, bytes.Repeat([]byte(" "), tc.size-len(m))...)
		if err := f.Sign(key); err != nil {
			t.Fatal(err)
		}
		b, err := f.Encode()
		if !tc.ok {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("manifest of %d bytes: %v, want ErrInvalid", tc.size, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("manifest of %d bytes: %v", tc.size, err)
		}
		g, err := Decode(b)
		if err != nil || len(g.Policies) != 3 || g.Verify(&key.PublicKey) != nil {
			t.Fatalf("manifest of %d bytes: %v", tc.size, err)
		}
	}
}
