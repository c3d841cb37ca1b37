package cloudinit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The examples are what operators copy; every one must validate, and each
// directory must resolve as one device's seed.
func TestExamplesValidate(t *testing.T) {
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("examples/*/*.yaml")
	files = append(files, more...)
	dirs, _ := filepath.Glob("examples/*/user-data")
	if len(files) < 4 || len(dirs) < 1 {
		t.Fatalf("examples missing: %v %v", files, dirs)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseUserData(f, b); err != nil {
			t.Errorf("%s:\n%v", f, err)
		}
	}
	for _, ud := range dirs {
		s, err := ReadSeedDir(filepath.Dir(ud))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := Resolve(s)
		if err != nil {
			t.Errorf("%s:\n%v", s.Origin, err)
			continue
		}
		if cfg.Network == nil {
			t.Errorf("%s: want a network-config", s.Origin)
		}
	}
}

func TestFactoryAgentExampleIsAStaticVLANAgent(t *testing.T) {
	s, err := ReadSeedDir("examples/factory-agent")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Resolve(s)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := cfg.Network.VLANs["prod30"]
	if !ok || v.ID != 30 || v.Link != "uplink" || v.Addresses[0].String() != "10.20.30.17/24" {
		t.Fatalf("vlan = %+v", v)
	}
	if r := v.Routes[0]; !r.To.Default || r.Via.String() != "10.20.30.254" || r.Metric != 100 {
		t.Fatalf("route = %+v", r)
	}
	if k := cfg.UserData.Cairn.K3s; k.Role != "agent" || k.Server != "https://10.20.30.1:6443" {
		t.Fatalf("k3s = %+v", k)
	}
}

func TestSchemaCoversEveryKeyTheParserKnows(t *testing.T) {
	for _, kind := range []string{"user-data", "network-config", "meta-data"} {
		b, err := Schema(kind)
		if err != nil {
			t.Fatal(err)
		}
		var s map[string]any
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		for _, key := range Keys(kind) {
			if !schemaHas(s, strings.Split(key, ".")) {
				t.Errorf("%s: schema lacks %s", kind, key)
			}
		}
	}
	if _, err := Schema("vendor-data"); err == nil {
		t.Error("unknown kind accepted")
	}
}

// schemaHas follows a key path through properties, items and
// additionalProperties ("[]" levels).
func schemaHas(s map[string]any, path []string) bool {
	if items, ok := s["items"].(map[string]any); ok {
		return schemaHas(items, path)
	}
	if len(path) == 0 {
		return true
	}
	key, isMap := strings.CutSuffix(path[0], "[]")
	props, _ := s["properties"].(map[string]any)
	p, ok := props[key].(map[string]any)
	if !ok {
		return false
	}
	if isMap {
		p, ok = p["additionalProperties"].(map[string]any)
		if !ok {
			return false
		}
	}
	return schemaHas(p, path[1:])
}

// docs/config.md is the reference: every key must appear there.
func TestConfigReferenceDocumentsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"user-data", "network-config", "meta-data"} {
		for _, key := range Keys(kind) {
			// Keys every interface kind shares are documented once, without
			// the "vlans[]." prefix.
			_, shared, _ := strings.Cut(key, "[].")
			if !strings.Contains(string(doc), "`"+key+"`") && (shared == "" || !strings.Contains(string(doc), "`"+shared+"`")) {
				t.Errorf("docs/config.md lacks %s key `%s`", kind, key)
			}
		}
	}
}
