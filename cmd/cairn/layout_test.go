package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/partitions"
)

// runLayout runs `cairn layout ARGS...` and returns what it printed.
func runLayout(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var opts cli.Options
	root := &cobra.Command{Use: "cairn", SilenceUsage: true, SilenceErrors: true}
	opts.Bind(root)
	root.AddCommand(newLayoutCmd(&opts))
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestLayoutListNamesEveryShippedLayout(t *testing.T) {
	out, err := runLayout(t, "layout", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"x86_64-uefi  2642 MiB", "arm64-uboot  2721 MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("list does not show %q:\n%s", want, out)
		}
	}
}

func TestLayoutShowPrintsThePlanAsJSON(t *testing.T) {
	out, err := runLayout(t, "--output", "json", "layout", "show", "x86_64-uefi", "--disk-size", "8GiB")
	if err != nil {
		t.Fatal(err)
	}
	var got partitions.Plan
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	l, _ := partitions.LoadLayout("x86_64-uefi")
	want, _ := l.Plan(8<<30, true)
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("show printed\n %+v\nwant\n %+v", got, *want)
	}
}

func TestLayoutShowWithoutOptionalAsText(t *testing.T) {
	out, err := runLayout(t, "layout", "show", "arm64-uboot", "--with-optional=false")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "CIDATA") || !strings.Contains(out, "layout arm64-uboot on 2705 MiB") ||
		!regexpMatch(`(?m)^4\s+CAIRN_STATE\s+linux-generic\s+4489216\s+5537791\s+512 MiB\s`, out) {
		t.Errorf("show:\n%s", out)
	}
}

func TestLayoutShowSaysHowMuchTheDiskIsShort(t *testing.T) {
	_, err := runLayout(t, "layout", "show", "x86_64-uefi", "--disk-size", "2GiB")
	if !errors.Is(err, partitions.ErrDoesNotFit) || !strings.Contains(err.Error(), "594 MiB short") {
		t.Errorf("err = %v", err)
	}
	_, err = runLayout(t, "layout", "show", "x86_64-uefi", "--disk-size", "2GB")
	if err == nil || !strings.Contains(err.Error(), "--disk-size: size \"2GB\"") {
		t.Errorf("decimal size: %v", err)
	}
	_, err = runLayout(t, "layout", "show", "pdp11")
	if !errors.Is(err, partitions.ErrUnknownLayout) {
		t.Errorf("unknown layout: %v", err)
	}
}

func TestLayoutWriteMakesAnImageThatReadsBackAsThePlan(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.img")
	out, err := runLayout(t, "layout", "write", "arm64-uboot", "--size", "4GiB", "--seed", "1.0.0", img)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "wrote "+img+"\nlayout arm64-uboot on 4 GiB") {
		t.Errorf("write printed:\n%s", out)
	}
	got, err := partitions.ReadTable(img)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := partitions.LoadLayout("arm64-uboot")
	want, _ := l.Plan(4<<30, true)
	want.Seed("1.0.0")
	if !reflect.DeepEqual(got, want.Partitions) {
		t.Errorf("image holds\n %+v\nwant\n %+v", got, want.Partitions)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
