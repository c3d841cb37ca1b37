package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
)

// ErrNotRunning means nothing answers on the socket: the agent is not
// running, or the caller may not open the socket.
var ErrNotRunning = errors.New("the agent does not answer")

// Client calls the local API over its unix socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client of the agent listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (*DeviceStatus, error) {
	var out DeviceStatus
	return &out, c.call(ctx, http.MethodGet, "/v1/status", &out)
}

// Check is POST /v1/update/check.
func (c *Client) Check(ctx context.Context) (*CheckResult, error) {
	var out CheckResult
	return &out, c.call(ctx, http.MethodPost, "/v1/update/check", &out)
}

// Apply is POST /v1/update/apply.
func (c *Client) Apply(ctx context.Context) (*Message, error) {
	var out Message
	return &out, c.call(ctx, http.MethodPost, "/v1/update/apply", &out)
}

// Rollback is POST /v1/rollback.
func (c *Client) Rollback(ctx context.Context) (*Message, error) {
	var out Message
	return &out, c.call(ctx, http.MethodPost, "/v1/rollback", &out)
}

func (c *Client) call(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("agent API %s: %w: %v", c.socket, ErrNotRunning, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("agent API %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			return fmt.Errorf("agent API %s %s: status %d", method, path, resp.StatusCode)
		}
		if e.Code == "peer" {
			return fmt.Errorf("agent API %s: %w: %s", c.socket, ErrPeerRefused, e.Error)
		}
		for _, k := range codes {
			if k.code == e.Code {
				return &remoteError{msg: e.Error, err: k.err}
			}
		}
		return errors.New(e.Error)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("agent API %s %s: %w", method, path, err)
	}
	return nil
}

// remoteError reads as the agent's message and matches its sentinel.
type remoteError struct {
	msg string
	err error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.err }
