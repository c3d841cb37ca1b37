package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/cmd/internal/cli"
)

func runBoards(t *testing.T, args ...string) string {
	t.Helper()
	var opts cli.Options
	root := &cobra.Command{Use: "cairn", SilenceUsage: true, SilenceErrors: true}
	opts.Bind(root)
	root.AddCommand(newBoardsCmd(&opts))
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestBoardsListsEveryBoard(t *testing.T) {
	out := runBoards(t, "boards")
	for _, want := range []string{
		"qemu-x86_64     amd64  uefi-grub",
		"rpi4            arm64  u-boot      arm64-uboot  1 GiB  ttyS1,115200    untested",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("boards does not show %q:\n%s", want, out)
		}
	}
}

func TestBoardsJSON(t *testing.T) {
	var got struct {
		Boards []struct {
			Name       string `json:"name"`
			Bootloader string `json:"bootloader"`
			SlotSize   int64  `json:"slot_size"`
		} `json:"boards"`
	}
	if err := json.Unmarshal([]byte(runBoards(t, "boards", "--output", "json")), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Boards) != 4 || got.Boards[1].Name != "qemu-aarch64" || got.Boards[1].Bootloader != "u-boot" || got.Boards[1].SlotSize != 1<<30 {
		t.Errorf("boards json = %+v", got)
	}
}
