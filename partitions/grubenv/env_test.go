package grubenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// grubEditenv runs the real grub-editenv (Debian grub2-common). Without it
// the test fails, except under -short.
func grubEditenv(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("grub-editenv")
	if err != nil {
		if testing.Short() {
			t.Skip("grub-editenv not installed (scripts/install-deps.sh installs grub2-common)")
		}
		t.Fatalf("grub-editenv not installed: run scripts/install-deps.sh: %v", err)
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("grub-editenv %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// listed parses `grub-editenv FILE list` output into sorted "name=value" lines.
func listed(out string) []string {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	sort.Strings(lines)
	return lines
}

func sortedPairs(vars map[string]string) []string {
	var out []string
	for n, v := range vars {
		out = append(out, n+"="+v)
	}
	sort.Strings(out)
	return out
}

// oracleValues are values grub-editenv handles on its command line and in
// its list output (one line each, so no newlines).
var oracleValues = []Var{
	{"cairn_a_priority", "1"},
	{"cairn_a_tries", "3"},
	{"spaces", "a value with  spaces "},
	{"equals", "k=v=w"},
	{"backslashes", `C:\path\\x\`},
	{"empty", ""},
}

func TestGrubEditenvReadsWhatWeWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grubenv")
	if err := Create(path, oracleValues[:2]); err != nil {
		t.Fatal(err)
	}
	env, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	want := map[string]string{}
	for _, v := range oracleValues {
		if err := env.Set(v.Name, v.Value); err != nil {
			t.Fatal(err)
		}
		want[v.Name] = v.Value
	}
	if err := env.Set("cairn_a_tries", "2"); err != nil {
		t.Fatal(err)
	}
	want["cairn_a_tries"] = "2"
	got := listed(grubEditenv(t, path, "list"))
	if w := sortedPairs(want); strings.Join(got, "\n") != strings.Join(w, "\n") {
		t.Errorf("grub-editenv list:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
	}
}

func TestWeReadWhatGrubEditenvWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grubenv")
	grubEditenv(t, path, "create")
	args := []string{path, "set"}
	for _, v := range oracleValues {
		args = append(args, v.Name+"="+v.Value)
	}
	grubEditenv(t, args...)
	grubEditenv(t, path, "set", "cairn_a_tries=2", "late=x")
	grubEditenv(t, path, "unset", "equals")

	env, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	got, err := env.Vars()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, v := range oracleValues {
		want[v.Name] = v.Value
	}
	want["cairn_a_tries"] = "2"
	want["late"] = "x"
	delete(want, "equals")
	if g, w := sortedPairs(got), sortedPairs(want); strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Errorf("Vars():\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

// The same edits through grub-editenv and through Block give the same bytes:
// Set follows grub_envblk_set to the byte.
func TestSameEditsGiveTheSameBytesAsGrubEditenv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grubenv")
	grubEditenv(t, path, "create")
	b := NewBlock(Size)
	created, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), created) {
		t.Fatalf("NewBlock differs from grub-editenv create:\nours   %q\ntheirs %q", b.Bytes()[:120], created[:120])
	}
	steps := [][]string{
		{"set", "cairn_a_priority=1", "cairn_a_tries=0", "cairn_a_ok=1"},
		{"set", "cairn_b_priority=2", "cairn_b_tries=3", "cairn_b_ok=0"},
		{"set", "cairn_b_tries=2"},
		{"set", "cairn_a_priority=10"},
		{"set", `odd=with\back\\slashes and = signs`},
		{"set", "cairn_a_priority=1"},
		{"unset", "cairn_a_ok"},
		{"set", "cairn_a_ok=1"},
	}
	for _, step := range steps {
		grubEditenv(t, append([]string{path}, step...)...)
		for _, arg := range step[1:] {
			if step[0] == "unset" {
				b.Delete(arg)
				continue
			}
			name, value, _ := strings.Cut(arg, "=")
			if err := b.Set(name, value); err != nil {
				t.Fatal(err)
			}
		}
		theirs, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), theirs) {
			t.Fatalf("after %q:\nours   %q\ntheirs %q", step, b.Bytes()[:200], theirs[:200])
		}
	}
}

func TestEnvSetNoSpaceLeavesFileByteIdentical(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grubenv")
	if err := Create(path, []Var{{"cairn_a_priority", "1"}}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	if err := env.Set("huge", strings.Repeat("x", Size)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Set of a too large value = %v, want ErrNoSpace", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("file changed although the value did not fit")
	}
}

func TestEnvSetWritesInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grubenv")
	if err := Create(path, []Var{{"cairn_a_ok", "0"}}); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	env, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	if err := env.Set("cairn_a_ok", "1"); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Errorf("Set replaced the file; GRUB can only write to its existing sectors")
	}
}

// tornDevice writes at most budget more bytes and then fails, like a power
// cut in the middle of a write.
type tornDevice struct {
	buf    []byte
	budget int
}

var errPowerCut = errors.New("power cut")

func (d *tornDevice) ReadAt(p []byte, off int64) (int, error) {
	return copy(p, d.buf[off:]), nil
}

func (d *tornDevice) WriteAt(p []byte, off int64) (int, error) {
	n := min(len(p), d.budget)
	copy(d.buf[off:], p[:n])
	d.budget -= n
	if n < len(p) {
		return n, errPowerCut
	}
	return n, nil
}

func (d *tornDevice) Sync() error { return nil }

func TestPowerCutDuringOneDigitSetLeavesOldOrNewValue(t *testing.T) {
	b := NewBlock(Size)
	for _, v := range []Var{{"cairn_a_priority", "1"}, {"cairn_a_tries", "3"}, {"cairn_a_ok", "0"}, {"cairn_b_priority", "2"}, {"cairn_b_tries", "0"}, {"cairn_b_ok", "1"}} {
		if err := b.Set(v.Name, v.Value); err != nil {
			t.Fatal(err)
		}
	}
	orig := b.Vars()
	for k := 0; k <= Size; k++ {
		dev := &tornDevice{buf: b.Bytes(), budget: k}
		err := New(dev, Size).Set("cairn_a_tries", "2")
		if k < Size && !errors.Is(err, errPowerCut) {
			t.Fatalf("cut after %d bytes: Set = %v, want the power cut error", k, err)
		}
		after, err := Parse(dev.buf)
		if err != nil {
			t.Fatalf("cut after %d bytes: block no longer valid: %v", k, err)
		}
		got := after.Vars()
		if got["cairn_a_tries"] != "3" && got["cairn_a_tries"] != "2" {
			t.Fatalf("cut after %d bytes: cairn_a_tries = %q", k, got["cairn_a_tries"])
		}
		got["cairn_a_tries"] = "3"
		if fmt.Sprint(got) != fmt.Sprint(orig) {
			t.Fatalf("cut after %d bytes: other variables changed: %v", k, got)
		}
	}
}

func TestOpenRejectsWhatIsNotABlock(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte(Signature), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(short); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), short) {
		t.Errorf("Open of a truncated block = %v, want ErrInvalid naming the file", err)
	}
	if _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing file = %v, want ErrNotExist", err)
	}
}
