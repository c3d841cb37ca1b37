package cloudinit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// errNotFound marks a seed file the server does not have (HTTP 404).
var errNotFound = errors.New("not found")

// Fetcher downloads a seed from a URL, retrying with exponential backoff.
// The zero value is usable: 5 attempts, 1s first delay doubling up to 30s.
type Fetcher struct {
	Client     *http.Client // nil: a client with a 30s timeout
	Attempts   int
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Sleep waits between attempts; tests replace it. nil: a timer that
	// returns early with ctx.Err() when ctx ends.
	Sleep func(ctx context.Context, d time.Duration) error
}

// maxSeedFile bounds one downloaded file: configs are kilobytes.
const maxSeedFile = 1 << 20

// Fetch reads the seed at seedURL (http, https or file, ending in '/').
// user-data and meta-data must exist; network-config is optional.
func (f *Fetcher) Fetch(ctx context.Context, seedURL string) (Seed, error) {
	u, err := url.Parse(seedURL)
	if err != nil {
		return Seed{}, fmt.Errorf("seed %s: %w", seedURL, err)
	}
	if u.Scheme == "file" {
		return ReadSeedDir(u.Path)
	}
	attempts, delay, maxDelay := f.Attempts, f.Backoff, f.MaxBackoff
	if attempts <= 0 {
		attempts = 5
	}
	if delay <= 0 {
		delay = time.Second
	}
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	sleep := f.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			if err := sleep(ctx, delay); err != nil {
				return Seed{}, fmt.Errorf("seed %s: %w (last error: %v)", seedURL, err, lastErr)
			}
			delay = min(2*delay, maxDelay)
		}
		s, err := f.fetchOnce(ctx, seedURL)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return Seed{}, fmt.Errorf("seed %s: %d attempts: %w", seedURL, attempts, lastErr)
}

func (f *Fetcher) fetchOnce(ctx context.Context, seedURL string) (Seed, error) {
	s := Seed{Origin: seedURL}
	for _, name := range seedFiles {
		b, err := f.get(ctx, seedURL+name)
		if errors.Is(err, errNotFound) && name == "network-config" {
			continue
		}
		if err != nil {
			return Seed{}, fmt.Errorf("%s: %w", name, err)
		}
		s.set(name, b)
	}
	return s, nil
}

func (f *Fetcher) get(ctx context.Context, u string) ([]byte, error) {
	client := f.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, errNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSeedFile+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(b) > maxSeedFile {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", u, maxSeedFile)
	}
	return b, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
