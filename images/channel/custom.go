// Package channel is the operator side of Cairn's update channels: a TUF
// repository (go-tuf v2) of signed releases, kept in a directory that any
// static web server, CDN or object store serves as is.
package channel

import (
	"encoding/json"
	"fmt"
	"path"
)

// Target kinds, in TargetCustom.Kind.
const (
	KindManifest = "manifest"
	KindImage    = "image"
	KindK3s      = "k3s"
)

// TargetCustom is the "cairn" object in the custom metadata of every
// target Cairn publishes (docs/channels.md). Devices read it to find the
// releases for their board and channel without downloading manifests.
type TargetCustom struct {
	Kind    string `json:"kind"`
	Board   string `json:"board"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"`
	// Channels lists the channels a release manifest is published on. Only
	// manifests carry it: a promotion adds a channel without copying images.
	Channels map[string]ChannelEntry `json:"channels,omitempty"`
}

// ChannelEntry is a release's standing on one channel.
type ChannelEntry struct {
	// Rollout is the percentage (0..100) of devices that may take the release.
	Rollout int `json:"rollout"`
}

type customEnvelope struct {
	Cairn *TargetCustom `json:"cairn"`
}

// ParseCustom reads Cairn's object from a target's custom metadata. A
// target without one is not Cairn's and yields nil, nil.
func ParseCustom(raw *json.RawMessage) (*TargetCustom, error) {
	if raw == nil {
		return nil, nil
	}
	var env customEnvelope
	if err := json.Unmarshal(*raw, &env); err != nil {
		return nil, fmt.Errorf("target custom metadata: %w", err)
	}
	if env.Cairn != nil {
		for name, e := range env.Cairn.Channels {
			if e.Rollout < 0 || e.Rollout > 100 {
				return nil, fmt.Errorf("target custom metadata: key \"channels.%s.rollout\": %d is not a percentage", name, e.Rollout)
			}
		}
	}
	return env.Cairn, nil
}

// Raw encodes c as a target's custom metadata.
func (c *TargetCustom) Raw() *json.RawMessage {
	data, err := json.Marshal(customEnvelope{Cairn: c})
	if err != nil {
		panic(err) // plain structs of strings and ints always marshal
	}
	raw := json.RawMessage(data)
	return &raw
}

// TargetPath is the TUF target path of a release file: board/version/name.
func TargetPath(board, version, name string) string {
	return path.Join(board, version, name)
}
