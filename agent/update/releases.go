package update

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/images/release"
)

// SignedReleases refreshes the channel repository's metadata from
// cfg.TrustedRoot and returns every release manifest it signs, for every
// board and channel, sorted by board and version: the releases a verifier
// accepts a device may run. Only TrustedRoot, MetadataDir, RepositoryURL,
// HTTPClient, Now and ClockFloor of cfg are used.
func SignedReleases(ctx context.Context, cfg ChannelConfig) ([]*release.Manifest, error) {
	switch {
	case cfg.TrustedRoot == "":
		return nil, fmt.Errorf("signed releases: no trusted root")
	case cfg.MetadataDir == "":
		return nil, fmt.Errorf("signed releases: no metadata directory")
	case cfg.RepositoryURL == "":
		return nil, fmt.Errorf("signed releases: no repository URL")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	c := &Channel{cfg: cfg}
	targets, f, err := c.refresh(ctx)
	if err != nil {
		return nil, err
	}
	var out []*release.Manifest
	for _, tf := range targets {
		cu, err := channel.ParseCustom(tf.Custom)
		if err != nil || cu == nil || cu.Kind != channel.KindManifest {
			continue
		}
		data, err := c.fetchVerified(ctx, f, c.target(tf), release.MaxManifestSize)
		if err != nil {
			return nil, err
		}
		m, err := release.ParseManifest(data)
		if err != nil {
			return nil, fmt.Errorf("signed releases: %s: %w", tf.Path, err)
		}
		if m.Version != cu.Version || m.Board != cu.Board {
			return nil, fmt.Errorf("signed releases: %s says %s for %s, targets metadata %s for %s: %w",
				tf.Path, m.Version, m.Board, cu.Version, cu.Board, ErrMixAndMatch)
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Board != out[j].Board {
			return out[i].Board < out[j].Board
		}
		return out[i].SemVer().LessThan(out[j].SemVer())
	})
	return out, nil
}
