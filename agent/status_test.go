package agent_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/bootstate"
	"github.com/cairn-edge/cairn/partitions/fakedevice"
	"github.com/cairn-edge/cairn/partitions/grubenv"
)

func TestStatusShowsTheTrialAndTheNextBoot(t *testing.T) {
	root := fakedevice.Root(t, "console=ttyS0 cairn.slot=A", "8:2", fakedevice.SDA()...)
	boot, err := partitions.Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/grubenv"
	var vars []grubenv.Var
	for _, v := range bootstate.InitialVars(partitions.SlotA) {
		vars = append(vars, grubenv.Var{Name: v.Name, Value: v.Value})
	}
	if err := grubenv.Create(path, vars); err != nil {
		t.Fatal(err)
	}
	env, err := grubenv.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	if err := bootstate.New(env).SetTrial(partitions.SlotB, 3); err != nil {
		t.Fatal(err)
	}

	st, err := agent.SlotStatus(boot, agent.BootEnv{Kind: "grub", Path: path, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := st.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"booted slot A",
		"next boot: slot B, on trial (2 tries left after it)",
		"A     /dev/sda2  -        1         0      yes  yes     no",
		"B     /dev/sda3  -        2         3      no   no      yes",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, text.String())
		}
	}

	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back agent.Status
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.NextBoot == nil || back.NextBoot.Slot != partitions.SlotB || !back.NextBoot.Trial ||
		len(back.Slots) != 2 || back.Slots[1].Partition != "/dev/sda3" || !back.Slots[0].Booted {
		t.Fatalf("status JSON: %s", data)
	}
}
