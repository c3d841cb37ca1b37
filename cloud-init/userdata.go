// Package cloudinit reads a device's configuration the way cloud-init's
// NoCloud datasource delivers it (user-data, meta-data, network-config from a
// CIDATA volume, a seed URL or the image defaults), validates it strictly with
// file:line:column errors, merges the sources and keeps the last good one.
package cloudinit

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// UserData is a #cloud-config document: the standard cloud-init keys Cairn
// honours plus the cairn section for what cloud-init has no word for.
type UserData struct {
	Hostname          string      `yaml:"hostname" doc:"short host name (RFC 1123 label)"`
	FQDN              string      `yaml:"fqdn" doc:"fully qualified domain name"`
	Users             []User      `yaml:"users" doc:"local accounts to create"`
	SSHAuthorizedKeys []string    `yaml:"ssh_authorized_keys" doc:"public keys for the default administrator account"`
	WriteFiles        []WriteFile `yaml:"write_files" doc:"files to write on first boot"`
	BootCmd           []Command   `yaml:"bootcmd" doc:"commands run early on every boot"`
	RunCmd            []Command   `yaml:"runcmd" doc:"commands run once per instance, late in first boot"`
	NTP               *NTP        `yaml:"ntp" doc:"time servers"`
	Timezone          string      `yaml:"timezone" doc:"IANA time zone, e.g. Europe/Berlin"`
	Cairn             Cairn       `yaml:"cairn" doc:"Cairn's own settings"`
}

// User is one entry of users.
type User struct {
	Name              string     `yaml:"name" v:"required" doc:"login name"`
	Groups            StringList `yaml:"groups" doc:"supplementary groups, a list or a comma-separated string"`
	Shell             string     `yaml:"shell" doc:"login shell, an absolute path"`
	LockPasswd        *bool      `yaml:"lock_passwd" doc:"disable password login (default true)"`
	HashedPasswd      string     `yaml:"hashed_passwd" doc:"crypt(3) hash of the password"`
	SSHAuthorizedKeys []string   `yaml:"ssh_authorized_keys" doc:"public keys allowed to log in"`
}

// WriteFile is one entry of write_files.
type WriteFile struct {
	Path        string   `yaml:"path" v:"required" doc:"absolute path of the file"`
	Content     string   `yaml:"content" doc:"file content, encoded as encoding says"`
	Encoding    string   `yaml:"encoding" v:"enum=text|b64|base64|gz|gzip|gz+b64|gz+base64|gzip+b64|gzip+base64" doc:"how content is encoded (default text)"`
	Owner       string   `yaml:"owner" doc:"user:group (default root:root)"`
	Permissions FileMode `yaml:"permissions" doc:"octal mode (default 0644)"`
	Append      bool     `yaml:"append" doc:"append instead of replacing"`
	Defer       bool     `yaml:"defer" doc:"write after users are created"`
}

// NTP lists the time sources; without it the DHCP-provided ones are used.
type NTP struct {
	Enabled *bool    `yaml:"enabled" doc:"sync time at all (default true)"`
	Servers []string `yaml:"servers" doc:"NTP server host names or addresses"`
	Pools   []string `yaml:"pools" doc:"NTP pool host names"`
}

// Cairn is the cairn: section.
type Cairn struct {
	K3s     *K3s              `yaml:"k3s" doc:"Kubernetes (k3s) settings"`
	Update  *Update           `yaml:"update" doc:"OS update channel and reboot policy"`
	Health  *Health           `yaml:"health" doc:"extra checks a boot must pass"`
	Sysctl  map[string]Sysctl `yaml:"sysctl" doc:"kernel parameters, e.g. net.ipv4.ip_forward: 1"`
	Modules []string          `yaml:"modules" doc:"kernel modules to load at boot"`
}

// K3s configures the node's Kubernetes role.
type K3s struct {
	Role         string                    `yaml:"role" v:"required,enum=server|agent" doc:"server runs the control plane, agent joins one"`
	ClusterInit  bool                      `yaml:"cluster_init" doc:"start a new embedded-etcd HA cluster (first server only)"`
	Server       URL                       `yaml:"server" doc:"URL of an existing server to join, https://HOST:6443"`
	Token        string                    `yaml:"token" doc:"shared secret of the cluster"`
	TokenFile    string                    `yaml:"token_file" doc:"file holding the token instead of token"`
	NodeLabels   []string                  `yaml:"node_labels" doc:"key=value labels for this node"`
	NodeTaints   []string                  `yaml:"node_taints" doc:"key=value:Effect taints for this node"`
	ExtraArgs    []string                  `yaml:"extra_args" doc:"more k3s command-line flags, --flag=value"`
	Registries   map[string]RegistryMirror `yaml:"registries" doc:"registry mirrors, by registry host name"`
	AirgapImages []string                  `yaml:"airgap_images" doc:"image tarballs (paths on the device) imported at boot"`
}

// RegistryMirror lists the endpoints that serve one registry.
type RegistryMirror struct {
	Endpoints []URL `yaml:"endpoints" v:"required" doc:"mirror URLs tried in order"`
}

// Update configures the OS update channel.
type Update struct {
	Channel      string  `yaml:"channel" doc:"channel name, e.g. stable"`
	MetadataURL  URL     `yaml:"metadata_url" doc:"base URL of the signed channel metadata"`
	Auto         *bool   `yaml:"auto" doc:"install new releases without being told (default true)"`
	RebootPolicy string  `yaml:"reboot_policy" v:"enum=immediate|window|manual" doc:"when to reboot into a new release (default immediate)"`
	RebootWindow *Window `yaml:"reboot_window" doc:"maintenance window for reboot_policy window, [DAYS ]HH:MM-HH:MM, e.g. Sat 02:00-04:00"`
	BootTries    int     `yaml:"boot_tries" v:"min=1,max=10" doc:"trial boots of a new release before rolling back (default 3)"`
}

// Health lists the checks a boot must pass besides Cairn's own.
type Health struct {
	Deadline Duration      `yaml:"deadline" doc:"how long a new boot has to become healthy (default 10m)"`
	Checks   []HealthCheck `yaml:"checks" doc:"user-defined checks"`
	// RequireTPM fails the measured-boot check on a device without TPM
	// instead of passing it unmeasured (docs/tpm.md, "Health gate").
	RequireTPM bool `yaml:"require_tpm" doc:"fail the boot when the device has no TPM to measure it (default false)"`
}

// HealthCheck is a command that must exit 0 or an HTTP URL that must answer 2xx.
type HealthCheck struct {
	Name    string   `yaml:"name" v:"required" doc:"shown in status and logs"`
	Command *Command `yaml:"command" doc:"command that must exit 0"`
	HTTP    URL      `yaml:"http" doc:"URL that must answer 2xx"`
	Timeout Duration `yaml:"timeout" doc:"per attempt (default 10s)"`
}

var (
	hostnameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	labelRe    = regexp.MustCompile(`^([a-zA-Z0-9.-]+/)?[a-zA-Z0-9]([a-zA-Z0-9._-]{0,61}[a-zA-Z0-9])?=([a-zA-Z0-9]([a-zA-Z0-9._-]{0,61}[a-zA-Z0-9])?)?$`)
	taintRe    = regexp.MustCompile(`^([a-zA-Z0-9.-]+/)?[a-zA-Z0-9][a-zA-Z0-9._-]*(=[a-zA-Z0-9._-]*)?:(NoSchedule|PreferNoSchedule|NoExecute)$`)
	sysctlRe   = regexp.MustCompile(`^[a-z0-9_]+([./][a-zA-Z0-9_-]+)+$`)
	moduleRe   = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
)

// ParseUserData parses and validates a #cloud-config document. file names
// it in errors. On invalid input it returns what it could decode together with
// ValidationErrors listing every problem.
func ParseUserData(file string, data []byte) (*UserData, error) {
	ud := &UserData{}
	doc, errs := userDataNode(file, data)
	if errs != nil || doc == nil {
		return ud, errs.asError()
	}
	d := newDecoder(file)
	d.decodeUserData(doc, ud)
	return ud, d.errs.asError()
}

// userDataNode checks the #cloud-config header and parses the YAML. Empty
// user-data, or a header with nothing but comments after it, is valid and
// gives a nil node.
func userDataNode(file string, data []byte) (*yaml.Node, ValidationErrors) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	if strings.TrimRight(string(first), " \t\r") != "#cloud-config" {
		return nil, ValidationErrors{{File: file, Line: 1, Column: 1, Message: "user-data must start with the line #cloud-config (scripts and MIME multipart are not supported)"}}
	}
	doc, errs := parseYAML(file, data)
	if errs == nil && doc.Kind == 0 {
		return nil, nil
	}
	return doc, errs
}

func (d *decoder) decodeUserData(doc *yaml.Node, ud *UserData) {
	d.decode(doc, reflect.ValueOf(ud).Elem(), "", rules{})
	root := resolve(doc)
	if ud.Hostname != "" && !hostnameRe.MatchString(ud.Hostname) {
		d.errorAt("hostname", root, "%q is not a host name: lower-case letters, digits and '-', at most 63", ud.Hostname)
	}
	for i, u := range ud.Users {
		if u.Shell != "" && !strings.HasPrefix(u.Shell, "/") {
			d.errorAt(fmt.Sprintf("users[%d].shell", i), root, "%q is not an absolute path", u.Shell)
		}
	}
	for i, f := range ud.WriteFiles {
		if f.Path != "" && !strings.HasPrefix(f.Path, "/") {
			d.errorAt(fmt.Sprintf("write_files[%d].path", i), root, "%q is not an absolute path", f.Path)
		}
	}
	d.validateCairn(&ud.Cairn, root)
}

func (d *decoder) validateCairn(c *Cairn, root *yaml.Node) {
	if k := c.K3s; k != nil {
		d.validateK3s(k, root)
	}
	if u := c.Update; u != nil {
		if u.RebootPolicy == "window" && u.RebootWindow == nil {
			d.errorAt("cairn.update.reboot_policy", root, "reboot_policy window needs reboot_window")
		}
		if u.RebootWindow != nil && u.RebootPolicy != "window" && d.has("cairn.update.reboot_policy") {
			d.errorAt("cairn.update.reboot_window", root, "reboot_window is only used with reboot_policy window")
		}
	}
	if h := c.Health; h != nil {
		for i, chk := range h.Checks {
			p := fmt.Sprintf("cairn.health.checks[%d]", i)
			if (chk.Command == nil) == (chk.HTTP == "") && d.has(p) {
				d.errorAt(p, root, "a check needs exactly one of command or http")
			}
		}
	}
	for k := range c.Sysctl {
		if !sysctlRe.MatchString(k) {
			d.errorAt(fmt.Sprintf("cairn.sysctl[%s]", k), root, "%q is not a sysctl name (like net.ipv4.ip_forward)", k)
		}
	}
	for i, m := range c.Modules {
		if !moduleRe.MatchString(m) {
			d.errorAt(fmt.Sprintf("cairn.modules[%d]", i), root, "%q is not a kernel module name", m)
		}
	}
}

func (d *decoder) validateK3s(k *K3s, root *yaml.Node) {
	const p = "cairn.k3s"
	if k.Token != "" && k.TokenFile != "" {
		d.errorAt(p+".token_file", root, "give token or token_file, not both")
	}
	if k.Role == "agent" && k.Server == "" && d.has(p+".role") {
		d.errorAt(p+".role", root, "an agent needs server, the URL of the server to join")
	}
	if k.Role == "agent" && k.ClusterInit {
		d.errorAt(p+".cluster_init", root, "cluster_init is for servers only")
	}
	if k.ClusterInit && k.Server != "" {
		d.errorAt(p+".cluster_init", root, "cluster_init starts a new cluster; it cannot be combined with server")
	}
	if k.Server != "" && k.Token == "" && k.TokenFile == "" {
		d.errorAt(p+".server", root, "joining a server needs token or token_file")
	}
	if k.TokenFile != "" && !strings.HasPrefix(k.TokenFile, "/") {
		d.errorAt(p+".token_file", root, "%q is not an absolute path", k.TokenFile)
	}
	for i, l := range k.NodeLabels {
		if !labelRe.MatchString(l) {
			d.errorAt(fmt.Sprintf("%s.node_labels[%d]", p, i), root, "%q is not a label key=value", l)
		}
	}
	for i, t := range k.NodeTaints {
		if !taintRe.MatchString(t) {
			d.errorAt(fmt.Sprintf("%s.node_taints[%d]", p, i), root, "%q is not a taint key=value:NoSchedule|PreferNoSchedule|NoExecute", t)
		}
	}
	for i, a := range k.ExtraArgs {
		if !strings.HasPrefix(a, "--") {
			d.errorAt(fmt.Sprintf("%s.extra_args[%d]", p, i), root, "%q is not a flag (--name=value)", a)
		}
	}
	for i, img := range k.AirgapImages {
		if !strings.HasPrefix(img, "/") {
			d.errorAt(fmt.Sprintf("%s.airgap_images[%d]", p, i), root, "%q is not an absolute path", img)
		}
	}
}
