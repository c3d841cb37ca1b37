package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-edge/cairn/internal/atomicfile"
)

// CreateOptions say what goes into a release.
type CreateOptions struct {
	Image          string            // raw slot image for the board
	K3s            map[string]string // k3s binary per architecture (optional)
	Version        string
	Board          string
	Arch           string
	MinVersion     string
	Notes          string
	VerityRootHash string
	// OutDir receives the artifacts and manifest.json; Dir names the usual
	// place for them.
	OutDir string
	// Created is stamped into the manifest; zero means now.
	Created time.Time
	// Progress, when set, is called as input bytes are compressed.
	Progress func(file string, done, total int64)
	// FrameSize is the uncompressed size of each zstd frame; zero means
	// DefaultFrameSize. Create raises it for artifacts that would need more
	// than MaxFrames frames.
	FrameSize int64
}

// Dir is where a release of board at version lives under a releases
// directory: releases/<version>/<board>.
func Dir(releases, version, board string) string {
	return filepath.Join(releases, version, board)
}

// ImageName is the file name of a board's compressed slot image.
func ImageName(board, version string) string {
	return fmt.Sprintf("%s-%s.img.zst", board, version)
}

// Create compresses the slot image (and k3s binaries) with zstd into
// opts.OutDir and writes the manifest last, so a directory with a manifest
// always holds complete artifacts.
func Create(ctx context.Context, opts CreateOptions) (*Manifest, error) {
	created := opts.Created
	if created.IsZero() {
		created = time.Now()
	}
	m := &Manifest{
		Format:         ManifestFormat,
		Version:        opts.Version,
		Board:          opts.Board,
		Arch:           opts.Arch,
		Created:        created.UTC().Truncate(time.Second),
		MinVersion:     opts.MinVersion,
		Notes:          opts.Notes,
		VerityRootHash: opts.VerityRootHash,
		// Placeholder artifact so the metadata is validated before hours of
		// compression; replaced below.
		Image: Artifact{Path: ImageName(opts.Board, opts.Version), Compression: CompressionZstd,
			Size: 1, CompressedSize: 1, SHA256: zeroSum, CompressedSHA256: zeroSum},
	}
	for arch := range opts.K3s {
		if m.K3s == nil {
			m.K3s = map[string]Artifact{}
		}
		m.K3s[arch] = m.Image
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("release %s: %w", opts.OutDir, err)
	}
	img, err := compressFile(ctx, opts.Image, filepath.Join(opts.OutDir, m.Image.Path), opts.FrameSize, opts.Progress)
	if err != nil {
		return nil, err
	}
	m.Image = img
	for arch, src := range opts.K3s {
		name := fmt.Sprintf("k3s-%s-%s.zst", arch, opts.Version)
		a, err := compressFile(ctx, src, filepath.Join(opts.OutDir, name), opts.FrameSize, opts.Progress)
		if err != nil {
			return nil, err
		}
		m.K3s[arch] = a
	}
	if err := m.WriteFile(filepath.Join(opts.OutDir, ManifestName)); err != nil {
		return nil, err
	}
	return m, nil
}

var zeroSum = hex.EncodeToString(make([]byte, sha256.Size))

// compressFile streams src through SHA-256, zstd frames and SHA-256 again
// into a temporary file that is renamed to dst once synced.
func compressFile(ctx context.Context, src, dst string, frameSize int64, progress func(string, int64, int64)) (Artifact, error) {
	in, err := os.Open(src)
	if err != nil {
		return Artifact{}, fmt.Errorf("release: %w", err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return Artifact{}, fmt.Errorf("release %s: %w", src, err)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return Artifact{}, fmt.Errorf("release %s: want a non-empty regular file", src)
	}
	tmp, err := atomicfile.Create(dst, 0o644)
	if err != nil {
		return Artifact{}, fmt.Errorf("release: %w", err)
	}
	defer tmp.Abort()

	outHash := sha256.New()
	outCount := &countingWriter{w: io.MultiWriter(tmp, outHash)}
	inHash := sha256.New()
	r := &ProgressReader{Ctx: ctx, R: io.TeeReader(in, inHash), Name: filepath.Base(src), Total: st.Size(), Progress: progress}
	frames, err := compressFrames(ctx, r, outCount, frameSizeFor(st.Size(), frameSize))
	if err != nil {
		return Artifact{}, fmt.Errorf("release %s: compress: %w", src, err)
	}
	if err := tmp.Commit(); err != nil {
		return Artifact{}, fmt.Errorf("release: %w", err)
	}
	return Artifact{
		Path:             filepath.Base(dst),
		Compression:      CompressionZstd,
		Size:             r.done,
		SHA256:           sum(inHash),
		CompressedSize:   outCount.n,
		CompressedSHA256: sum(outHash),
		Frames:           frames,
	}, nil
}

func sum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ProgressReader reads r, reporting progress and stopping when ctx ends:
// release artifacts and channel publishing stream large files through it.
type ProgressReader struct {
	Ctx      context.Context
	R        io.Reader
	Name     string
	Total    int64
	Progress func(name string, done, total int64)
	done     int64
}

func (p *ProgressReader) Read(b []byte) (int, error) {
	if err := p.Ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.R.Read(b)
	p.done += int64(n)
	if p.Progress != nil && n > 0 {
		p.Progress(p.Name, p.done, p.Total)
	}
	return n, err
}
