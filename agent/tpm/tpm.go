// Package tpm measures the booted slot into a TPM PCR, replays and attests
// those measurements, seals secrets to release-signed PCR policies and keeps
// the version floor in TPM NV storage.
package tpm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// PCR is the register Cairn extends with the booted slot's identity. See
// docs/tpm.md for why 13 and not another one.
const PCR = 13

// BootPCRs are the firmware and boot loader registers a quote covers besides PCR.
var BootPCRs = [...]int{0, 1, 2, 3, 4, 5, 6, 7}

// DefaultDevice is the kernel's resource-managed TPM character device.
const DefaultDevice = "/dev/tpmrm0"

// ErrNoTPM is returned by Open when the device does not exist: callers then
// run unmeasured (see docs/tpm.md, "No TPM").
var ErrNoTPM = errors.New("no TPM")

// TPM is an open connection to a TPM 2.0. It is not safe for concurrent use:
// the agent owns the only one.
type TPM struct {
	t transport.TPMCloser
}

// New wraps an already open transport, for example the in-process simulator.
func New(t transport.TPMCloser) *TPM { return &TPM{t: t} }

// Open connects to the TPM named by addr:
//   - a character device such as /dev/tpmrm0;
//   - "unix:PATH" or a path to a Unix socket: a swtpm started with
//     --server type=unixio,path=PATH;
//   - "tcp:HOST:PORT": a swtpm started with --server type=tcp,port=PORT.
//
// The socket forms speak the raw TPM command stream (swtpm's default), not
// the Microsoft simulator framing. A missing device yields ErrNoTPM.
func Open(ctx context.Context, addr string) (*TPM, error) {
	switch {
	case strings.HasPrefix(addr, "tcp:"):
		return dialSocket(ctx, "tcp", strings.TrimPrefix(addr, "tcp:"))
	case strings.HasPrefix(addr, "unix:"):
		return dialSocket(ctx, "unix", strings.TrimPrefix(addr, "unix:"))
	}
	fi, err := os.Stat(addr)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tpm %s: %w", addr, ErrNoTPM)
	}
	if err != nil {
		return nil, fmt.Errorf("tpm %s: %w", addr, err)
	}
	if fi.Mode()&os.ModeSocket != 0 {
		return dialSocket(ctx, "unix", addr)
	}
	t, err := linuxtpm.Open(addr)
	if err != nil {
		return nil, fmt.Errorf("tpm %s: open: %w", addr, err)
	}
	return New(t), nil
}

func dialSocket(ctx context.Context, network, addr string) (*TPM, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("tpm %s:%s: dial: %w", network, addr, err)
	}
	return New(&streamTransport{c: c}), nil
}

// Close closes the connection; objects the package loaded are already flushed.
func (t *TPM) Close() error { return t.t.Close() }

// streamTransport carries raw TPM commands over one stream connection, reading
// exactly the response size the header announces.
type streamTransport struct {
	c net.Conn
}

func (s *streamTransport) Send(cmd []byte) ([]byte, error) {
	if _, err := s.c.Write(cmd); err != nil {
		return nil, fmt.Errorf("tpm socket: write command: %w", err)
	}
	hdr := make([]byte, 10) // tag (2), size (4), response code (4)
	if _, err := io.ReadFull(s.c, hdr); err != nil {
		return nil, fmt.Errorf("tpm socket: read response header: %w", err)
	}
	size := int(hdr[2])<<24 | int(hdr[3])<<16 | int(hdr[4])<<8 | int(hdr[5])
	if size < len(hdr) || size > 1<<20 {
		return nil, fmt.Errorf("tpm socket: response size %d out of range", size)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr)
	if _, err := io.ReadFull(s.c, rsp[len(hdr):]); err != nil {
		return nil, fmt.Errorf("tpm socket: read response body: %w", err)
	}
	return rsp, nil
}

func (s *streamTransport) Close() error { return s.c.Close() }

// pcrSelection selects pcrs in the SHA-256 bank.
func pcrSelection(pcrs ...int) tpm2.TPMLPCRSelection {
	u := make([]uint, len(pcrs))
	for i, p := range pcrs {
		u[i] = uint(p)
	}
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash:      tpm2.TPMAlgSHA256,
		PCRSelect: tpm2.PCClientCompatible.PCRs(u...),
	}}}
}

// ReadPCRs returns the SHA-256 bank values of pcrs.
func (t *TPM) ReadPCRs(pcrs ...int) (map[int][]byte, error) {
	out := make(map[int][]byte, len(pcrs))
	// A TPM returns at most 8 digests per PCR_Read: ask in batches.
	for start := 0; start < len(pcrs); start += 8 {
		batch := pcrs[start:min(start+8, len(pcrs))]
		rsp, err := tpm2.PCRRead{PCRSelectionIn: pcrSelection(batch...)}.Execute(t.t)
		if err != nil {
			return nil, fmt.Errorf("tpm: read PCRs %v: %w", batch, err)
		}
		got := selectedPCRs(rsp.PCRSelectionOut)
		if len(got) != len(rsp.PCRValues.Digests) {
			return nil, fmt.Errorf("tpm: read PCRs %v: %d selected, %d values", batch, len(got), len(rsp.PCRValues.Digests))
		}
		for i, p := range got {
			out[p] = rsp.PCRValues.Digests[i].Buffer
		}
	}
	for _, p := range pcrs {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("tpm: PCR %d not returned in the SHA-256 bank", p)
		}
	}
	return out, nil
}

// selectedPCRs lists the SHA-256 PCRs a selection names, in ascending order.
func selectedPCRs(sel tpm2.TPMLPCRSelection) []int {
	var out []int
	for _, s := range sel.PCRSelections {
		if s.Hash != tpm2.TPMAlgSHA256 {
			continue
		}
		for i, b := range s.PCRSelect {
			for bit := 0; bit < 8; bit++ {
				if b&(1<<bit) != 0 {
					out = append(out, i*8+bit)
				}
			}
		}
	}
	return out
}

// extend extends PCR with digest in the SHA-256 bank.
func (t *TPM) extend(pcr int, digest []byte) error {
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{
			HashAlg: tpm2.TPMAlgSHA256, Digest: digest,
		}}},
	}.Execute(t.t)
	if err != nil {
		return fmt.Errorf("tpm: extend PCR %d: %w", pcr, err)
	}
	return nil
}

// flush unloads a transient object or session; errors only matter to a
// TPM that is already failing, so they are dropped.
func (t *TPM) flush(h tpm2.TPMHandle) {
	_, _ = tpm2.FlushContext{FlushHandle: h}.Execute(t.t)
}
