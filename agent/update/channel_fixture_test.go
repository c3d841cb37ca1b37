package update

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/images/release"
)

const board = "qemu-x86"

// published is the time the fixture signs at; timestamps expire 7 days on.
var published = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// fixture is a channel repository served by a plain static file server and
// one device that follows it.
type fixture struct {
	t        *testing.T
	repo     *channel.Repo
	releases string
	srv      *httptest.Server
	baked    string // the root the device image trusts
	varDir   string // the device's /var
	slot     string // where an accepted image would land
	now      time.Time
}

func newFixture(t *testing.T, rootKeys, rootThreshold int) *fixture {
	t.Helper()
	f := &fixture{t: t, releases: t.TempDir(), varDir: t.TempDir(), now: published}
	var err error
	f.repo, err = channel.Init(filepath.Join(t.TempDir(), "repo"), channel.InitOptions{
		RootKeys: rootKeys, RootThreshold: rootThreshold, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(http.FileServer(http.Dir(f.repo.ServeDir())))
	t.Cleanup(f.srv.Close)
	f.baked = filepath.Join(t.TempDir(), "root.json")
	copyFile(t, f.repo.RootPath(), f.baked)
	f.slot = filepath.Join(t.TempDir(), "slot-B")
	return f
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// publish creates and publishes a release of b at version.
func (f *fixture) publish(b, version, ch string, rollout int) {
	f.t.Helper()
	img := filepath.Join(f.t.TempDir(), "slot.img")
	os.WriteFile(img, []byte(strings.Repeat(b+version+" ", 3000)), 0o644)
	if _, err := release.Create(context.Background(), release.CreateOptions{
		Image: img, Version: version, Board: b, Arch: "amd64", Created: f.now,
		OutDir: release.Dir(f.releases, version, b),
	}); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.repo.Publish(context.Background(), f.releases, version, ch, rollout); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) channel(mods ...func(*ChannelConfig)) *Channel {
	f.t.Helper()
	cfg := ChannelConfig{
		TrustedRoot: f.baked, MetadataDir: filepath.Join(f.varDir, "tuf"),
		RepositoryURL: f.srv.URL, Channel: "stable", Board: board, MachineID: "0123456789abcdef",
		Floor: NewVersionFloor(filepath.Join(f.varDir, "version-floor")),
		Now:   func() time.Time { return f.now },
	}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := NewChannel(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// attempt is one update as the device runs it: check, then fetch the
// image to the slot path.
func (f *fixture) attempt(c *Channel) (*Offer, error) {
	o, err := c.Check(context.Background())
	if err != nil {
		return nil, err
	}
	return o, c.Download(context.Background(), o.Image, f.slot)
}

// served is a path in the served directory.
func (f *fixture) served(name string) string { return filepath.Join(f.repo.ServeDir(), name) }

func (f *fixture) read(name string) []byte {
	data, err := os.ReadFile(f.served(name))
	if err != nil {
		f.t.Fatal(err)
	}
	return data
}

func (f *fixture) write(name string, data []byte) {
	if err := os.WriteFile(f.served(name), data, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// keys are the repository's private keys of role (what an attacker who
// stole them holds).
func (f *fixture) keys(role string) []*channel.Key {
	paths, _ := filepath.Glob(filepath.Join(f.repo.KeysDir(), role+"-*.pem"))
	var keys []*channel.Key
	for _, p := range paths {
		k, err := channel.ReadKey(p)
		if err != nil {
			f.t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

func signBytes[T metadata.Roles](t *testing.T, m *metadata.Metadata[T], keys ...*channel.Key) []byte {
	t.Helper()
	m.ClearSignatures()
	for _, k := range keys {
		s, err := k.Signer()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Sign(s); err != nil {
			t.Fatal(err)
		}
	}
	data, err := m.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func metaOf(version int64, data []byte) *metadata.MetaFiles {
	s := sha256.Sum256(data)
	return &metadata.MetaFiles{Version: version, Length: int64(len(data)), Hashes: metadata.Hashes{"sha256": s[:]}}
}

func (f *fixture) timestamp() *metadata.Metadata[metadata.TimestampType] {
	ts, err := metadata.Timestamp().FromBytes(f.read("timestamp.json"))
	if err != nil {
		f.t.Fatal(err)
	}
	return ts
}

func (f *fixture) snapshot(version int64) *metadata.Metadata[metadata.SnapshotType] {
	s, err := metadata.Snapshot().FromBytes(f.read(strconv.FormatInt(version, 10) + ".snapshot.json"))
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) targets(version int64) *metadata.Metadata[metadata.TargetsType] {
	tg, err := metadata.Targets().FromBytes(f.read(strconv.FormatInt(version, 10) + ".targets.json"))
	if err != nil {
		f.t.Fatal(err)
	}
	return tg
}

// imageFile is the served file of a release image.
func (f *fixture) imageFile(version string) string {
	matches, _ := filepath.Glob(filepath.Join(f.repo.ServeDir(), "targets", board, version, "*.img.zst"))
	if len(matches) != 1 {
		f.t.Fatalf("served images of %s: %v", version, matches)
	}
	return matches[0]
}

// trustedVersion is the version of role the device has cached on /var.
func (f *fixture) trustedVersion(role string) int64 {
	data, err := os.ReadFile(filepath.Join(f.varDir, "tuf", role+".json"))
	if err != nil {
		f.t.Fatal(err)
	}
	var probe struct {
		Signed struct{ Version int64 } `json:"signed"`
	}
	if err := jsonUnmarshal(data, &probe); err != nil {
		f.t.Fatal(err)
	}
	return probe.Signed.Version
}

func (f *fixture) slotEmpty() {
	f.t.Helper()
	if _, err := os.Stat(f.slot); !os.IsNotExist(err) {
		f.t.Fatalf("something was written to the slot path %s (%v)", f.slot, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(f.slot))
	if len(entries) != 0 {
		f.t.Fatalf("files left beside the slot path: %v", entries)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
