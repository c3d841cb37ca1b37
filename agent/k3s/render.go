// Package k3s runs Kubernetes on the device: it renders k3s's configuration,
// launches and supervises k3s, decides whether it is ready, and upgrades it
// with a way back.
package k3s

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

// Role is what k3s runs as: "server" or "agent".
type Role string

// The two k3s subcommands Cairn runs.
const (
	RoleServer Role = "server"
	RoleAgent  Role = "agent"
)

// Label keys Cairn puts on every node it renders.
const (
	LabelOSVersion = "cairn.dev/os-version"
	LabelSlot      = "cairn.dev/slot"
)

// ErrInvalidSpec is wrapped by every error about a Spec that cannot be
// rendered.
var ErrInvalidSpec = errors.New("invalid k3s configuration")

// Secret is a value that must never reach a log: it prints as a mask.
type Secret string

// String masks the secret so that %v and %s never show it.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "********"
}

// GoString masks the secret for %#v.
func (s Secret) GoString() string { return `k3s.Secret("********")` }

// Spec is the desired k3s configuration of this node.
type Spec struct {
	Role        Role
	ClusterInit bool   // server only: start a new embedded-etcd cluster
	Server      string // URL of a server to join
	Token       Secret // written to the token file
	TokenFile   string // the operator's own token file, used as is
	NodeLabels  []string
	NodeTaints  []string
	ExtraArgs   []string // --flag=value, as k3s takes them
	Registries  Registries
	// AirgapImages are image tarballs (.tar, .tar.zst) imported into
	// containerd's k8s.io namespace.
	AirgapImages []string
}

// SpecFromConfig turns the cairn.k3s section of the device config into a
// Spec. The config has already been validated by package cloudinit.
func SpecFromConfig(c *cloudinit.K3s) Spec {
	s := Spec{
		Role:         Role(c.Role),
		ClusterInit:  c.ClusterInit,
		Server:       string(c.Server),
		Token:        Secret(c.Token),
		TokenFile:    c.TokenFile,
		NodeLabels:   append([]string(nil), c.NodeLabels...),
		NodeTaints:   append([]string(nil), c.NodeTaints...),
		ExtraArgs:    append([]string(nil), c.ExtraArgs...),
		AirgapImages: append([]string(nil), c.AirgapImages...),
	}
	for host, m := range c.Registries {
		if s.Registries.Mirrors == nil {
			s.Registries.Mirrors = map[string]Mirror{}
		}
		var eps []string
		for _, e := range m.Endpoints {
			eps = append(eps, string(e))
		}
		s.Registries.Mirrors[host] = Mirror{Endpoints: eps}
	}
	return s
}

// Node is what Cairn knows about the running OS and publishes as labels.
type Node struct {
	OSVersion string // release version of the booted slot
	Slot      string // booted slot, "a" or "b"
}

// Paths says where the rendered files live.
type Paths struct {
	Config     string // k3s config file
	Registries string // k3s private registry file
	Token      string // token file written from Spec.Token
	ImageList  string // list of air-gap tarballs, read by Cairn's importer
}

// DefaultPaths are the paths on a device: k3s's defaults under /etc, Cairn's
// own files on /var.
func DefaultPaths() Paths {
	return Paths{
		Config:     "/etc/rancher/k3s/config.yaml",
		Registries: "/etc/rancher/k3s/registries.yaml",
		Token:      "/var/lib/cairn/k3s/token",
		ImageList:  "/var/lib/cairn/k3s/airgap-images.list",
	}
}

// File is one rendered file. A nil Data means the file must not exist.
type File struct {
	Path string
	Data []byte
	Mode uint32
	// ReadByK3s is set for files k3s reads at start: a change to them needs
	// a k3s restart.
	ReadByK3s bool
}

// Render turns the spec into the files k3s and the image importer read.
// It does no I/O. The config file always comes first.
func Render(s Spec, n Node, p Paths) ([]File, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	labels, err := nodeLabels(s, n)
	if err != nil {
		return nil, err
	}
	cfg, err := renderConfig(s, labels, p)
	if err != nil {
		return nil, err
	}
	files := []File{{Path: p.Config, Data: cfg, Mode: 0o600, ReadByK3s: true}}
	reg := File{Path: p.Registries, Mode: 0o600, ReadByK3s: true}
	if !s.Registries.empty() {
		if reg.Data, err = s.Registries.render(); err != nil {
			return nil, err
		}
	}
	tok := File{Path: p.Token, Mode: 0o600, ReadByK3s: true}
	if s.Token != "" {
		tok.Data = []byte(string(s.Token) + "\n")
	}
	files = append(files, reg, tok, File{Path: p.ImageList, Data: renderImageList(s.AirgapImages), Mode: 0o644})
	return files, nil
}

func (s Spec) check() error {
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidSpec, key, fmt.Sprintf(format, a...))
	}
	switch {
	case s.Role != RoleServer && s.Role != RoleAgent:
		return bad("role", "%q is neither server nor agent", s.Role)
	case s.Role == RoleAgent && s.Server == "":
		return bad("server", "an agent needs the URL of a server to join")
	case s.ClusterInit && (s.Role != RoleServer || s.Server != ""):
		return bad("cluster_init", "only a server that joins no other server starts a cluster")
	case s.Token != "" && s.TokenFile != "":
		return bad("token_file", "give token or token_file, not both")
	case s.Server != "" && s.Token == "" && s.TokenFile == "":
		return bad("server", "joining a server needs a token")
	case s.Server != "" && !strings.HasPrefix(s.Server, "https://"):
		return bad("server", "%q is not an https URL", s.Server)
	case s.TokenFile != "" && !filepath.IsAbs(s.TokenFile):
		return bad("token_file", "%q is not an absolute path", s.TokenFile)
	case strings.ContainsAny(string(s.Token), "\n\r"):
		return bad("token", "contains a line break")
	}
	for i, img := range s.AirgapImages {
		if !filepath.IsAbs(img) || strings.Contains(img, "\n") {
			return bad(fmt.Sprintf("airgap_images[%d]", i), "%q is not an absolute path", img)
		}
	}
	return nil
}

// nodeLabels adds Cairn's own labels after the operator's. An operator label
// with one of Cairn's keys is an error rather than silently overridden.
func nodeLabels(s Spec, n Node) ([]string, error) {
	out := make([]string, 0, len(s.NodeLabels)+2)
	for i, l := range s.NodeLabels {
		k, _, _ := strings.Cut(l, "=")
		if k == LabelOSVersion || k == LabelSlot {
			return nil, fmt.Errorf("%w: node_labels[%d]: %s is set by Cairn", ErrInvalidSpec, i, k)
		}
		out = append(out, l)
	}
	for _, kv := range [][2]string{{LabelOSVersion, labelValue(n.OSVersion)}, {LabelSlot, labelValue(n.Slot)}} {
		if kv[1] != "" {
			out = append(out, kv[0]+"="+kv[1])
		}
	}
	return out, nil
}

// labelValue makes s a valid Kubernetes label value: characters outside
// [A-Za-z0-9._-] (like the + of semver build metadata) become '_', the ends
// are trimmed to alphanumerics and the length to 63. A version that k3s
// rejected as a label would keep k3s from starting at all.
func labelValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	alnum := func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}
	return strings.TrimFunc(string(b), alnum)
}

func renderImageList(images []string) []byte {
	var b strings.Builder
	b.WriteString("# air-gap image tarballs, imported into containerd's k8s.io namespace\n")
	for _, img := range images {
		b.WriteString(img)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
