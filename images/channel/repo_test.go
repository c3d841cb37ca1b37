package channel

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/cairn-edge/cairn/images/release"
)

func makeRelease(t *testing.T, releases, version, board string) *release.Manifest {
	t.Helper()
	img := filepath.Join(t.TempDir(), "slot.img")
	if err := os.WriteFile(img, []byte(strings.Repeat(board+version, 5000)), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := release.Create(context.Background(), release.CreateOptions{
		Image: img, Version: version, Board: board, Arch: "amd64",
		OutDir: release.Dir(releases, version, board),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tufClient refreshes a fresh go-tuf updater, the reference client, against
// the repository served over HTTP.
func tufClient(t *testing.T, r *Repo, trustedRoot []byte) *updater.Updater {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(r.ServeDir())))
	t.Cleanup(srv.Close)
	cfg, err := config.New(srv.URL, trustedRoot)
	if err != nil {
		t.Fatal(err)
	}
	cfg.LocalMetadataDir = t.TempDir()
	cfg.LocalTargetsDir = t.TempDir()
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Refresh(); err != nil {
		t.Fatalf("go-tuf refresh: %v", err)
	}
	return up
}

func TestInitWritesPrivateKeysOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	r, err := Init(dir, InitOptions{RootKeys: 3, RootThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(r.KeysDir())
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("keys dir mode %v, %v: want 0700", st.Mode().Perm(), err)
	}
	keys, _ := filepath.Glob(filepath.Join(r.KeysDir(), "*.pem"))
	if len(keys) != 6 {
		t.Fatalf("%d keys, want 3 root + targets + snapshot + timestamp", len(keys))
	}
	for _, k := range keys {
		if st, _ := os.Stat(k); st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", k, st.Mode().Perm())
		}
	}
	root, err := metadata.Root().FromFile(r.RootPath())
	if err != nil {
		t.Fatal(err)
	}
	if got := root.Signed.Roles[metadata.ROOT]; got.Threshold != 2 || len(got.KeyIDs) != 3 || !root.Signed.ConsistentSnapshot {
		t.Fatalf("root role %+v consistent=%v, want 2 of 3 with consistent snapshots", got, root.Signed.ConsistentSnapshot)
	}
	served, _ := filepath.Glob(filepath.Join(r.ServeDir(), "*"))
	for _, f := range served {
		if strings.HasSuffix(f, ".pem") {
			t.Errorf("private key %s in the served directory", f)
		}
	}
	if _, err := Init(dir, InitOptions{RootKeys: 1, RootThreshold: 1}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init = %v, want ErrExists", err)
	}
	if _, err := Init(t.TempDir(), InitOptions{RootKeys: 1, RootThreshold: 2}); err == nil {
		t.Fatal("Init accepted a threshold above the number of keys")
	}
}

func TestPublishedReleaseVerifiesWithTheReferenceClient(t *testing.T) {
	dir, releases := t.TempDir(), t.TempDir()
	r, err := Init(dir, InitOptions{RootKeys: 1, RootThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := makeRelease(t, releases, "1.2.0", "qemu-x86")
	pub, err := r.Publish(context.Background(), releases, "1.2.0", "beta", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(pub) != 1 || pub[0].Board != "qemu-x86" {
		t.Fatalf("published %+v", pub)
	}
	trusted, _ := os.ReadFile(r.RootPath())
	up := tufClient(t, r, trusted)
	for _, name := range []string{release.ManifestName, m.Image.Path} {
		tf, err := up.GetTargetInfo(TargetPath("qemu-x86", "1.2.0", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := up.DownloadTarget(tf, filepath.Join(t.TempDir(), name), ""); err != nil {
			t.Fatalf("download %s: %v", name, err)
		}
		c, err := ParseCustom(tf.Custom)
		if err != nil || c.Board != "qemu-x86" || c.Version != "1.2.0" {
			t.Fatalf("custom metadata of %s: %+v, %v", name, c, err)
		}
		if name == release.ManifestName && c.Channels["beta"].Rollout != 100 {
			t.Fatalf("manifest channels %+v, want beta at 100%%", c.Channels)
		}
	}
	// Versions are immutable: other bytes under 1.2.0 are refused.
	other := t.TempDir()
	makeRelease(t, other, "1.2.0", "qemu-x86")
	os.WriteFile(filepath.Join(release.Dir(other, "1.2.0", "qemu-x86"), "manifest.json"), mustRead(t, filepath.Join(release.Dir(releases, "1.2.0", "qemu-x86"), "manifest.json")), 0o644)
	img := filepath.Join(release.Dir(other, "1.2.0", "qemu-x86"), m.Image.Path)
	os.WriteFile(img, []byte("different"), 0o644)
	if _, err := r.Publish(context.Background(), other, "1.2.0", "stable", 10); err == nil {
		t.Fatal("published an image whose bytes differ from its manifest")
	}
}

func mustRead(t *testing.T, path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestPromoteStatusAndTimestampRefresh(t *testing.T) {
	dir, releases := t.TempDir(), t.TempDir()
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	r, err := Init(dir, InitOptions{RootKeys: 1, RootThreshold: 1, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1.0.0", "1.1.0"} {
		makeRelease(t, releases, v, "rpi4")
		if _, err := r.Publish(context.Background(), releases, v, "beta", 100); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Promote("beta", "stable", "", 25); err != nil {
		t.Fatal(err)
	}
	r, err = Open(dir) // state must survive on disk alone
	if err != nil {
		t.Fatal(err)
	}
	r.Now = clock
	s := r.Status()
	want := []Published{{"beta", "rpi4", "1.1.0", 100}, {"stable", "rpi4", "1.1.0", 25}}
	if len(s.Channels) != 2 || s.Channels[0] != want[0] || s.Channels[1] != want[1] {
		t.Fatalf("channels %+v, want %+v", s.Channels, want)
	}
	if _, err := r.Promote("alpha", "stable", "", 100); !errors.Is(err, ErrNoRelease) {
		t.Fatalf("promote from an empty channel = %v, want ErrNoRelease", err)
	}
	ts := s.Roles[3]
	if ts.Role != "timestamp" || !ts.Expires.Equal(now.Add(DefaultExpiry.Timestamp)) {
		t.Fatalf("timestamp status %+v", ts)
	}
	if signed, _, err := r.RefreshTimestamp(24 * time.Hour); err != nil || signed {
		t.Fatalf("refresh a week before expiry: signed=%v %v, want no-op", signed, err)
	}
	now = now.Add(6*24*time.Hour + time.Hour)
	signed, exp, err := r.RefreshTimestamp(24 * time.Hour)
	if err != nil || !signed || !exp.Equal(now.Add(DefaultExpiry.Timestamp)) {
		t.Fatalf("refresh within a day of expiry: signed=%v expires %v, %v", signed, exp, err)
	}
	if r.Status().Roles[3].Version != ts.Version+1 {
		t.Fatal("timestamp version did not go up")
	}
}

func TestRootRotationIsFollowedByTheReferenceClient(t *testing.T) {
	dir := t.TempDir()
	r, err := Init(dir, InitOptions{RootKeys: 2, RootThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	baked := mustRead(t, r.RootPath())
	rot, err := r.RotateKeys(metadata.ROOT, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if rot.RootVersion != 2 || len(rot.NewKeyIDs) != 3 || len(rot.Retired) != 2 {
		t.Fatalf("rotation %+v", rot)
	}
	if _, err := r.RotateKeys(metadata.TIMESTAMP, 1, 1); err != nil {
		t.Fatal(err)
	}
	up := tufClient(t, r, baked)
	got := up.GetTrustedMetadataSet()
	if got.Root.Signed.Version != 3 || got.Root.Signed.Roles[metadata.ROOT].Threshold != 2 {
		t.Fatalf("client root v%d, want v3 with threshold 2", got.Root.Signed.Version)
	}
	// The retired keys no longer sign anything.
	if _, err := keysFor(r.KeysDir(), &got.Root.Signed, metadata.ROOT); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(r.KeysDir(), "retired"))
	for _, id := range rot.NewKeyIDs[:2] {
		matches, _ := filepath.Glob(filepath.Join(r.KeysDir(), "root-"+id[:16]+".pem"))
		os.Remove(matches[0])
	}
	if _, err := r.RotateKeys(metadata.ROOT, 1, 1); !errors.Is(err, ErrNotEnoughKeys) {
		t.Fatalf("rotation with 1 of 2 root keys = %v, want ErrNotEnoughKeys", err)
	}
}
