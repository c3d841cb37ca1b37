package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/update"
	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
	"github.com/cairn-edge/cairn/partitions/fakedevice"
	"github.com/cairn-edge/cairn/partitions/grubenv"
)

type stubEngine struct{ applied, rolledBack int }

func (s *stubEngine) Status() update.Status {
	return update.Status{State: update.State{Phase: update.PhaseInstalled, Version: "1.2.0", Target: partitions.SlotB,
		SlotVersions: map[partitions.Slot]string{partitions.SlotB: "1.2.0"}}, Policy: update.RebootManual}
}
func (s *stubEngine) CheckNow(context.Context) (*update.Offer, error) {
	return &update.Offer{Channel: "stable", Manifest: &release.Manifest{Version: "1.2.0"}}, nil
}
func (s *stubEngine) Apply(context.Context) error { s.applied++; return nil }
func (s *stubEngine) Rollback(context.Context) error {
	s.rolledBack++
	return fmt.Errorf("rollback to slot B: %w", update.ErrNoRollback)
}

func TestUpdateCommandsTalkToTheAgent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := api.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	eng := &stubEngine{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// What only the running agent knows: its configuration and k3s.
	agentOnly := func() (*agent.Status, error) {
		return &agent.Status{
			Config: &agent.ConfigStatus{InstanceID: "store-42", Sources: []string{"/dev/vdb"}},
			K3s:    &agent.K3sStatus{Running: "v1.36.3+k3s1", LastUpgrade: "none"},
		}, nil
	}
	go (&api.Server{Engine: eng, Slots: agentOnly}).Serve(ctx, ln)

	out, err := runAgent(t, "update", "check", "--socket", sock)
	if err != nil || !strings.Contains(out, "release 1.2.0 found on channel stable") {
		t.Fatalf("update check: %v\n%s", err, out)
	}
	if out, err := runAgent(t, "update", "apply", "--socket", sock); err != nil || eng.applied != 1 || !strings.Contains(out, "rebooting") {
		t.Fatalf("update apply: %v\n%s", err, out)
	}
	if _, err := runAgent(t, "rollback", "--socket", sock); !errors.Is(err, update.ErrNoRollback) || eng.rolledBack != 1 {
		t.Fatalf("rollback: %v", err)
	}

	root := fakedevice.Root(t, "cairn.slot=A", "8:2", fakedevice.SDA()...)
	envPath := filepath.Join(root, "boot/efi/EFI/cairn/grubenv")
	mustWrite(t, envPath, "")
	var vars []grubenv.Var
	for _, v := range bootstate.InitialVars(partitions.SlotA) {
		vars = append(vars, grubenv.Var{Name: v.Name, Value: v.Value})
	}
	if err := grubenv.Create(envPath, vars); err != nil {
		t.Fatal(err)
	}
	out, err = runAgent(t, "status", "--root", root, "--socket", sock)
	if err != nil || !strings.Contains(out, "update: installed 1.2.0 (slot B)") || !strings.Contains(out, "reboot policy: manual") ||
		!strings.Contains(out, "v1.36.3+k3s1") || !strings.Contains(out, "store-42") {
		t.Fatalf("status with the agent running: %v\n%s", err, out)
	}
	cancel()
	out, err = runAgent(t, "status", "--root", root, "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if err != nil || !strings.Contains(out, "update: unknown (the agent is not running)") {
		t.Fatalf("status without the agent: %v\n%s", err, out)
	}
}
