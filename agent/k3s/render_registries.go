package k3s

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"
)

// Registries is k3s's registries.yaml: mirrors by registry host name and the
// credentials and TLS settings by mirror host.
type Registries struct {
	Mirrors map[string]Mirror         `yaml:"mirrors,omitempty"`
	Configs map[string]RegistryConfig `yaml:"configs,omitempty"`
}

// Mirror lists the endpoints that serve one registry, tried in order, and
// the repository rewrites applied when pulling through them.
type Mirror struct {
	Endpoints []string          `yaml:"endpoint,omitempty"`
	Rewrites  map[string]string `yaml:"rewrite,omitempty"`
}

// RegistryConfig is how to talk to one registry or mirror host.
type RegistryConfig struct {
	Auth *RegistryAuth `yaml:"auth,omitempty"`
	TLS  *RegistryTLS  `yaml:"tls,omitempty"`
}

// RegistryAuth are the credentials for one host.
type RegistryAuth struct {
	Username      string `yaml:"username,omitempty"`
	Password      Secret `yaml:"password,omitempty"`
	Auth          Secret `yaml:"auth,omitempty"`
	IdentityToken Secret `yaml:"identity_token,omitempty"`
}

// RegistryTLS are the TLS settings for one host: files on the device.
type RegistryTLS struct {
	CertFile           string `yaml:"cert_file,omitempty"`
	KeyFile            string `yaml:"key_file,omitempty"`
	CAFile             string `yaml:"ca_file,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty"`
}

func (r Registries) empty() bool { return len(r.Mirrors) == 0 && len(r.Configs) == 0 }

// MarshalYAML writes the secret itself: only files get the real value.
func (s Secret) MarshalYAML() (any, error) { return string(s), nil }

func (r Registries) render() ([]byte, error) {
	for host, m := range r.Mirrors {
		if len(m.Endpoints) == 0 {
			return nil, fmt.Errorf("%w: registries[%s]: no endpoints", ErrInvalidSpec, host)
		}
	}
	var b bytes.Buffer
	b.WriteString("# Written by cairn-agent from the device config; edits are overwritten.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	// yaml.v3 sorts map keys, so the same registries give the same bytes.
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("k3s registries: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("k3s registries: %w", err)
	}
	return b.Bytes(), nil
}
