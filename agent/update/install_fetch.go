package update

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// get requests the target from byte offset on. The body it returns fails
// with ErrStalled when no byte arrives for IdleTimeout, counting from the
// request: the wait for headers stalls as much as the body can.
func (in *Installer) get(ctx context.Context, t Target, offset int64) (io.ReadCloser, error) {
	rctx, cancel := context.WithCancel(ctx)
	b := &idleBody{cancel: cancel, idle: installDefault(in.IdleTimeout, DefaultIdleTimeout)}
	b.timer = time.AfterFunc(b.idle, b.fire)
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, t.URL, nil)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("target %s: %w", t.Path, err)
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := in.client().Do(req)
	if err != nil {
		b.Close()
		if b.stalled.Load() {
			return nil, fmt.Errorf("target %s: no response in %v: %w", t.Path, b.idle, ErrStalled)
		}
		return nil, fmt.Errorf("target %s: %w", t.Path, err)
	}
	b.body = resp.Body
	switch {
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		want := fmt.Sprintf("bytes %d-", offset)
		if cr := resp.Header.Get("Content-Range"); !strings.HasPrefix(cr, want) {
			b.Close()
			return nil, fmt.Errorf("target %s: asked for offset %d, got Content-Range %q", t.Path, offset, cr)
		}
	case resp.StatusCode == http.StatusOK:
		// A server without Range support: skip what we have.
		if _, err := io.CopyN(io.Discard, b, offset); err != nil {
			b.Close()
			return nil, fmt.Errorf("target %s: skip to offset %d: %w: %w", t.Path, offset, ErrTruncated, err)
		}
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests:
		b.Close()
		return nil, fmt.Errorf("target %s: %s: %w", t.Path, resp.Status, ErrServer)
	default:
		b.Close()
		return nil, fmt.Errorf("target %s: %s", t.Path, resp.Status)
	}
	return b, nil
}

// idleBody cancels its request when no byte arrived for idle.
type idleBody struct {
	body    io.ReadCloser
	cancel  context.CancelFunc
	timer   *time.Timer
	idle    time.Duration
	stalled atomic.Bool
}

func (b *idleBody) fire() {
	b.stalled.Store(true)
	b.cancel()
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if n > 0 && !b.stalled.Load() {
		b.timer.Reset(b.idle)
	}
	if err != nil && err != io.EOF && b.stalled.Load() {
		return n, fmt.Errorf("no byte in %v: %w", b.idle, ErrStalled)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	b.cancel()
	if b.body != nil {
		return b.body.Close()
	}
	return nil
}
