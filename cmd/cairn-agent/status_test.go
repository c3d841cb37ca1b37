package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
	"github.com/cairn-edge/cairn/partitions/fakedevice"
	"github.com/cairn-edge/cairn/partitions/ubootenv"
)

func runAgent(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestStatusOnAUBootDevice(t *testing.T) {
	root := fakedevice.Root(t, "console=ttyAMA0 cairn.slot=A", "8:2", fakedevice.SDA()...)
	// Two redundant env copies in one file, named by fw_env.config as on a board.
	envFile := filepath.Join(root, "dev", "mmcblk0boot1")
	cfg := "# device offset size\n/dev/mmcblk0boot1 0x0 0x4000\n/dev/mmcblk0boot1 0x4000 0x4000\n"
	mustWrite(t, filepath.Join(root, "etc", "fw_env.config"), cfg)
	mustWrite(t, envFile, strings.Repeat("\x00", 0x8000))
	vars := map[string]string{}
	for _, v := range bootstate.InitialVars(partitions.SlotA) {
		vars[v.Name] = v.Value
	}
	if err := ubootenv.Create([]ubootenv.Location{
		{Device: envFile, Offset: 0, Size: 0x4000},
		{Device: envFile, Offset: 0x4000, Size: 0x4000},
	}, vars); err != nil {
		t.Fatal(err)
	}

	out, err := runAgent(t, "status", "--root", root, "--output", "json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var st agent.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --output json is not JSON: %v\n%s", err, out)
	}
	if st.Bootloader != "u-boot" || st.Booted != partitions.SlotA || st.NextBoot == nil ||
		st.NextBoot.Slot != partitions.SlotA || st.NextBoot.Trial || !st.Slots[0].OK || st.Slots[1].Priority != 0 {
		t.Fatalf("status of a fresh U-Boot device: %s", out)
	}
}

func TestStatusOnAMachineThatIsNotCairnFails(t *testing.T) {
	root := fakedevice.Root(t, "BOOT_IMAGE=/vmlinuz root=/dev/sda2 ro", "8:2", fakedevice.SDA()...)
	out, err := runAgent(t, "status", "--root", root)
	if !errors.Is(err, partitions.ErrNotCairnDevice) {
		t.Fatalf("status on a non-Cairn machine: err %v, output %s", err, out)
	}
	if !strings.Contains(out, "cairn.slot=") {
		t.Errorf("the message does not say what is missing: %s", out)
	}
}

func TestStatusWithoutABootEnvNamesWhereItLooked(t *testing.T) {
	root := fakedevice.Root(t, "cairn.slot=B", "8:3", fakedevice.SDA()...)
	out, err := runAgent(t, "status", "--root", root)
	if !errors.Is(err, bootstate.ErrNoBootEnv) || !strings.Contains(out, "grubenv") {
		t.Fatalf("status without a boot env: err %v, output %s", err, out)
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
