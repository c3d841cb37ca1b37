// Command cairn is the operator's tool: keys, releases, channels, disk images
// and configuration checks, run on a workstation or in CI.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/cmd/internal/cli"
)

func main() {
	var opts cli.Options
	root := &cobra.Command{
		Use:           "cairn",
		Short:         "Build, sign and publish Cairn releases and disk images",
		Version:       cli.Version,
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	opts.Bind(root)
	// One constructor per command group, each in its own file.
	for _, newCmd := range []func(*cli.Options) *cobra.Command{
		newLayoutCmd,
		newConfigCmd,
		newKeysCmd,
		newReleaseCmd,
		newChannelCmd,
		newTimestampCmd,
		newSlotCmd,
		newAttestCmd,
		newBoardsCmd,
		newImageCmd,
	} {
		root.AddCommand(newCmd(&opts))
	}
	if err := root.Execute(); err != nil {
		os.Exit(1)
	}
}
