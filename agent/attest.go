package agent

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cairn-edge/cairn/agent/tpm"
)

// Attest answers a verifier's nonce with an attestation bundle: a quote of
// the boot PCRs and Cairn's PCR by the attestation key kept on /var (made on
// first use), Cairn's measurement log and the firmware's TCG log when the
// kernel exposes one. A device without TPM gets an error wrapping
// tpm.ErrNoTPM: there is nothing to attest.
func (m MeasuredBoot) Attest(ctx context.Context, nonce []byte) (*tpm.Bundle, error) {
	log, err := tpm.ReadLog(m.path(tpm.DefaultLogPath))
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	fw, err := os.ReadFile(m.path(DefaultFirmwareLogPath))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("attest: firmware event log: %w", err)
	}
	t, err := m.openTPM(ctx)
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	if t == nil {
		return nil, fmt.Errorf("attest: tpm %s: %w", m.tpmAddr(), tpm.ErrNoTPM)
	}
	defer t.Close()
	return t.Attest(m.path(DefaultAKPath), nonce, tpm.Evidence{Log: log, FirmwareLog: fw})
}
