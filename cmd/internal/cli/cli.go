// Package cli holds what Cairn's three commands share: the logging and output
// flags, the zap logger they select, and the JSON-or-table rendering of
// read commands.
package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options are the flags every Cairn command accepts.
type Options struct {
	LogFormat string // "json" (default) or "console"
	LogLevel  string
	Output    string // "text" (default) or "json", for read commands
}

// Bind registers the persistent flags on a root command.
func (o *Options) Bind(root *cobra.Command) {
	root.PersistentFlags().StringVar(&o.LogFormat, "log-format", "json", `log format: "json" for machines, "console" for people`)
	root.PersistentFlags().StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVarP(&o.Output, "output", "o", "text", `output of read commands: "text" or "json"`)
}

// Logger builds the zap logger the flags ask for. Logs go to stderr so that
// stdout stays the command's output.
func (o *Options) Logger() (*zap.Logger, error) {
	var cfg zap.Config
	switch o.LogFormat {
	case "json":
		cfg = zap.NewProductionConfig()
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
		cfg.DisableStacktrace = true
	default:
		return nil, fmt.Errorf("--log-format %q: want json or console", o.LogFormat)
	}
	level, err := zapcore.ParseLevel(o.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	cfg.Level = zap.NewAtomicLevelAt(level)
	cfg.OutputPaths = []string{"stderr"}
	cfg.ErrorOutputPaths = []string{"stderr"}
	return cfg.Build()
}

// Textual is a result that knows how to print itself for people.
type Textual interface {
	WriteText(w io.Writer) error
}

// Print writes v as indented JSON with --output json, and as text otherwise.
func (o *Options) Print(w io.Writer, v Textual) error {
	switch o.Output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "text", "":
		return v.WriteText(w)
	default:
		return fmt.Errorf("--output %q: want text or json", o.Output)
	}
}

// Version is the Cairn release these binaries were built from, set by the
// Makefile through -ldflags.
var Version = "dev"
