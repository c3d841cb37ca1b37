package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/images/channel"
)

func newKeysCmd(opts *cli.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create and rotate the signing keys of a channel repository",
	}
	cmd.AddCommand(newKeysInitCmd(opts), newKeysRotateCmd(opts), newKeysReleaseKeyCmd(opts))
	return cmd
}

type keysCreated struct {
	Dir         string `json:"dir"`
	KeysDir     string `json:"keys_dir"`
	ServeDir    string `json:"serve_dir"`
	TrustedRoot string `json:"trusted_root"`
}

func (k keysCreated) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "private keys  %s (keep offline: root keys sign rotations only)\nserve         %s\ntrusted root  %s (bake into images)\n",
		k.KeysDir, k.ServeDir, k.TrustedRoot)
	return err
}

func newKeysInitCmd(opts *cli.Options) *cobra.Command {
	var rootKeys, threshold int
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Create ed25519 keys for root, targets, snapshot and timestamp and an empty repository",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := channel.Init(args[0], channel.InitOptions{RootKeys: rootKeys, RootThreshold: threshold})
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), keysCreated{r.Dir, r.KeysDir(), r.ServeDir(), r.RootPath()})
		},
	}
	cmd.Flags().IntVar(&rootKeys, "root-keys", 1, "number of root keys")
	cmd.Flags().IntVar(&threshold, "root-threshold", 1, "root keys needed to sign a new root")
	return cmd
}

type rotation struct{ *channel.Rotation }

func (r rotation) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%s keys rotated: root v%d, threshold %d of %d new keys; retired %d key files\n",
		r.Role, r.RootVersion, r.Threshold, len(r.NewKeyIDs), len(r.Retired))
	return err
}

func newKeysRotateCmd(opts *cli.Options) *cobra.Command {
	var dir, role string
	var count, threshold int
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace a role's keys in a new root signed by the old and new root keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := channel.Open(dir)
			if err != nil {
				return err
			}
			rot, err := r.RotateKeys(role, count, threshold)
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), rotation{rot})
		},
	}
	cmd.Flags().StringVar(&dir, "repo", ".", "repository directory made by keys init")
	cmd.Flags().StringVar(&role, "role", "root", "role to rotate: root, targets, snapshot or timestamp")
	cmd.Flags().IntVar(&count, "keys", 1, "number of new keys")
	cmd.Flags().IntVar(&threshold, "threshold", 1, "new keys needed to sign")
	return cmd
}

type releaseKeyCreated struct {
	PrivateKey string `json:"private_key"`
	PublicKey  string `json:"public_key"`
}

func (k releaseKeyCreated) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "release key  %s (keep offline: signs slot footers and TPM policies)\npublic key   %s (bake into images)\n",
		k.PrivateKey, k.PublicKey)
	return err
}

func newKeysReleaseKeyCmd(opts *cli.Options) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "release-key",
		Short: "Create the ECDSA P-256 release key that signs slot footers and TPM PCR policies",
		Long: "Create the release key once per repository. It is never replaced: devices seal " +
			"their secrets to it, so a new one would make them unreadable.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := channel.Open(dir)
			if err != nil {
				return err
			}
			if _, err := channel.GenerateReleaseKey(r.ReleaseKeyPath(), r.ReleasePublicKeyPath()); err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), releaseKeyCreated{r.ReleaseKeyPath(), r.ReleasePublicKeyPath()})
		},
	}
	cmd.Flags().StringVar(&dir, "repo", ".", "repository directory made by keys init")
	return cmd
}
