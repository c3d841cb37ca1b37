package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/agent/update"
	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/images/release"
)

func newAttestCmd(opts *cli.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "attest",
		Short: "Check what a device attests it booted",
	}
	cmd.AddCommand(newAttestVerifyCmd(opts))
	return cmd
}

// attestVerified is what `cairn attest verify` reports.
type attestVerified struct {
	Summary         string  `json:"summary"`
	Slot            string  `json:"slot"`
	Release         string  `json:"release"`
	Board           string  `json:"board"`
	RootHash        tpm.Hex `json:"root_hash"`
	Measured        bool    `json:"measured"`
	MatchesManifest bool    `json:"matches_manifest"`
}

func (v attestVerified) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%s (board %s)\n", v.Summary, v.Board)
	return err
}

func newAttestVerifyCmd(opts *cli.Options) *cobra.Command {
	var nonceHex, rootPath, repo string
	cmd := &cobra.Command{
		Use:   "verify BUNDLE --nonce HEX --trusted-root root.json [--repository URL|DIR]",
		Short: "Verify a device's attestation bundle and say which signed release it runs",
		Long: "verify checks the quote's signature and nonce, replays the measurement log against\n" +
			"the quoted PCR, and looks the measured root hash up among every release manifest\n" +
			"the channel repository signs, trusting the repository through --trusted-root.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nonce, err := hex.DecodeString(nonceHex)
			if err != nil {
				return fmt.Errorf("--nonce %q: %w", nonceHex, err)
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			b, err := tpm.ParseBundle(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if repo == "" {
				repo = filepath.Dir(rootPath)
			}
			releases, err := signedReleases(cmd, rootPath, repo)
			if err != nil {
				return err
			}
			var trusted []tpm.Manifest
			for _, m := range releases {
				if root, err := hex.DecodeString(m.VerityRootHash); err == nil && len(root) > 0 {
					trusted = append(trusted, tpm.Manifest{Release: m.Version, RootHash: root})
				}
			}
			r, err := tpm.Verify(b, nonce, trusted)
			if err != nil && r.Measured {
				return fmt.Errorf("%s: %s: %w", args[0], r, err)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			v := attestVerified{Summary: r.String(), Slot: r.Slot, Release: r.Release, RootHash: r.RootHash,
				Measured: r.Measured, MatchesManifest: r.MatchesManifest}
			for _, m := range releases {
				if m.Version == r.Release && m.VerityRootHash == hex.EncodeToString(r.RootHash) {
					v.Board = m.Board
				}
			}
			return opts.Print(cmd.OutOrStdout(), v)
		},
	}
	f := cmd.Flags()
	f.StringVar(&nonceHex, "nonce", "", "the challenge the device answered, hex")
	f.StringVar(&rootPath, "trusted-root", "", "TUF root.json of the channel repository")
	f.StringVar(&repo, "repository", "", "channel repository: a URL, or a directory served as is (default: the directory of --trusted-root)")
	for _, name := range []string{"nonce", "trusted-root"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// signedReleases loads every release manifest the repository signs. A
// directory is read through a file transport, so a local repository goes
// through the same TUF checks as a served one. Metadata is cached in a
// temporary directory only for this run.
func signedReleases(cmd *cobra.Command, rootPath, repo string) ([]*release.Manifest, error) {
	cache, err := os.MkdirTemp("", "cairn-attest-tuf-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(cache)
	cfg := update.ChannelConfig{TrustedRoot: rootPath, MetadataDir: cache, RepositoryURL: repo}
	if u, err := url.Parse(repo); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		if fi, err := os.Stat(repo); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("--repository %q: want an http(s) URL or a directory", repo)
		}
		cfg.RepositoryURL = "file:///"
		cfg.HTTPClient = &http.Client{Transport: http.NewFileTransport(http.Dir(repo))}
	}
	releases, err := update.SignedReleases(cmd.Context(), cfg)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", repo, err)
	}
	return releases, nil
}
