package main

import (
	"encoding/hex"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/internal/atomicfile"
)

func newAttestCmd(_ *cli.Options) *cobra.Command {
	var nonceHex, out string
	var m agent.MeasuredBoot
	cmd := &cobra.Command{
		Use:   "attest --nonce HEX [--out FILE]",
		Short: "Answer a verifier's nonce with a TPM quote of the measured boot and its event logs",
		Long: "attest quotes the boot PCRs and Cairn's PCR with the attestation key kept on /var,\n" +
			"and writes the bundle `cairn attest verify` checks: the quote, the measurement log,\n" +
			"the firmware event log when present, the AK public and the EK certificate when present.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nonce, err := hex.DecodeString(nonceHex)
			if err != nil {
				return fmt.Errorf("--nonce %q: %w", nonceHex, err)
			}
			b, err := m.Attest(cmd.Context(), nonce)
			if err != nil {
				return err
			}
			data, err := b.Marshal()
			if err != nil {
				return err
			}
			if out != "" {
				return atomicfile.Write(out, data, 0o644)
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&nonceHex, "nonce", "", "the verifier's challenge, hex (8 to 64 bytes; use 32 random bytes)")
	f.StringVar(&out, "out", "", "write the bundle to FILE (atomically) instead of stdout")
	f.StringVar(&m.Root, "root", "/", "filesystem root of the device (/run, /var, /sys)")
	f.StringVar(&m.TPM, "tpm", "", "TPM address: a device, or a swtpm socket as unix:PATH (default ROOT/dev/tpmrm0)")
	_ = f.MarkHidden("tpm")
	_ = cmd.MarkFlagRequired("nonce")
	return cmd
}
