package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Op names one kind of change the reconciler made.
type Op string

// The changes Apply reports.
const (
	OpRename     Op = "rename"
	OpCreate     Op = "create"
	OpDelete     Op = "delete"
	OpSetMaster  Op = "set-master"
	OpNoMaster   Op = "no-master"
	OpSetMTU     Op = "set-mtu"
	OpSetUp      Op = "set-up"
	OpAddAddress Op = "add-address"
	OpDelAddress Op = "del-address"
	// OpSetLifetime sets new lifetimes on a DHCPv6 address after a renewal.
	OpSetLifetime Op = "set-lifetime"
	OpAddRoute    Op = "add-route"
	OpDelRoute    Op = "del-route"
	OpResolvConf  Op = "write-resolv-conf"
	OpHostname    Op = "set-hostname"
)

// Action is one change Apply made to the kernel or the host.
type Action struct {
	Link   string // the kernel link name; empty for host-wide changes
	Op     Op
	Detail string
}

func (a Action) String() string {
	if a.Link == "" {
		return fmt.Sprintf("%s %s", a.Op, a.Detail)
	}
	return fmt.Sprintf("%s: %s %s", a.Link, a.Op, a.Detail)
}

// ErrLinkMissing is returned (wrapped) by Apply when a non-optional
// ethernet entry matches no link; everything else is applied regardless.
var ErrLinkMissing = errors.New("link missing")

// Route protocols mark the routes the reconciler owns, so it never removes
// routes the kernel or someone else installed.
const (
	protoStatic = 4  // RTPROT_STATIC
	protoDHCP   = 16 // RTPROT_DHCP
)

// HostnameSetter sets the host name; tests give one that does not touch
// the machine they run on.
type HostnameSetter interface {
	Hostname() (string, error)
	SetHostname(name string) error
}

// Options are what a Reconciler needs besides the desired config.
type Options struct {
	// ResolvConf is the resolv.conf path to write; empty writes none.
	ResolvConf string
	// Hostname sets the host name; nil leaves it alone.
	Hostname HostnameSetter
	// Wired selects the links that get DHCP when the config is nil.
	// Nil selects physical Ethernet devices (see IsWired).
	Wired func(netlink.Link) bool
	// DHCP configures the DHCPv4 and DHCPv6 clients Run starts.
	DHCP DHCPOptions
	// OnApply, when set, is called after every reconcile Run makes.
	OnApply func([]Action, error)
	// Resync is how often Run reconciles without an event; a minute when
	// zero.
	Resync time.Duration
	Logger *slog.Logger
}

// Reconciler brings a network namespace to a desired Config.
type Reconciler struct {
	ns   netns.NsHandle
	h    *netlink.Handle
	cfg  *Config
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	leases    map[string]*Lease  // by kernel link name
	leases6   map[string]*Lease6 // by kernel link name
	dhcpLinks []dhcpKey          // links with dhcp4 or dhcp6, as the last Apply found them
	outcome   *outcome           // what the last Apply reached; nil before the first
}

// New returns a Reconciler for the namespace ns (netns.Get() for the
// current one). A nil cfg, or one with no interfaces (what FromCloudInit
// gives without a network-config), means DHCP on every wired link.
func New(ns netns.NsHandle, cfg *Config, opts Options) (*Reconciler, error) {
	if cfg != nil {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	// Route netlink only: with no family named, netlink also opens XFRM
	// and netfilter sockets, which fail with EPROTONOSUPPORT on a kernel
	// that has xfrm_user and nfnetlink as modules not loaded (Debian's).
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", ns, err)
	}
	if opts.Wired == nil {
		opts.Wired = IsWired
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{ns: ns, h: h, cfg: cfg, opts: opts, log: log, leases: map[string]*Lease{}, leases6: map[string]*Lease6{}}, nil
}

// Close releases the netlink handle.
func (r *Reconciler) Close() { r.h.Close() }

// IsWired reports whether l is a physical Ethernet device: the kernel
// calls it a plain "device" with an Ethernet header, and it is not a
// wireless interface.
func IsWired(l netlink.Link) bool {
	a := l.Attrs()
	return l.Type() == "device" && a.EncapType == "ether" && !isWireless(a.Name)
}

// Apply makes one pass: it diffs the desired state against the kernel and
// changes only what differs. It returns what it changed, so a second Apply
// with nothing changed in between returns no actions.
func (r *Reconciler) Apply(ctx context.Context) ([]Action, error) {
	var res *resolved
	acts, err := r.apply(ctx, &res)
	r.recordOutcome(res, err)
	return acts, err
}

func (r *Reconciler) apply(ctx context.Context, out **resolved) ([]Action, error) {
	var acts []Action
	cfg, err := r.desired()
	if err != nil {
		return nil, err
	}
	res, err := r.resolveEthernets(cfg, &acts)
	if err != nil {
		return acts, err
	}
	*out = res
	r.recordDHCPLinks(res)
	if err := r.applyVirtual(cfg, res, &acts); err != nil {
		return acts, err
	}
	if err := ctx.Err(); err != nil {
		return acts, err
	}
	if err := r.applyMembers(cfg, res, &acts); err != nil {
		return acts, err
	}
	for _, l := range res.l3 {
		if err := r.applyLink(l, &acts); err != nil {
			return acts, err
		}
	}
	if err := r.applyHost(cfg, res, &acts); err != nil {
		return acts, err
	}
	if len(res.missing) > 0 {
		return acts, fmt.Errorf("%w: ethernets %v match no link", ErrLinkMissing, res.missing)
	}
	return acts, nil
}

// desired returns the config to apply: the given one, or DHCP on every
// wired link when it names no interface (keeping its host name).
func (r *Reconciler) desired() (*Config, error) {
	if !r.cfg.dhcpEverywhere() {
		return r.cfg, nil
	}
	links, err := r.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	cfg := &Config{}
	if r.cfg != nil {
		cfg.Hostname = r.cfg.Hostname
	}
	for _, l := range links {
		if r.opts.Wired(l) {
			name := l.Attrs().Name
			cfg.Ethernets = append(cfg.Ethernets, Ethernet{ID: name, Interface: Interface{DHCP4: true, Optional: true}})
		}
	}
	return cfg, nil
}

func (r *Reconciler) recordDHCPLinks(res *resolved) {
	var names []dhcpKey
	for _, s := range res.l3 {
		if s.DHCP4 {
			names = append(names, dhcpKey{s.name, 4})
		}
		if s.DHCP6 {
			names = append(names, dhcpKey{s.name, 6})
		}
	}
	r.mu.Lock()
	r.dhcpLinks = names
	r.mu.Unlock()
}

// setLease records the lease of link (nil drops it).
func (r *Reconciler) setLease(link string, l *Lease) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l == nil {
		delete(r.leases, link)
		return
	}
	r.leases[link] = l
}

func (r *Reconciler) lease(link string) *Lease {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leases[link]
}

// setLease6 records the DHCPv6 lease of link (nil drops it).
func (r *Reconciler) setLease6(link string, l *Lease6) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l == nil {
		delete(r.leases6, link)
		return
	}
	r.leases6[link] = l
}

func (r *Reconciler) lease6(link string) *Lease6 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leases6[link]
}

// NTPServers returns the time servers the current DHCP leases name,
// DHCPv4 ones first.
func (r *Reconciler) NTPServers() []netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []netip.Addr
	for _, l := range r.leases {
		out = append(out, l.NTP...)
	}
	for _, l := range r.leases6 {
		out = append(out, l.NTP...)
	}
	return out
}
