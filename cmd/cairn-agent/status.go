package main

import (
	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
)

func newStatusCmd(opts *cli.Options) *cobra.Command {
	var root, tpmAddr, socket string
	loc := bootstate.DefaultLocation()
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the slot table (which slot booted, which boots next, tries and health) and the update state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			boot, err := partitions.Discover(root)
			if err != nil {
				return err
			}
			measured := agent.MeasuredBoot{Root: root, TPM: tpmAddr}
			st, err := localStatus(root, loc, boot, measured)
			if err != nil {
				return err
			}
			st.Measurement = measured.Measurement(cmd.Context(), boot)
			// The running agent adds the update state; without it the
			// slot table still says what boots.
			out := &api.DeviceStatus{Status: st}
			if remote, err := api.NewClient(socket).Status(cmd.Context()); err == nil && remote.Update != nil {
				out.Update = remote.Update
				api.WithVersions(st, *remote.Update)
				if remote.Status != nil {
					// What only the running agent knows.
					st.Config, st.K3s = remote.Config, remote.K3s
				}
			}
			return opts.Print(cmd.OutOrStdout(), out)
		},
	}
	cmd.Flags().StringVar(&root, "root", "/", "filesystem root of the device to inspect (/proc, /sys, boot env)")
	cmd.Flags().StringVar(&loc.GrubEnv, "grubenv", loc.GrubEnv, "GRUB environment block, on UEFI boards")
	cmd.Flags().StringVar(&loc.FwEnvConfig, "fw-env-config", loc.FwEnvConfig, "fw_env.config naming the U-Boot environment copies, on U-Boot boards")
	cmd.Flags().StringVar(&tpmAddr, "tpm", "", "TPM address: a device, or a swtpm socket as unix:PATH (default ROOT/dev/tpmrm0)")
	_ = cmd.Flags().MarkHidden("tpm")
	socketFlag(cmd, &socket)
	return cmd
}

// localStatus is the slot table read from the boot env, or for a diskless
// boot, which has neither slots nor boot env, the release it runs.
func localStatus(root string, loc bootstate.Location, boot *partitions.Boot, measured agent.MeasuredBoot) (*agent.Status, error) {
	if boot.Diskless {
		release := ""
		if f, err := measured.SignedFooter(boot.Device); err == nil {
			release = f.Manifest.Version
		}
		return agent.DisklessSlotStatus(boot, release), nil
	}
	env, err := bootstate.Open(root, loc)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	return agent.SlotStatus(boot, agent.BootEnv{Kind: env.Kind, Path: env.Path, Env: env})
}
