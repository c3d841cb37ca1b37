package channel

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// RoleStatus is one role's metadata as the repository serves it.
type RoleStatus struct {
	Role      string    `json:"role"`
	Version   int64     `json:"version"`
	Expires   time.Time `json:"expires"`
	Threshold int       `json:"threshold"`
	Keys      int       `json:"keys"`
}

// Status is what each channel points to and when metadata expires.
type Status struct {
	Roles    []RoleStatus `json:"roles"`
	Channels []Published  `json:"channels"` // newest release per channel and board
}

// Status reports the repository's roles and channels.
func (r *Repo) Status() *Status {
	s := &Status{}
	exp := map[string]struct {
		v int64
		t time.Time
	}{
		metadata.ROOT:      {r.root.Signed.Version, r.root.Signed.Expires},
		metadata.TARGETS:   {r.targets.Signed.Version, r.targets.Signed.Expires},
		metadata.SNAPSHOT:  {r.snapshot.Signed.Version, r.snapshot.Signed.Expires},
		metadata.TIMESTAMP: {r.timestamp.Signed.Version, r.timestamp.Signed.Expires},
	}
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		rr := r.root.Signed.Roles[role]
		s.Roles = append(s.Roles, RoleStatus{Role: role, Version: exp[role].v, Expires: exp[role].t,
			Threshold: rr.Threshold, Keys: len(rr.KeyIDs)})
	}
	newest := map[[2]string]Published{}
	for _, tf := range r.targets.Signed.Targets {
		c, err := ParseCustom(tf.Custom)
		if err != nil || c == nil || c.Kind != KindManifest {
			continue
		}
		v, err := semver.StrictNewVersion(c.Version)
		if err != nil {
			continue
		}
		for ch, e := range c.Channels {
			key := [2]string{ch, c.Board}
			if cur, ok := newest[key]; ok && !v.GreaterThan(semver.MustParse(cur.Version)) {
				continue
			}
			newest[key] = Published{Channel: ch, Board: c.Board, Version: c.Version, Rollout: e.Rollout}
		}
	}
	for _, p := range newest {
		s.Channels = append(s.Channels, p)
	}
	sort.Slice(s.Channels, func(i, j int) bool {
		a, b := s.Channels[i], s.Channels[j]
		return a.Channel < b.Channel || a.Channel == b.Channel && a.Board < b.Board
	})
	return s
}

// WriteText prints the status for people.
func (s *Status) WriteText(w io.Writer) error {
	for _, r := range s.Roles {
		if _, err := fmt.Fprintf(w, "%-9s v%-4d expires %s  threshold %d of %d\n", r.Role, r.Version,
			r.Expires.Format(time.RFC3339), r.Threshold, r.Keys); err != nil {
			return err
		}
	}
	if len(s.Channels) == 0 {
		_, err := fmt.Fprintln(w, "no releases published")
		return err
	}
	for _, c := range s.Channels {
		if _, err := fmt.Fprintf(w, "channel %-10s board %-12s %-10s rollout %d%%\n", c.Channel, c.Board, c.Version, c.Rollout); err != nil {
			return err
		}
	}
	return nil
}
