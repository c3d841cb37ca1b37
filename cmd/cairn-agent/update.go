package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/cmd/internal/cli"
)

// printed is a one-line answer of the local API.
type printed struct {
	Message string `json:"message"`
	Result  any    `json:"result,omitempty"`
}

func (p printed) WriteText(w io.Writer) error {
	_, err := fmt.Fprintln(w, p.Message)
	return err
}

func socketFlag(cmd *cobra.Command, socket *string) {
	cmd.Flags().StringVar(socket, "socket", api.DefaultSocket, "the agent's API socket")
}

func newUpdateCmd(opts *cli.Options) *cobra.Command {
	cmd := &cobra.Command{Use: "update", Short: "Check for, install and apply OS releases through the running agent"}
	var socket string
	check := &cobra.Command{
		Use:   "check",
		Short: "Ask the channel for a new release now; the agent installs it in the background",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := api.NewClient(socket).Check(cmd.Context())
			if err != nil {
				return err
			}
			msg := "nothing to install: " + res.Message
			if res.Offer != nil {
				msg = fmt.Sprintf("release %s found on channel %s; installing (see cairn-agent status)", res.Offer.Manifest.Version, res.Offer.Channel)
			}
			return opts.Print(cmd.OutOrStdout(), printed{Message: msg, Result: res})
		},
	}
	apply := &cobra.Command{
		Use:   "apply",
		Short: "Reboot into the installed release now, whatever the reboot policy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := api.NewClient(socket).Apply(cmd.Context())
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), printed{Message: m.Message})
		},
	}
	socketFlag(check, &socket)
	socketFlag(apply, &socket)
	cmd.AddCommand(check, apply)
	return cmd
}

func newRollbackCmd(opts *cli.Options) *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Go back to the release in the other slot, which must be committed, and reboot into it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := api.NewClient(socket).Rollback(cmd.Context())
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), printed{Message: m.Message})
		},
	}
	socketFlag(cmd, &socket)
	return cmd
}
