package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-edge/cairn/internal/atomicfile"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// BmapBlockSize is the block size of the .bmap files written.
const BmapBlockSize = 4096

// zeroChecksum stands for the bmap file's own checksum while it is computed.
var zeroChecksum = strings.Repeat("0", 64)

// WriteBmap writes the block map of image, in bmaptool's format 2.0, to out:
// the ranges of blocks the image file has data in (found with SEEK_DATA and
// SEEK_HOLE), each with its SHA-256, so that bmaptool copies only those.
func WriteBmap(ctx context.Context, image, out string) (Artifact, int64, error) {
	f, err := os.Open(image)
	if err != nil {
		return Artifact{}, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Artifact{}, 0, err
	}
	size := fi.Size()
	ranges, err := dataRanges(f, size)
	if err != nil {
		return Artifact{}, 0, fmt.Errorf("bmap %s: %w", image, err)
	}
	var body bytes.Buffer
	mapped := int64(0)
	for _, r := range ranges {
		if err := ctx.Err(); err != nil {
			return Artifact{}, 0, err
		}
		h := sha256.New()
		end := min(r[1]*BmapBlockSize, size)
		if _, err := io.Copy(h, io.NewSectionReader(f, r[0]*BmapBlockSize, end-r[0]*BmapBlockSize)); err != nil {
			return Artifact{}, 0, fmt.Errorf("bmap %s: %w", image, err)
		}
		span := fmt.Sprint(r[0])
		if r[1]-1 > r[0] {
			span = fmt.Sprintf("%d-%d", r[0], r[1]-1)
		}
		fmt.Fprintf(&body, "        <Range chksum=\"%s\"> %s </Range>\n", hex.EncodeToString(h.Sum(nil)), span)
		mapped += r[1] - r[0]
	}
	blocks := (size + BmapBlockSize - 1) / BmapBlockSize
	doc := fmt.Sprintf(`<?xml version="1.0" ?>
<!-- Written by cairn image build. Copy with: bmaptool copy IMAGE DEVICE -->
<bmap version="2.0">
    <ImageSize> %d </ImageSize>
    <BlockSize> %d </BlockSize>
    <BlocksCount> %d </BlocksCount>
    <MappedBlocksCount> %d </MappedBlocksCount>
    <ChecksumType> sha256 </ChecksumType>
    <BmapFileChecksum> %s </BmapFileChecksum>
    <BlockMap>
%s    </BlockMap>
</bmap>
`, size, BmapBlockSize, blocks, mapped, zeroChecksum, body.String())
	sum := sha256.Sum256([]byte(doc))
	doc = strings.Replace(doc, zeroChecksum, hex.EncodeToString(sum[:]), 1)
	if err := atomicfile.Write(out, []byte(doc), 0o644); err != nil {
		return Artifact{}, 0, err
	}
	a, err := artifact(out)
	return a, mapped * BmapBlockSize, err
}

// dataRanges returns the [first, end) block ranges holding data.
func dataRanges(f *os.File, size int64) ([][2]int64, error) {
	var out [][2]int64
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("seek data at %d: %w", off, err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole at %d: %w", data, err)
		}
		first, end := data/BmapBlockSize, (hole+BmapBlockSize-1)/BmapBlockSize
		if n := len(out); n > 0 && out[n-1][1] >= first {
			out[n-1][1] = max(out[n-1][1], end)
		} else {
			out = append(out, [2]int64{first, end})
		}
		off = hole
	}
	return out, nil
}

// Compress writes image compressed with zstd to out.
func Compress(ctx context.Context, image, out string) (Artifact, error) {
	in, err := os.Open(image)
	if err != nil {
		return Artifact{}, err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return Artifact{}, err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	defer tmp.Close()
	enc, err := zstd.NewWriter(tmp, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return Artifact{}, err
	}
	if _, err := io.Copy(enc, &ctxReader{ctx, in}); err != nil {
		enc.Close()
		return Artifact{}, fmt.Errorf("zstd %s: %w", out, err)
	}
	if err := enc.Close(); err != nil {
		return Artifact{}, fmt.Errorf("zstd %s: %w", out, err)
	}
	if err := tmp.Sync(); err != nil {
		return Artifact{}, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return Artifact{}, err
	}
	return artifact(out)
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
