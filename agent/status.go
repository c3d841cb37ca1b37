// Package agent is cairn-agent: it runs the device's boot phases, decides
// whether a boot is healthy, and reports the device's status.
package agent

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
)

// SlotRow is one line of the slot table.
type SlotRow struct {
	Slot      partitions.Slot `json:"slot"`
	Partition string          `json:"partition"`
	Version   string          `json:"version,omitempty"`
	Priority  int             `json:"priority"`
	TriesLeft int             `json:"tries_left"`
	OK        bool            `json:"ok"`
	Booted    bool            `json:"booted"`
	NextBoot  bool            `json:"next_boot"`
}

// Status is what `cairn-agent status` reports.
type Status struct {
	Bootloader string              `json:"bootloader"`
	BootEnv    string              `json:"boot_env"`
	Booted     partitions.Slot     `json:"booted"`
	NextBoot   *bootstate.Decision `json:"next_boot"`
	// NextBootError says why no slot would boot; empty when one would.
	NextBootError string    `json:"next_boot_error,omitempty"`
	Slots         []SlotRow `json:"slots"`
	// Diskless is the network boot a diskless device runs; nil when it
	// booted a slot from its disk. A diskless device has no slot table,
	// no boot environment and no next boot of its own.
	Diskless *DisklessStatus `json:"diskless,omitempty"`
	// Measurement is the measured boot of the booted slot, when checked.
	Measurement *MeasurementStatus `json:"measurement,omitempty"`
	// Config is the device configuration the agent runs, when loaded.
	Config *ConfigStatus `json:"config,omitempty"`
	// K3s is the node's k3s and its upgrades, when the device runs k3s.
	K3s *K3sStatus `json:"k3s,omitempty"`
}

// K3sStatus is the k3s line of status: the version running, one staged
// for an upgrade, how the last upgrade ended, and versions that rolled
// back and are not tried again.
type K3sStatus struct {
	Running     string   `json:"running"`
	Staged      string   `json:"staged,omitempty"`
	LastUpgrade string   `json:"last_upgrade"`
	Bad         []string `json:"bad,omitempty"`
	// Token says how the k3s token is kept and whether this boot got it.
	Token *K3sTokenStatus `json:"token,omitempty"`
}

// ConfigStatus says which configuration the device runs and what is wrong
// with a newer one it refused.
type ConfigStatus struct {
	InstanceID string   `json:"instance_id,omitempty"`
	Sources    []string `json:"sources"`
	// LastGood: the newest configuration was refused and the last good
	// one runs.
	LastGood bool `json:"last_good"`
	// Errors are the refused configuration's validation errors
	// (file:line:column: message) and the sources that failed to read.
	Errors []string `json:"errors,omitempty"`
}

// NewConfigStatus summarizes a config.Load result for status.
func NewConfigStatus(r *config.Result) *ConfigStatus {
	c := &ConfigStatus{InstanceID: r.InstanceID(), Sources: r.Sources, LastGood: r.LastGood}
	for _, e := range r.Invalid {
		c.Errors = append(c.Errors, e.Error())
	}
	c.Errors = append(c.Errors, r.SourceErrors...)
	return c
}

// DisklessStatus says what a diskless device booted over the network.
type DisklessStatus struct {
	SlotURL string `json:"slot_url,omitempty"` // where cairn-init fetched the slot image
	Device  string `json:"device"`             // the loop device holding it
	// Release is the release in the image's signed footer; empty when
	// the footer could not be read or verified.
	Release string `json:"release,omitempty"`
}

// DisklessSlotStatus is the status of a diskless boot running release:
// booted SlotNetwork, with neither slot table nor next boot.
func DisklessSlotStatus(boot *partitions.Boot, release string) *Status {
	return &Status{Booted: boot.Slot, Slots: []SlotRow{},
		Diskless: &DisklessStatus{SlotURL: boot.SlotURL, Device: boot.Device, Release: release}}
}

// BootEnv is the device's boot environment as status needs it.
type BootEnv struct {
	Kind string // "grub" or "u-boot"
	Path string
	Env  bootstate.Env
}

// SlotStatus builds the slot table from the booted slot and the boot
// environment.
func SlotStatus(boot *partitions.Boot, env BootEnv) (*Status, error) {
	st, err := bootstate.New(env.Env).Read()
	if err != nil {
		return nil, fmt.Errorf("boot env %s: %w", env.Path, err)
	}
	s := &Status{Bootloader: env.Kind, BootEnv: env.Path, Booted: boot.Slot}
	next, err := st.Choose()
	if err != nil {
		s.NextBootError = err.Error()
	} else {
		s.NextBoot = &next
	}
	for _, slot := range partitions.Slots {
		ss := st.Slot(slot)
		row := SlotRow{
			Slot:      slot,
			Partition: slotDevice(boot, slot),
			Priority:  ss.Priority,
			TriesLeft: ss.TriesLeft,
			OK:        ss.OK == 1,
			Booted:    slot == boot.Slot,
			NextBoot:  s.NextBoot != nil && s.NextBoot.Slot == slot,
		}
		s.Slots = append(s.Slots, row)
	}
	return s, nil
}

// WriteText prints the slot table for people.
func (s *Status) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if s.Diskless != nil {
		return s.writeDiskless(tw)
	}
	fmt.Fprintf(tw, "booted slot %s; boot env %s (%s)\n", s.Booted, s.BootEnv, s.Bootloader)
	switch {
	case s.NextBoot == nil:
		fmt.Fprintf(tw, "next boot: none: %s\n", s.NextBootError)
	case s.NextBoot.Trial:
		fmt.Fprintf(tw, "next boot: slot %s, on trial (%d tries left after it)\n", s.NextBoot.Slot, s.NextBoot.TriesAfter)
	default:
		fmt.Fprintf(tw, "next boot: slot %s\n", s.NextBoot.Slot)
	}
	s.writeAgentLines(tw)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "SLOT\tPARTITION\tVERSION\tPRIORITY\tTRIES\tOK\tBOOTED\tNEXT BOOT")
	for _, r := range s.Slots {
		version := r.Version
		if version == "" {
			version = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", r.Slot, dash(r.Partition), version,
			r.Priority, r.TriesLeft, yesNo(r.OK), yesNo(r.Booted), yesNo(r.NextBoot))
	}
	return tw.Flush()
}

// writeDiskless prints a diskless boot: where it came from, no slots.
func (s *Status) writeDiskless(tw *tabwriter.Writer) error {
	d := s.Diskless
	fmt.Fprintf(tw, "booted: network (diskless), release %s", dash(d.Release))
	if m := s.Measurement; m != nil && m.Measured && m.MatchesManifest {
		fmt.Fprint(tw, " measured")
	}
	fmt.Fprintf(tw, "; slot image %s on %s\n", dash(d.SlotURL), d.Device)
	fmt.Fprintln(tw, "next boot: whatever the network boot server serves (no slots, no boot env)")
	s.writeAgentLines(tw)
	return tw.Flush()
}

// writeAgentLines prints the measured boot, config and k3s lines.
func (s *Status) writeAgentLines(w io.Writer) {
	if m := s.Measurement; m != nil && m.Error != "" {
		fmt.Fprintf(w, "measured boot: %s: %s\n", m.Summary, m.Error)
	} else if m != nil {
		fmt.Fprintf(w, "measured boot: %s\n", m.Summary)
	}
	s.Config.writeText(w)
	s.K3s.writeText(w)
}

func (c *ConfigStatus) writeText(w io.Writer) {
	switch {
	case c == nil:
		return
	case c.InstanceID == "":
		fmt.Fprintf(w, "config: none (DHCP on every wired link)\n")
	case c.LastGood:
		fmt.Fprintf(w, "config: instance %s, last good (the newest was refused)\n", c.InstanceID)
	default:
		fmt.Fprintf(w, "config: instance %s from %s\n", c.InstanceID, strings.Join(c.Sources, ", "))
	}
	for _, e := range c.Errors {
		fmt.Fprintf(w, "config error: %s\n", e)
	}
}

func (k *K3sStatus) writeText(w io.Writer) {
	if k == nil {
		return
	}
	fmt.Fprintf(w, "k3s: running %s", dash(k.Running))
	if k.Staged != "" {
		fmt.Fprintf(w, ", staged %s", k.Staged)
	}
	fmt.Fprintf(w, "; last upgrade: %s", k.LastUpgrade)
	if len(k.Bad) > 0 {
		fmt.Fprintf(w, "; not retried: %s", strings.Join(k.Bad, ", "))
	}
	fmt.Fprintln(w)
	if t := k.Token; t != nil && t.Error != "" {
		fmt.Fprintf(w, "k3s token: %s: %s\n", t.Summary, t.Error)
	} else if t != nil {
		fmt.Fprintf(w, "k3s token: %s\n", t.Summary)
	}
}

func slotDevice(boot *partitions.Boot, slot partitions.Slot) string {
	if slot == boot.Slot {
		return boot.Device
	}
	return boot.OtherDevice
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
