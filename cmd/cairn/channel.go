package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/images/channel"
)

func newChannelCmd(opts *cli.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "channel",
		Short: "Publish releases to update channels and inspect them",
	}
	cmd.PersistentFlags().String("repo", ".", "repository directory made by keys init")
	cmd.AddCommand(newChannelPublishCmd(opts), newChannelPromoteCmd(opts), newChannelStatusCmd(opts))
	return cmd
}

func openRepo(cmd *cobra.Command) (*channel.Repo, error) {
	dir, err := cmd.Flags().GetString("repo")
	if err != nil {
		return nil, err
	}
	return channel.Open(dir)
}

type publishedList struct {
	Published []channel.Published `json:"published"`
}

func (p publishedList) WriteText(w io.Writer) error {
	for _, r := range p.Published {
		if _, err := fmt.Fprintf(w, "%s: %s %s, rollout %d%%\n", r.Channel, r.Board, r.Version, r.Rollout); err != nil {
			return err
		}
	}
	return nil
}

func newChannelPublishCmd(opts *cli.Options) *cobra.Command {
	var releases, ch, version string
	var rollout int
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Add a release's artifacts to the signed targets of a channel",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := openRepo(cmd)
			if err != nil {
				return err
			}
			r.Progress = newProgress(cmd.ErrOrStderr())
			pub, err := r.Publish(cmd.Context(), releases, version, ch, rollout)
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), publishedList{pub})
		},
	}
	cmd.Flags().StringVar(&releases, "releases", "releases", "directory release create wrote to")
	cmd.Flags().StringVar(&ch, "channel", "stable", "channel name")
	cmd.Flags().StringVar(&version, "release", "", "release version to publish")
	cmd.Flags().IntVar(&rollout, "rollout", 100, "percentage of devices that may take it")
	_ = cmd.MarkFlagRequired("release")
	return cmd
}

func newChannelPromoteCmd(opts *cli.Options) *cobra.Command {
	var from, to, version string
	var rollout int
	cmd := &cobra.Command{
		Use:   "promote",
		Short: "Put the newest release of one channel (or --release) on another",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := openRepo(cmd)
			if err != nil {
				return err
			}
			pub, err := r.Promote(from, to, version, rollout)
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), publishedList{pub})
		},
	}
	cmd.Flags().StringVar(&from, "from", "beta", "channel to promote from")
	cmd.Flags().StringVar(&to, "to", "stable", "channel to promote to")
	cmd.Flags().StringVar(&version, "release", "", "version to promote (default: the newest on --from)")
	cmd.Flags().IntVar(&rollout, "rollout", 100, "percentage of devices that may take it")
	return cmd
}

func newChannelStatusCmd(opts *cli.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show what each channel points to and when metadata expires",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := openRepo(cmd)
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), r.Status())
		},
	}
}
