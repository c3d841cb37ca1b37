package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/partitions"
)

func newBoardsCmd(opts *cli.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "boards",
		Short: "List the boards cairn builds images for",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			all, err := boards.All()
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), boardList{Boards: all})
		},
	}
}

type boardList struct {
	Boards []*boards.Board `json:"boards"`
}

func (l boardList) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BOARD\tARCH\tBOOTLOADER\tLAYOUT\tSLOT\tCONSOLE\tON HARDWARE")
	for _, b := range l.Boards {
		tested := "tested"
		if !b.HardwareTested {
			tested = "untested"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Name, b.Arch, b.Bootloader, b.Layout,
			partitions.FormatSize(b.SlotSize), b.Console, tested)
	}
	return tw.Flush()
}
