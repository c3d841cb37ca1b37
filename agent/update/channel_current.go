package update

import (
	"context"
	"errors"
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/images/release"
)

// Current refreshes the channel metadata like Check and returns the offer
// of the release this device should run: the one Check would offer, or,
// when the device is up to date, the release at its version floor. Parts of
// a release that are not the OS image (the k3s binaries) are taken from it
// even when there is no OS update to install.
func (c *Channel) Current(ctx context.Context) (*Offer, error) { return c.bounded(ctx, c.current) }

func (c *Channel) current(ctx context.Context) (*Offer, error) {
	targets, f, err := c.refresh(ctx)
	if err != nil {
		return nil, err
	}
	mt, custom, err := c.selectRelease(targets)
	if errors.Is(err, ErrUpToDate) {
		mt, custom, err = c.floorRelease(targets)
	}
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

// refresh updates the trusted metadata on /var from the repository and
// returns the top-level targets it signs, with the fetcher that counted it.
func (c *Channel) refresh(ctx context.Context) (map[string]*metadata.TargetFiles, *fetcher, error) {
	c.last = PollStats{}
	f := &fetcher{ctx: ctx, client: c.cfg.HTTPClient, stats: &c.last}
	up, err := c.updater(f)
	if err != nil {
		return nil, nil, err
	}
	if err := up.Refresh(); err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, classify(err, f.last)
	}
	return up.GetTopLevelTargets(), f, nil
}

// floorRelease is the manifest target of the release at the version floor,
// on this device's board and channel.
func (c *Channel) floorRelease(targets map[string]*metadata.TargetFiles) (*metadata.TargetFiles, *channel.TargetCustom, error) {
	floor, err := c.cfg.Floor.Get()
	if err != nil {
		return nil, nil, err
	}
	for _, tf := range targets {
		cu, err := channel.ParseCustom(tf.Custom)
		if err != nil || cu == nil || cu.Kind != channel.KindManifest || cu.Board != c.cfg.Board {
			continue
		}
		if _, ok := cu.Channels[c.cfg.Channel]; ok && floor != nil && cu.Version == floor.String() {
			return tf, cu, nil
		}
	}
	return nil, nil, fmt.Errorf("update channel %s, board %s: release %v: %w", c.cfg.Channel, c.cfg.Board, floor, ErrNoRelease)
}
