// Package network brings a device's links, addresses, routes, DNS, hostname
// and clock to a desired state over netlink and keeps them there.
package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
)

// Config is the desired network state of a device. It mirrors cloud-init
// network-config version 2: ethernets are matched against the links the
// kernel already has, while VLANs, bonds and bridges are created by the
// reconciler. Members and parents name other entries by their ID, as in
// network-config; the reconciler resolves IDs to kernel link names.
type Config struct {
	Ethernets []Ethernet
	VLANs     []VLAN
	Bonds     []Bond
	Bridges   []Bridge
	// Hostname is set on the device when not empty; when empty, the host
	// name a DHCP server hands out is used.
	Hostname string
}

// dhcpEverywhere reports whether c names no interface at all, which
// network-config's absence means: DHCP on every wired link. A nil Config
// means the same.
func (c *Config) dhcpEverywhere() bool {
	return c == nil || len(c.Ethernets)+len(c.VLANs)+len(c.Bonds)+len(c.Bridges) == 0
}

// Interface holds the layer-3 settings every kind of link shares.
type Interface struct {
	DHCP4 bool
	// DHCP6 leaves kernel-managed IPv6 addresses (router advertisements)
	// in place; no DHCPv6 client runs yet.
	DHCP6 bool
	// Addresses are static addresses with their prefix length.
	Addresses   []netip.Prefix
	Routes      []Route
	Nameservers Nameservers
	// MTU is left as the kernel has it when zero.
	MTU int
	// Optional links do not hold up the "network configured" state when
	// they are absent, like network-config's optional: true.
	Optional bool
}

// Route is a static route through the link that declares it.
type Route struct {
	// To is the destination; 0.0.0.0/0 or ::/0 is a default route.
	To netip.Prefix
	// Via is the gateway; the zero Addr makes an on-link route.
	Via    netip.Addr
	Metric int
}

// Nameservers are DNS servers and search domains written to resolv.conf.
type Nameservers struct {
	Addresses []netip.Addr
	Search    []string
}

// Match selects existing links. Every non-empty field must match; an empty
// Match selects the link whose name is the entry's ID.
type Match struct {
	// Name is a shell glob (path.Match syntax) on the kernel link name.
	Name string
	// MAC is the permanent or current hardware address.
	MAC net.HardwareAddr
	// Driver is the kernel driver name as ethtool reports it (e.g. e1000e).
	Driver string
}

func (m Match) empty() bool { return m.Name == "" && m.MAC == nil && m.Driver == "" }

// Ethernet is a physical link, matched rather than created.
type Ethernet struct {
	ID    string
	Match Match
	// SetName renames the matched link; then Match must select one link.
	SetName string
	Interface
}

// VLAN is an 802.1Q link on top of Link.
type VLAN struct {
	ID     string // the kernel link name
	VLANID int
	Link   string // the ID of the parent entry
	Interface
}

// BondMode is a Linux bonding mode, named as network-config names it.
type BondMode string

// The bonding modes the reconciler creates.
const (
	BondActiveBackup BondMode = "active-backup"
	BondBalanceRR    BondMode = "balance-rr"
	BondBalanceXOR   BondMode = "balance-xor"
	Bond8023AD       BondMode = "802.3ad"
)

// Bond aggregates member links.
type Bond struct {
	ID         string   // the kernel link name
	Interfaces []string // IDs of the member entries
	Mode       BondMode // active-backup when empty
	Interface
}

// Bridge is a Linux bridge over member links.
type Bridge struct {
	ID         string   // the kernel link name
	Interfaces []string // IDs of the member entries
	Interface
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid network config")

// Validate checks what the reconciler relies on: unique IDs, members and
// parents that exist, usable names, VLAN IDs and bond modes.
func (c *Config) Validate() error {
	ids := map[string]string{}
	add := func(kind, id string) error {
		if id == "" {
			return fmt.Errorf("%w: %s with an empty id", ErrInvalidConfig, kind)
		}
		if prev, ok := ids[id]; ok {
			return fmt.Errorf("%w: %s %q: id already used by a %s", ErrInvalidConfig, kind, id, prev)
		}
		ids[id] = kind
		return nil
	}
	for _, e := range c.Ethernets {
		if err := add("ethernet", e.ID); err != nil {
			return err
		}
		if e.Match.Name != "" {
			if _, err := path.Match(e.Match.Name, ""); err != nil {
				return fmt.Errorf("%w: ethernet %q: match name %q: %v", ErrInvalidConfig, e.ID, e.Match.Name, err)
			}
		}
		if err := checkLinkName(e.SetName, true); err != nil {
			return fmt.Errorf("%w: ethernet %q: set-name: %v", ErrInvalidConfig, e.ID, err)
		}
		if err := e.check(); err != nil {
			return fmt.Errorf("%w: ethernet %q: %v", ErrInvalidConfig, e.ID, err)
		}
	}
	for _, v := range c.VLANs {
		if err := add("vlan", v.ID); err != nil {
			return err
		}
		if v.VLANID < 1 || v.VLANID > 4094 {
			return fmt.Errorf("%w: vlan %q: id %d not in 1..4094", ErrInvalidConfig, v.ID, v.VLANID)
		}
	}
	for _, b := range c.Bonds {
		if err := add("bond", b.ID); err != nil {
			return err
		}
		if _, ok := bondModes[b.mode()]; !ok {
			return fmt.Errorf("%w: bond %q: unsupported mode %q", ErrInvalidConfig, b.ID, b.Mode)
		}
	}
	for _, b := range c.Bridges {
		if err := add("bridge", b.ID); err != nil {
			return err
		}
	}
	return c.checkReferences(ids)
}

func (c *Config) checkReferences(ids map[string]string) error {
	member := map[string]string{}
	refs := func(kind, owner string, list []string) error {
		for _, m := range list {
			if _, ok := ids[m]; !ok {
				return fmt.Errorf("%w: %s %q: member %q is not defined", ErrInvalidConfig, kind, owner, m)
			}
			if prev, ok := member[m]; ok {
				return fmt.Errorf("%w: %s %q: member %q already belongs to %q", ErrInvalidConfig, kind, owner, m, prev)
			}
			member[m] = owner
		}
		return nil
	}
	for _, b := range c.Bonds {
		if err := refs("bond", b.ID, b.Interfaces); err != nil {
			return err
		}
		if err := b.check(); err != nil {
			return fmt.Errorf("%w: bond %q: %v", ErrInvalidConfig, b.ID, err)
		}
	}
	for _, b := range c.Bridges {
		if err := refs("bridge", b.ID, b.Interfaces); err != nil {
			return err
		}
		if err := b.check(); err != nil {
			return fmt.Errorf("%w: bridge %q: %v", ErrInvalidConfig, b.ID, err)
		}
	}
	for _, v := range c.VLANs {
		if _, ok := ids[v.Link]; !ok {
			return fmt.Errorf("%w: vlan %q: link %q is not defined", ErrInvalidConfig, v.ID, v.Link)
		}
		if err := checkLinkName(v.ID, false); err != nil {
			return fmt.Errorf("%w: vlan %q: %v", ErrInvalidConfig, v.ID, err)
		}
		if err := v.check(); err != nil {
			return fmt.Errorf("%w: vlan %q: %v", ErrInvalidConfig, v.ID, err)
		}
	}
	return nil
}

// check rejects settings that contradict each other.
func (i Interface) check() error {
	if i.MTU < 0 || (i.MTU > 0 && i.MTU < 68) {
		return fmt.Errorf("mtu %d below 68", i.MTU)
	}
	for _, a := range i.Addresses {
		if !a.IsValid() {
			return fmt.Errorf("address %v is not a prefix", a)
		}
	}
	for _, r := range i.Routes {
		if !r.To.IsValid() {
			return fmt.Errorf("route without a destination")
		}
		if r.Via.IsValid() && r.Via.Is4() != r.To.Addr().Is4() {
			return fmt.Errorf("route to %v via %v mixes address families", r.To, r.Via)
		}
		if r.Metric < 0 {
			return fmt.Errorf("route to %v: negative metric", r.To)
		}
	}
	return nil
}

// checkLinkName applies the kernel's rules for interface names.
func checkLinkName(name string, mayBeEmpty bool) error {
	switch {
	case name == "" && mayBeEmpty:
		return nil
	case name == "" || len(name) > 15:
		return fmt.Errorf("link name %q must have 1 to 15 characters", name)
	case name == "." || name == "..":
		return fmt.Errorf("link name %q is reserved", name)
	}
	for _, r := range name {
		if r == '/' || r == ':' || r <= ' ' || r > '~' {
			return fmt.Errorf("link name %q contains %q", name, r)
		}
	}
	return nil
}

func (b Bond) mode() BondMode {
	if b.Mode == "" {
		return BondActiveBackup
	}
	return b.Mode
}
