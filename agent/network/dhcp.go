package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netns"
)

// Lease is what a DHCPv4 server granted on one link.
type Lease struct {
	Address  netip.Prefix
	Router   netip.Addr // the zero Addr when the server names none
	DNS      []netip.Addr
	Search   []string
	NTP      []netip.Addr
	Hostname string
	Server   netip.Addr // the server identifier

	Acquired time.Time     // when the ACK arrived
	Duration time.Duration // lease time
	T1, T2   time.Duration // renewal and rebinding times, from Acquired
}

// Expires returns when the lease ends unless renewed.
func (l *Lease) Expires() time.Time { return l.Acquired.Add(l.Duration) }

// LeaseEvent says what happened to the lease of a link.
type LeaseEvent string

// The events a DHCP client reports.
const (
	LeaseAcquired LeaseEvent = "acquired" // after DISCOVER/OFFER/REQUEST/ACK
	LeaseRenewed  LeaseEvent = "renewed"  // the granting server extended it (after T1)
	LeaseRebound  LeaseEvent = "rebound"  // any server extended it (after T2)
	LeaseExpired  LeaseEvent = "expired"  // nobody extended it: the address is dropped
	LeaseRefused  LeaseEvent = "refused"  // a NAK: start over
)

// DHCPOptions tune the DHCPv4 and DHCPv6 clients.
type DHCPOptions struct {
	// Timeout is how long one exchange waits for the first reply before
	// retrying with a doubled timeout; 2 s when zero.
	Timeout time.Duration
	// RetryFloor is the shortest pause between two renewal or rebinding
	// requests; RFC 2131 says 60 s, which is the default.
	RetryFloor time.Duration
	// OnEvent, when set, hears every lease change of every link.
	OnEvent func(link string, ev LeaseEvent, l *Lease)
	// OnEvent6 is OnEvent for the DHCPv6 clients.
	OnEvent6 func(link string, ev LeaseEvent, l *Lease6)
}

// ErrNoLease is returned by a DHCP exchange that got no usable answer.
var ErrNoLease = errors.New("no DHCP lease")

// dhcpClient runs the DHCPv4 state machine (RFC 2131 section 4.4) on one
// link of a namespace, reporting every lease change through update.
type dhcpClient struct {
	link   string
	ns     netns.NsHandle
	opts   DHCPOptions
	update func(LeaseEvent, *Lease)
}

// run holds a lease on the link until ctx ends: INIT, BOUND, RENEWING at
// T1, REBINDING at T2, and back to INIT when the lease expires or a server
// refuses it.
func (d *dhcpClient) run(ctx context.Context) error {
	c, err := d.open()
	if err != nil {
		return err
	}
	defer c.Close()
	for ctx.Err() == nil {
		lease, err := d.acquire(ctx, c)
		if err != nil {
			return err
		}
		d.update(LeaseAcquired, lease)
		d.hold(ctx, c, lease)
	}
	return ctx.Err()
}

// open creates the raw socket inside the link's namespace: the link has
// no address yet, so only a packet socket can talk DHCP on it.
func (d *dhcpClient) open() (*nclient4.Client, error) {
	timeout := d.opts.timeout()
	var c *nclient4.Client
	err := inNamespace(d.ns, func() error {
		ifc, err := net.InterfaceByName(d.link)
		if err != nil {
			return err
		}
		conn, err := nclient4.NewRawUDPConn(d.link, nclient4.ClientPort)
		if err != nil {
			return err
		}
		c, err = nclient4.NewWithConn(conn, ifc.HardwareAddr, nclient4.WithTimeout(timeout), nclient4.WithRetry(3))
		if err != nil {
			conn.Close()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dhcp %s: open: %w", d.link, err)
	}
	return c, nil
}

var requested = dhcpv4.WithRequestedOptions(dhcpv4.OptionNTPServers, dhcpv4.OptionDNSDomainSearchList,
	dhcpv4.OptionHostName, dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue)

// acquire runs DISCOVER/REQUEST until a server answers, backing off up to
// a minute between rounds so a box on a dead network keeps trying.
func (d *dhcpClient) acquire(ctx context.Context, c *nclient4.Client) (*Lease, error) {
	backoff := time.Second
	for {
		nl, err := c.Request(ctx, requested)
		if err == nil {
			l, err := leaseFrom(nl.ACK)
			if err == nil {
				return l, nil
			}
			d.update(LeaseRefused, nil)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// hold keeps lease alive until it expires, a server refuses it or ctx
// ends.
func (d *dhcpClient) hold(ctx context.Context, c *nclient4.Client, lease *Lease) {
	holdLease(ctx, lease, func(l *Lease) time.Time { return l.Acquired.Add(l.T1) },
		func(l *Lease) (*Lease, LeaseEvent) { return d.renew(ctx, c, l) },
		func(l *Lease) (*Lease, LeaseEvent) { return d.extend(ctx, c, l, l.Expires(), false) },
		d.update)
}

// holdLease is a lease's life, DHCPv4 or DHCPv6: at renewAt, renew (until
// T2), then rebind (until expiry) when renewing got no answer; each
// outcome goes to update. It returns when the lease is refused or expires
// (update gets a nil lease) or when ctx ends.
func holdLease[L any](ctx context.Context, lease *L, renewAt func(*L) time.Time,
	renew, rebind func(*L) (*L, LeaseEvent), update func(LeaseEvent, *L)) {
	for {
		if !sleepUntil(ctx, renewAt(lease)) {
			return
		}
		next, ev := renew(lease)
		if next == nil && ev == "" {
			next, ev = rebind(lease)
		}
		if ctx.Err() != nil {
			return
		}
		if next == nil {
			if ev == "" {
				ev = LeaseExpired
			}
			update(ev, nil)
			return
		}
		update(ev, next)
		lease = next
	}
}

// renew runs RENEWING until T2 over a UDP socket bound to the leased
// address: a unicast from 0.0.0.0, which is all the raw socket can send,
// is a martian to the server's kernel and never reaches the server.
func (d *dhcpClient) renew(ctx context.Context, raw *nclient4.Client, lease *Lease) (*Lease, LeaseEvent) {
	c := raw
	u, err := d.openUnicast(lease.Address.Addr(), raw.InterfaceAddr())
	if err == nil {
		defer u.Close()
		c = u
	}
	return d.extend(ctx, c, lease, lease.Acquired.Add(lease.T2), true)
}

func (d *dhcpClient) openUnicast(addr netip.Addr, hw net.HardwareAddr) (*nclient4.Client, error) {
	var c *nclient4.Client
	err := inNamespace(d.ns, func() error {
		var err error
		c, err = nclient4.NewWithConn(nil, hw, nclient4.WithTimeout(d.opts.timeout()), nclient4.WithRetry(3),
			nclient4.WithUnicast(&net.UDPAddr{IP: net.IP(addr.AsSlice()), Port: nclient4.ClientPort}))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dhcp %s: open unicast socket on %s: %w", d.link, addr, err)
	}
	return c, nil
}

// timeout is how long one exchange first waits for a reply.
func (o DHCPOptions) timeout() time.Duration {
	if o.Timeout == 0 {
		return 2 * time.Second
	}
	return o.Timeout
}

// retryUntil calls try until it reports done or deadline passes, pausing
// between attempts half the time left, but at least RetryFloor. It
// reports false when deadline passed or ctx ended first.
func (o DHCPOptions) retryUntil(ctx context.Context, deadline time.Time, try func() bool) bool {
	floor := o.RetryFloor
	if floor == 0 {
		floor = time.Minute
	}
	for time.Now().Before(deadline) {
		if try() {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		wait := min(max(time.Until(deadline)/2, floor), time.Until(deadline))
		if !sleepUntil(ctx, time.Now().Add(wait)) {
			return false
		}
	}
	return false
}

// extend asks for more time until deadline: RENEWING unicasts to the
// server that granted the lease, REBINDING broadcasts to any server, as
// often as retryUntil says. It returns LeaseRefused on a NAK and an empty
// event when deadline passed.
func (d *dhcpClient) extend(ctx context.Context, c *nclient4.Client, lease *Lease, deadline time.Time, renewing bool) (*Lease, LeaseEvent) {
	dest, ev := &net.UDPAddr{IP: net.IPv4bcast, Port: nclient4.ServerPort}, LeaseRebound
	if renewing {
		dest, ev = &net.UDPAddr{IP: net.IP(lease.Server.AsSlice()), Port: nclient4.ServerPort}, LeaseRenewed
	}
	var next *Lease
	if !d.opts.retryUntil(ctx, deadline, func() bool {
		ack, err := d.request(ctx, c, lease, dest, deadline)
		if err != nil {
			return false
		}
		if l, err := leaseFrom(ack); err == nil && l.Address == lease.Address {
			next = l
		}
		return true // an ACK for another address or a NAK refuses the lease
	}) {
		return nil, ""
	}
	if next == nil {
		return nil, LeaseRefused
	}
	return next, ev
}

func (d *dhcpClient) request(ctx context.Context, c *nclient4.Client, lease *Lease, dest *net.UDPAddr, deadline time.Time) (*dhcpv4.DHCPv4, error) {
	req, err := renewal(lease, c.InterfaceAddr())
	if err != nil {
		return nil, fmt.Errorf("dhcp %s: build request: %w", d.link, err)
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return c.SendAndRead(ctx, dest, req, nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak))
}

// renewal builds the REQUEST of RENEWING and REBINDING: ciaddr carries
// the leased address, and neither a server identifier nor a requested
// address is sent (RFC 2131 section 4.3.2).
func renewal(lease *Lease, hw net.HardwareAddr) (*dhcpv4.DHCPv4, error) {
	return dhcpv4.New(
		dhcpv4.WithHwAddr(hw),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(net.IP(lease.Address.Addr().AsSlice())),
		dhcpv4.WithBroadcast(false),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter,
			dhcpv4.OptionDomainName, dhcpv4.OptionDomainNameServer),
		requested,
	)
}

// leaseFrom reads a lease out of an ACK, with RFC 2131's defaults for the
// renewal (half the lease) and rebinding (7/8 of it) times.
func leaseFrom(ack *dhcpv4.DHCPv4) (*Lease, error) {
	if ack.MessageType() != dhcpv4.MessageTypeAck {
		return nil, fmt.Errorf("%w: %s instead of an ACK", ErrNoLease, ack.MessageType())
	}
	addr, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || addr.IsUnspecified() {
		return nil, fmt.Errorf("%w: ACK without an address", ErrNoLease)
	}
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ack.YourIPAddr.DefaultMask()
	}
	ones, _ := mask.Size()
	l := &Lease{Address: netip.PrefixFrom(addr, ones), Acquired: time.Now(), Hostname: ack.HostName()}
	l.Duration = ack.IPAddressLeaseTime(0)
	if l.Duration <= 0 {
		return nil, fmt.Errorf("%w: ACK without a lease time", ErrNoLease)
	}
	l.T1 = ack.IPAddressRenewalTime(l.Duration / 2)
	l.T2 = ack.IPAddressRebindingTime(l.Duration * 7 / 8)
	if l.T1 > l.T2 || l.T2 > l.Duration {
		l.T1, l.T2 = l.Duration/2, l.Duration*7/8
	}
	if rs := ack.Router(); len(rs) > 0 {
		l.Router, _ = netip.AddrFromSlice(rs[0].To4())
	}
	l.Server, _ = netip.AddrFromSlice(ack.ServerIdentifier().To4())
	l.DNS = addrs(ack.DNS())
	l.NTP = addrs(ack.NTPServers())
	if s := ack.DomainSearch(); s != nil {
		l.Search = s.Labels
	} else if dn := ack.DomainName(); dn != "" {
		l.Search = []string{dn}
	}
	return l, nil
}

func addrs(ips []net.IP) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// sleepUntil waits for t and reports false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
