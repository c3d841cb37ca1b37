package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dhcpRouteMetric ranks DHCP default routes like netplan does, behind
// static routes with a lower metric.
const dhcpRouteMetric = 100

// applyLink enforces MTU, the up state, addresses and routes of one link.
func (r *Reconciler) applyLink(s linkState, acts *[]Action) error {
	l, err := r.h.LinkByName(s.name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil // not there (yet): reported as missing unless optional
	}
	if err != nil {
		return fmt.Errorf("link %s: %w", s.name, err)
	}
	a := l.Attrs()
	if s.MTU > 0 && a.MTU != s.MTU {
		if err := r.h.LinkSetMTU(l, s.MTU); err != nil {
			return fmt.Errorf("link %s: set mtu %d: %w", s.name, s.MTU, err)
		}
		*acts = append(*acts, Action{Link: s.name, Op: OpSetMTU, Detail: fmt.Sprintf("%d to %d", a.MTU, s.MTU)})
	}
	if a.Flags&net.FlagUp == 0 {
		if err := r.h.LinkSetUp(l); err != nil {
			return fmt.Errorf("link %s: set up: %w", s.name, err)
		}
		*acts = append(*acts, Action{Link: s.name, Op: OpSetUp})
	}
	lease := r.linkLease(s)
	if err := r.applyAddresses(l, s, lease, r.linkLease6(s), acts); err != nil {
		return err
	}
	return r.applyRoutes(l, s, lease, acts)
}

func (r *Reconciler) linkLease(s linkState) *Lease {
	if !s.DHCP4 {
		return nil
	}
	return r.lease(s.name)
}

func (r *Reconciler) linkLease6(s linkState) *Lease6 {
	if !s.DHCP6 {
		return nil
	}
	return r.lease6(s.name)
}

func (r *Reconciler) applyAddresses(l netlink.Link, s linkState, lease *Lease, lease6 *Lease6, acts *[]Action) error {
	want := slices.Clone(s.Addresses)
	if lease != nil {
		want = append(want, lease.Address)
	}
	leased6 := lease6.prefixes()
	have, err := r.h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("link %s: list addresses: %w", s.name, err)
	}
	present := map[netip.Prefix]bool{}
	kernel6 := map[netip.Prefix]netlink.Addr{}
	for _, a := range have {
		p, ok := prefixOf(a.IPNet)
		if !ok {
			continue
		}
		present[p] = true
		if slices.Contains(leased6, p) {
			kernel6[p] = a
			continue
		}
		if slices.Contains(want, p) || keepAddress(a, p, s, lease6) {
			continue
		}
		if err := r.h.AddrDel(l, &a); err != nil {
			return fmt.Errorf("link %s: delete address %s: %w", s.name, p, err)
		}
		*acts = append(*acts, Action{Link: s.name, Op: OpDelAddress, Detail: p.String()})
	}
	for _, p := range want {
		if present[p] {
			continue
		}
		addr := &netlink.Addr{IPNet: ipNet(p)}
		if err := r.h.AddrAdd(l, addr); err != nil {
			return fmt.Errorf("link %s: add address %s: %w", s.name, p, err)
		}
		present[p] = true
		*acts = append(*acts, Action{Link: s.name, Op: OpAddAddress, Detail: p.String()})
	}
	return r.applyLease6(l, s.name, lease6, kernel6, acts)
}

// lifetimeSlack is how far the kernel's remaining lifetime of a DHCPv6
// address may be from the lease's before it is set again: the two count
// down separately, in whole seconds.
const lifetimeSlack = 3

// applyLease6 puts the DHCPv6 lease's addresses on the link as /128s with
// noprefixroute and the lease's remaining lifetimes, so the kernel drops
// them when the lease runs out; after a renewal it sets the new lifetimes.
func (r *Reconciler) applyLease6(l netlink.Link, link string, lease *Lease6, have map[netip.Prefix]netlink.Addr, acts *[]Action) error {
	if lease == nil {
		return nil
	}
	for _, a := range lease.Addresses {
		p := netip.PrefixFrom(a.Addr, 128)
		valid := int(time.Until(lease.Acquired.Add(a.Valid)).Seconds())
		preferred := max(0, int(time.Until(lease.Acquired.Add(a.Preferred)).Seconds()))
		if valid <= 0 {
			continue // gone from the kernel by itself, or about to be
		}
		old, ok := have[p]
		if ok && abs(old.ValidLft-valid) <= lifetimeSlack && abs(old.PreferedLft-preferred) <= lifetimeSlack {
			continue
		}
		addr := &netlink.Addr{IPNet: ipNet(p), Flags: unix.IFA_F_NOPREFIXROUTE, ValidLft: valid, PreferedLft: preferred}
		if err := r.h.AddrReplace(l, addr); err != nil {
			return fmt.Errorf("link %s: DHCPv6 address %s: %w", link, p, err)
		}
		op, detail := OpAddAddress, p.String()
		if ok {
			op, detail = OpSetLifetime, fmt.Sprintf("%s valid %ds preferred %ds", p, valid, preferred)
		}
		*acts = append(*acts, Action{Link: link, Op: op, Detail: detail})
	}
	return nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// keepAddress reports whether an address the config does not list stays.
// The kernel's own IPv6 addresses are never the reconciler's to delete,
// whatever dhcp6 says: link-local ones, and those it configured from
// router advertisements (SLAAC and its temporary addresses), which carry
// no IFA_F_PERMANENT and which the kernel expires itself. Deleting them
// only made the next advertisement add them back, until the next resync
// deleted them again. What the reconciler owns is what it adds: static
// addresses (permanent, so an extra one is drift and goes) and DHCPv6
// addresses (see isDHCPv6Address), which stay while dhcp6 is on and no
// lease says otherwise.
func keepAddress(a netlink.Addr, p netip.Prefix, s linkState, lease6 *Lease6) bool {
	switch {
	case !p.Addr().Is6():
		return false
	case p.Addr().IsLinkLocalUnicast():
		return true
	case a.Flags&unix.IFA_F_PERMANENT != 0:
		return false
	case isDHCPv6Address(a, p):
		// Until this run holds a lease, an earlier run's addresses stay
		// and expire by their lifetimes; a lease names the ones to keep.
		return s.DHCP6 && lease6 == nil
	}
	return true
}

// isDHCPv6Address tells the addresses the DHCPv6 client added, also those
// of an earlier run of the agent, from the kernel's: they are /128s with
// IFA_F_NOPREFIXROUTE (DHCPv6 hands out no prefix length; the on-link
// prefix comes from router advertisements), while SLAAC makes /64s with a
// prefix route.
func isDHCPv6Address(a netlink.Addr, p netip.Prefix) bool {
	return p.Addr().Is6() && p.Bits() == 128 && a.Flags&unix.IFA_F_NOPREFIXROUTE != 0 && a.Flags&unix.IFA_F_PERMANENT == 0
}

// routeKey identifies a route the reconciler owns.
type routeKey struct {
	proto  int
	to     netip.Prefix
	via    netip.Addr
	metric int
}

func (k routeKey) String() string {
	s := k.to.String()
	if k.via.IsValid() {
		s += " via " + k.via.String()
	}
	return fmt.Sprintf("%s metric %d", s, k.metric)
}

func (r *Reconciler) applyRoutes(l netlink.Link, s linkState, lease *Lease, acts *[]Action) error {
	var want []routeKey
	for _, rt := range s.Routes {
		want = append(want, routeKey{protoStatic, rt.To.Masked(), rt.Via, kernelMetric(rt.To, rt.Metric)})
	}
	if lease != nil && lease.Router.IsValid() {
		want = append(want, routeKey{protoDHCP, netip.PrefixFrom(netip.IPv4Unspecified(), 0), lease.Router, dhcpRouteMetric})
	}
	filter := &netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_MAIN}
	have, err := r.h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("link %s: list routes: %w", s.name, err)
	}
	present := map[routeKey]bool{}
	for _, rt := range have {
		if rt.Protocol != protoStatic && rt.Protocol != protoDHCP {
			continue
		}
		k := keyOf(rt)
		present[k] = true
		if slices.Contains(want, k) {
			continue
		}
		if err := r.h.RouteDel(&rt); err != nil {
			return fmt.Errorf("link %s: delete route %s: %w", s.name, k, err)
		}
		*acts = append(*acts, Action{Link: s.name, Op: OpDelRoute, Detail: k.String()})
	}
	for _, k := range want {
		if present[k] {
			continue
		}
		rt := &netlink.Route{
			LinkIndex: l.Attrs().Index,
			Dst:       ipNet(k.to),
			Priority:  k.metric,
			Protocol:  netlink.RouteProtocol(k.proto),
			Table:     unix.RT_TABLE_MAIN,
		}
		if k.via.IsValid() {
			rt.Gw = net.IP(k.via.AsSlice())
		} else {
			rt.Scope = netlink.SCOPE_LINK
		}
		if err := r.h.RouteAdd(rt); err != nil {
			return fmt.Errorf("link %s: add route %s: %w", s.name, k, err)
		}
		present[k] = true
		*acts = append(*acts, Action{Link: s.name, Op: OpAddRoute, Detail: k.String()})
	}
	return nil
}

// kernelMetric is the metric the kernel reports for a route added with m:
// IPv6 routes without one get 1024.
func kernelMetric(to netip.Prefix, m int) int {
	if m == 0 && to.Addr().Is6() {
		return 1024
	}
	return m
}

func keyOf(rt netlink.Route) routeKey {
	k := routeKey{proto: int(rt.Protocol), metric: rt.Priority}
	if p, ok := prefixOf(rt.Dst); ok {
		k.to = p
	} else if rt.Family == unix.AF_INET6 {
		k.to = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	} else {
		k.to = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	if a, ok := netip.AddrFromSlice(rt.Gw); ok {
		k.via = a.Unmap()
	}
	return k
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, bits := n.Mask.Size()
	if bits == 128 && a.Is4() {
		ones -= 96
	}
	if bits == 0 || ones < 0 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

func ipNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}
