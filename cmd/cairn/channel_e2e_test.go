package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/agent/update"
	"github.com/cairn-edge/cairn/cmd/internal/cli"
)

// cairn runs the release commands in-process, as the binary would.
func cairn(t *testing.T, args ...string) string {
	t.Helper()
	var opts cli.Options
	root := &cobra.Command{Use: "cairn", SilenceUsage: true, SilenceErrors: true}
	opts.Bind(root)
	for _, newCmd := range []func(*cli.Options) *cobra.Command{newKeysCmd, newReleaseCmd, newChannelCmd, newTimestampCmd} {
		root.AddCommand(newCmd(&opts))
	}
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("cairn %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

func TestReleasePublishedWithCairnIsPickedByADevice(t *testing.T) {
	work := t.TempDir()
	repo, releases := filepath.Join(work, "repo"), filepath.Join(work, "releases")
	img := filepath.Join(work, "slot.img")
	if err := os.WriteFile(img, bytes.Repeat([]byte("cairn slot "), 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	cairn(t, "keys", "init", repo, "--root-keys", "3", "--root-threshold", "2")
	cairn(t, "release", "create", "--image", img, "--version", "1.2.0", "--board", "qemu-x86",
		"--arch", "amd64", "--releases", releases, "--notes", "first")
	cairn(t, "channel", "publish", "--repo", repo, "--releases", releases, "--channel", "beta", "--release", "1.2.0")
	cairn(t, "channel", "promote", "--repo", repo, "--from", "beta", "--to", "stable", "--rollout", "100")
	cairn(t, "timestamp", "refresh", "--repo", repo, "--force")

	var status struct {
		Channels []struct{ Channel, Board, Version string }
	}
	out := cairn(t, "channel", "status", "--repo", repo, "--output", "json")
	if err := json.Unmarshal([]byte(out), &status); err != nil || len(status.Channels) != 2 {
		t.Fatalf("channel status --output json: %v\n%s", err, out)
	}

	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(repo, "repository"))))
	defer srv.Close()
	dev := t.TempDir()
	c, err := update.NewChannel(update.ChannelConfig{
		TrustedRoot: filepath.Join(repo, "repository", "root.json"), MetadataDir: filepath.Join(dev, "tuf"),
		RepositoryURL: srv.URL, Channel: "stable", Board: "qemu-x86", MachineID: "e2e",
		Floor: update.NewVersionFloor(filepath.Join(dev, "version-floor")),
	})
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if o.Manifest.Version != "1.2.0" || o.Manifest.Notes != "first" || o.Image.Length != o.Manifest.Image.CompressedSize {
		t.Fatalf("device was offered %+v", o.Manifest)
	}
	t.Logf("device picked %s: image %s, %d bytes (from %d)", o.Manifest.Version, o.Image.Path, o.Image.Length, o.Manifest.Image.Size)
}
