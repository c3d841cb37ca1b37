package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/cloud-init"
	"github.com/cairn-edge/cairn/cmd/internal/cli"
)

func newConfigCmd(opts *cli.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check device configuration (cloud-init user-data and network-config)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate USER-DATA [NETWORK-CONFIG]",
		Short: "Validate a #cloud-config user-data and optionally a network-config; print every error as file:line:col",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true // the errors are the output; usage would bury them
			return runConfigValidate(opts, cmd.OutOrStdout(), args)
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:       "schema [user-data|network-config|meta-data]",
		Short:     "Print the JSON Schema of a configuration file, for editors",
		Args:      cobra.MatchAll(cobra.MaximumNArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"user-data", "network-config", "meta-data"},
		RunE: func(cmd *cobra.Command, args []string) error {
			kind := "user-data"
			if len(args) == 1 {
				kind = args[0]
			}
			s, err := cloudinit.Schema(kind)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", s)
			return err
		},
	})
	return cmd
}

// validateResult is what `cairn config validate` reports.
type validateResult struct {
	Files  []string                   `json:"files"`
	Valid  bool                       `json:"valid"`
	Errors cloudinit.ValidationErrors `json:"errors"`
}

func (r validateResult) WriteText(w io.Writer) error {
	for _, e := range r.Errors {
		if _, err := fmt.Fprintln(w, e.Error()); err != nil {
			return err
		}
	}
	if r.Valid {
		for _, f := range r.Files {
			if _, err := fmt.Fprintf(w, "%s: valid\n", f); err != nil {
				return err
			}
		}
	}
	return nil
}

func runConfigValidate(opts *cli.Options, out io.Writer, args []string) error {
	res := validateResult{Files: args, Errors: cloudinit.ValidationErrors{}}
	parsers := []func(string, []byte) error{
		func(f string, b []byte) error { _, err := cloudinit.ParseUserData(f, b); return err },
		func(f string, b []byte) error { _, err := cloudinit.ParseNetworkConfig(f, b); return err },
	}
	for i, path := range args {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config validate: %w", err)
		}
		err = parsers[i](path, data)
		var verrs cloudinit.ValidationErrors
		if errors.As(err, &verrs) {
			res.Errors = append(res.Errors, verrs...)
		} else if err != nil {
			return fmt.Errorf("config validate %s: %w", path, err)
		}
	}
	res.Valid = len(res.Errors) == 0
	if err := opts.Print(out, res); err != nil {
		return err
	}
	if !res.Valid {
		return fmt.Errorf("%d configuration errors", len(res.Errors))
	}
	return nil
}
