package tpm

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The digest recipe in docs/formats.md, run with coreutils:
//
//	printf 'cairn-slot-v1\nslot=B\nrelease=1.3.0\nroot_hash=%s\nfooter_digest=%s\n' \
//	  $(printf 'rootfs of 1.3.0' | sha256sum | cut -c1-64) \
//	  $(printf 'footer of 1.3.0 in slot B' | sha256sum | cut -c1-64) | sha256sum
const documentedDigest = "4a26a16d040b3c024652eb742e01efec9b1a2ac708e2f84d8735dab9ebcddcb7"

func TestIdentityDigestMatchesDocumentedRecipe(t *testing.T) {
	if got := hex.EncodeToString(testIdentity("B", "1.3.0").Digest()); got != documentedDigest {
		t.Fatalf("digest %s, want %s (sha256sum)", got, documentedDigest)
	}
}

func goldenLog() *EventLog {
	id := testIdentity("B", "1.3.0")
	return &EventLog{Version: LogVersion, Bank: "sha256", Events: []Event{{
		Seq: 0, PCR: PCR, Type: EventType, Slot: id.Slot, Release: id.Release,
		RootHash: id.RootHash, FooterDigest: id.FooterDigest, Digest: id.Digest(), PCRAfter: ExpectedPCR(id),
	}}}
}

func TestLogMatchesGoldenFile(t *testing.T) {
	golden := filepath.Join("testdata", "measurements.json")
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	got, err := goldenLog().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("log encodes as\n%s\nwant (%s)\n%s", got, golden, want)
	}
	l, err := ParseLog(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Replay(ExpectedPCR(testIdentity("B", "1.3.0"))); err != nil {
		t.Fatalf("golden log does not replay: %v", err)
	}
}

func TestWriteLogReplacesWholeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "cairn", "measurements.json")
	for range 2 {
		if err := WriteLog(path, goldenLog()); err != nil {
			t.Fatal(err)
		}
	}
	l, err := ReadLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Events) != 1 {
		t.Fatalf("%d events, want 1", len(l.Events))
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d files, want only the log (no temp files)", len(entries))
	}
}

func TestParseLogRejectsBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"not json":      "{",
		"version 2":     `{"version":2,"bank":"sha256","events":[]}`,
		"sha1 bank":     `{"version":1,"bank":"sha1","events":[]}`,
		"other pcr":     `{"version":1,"bank":"sha256","events":[{"seq":0,"pcr":9,"type":"cairn-slot-v1"}]}`,
		"bad hex":       `{"version":1,"bank":"sha256","events":[{"seq":0,"pcr":13,"type":"cairn-slot-v1","root_hash":"zz"}]}`,
		"short digests": `{"version":1,"bank":"sha256","events":[{"seq":0,"pcr":13,"type":"cairn-slot-v1","digest":"00"}]}`,
	} {
		if _, err := ParseLog([]byte(in)); err == nil {
			t.Errorf("%s: ParseLog accepted %s", name, in)
		}
	}
}

func FuzzParseLog(f *testing.F) {
	golden, _ := goldenLog().Marshal()
	f.Add(golden)
	f.Add([]byte(`{"version":1,"bank":"sha256","events":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLog(data)
		if err != nil {
			return
		}
		// Whatever parses must round-trip and replay without panicking.
		out, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseLog(out); err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		var e *EventError
		var m *PCRMismatchError
		if err := l.Replay(make([]byte, 32)); err != nil && !errors.As(err, &e) && !errors.As(err, &m) {
			t.Fatalf("Replay: untyped error %v", err)
		}
	})
}
