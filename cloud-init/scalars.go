package cloudinit

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Value types with a textual form of their own. Each reads itself from a YAML
// scalar and rejects impossible values with a message that says what is wanted.

func scalarString(n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!bool" || n.Tag == "!!null" {
		return "", fmt.Errorf("want a string, got %s", kindName(n))
	}
	return n.Value, nil
}

// IPPrefix is an interface address with its prefix length, "192.0.2.10/24"
// or "2001:db8::10/64". Host bits may be set: it names an address, not a network.
type IPPrefix struct{ netip.Prefix }

func (p *IPPrefix) decodeNode(n *yaml.Node) error {
	s, err := scalarString(n)
	if err != nil {
		return err
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("%q is not an address with prefix length (like 192.0.2.10/24)", s)
	}
	p.Prefix = pfx
	return nil
}

func (IPPrefix) jsonSchema() map[string]any {
	return map[string]any{"type": "string", "description": "address/prefix-length, e.g. 192.0.2.10/24"}
}

// IPAddr is a single IPv4 or IPv6 address.
type IPAddr struct{ netip.Addr }

func (a *IPAddr) decodeNode(n *yaml.Node) error {
	s, err := scalarString(n)
	if err != nil {
		return err
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("%q is not an IP address", s)
	}
	a.Addr = addr
	return nil
}

func (IPAddr) jsonSchema() map[string]any {
	return map[string]any{"type": "string", "description": "IPv4 or IPv6 address"}
}

// Destination is a route's "to": a network, or "default" for the default
// route of the family of the gateway.
type Destination struct {
	Default bool
	Prefix  netip.Prefix // valid when !Default
}

func (d *Destination) decodeNode(n *yaml.Node) error {
	s, err := scalarString(n)
	if err != nil {
		return err
	}
	if s == "default" {
		d.Default = true
		return nil
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("%q is neither \"default\" nor a network (like 10.0.0.0/8)", s)
	}
	if pfx.Masked() != pfx {
		return fmt.Errorf("%q has host bits set; the network is %s", s, pfx.Masked())
	}
	d.Prefix = pfx
	return nil
}

func (d Destination) String() string {
	if d.Default {
		return "default"
	}
	return d.Prefix.String()
}

func (Destination) jsonSchema() map[string]any {
	return map[string]any{"type": "string", "description": `"default" or a network, e.g. 10.0.0.0/8`}
}

// MAC is a hardware address, kept in the lower-case colon form.
type MAC string

func (m *MAC) decodeNode(n *yaml.Node) error {
	s, err := scalarString(n)
	if err != nil {
		return err
	}
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("%q is not a MAC address (like 52:54:00:12:34:56)", s)
	}
	*m = MAC(hw.String())
	return nil
}

func (MAC) jsonSchema() map[string]any {
	return map[string]any{"type": "string", "pattern": "^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$"}
}

// Duration is a Go duration string: "30s", "5m", "1h30m". It must be positive.
type Duration struct{ time.Duration }

func (d *Duration) decodeNode(n *yaml.Node) error {
	s, err := scalarString(n)
	if err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("%q is not a positive duration (like 30s or 5m)", s)
	}
	d.Duration = v
	return nil
}

func (Duration) jsonSchema() map[string]any {
	return map[string]any{"type": "string", "pattern": `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`}
}

// Window is a maintenance window in the device's local time,
// "02:00-04:30", optionally on some weekdays only: "Sat 02:00-04:00",
// "Mon,Thu 23:30-00:30". It may wrap past midnight ("23:00-01:00"), and then
// belongs to the day it starts on.
type Window struct {
	Days       [7]bool       // indexed by time.Weekday; all false: every day
	Start, End time.Duration // since midnight
}

// weekdayNames are the day names a window takes, in time.Weekday order.
var weekdayNames = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

func (w *Window) decodeNode(n *yaml.Node) error {
	s, err := scalarString(n)
	if err != nil {
		return err
	}
	bad := fmt.Errorf("%q is not a window HH:MM-HH:MM (like 02:00-04:00), optionally after weekdays (like Sat 02:00-04:00)", s)
	fields := strings.Fields(s)
	if len(fields) == 0 || len(fields) > 2 {
		return bad
	}
	var days [7]bool
	if len(fields) == 2 {
		for _, d := range strings.Split(fields[0], ",") {
			i := weekday(d)
			if i < 0 {
				return fmt.Errorf("window %q: %q is not a weekday (Mon, Tue, Wed, Thu, Fri, Sat, Sun)", s, d)
			}
			days[i] = true
		}
	}
	from, to, ok := strings.Cut(fields[len(fields)-1], "-")
	if !ok {
		return bad
	}
	start, err1 := clock(from)
	end, err2 := clock(to)
	if err1 != nil || err2 != nil {
		return bad
	}
	if start == end {
		return fmt.Errorf("window %q is empty: start equals end", s)
	}
	w.Days, w.Start, w.End = days, start, end
	return nil
}

// weekday returns the time.Weekday of a day name ("Sat" or "sat"), or -1.
func weekday(name string) int {
	for i, d := range weekdayNames {
		if name == d || name == strings.ToLower(d) {
			return i
		}
	}
	return -1
}

func clock(s string) (time.Duration, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, errors.New("bad clock time")
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
}

func (w Window) String() string {
	f := func(d time.Duration) string { return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60) }
	span := f(w.Start) + "-" + f(w.End)
	var days []string
	for i, on := range w.Days {
		if on {
			days = append(days, weekdayNames[i])
		}
	}
	if len(days) == 0 {
		return span
	}
	return strings.Join(days, ",") + " " + span
}

func (Window) jsonSchema() map[string]any {
	day := `([Mm]on|[Tt]ue|[Ww]ed|[Tt]hu|[Ff]ri|[Ss]at|[Ss]un)`
	hhmm := `([01][0-9]|2[0-3]):[0-5][0-9]`
	return map[string]any{"type": "string", "pattern": `^(` + day + `(,` + day + `)* )?` + hhmm + `-` + hhmm + `$`}
}

// Command is something to run: a string goes to /bin/sh -c, a list is the
// argument vector run without a shell (as in cloud-init's runcmd).
type Command struct {
	Shell string   `json:",omitempty"`
	Argv  []string `json:",omitempty"`
}

func (c *Command) decodeNode(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		if len(n.Content) == 0 {
			return errors.New("empty command")
		}
		for _, a := range n.Content {
			s, err := scalarString(resolve(a))
			if err != nil {
				return fmt.Errorf("command argument: %w", err)
			}
			c.Argv = append(c.Argv, s)
		}
		return nil
	}
	s, err := scalarString(n)
	if err != nil {
		return fmt.Errorf("want a command string or a list of arguments: %w", err)
	}
	if strings.TrimSpace(s) == "" {
		return errors.New("empty command")
	}
	c.Shell = s
	return nil
}

func (Command) jsonSchema() map[string]any {
	return map[string]any{"oneOf": []any{
		map[string]any{"type": "string", "description": "run with /bin/sh -c"},
		map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "minItems": 1, "description": "argument vector"},
	}}
}

// StringList accepts a list of strings or one comma-separated string, as
// cloud-init does for users[].groups.
type StringList []string

func (l *StringList) decodeNode(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		for _, a := range n.Content {
			s, err := scalarString(resolve(a))
			if err != nil {
				return err
			}
			*l = append(*l, s)
		}
		return nil
	}
	s, err := scalarString(n)
	if err != nil {
		return err
	}
	for _, part := range strings.Split(s, ",") {
		if p := strings.TrimSpace(part); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func (StringList) jsonSchema() map[string]any {
	return map[string]any{"oneOf": []any{
		map[string]any{"type": "string"},
		map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
	}}
}

// URL is an absolute http or https URL.
type URL string

func (u *URL) decodeNode(n *yaml.Node) error {
	s, err := scalarString(n)
	if err != nil {
		return err
	}
	p, err := url.Parse(s)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("%q is not an http or https URL", s)
	}
	*u = URL(s)
	return nil
}

func (URL) jsonSchema() map[string]any {
	return map[string]any{"type": "string", "format": "uri", "pattern": "^https?://"}
}

// FileMode is an octal permission string such as "0644" (a YAML integer
// written in octal is accepted as well).
type FileMode uint32

func (m *FileMode) decodeNode(n *yaml.Node) error {
	s, err := scalarString(n)
	if err != nil {
		return err
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("%q is not an octal file mode (like \"0644\")", s)
	}
	*m = FileMode(v)
	return nil
}

func (FileMode) jsonSchema() map[string]any {
	return map[string]any{"type": "string", "pattern": "^0?[0-7]{3,4}$"}
}

// Sysctl is a kernel parameter value; YAML numbers and booleans are written
// as the kernel reads them ("1", "0").
type Sysctl string

func (s *Sysctl) decodeNode(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return fmt.Errorf("want a value, got %s", kindName(n))
	}
	switch {
	case n.Tag == "!!bool" && strings.EqualFold(n.Value, "true"):
		*s = "1"
	case n.Tag == "!!bool":
		*s = "0"
	default:
		*s = Sysctl(n.Value)
	}
	return nil
}

func (Sysctl) jsonSchema() map[string]any {
	return map[string]any{"type": []any{"string", "integer", "boolean"}}
}
