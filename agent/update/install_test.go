package update

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/images/release"
)

func TestInstallWritesTheImageAndRecordsItComplete(t *testing.T) {
	rel := makeRelease(t, 3<<20+777, 256<<10, 1)
	srv := serve(t, rel)
	dir := t.TempDir()
	slotSize := int64(4 << 20)
	slot := newSlot(t, dir, slotSize)
	in := &Installer{StateDir: dir, CheckpointBytes: 256 << 10}
	var last, total int64
	err := in.Install(context.Background(), InstallRequest{Target: rel.target(srv.URL), Manifest: rel.manifest, Device: slot},
		func(done, all int64) { last, total = done, all })
	if err != nil {
		t.Fatal(err)
	}
	mustEqualFile(t, slot, rel.image, slotSize)
	if last != rel.manifest.Image.Size || total != rel.manifest.Image.Size {
		t.Errorf("last progress %d/%d, want %d", last, total, rel.manifest.Image.Size)
	}
	c := readCheckpoint(t, dir)
	if frames := len(rel.manifest.Image.Frames.CompressedSizes); c.Frame != frames || c.Offset != rel.manifest.Image.Size ||
		c.CompressedOffset != rel.manifest.Image.CompressedSize {
		t.Errorf("checkpoint after a verified install: frame %d at %d/%d, want complete: frame %d at %d/%d",
			c.Frame, c.CompressedOffset, c.Offset, frames, rel.manifest.Image.CompressedSize, rel.manifest.Image.Size)
	}
	if reqs := srv.requests(); len(reqs) != 1 || reqs[0] != "" {
		t.Errorf("requests %q, want one without Range", reqs)
	}
	t.Logf("%d bytes in %d frames, %d compressed", rel.manifest.Image.Size, len(rel.manifest.Image.Frames.CompressedSizes), rel.manifest.Image.CompressedSize)
}

// An agent stopped while it checks the written slot, or after the checks
// but before the engine recorded the install, finds a complete checkpoint
// at its next start: it checks the slot again and downloads nothing. The
// checks' own verdict still counts: a slot that no longer verifies is
// refused, its checkpoint dropped.
func TestInstallStoppedDuringTheChecksChecksAgainWithoutDownloading(t *testing.T) {
	rel := makeRelease(t, 2<<20+99, 128<<10, 11)
	rel.manifest.VerityRootHash = strings.Repeat("ab", 32)
	srv := serve(t, rel)
	dir := t.TempDir()
	slot := newSlot(t, dir, 3<<20)
	req := InstallRequest{Target: rel.target(srv.URL), Manifest: rel.manifest, Device: slot}
	ctx, stop := context.WithCancel(context.Background())
	checks := 0
	stopped := &Installer{StateDir: dir, CheckpointBytes: 256 << 10,
		VerifyVerity: func(ctx context.Context, _ string, _ *release.Manifest) error {
			checks++
			stop() // the agent is stopped while the slot is read back
			<-ctx.Done()
			return ctx.Err()
		}}
	if err := stopped.Install(ctx, req, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Install stopped during the checks = %v, want context.Canceled", err)
	}
	downloads := len(srv.requests())
	changed := false // the slot is modified behind the agent's back
	in := &Installer{StateDir: dir, VerifyVerity: func(context.Context, string, *release.Manifest) error {
		checks++
		if changed {
			return errors.New("hash block 3 differs")
		}
		return nil
	}}
	var last int64
	for range 2 { // the restart, then an agent stopped after the checks passed
		if err := in.Install(context.Background(), req, func(done, _ int64) { last = done }); err != nil {
			t.Fatalf("Install after the stop: %v", err)
		}
	}
	if got := srv.requests(); len(got) != downloads {
		t.Errorf("requests after the stop %q, want none: the image was complete", got[downloads:])
	}
	if checks != 3 || last != rel.manifest.Image.Size {
		t.Errorf("%d checks and last progress %d, want 3 and %d", checks, last, rel.manifest.Image.Size)
	}
	mustEqualFile(t, slot, rel.image, 3<<20)
	changed = true
	if err := in.Install(context.Background(), req, nil); !errors.Is(err, ErrVerityMismatch) {
		t.Fatalf("Install onto a changed slot = %v, want ErrVerityMismatch", err)
	}
	if _, err := os.Stat(filepath.Join(dir, CheckpointName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("checkpoint kept after the slot failed its checks: %v", err)
	}
	changed = false
	if err := in.Install(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	if got := srv.requests(); len(got) != downloads+1 || got[downloads] != "" {
		t.Errorf("requests after a failed check %q, want one from the start", got[downloads:])
	}
}

// A power cut or kill at any byte of the download: a fresh installer with
// the same state directory resumes from the checkpoint, re-downloads at
// most CheckpointBytes plus one frame, and the slot ends up with the image.
func TestInstallKilledAtRandomOffsetsResumesFromTheCheckpoint(t *testing.T) {
	rel := makeRelease(t, 2<<20+4321, 32<<10, 2)
	srv := serve(t, rel)
	const cpb = 128 << 10
	clen := rel.manifest.Image.CompressedSize
	bound := cpb + rel.maxFrame()
	r := rand.New(rand.NewPCG(3, 4))
	cuts, resumed, worst := 200, 0, int64(0)
	if testing.Short() {
		cuts = 20
	}
	base := fastDir(t)
	for i := range cuts {
		at := 1 + r.Int64N(clen-1)
		dir := filepath.Join(base, fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		slot := newSlot(t, dir, 3<<20)
		req := InstallRequest{Target: rel.target(srv.URL), Manifest: rel.manifest, Device: slot}
		ctx, cancel := context.WithCancel(context.Background())
		killed := &Installer{StateDir: dir, CheckpointBytes: cpb, Client: &http.Client{Transport: &killTransport{at: at, cancel: cancel}}}
		err := killed.Install(ctx, req, nil)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cut %d at %d: Install = %v, want it killed", i, at, err)
		}
		srv.setFault(nil)
		fresh := &Installer{StateDir: dir, CheckpointBytes: cpb}
		if err := fresh.Install(context.Background(), req, nil); err != nil {
			t.Fatalf("cut %d at %d: resumed Install: %v", i, at, err)
		}
		var from int64
		if rng := srv.requests()[0]; rng != "" {
			fmt.Sscanf(rng, "bytes=%d-", &from)
			resumed++
		}
		if again := at - from; again > bound || again < 0 {
			t.Fatalf("cut %d at %d: resumed from %d, re-downloading %d bytes, more than %d", i, at, from, again, bound)
		} else {
			worst = max(worst, again)
		}
		mustEqualFile(t, slot, rel.image, 3<<20)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
	if resumed < cuts/2 {
		t.Errorf("only %d of %d cuts resumed from a checkpoint", resumed, cuts)
	}
	t.Logf("%d cut points in %d compressed bytes: %d resumed from a checkpoint, worst re-download %d bytes (bound %d = checkpoint %d + frame %d)",
		cuts, clen, resumed, worst, bound, cpb, rel.maxFrame())
}

func TestInstallRefusesASlotSmallerThanTheImageBeforeDownloading(t *testing.T) {
	rel := makeRelease(t, 1<<20, 64<<10, 5)
	srv := serve(t, rel)
	dir := t.TempDir()
	slot := newSlot(t, dir, 1<<20-1)
	in := &Installer{StateDir: dir}
	err := in.Install(context.Background(), InstallRequest{Target: rel.target(srv.URL), Manifest: rel.manifest, Device: slot}, nil)
	if !errors.Is(err, ErrSlotTooSmall) {
		t.Fatalf("Install = %v, want ErrSlotTooSmall", err)
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("%d requests before refusing", n)
	}
	t.Log(err)
}

func TestInstallChecksTheRequestAgainstTheManifest(t *testing.T) {
	rel := makeRelease(t, 1<<20, 64<<10, 6)
	srv := serve(t, rel)
	dir := t.TempDir()
	slot := newSlot(t, dir, 2<<20)
	for name, c := range map[string]struct {
		change func(*InstallRequest)
		want   error
	}{
		"length":      {func(r *InstallRequest) { r.Target.Length++ }, ErrSizeMismatch},
		"sha256":      {func(r *InstallRequest) { r.Target.SHA256 = make([]byte, 32) }, ErrHashMismatch},
		"no frames":   {func(r *InstallRequest) { r.Manifest.Image.Frames = nil }, ErrNotResumable},
		"no verifier": {func(r *InstallRequest) { r.Manifest.VerityRootHash = strings.Repeat("ab", 32) }, ErrNoVerityCheck},
	} {
		m := *rel.manifest
		req := InstallRequest{Target: rel.target(srv.URL), Manifest: &m, Device: slot}
		c.change(&req)
		err := (&Installer{StateDir: dir}).Install(context.Background(), req, nil)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Install = %v, want %v", name, err, c.want)
		}
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("%d requests for refused installs", n)
	}
}

// What the verification after the last byte finds, each check named; a
// failed verification drops the checkpoint so the next attempt starts
// over (a passed one leaves the complete checkpoint, which the next case
// resumes from or, for another image, removes).
func TestInstallVerificationNamesTheFailedCheck(t *testing.T) {
	rel := makeRelease(t, 1<<20+5, 64<<10, 7)
	srv := serve(t, rel)
	dir := t.TempDir()
	slot := newSlot(t, dir, 2<<20)
	badVerity := errors.New("root hash 1234, want abab")
	for name, c := range map[string]struct {
		change func(*InstallRequest, *Installer)
		want   error
	}{
		"compressed sha256": {func(r *InstallRequest, _ *Installer) {
			r.Target.SHA256[0] ^= 1
			r.Manifest.Image.CompressedSHA256 = fmt.Sprintf("%x", r.Target.SHA256)
		}, ErrHashMismatch},
		"image sha256": {func(r *InstallRequest, _ *Installer) { r.Manifest.Image.SHA256 = strings.Repeat("00", 32) }, ErrHashMismatch},
		"verity": {func(r *InstallRequest, in *Installer) {
			r.Manifest.VerityRootHash = strings.Repeat("ab", 32)
			in.VerifyVerity = func(context.Context, string, *release.Manifest) error { return badVerity }
		}, ErrVerityMismatch},
		"all good": {func(r *InstallRequest, in *Installer) {
			r.Manifest.VerityRootHash = strings.Repeat("ab", 32)
			in.VerifyVerity = func(_ context.Context, dev string, m *release.Manifest) error {
				if dev != slot || m.VerityRootHash != r.Manifest.VerityRootHash {
					return fmt.Errorf("called with %s, %s", dev, m.VerityRootHash)
				}
				return nil
			}
		}, nil},
	} {
		m := *rel.manifest
		req := InstallRequest{Target: rel.target(srv.URL), Manifest: &m, Device: slot}
		req.Target.SHA256 = append([]byte(nil), req.Target.SHA256...)
		in := &Installer{StateDir: dir, CheckpointBytes: 64 << 10}
		c.change(&req, in)
		err := in.Install(context.Background(), req, nil)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: Install = %v, want %v", name, err, c.want)
		}
		if _, serr := os.Stat(filepath.Join(dir, CheckpointName)); c.want != nil && !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%s: checkpoint kept after a failed verification: %v", name, serr)
		}
		t.Logf("%s: %v", name, err)
	}
}

func TestInstallIgnoresACheckpointOfAnotherImage(t *testing.T) {
	a, b := makeRelease(t, 1<<20, 32<<10, 8), makeRelease(t, 1<<20, 32<<10, 9)
	srvA, srvB := serve(t, a), serve(t, b)
	dir := t.TempDir()
	slot := newSlot(t, dir, 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	killed := &Installer{StateDir: dir, CheckpointBytes: 64 << 10,
		Client: &http.Client{Transport: &killTransport{at: a.manifest.Image.CompressedSize / 2, cancel: cancel}}}
	if err := killed.Install(ctx, InstallRequest{Target: a.target(srvA.URL), Manifest: a.manifest, Device: slot}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Install of a = %v, want it killed", err)
	}
	if _, err := os.Stat(filepath.Join(dir, CheckpointName)); err != nil {
		t.Fatalf("no checkpoint after half of a: %v", err)
	}
	in := &Installer{StateDir: dir}
	if err := in.Install(context.Background(), InstallRequest{Target: b.target(srvB.URL), Manifest: b.manifest, Device: slot}, nil); err != nil {
		t.Fatal(err)
	}
	if reqs := srvB.requests(); len(reqs) != 1 || reqs[0] != "" {
		t.Errorf("requests for b %q, want one from the start", reqs)
	}
	mustEqualFile(t, slot, b.image, 1<<20)
}

// quick keeps retry waits short in tests.
func quick(dir string) *Installer {
	return &Installer{StateDir: dir, CheckpointBytes: 64 << 10, Backoff: time.Millisecond, IdleTimeout: 300 * time.Millisecond}
}

func readCheckpoint(t *testing.T, dir string) installCheckpoint {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, CheckpointName))
	if err != nil {
		t.Fatal(err)
	}
	var c installCheckpoint
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
