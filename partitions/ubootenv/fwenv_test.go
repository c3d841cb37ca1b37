package ubootenv

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const testSize = 0x4000

// fwTool runs fw_printenv or fw_setenv (Debian libubootenv-tool). Without it
// the test fails, except under -short.
func fwTool(t *testing.T, tool string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		if testing.Short() {
			t.Skipf("%s not installed (scripts/install-deps.sh installs libubootenv-tool)", tool)
		}
		t.Fatalf("%s not installed: run scripts/install-deps.sh: %v", tool, err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", tool, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func fwPrintenv(t *testing.T, cfg string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(fwTool(t, "fw_printenv", "-c", cfg)), "\n") {
		if n, v, ok := strings.Cut(l, "="); ok {
			vars[n] = v
		}
	}
	return vars
}

// setup makes a zeroed image file and a fw_env.config for it with one or
// two copies of testSize bytes. The first line gives the size without 0x,
// which fw_setenv reads as hexadecimal, as ParseConfig does.
func setup(t *testing.T, copies int) (cfg, img string, locs []Location) {
	t.Helper()
	dir := t.TempDir()
	img = filepath.Join(dir, "env.img")
	if err := os.WriteFile(img, make([]byte, 2*testSize), 0o644); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("# test environment\n%s 0 %x\n", img, testSize)
	if copies == 2 {
		text += fmt.Sprintf("%s %#x %#x 0x1000\n", img, testSize, testSize)
	}
	cfg = filepath.Join(dir, "fw_env.config")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	locs, err := ParseConfig(cfg, strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, img, locs
}

func openEnv(t *testing.T, locs []Location) *Env {
	t.Helper()
	env, err := Open(locs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	return env
}

func readCopy(t *testing.T, img string, i int) []byte {
	t.Helper()
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return data[i*testSize : (i+1)*testSize]
}

func TestSingleCopyWeAndFwSetenvReadEachOther(t *testing.T) {
	cfg, img, locs := setup(t, 1)
	want := map[string]string{"cairn_a_priority": "1", "bootcmd": "run distro_bootcmd; echo a=b"}
	if err := Create(locs, want); err != nil {
		t.Fatal(err)
	}
	if got := fwPrintenv(t, cfg); !maps.Equal(got, want) {
		t.Errorf("fw_printenv after Create = %q, want %q", got, want)
	}
	fwTool(t, "fw_setenv", "-c", cfg, "cairn_a_tries", "3")
	want["cairn_a_tries"] = "3"
	env := openEnv(t, locs)
	if got, err := env.Vars(); err != nil || !maps.Equal(got, want) {
		t.Errorf("Vars after fw_setenv = %q, %v; want %q", got, err, want)
	}
	theirs := readCopy(t, img, 0)
	if ours, _ := Encode(want, testSize, false, 0); !bytes.Equal(ours, theirs) {
		t.Errorf("fw_setenv wrote other bytes than Encode: %q", theirs[:80])
	}
	if err := env.Set("cairn_a_tries", "2"); err != nil {
		t.Fatal(err)
	}
	if err := env.Set("bootcmd", ""); err != nil {
		t.Fatal(err)
	}
	want["cairn_a_tries"] = "2"
	delete(want, "bootcmd")
	if got := fwPrintenv(t, cfg); !maps.Equal(got, want) {
		t.Errorf("fw_printenv after Set = %q, want %q", got, want)
	}
}

// We and fw_setenv take turns writing a redundant pair whose flag starts
// at 253, so the counter wraps from 255 to 0 on the way: every write must go
// to the other copy with the flag advanced, and both readers must agree.
func TestRedundantWritersTakeTurnsPastFlagWrap(t *testing.T) {
	cfg, img, locs := setup(t, 2)
	want := map[string]string{"cairn_a_ok": "1", "cairn_b_ok": "0"}
	first, err := Encode(want, testSize, true, 253)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(first, 0); err != nil { // copy 1 stays zeros: bad CRC
		t.Fatal(err)
	}
	f.Close()
	env := openEnv(t, locs)
	cur, flag := 0, byte(253)
	var flags []byte
	for round := range 8 {
		value := fmt.Sprint(round)
		if round%2 == 0 {
			if err := env.Set("round", value); err != nil {
				t.Fatal(err)
			}
		} else {
			fwTool(t, "fw_setenv", "-c", cfg, "round", value)
		}
		want["round"] = value
		cur, flag = 1-cur, flag+1
		written := readCopy(t, img, cur)
		if written[4] != flag {
			t.Fatalf("round %d wrote copy %d with flag %d, want %d", round, cur, written[4], flag)
		}
		if ours, _ := Encode(want, testSize, true, flag); !bytes.Equal(ours, written) {
			t.Errorf("round %d: copy %d differs from Encode: %q", round, cur, written[:64])
		}
		flags = append(flags, flag)
		if got := fwPrintenv(t, cfg); !maps.Equal(got, want) {
			t.Fatalf("round %d: fw_printenv = %q, want %q", round, got, want)
		}
		if got, err := env.Vars(); err != nil || !maps.Equal(got, want) {
			t.Fatalf("round %d: Vars = %q, %v; want %q", round, got, err, want)
		}
	}
	if !bytes.Contains(flags, []byte{255, 0}) {
		t.Errorf("flags %v never wrapped from 255 to 0", flags)
	}
}

func TestCorruptNewerCopyFallsBackToTheOtherForBothReaders(t *testing.T) {
	cfg, img, locs := setup(t, 2)
	old := map[string]string{"cairn_a_priority": "2", "cairn_b_priority": "1"}
	if err := Create(locs, old); err != nil {
		t.Fatal(err)
	}
	env := openEnv(t, locs)
	if err := env.Set("cairn_b_priority", "3"); err != nil { // writes copy 1, flag 2
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), testSize+6); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := fwPrintenv(t, cfg); !maps.Equal(got, old) {
		t.Errorf("fw_printenv with copy 1 corrupt = %q, want %q", got, old)
	}
	if got, err := env.Vars(); err != nil || !maps.Equal(got, old) {
		t.Errorf("Vars with copy 1 corrupt = %q, %v; want %q", got, err, old)
	}
	// The next write goes to the corrupt copy, over the one readers use.
	if err := env.Set("cairn_a_ok", "1"); err != nil {
		t.Fatal(err)
	}
	old["cairn_a_ok"] = "1"
	if got := fwPrintenv(t, cfg); !maps.Equal(got, old) {
		t.Errorf("fw_printenv after repair = %q, want %q", got, old)
	}
	if readCopy(t, img, 1)[4] != 2 {
		t.Errorf("repair did not go to copy 1 with flag 2")
	}
}
