// Package verity computes, writes and checks the dm-verity hash tree of a
// slot's filesystem, in the format the kernel's dm-verity target and
// veritysetup use (format 1, SHA-256, 4096-byte blocks, no superblock).
package verity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

const (
	// BlockSize is both the data and the hash block size.
	BlockSize = 4096
	// Algorithm is the hash algorithm, as dm-verity names it.
	Algorithm = "sha256"
	// HashType is the dm-verity format version: 1 hashes salt || block.
	HashType = 1
	// MaxSaltSize is the longest salt veritysetup accepts.
	MaxSaltSize = 256

	digestSize    = sha256.Size
	hashesPerBlk  = BlockSize / digestSize // 128
	hashesPerBits = 7                      // log2(hashesPerBlk)
	maxLevels     = 63
)

// Errors callers tell apart.
var (
	// ErrMismatch: the data or the hash tree differs from what the root hash
	// (or the recomputed tree) says.
	ErrMismatch = errors.New("dm-verity hash tree does not match")
	// ErrInvalidParams: sizes or salt that cannot describe a tree.
	ErrInvalidParams = errors.New("invalid dm-verity parameters")
)

// Params are the tree's parameters besides the fixed block size and
// algorithm.
type Params struct {
	// Salt is prepended to every hashed block; up to MaxSaltSize bytes.
	Salt []byte
}

// Layout says where things are for data of a given size. All offsets are
// from the start of the image, where the data starts.
type Layout struct {
	DataSize   int64 // bytes of data given
	DataBlocks int64 // 4096-byte blocks, the last one zero-padded
	HashOffset int64 // where the tree starts: DataBlocks*BlockSize
	HashSize   int64 // bytes of tree
	// levels[i] is the first block (relative to HashOffset) and the block
	// count of level i; level 0 hashes data blocks, the last level is one
	// block. The highest level is stored first, as veritysetup does.
	levels []level
}

type level struct{ start, blocks int64 }

// NewLayout computes the tree layout for dataSize bytes of data.
func NewLayout(dataSize int64) (Layout, error) {
	if dataSize <= 0 {
		return Layout{}, fmt.Errorf("%w: data size %d: want more than 0", ErrInvalidParams, dataSize)
	}
	l := Layout{DataSize: dataSize, DataBlocks: (dataSize + BlockSize - 1) / BlockSize}
	l.HashOffset = l.DataBlocks * BlockSize
	// Levels as veritysetup counts them: enough that one block covers all.
	n := 0
	for n < maxLevels && (l.DataBlocks-1)>>(hashesPerBits*n) != 0 {
		n++
	}
	l.levels = make([]level, n)
	pos := int64(0)
	for i := n - 1; i >= 0; i-- {
		shift := hashesPerBits * (i + 1)
		blocks := (l.DataBlocks + (int64(1) << shift) - 1) >> shift
		l.levels[i] = level{start: pos, blocks: blocks}
		pos += blocks
	}
	l.HashSize = pos * BlockSize
	return l, nil
}

func (p Params) check() error {
	if len(p.Salt) > MaxSaltSize {
		return fmt.Errorf("%w: salt is %d bytes, at most %d", ErrInvalidParams, len(p.Salt), MaxSaltSize)
	}
	return nil
}

// tree is a computed hash tree in memory: about 1/128 of the data.
type tree struct {
	layout Layout
	hash   []byte // the hash area as written, HashSize bytes
	root   []byte
}

// compute reads the data once, hashing blocks on every CPU, and builds the
// whole tree in memory.
func compute(ctx context.Context, data io.ReaderAt, dataSize int64, p Params) (*tree, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	l, err := NewLayout(dataSize)
	if err != nil {
		return nil, err
	}
	t := &tree{layout: l, hash: make([]byte, l.HashSize)}
	bh := newBlockHasher(p.Salt)
	leaves := make([]byte, l.DataBlocks*digestSize)
	if err := hashData(ctx, data, dataSize, bh, leaves); err != nil {
		return nil, err
	}
	if len(l.levels) == 0 {
		t.root = leaves // one data block: its hash is the root
		return t, nil
	}
	below := leaves
	for i, lv := range l.levels {
		area := t.hash[lv.start*BlockSize : (lv.start+lv.blocks)*BlockSize]
		copy(area, below) // hashes packed 128 a block, the rest zeros
		if i == len(l.levels)-1 {
			break
		}
		below = make([]byte, lv.blocks*digestSize)
		bh.hashBlocks(area, below)
	}
	top := l.levels[len(l.levels)-1]
	t.root = make([]byte, digestSize)
	bh.hashBlocks(t.hash[top.start*BlockSize:(top.start+1)*BlockSize], t.root)
	return t, nil
}

// chunkBlocks is how many blocks a worker reads at once (1 MiB).
const chunkBlocks = 256

// hashData hashes every data block into out, 32 bytes per block. The
// last block is zero-padded.
func hashData(ctx context.Context, data io.ReaderAt, dataSize int64, bh *blockHasher, out []byte) error {
	nblocks := int64(len(out) / digestSize)
	nchunks := (nblocks + chunkBlocks - 1) / chunkBlocks
	workers := min(int64(runtime.GOMAXPROCS(0)), nchunks)
	next := make(chan int64)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, chunkBlocks*BlockSize)
			for c := range next {
				off := c * chunkBlocks * BlockSize
				n := min(int64(len(buf)), dataSize-off)
				chunk := buf[:(n+BlockSize-1)/BlockSize*BlockSize]
				clear(chunk[n:])
				if err := readFull(data, chunk[:n], off); err != nil {
					errc <- fmt.Errorf("read data at offset %d: %w", off, err)
					return
				}
				first := c * chunkBlocks
				bh.hashBlocks(chunk, out[first*digestSize:(first+int64(len(chunk))/BlockSize)*digestSize])
			}
		}()
	}
	var err error
feed:
	for c := range nchunks {
		select {
		case next <- c:
		case err = <-errc:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return err
}

// blockHasher hashes blocks as SHA-256(salt || block). Free space makes
// most of a release image zero blocks, whose hash depends only on the salt:
// it is computed once and copied, and recognising a zero block with
// bytes.Equal costs a few percent of hashing it.
type blockHasher struct {
	salt     []byte
	zero     []byte // BlockSize zero bytes, read only
	zeroHash [digestSize]byte
}

func newBlockHasher(salt []byte) *blockHasher {
	bh := &blockHasher{salt: salt, zero: make([]byte, BlockSize)}
	h := sha256.New()
	h.Write(salt)
	h.Write(bh.zero)
	h.Sum(bh.zeroHash[:0])
	return bh
}

// hashBlocks writes the hash of each block of in to out, 32 bytes each.
func (bh *blockHasher) hashBlocks(in, out []byte) {
	h := sha256.New()
	var sum [digestSize]byte
	for i := 0; i*BlockSize < len(in); i++ {
		block := in[i*BlockSize : (i+1)*BlockSize]
		if bytes.Equal(block, bh.zero) {
			copy(out[i*digestSize:], bh.zeroHash[:])
			continue
		}
		h.Reset()
		h.Write(bh.salt)
		h.Write(block)
		copy(out[i*digestSize:], h.Sum(sum[:0]))
	}
}

// Build computes the tree of the first dataSize bytes of data and writes it
// to w at Layout.HashOffset, right after the data (zero-padding the data's
// last block in w when dataSize is not a whole number of blocks). It returns
// the root hash and the tree's size in bytes.
func Build(ctx context.Context, w io.WriterAt, data io.ReaderAt, dataSize int64, p Params) (rootHash []byte, hashSize int64, err error) {
	t, err := compute(ctx, data, dataSize, p)
	if err != nil {
		return nil, 0, err
	}
	l := t.layout
	if pad := l.HashOffset - dataSize; pad > 0 {
		if _, err := w.WriteAt(make([]byte, pad), dataSize); err != nil {
			return nil, 0, fmt.Errorf("verity: pad data at offset %d: %w", dataSize, err)
		}
	}
	if _, err := w.WriteAt(t.hash, l.HashOffset); err != nil {
		return nil, 0, fmt.Errorf("verity: write hash tree at offset %d: %w", l.HashOffset, err)
	}
	return t.root, l.HashSize, nil
}

// RootHash computes the root hash of the first dataSize bytes of r (the
// tree itself is not read).
func RootHash(ctx context.Context, r io.ReaderAt, dataSize int64, p Params) ([]byte, error) {
	t, err := compute(ctx, r, dataSize, p)
	if err != nil {
		return nil, err
	}
	return t.root, nil
}

// Verify recomputes the tree from the data in r and checks it against
// rootHash and against the tree stored at Layout.HashOffset, byte for byte
// (including the zero padding of the data's last block). A difference is
// ErrMismatch, naming the first differing offset of the hash area.
func Verify(ctx context.Context, r io.ReaderAt, dataSize int64, p Params, rootHash []byte) error {
	t, err := compute(ctx, r, dataSize, p)
	if err != nil {
		return err
	}
	if !bytes.Equal(t.root, rootHash) {
		return fmt.Errorf("%w: root hash of the data is %x, want %x", ErrMismatch, t.root, rootHash)
	}
	l := t.layout
	if pad := l.HashOffset - dataSize; pad > 0 {
		got := make([]byte, pad)
		if err := readFull(r, got, dataSize); err != nil {
			return fmt.Errorf("verity: read data padding at offset %d: %w", dataSize, err)
		}
		if i := bytes.IndexFunc(got, func(c rune) bool { return c != 0 }); i >= 0 {
			return fmt.Errorf("%w: data padding at offset %d is not zero", ErrMismatch, dataSize+int64(i))
		}
	}
	buf := make([]byte, chunkBlocks*BlockSize)
	for off := int64(0); off < l.HashSize; off += int64(len(buf)) {
		n := min(int64(len(buf)), l.HashSize-off)
		if err := readFull(r, buf[:n], l.HashOffset+off); err != nil {
			return fmt.Errorf("verity: read hash tree at offset %d: %w", l.HashOffset+off, err)
		}
		if !bytes.Equal(buf[:n], t.hash[off:off+n]) {
			i := off
			for buf[i-off] == t.hash[i] {
				i++
			}
			return fmt.Errorf("%w: hash tree differs at offset %d", ErrMismatch, l.HashOffset+i)
		}
	}
	return nil
}

// readFull is ReadAt that accepts io.EOF with a full buffer, as ReaderAt
// allows at the end of the input.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
