package network

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

// FromCloudInit turns a resolved device configuration into the desired
// network state. A configuration without network-config gives a Config with
// no interfaces: DHCP on every wired link.
func FromCloudInit(cfg *cloudinit.Config) (*Config, error) {
	out := &Config{Hostname: cfg.Hostname()}
	nc := cfg.Network
	if nc == nil {
		return out, nil
	}
	for _, id := range sortedIDs(nc.Ethernets) {
		e := nc.Ethernets[id]
		eth := Ethernet{ID: id, SetName: e.SetName, Interface: fromInterface(e.InterfaceConfig)}
		if m := e.Match; m != nil {
			eth.Match = Match{Name: m.Name, Driver: m.Driver}
			if m.MACAddress != "" {
				mac, err := net.ParseMAC(string(m.MACAddress))
				if err != nil {
					return nil, fmt.Errorf("network-config: ethernets.%s.match.macaddress: %w", id, err)
				}
				eth.Match.MAC = mac
			}
		}
		out.Ethernets = append(out.Ethernets, eth)
	}
	for _, id := range sortedIDs(nc.VLANs) {
		v := nc.VLANs[id]
		out.VLANs = append(out.VLANs, VLAN{ID: id, VLANID: v.ID, Link: v.Link, Interface: fromInterface(v.InterfaceConfig)})
	}
	for _, id := range sortedIDs(nc.Bonds) {
		b := nc.Bonds[id]
		mode, err := bondMode(b.Parameters.Mode)
		if err != nil {
			return nil, fmt.Errorf("network-config: bonds.%s.parameters.mode: %w", id, err)
		}
		out.Bonds = append(out.Bonds, Bond{ID: id, Interfaces: slices.Clone(b.Interfaces), Mode: mode, Interface: fromInterface(b.InterfaceConfig)})
	}
	for _, id := range sortedIDs(nc.Bridges) {
		b := nc.Bridges[id]
		out.Bridges = append(out.Bridges, Bridge{ID: id, Interfaces: slices.Clone(b.Interfaces), Interface: fromInterface(b.InterfaceConfig)})
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("network-config: %w", err)
	}
	return out, nil
}

// bondMode maps network-config's mode names to the ones the reconciler
// applies; network-config's default, as netplan's, is balance-rr.
func bondMode(mode string) (BondMode, error) {
	switch m := BondMode(mode); m {
	case "":
		return BondBalanceRR, nil
	case BondActiveBackup, BondBalanceRR, BondBalanceXOR, Bond8023AD:
		return m, nil
	}
	return "", fmt.Errorf("%q is not supported; use active-backup, balance-rr, balance-xor or 802.3ad", mode)
}

func fromInterface(c cloudinit.InterfaceConfig) Interface {
	i := Interface{DHCP4: c.DHCP4, DHCP6: c.DHCP6, MTU: c.MTU, Optional: c.Optional}
	for _, a := range c.Addresses {
		i.Addresses = append(i.Addresses, a.Prefix)
	}
	for _, r := range c.Routes {
		to := r.To.Prefix
		if r.To.Default {
			to = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if r.Via.Is6() {
				to = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
		}
		i.Routes = append(i.Routes, Route{To: to, Via: r.Via.Addr, Metric: r.Metric})
	}
	if ns := c.Nameservers; ns != nil {
		for _, a := range ns.Addresses {
			i.Nameservers.Addresses = append(i.Nameservers.Addresses, a.Addr)
		}
		i.Nameservers.Search = slices.Clone(ns.Search)
	}
	return i
}

func sortedIDs[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
