package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/daemon"
	"github.com/cairn-edge/cairn/agent/k3s"
	"github.com/cairn-edge/cairn/agent/update"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
	"github.com/cairn-edge/cairn/partitions/fakedevice"
)

// netboot turns the scenario's device into the same machine booted
// diskless: the release of slot A fetched over the network onto loop0
// under dm-verity, the same /etc, and the disk's boot env left in place
// to show that nothing writes it. It returns the boot env's bytes.
func (s *scenario) netboot(t *testing.T) []byte {
	t.Helper()
	root := fakedevice.Root(t, fakedevice.NetbootCmdline, "253:0", fakedevice.Netboot()...)
	boot, err := partitions.Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	next := &device{root: root, boot: boot}
	for from, to := range map[string]string{s.dev.boot.Device: boot.Device, "boot": "boot", "etc/cairn": "etc/cairn"} {
		if err := os.MkdirAll(filepath.Dir(next.path(to)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(s.dev.path(from), next.path(to)); err != nil {
			t.Fatal(err)
		}
	}
	s.dev = next
	env, err := os.ReadFile(next.path(bootstate.DefaultLocation().GrubEnv))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestDisklessBootRunsTheNodeAndRefusesUpdates(t *testing.T) {
	s := newScenario(t)
	grubenv := s.netboot(t)
	d, _ := s.boot()
	ctx := context.Background()
	c := api.NewClient(s.socket)

	waitFor(t, "labels of the diskless boot", s.nodeHas(map[string]string{
		k3s.LabelOSVersion: "1.0.0", k3s.LabelSlot: "pxe", k3s.LabelUpdateState: "idle"}, true))
	waitFor(t, "the health gate's verdict", func() error {
		log, err := os.ReadFile(s.logPath)
		if err == nil && !strings.Contains(string(log), `health gate	{"passed": true`) {
			err = fmt.Errorf("not passed yet")
		}
		return err
	})
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status == nil || st.Diskless == nil || st.Booted != partitions.SlotNetwork || st.Diskless.Release != "1.0.0" ||
		st.Diskless.Device != "/dev/loop0" || st.Diskless.SlotURL != fakedevice.NetbootSlotURL ||
		len(st.Slots) != 0 || st.NextBoot != nil || st.K3s == nil {
		t.Errorf("status of a diskless boot: %+v", st.Status)
	}
	if u := st.Update; u == nil || u.Phase != update.PhaseIdle || u.Reason != daemon.ErrDiskless.Error() || u.LastError != "" {
		t.Errorf("update status of a diskless boot: %+v", u)
	}

	// No second slot, no boot env: every update action says why not.
	if _, err := c.Check(ctx); err == nil || !strings.Contains(err.Error(), daemon.ErrDiskless.Error()) {
		t.Errorf("update check: %v, want %q", err, daemon.ErrDiskless)
	}
	if _, err := c.Apply(ctx); !errors.Is(err, update.ErrNothingToApply) || !strings.Contains(err.Error(), daemon.ErrDiskless.Error()) {
		t.Errorf("update apply: %v, want ErrNothingToApply saying %q", err, daemon.ErrDiskless)
	}
	if _, err := c.Rollback(ctx); !errors.Is(err, update.ErrNoRollback) || !strings.Contains(err.Error(), daemon.ErrDiskless.Error()) {
		t.Errorf("rollback: %v, want ErrNoRollback saying %q", err, daemon.ErrDiskless)
	}
	if d.Engine() != nil {
		t.Errorf("a diskless boot built an update engine")
	}
	if got, err := os.ReadFile(s.dev.path(bootstate.DefaultLocation().GrubEnv)); err != nil || !bytes.Equal(got, grubenv) {
		t.Errorf("the boot env changed on a diskless boot (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(s.varDir, "update/state.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a diskless boot wrote update state: %v", err)
	}
	select {
	case reason := <-s.reboots.reasons:
		t.Errorf("a diskless boot asked for a reboot: %s", reason)
	default:
	}
}
