package update

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/Masterminds/semver/v3"

	"github.com/cairn-edge/cairn/images/release"
)

// publishWithK3s publishes a release of the fixture's board at version
// that carries k3s for amd64, and returns the k3s binary's bytes.
func (f *fixture) publishWithK3s(version string) []byte {
	f.t.Helper()
	dir := f.t.TempDir()
	img, k3s := filepath.Join(dir, "slot.img"), filepath.Join(dir, "k3s")
	os.WriteFile(img, bytes.Repeat([]byte("slot "+version+" "), 3000), 0o644)
	bin := bytes.Repeat([]byte("k3s binary of "+version+"\n"), 50000)
	os.WriteFile(k3s, bin, 0o755)
	if _, err := release.Create(context.Background(), release.CreateOptions{
		Image: img, K3s: map[string]string{"amd64": k3s}, Version: version, Board: board, Arch: "amd64",
		Created: f.now, OutDir: release.Dir(f.releases, version, board),
	}); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.repo.Publish(context.Background(), f.releases, version, "stable", 100); err != nil {
		f.t.Fatal(err)
	}
	return bin
}

func (f *fixture) k3sFile(version string) string {
	matches, _ := filepath.Glob(filepath.Join(f.repo.ServeDir(), "targets", board, version, "*.k3s-amd64-*.zst"))
	if len(matches) != 1 {
		f.t.Fatalf("served k3s of %s: %v", version, matches)
	}
	return matches[0]
}

func TestCurrentOffersTheFloorReleaseWhenUpToDate(t *testing.T) {
	f := newFixture(t, 1, 1)
	bin := f.publishWithK3s("1.2.0")
	c := f.channel()
	if err := c.cfg.Floor.Raise(semver.MustParse("1.2.0")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(context.Background()); !errors.Is(err, ErrUpToDate) {
		t.Fatalf("check at the floor: %v, want ErrUpToDate", err)
	}
	o, err := c.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if o.Manifest.Version != "1.2.0" || o.K3s["amd64"].Length == 0 {
		t.Fatalf("current offer %+v", o)
	}
	dst := filepath.Join(f.varDir, "k3s", "download")
	if err := c.DownloadArtifact(context.Background(), o.K3s["amd64"], o.Manifest.K3s["amd64"], dst, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, bin) {
		t.Fatalf("downloaded k3s: %d bytes (%v), want the published %d", len(got), err, len(bin))
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v", st.Mode())
	}
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 1 {
		t.Fatalf("files beside the download: %v", ents)
	}

	// A newer release is what Current offers, as Check does.
	f.publishWithK3s("1.3.0")
	if o, err := c.Current(context.Background()); err != nil || o.Manifest.Version != "1.3.0" {
		t.Fatalf("current with a newer release: %v, %v", o, err)
	}
}

func TestDownloadArtifactRefusesTamperedBytes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func([]byte) []byte
		want   error
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, ErrTargetCorrupted},
		{"extra bytes", func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, ErrEndlessData},
		{"truncated", func(b []byte) []byte { return b[:len(b)-10] }, ErrTargetTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 1, 1)
			f.publishWithK3s("1.2.0")
			c := f.channel()
			o, err := c.Current(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			served := f.k3sFile("1.2.0")
			data, err := os.ReadFile(served)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(served, tc.tamper(data), 0o644)
			dst := filepath.Join(f.varDir, "k3s", "download")
			err = c.DownloadArtifact(context.Background(), o.K3s["amd64"], o.Manifest.K3s["amd64"], dst, 0o755)
			if !errors.Is(err, tc.want) {
				t.Fatalf("download of a tampered k3s: %v, want %v", err, tc.want)
			}
			if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 0 {
				t.Fatalf("a refused download left %v", ents)
			}
		})
	}
}

func TestDownloadArtifactRefusesAManifestEntryOtherThanTheTarget(t *testing.T) {
	f := newFixture(t, 1, 1)
	f.publishWithK3s("1.2.0")
	c := f.channel()
	o, err := c.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a := o.Manifest.K3s["amd64"]
	a.CompressedSize++
	err = c.DownloadArtifact(context.Background(), o.K3s["amd64"], a, filepath.Join(f.varDir, "k3s"), 0o755)
	if !errors.Is(err, ErrMixAndMatch) {
		t.Fatalf("mismatched manifest entry: %v, want ErrMixAndMatch", err)
	}
}
