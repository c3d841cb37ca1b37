package network

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/vishvananda/netlink"
)

// resolved maps config entries to kernel links for one Apply.
type resolved struct {
	names   map[string][]string // entry ID -> kernel link names
	l3      []linkState         // every link whose settings Apply enforces
	missing []string            // non-optional ethernets that matched nothing
}

// linkState is the desired state of one kernel link.
type linkState struct {
	name string
	Interface
}

var bondModes = map[BondMode]netlink.BondMode{
	BondActiveBackup: netlink.BOND_MODE_ACTIVE_BACKUP,
	BondBalanceRR:    netlink.BOND_MODE_BALANCE_RR,
	BondBalanceXOR:   netlink.BOND_MODE_BALANCE_XOR,
	Bond8023AD:       netlink.BOND_MODE_802_3AD,
}

// resolveEthernets matches ethernet entries to links, renaming where the
// entry says so, and lists the links of every entry.
func (r *Reconciler) resolveEthernets(cfg *Config, acts *[]Action) (*resolved, error) {
	res := &resolved{names: map[string][]string{}}
	links, err := r.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	drivers := map[string]string{}
	for _, e := range cfg.Ethernets {
		matched, err := r.matchLinks(e, links, drivers)
		if err != nil {
			return nil, err
		}
		if len(matched) == 0 {
			if !e.Optional {
				res.missing = append(res.missing, e.ID)
			}
			continue
		}
		if e.SetName != "" {
			if len(matched) > 1 {
				return nil, fmt.Errorf("ethernet %q: set-name %q but %d links match", e.ID, e.SetName, len(matched))
			}
			if err := r.rename(matched[0], e.SetName, acts); err != nil {
				return nil, fmt.Errorf("ethernet %q: %w", e.ID, err)
			}
		}
		for _, l := range matched {
			name := l.Attrs().Name
			res.names[e.ID] = append(res.names[e.ID], name)
			res.l3 = append(res.l3, linkState{name: name, Interface: e.Interface})
		}
	}
	for _, b := range cfg.Bonds {
		res.names[b.ID] = []string{b.ID}
		res.l3 = append(res.l3, linkState{name: b.ID, Interface: b.Interface})
	}
	for _, b := range cfg.Bridges {
		res.names[b.ID] = []string{b.ID}
		res.l3 = append(res.l3, linkState{name: b.ID, Interface: b.Interface})
	}
	for _, v := range cfg.VLANs {
		res.names[v.ID] = []string{v.ID}
		res.l3 = append(res.l3, linkState{name: v.ID, Interface: v.Interface})
	}
	return res, nil
}

// matchLinks returns the links e selects. A link that already carries
// e's set-name and matches everything but the name is the one: after a
// rename the name glob no longer has to match.
func (r *Reconciler) matchLinks(e Ethernet, links []netlink.Link, drivers map[string]string) ([]netlink.Link, error) {
	var out []netlink.Link
	for _, l := range links {
		a := l.Attrs()
		if a.EncapType == "loopback" {
			continue
		}
		if e.Match.empty() {
			if a.Name == e.ID || (e.SetName != "" && a.Name == e.SetName) {
				out = append(out, l)
			}
			continue
		}
		if l.Type() != "device" && !r.opts.Wired(l) {
			continue
		}
		if e.Match.MAC != nil && !bytes.Equal(hardwareAddr(l), e.Match.MAC) {
			continue
		}
		if e.Match.Driver != "" {
			d, ok := drivers[a.Name]
			if !ok {
				var err error
				if d, err = driverOf(r.ns, a.Name); err != nil {
					return nil, fmt.Errorf("ethernet %q: %w", e.ID, err)
				}
				drivers[a.Name] = d
			}
			if d != e.Match.Driver {
				continue
			}
		}
		if e.Match.Name != "" && (e.SetName == "" || a.Name != e.SetName) {
			if ok, _ := path.Match(e.Match.Name, a.Name); !ok {
				continue
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// hardwareAddr is the permanent address when the driver reports one: a
// bond member's current address is the bond's.
func hardwareAddr(l netlink.Link) net.HardwareAddr {
	if a := l.Attrs(); len(a.PermHWAddr) > 0 {
		return a.PermHWAddr
	}
	return l.Attrs().HardwareAddr
}

// rename gives l the name to; the kernel renames only links that are down,
// so an up link goes down here and comes up again in applyLink.
func (r *Reconciler) rename(l netlink.Link, to string, acts *[]Action) error {
	from := l.Attrs().Name
	if from == to {
		return nil
	}
	if other, err := r.h.LinkByName(to); err == nil && other.Attrs().Index != l.Attrs().Index {
		return fmt.Errorf("rename %s to %s: name taken by another link", from, to)
	}
	if l.Attrs().Flags&net.FlagUp != 0 {
		if err := r.h.LinkSetDown(l); err != nil {
			return fmt.Errorf("rename %s: set down: %w", from, err)
		}
	}
	if err := r.h.LinkSetName(l, to); err != nil {
		return fmt.Errorf("rename %s to %s: %w", from, to, err)
	}
	l.Attrs().Name = to
	*acts = append(*acts, Action{Link: to, Op: OpRename, Detail: "from " + from})
	return nil
}

// applyVirtual creates the bonds, bridges and VLANs that are missing and
// recreates those whose kind or fixed parameters differ.
func (r *Reconciler) applyVirtual(cfg *Config, res *resolved, acts *[]Action) error {
	for _, b := range cfg.Bonds {
		want := netlink.NewLinkBond(netlink.LinkAttrs{Name: b.ID})
		want.Mode = bondModes[b.mode()]
		if err := r.ensureLink(want, func(l netlink.Link) bool {
			got, ok := l.(*netlink.Bond)
			return ok && got.Mode == want.Mode
		}, acts); err != nil {
			return err
		}
	}
	for _, b := range cfg.Bridges {
		want := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: b.ID}}
		if err := r.ensureLink(want, func(l netlink.Link) bool { return l.Type() == "bridge" }, acts); err != nil {
			return err
		}
	}
	for _, v := range cfg.VLANs {
		parents := res.names[v.Link]
		if len(parents) == 0 {
			continue // its parent is missing, and reported so
		}
		parent, err := r.h.LinkByName(parents[0])
		if err != nil {
			return fmt.Errorf("vlan %s: parent %s: %w", v.ID, parents[0], err)
		}
		want := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: v.ID, ParentIndex: parent.Attrs().Index}, VlanId: v.VLANID}
		if err := r.ensureLink(want, func(l netlink.Link) bool {
			got, ok := l.(*netlink.Vlan)
			return ok && got.VlanId == v.VLANID && got.ParentIndex == parent.Attrs().Index
		}, acts); err != nil {
			return err
		}
	}
	return nil
}

// ensureLink creates want unless a link of its name exists that same says
// is right; a wrong one is deleted first.
func (r *Reconciler) ensureLink(want netlink.Link, same func(netlink.Link) bool, acts *[]Action) error {
	name := want.Attrs().Name
	got, err := r.h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
	case err != nil:
		return fmt.Errorf("link %s: %w", name, err)
	case same(got):
		return nil
	default:
		if err := r.h.LinkDel(got); err != nil {
			return fmt.Errorf("link %s: delete %s to recreate it: %w", name, got.Type(), err)
		}
		*acts = append(*acts, Action{Link: name, Op: OpDelete, Detail: got.Type()})
	}
	if err := r.h.LinkAdd(want); err != nil {
		return fmt.Errorf("link %s: create %s: %w", name, want.Type(), err)
	}
	*acts = append(*acts, Action{Link: name, Op: OpCreate, Detail: want.Type()})
	return nil
}

// applyMembers puts the members of every bond and bridge under it and
// releases links that are no longer members.
func (r *Reconciler) applyMembers(cfg *Config, res *resolved, acts *[]Action) error {
	type group struct {
		master  string
		members []string
		bond    bool
	}
	var groups []group
	for _, b := range cfg.Bonds {
		groups = append(groups, group{b.ID, b.Interfaces, true})
	}
	for _, b := range cfg.Bridges {
		groups = append(groups, group{b.ID, b.Interfaces, false})
	}
	for _, g := range groups {
		master, err := r.h.LinkByName(g.master)
		if err != nil {
			return fmt.Errorf("%s: %w", g.master, err)
		}
		var want []string
		for _, id := range g.members {
			want = append(want, res.names[id]...)
		}
		for _, name := range want {
			if err := r.enslave(name, master, g.bond, acts); err != nil {
				return err
			}
		}
		links, err := r.h.LinkList()
		if err != nil {
			return fmt.Errorf("list links: %w", err)
		}
		for _, l := range links {
			if l.Attrs().MasterIndex == master.Attrs().Index && !slices.Contains(want, l.Attrs().Name) {
				if err := r.h.LinkSetNoMaster(l); err != nil {
					return fmt.Errorf("%s: release from %s: %w", l.Attrs().Name, g.master, err)
				}
				*acts = append(*acts, Action{Link: l.Attrs().Name, Op: OpNoMaster, Detail: "from " + g.master})
			}
		}
	}
	return nil
}

func (r *Reconciler) enslave(name string, master netlink.Link, bond bool, acts *[]Action) error {
	l, err := r.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: member of %s: %w", name, master.Attrs().Name, err)
	}
	a := l.Attrs()
	if a.MasterIndex == master.Attrs().Index {
		return nil
	}
	if a.MasterIndex != 0 {
		if err := r.h.LinkSetNoMaster(l); err != nil {
			return fmt.Errorf("%s: release from previous master: %w", name, err)
		}
	}
	// The bonding driver takes only members that are down.
	if bond && a.Flags&net.FlagUp != 0 {
		if err := r.h.LinkSetDown(l); err != nil {
			return fmt.Errorf("%s: set down to join %s: %w", name, master.Attrs().Name, err)
		}
	}
	if err := r.h.LinkSetMaster(l, master); err != nil {
		return fmt.Errorf("%s: join %s: %w", name, master.Attrs().Name, err)
	}
	*acts = append(*acts, Action{Link: name, Op: OpSetMaster, Detail: master.Attrs().Name})
	return nil
}

// isWireless reports whether the kernel lists name as a wireless device
// (in the namespace sysfs was mounted for, which is the host's on a device).
func isWireless(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name, "wireless"))
	return err == nil
}
