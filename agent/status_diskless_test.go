package agent_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/fakedevice"
)

func TestStatusOfADisklessBootNamesTheNetworkAndTheRelease(t *testing.T) {
	root := fakedevice.Root(t, fakedevice.NetbootCmdline, "253:0", fakedevice.Netboot()...)
	boot, err := partitions.Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	st := agent.DisklessSlotStatus(boot, "1.0.0")
	st.Measurement = &agent.MeasurementStatus{Summary: "slot pxe: release 1.0.0, measured, matches signed manifest",
		Measured: true, MatchesManifest: true}
	var text bytes.Buffer
	if err := st.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"booted: network (diskless), release 1.0.0 measured; slot image " + fakedevice.NetbootSlotURL + " on /dev/loop0\n",
		"next boot: whatever the network boot server serves",
		"measured boot: slot pxe: release 1.0.0, measured",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, text.String())
		}
	}
	if strings.Contains(text.String(), "SLOT ") || strings.Contains(text.String(), "booted slot") {
		t.Errorf("a diskless status shows a slot table or boot env:\n%s", text.String())
	}

	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	d, _ := back["diskless"].(map[string]any)
	if back["booted"] != "pxe" || d["release"] != "1.0.0" || d["device"] != "/dev/loop0" ||
		d["slot_url"] != fakedevice.NetbootSlotURL || back["next_boot"] != nil {
		t.Errorf("status JSON: %s", data)
	}
	if slots, ok := back["slots"].([]any); !ok || len(slots) != 0 {
		t.Errorf("status JSON slots = %v, want []", back["slots"])
	}
}
