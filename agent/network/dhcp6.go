package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/nclient6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/vishvananda/netns"
)

// Lease6 is what a DHCPv6 server granted on one link: the addresses of
// one IA_NA and the options that came with them.
type Lease6 struct {
	Addresses []Address6
	DNS       []netip.Addr
	Search    []string
	NTP       []netip.Addr
	ServerID  dhcpv6.DUID

	Acquired time.Time     // when the Reply arrived
	T1, T2   time.Duration // renewal and rebinding times, from Acquired
}

// Address6 is one leased address with its lifetimes, from Acquired.
type Address6 struct {
	Addr             netip.Addr
	Preferred, Valid time.Duration
}

// Expires returns when the last of the lease's addresses becomes invalid
// unless renewed.
func (l *Lease6) Expires() time.Time {
	var last time.Duration
	for _, a := range l.Addresses {
		last = max(last, a.Valid)
	}
	return l.Acquired.Add(last)
}

// dhcp6Client runs the DHCPv6 client of RFC 8415 section 18.2 for one
// IA_NA on one link of a namespace: Solicit/Advertise/Request/Reply, Renew
// at T1 with the granting server, Rebind at T2 with any server. It sends
// no Release when it stops: the addresses keep their lifetimes in the
// kernel, and an agent that restarts gets them again (its DUID and IAID
// come from the link's MAC address, so the server sees the same client).
type dhcp6Client struct {
	link   string
	ns     netns.NsHandle
	opts   DHCPOptions
	update func(LeaseEvent, *Lease6)
}

var requested6 = dhcpv6.WithRequestedOptions(dhcpv6.OptionDNSRecursiveNameServer,
	dhcpv6.OptionDomainSearchList, dhcpv6.OptionNTPServer)

func (d *dhcp6Client) run(ctx context.Context) error {
	c, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	duid := &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: c.InterfaceAddr()}
	for ctx.Err() == nil {
		lease, err := d.acquire(ctx, c, duid)
		if err != nil {
			return err
		}
		d.update(LeaseAcquired, lease)
		d.hold(ctx, c, duid, lease)
	}
	return ctx.Err()
}

// open binds the DHCPv6 client port on the link's link-local address,
// waiting for one that passed duplicate address detection: a tentative
// address cannot be bound.
func (d *dhcp6Client) open(ctx context.Context) (*nclient6.Client, error) {
	backoff := 200 * time.Millisecond
	for {
		var c *nclient6.Client
		err := inNamespace(d.ns, func() error {
			ifc, err := net.InterfaceByName(d.link)
			if err != nil {
				return err
			}
			ll, err := dhcpv6.GetLinkLocalAddr(d.link)
			if err != nil {
				return err
			}
			// The zone is the index, not the name: Go maps zone names
			// through a process-wide cache that another namespace's
			// eth0 may have filled.
			conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: ll, Port: dhcpv6.DefaultClientPort, Zone: strconv.Itoa(ifc.Index)})
			if err != nil {
				return err
			}
			c, err = nclient6.NewWithConn(conn, ifc.HardwareAddr, nclient6.WithTimeout(d.opts.timeout()), nclient6.WithRetry(3))
			if err != nil {
				conn.Close()
			}
			return err
		})
		if err == nil {
			return c, nil
		}
		if !sleepUntil(ctx, time.Now().Add(backoff)) {
			return nil, fmt.Errorf("dhcp6 %s: open: %w", d.link, err)
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// acquire runs Solicit and Request until a server grants an address,
// backing off up to a minute between rounds.
func (d *dhcp6Client) acquire(ctx context.Context, c *nclient6.Client, duid dhcpv6.DUID) (*Lease6, error) {
	backoff := time.Second
	for {
		adv, err := c.Solicit(ctx, dhcpv6.WithClientID(duid), requested6)
		if err == nil {
			var reply *dhcpv6.Message
			reply, err = c.Request(ctx, adv, requested6)
			if err == nil {
				var l *Lease6
				if l, err = lease6From(reply); err == nil {
					return l, nil
				}
			}
		}
		if !sleepUntil(ctx, time.Now().Add(backoff)) {
			return nil, ctx.Err()
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// hold keeps lease alive until its addresses expire, a server refuses it
// or ctx ends.
func (d *dhcp6Client) hold(ctx context.Context, c *nclient6.Client, duid dhcpv6.DUID, lease *Lease6) {
	holdLease(ctx, lease, func(l *Lease6) time.Time { return l.Acquired.Add(l.T1) },
		func(l *Lease6) (*Lease6, LeaseEvent) {
			return d.extend(ctx, c, duid, l, dhcpv6.MessageTypeRenew, l.Acquired.Add(l.T2))
		},
		func(l *Lease6) (*Lease6, LeaseEvent) {
			return d.extend(ctx, c, duid, l, dhcpv6.MessageTypeRebind, l.Expires())
		},
		d.update)
}

// extend sends Renew (to the granting server) or Rebind (to any server)
// until deadline, as often as retryUntil says. It returns LeaseRefused
// when the server grants none of the addresses, and an empty event when
// deadline passed.
func (d *dhcp6Client) extend(ctx context.Context, c *nclient6.Client, duid dhcpv6.DUID, lease *Lease6, typ dhcpv6.MessageType, deadline time.Time) (*Lease6, LeaseEvent) {
	ev := LeaseRenewed
	if typ == dhcpv6.MessageTypeRebind {
		ev = LeaseRebound
	}
	msg, err := extension(typ, duid, lease)
	if err != nil {
		return nil, ""
	}
	var next *Lease6
	if !d.opts.retryUntil(ctx, deadline, func() bool {
		rctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		reply, err := c.SendAndRead(rctx, nclient6.AllDHCPRelayAgentsAndServers, msg, nclient6.IsMessageType(dhcpv6.MessageTypeReply))
		if err != nil {
			return false
		}
		next, _ = lease6From(reply)
		return true
	}) {
		return nil, ""
	}
	if next == nil {
		return nil, LeaseRefused
	}
	return next, ev
}

// extension builds a Renew or Rebind for lease's IA_NA; only a Renew
// names the server (RFC 8415 sections 18.2.4 and 18.2.5).
func extension(typ dhcpv6.MessageType, duid dhcpv6.DUID, lease *Lease6) (*dhcpv6.Message, error) {
	m, err := dhcpv6.NewMessage()
	if err != nil {
		return nil, err
	}
	m.MessageType = typ
	m.AddOption(dhcpv6.OptClientID(duid))
	if typ == dhcpv6.MessageTypeRenew {
		m.AddOption(dhcpv6.OptServerID(lease.ServerID))
	}
	m.AddOption(dhcpv6.OptElapsedTime(0))
	ia := &dhcpv6.OptIANA{IaId: iaid(duid)}
	for _, a := range lease.Addresses {
		ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.IP(a.Addr.AsSlice())})
	}
	m.AddOption(ia)
	requested6(m)
	return m, nil
}

// iaid is the IA_NA's identifier, the last four bytes of the MAC address,
// as nclient6's Solicit makes it.
func iaid(duid dhcpv6.DUID) [4]byte {
	var id [4]byte
	if ll, ok := duid.(*dhcpv6.DUIDLL); ok && len(ll.LinkLayerAddr) >= 4 {
		copy(id[:], ll.LinkLayerAddr[len(ll.LinkLayerAddr)-4:])
	}
	return id
}

// lease6From reads a lease out of a Reply: the IA_NA's addresses that are
// still valid, with RFC 8415's defaults for T1 and T2 (0.5 and 0.8 of the
// shortest preferred lifetime) when the server leaves them to the client.
func lease6From(reply *dhcpv6.Message) (*Lease6, error) {
	if s := reply.Options.Status(); s != nil && s.StatusCode != iana.StatusSuccess {
		return nil, fmt.Errorf("%w: DHCPv6 status %s", ErrNoLease, s)
	}
	ia := reply.Options.OneIANA()
	if ia == nil {
		return nil, fmt.Errorf("%w: DHCPv6 reply without IA_NA", ErrNoLease)
	}
	if s := ia.Options.Status(); s != nil && s.StatusCode != iana.StatusSuccess {
		return nil, fmt.Errorf("%w: DHCPv6 IA_NA status %s", ErrNoLease, s)
	}
	l := &Lease6{Acquired: time.Now(), ServerID: reply.Options.ServerID()}
	shortest := time.Duration(0)
	for _, a := range ia.Options.Addresses() {
		addr, ok := netip.AddrFromSlice(a.IPv6Addr)
		if !ok || a.ValidLifetime <= 0 || a.PreferredLifetime > a.ValidLifetime {
			continue
		}
		l.Addresses = append(l.Addresses, Address6{Addr: addr, Preferred: a.PreferredLifetime, Valid: a.ValidLifetime})
		if shortest == 0 || a.PreferredLifetime < shortest {
			shortest = a.PreferredLifetime
		}
	}
	if len(l.Addresses) == 0 {
		return nil, fmt.Errorf("%w: DHCPv6 IA_NA without a valid address", ErrNoLease)
	}
	if l.ServerID == nil {
		return nil, fmt.Errorf("%w: DHCPv6 reply without a server identifier", ErrNoLease)
	}
	l.T1, l.T2 = ia.T1, ia.T2
	if l.T1 == 0 || l.T2 == 0 || l.T1 > l.T2 {
		if shortest == 0 { // all deprecated: renew before they expire
			shortest = time.Until(l.Expires())
		}
		l.T1, l.T2 = shortest/2, shortest*4/5
	}
	l.DNS = addrs(reply.Options.DNS())
	l.NTP = addrs(reply.Options.NTPServers())
	if s := reply.Options.DomainSearchList(); s != nil {
		l.Search = s.Labels
	}
	return l, nil
}

// prefixes are the lease's addresses as the kernel holds them: /128s.
func (l *Lease6) prefixes() []netip.Prefix {
	if l == nil {
		return nil
	}
	out := make([]netip.Prefix, 0, len(l.Addresses))
	for _, a := range l.Addresses {
		out = append(out, netip.PrefixFrom(a.Addr, 128))
	}
	return out
}
