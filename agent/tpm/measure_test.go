package tpm

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

func TestMeasuredSlotReplaysAndMatchesManifest(t *testing.T) {
	eachTPM(t, func(t *testing.T, tp *TPM) {
		logPath := filepath.Join(t.TempDir(), "run", "cairn", "measurements.json")
		id := testIdentity("B", "1.3.0")
		if _, err := tp.Measure(logPath, id); err != nil {
			t.Fatal(err)
		}
		l, err := ReadLog(logPath)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Check(tp, l, manifestOf(id))
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if got, want := r.String(), "slot B: release 1.3.0, measured, matches signed manifest"; got != want {
			t.Errorf("result %q, want %q", got, want)
		}
		pcr, err := tp.ReadPCRs(PCR)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pcr[PCR], ExpectedPCR(id)) {
			t.Errorf("PCR %d = %x, want ExpectedPCR %x", PCR, pcr[PCR], ExpectedPCR(id))
		}
	})
}

func TestReplayRejectsEachKindOfTampering(t *testing.T) {
	eachTPM(t, func(t *testing.T, tp *TPM) {
		logPath := filepath.Join(t.TempDir(), "measurements.json")
		id := testIdentity("A", "1.2.0")
		if _, err := tp.Measure(logPath, id); err != nil {
			t.Fatal(err)
		}
		good, err := ReadLog(logPath)
		if err != nil {
			t.Fatal(err)
		}

		t.Run("another release's manifest", func(t *testing.T) {
			_, err := Check(tp, good, manifestOf(testIdentity("A", "1.3.0")))
			var u *UnknownRootHashError
			if !errors.As(err, &u) || u.Event != 0 {
				t.Fatalf("Check = %v, want unknown root hash at event 0", err)
			}
		})
		t.Run("edited field", func(t *testing.T) {
			l := cloneLog(t, good)
			l.Events[0].RootHash[0] ^= 1
			_, err := Check(tp, l, manifestOf(id))
			var e *EventError
			if !errors.Is(err, ErrEventLogEdited) || !errors.As(err, &e) || e.Index != 0 {
				t.Fatalf("Check = %v, want ErrEventLogEdited at event 0", err)
			}
		})
		t.Run("edited field and digest", func(t *testing.T) {
			l := cloneLog(t, good)
			forged := testIdentity("A", "1.3.0")
			e := &l.Events[0]
			e.Release, e.RootHash, e.FooterDigest, e.Digest = forged.Release, forged.RootHash, forged.FooterDigest, forged.Digest()
			_, err := Check(tp, l, manifestOf(forged))
			var m *PCRMismatchError
			if !errors.As(err, &m) || m.Event != 0 {
				t.Fatalf("Check = %v, want PCR mismatch at event 0", err)
			}
		})
		t.Run("extended out of band", func(t *testing.T) {
			if err := tp.extend(PCR, make([]byte, 32)); err != nil {
				t.Fatal(err)
			}
			_, err := Check(tp, good, manifestOf(id))
			var m *PCRMismatchError
			if !errors.As(err, &m) || m.Event != 1 {
				t.Fatalf("Check = %v, want PCR mismatch at event 1", err)
			}
		})
	})
}

func TestNoTPMIsUnmeasured(t *testing.T) {
	r, err := Check(nil, &EventLog{Version: LogVersion, Bank: "sha256"}, Manifest{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.String(), "slot ?: unmeasured"; got != want {
		t.Errorf("result %q, want %q", got, want)
	}
}

func TestMeasureRefusesInvalidIdentity(t *testing.T) {
	tp := openSimulator(t)
	id := testIdentity("B", "1.3.0")
	id.Release = "1.3.0\nslot=A"
	if _, err := tp.Measure(filepath.Join(t.TempDir(), "m.json"), id); !errors.Is(err, ErrInvalidIdentity) {
		t.Fatalf("Measure = %v, want ErrInvalidIdentity", err)
	}
}

func cloneLog(t *testing.T, l *EventLog) *EventLog {
	t.Helper()
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseLog(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
