package release

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/klauspost/compress/zstd"
)

// DefaultFrameSize is the uncompressed size of one zstd frame of an
// artifact: small enough that an interrupted install loses little, large
// enough that frames cost nothing in compression ratio.
const DefaultFrameSize = 4 << 20

// MaxFrames bounds the frame table, which keeps a manifest under
// MaxManifestSize; Create grows the frame size for artifacts that would
// need more.
const MaxFrames = 2048

// Frames is the frame table of an artifact: the compressed file is a
// sequence of independent zstd frames, each holding Size uncompressed bytes
// (the last one possibly fewer), so a download can stop at any frame
// boundary and resume there with a fresh decoder.
type Frames struct {
	// Size is the uncompressed size of every frame but the last.
	Size int64 `json:"size"`
	// CompressedSizes lists the compressed size of each frame, in order.
	CompressedSizes []int64 `json:"compressed_sizes"`
}

// Frame is one entry of a frame table with its offsets worked out.
type Frame struct {
	Index            int
	Offset, Size     int64 // in the uncompressed artifact
	CompressedOffset int64 // in the compressed file
	CompressedSize   int64
}

// List works out the offsets of every frame of an artifact whose
// uncompressed size is size.
func (f *Frames) List(size int64) []Frame {
	out := make([]Frame, len(f.CompressedSizes))
	var off, coff int64
	for i, cs := range f.CompressedSizes {
		n := min(f.Size, size-off)
		out[i] = Frame{Index: i, Offset: off, Size: n, CompressedOffset: coff, CompressedSize: cs}
		off += n
		coff += cs
	}
	return out
}

func (f *Frames) validate(key string, a *Artifact) error {
	if f.Size <= 0 {
		return invalid(key+".size", "%d: want more than 0", f.Size)
	}
	want := a.Size / f.Size
	if a.Size%f.Size != 0 {
		want++
	}
	if int64(len(f.CompressedSizes)) != want {
		return invalid(key+".compressed_sizes", "%d frames, want %d for %d bytes in frames of %d",
			len(f.CompressedSizes), want, a.Size, f.Size)
	}
	var sum int64
	for i, cs := range f.CompressedSizes {
		if cs <= 0 {
			return invalid(key+".compressed_sizes", "frame %d: %d bytes: want more than 0", i, cs)
		}
		if cs > a.CompressedSize-sum {
			return invalid(key+".compressed_sizes", "add up to more than compressed_size %d", a.CompressedSize)
		}
		sum += cs
	}
	if sum != a.CompressedSize {
		return invalid(key+".compressed_sizes", "add up to %d, compressed_size is %d", sum, a.CompressedSize)
	}
	return nil
}

// frameSizeFor picks the frame size for an artifact of size bytes.
func frameSizeFor(size, want int64) int64 {
	if want <= 0 {
		want = DefaultFrameSize
	}
	for (size+want-1)/want > MaxFrames {
		want *= 2
	}
	return want
}

// compressFrames reads r to the end and writes it to w as independent zstd
// frames of frameSize uncompressed bytes each, compressing up to GOMAXPROCS
// frames at once and writing them in order. It returns the frame table.
func compressFrames(ctx context.Context, r io.Reader, w io.Writer, frameSize int64) (*Frames, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
		zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	batch := runtime.GOMAXPROCS(0)
	in := make([][]byte, batch)
	out := make([][]byte, batch)
	for i := range in {
		in[i] = make([]byte, frameSize)
	}
	frames := &Frames{Size: frameSize}
	for done := false; !done; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := 0
		for ; n < batch; n++ {
			k, err := io.ReadFull(r, in[n])
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				done = true
			} else if err != nil {
				return nil, err
			}
			if k == 0 {
				break
			}
			in[n] = in[n][:k]
			if done {
				n++
				break
			}
		}
		errs := make(chan struct{}, n)
		for i := range n {
			go func() {
				out[i] = enc.EncodeAll(in[i], out[i][:0])
				errs <- struct{}{}
			}()
		}
		for range n {
			<-errs
		}
		for i := range n {
			if _, err := w.Write(out[i]); err != nil {
				return nil, err
			}
			frames.CompressedSizes = append(frames.CompressedSizes, int64(len(out[i])))
			in[i] = in[i][:cap(in[i])]
		}
	}
	if len(frames.CompressedSizes) == 0 {
		return nil, fmt.Errorf("empty input")
	}
	return frames, nil
}
