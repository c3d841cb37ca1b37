package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/partitions"
)

func newLayoutCmd(opts *cli.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "layout",
		Short: "List the GPT disk layouts, show where partitions land, write empty images",
	}
	cmd.AddCommand(newLayoutListCmd(opts), newLayoutShowCmd(opts), newLayoutWriteCmd(opts))
	return cmd
}

func newLayoutListCmd(opts *cli.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the layouts built into cairn",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var list layoutList
			for _, name := range partitions.Layouts() {
				l, err := partitions.LoadLayout(name)
				if err != nil {
					return err
				}
				list.Layouts = append(list.Layouts, layoutEntry{l.Name, l.Description, l.MinDiskBytes(true)})
			}
			return opts.Print(cmd.OutOrStdout(), list)
		},
	}
}

// planFlags are the flags that turn a layout into a plan.
type planFlags struct {
	size         string
	withOptional bool
}

func (f *planFlags) bind(cmd *cobra.Command, sizeFlag, what string) {
	cmd.Flags().StringVar(&f.size, sizeFlag, "", what+" (e.g. 8GiB); default: the smallest the layout fits")
	cmd.Flags().BoolVar(&f.withOptional, "with-optional", true, "include optional partitions (CIDATA)")
}

func (f *planFlags) plan(name, sizeFlag string) (*partitions.Plan, error) {
	l, err := partitions.LoadLayout(name)
	if err != nil {
		return nil, err
	}
	size := l.MinDiskBytes(f.withOptional)
	if f.size != "" {
		if size, err = partitions.ParseSize(f.size); err != nil {
			return nil, fmt.Errorf("--%s: %w", sizeFlag, err)
		}
	}
	return l.Plan(size, f.withOptional)
}

func newLayoutShowCmd(opts *cli.Options) *cobra.Command {
	var pf planFlags
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show where each partition of a layout lands on a medium",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, err := pf.plan(args[0], "disk-size")
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), planView{plan})
		},
	}
	pf.bind(cmd, "disk-size", "size of the medium")
	return cmd
}

func newLayoutWriteCmd(opts *cli.Options) *cobra.Command {
	var pf planFlags
	var seed string
	cmd := &cobra.Command{
		Use:   "write NAME IMAGE",
		Short: "Write an empty, partitioned, sparse disk image",
		Long: "Write IMAGE as a sparse file holding a protective MBR and the layout's GPT.\n" +
			"GUIDs are derived from --seed, so the same arguments give the same bytes.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, err := pf.plan(args[0], "size")
			if err != nil {
				return err
			}
			if seed != "" {
				plan.Seed(seed)
			}
			if err := partitions.WriteImage(args[1], plan); err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), written{Image: args[1], Plan: planView{plan}})
		},
	}
	pf.bind(cmd, "size", "size of the image")
	cmd.Flags().StringVar(&seed, "seed", "", "seed for the disk and partition GUIDs; default: the layout name")
	return cmd
}

type layoutList struct {
	Layouts []layoutEntry `json:"layouts"`
}

type layoutEntry struct {
	Name         string `json:"name"`
	Description  string `json:"description"`
	MinDiskBytes int64  `json:"min_disk_bytes"`
}

func (l layoutList) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSMALLEST MEDIUM\tDESCRIPTION")
	for _, e := range l.Layouts {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Name, partitions.FormatSize(e.MinDiskBytes), e.Description)
	}
	return tw.Flush()
}

type planView struct{ *partitions.Plan }

func (p planView) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "layout %s on %s (%d sectors of %d B), disk GUID %s\n",
		p.Layout, partitions.FormatSize(p.DiskBytes), p.DiskBytes/p.SectorSize, p.SectorSize, p.DiskGUID)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tLABEL\tTYPE\tFIRST\tLAST\tSIZE\tGUID")
	for _, pi := range p.Partitions {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%s\n",
			pi.Number, pi.Label, pi.Type, pi.FirstLBA, pi.LastLBA, partitions.FormatSize(pi.Bytes), pi.GUID)
	}
	return tw.Flush()
}

type written struct {
	Image string   `json:"image"`
	Plan  planView `json:"plan"`
}

func (r written) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "wrote %s\n", r.Image)
	return r.Plan.WriteText(w)
}
