package update

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

var jsonUnmarshal = json.Unmarshal

func TestChannelPicksNewestReleaseForItsBoardAndChannel(t *testing.T) {
	f := newFixture(t, 1, 1)
	f.publish(board, "1.0.0", "stable", 100)
	f.publish(board, "1.1.0", "stable", 100)
	f.publish(board, "1.2.0", "beta", 100)
	f.publish("rpi4", "2.0.0", "stable", 100)
	o, err := f.attempt(f.channel())
	if err != nil {
		t.Fatal(err)
	}
	if o.Manifest.Version != "1.1.0" || o.Manifest.Board != board {
		t.Fatalf("picked %s for %s, want 1.1.0 for %s", o.Manifest.Version, o.Manifest.Board, board)
	}
	got, _ := os.ReadFile(f.slot)
	want, _ := os.ReadFile(f.imageFile("1.1.0"))
	if !bytes.Equal(got, want) || int64(len(got)) != o.Image.Length {
		t.Fatal("downloaded image differs from the published one")
	}
	beta, err := f.channel(func(c *ChannelConfig) { c.Channel = "beta" }).Check(context.Background())
	if err != nil || beta.Manifest.Version != "1.2.0" {
		t.Fatalf("beta device got %v, %v; want 1.2.0", beta, err)
	}
	if _, err := f.channel(func(c *ChannelConfig) { c.Board = "rock5b" }).Check(context.Background()); !errors.Is(err, ErrNoRelease) {
		t.Fatalf("board without releases: %v, want ErrNoRelease", err)
	}
}

func TestIdlePollDownloadsOnlyTheTimestamp(t *testing.T) {
	f := newFixture(t, 1, 1)
	f.publish(board, "1.0.0", "stable", 100)
	c := f.channel()
	if _, err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := c.LastPoll()
	if _, err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	idle := c.LastPoll()
	t.Logf("first poll: %d bytes in %d requests %v", first.Bytes, first.Requests, first.Files)
	t.Logf("idle poll: %d bytes downloaded (%v) in %d requests (the other is the 404 for the next root version)", idle.Bytes, idle.Files, idle.Requests)
	if len(idle.Files) != 1 || idle.Files[0] != "timestamp.json" {
		t.Fatalf("idle poll fetched %v, want only timestamp.json", idle.Files)
	}
}

func TestStagedRolloutHoldsBackDevicesOutsideTheBucket(t *testing.T) {
	f := newFixture(t, 1, 1)
	f.publish(board, "1.0.0", "stable", 100)
	f.publish(board, "1.1.0", "stable", 30)
	in, out := "", ""
	for i := 0; in == "" || out == ""; i++ {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26))
		if InRollout(id, "1.1.0", 30) {
			in = id
		} else {
			out = id
		}
	}
	for id, want := range map[string]string{in: "1.1.0", out: "1.0.0"} {
		o, err := f.channel(func(c *ChannelConfig) { c.MachineID = id }).Check(context.Background())
		if err != nil || o.Manifest.Version != want {
			t.Errorf("device %s (bucket %d) got %v, %v; want %s", id, RolloutBucket(id, "1.1.0"), o, err, want)
		}
	}
}
