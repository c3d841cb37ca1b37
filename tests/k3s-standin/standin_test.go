package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/tests/k3s-standin/k3stest"
)

func needK3s(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a k3s server (kube-apiserver); skipped under -short")
	}
}

func k3sCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, env := k3stest.Binary(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestEtcdSnapshotSaveOnAClusterInitServer(t *testing.T) {
	needK3s(t)
	s := k3stest.StartServer(t, "snap", "--cluster-init")
	dir := filepath.Join(t.TempDir(), "snaps")
	out, err := k3sCommand(t, "etcd-snapshot", "save", "--data-dir", s.DataDir, "--dir", dir, "--name", "pre-upgrade")
	if err != nil {
		t.Fatalf("etcd-snapshot save: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "pre-upgrade-") {
		t.Fatalf("snapshots %v, %v", entries, err)
	}
	info, _ := entries[0].Info()
	if info.Size() < 4096 {
		t.Fatalf("snapshot of %d bytes", info.Size())
	}
}

func TestEtcdSnapshotNeedsEtcd(t *testing.T) {
	needK3s(t)
	out, err := k3sCommand(t, "etcd-snapshot", "save", "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(out, "etcd datastore disabled") {
		t.Fatalf("got %v: %s", err, out)
	}
}

func TestAgentWithAWrongTokenIsRefused(t *testing.T) {
	needK3s(t)
	s := k3stest.StartServer(t, "token-check")
	out, err := k3sCommand(t, "agent", "--config", filepath.Join(t.TempDir(), "none.yaml"))
	if err == nil {
		t.Fatalf("agent started with a missing config file: %s", out)
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("data-dir: "+t.TempDir()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = k3sCommand(t, "agent", "--config", cfg, "--server", s.URL, "--token", "wrong")
	if err == nil || !strings.Contains(out, "401 Unauthorized") {
		t.Fatalf("got %v: %s", err, out)
	}
}

func TestVersionAndUnknownFlags(t *testing.T) {
	needK3s(t)
	out, err := k3sCommand(t, "--version")
	if err != nil || !strings.HasPrefix(out, "k3s version v") {
		t.Fatalf("--version: %v %q", err, out)
	}
	out, err = k3sCommand(t, "server", "--data-dir", t.TempDir(), "--frobnicate")
	if err == nil || !strings.Contains(out, "frobnicate") {
		t.Fatalf("unknown flag: %v %q", err, out)
	}
}
