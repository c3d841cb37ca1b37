package grubenv

import (
	"bytes"
	"fmt"
	"testing"
)

// FuzzParse checks that whatever Parse accepts it keeps byte for byte, reads
// back the same way, and stays valid through Set and Delete.
// Seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add(NewBlock(Size).Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Parse(data)
		if err != nil {
			return
		}
		if !bytes.Equal(b.Bytes(), data) {
			t.Fatalf("Bytes() differs from the parsed data")
		}
		again, err := Parse(b.Bytes())
		if err != nil {
			t.Fatalf("Parse(Bytes()) failed: %v", err)
		}
		vars := b.Vars()
		if fmt.Sprint(again.Vars()) != fmt.Sprint(vars) || fmt.Sprint(again.Names()) != fmt.Sprint(b.Names()) {
			t.Fatalf("Parse(Bytes()) reads different variables")
		}
		for _, v := range []string{"1", "", "a\\b\nc", "longer value"} {
			if err := b.Set("cairn_a_tries", v); err != nil {
				continue // ErrNoSpace
			}
			checkEdit(t, b, vars, "cairn_a_tries", v)
			vars["cairn_a_tries"] = v
		}
		for name := range vars {
			b.Delete(name)
			delete(vars, name)
			checkEdit(t, b, vars, "", "")
			break
		}
	})
}

// checkEdit checks that b is valid, has name=value and otherwise holds want.
func checkEdit(t *testing.T, b *Block, want map[string]string, name, value string) {
	t.Helper()
	p, err := Parse(b.Bytes())
	if err != nil {
		t.Fatalf("block invalid after an edit: %v", err)
	}
	got := p.Vars()
	if name != "" {
		if got[name] != value {
			t.Fatalf("%s = %q after Set(%q)", name, got[name], value)
		}
		delete(got, name)
	}
	w := make(map[string]string)
	for n, v := range want {
		if n != name {
			w[n] = v
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(w) {
		t.Fatalf("other variables changed: %q, want %q", got, w)
	}
}
