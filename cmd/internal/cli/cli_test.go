package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
)

type sample struct {
	Slot string `json:"slot"`
}

func (s sample) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "slot %s\n", s.Slot)
	return err
}

func TestPrintRendersJSONOrText(t *testing.T) {
	var buf bytes.Buffer
	o := Options{Output: "json"}
	if err := o.Print(&buf, sample{Slot: "A"}); err != nil {
		t.Fatal(err)
	}
	var got sample
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil || got.Slot != "A" {
		t.Fatalf("json output %q: %v", buf.String(), err)
	}
	buf.Reset()
	o.Output = "text"
	if err := o.Print(&buf, sample{Slot: "B"}); err != nil || buf.String() != "slot B\n" {
		t.Fatalf("text output %q: %v", buf.String(), err)
	}
	o.Output = "yaml"
	if err := o.Print(&buf, sample{}); err == nil || !strings.Contains(err.Error(), "yaml") {
		t.Fatalf("unknown output format accepted: %v", err)
	}
}

func TestLoggerRejectsUnknownFormat(t *testing.T) {
	for _, f := range []string{"json", "console"} {
		o := Options{LogFormat: f, LogLevel: "info"}
		if _, err := o.Logger(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	o := Options{LogFormat: "xml", LogLevel: "info"}
	if _, err := o.Logger(); err == nil {
		t.Error("--log-format xml accepted")
	}
}
