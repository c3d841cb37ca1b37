package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// The device's own config phase: image defaults are read, user-data is
// applied to the host tree, runcmd runs after the network on the first boot
// of an instance only, and status shows where the configuration came from.
func TestDeviceConfigPhaseAppliesUserDataAndRunsFirstBootOnce(t *testing.T) {
	root := t.TempDir()
	defaults := filepath.Join(root, "usr/share/cairn/cloud-init")
	marker := filepath.Join(root, "var/lib/ran")
	write(t, filepath.Join(defaults, "meta-data"), "instance-id: store-42\n")
	write(t, filepath.Join(defaults, "user-data"), `#cloud-config
write_files:
  - path: /var/lib/plc/plc.conf
    permissions: "0640"
    content: "plc_address = 10.20.30.5\n"
runcmd:
  - ["sh", "-c", "echo once >> `+marker+`"]
`)
	write(t, filepath.Join(root, "proc/cmdline"), "console=ttyS0 cairn.slot=A\n")

	for boot := 1; boot <= 2; boot++ {
		d := New(Config{Root: root, Log: zap.NewNop()})
		cfg, err := d.loadConfig(context.Background())
		if err != nil {
			t.Fatalf("boot %d: %v", boot, err)
		}
		if err := d.applyHost(context.Background(), cfg); err != nil {
			t.Fatalf("boot %d: host: %v", boot, err)
		}
		d.firstBootCommands(context.Background())
		st := d.configStatus()
		if st == nil || st.InstanceID != "store-42" || len(st.Errors) != 0 || len(st.Sources) == 0 {
			t.Fatalf("boot %d: config status %+v", boot, st)
		}
	}
	got, err := os.ReadFile(filepath.Join(root, "var/lib/plc/plc.conf"))
	if err != nil || string(got) != "plc_address = 10.20.30.5\n" {
		t.Fatalf("write_files: %q, %v", got, err)
	}
	ran, err := os.ReadFile(marker)
	if err != nil || strings.Count(string(ran), "once") != 1 {
		t.Fatalf("runcmd ran %q times (%v), want once over two boots", ran, err)
	}
}

// An invalid new configuration is not applied: the last good one is, and
// status names the error.
func TestInvalidConfigKeepsTheLastGoodOneAndShowsTheError(t *testing.T) {
	root := t.TempDir()
	defaults := filepath.Join(root, "usr/share/cairn/cloud-init")
	write(t, filepath.Join(defaults, "meta-data"), "instance-id: store-42\n")
	write(t, filepath.Join(defaults, "user-data"), "#cloud-config\ncairn:\n  update:\n    channel: stable\n")
	write(t, filepath.Join(root, "proc/cmdline"), "cairn.slot=A\n")
	d := New(Config{Root: root, Log: zap.NewNop()})
	if _, err := d.loadConfig(context.Background()); err != nil {
		t.Fatal(err)
	}

	write(t, filepath.Join(defaults, "user-data"), "#cloud-config\ncairn:\n  update:\n    chanel: beta\n")
	d = New(Config{Root: root, Log: zap.NewNop()})
	cfg, err := d.loadConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if u := cfg.UserData.Cairn.Update; u == nil || u.Channel != "stable" {
		t.Fatalf("applied config: %+v, want the last good one with channel stable", u)
	}
	st := d.configStatus()
	if st == nil || len(st.Errors) == 0 || !strings.Contains(st.Errors[0], "chanel") {
		t.Fatalf("status does not show the refused key: %+v", st)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
