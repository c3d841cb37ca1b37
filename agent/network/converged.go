package network

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrNotConverged is wrapped by Converged's answer while the network has
// not reached the configured state.
var ErrNotConverged = errors.New("network not converged")

// outcome is what one Apply reached.
type outcome struct {
	err error
	// dhcp are the links that asked for DHCP; leased those whose lease
	// that Apply put in place (see leased).
	dhcp, leased []string
	// required are the DHCP links that are not optional.
	required []string
	// anyLease: with no network-config, every wired link runs DHCP as
	// optional, and one lease on any of them is the network being up.
	anyLease bool
}

// recordOutcome keeps what the Apply that just ran reached, for Converged.
func (r *Reconciler) recordOutcome(res *resolved, err error) {
	o := &outcome{err: err, anyLease: r.cfg.dhcpEverywhere()}
	if res != nil {
		for _, l := range res.l3 {
			if !l.DHCP4 && !l.DHCP6 {
				continue
			}
			o.dhcp = append(o.dhcp, l.name)
			if !l.Optional {
				o.required = append(o.required, l.name)
			}
			if r.leased(l) {
				o.leased = append(o.leased, l.name)
			}
		}
	}
	r.mu.Lock()
	r.outcome = o
	r.mu.Unlock()
}

// leased reports whether a DHCP link holds the lease it needs: a DHCPv4
// one when it asks for dhcp4, else a DHCPv6 one. A link with both counts
// as up on DHCPv4 alone, since many IPv6 networks hand out addresses by
// SLAAC only and run no DHCPv6 server.
func (r *Reconciler) leased(s linkState) bool {
	if s.DHCP4 {
		return r.lease(s.name) != nil
	}
	return r.lease6(s.name) != nil
}

// Converged reports whether the last Apply reached the configured state:
// it ran without error (every non-optional interface found and configured,
// addresses, routes and DNS in place), and each link that asks for DHCP
// and is not optional holds a lease that Apply put on it (see leased). Without a
// network-config (DHCP on every wired link) one lease on any link is
// enough. The error, wrapping ErrNotConverged, says what is missing; it
// implements the health gate's NetworkState.
func (r *Reconciler) Converged(context.Context) error {
	r.mu.Lock()
	o := r.outcome
	r.mu.Unlock()
	switch {
	case o == nil:
		return fmt.Errorf("%w: not applied yet", ErrNotConverged)
	case o.err != nil:
		return fmt.Errorf("%w: %w", ErrNotConverged, o.err)
	case o.anyLease && len(o.dhcp) > 0 && len(o.leased) == 0:
		return fmt.Errorf("%w: no DHCP lease yet on any of %s", ErrNotConverged, strings.Join(o.dhcp, ", "))
	}
	var missing []string
	for _, l := range o.required {
		if !slices.Contains(o.leased, l) {
			missing = append(missing, l)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: no DHCP lease yet on %s", ErrNotConverged, strings.Join(missing, ", "))
	}
	return nil
}
