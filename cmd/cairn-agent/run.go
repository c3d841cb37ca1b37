package main

import (
	"context"
	"errors"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/daemon"
	"github.com/cairn-edge/cairn/agent/network"
	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/partitions/bootstate"
)

func newRunCmd(opts *cli.Options) *cobra.Command {
	cfg := daemon.Config{BootLocation: bootstate.DefaultLocation()}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent daemon (under systemd, Type=notify): network, k3s, health gate, update engine, local API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := opts.Logger()
			if err != nil {
				return err
			}
			defer log.Sync()
			cfg.Log = log
			if cfg.Root == "/" {
				cfg.Hostname = network.UTSHostname{}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			err = daemon.New(cfg).Run(ctx)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Root, "root", "/", "filesystem root of the device (/proc, /sys, boot env, /etc/cairn)")
	fl.StringVar(&cfg.VarDir, "var-dir", agent.StateDir, "agent state on /var")
	fl.StringVar(&cfg.TrustedRoot, "trusted-root", agent.TrustedRootPath, "the channel's TUF root baked into the image, under --root")
	fl.StringVar(&cfg.Board, "board", "", "board name releases are selected for (default: contents of "+agent.BoardPath+")")
	fl.StringVar(&cfg.BootLocation.GrubEnv, "grubenv", cfg.BootLocation.GrubEnv, "GRUB environment block, on UEFI boards")
	fl.StringVar(&cfg.BootLocation.FwEnvConfig, "fw-env-config", cfg.BootLocation.FwEnvConfig, "fw_env.config of the U-Boot environment, on U-Boot boards")
	fl.StringVar(&cfg.TPM, "tpm", "", "TPM address: a device, or a swtpm socket as unix:PATH (default ROOT/dev/tpmrm0)")
	_ = fl.MarkHidden("tpm")
	socketFlag(cmd, &cfg.Socket)
	return cmd
}
