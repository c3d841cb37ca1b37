package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/cairn-edge/cairn/images/release"
)

// What an install can fail on that callers tell apart (docs/update.md,
// "Install"). Each failure wraps one of these with the detail.
var (
	// ErrTargetMounted: the slot is mounted or held (by dm-verity, a loop
	// device); it is the booted slot or in use and must not be written.
	ErrTargetMounted = errors.New("install target is mounted or in use")
	// ErrSlotTooSmall: the image does not fit the slot; refused before any
	// byte is downloaded.
	ErrSlotTooSmall = errors.New("image is larger than the slot")
	// ErrNotResumable: the manifest has no frame table (a release made
	// before frames existed); re-create it with cairn release create.
	ErrNotResumable = errors.New("release image has no frame table")
	// ErrSizeMismatch: the downloaded or decompressed byte count differs
	// from the signed one.
	ErrSizeMismatch = errors.New("install size check failed")
	// ErrHashMismatch: the SHA-256 of the downloaded or decompressed bytes
	// differs from the signed one.
	ErrHashMismatch = errors.New("install hash check failed")
	// ErrVerityMismatch: the slot's dm-verity root hash differs from the
	// manifest's.
	ErrVerityMismatch = errors.New("install dm-verity check failed")
	// ErrNoVerityCheck: the manifest has a verity root hash and the
	// installer has no VerifyVerity to check it with.
	ErrNoVerityCheck = errors.New("manifest has a verity root hash, installer cannot check it")
	// ErrCorruptFrame: a frame did not decompress to its size (bad zstd
	// data or XXH64 content checksum); retried, as transport corruption is.
	ErrCorruptFrame = errors.New("corrupt zstd frame")
	// ErrServer: the server answered 5xx (or 408, 429) every time.
	ErrServer = errors.New("update server error")
	// ErrStalled: no byte arrived for IdleTimeout.
	ErrStalled = errors.New("download stalled")
	// ErrTruncated: the connection ended inside a frame.
	ErrTruncated = errors.New("download truncated")
	// ErrCheckpoint: the checkpoint could not be written (often a full
	// /var); what was installed so far stays, the next attempt resumes
	// from the previous checkpoint.
	ErrCheckpoint = errors.New("install checkpoint not written")
)

// Defaults for the zero values of Installer's knobs.
const (
	DefaultCheckpointBytes = 64 << 20
	DefaultRetries         = 5
	DefaultBackoff         = time.Second
	DefaultIdleTimeout     = 30 * time.Second
	maxBackoff             = time.Minute
)

// InstallRequest is what to install where.
type InstallRequest struct {
	// Target is the signed compressed image from the channel.
	Target Target
	// Manifest gives the frame table, the uncompressed size and SHA-256,
	// and the optional verity root hash.
	Manifest *release.Manifest
	// Device is the inactive slot: a block device, or a file in tests.
	Device string
}

// Installer streams release images into a slot: download, decompress,
// hash and write in one pass, resumable from checkpoints on StateDir.
// It never touches the boot state; the update engine does, around Install.
type Installer struct {
	Client   *http.Client // nil: http.DefaultClient
	StateDir string       // where the checkpoint lives (on /var)
	Log      *zap.Logger  // nil: no logs
	// CheckpointBytes is how many compressed bytes an interruption may
	// cost, plus one frame: the slot is synced and a checkpoint written
	// each time half this many bytes were installed, while the next
	// frames are written. Zero means DefaultCheckpointBytes.
	CheckpointBytes int64
	// Retries bounds consecutive failed attempts (server errors, stalls,
	// truncation, corrupt frames) without progress; zero means
	// DefaultRetries, negative none.
	Retries int
	// Backoff is the wait before the first retry, doubled after each;
	// zero means DefaultBackoff.
	Backoff time.Duration
	// IdleTimeout fails a download on which no byte arrives for this
	// long; zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Root is where /proc and /sys are found, "" meaning "/": tests point
	// it at a fake tree.
	Root string
	// VerifyVerity checks the dm-verity root hash of the written slot
	// against m.VerityRootHash; required when a manifest has one.
	VerifyVerity func(ctx context.Context, device string, m *release.Manifest) error
}

// Install writes req's image into req.Device and verifies it, resuming
// from the checkpoint of an earlier attempt on the same image and device.
// Once every byte is synced, a complete checkpoint records it: an agent
// stopped during the checks, or before the engine recorded the install,
// checks the slot again at the next Install instead of downloading it
// again. A failed check drops the checkpoint, so the next attempt starts
// over. progress, when set, gets the uncompressed bytes written so far
// and the image size. Only a nil error means the slot holds the verified
// image.
func (in *Installer) Install(ctx context.Context, req InstallRequest, progress func(done, total int64)) error {
	p, err := in.prepare(req)
	if err != nil {
		return err
	}
	slot, err := openSlot(in.root(), req.Device, p.img.Size)
	if err != nil {
		return err
	}
	defer slot.Close()
	st := in.resume(p)
	if err := in.download(ctx, p, slot, st, progress); err != nil {
		return err
	}
	if progress != nil {
		progress(st.offset, p.img.Size) // also when resumed with every byte already written
	}
	// The last bytes' writeback and the checks run side by side: the
	// checks read the slot through the page cache, which holds the same
	// bytes before and after the fsync, so on a disk the read-back of the
	// verity check no longer waits for the medium. Both must succeed.
	synced := make(chan error, 1)
	go func() { synced <- in.saveComplete(p, slot, st) }()
	verr := in.verify(ctx, p, st)
	if err := <-synced; err != nil {
		return err
	}
	if verr != nil {
		if ctx.Err() == nil {
			in.dropCheckpoint(p)
		} // else stopped, not failed: the next start checks the slot again
		return verr
	}
	in.log().Info("install verified", zap.String("device", req.Device),
		zap.String("target", p.target.Path), zap.Int64("bytes", st.offset))
	return nil
}

// installPlan is an install request checked against itself.
type installPlan struct {
	req    InstallRequest
	target Target
	img    release.Artifact
	frames []release.Frame
	maxCS  int64 // largest compressed frame
}

func (in *Installer) prepare(req InstallRequest) (*installPlan, error) {
	m, t := req.Manifest, req.Target
	if m == nil {
		return nil, fmt.Errorf("install %s: no manifest", t.Path)
	}
	if in.StateDir == "" {
		return nil, fmt.Errorf("install %s: no state directory for checkpoints", t.Path)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("install %s: %w", t.Path, err)
	}
	img := m.Image
	if img.Frames == nil {
		return nil, fmt.Errorf("install %s: %w", t.Path, ErrNotResumable)
	}
	if t.Length != img.CompressedSize {
		return nil, fmt.Errorf("install %s: signed length %d, manifest compressed_size %d: %w",
			t.Path, t.Length, img.CompressedSize, ErrSizeMismatch)
	}
	if hex.EncodeToString(t.SHA256) != img.CompressedSHA256 {
		return nil, fmt.Errorf("install %s: signed sha256 %x, manifest compressed_sha256 %s: %w",
			t.Path, t.SHA256, img.CompressedSHA256, ErrHashMismatch)
	}
	if m.VerityRootHash != "" && in.VerifyVerity == nil {
		return nil, fmt.Errorf("install %s: %w", t.Path, ErrNoVerityCheck)
	}
	p := &installPlan{req: req, target: t, img: img, frames: img.Frames.List(img.Size)}
	for _, f := range p.frames {
		p.maxCS = max(p.maxCS, f.CompressedSize)
	}
	return p, nil
}

// verify runs the checks that need every byte, in order, naming the one
// that failed.
func (in *Installer) verify(ctx context.Context, p *installPlan, st *installState) error {
	if err := p.target.Verify(st.compressed, st.chash.Sum(nil)); err != nil {
		sentinel := ErrHashMismatch
		if errors.Is(err, ErrTargetTruncated) || errors.Is(err, ErrEndlessData) {
			sentinel = ErrSizeMismatch
		}
		return fmt.Errorf("install %s: compressed image: %w: %w", p.req.Device, sentinel, err)
	}
	if st.offset != p.img.Size {
		return fmt.Errorf("install %s: wrote %d bytes, manifest size %d: %w", p.req.Device, st.offset, p.img.Size, ErrSizeMismatch)
	}
	want, _ := hex.DecodeString(p.img.SHA256)
	if sum := st.uhash.Sum(nil); !bytes.Equal(sum, want) {
		return fmt.Errorf("install %s: image sha256 %x, manifest %s: %w", p.req.Device, sum, p.img.SHA256, ErrHashMismatch)
	}
	if p.req.Manifest.VerityRootHash != "" {
		if err := in.VerifyVerity(ctx, p.req.Device, p.req.Manifest); err != nil {
			return fmt.Errorf("install %s: %w: %w", p.req.Device, ErrVerityMismatch, err)
		}
	}
	return nil
}

func (in *Installer) log() *zap.Logger {
	if in.Log == nil {
		return zap.NewNop()
	}
	return in.Log
}

func (in *Installer) root() string {
	if in.Root == "" {
		return "/"
	}
	return in.Root
}

func (in *Installer) client() *http.Client {
	if in.Client == nil {
		return http.DefaultClient
	}
	return in.Client
}

func (in *Installer) checkpointBytes() int64 {
	if in.CheckpointBytes <= 0 {
		return DefaultCheckpointBytes
	}
	return in.CheckpointBytes
}

func installDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// newState is the state of an install that has not started.
func newInstallState() *installState {
	return &installState{chash: sha256.New(), uhash: sha256.New()}
}

// removeIfExists removes path; a missing file is not an error.
func removeFileIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
