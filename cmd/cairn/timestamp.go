package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/images/channel"
)

func newTimestampCmd(opts *cli.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "timestamp",
		Short: "Keep the channel timestamp fresh",
	}
	cmd.AddCommand(newTimestampRefreshCmd(opts))
	return cmd
}

type timestampRefreshed struct {
	Signed  bool      `json:"signed"`
	Expires time.Time `json:"expires"`
}

func (t timestampRefreshed) WriteText(w io.Writer) error {
	verb := "still valid"
	if t.Signed {
		verb = "re-signed"
	}
	_, err := fmt.Fprintf(w, "timestamp %s, expires %s\n", verb, t.Expires.Format(time.RFC3339))
	return err
}

func newTimestampRefreshCmd(opts *cli.Options) *cobra.Command {
	var dir string
	var within time.Duration
	var force bool
	cmd := &cobra.Command{
		Use:   "refresh",
		Short: "Re-sign the timestamp when it expires soon (run from cron)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := channel.Open(dir)
			if err != nil {
				return err
			}
			if force {
				within = -1
			}
			signed, exp, err := r.RefreshTimestamp(within)
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), timestampRefreshed{signed, exp})
		},
	}
	cmd.Flags().StringVar(&dir, "repo", ".", "repository directory made by keys init")
	cmd.Flags().DurationVar(&within, "within", 72*time.Hour, "re-sign when the timestamp expires within this long")
	cmd.Flags().BoolVar(&force, "force", false, "re-sign now")
	return cmd
}
