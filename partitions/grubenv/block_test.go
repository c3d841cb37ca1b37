package grubenv

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// block builds a Size-byte block from the text after the signature.
// Most of these blocks have no warning line, which GRUB does not need.
func block(body string) []byte {
	b := bytes.Repeat([]byte{'#'}, Size)
	copy(b, Signature+body)
	return b
}

func TestParseRejectsMalformedBlocks(t *testing.T) {
	sig := len(Signature)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "size 0 bytes"},
		{"not whole sectors", block("a=1\n")[:1000], "size 1000 bytes"},
		{"bad signature", append([]byte("# GRUB Environment Blob\n#"), block("")[25:]...), "offset 22: bad signature"},
		{"line without '='", block("a=1\nnoequals\nb=2\n"), "offset " + strconv.Itoa(sig+4) + ": line without '='"},
		{"empty name", block("=1\n"), "offset " + strconv.Itoa(sig) + ": line with an empty name"},
		{"last line unterminated", block("a=1\nb=2"), "offset " + strconv.Itoa(sig+4) + ": last line is not terminated"},
		{"escaped final newline", block("a=x\\\n"), "offset " + strconv.Itoa(sig+2) + ": unterminated line"},
		{"text after padding", block("a=1\n####junk"), "offset " + strconv.Itoa(sig+4) + ": last line is not terminated"},
		{"duplicate name", block("a=1\nb=2\na=3\n"), "offset " + strconv.Itoa(sig+8) + `: variable "a" already set at offset ` + strconv.Itoa(sig)},
		{"NUL in value", block("a=1\x002\n"), "offset " + strconv.Itoa(sig+3) + ": NUL byte"},
		{"backslash in name", block("a\\b=1\n"), "offset " + strconv.Itoa(sig+1) + ": byte '\\\\' not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.data)
			if err == nil {
				t.Fatalf("Parse accepted a malformed block")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParseAcceptsWhatGRUBReads(t *testing.T) {
	data := block("# a comment GRUB skips\na=x\\\\y\\\nz\nb=c=d e\n")
	b, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Vars(); len(got) != 2 || got["a"] != "x\\y\nz" || got["b"] != "c=d e" {
		t.Errorf("Vars() = %q", got)
	}
	if got := b.Names(); strings.Join(got, ",") != "a,b" {
		t.Errorf("Names() = %q", got)
	}
	if !bytes.Equal(b.Bytes(), data) {
		t.Errorf("Bytes() differs from the parsed data")
	}
}

func TestSetOneDigitValueChangesExactlyOneByte(t *testing.T) {
	b := NewBlock(Size)
	for _, v := range []Var{{"cairn_a_priority", "1"}, {"cairn_a_tries", "0"}, {"cairn_a_ok", "1"}, {"cairn_b_priority", "2"}, {"cairn_b_tries", "3"}, {"cairn_b_ok", "0"}} {
		if err := b.Set(v.Name, v.Value); err != nil {
			t.Fatal(err)
		}
	}
	before := b.Bytes()
	if err := b.Set("cairn_b_tries", "2"); err != nil {
		t.Fatal(err)
	}
	var diff []int
	for i, c := range b.Bytes() {
		if c != before[i] {
			diff = append(diff, i)
		}
	}
	if len(diff) != 1 {
		t.Fatalf("Set changed %d bytes (at %v), want exactly 1", len(diff), diff)
	}
	if v, _ := b.Get("cairn_b_tries"); v != "2" {
		t.Errorf("cairn_b_tries = %q, want 2", v)
	}
}

func TestSetShiftsFollowingLinesAndPaddingLikeGRUB(t *testing.T) {
	b, err := Parse(block("a=1\nb=2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Set("a", "longer"); err != nil {
		t.Fatal(err)
	}
	if want := block("a=longer\nb=2\n"); !bytes.Equal(b.Bytes(), want) {
		t.Errorf("after growing a:\n%q\nwant\n%q", b.Bytes()[:40], want[:40])
	}
	if err := b.Set("a", ""); err != nil {
		t.Fatal(err)
	}
	if want := block("a=\nb=2\n"); !bytes.Equal(b.Bytes(), want) {
		t.Errorf("after shrinking a:\n%q\nwant\n%q", b.Bytes()[:40], want[:40])
	}
	b.Delete("a")
	if want := block("b=2\n"); !bytes.Equal(b.Bytes(), want) {
		t.Errorf("after deleting a:\n%q\nwant\n%q", b.Bytes()[:40], want[:40])
	}
}

func TestSetShrinkInAFullBlockRefillsTheTail(t *testing.T) {
	b := NewBlock(512)
	long := strings.Repeat("x", 512-len(Signature+warning)-len("a=\nb=1\n"))
	if err := b.Set("a", long); err != nil {
		t.Fatal(err)
	}
	if err := b.Set("b", "1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Set("a", "y"); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b.Bytes()); err != nil {
		t.Fatalf("block invalid after shrinking a value in a full block: %v", err)
	}
	if got := b.Vars(); got["a"] != "y" || got["b"] != "1" {
		t.Errorf("Vars() = %q", got)
	}
}

func TestSetReturnsErrNoSpaceAndLeavesBlockUnchanged(t *testing.T) {
	b := NewBlock(512)
	free := 512 - len(Signature+warning)
	if err := b.Set("big", strings.Repeat("v", free-len("big=\n"))); err != nil {
		t.Fatalf("a value that exactly fills the block: %v", err)
	}
	before := b.Bytes()
	for _, op := range []struct{ name, value string }{{"big", strings.Repeat("v", free)}, {"new", "1"}} {
		if err := b.Set(op.name, op.value); !errors.Is(err, ErrNoSpace) {
			t.Errorf("Set(%q) = %v, want ErrNoSpace", op.name, err)
		}
		if !bytes.Equal(b.Bytes(), before) {
			t.Fatalf("Set(%q) changed the block although it did not fit", op.name)
		}
	}
}

func TestSetRejectsNamesGRUBCannotReadBack(t *testing.T) {
	for _, name := range []string{"", "#a", "a=b", "a\nb", "a\\b", "a\x00"} {
		if err := NewBlock(Size).Set(name, "1"); err == nil {
			t.Errorf("Set(%q) accepted", name)
		}
	}
	if err := NewBlock(Size).Set("a", "x\x00y"); err == nil {
		t.Errorf("Set with NUL in the value accepted")
	}
}

func TestEscapedValuesRoundTrip(t *testing.T) {
	b := NewBlock(Size)
	values := map[string]string{"bs": `a\b\\c\`, "nl": "line1\nline2\n", "eq": "k=v=w", "sp": " lead and trail "}
	for n, v := range values {
		if err := b.Set(n, v); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Parse(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for n, v := range values {
		if got, ok := p.Get(n); !ok || got != v {
			t.Errorf("Get(%q) = %q, %v; want %q", n, got, ok, v)
		}
	}
	if !bytes.Contains(b.Bytes(), []byte("nl=line1\\\nline2\\\n\n")) {
		t.Errorf("newlines not escaped as GRUB does: %q", b.Bytes())
	}
}
