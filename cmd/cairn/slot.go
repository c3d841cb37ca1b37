package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/images/slot"
	"github.com/cairn-edge/cairn/images/verity"
	"github.com/cairn-edge/cairn/partitions"
)

func newSlotCmd(opts *cli.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "slot",
		Short: "Build and check slot images: filesystem, dm-verity tree and signed footer",
	}
	cmd.AddCommand(newSlotBuildCmd(opts), newSlotVerifyCmd(opts))
	return cmd
}

type slotBuilt struct{ *slot.Result }

func (s slotBuilt) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "slot image %s: %s slot, %s filesystem, %d bytes of hash tree\nverity root hash %s\nsha256 %s\n",
		s.Path, partitions.FormatSize(s.SlotSize), partitions.FormatSize(s.FSSize), s.HashSize, s.RootHash, s.SHA256)
	return err
}

func newSlotBuildCmd(opts *cli.Options) *cobra.Command {
	var o slot.Options
	var slotSize, fsSize, keyPath, epoch string
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build a reproducible slot image from a root directory and sign its footer with the release key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.SlotSize, err = partitions.ParseSize(slotSize); err != nil {
				return fmt.Errorf("--slot-size: %w", err)
			}
			if fsSize != "" {
				if o.FSSize, err = partitions.ParseSize(fsSize); err != nil {
					return fmt.Errorf("--fs-size: %w", err)
				}
			}
			if epoch == "" {
				epoch = os.Getenv("SOURCE_DATE_EPOCH")
			}
			if o.SourceDateEpoch, err = strconv.ParseInt(epoch, 10, 64); err != nil {
				return fmt.Errorf("--source-date-epoch (or SOURCE_DATE_EPOCH) %q: want seconds since 1970", epoch)
			}
			if o.ReleaseKey, err = channel.ReadReleaseKey(keyPath); err != nil {
				return err
			}
			res, err := slot.Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), slotBuilt{res})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.RootDir, "root", "", "root filesystem directory (with /boot/vmlinuz and /boot/initrd)")
	f.StringVar(&o.Output, "out", "", "slot image file to write")
	f.StringVar(&slotSize, "slot-size", "", "size of the slot partition, e.g. 2GiB")
	f.StringVar(&fsSize, "fs-size", "", "filesystem size (default: as much as the slot leaves)")
	f.StringVar(&keyPath, "release-key", "", "release key file (keys/release.key of the repository)")
	f.StringVar(&epoch, "source-date-epoch", "", "every timestamp in the image, seconds (default $SOURCE_DATE_EPOCH)")
	f.StringVar(&o.Seed, "seed", "", "seed for filesystem UUID and verity salt (default from board, version and epoch)")
	f.StringVar(&o.Manifest.Version, "version", "", "release version (semver)")
	f.StringVar(&o.Manifest.Board, "board", "", "board name")
	f.StringVar(&o.Manifest.Arch, "arch", "amd64", "board architecture: amd64 or arm64")
	f.StringVar(&o.Manifest.MinVersion, "min-version", "", "oldest installed version this release may be installed over")
	f.StringVar(&o.Manifest.Notes, "notes", "", "release notes")
	for _, name := range []string{"root", "out", "slot-size", "release-key", "version", "board"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

type slotVerified struct {
	Path     string `json:"path"`
	Version  string `json:"version"`
	Board    string `json:"board"`
	RootHash string `json:"verity_root_hash"`
	Footer   string `json:"footer_digest"`
}

func (s slotVerified) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "slot image %s: release %s for %s, signature and dm-verity tree verified\nverity root hash %s\nfooter digest    %s\n",
		s.Path, s.Version, s.Board, s.RootHash, s.Footer)
	return err
}

func newSlotVerifyCmd(opts *cli.Options) *cobra.Command {
	var pubPath string
	cmd := &cobra.Command{
		Use:   "verify IMAGE",
		Short: "Check a slot image's (or slot partition's) footer signature and its whole dm-verity tree",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := channel.ReadReleasePublicKey(pubPath)
			if err != nil {
				return err
			}
			f, err := footer.ReadFromDevice(args[0])
			if err != nil {
				return err
			}
			if err := f.Verify(pub); err != nil {
				return fmt.Errorf("slot %s: %w", args[0], err)
			}
			img, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer img.Close()
			if err := verity.Verify(cmd.Context(), img, f.DataSize, f.VerityParams(), f.RootHash); err != nil {
				return fmt.Errorf("slot %s: %w", args[0], err)
			}
			d, err := f.Digest()
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), slotVerified{args[0], f.Manifest.Version, f.Manifest.Board,
				fmt.Sprintf("%x", f.RootHash), fmt.Sprintf("%x", d)})
		},
	}
	cmd.Flags().StringVar(&pubPath, "release-public-key", "", "release public key (release-key.pub of the repository)")
	_ = cmd.MarkFlagRequired("release-public-key")
	return cmd
}
