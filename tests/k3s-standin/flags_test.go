package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeTestConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnknownCommandLineFlagIsRejectedLikeK3s(t *testing.T) {
	_, err := parseCommand("server", []string{"--config", writeTestConfig(t, ""), "--no-such-flag"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "incorrect usage") || !strings.Contains(err.Error(), "no-such-flag") {
		t.Fatalf("got %v", err)
	}
	// A server-only flag is unknown to an agent.
	_, err = parseCommand("agent", []string{"--config", writeTestConfig(t, ""), "--server", "https://s:6443", "-t", "x", "--cluster-init"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "cluster-init") {
		t.Fatalf("agent --cluster-init: %v", err)
	}
}

func TestConfigFileKeysAreFlagNames(t *testing.T) {
	path := writeTestConfig(t, "token: from-file\nnode-name: file-node\nnode-label:\n  - a=1\n  - b=2\n"+
		"node-label+:\n  - c=3\ncluster-init: true\nhttps-listen-port: 7443\nno-such-key: x\nwrite-kubeconfig-mode: \"0644\"\n")
	if err := os.MkdirAll(path+".d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path+".d", "10-extra.yaml"), []byte("tls-san: [box.local]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	c, err := parseCommand("server", []string{"-c", path, "--node-name", "cli-node"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "from-file" || c.nodeName != "cli-node" || !c.clusterInit || c.httpsPort != 7443 || c.kubeconfigMode != "0644" {
		t.Errorf("parsed %+v", c)
	}
	if !slices.Equal(c.nodeLabels, []string{"a=1", "b=2", "c=3"}) || !slices.Equal(c.tlsSANs, []string{"box.local"}) {
		t.Errorf("labels %v, sans %v", c.nodeLabels, c.tlsSANs)
	}
	if !strings.Contains(stderr.String(), "Unknown flag --no-such-key") {
		t.Errorf("no warning for an unknown key: %q", stderr.String())
	}
}

func TestMissingConfigFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.yaml")
	if _, err := parseCommand("server", []string{"--config=" + missing}, &bytes.Buffer{}); err == nil {
		t.Fatal("an explicit missing config file was accepted")
	}
	if _, err := parseCommand("agent", []string{"--config=" + writeTestConfig(t, "")}, &bytes.Buffer{}); err == nil {
		t.Fatal("agent without --server and --token was accepted")
	}
}

func TestKubeletArgLastValueWins(t *testing.T) {
	c := &config{kubeletArgs: []string{"healthz-port=1", "--max-pods=5", "healthz-port=2"}}
	if got := c.kubeletArg("healthz-port", "10248"); got != "2" {
		t.Errorf("healthz-port %q", got)
	}
	if got := c.kubeletArg("healthz-bind-address", "127.0.0.1"); got != "127.0.0.1" {
		t.Errorf("default %q", got)
	}
}
