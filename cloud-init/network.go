package cloudinit

import (
	"fmt"
	"path"
	"reflect"
	"regexp"
	"sort"

	"gopkg.in/yaml.v3"
)

// NetworkConfig is a network-config document, version 2 (the netplan-style
// format cloud-init uses), restricted to what Cairn applies. Interfaces are
// keyed by their ID: for ethernets with a match block the ID is only a name
// for references; otherwise it is the kernel interface name.
type NetworkConfig struct {
	Version   int                 `yaml:"version" v:"required,min=2,max=2" doc:"must be 2"`
	Ethernets map[string]Ethernet `yaml:"ethernets" doc:"physical interfaces, by ID"`
	VLANs     map[string]VLAN     `yaml:"vlans" doc:"802.1Q VLAN interfaces, by name"`
	Bonds     map[string]Bond     `yaml:"bonds" doc:"bonded interfaces, by name"`
	Bridges   map[string]Bridge   `yaml:"bridges" doc:"bridges, by name"`
}

// InterfaceConfig is the addressing every kind of interface shares.
type InterfaceConfig struct {
	DHCP4       bool         `yaml:"dhcp4" doc:"get an IPv4 address by DHCP"`
	DHCP6       bool         `yaml:"dhcp6" doc:"get an IPv6 address by DHCPv6"`
	Addresses   []IPPrefix   `yaml:"addresses" doc:"static addresses with prefix length"`
	Routes      []Route      `yaml:"routes" doc:"static routes"`
	Nameservers *Nameservers `yaml:"nameservers" doc:"DNS servers and search domains"`
	MTU         int          `yaml:"mtu" v:"min=576,max=9216" doc:"MTU in bytes (IPv4 needs at least 576)"`
	Optional    bool         `yaml:"optional" doc:"the boot does not wait for this interface"`
}

// Ethernet is a physical interface, chosen by name or by match.
type Ethernet struct {
	Match   *Match `yaml:"match" doc:"which interface this is; without it the ID is the interface name"`
	SetName string `yaml:"set-name" doc:"rename the matched interface"`
	InterfaceConfig
}

// Match selects physical interfaces; every given field must match.
type Match struct {
	Name       string `yaml:"name" doc:"interface name, shell glob allowed (en*)"`
	MACAddress MAC    `yaml:"macaddress" doc:"permanent hardware address"`
	Driver     string `yaml:"driver" doc:"kernel driver name, glob allowed"`
}

// VLAN is an 802.1Q interface on top of Link.
type VLAN struct {
	ID   int    `yaml:"id" v:"required,min=0,max=4094" doc:"VLAN id"`
	Link string `yaml:"link" v:"required" doc:"ID of the interface the VLAN rides on"`
	InterfaceConfig
}

// Bond aggregates Interfaces.
type Bond struct {
	Interfaces []string       `yaml:"interfaces" v:"required" doc:"IDs of the member ethernets"`
	Parameters BondParameters `yaml:"parameters" doc:"bonding options"`
	InterfaceConfig
}

// BondParameters are the bonding driver's options Cairn sets.
type BondParameters struct {
	Mode string `yaml:"mode" v:"enum=balance-rr|active-backup|balance-xor|broadcast|802.3ad|balance-tlb|balance-alb" doc:"bonding mode (default balance-rr)"`
}

// Bridge is a Linux bridge over Interfaces.
type Bridge struct {
	Interfaces []string `yaml:"interfaces" doc:"IDs of the ports"`
	InterfaceConfig
}

// Route is one static route.
type Route struct {
	To     Destination `yaml:"to" v:"required" doc:"destination network or \"default\""`
	Via    IPAddr      `yaml:"via" doc:"gateway address"`
	Metric int         `yaml:"metric" v:"min=0,max=4294967295" doc:"route metric (lower wins)"`
}

// Nameservers are the DNS settings of an interface.
type Nameservers struct {
	Addresses []IPAddr `yaml:"addresses" doc:"DNS server addresses"`
	Search    []string `yaml:"search" doc:"search domains"`
}

var ifnameRe = regexp.MustCompile(`^[a-zA-Z0-9_.:-]{1,15}$`)

// ParseNetworkConfig parses and validates a network-config version 2
// document. A document with a top-level "network:" key (as netplan and some
// cloud-init seeds write it) is accepted too.
func ParseNetworkConfig(file string, data []byte) (*NetworkConfig, error) {
	nc := &NetworkConfig{}
	doc, errs := parseYAML(file, data)
	if errs != nil {
		return nc, errs
	}
	d := newDecoder(file)
	d.decodeNetwork(doc, nc)
	return nc, d.errs.asError()
}

func (d *decoder) decodeNetwork(doc *yaml.Node, nc *NetworkConfig) {
	root := resolve(doc)
	if root == nil || isNull(root) {
		d.errorf(root, "", "empty network-config: want version: 2")
		return
	}
	if root.Kind == yaml.MappingNode && len(root.Content) == 2 && root.Content[0].Value == "network" {
		root = resolve(root.Content[1])
	}
	d.decode(root, reflect.ValueOf(nc).Elem(), "", rules{})
	if root == nil || root.Kind != yaml.MappingNode {
		return
	}
	d.validateNetwork(nc, root)
}

// ids returns every interface ID declared, and where, for reference checks.
func (nc *NetworkConfig) ids() map[string]string {
	ids := map[string]string{}
	for id := range nc.Ethernets {
		ids[id] = "ethernets"
	}
	for id := range nc.Bonds {
		ids[id] = "bonds"
	}
	for id := range nc.Bridges {
		ids[id] = "bridges"
	}
	for id := range nc.VLANs {
		ids[id] = "vlans"
	}
	return ids
}

func (d *decoder) validateNetwork(nc *NetworkConfig, root *yaml.Node) {
	ids := nc.ids()
	names := sortedKeys(ids)
	seenIn := map[string]string{}
	for _, kind := range []string{"ethernets", "vlans", "bonds", "bridges"} {
		for _, id := range idsOf(nc, kind) {
			if prev, ok := seenIn[id]; ok {
				d.errorAt(fmt.Sprintf("%s[%s]", kind, id), root, "ID %q already declared under %s", id, prev)
			}
			seenIn[id] = kind
		}
	}
	for id, e := range nc.Ethernets {
		p := fmt.Sprintf("ethernets[%s]", id)
		if e.Match == nil && !ifnameRe.MatchString(id) {
			d.errorAt(p, root, "%q is not an interface name (at most 15 characters); add a match block to use it as an ID", id)
		}
		if e.Match != nil {
			if !d.has(p+".match.name") && !d.has(p+".match.macaddress") && !d.has(p+".match.driver") {
				d.errorAt(p+".match", root, "an empty match would take every interface; give name, macaddress or driver")
			}
			if _, err := path.Match(e.Match.Name, ""); err != nil {
				d.errorAt(p+".match.name", root, "%q is not a valid glob", e.Match.Name)
			}
		}
		if e.SetName != "" && !ifnameRe.MatchString(e.SetName) {
			d.errorAt(p+".set-name", root, "%q is not an interface name (at most 15 characters)", e.SetName)
		}
		if e.SetName != "" && e.Match == nil {
			d.errorAt(p+".set-name", root, "set-name needs a match block")
		}
		d.validateInterface(p, &e.InterfaceConfig, root)
	}
	for id, v := range nc.VLANs {
		p := fmt.Sprintf("vlans[%s]", id)
		d.checkName(p, id, root)
		d.checkRef(p+".link", v.Link, ids, names, root)
		d.validateInterface(p, &v.InterfaceConfig, root)
	}
	for id, b := range nc.Bonds {
		p := fmt.Sprintf("bonds[%s]", id)
		d.checkName(p, id, root)
		for i, m := range b.Interfaces {
			d.checkMember(fmt.Sprintf("%s.interfaces[%d]", p, i), m, nc, names, root)
		}
		d.validateInterface(p, &b.InterfaceConfig, root)
	}
	for id, b := range nc.Bridges {
		p := fmt.Sprintf("bridges[%s]", id)
		d.checkName(p, id, root)
		for i, m := range b.Interfaces {
			d.checkRef(fmt.Sprintf("%s.interfaces[%d]", p, i), m, ids, names, root)
		}
		d.validateInterface(p, &b.InterfaceConfig, root)
	}
}

func (d *decoder) checkName(p, id string, root *yaml.Node) {
	if !ifnameRe.MatchString(id) {
		d.errorAt(p, root, "%q is not an interface name (at most 15 characters)", id)
	}
}

func (d *decoder) checkRef(p, ref string, ids map[string]string, names []string, root *yaml.Node) {
	if _, ok := ids[ref]; ok || ref == "" {
		return
	}
	msg := fmt.Sprintf("no interface with ID %q", ref)
	if s := nearest(ref, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	d.errorAt(p, root, "%s", msg)
}

// checkMember allows only ethernets in bonds: the kernel enslaves physical links.
func (d *decoder) checkMember(p, ref string, nc *NetworkConfig, names []string, root *yaml.Node) {
	if _, ok := nc.Ethernets[ref]; ok {
		return
	}
	if kind, ok := nc.ids()[ref]; ok {
		d.errorAt(p, root, "%q is declared under %s; bond members must be ethernets", ref, kind)
		return
	}
	d.checkRef(p, ref, nc.ids(), names, root)
}

func (d *decoder) validateInterface(p string, ic *InterfaceConfig, root *yaml.Node) {
	for i, r := range ic.Routes {
		rp := fmt.Sprintf("%s.routes[%d]", p, i)
		if !r.Via.IsValid() {
			if r.To.Default {
				d.errorAt(rp, root, "a default route needs via")
			}
			continue
		}
		if !r.To.Default && r.To.Prefix.IsValid() && r.To.Prefix.Addr().Is4() != r.Via.Is4() {
			d.errorAt(rp+".via", root, "gateway %s is not in the address family of %s", r.Via, r.To)
		}
	}
}

func idsOf(nc *NetworkConfig, kind string) []string {
	switch kind {
	case "ethernets":
		return sortedKeys(nc.Ethernets)
	case "vlans":
		return sortedKeys(nc.VLANs)
	case "bonds":
		return sortedKeys(nc.Bonds)
	default:
		return sortedKeys(nc.Bridges)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
