package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/cmd/internal/cli"
)

func runConfig(t *testing.T, output string, args ...string) (string, error) {
	t.Helper()
	opts := &cli.Options{Output: output}
	cmd := newConfigCmd(opts)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigValidatePrintsEveryErrorAndFails(t *testing.T) {
	ud := writeFile(t, "user-data", "#cloud-config\nhostnme: a\ncairn:\n  k3s:\n    role: sever\n")
	nc := writeFile(t, "network-config", "version: 2\nvlans:\n  v: {id: 5000, link: eth0}\n")
	out, err := runConfig(t, "text", "validate", ud, nc)
	if err == nil {
		t.Fatal("invalid config: want an error (non-zero exit)")
	}
	want := []string{
		ud + `:2:1: unknown key "hostnme" (did you mean "hostname"?)`,
		ud + `:5:11: cairn.k3s.role: "sever" is not one of server, agent (did you mean "server"?)`,
		nc + `:3:11: vlans[v].id: 5000 is out of range 0..4094`,
		nc + `:3:23: vlans[v].link: no interface with ID "eth0"`,
	}
	if got := strings.Split(strings.TrimSpace(out), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
}

func TestConfigValidateJSONListsErrors(t *testing.T) {
	ud := writeFile(t, "user-data", "#cloud-config\ncairn:\n  update: {boot_tries: 0}\n")
	out, err := runConfig(t, "json", "validate", ud)
	if err == nil {
		t.Fatal("want an error")
	}
	var res struct {
		Valid  bool
		Errors []struct {
			File         string
			Line, Column int
			Path         string
			Message      string
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Valid || len(res.Errors) != 1 || res.Errors[0].Line != 3 || res.Errors[0].Column != 24 || res.Errors[0].Path != "cairn.update.boot_tries" {
		t.Fatalf("got %+v", res)
	}
}

func TestConfigValidateAcceptsTheExamples(t *testing.T) {
	dir := filepath.Join("..", "..", "cloud-init", "examples")
	for _, args := range [][]string{
		{filepath.Join(dir, "store-box.yaml")},
		{filepath.Join(dir, "factory-agent", "user-data"), filepath.Join(dir, "factory-agent", "network-config")},
		{filepath.Join(dir, "ha-cluster", "server-1.yaml")},
	} {
		out, err := runConfig(t, "text", append([]string{"validate"}, args...)...)
		if err != nil {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
}

func TestConfigSchemaPrintsJSONSchema(t *testing.T) {
	for _, kind := range []string{"", "network-config"} {
		args := []string{"schema"}
		if kind != "" {
			args = append(args, kind)
		}
		out, err := runConfig(t, "text", args...)
		if err != nil {
			t.Fatal(err)
		}
		var s map[string]any
		if err := json.Unmarshal([]byte(out), &s); err != nil || s["$schema"] == nil || s["properties"] == nil {
			t.Fatalf("%s: not a JSON Schema: %v\n%.200s", kind, err, out)
		}
	}
	if _, err := runConfig(t, "text", "schema", "vendor-data"); err == nil {
		t.Fatal("unknown kind accepted")
	}
}
