package e2e

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/partitions"
)

// attestErrorLine is the reporter's line when `cairn-agent attest` fails:
// its standard error on one line.
var attestErrorLine = regexp.MustCompile(`(?m)\bcairn-e2e attest-error (.*)$`)

// unmeasured is FirstBoot's check of a machine without TPM, in place of
// verifyAttestation: the device reports version in slot running
// unmeasured (the release its signed footer names, no measurement
// error), keeps the k3s token in plaintext, and `cairn-agent attest`
// refuses the host's nonce because there is no TPM, without printing a
// bundle.
func (l *Lab) unmeasured(ctx context.Context, m *Machine, from int, version string, slot partitions.Slot) error {
	st, err := m.WaitStatus(ctx, from, func(s *Status) bool {
		return s.Measurement != nil && s.K3s != nil && s.K3s.Token != nil
	})
	if err != nil {
		return err
	}
	var errs []error
	want := tpm.Result{Slot: string(slot), Release: version}.String()
	if ms := st.Measurement; ms.Summary != want || ms.Measured || ms.MatchesManifest || ms.Error != "" {
		errs = append(errs, fmt.Errorf("measurement %+v, want %q, not measured, no error", *ms, want))
	}
	if tok := st.K3s.Token; tok.Kept != agent.TokenPlaintext {
		errs = append(errs, fmt.Errorf("k3s token %+v, want kept %s (no TPM to seal it)", *tok, agent.TokenPlaintext))
	}
	l.Logf("measured boot: %s; k3s token: %s", st.Measurement.Summary, st.K3s.Token.Summary)
	subs, _, err := m.WaitFor(ctx, from, attestErrorLine)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	reason := fmt.Sprintf("attest: tpm %s: %v", tpm.DefaultDevice, tpm.ErrNoTPM)
	if !strings.Contains(subs[1], reason) {
		errs = append(errs, fmt.Errorf("cairn-agent attest failed with %q, want it to name %q", subs[1], reason))
	}
	if text := m.Console().String(); attestLine.MatchString(text[min(from, len(text)):]) {
		errs = append(errs, errors.New("the device printed an attestation bundle without a TPM"))
	}
	l.Logf("cairn-agent attest refuses: %s", strings.TrimSpace(subs[1]))
	return errors.Join(errs...)
}
