package verity

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// needTool fails the test when an oracle is missing, except under -short.
func needTool(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: skipping the %s oracle", name)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed (scripts/install-deps.sh): %v", name, err)
	}
	return path
}

func randomBytes(size int64, seed uint64) []byte {
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, uint64(size)))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	return data
}

// zeroEvery clears each whole or partial 4096-byte block i of data for
// which zero(i) holds.
func zeroEvery(data []byte, zero func(i int) bool) []byte {
	for i := 0; i*BlockSize < len(data); i++ {
		if zero(i) {
			clear(data[i*BlockSize : min((i+1)*BlockSize, len(data))])
		}
	}
	return data
}

func writeFile(t testing.TB, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func randomFile(t testing.TB, size int64, seed uint64) string {
	t.Helper()
	return writeFile(t, randomBytes(size, seed))
}

func buildFile(t testing.TB, path string, size int64, p Params) (Layout, []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	root, hashSize, err := Build(context.Background(), f, f, size, p)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLayout(size)
	if err != nil {
		t.Fatal(err)
	}
	if hashSize != l.HashSize {
		t.Fatalf("Build says %d bytes of tree, layout %d", hashSize, l.HashSize)
	}
	return l, root
}

func saltArg(salt []byte) string {
	if len(salt) == 0 {
		return "-"
	}
	return hex.EncodeToString(salt)
}

// sizes cover one block, partial blocks, and the edges where the tree gets
// another level (128 and 128*128 blocks).
var sizes = []int64{1, 4095, 4096, 4097, 128 * 4096, 128*4096 + 1, 129 * 4096, 300*4096 + 17, 16384 * 4096, 16385 * 4096}

func TestVeritysetupAcceptsOurTree(t *testing.T) {
	vs := needTool(t, "veritysetup")
	for i, size := range sizes {
		salt := bytes.Repeat([]byte{byte(i + 1)}, 32)
		if i%3 == 0 {
			salt = nil
		}
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			path := randomFile(t, size, uint64(i))
			l, root := buildFile(t, path, size, Params{Salt: salt})
			out, err := exec.Command(vs, "verify", "--no-superblock", "--hash=sha256", "--format=1",
				"--data-block-size=4096", "--hash-block-size=4096",
				"--data-blocks="+strconv.FormatInt(l.DataBlocks, 10),
				"--hash-offset="+strconv.FormatInt(l.HashOffset, 10),
				"--salt="+saltArg(salt), path, path, hex.EncodeToString(root)).CombinedOutput()
			if err != nil {
				t.Fatalf("veritysetup verify refused our tree: %v\n%s", err, out)
			}
			f, _ := os.Open(path)
			defer f.Close()
			if err := Verify(context.Background(), f, size, Params{Salt: salt}, root); err != nil {
				t.Fatalf("our Verify refused our tree: %v", err)
			}
		})
	}
}

var rootHashLine = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]+)$`)

// veritysetupFormat runs veritysetup format on a copy of the data padded to
// whole blocks and returns its root hash and hash file bytes.
func veritysetupFormat(t testing.TB, vs, data string, l Layout, salt []byte) ([]byte, []byte) {
	t.Helper()
	dir := t.TempDir()
	padded, hashFile := filepath.Join(dir, "data"), filepath.Join(dir, "hash")
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b[:l.DataSize:l.DataSize], make([]byte, l.HashOffset-l.DataSize)...)
	if err := os.WriteFile(padded, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(vs, "format", "--no-superblock", "--hash=sha256", "--format=1",
		"--data-block-size=4096", "--hash-block-size=4096",
		"--data-blocks="+strconv.FormatInt(l.DataBlocks, 10),
		"--salt="+saltArg(salt), padded, hashFile).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	m := rootHashLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no root hash in veritysetup output:\n%s", out)
	}
	root, _ := hex.DecodeString(string(m[1]))
	tree, err := os.ReadFile(hashFile)
	if err != nil {
		t.Fatal(err)
	}
	return root, tree
}

func TestRootHashAndTreeEqualVeritysetupFormat(t *testing.T) {
	vs := needTool(t, "veritysetup")
	for i, size := range sizes {
		salt := []byte("cairn salt " + strconv.Itoa(i))
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			path := randomFile(t, size, uint64(100+i))
			wantRoot, wantTree := veritysetupFormat(t, vs, path, mustLayout(t, size), salt)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			root, err := RootHash(context.Background(), f, size, Params{Salt: salt})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(root, wantRoot) {
				t.Fatalf("root hash %x, veritysetup %x", root, wantRoot)
			}
			l, _ := buildFile(t, path, size, Params{Salt: salt})
			img, _ := os.ReadFile(path)
			if got := img[l.HashOffset:]; !bytes.Equal(got, wantTree) {
				t.Fatalf("tree differs from veritysetup's: %d bytes, want %d", len(got), len(wantTree))
			}
		})
	}
}

func mustLayout(t testing.TB, size int64) Layout {
	l, err := NewLayout(size)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestVerifyFailsOnAFlippedByte(t *testing.T) {
	const size = 200*4096 + 100 // two levels and a padded last block
	salt := []byte("salt")
	path := randomFile(t, size, 7)
	l, root := buildFile(t, path, size, Params{Salt: salt})
	clean, _ := os.ReadFile(path)
	for _, tc := range []struct {
		name string
		off  int64
	}{
		{"first data byte", 0},
		{"last data byte", size - 1},
		{"data padding", size + 3},
		{"top hash level", l.HashOffset},
		{"leaf hash level", l.HashOffset + l.HashSize - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := bytes.Clone(clean)
			img[tc.off] ^= 0x40
			err := Verify(context.Background(), bytes.NewReader(img), size, Params{Salt: salt}, root)
			if !errors.Is(err, ErrMismatch) {
				t.Fatalf("Verify with byte %d flipped: %v, want ErrMismatch", tc.off, err)
			}
		})
	}
	wrongSalt := Verify(context.Background(), bytes.NewReader(clean), size, Params{Salt: []byte("other")}, root)
	if !errors.Is(wrongSalt, ErrMismatch) {
		t.Fatalf("Verify with another salt: %v, want ErrMismatch", wrongSalt)
	}
}

func TestBadParamsAreRefused(t *testing.T) {
	r := bytes.NewReader(make([]byte, 4096))
	if _, err := RootHash(context.Background(), r, 0, Params{}); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("empty data: %v", err)
	}
	if _, err := RootHash(context.Background(), r, 4096, Params{Salt: make([]byte, 257)}); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("257-byte salt: %v", err)
	}
	if _, err := RootHash(context.Background(), r, 8192, Params{}); err == nil {
		t.Fatal("data shorter than dataSize: no error")
	}
}

func TestCancelledContextStopsHashing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := RootHash(ctx, bytes.NewReader(make([]byte, 64<<20)), 64<<20, Params{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
