// Package update is the device side of Cairn updates: it follows the signed
// update channel, decides which release this device takes, and installs it.
package update

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/images/release"
)

// ChannelConfig says which channel a device follows and where its trust
// comes from.
type ChannelConfig struct {
	TrustedRoot   string // root.json baked into the image
	MetadataDir   string // TUF metadata cache on /var
	RepositoryURL string // base URL of the channel repository
	Channel       string
	Board         string
	MachineID     string
	Floor         *VersionFloor
	// ClockFloor is the earliest time the device can be at (the image build
	// time): a clock behind it, as on a box without RTC, is raised to it.
	ClockFloor time.Time
	Now        func() time.Time // nil: time.Now
	HTTPClient *http.Client     // nil: http.DefaultClient
	// CheckTimeout bounds one Check or Current, every request in it
	// included; zero means DefaultCheckTimeout.
	CheckTimeout time.Duration
}

// DefaultCheckTimeout bounds a check of the channel: its metadata is
// small, and a server that stops answering must not hold the update
// engine (and with it the agent's watchdog) forever.
const DefaultCheckTimeout = 2 * time.Minute

// Channel is the client of one update channel.
type Channel struct {
	cfg  ChannelConfig
	last PollStats
}

// Target is a file the channel signed: where to get it and what it must be.
// The installer streams big targets and checks them with Verify.
type Target struct {
	Path   string `json:"path"` // TUF target path
	URL    string `json:"url"`
	Length int64  `json:"length"`
	SHA256 []byte `json:"sha256"`
}

// Offer is the release a check selected for this device.
type Offer struct {
	Channel  string            `json:"channel"`
	Manifest *release.Manifest `json:"manifest"`
	Image    Target            `json:"image"`
	K3s      map[string]Target `json:"k3s,omitempty"`
	Rollout  int               `json:"rollout"`
	Bucket   int               `json:"bucket"`
}

// NewChannel checks the configuration.
func NewChannel(cfg ChannelConfig) (*Channel, error) {
	switch {
	case cfg.TrustedRoot == "":
		return nil, errors.New("update channel: no trusted root")
	case cfg.MetadataDir == "":
		return nil, errors.New("update channel: no metadata directory")
	case cfg.Channel == "" || cfg.Board == "":
		return nil, errors.New("update channel: channel and board are required")
	case cfg.Floor == nil:
		return nil, errors.New("update channel: no version floor")
	}
	if _, err := url.Parse(cfg.RepositoryURL); err != nil || cfg.RepositoryURL == "" {
		return nil, fmt.Errorf("update channel: repository URL %q: %v", cfg.RepositoryURL, err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = DefaultCheckTimeout
	}
	return &Channel{cfg: cfg}, nil
}

// bounded runs check within CheckTimeout, saying so when that was what
// ended it.
func (c *Channel) bounded(ctx context.Context, check func(context.Context) (*Offer, error)) (*Offer, error) {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CheckTimeout)
	defer cancel()
	o, err := check(cctx)
	if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("update channel %s: no complete answer within %v: %w", c.cfg.RepositoryURL, c.cfg.CheckTimeout, err)
	}
	return o, err
}

// LastPoll reports what the last check downloaded.
func (c *Channel) LastPoll() PollStats { return c.last }

// refTime is the clock metadata expiry is judged by.
func (c *Channel) refTime() time.Time {
	now := c.cfg.Now().UTC()
	if now.Before(c.cfg.ClockFloor) {
		return c.cfg.ClockFloor.UTC()
	}
	return now
}

// Check refreshes the channel metadata and selects the newest release for
// this board that is above the floor and inside its rollout, within
// CheckTimeout.
func (c *Channel) Check(ctx context.Context) (*Offer, error) { return c.bounded(ctx, c.check) }

func (c *Channel) check(ctx context.Context) (*Offer, error) {
	targets, f, err := c.refresh(ctx)
	if err != nil {
		return nil, err
	}
	mt, custom, err := c.selectRelease(targets)
	if err != nil {
		return nil, err
	}
	data, err := c.manifest(ctx, f, c.target(mt))
	if err != nil {
		return nil, err
	}
	m, err := release.ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("update channel %s: %w", mt.Path, err)
	}
	return c.offer(targets, custom, m)
}

// manifest returns the selected manifest, from the copy cached on /var when
// it is the signed one, so an idle poll downloads the timestamp only.
func (c *Channel) manifest(ctx context.Context, f *fetcher, t Target) ([]byte, error) {
	cache := filepath.Join(c.cfg.MetadataDir, "manifest.json")
	if data, err := os.ReadFile(cache); err == nil && int64(len(data)) <= release.MaxManifestSize {
		sum := sha256.Sum256(data)
		if t.Verify(int64(len(data)), sum[:]) == nil {
			return data, nil
		}
	}
	data, err := c.fetchVerified(ctx, f, t, release.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(cache, data, 0o644); err != nil {
		return nil, fmt.Errorf("update channel: cache manifest: %w", err)
	}
	return data, nil
}

func (c *Channel) updater(f *fetcher) (*updater.Updater, error) {
	root, err := c.trustedRoot()
	if err != nil {
		return nil, err
	}
	cfg, err := config.New(c.cfg.RepositoryURL, root)
	if err != nil {
		return nil, fmt.Errorf("update channel: %w", err)
	}
	cfg.LocalMetadataDir = c.cfg.MetadataDir
	cfg.LocalTargetsDir = filepath.Join(c.cfg.MetadataDir, "targets")
	cfg.Fetcher = f
	up, err := updater.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("update channel: trusted root %s: %w", c.cfg.TrustedRoot, err)
	}
	up.UnsafeSetRefTime(c.refTime())
	return up, nil
}

// trustedRoot is the newer of the baked root and the one cached on /var:
// a new image may bake a newer root, and /var follows rotations.
func (c *Channel) trustedRoot() ([]byte, error) {
	baked, err := os.ReadFile(c.cfg.TrustedRoot)
	if err != nil {
		return nil, fmt.Errorf("update channel: trusted root: %w", err)
	}
	cached, err := os.ReadFile(filepath.Join(c.cfg.MetadataDir, "root.json"))
	if err != nil {
		return baked, nil
	}
	b, errB := metadata.Root().FromBytes(baked)
	k, errK := metadata.Root().FromBytes(cached)
	if errB != nil {
		return nil, fmt.Errorf("update channel: trusted root %s: %w", c.cfg.TrustedRoot, errB)
	}
	if errK == nil && k.Signed.Version > b.Signed.Version {
		return cached, nil
	}
	return baked, nil
}

type candidate struct {
	tf      *metadata.TargetFiles
	custom  *channel.TargetCustom
	version *semver.Version
}

// selectRelease picks the manifest target to follow.
func (c *Channel) selectRelease(targets map[string]*metadata.TargetFiles) (*metadata.TargetFiles, *channel.TargetCustom, error) {
	var cands []candidate
	for _, tf := range targets {
		cu, err := channel.ParseCustom(tf.Custom)
		if err != nil || cu == nil || cu.Kind != channel.KindManifest || cu.Board != c.cfg.Board {
			continue
		}
		if _, ok := cu.Channels[c.cfg.Channel]; !ok {
			continue
		}
		v, err := semver.StrictNewVersion(cu.Version)
		if err != nil {
			continue
		}
		cands = append(cands, candidate{tf, cu, v})
	}
	if len(cands) == 0 {
		return nil, nil, fmt.Errorf("update channel %s, board %s: %w", c.cfg.Channel, c.cfg.Board, ErrNoRelease)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].version.GreaterThan(cands[j].version) })
	floor, err := c.cfg.Floor.Get()
	if err != nil {
		return nil, nil, err
	}
	if floor != nil && cands[0].version.LessThan(floor) {
		return nil, nil, fmt.Errorf("update channel %s: newest release %s, floor %s: %w", c.cfg.Channel, cands[0].version, floor, ErrBelowVersionFloor)
	}
	for _, cd := range cands {
		if floor != nil && !cd.version.GreaterThan(floor) {
			break
		}
		if InRollout(c.cfg.MachineID, cd.custom.Version, cd.custom.Channels[c.cfg.Channel].Rollout) {
			return cd.tf, cd.custom, nil
		}
	}
	if floor != nil && !cands[0].version.GreaterThan(floor) {
		return nil, nil, fmt.Errorf("update channel %s: %s: %w", c.cfg.Channel, floor, ErrUpToDate)
	}
	return nil, nil, fmt.Errorf("update channel %s: newest %s: %w", c.cfg.Channel, cands[0].version, ErrNotInRollout)
}

// offer cross-checks the signed manifest against the targets metadata
// that named it and builds the Offer.
func (c *Channel) offer(targets map[string]*metadata.TargetFiles, cu *channel.TargetCustom, m *release.Manifest) (*Offer, error) {
	if m.Board != c.cfg.Board || cu.Board != c.cfg.Board {
		return nil, fmt.Errorf("update channel: release %s is for board %q, this is %q: %w", m.Version, m.Board, c.cfg.Board, ErrWrongBoard)
	}
	if m.Version != cu.Version {
		return nil, fmt.Errorf("update channel: manifest says version %s, targets metadata %s: %w", m.Version, cu.Version, ErrMixAndMatch)
	}
	if err := c.cfg.Floor.Check(m.SemVer()); err != nil {
		return nil, err
	}
	if floor, _ := c.cfg.Floor.Get(); m.MinVersion != "" && floor != nil && floor.LessThan(semver.MustParse(m.MinVersion)) {
		return nil, fmt.Errorf("update channel: release %s installs over %s or newer, this device has %s", m.Version, m.MinVersion, floor)
	}
	artifact := func(a release.Artifact) (Target, error) {
		tf, ok := targets[channel.TargetPath(m.Board, m.Version, a.Path)]
		if !ok || tf.Length != a.CompressedSize || hex.EncodeToString(tf.Hashes["sha256"]) != a.CompressedSHA256 {
			return Target{}, fmt.Errorf("update channel: %s of release %s differs from the signed targets: %w", a.Path, m.Version, ErrMixAndMatch)
		}
		return c.target(tf), nil
	}
	img, err := artifact(m.Image)
	if err != nil {
		return nil, err
	}
	o := &Offer{Channel: c.cfg.Channel, Manifest: m, Image: img,
		Rollout: cu.Channels[c.cfg.Channel].Rollout, Bucket: RolloutBucket(c.cfg.MachineID, m.Version)}
	for arch, a := range m.K3s {
		t, err := artifact(a)
		if err != nil {
			return nil, err
		}
		if o.K3s == nil {
			o.K3s = map[string]Target{}
		}
		o.K3s[arch] = t
	}
	return o, nil
}

// target turns a TUF target into where to download it: with consistent
// snapshots, targets/<dir>/<sha256>.<name>.
func (c *Channel) target(tf *metadata.TargetFiles) Target {
	sum := tf.Hashes["sha256"]
	dir, name := filepath.Split(tf.Path)
	u, _ := url.JoinPath(c.cfg.RepositoryURL, "targets", dir, hex.EncodeToString(sum)+"."+name)
	return Target{Path: tf.Path, URL: u, Length: tf.Length, SHA256: sum}
}
