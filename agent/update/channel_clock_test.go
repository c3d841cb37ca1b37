package update

import (
	"context"
	"errors"
	"testing"
	"time"
)

// An RTC-less box boots at 1970. Nothing looks expired then, so the clock
// is raised to the image build time: metadata that expired before the
// image was built is still refused, current metadata is accepted.
func TestClockIn1970IsRaisedToTheBuildTime(t *testing.T) {
	f := newFixture(t, 1, 1)
	f.publish(board, "1.0.0", "stable", 100) // timestamp expires published+7d
	epoch := func(c *ChannelConfig) { c.Now = func() time.Time { return time.Unix(0, 0) } }

	built := func(at time.Time) func(*ChannelConfig) {
		return func(c *ChannelConfig) { c.ClockFloor = at }
	}
	o, err := f.channel(epoch, built(published.Add(-30*24*time.Hour))).Check(context.Background())
	if err != nil || o.Manifest.Version != "1.0.0" {
		t.Fatalf("clock at 1970, image built a month before the release: %v, %v", o, err)
	}
	_, err = f.channel(epoch, built(published.Add(30*24*time.Hour))).Check(context.Background())
	if !errors.Is(err, ErrFreeze) {
		t.Fatalf("clock at 1970, image built after the timestamp expired: %v, want ErrFreeze", err)
	}
}

// A clock a year ahead sees every signed file as expired: the device
// refuses to update (ErrFreeze) and recovers once time sync fixes it.
func TestClockAYearAheadRefusesUntilTheClockIsFixed(t *testing.T) {
	f := newFixture(t, 1, 1)
	f.publish(board, "1.0.0", "stable", 100)
	ahead := func(c *ChannelConfig) { c.Now = func() time.Time { return published.AddDate(1, 0, 0) } }
	_, err := f.attempt(f.channel(ahead))
	if !errors.Is(err, ErrFreeze) {
		t.Fatalf("clock a year ahead: %v, want ErrFreeze", err)
	}
	f.slotEmpty()
	if _, err := f.attempt(f.channel()); err != nil {
		t.Fatalf("clock fixed: %v", err)
	}
}
