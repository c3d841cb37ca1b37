package verity

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
)

// zeroHeavy is 300 blocks and 17 bytes in which every third block is zero,
// block 4 is zero but for its last byte and block 5 zero but for its first,
// and the partial last block is zero (or ends in a byte when lastByte).
func zeroHeavy(lastByte bool) []byte {
	const size = 300*BlockSize + 17
	data := zeroEvery(randomBytes(size, 11), func(i int) bool { return i%3 == 0 || i == 4 || i == 5 || i == 300 })
	data[5*BlockSize-1] = 1
	data[5*BlockSize] = 1
	if lastByte {
		data[size-1] = 0x80
	}
	return data
}

// TestZeroBlocksHashLikeVeritysetup checks the tree of data with zero
// blocks, nearly-zero blocks and zero padding against veritysetup format,
// and that a byte set in a zero block makes Verify fail.
func TestZeroBlocksHashLikeVeritysetup(t *testing.T) {
	vs := needTool(t, "veritysetup")
	salt := []byte("zero block salt")
	for _, tc := range []struct {
		name      string
		data      []byte
		zeroBlock int // a block that is all zero, to spoil
	}{
		{"mixed, zero partial last block", zeroHeavy(false), 3},
		{"mixed, partial last block ends in a byte", zeroHeavy(true), 6},
		{"all zero, two levels", make([]byte, 200*BlockSize), 150},
		{"one zero block", make([]byte, BlockSize), 0},
		{"one zero byte", make([]byte, 1), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := int64(len(tc.data))
			path := writeFile(t, tc.data)
			wantRoot, wantTree := veritysetupFormat(t, vs, path, mustLayout(t, size), salt)
			root, err := RootHash(context.Background(), bytes.NewReader(tc.data), size, Params{Salt: salt})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(root, wantRoot) {
				t.Fatalf("root hash %x, veritysetup %x", root, wantRoot)
			}
			l, built := buildFile(t, path, size, Params{Salt: salt})
			if !bytes.Equal(built, wantRoot) {
				t.Fatalf("Build's root hash %x, veritysetup %x", built, wantRoot)
			}
			img, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := img[l.HashOffset:]; !bytes.Equal(got, wantTree) {
				t.Fatalf("tree differs from veritysetup's: %d bytes, want %d", len(got), len(wantTree))
			}
			if err := Verify(context.Background(), bytes.NewReader(img), size, Params{Salt: salt}, root); err != nil {
				t.Fatalf("Verify refused the tree Build wrote: %v", err)
			}
			off := min(int64(tc.zeroBlock*BlockSize+BlockSize/2), size-1)
			if img[off] != 0 {
				t.Fatalf("byte %d is %#x: the case's zero block is not zero", off, img[off])
			}
			img[off] = 0x01
			if err := Verify(context.Background(), bytes.NewReader(img), size, Params{Salt: salt}, root); !errors.Is(err, ErrMismatch) {
				t.Fatalf("Verify with byte %d of zero block %d set: %v, want ErrMismatch", off, tc.zeroBlock, err)
			}
		})
	}
}

// TestSaltChangesTheZeroBlockHash hashes the same zero blocks with several
// salts, one after the other, against veritysetup: the zero block's hash
// must follow the salt of each call.
func TestSaltChangesTheZeroBlockHash(t *testing.T) {
	vs := needTool(t, "veritysetup")
	const size = 3 * BlockSize
	path := writeFile(t, make([]byte, size))
	l := mustLayout(t, size)
	leaves := make(map[string]string) // leaf hashes -> salt
	for _, salt := range [][]byte{[]byte("salt one"), []byte("salt two"), nil, bytes.Repeat([]byte{0xa5}, MaxSaltSize)} {
		wantRoot, wantTree := veritysetupFormat(t, vs, path, l, salt)
		root, err := RootHash(context.Background(), bytes.NewReader(make([]byte, size)), size, Params{Salt: salt})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(root, wantRoot) {
			t.Fatalf("salt %q: root hash %x, veritysetup %x", salt, root, wantRoot)
		}
		leaf := string(wantTree[:digestSize])
		if other, seen := leaves[leaf]; seen {
			t.Fatalf("salts %q and %q give the zero block the same hash", other, salt)
		}
		leaves[leaf] = string(salt)
	}
}
