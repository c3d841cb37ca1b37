package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest/signedslot"
	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/fakedevice"
)

// A diskless device has no boot env to read: status names the network
// boot and the release in the fetched image's signed footer.
func TestStatusOnADisklessDevice(t *testing.T) {
	root := fakedevice.Root(t, fakedevice.NetbootCmdline, "253:0", fakedevice.Netboot()...)
	pub := filepath.Join(root, agent.ReleaseKeyPath)
	if err := os.MkdirAll(filepath.Dir(pub), 0o755); err != nil {
		t.Fatal(err)
	}
	key, err := channel.GenerateReleaseKey(filepath.Join(t.TempDir(), "release.key"), pub)
	if err != nil {
		t.Fatal(err)
	}
	signedslot.Write(t, filepath.Join(root, "dev/loop0"), key, "1.0.0", "qemu-x86_64")
	socket := filepath.Join(t.TempDir(), "agent.sock") // no agent runs

	out, err := runAgent(t, "status", "--root", root, "--socket", socket, "--output", "json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var st agent.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --output json is not JSON: %v\n%s", err, out)
	}
	if st.Booted != partitions.SlotNetwork || st.Diskless == nil || st.Diskless.Release != "1.0.0" ||
		st.Diskless.Device != "/dev/loop0" || st.NextBoot != nil || len(st.Slots) != 0 || st.Measurement == nil {
		t.Fatalf("status of a diskless device: %s", out)
	}
	out, err = runAgent(t, "status", "--root", root, "--socket", socket)
	if err != nil || !strings.Contains(out, "booted: network (diskless), release 1.0.0;") {
		t.Fatalf("status text of a diskless device (%v):\n%s", err, out)
	}
}
