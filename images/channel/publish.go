package channel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/cairn-edge/cairn/internal/atomicfile"

	"github.com/Masterminds/semver/v3"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/cairn-edge/cairn/images/release"
)

// ErrReleaseChanged means a version is being published again with different
// content: versions are immutable, publish a new one.
var ErrReleaseChanged = errors.New("release content differs from the published one with the same version")

// ErrNoRelease means there is nothing to publish or promote.
var ErrNoRelease = errors.New("no such release")

// Published is one board's release on a channel, as Publish and Promote
// report it.
type Published struct {
	Channel string `json:"channel"`
	Board   string `json:"board"`
	Version string `json:"version"`
	Rollout int    `json:"rollout"`
}

// Publish adds every board's release of version found under releasesDir
// (release.Dir layout) to channel, then re-signs targets, snapshot and
// timestamp.
func (r *Repo) Publish(ctx context.Context, releasesDir, version, channel string, rollout int) ([]Published, error) {
	if err := checkChannel(channel, rollout); err != nil {
		return nil, err
	}
	manifests, err := filepath.Glob(filepath.Join(releasesDir, version, "*", release.ManifestName))
	if err != nil {
		return nil, err
	}
	if len(manifests) == 0 {
		return nil, fmt.Errorf("publish %s: no %s under %s: %w", version, release.ManifestName, filepath.Join(releasesDir, version), ErrNoRelease)
	}
	sort.Strings(manifests)
	var out []Published
	for _, mp := range manifests {
		m, err := release.ReadManifest(mp)
		if err != nil {
			return nil, err
		}
		if m.Version != version {
			return nil, fmt.Errorf("publish %s: manifest %s says version %s", version, mp, m.Version)
		}
		if err := r.addRelease(ctx, filepath.Dir(mp), m, channel, rollout); err != nil {
			return nil, err
		}
		out = append(out, Published{Channel: channel, Board: m.Board, Version: m.Version, Rollout: rollout})
	}
	if err := r.commit(metadata.TARGETS); err != nil {
		return nil, err
	}
	return out, nil
}

func checkChannel(channel string, rollout int) error {
	if !boardLike.MatchString(channel) {
		return fmt.Errorf("channel %q: want lower-case letters, digits and dashes", channel)
	}
	if rollout < 0 || rollout > 100 {
		return fmt.Errorf("channel %s: rollout %d: want a percentage from 0 to 100", channel, rollout)
	}
	return nil
}

// addRelease copies a board's artifacts into the repository and lists them
// as targets; the manifest target carries the channel.
func (r *Repo) addRelease(ctx context.Context, dir string, m *release.Manifest, channel string, rollout int) error {
	files := []struct {
		custom TargetCustom
		name   string
		sha    string
	}{{TargetCustom{Kind: KindImage, Board: m.Board, Version: m.Version, Arch: m.Arch}, m.Image.Path, m.Image.CompressedSHA256}}
	for arch, a := range m.K3s {
		files = append(files, struct {
			custom TargetCustom
			name   string
			sha    string
		}{TargetCustom{Kind: KindK3s, Board: m.Board, Version: m.Version, Arch: arch}, a.Path, a.CompressedSHA256})
	}
	for _, f := range files {
		if _, err := r.addTarget(ctx, filepath.Join(dir, f.name), f.sha, &f.custom); err != nil {
			return err
		}
	}
	mc := &TargetCustom{Kind: KindManifest, Board: m.Board, Version: m.Version, Arch: m.Arch,
		Channels: map[string]ChannelEntry{}}
	mpath := TargetPath(m.Board, m.Version, release.ManifestName)
	if old, ok := r.targets.Signed.Targets[mpath]; ok {
		if c, err := ParseCustom(old.Custom); err == nil && c != nil {
			mc.Channels = c.Channels
		}
	}
	mc.Channels[channel] = ChannelEntry{Rollout: rollout}
	_, err := r.addTarget(ctx, filepath.Join(dir, release.ManifestName), "", mc)
	return err
}

// addTarget copies src to its consistent-snapshot name
// (targets/<board>/<version>/<sha256>.<name>) and lists it. wantSHA, when
// set, is the digest the manifest promised.
func (r *Repo) addTarget(ctx context.Context, src, wantSHA string, c *TargetCustom) (*metadata.TargetFiles, error) {
	tpath := TargetPath(c.Board, c.Version, filepath.Base(src))
	dstDir := filepath.Join(r.ServeDir(), "targets", filepath.FromSlash(filepath.Dir(tpath)))
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return nil, err
	}
	length, sum, err := r.copyHashed(ctx, src, dstDir)
	if err != nil {
		return nil, err
	}
	if wantSHA != "" && hex.EncodeToString(sum) != wantSHA {
		return nil, fmt.Errorf("publish %s: sha256 %x, the manifest says %s", src, sum, wantSHA)
	}
	tf := &metadata.TargetFiles{Length: length, Hashes: metadata.Hashes{"sha256": sum}, Custom: c.Raw(), Path: tpath}
	if old, ok := r.targets.Signed.Targets[tpath]; ok && !old.Hashes.Equal(tf.Hashes) {
		return nil, fmt.Errorf("publish %s: %w", tpath, ErrReleaseChanged)
	}
	r.targets.Signed.Targets[tpath] = tf
	return tf, nil
}

// copyHashed copies src into dir under the name <sha256>.<base>, which is
// known only at the end: it goes through a temporary file.
func (r *Repo) copyHashed(ctx context.Context, src, dir string) (int64, []byte, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, nil, fmt.Errorf("publish: %w", err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return 0, nil, err
	}
	tmp, err := os.CreateTemp(dir, ".publish.tmp*")
	if err != nil {
		return 0, nil, fmt.Errorf("publish: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	pr := &release.ProgressReader{Ctx: ctx, R: in, Name: filepath.Base(src), Total: st.Size(), Progress: r.Progress}
	n, err := io.Copy(io.MultiWriter(tmp, h), pr)
	if err != nil {
		return 0, nil, fmt.Errorf("publish %s: %w", src, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return 0, nil, err
	}
	if err := tmp.Sync(); err != nil {
		return 0, nil, fmt.Errorf("publish %s: %w", src, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, nil, err
	}
	sum := h.Sum(nil)
	dst := filepath.Join(dir, hex.EncodeToString(sum)+"."+filepath.Base(src))
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return 0, nil, fmt.Errorf("publish %s: %w", src, err)
	}
	return n, sum, atomicfile.SyncDir(dir)
}

// Promote puts the newest release each board has on channel from (or the
// given version, when not empty) on channel to, then re-signs.
func (r *Repo) Promote(from, to, version string, rollout int) ([]Published, error) {
	if err := checkChannel(to, rollout); err != nil {
		return nil, err
	}
	best := map[string]*metadata.TargetFiles{}
	bestV := map[string]*semver.Version{}
	for _, tf := range r.targets.Signed.Targets {
		c, err := ParseCustom(tf.Custom)
		if err != nil || c == nil || c.Kind != KindManifest {
			continue
		}
		if _, ok := c.Channels[from]; !ok || (version != "" && c.Version != version) {
			continue
		}
		v, err := semver.StrictNewVersion(c.Version)
		if err != nil {
			continue
		}
		if bestV[c.Board] == nil || v.GreaterThan(bestV[c.Board]) {
			best[c.Board], bestV[c.Board] = tf, v
		}
	}
	if len(best) == 0 {
		return nil, fmt.Errorf("promote %s to %s: nothing on %s (version %q): %w", from, to, from, version, ErrNoRelease)
	}
	var out []Published
	for board, tf := range best {
		c, _ := ParseCustom(tf.Custom)
		c.Channels[to] = ChannelEntry{Rollout: rollout}
		tf.Custom = c.Raw()
		out = append(out, Published{Channel: to, Board: board, Version: c.Version, Rollout: rollout})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Board < out[j].Board })
	return out, r.commit(metadata.TARGETS)
}
