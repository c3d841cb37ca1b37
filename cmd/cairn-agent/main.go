// Command cairn-agent runs on the device: it configures the host, runs k3s,
// follows the update channel, decides boot health and reports status.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/cmd/internal/cli"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	var opts cli.Options
	root := &cobra.Command{
		Use:          "cairn-agent",
		Short:        "The Cairn device agent",
		Version:      cli.Version,
		SilenceUsage: true,
	}
	opts.Bind(root)
	for _, newCmd := range []func(*cli.Options) *cobra.Command{
		newStatusCmd,
		newAttestCmd,
		newRunCmd,
		newUpdateCmd,
		newRollbackCmd,
	} {
		root.AddCommand(newCmd(&opts))
	}
	return root
}
