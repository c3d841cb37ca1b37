package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/images/release"
)

func newReleaseCmd(opts *cli.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Build release artifacts and their manifest",
	}
	cmd.AddCommand(newReleaseCreateCmd(opts))
	return cmd
}

type releaseCreated struct {
	Dir      string            `json:"dir"`
	Manifest *release.Manifest `json:"manifest"`
}

func (r releaseCreated) WriteText(w io.Writer) error {
	m := r.Manifest
	_, err := fmt.Fprintf(w, "release %s for %s (%s) in %s\nimage %s: %d bytes, %d compressed, sha256 %s\n",
		m.Version, m.Board, m.Arch, r.Dir, m.Image.Path, m.Image.Size, m.Image.CompressedSize, m.Image.CompressedSHA256)
	return err
}

func newReleaseCreateCmd(opts *cli.Options) *cobra.Command {
	var o release.CreateOptions
	var releases string
	var k3s []string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Compress a slot image (and k3s binaries) with zstd and write the release manifest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.K3s = map[string]string{}
			for _, kv := range k3s {
				arch, path, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("--k3s %q: want ARCH=PATH", kv)
				}
				o.K3s[arch] = path
			}
			o.OutDir = release.Dir(releases, o.Version, o.Board)
			o.Progress = newProgress(cmd.ErrOrStderr())
			m, err := release.Create(cmd.Context(), o)
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), releaseCreated{o.OutDir, m})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Image, "image", "", "raw slot image for the board")
	f.StringVar(&o.Version, "version", "", "release version (semver)")
	f.StringVar(&o.Board, "board", "", "board name")
	f.StringVar(&o.Arch, "arch", "amd64", "board architecture: amd64 or arm64")
	f.StringVar(&o.MinVersion, "min-version", "", "oldest installed version this release may be installed over")
	f.StringVar(&o.Notes, "notes", "", "release notes")
	f.StringVar(&o.VerityRootHash, "verity-root-hash", "", "dm-verity root hash of the image, hex")
	f.StringArrayVar(&k3s, "k3s", nil, "k3s binary for an architecture, ARCH=PATH (repeatable)")
	f.StringVar(&releases, "releases", "releases", "directory of releases (<version>/<board>/ inside)")
	for _, name := range []string{"image", "version", "board"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// newProgress draws a bar on a terminal and prints a line per 10% otherwise.
// It writes to stderr so stdout stays the command's result.
func newProgress(w io.Writer) func(file string, done, total int64) {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	var mu sync.Mutex
	last := map[string]int64{}
	return func(file string, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		pct := done * 100 / max(total, 1)
		if tty {
			bar := strings.Repeat("#", int(pct/5)) + strings.Repeat(".", 20-int(pct/5))
			fmt.Fprintf(w, "\r%-32s [%s] %3d%%", file, bar, pct)
			if done == total {
				fmt.Fprintln(w)
			}
			return
		}
		if step := pct / 10; step > last[file] || done == total && last[file] < 10 {
			last[file] = step
			fmt.Fprintf(w, "%s: %d%% (%d of %d bytes)\n", file, pct, done, total)
		}
	}
}
