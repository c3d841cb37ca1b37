package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/beevik/ntp"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Clock reads and steps the system clock; tests give one that leaves the
// machine's clock alone.
type Clock interface {
	Now() time.Time
	Set(time.Time) error
}

// SystemClock is CLOCK_REALTIME.
type SystemClock struct{}

// Now returns the system time.
func (SystemClock) Now() time.Time { return time.Now() }

// Set steps the system time to t.
func (SystemClock) Set(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("clock_settime %s: %w", t.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// TimeSync sets the clock from SNTP servers (RFC 4330) before anything
// checks a certificate or a TUF expiry. Those checks need the clock right
// to within minutes, not milliseconds, so one good answer is enough and
// the clock is stepped, not slewed; continuous discipline is left to a
// full NTP daemon if a workload needs it.
type TimeSync struct {
	// Servers are host or host:port (port 123 when absent), asked in
	// order; configured ones first, then those from DHCP.
	Servers []string
	Clock   Clock
	// Threshold is the smallest offset worth a step; 1 s when zero.
	Threshold time.Duration
	// Timeout per query; 5 s when zero.
	Timeout time.Duration
	// Namespace, when set, is the network namespace queries leave from.
	Namespace *netns.NsHandle
}

// SyncResult says which server answered and what was done.
type SyncResult struct {
	Server  string
	Offset  time.Duration // server time minus local time
	RTT     time.Duration
	Stepped bool
}

// ErrNoTimeServer means no server gave a usable answer.
var ErrNoTimeServer = errors.New("no usable time server")

// Sync asks the servers in turn and steps the clock by the offset of the
// first valid answer when it exceeds Threshold.
func (s *TimeSync) Sync(ctx context.Context) (SyncResult, error) {
	if len(s.Servers) == 0 {
		return SyncResult{}, fmt.Errorf("%w: none configured", ErrNoTimeServer)
	}
	var errs []error
	for _, server := range s.Servers {
		if err := ctx.Err(); err != nil {
			return SyncResult{}, err
		}
		resp, err := ntp.QueryWithOptions(server, s.queryOptions())
		if err == nil {
			err = resp.Validate()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("ntp %s: %w", server, err))
			continue
		}
		res := SyncResult{Server: server, Offset: resp.ClockOffset, RTT: resp.RTT}
		threshold := s.Threshold
		if threshold == 0 {
			threshold = time.Second
		}
		if res.Offset.Abs() >= threshold {
			if err := s.Clock.Set(s.Clock.Now().Add(res.Offset)); err != nil {
				return res, fmt.Errorf("ntp %s: step clock by %v: %w", server, res.Offset, err)
			}
			res.Stepped = true
		}
		return res, nil
	}
	return SyncResult{}, fmt.Errorf("%w: %w", ErrNoTimeServer, errors.Join(errs...))
}

func (s *TimeSync) queryOptions() ntp.QueryOptions {
	o := ntp.QueryOptions{Timeout: s.Timeout, GetSystemTime: s.Clock.Now}
	if s.Namespace != nil {
		ns := *s.Namespace
		o.Dialer = func(local, remote string) (net.Conn, error) {
			var c net.Conn
			err := inNamespace(ns, func() error {
				var err error
				c, err = net.Dial("udp", remote)
				return err
			})
			return c, err
		}
	}
	return o
}
