package tpm

import (
	"bytes"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"
)

func newNonce(t *testing.T) []byte {
	n := make([]byte, 32)
	if _, err := rand.Read(n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestQuoteVerifiesAndNamesTheRelease(t *testing.T) {
	eachTPM(t, func(t *testing.T, tp *TPM) {
		dir := t.TempDir()
		id := testIdentity("B", "1.3.0")
		if _, err := tp.Measure(filepath.Join(dir, "m.json"), id); err != nil {
			t.Fatal(err)
		}
		l, err := ReadLog(filepath.Join(dir, "m.json"))
		if err != nil {
			t.Fatal(err)
		}
		akPath := filepath.Join(dir, "var", "ak.json")
		nonce := newNonce(t)
		b, err := tp.Attest(akPath, nonce, Evidence{Log: l, FirmwareLog: []byte("firmware log bytes")})
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		b, err = ParseBundle(data)
		if err != nil {
			t.Fatal(err)
		}
		known := []Manifest{manifestOf(testIdentity("A", "1.2.0")), manifestOf(id)}
		r, err := Verify(b, nonce, known)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if got, want := r.String(), "slot B: release 1.3.0, measured, matches signed manifest"; got != want {
			t.Errorf("result %q, want %q", got, want)
		}

		// The AK is reloaded from its blob, not created again.
		b2, err := tp.Attest(akPath, newNonce(t), Evidence{Log: l})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.AKPublic, b2.AKPublic) {
			t.Error("second Attest used another attestation key")
		}
	})
}

func TestVerifyRejectsEachForgery(t *testing.T) {
	eachTPM(t, func(t *testing.T, tp *TPM) {
		dir := t.TempDir()
		id := testIdentity("A", "1.2.0")
		if _, err := tp.Measure(filepath.Join(dir, "m.json"), id); err != nil {
			t.Fatal(err)
		}
		l, err := ReadLog(filepath.Join(dir, "m.json"))
		if err != nil {
			t.Fatal(err)
		}
		akPath := filepath.Join(dir, "ak.json")
		known := []Manifest{manifestOf(id)}
		attest := func(nonce []byte) *Bundle {
			b, err := tp.Attest(akPath, nonce, Evidence{Log: cloneLog(t, l)})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		oldNonce := newNonce(t)
		old := attest(oldNonce)
		if _, err := Verify(old, oldNonce, known); err != nil {
			t.Fatalf("Verify(genuine) = %v", err)
		}

		t.Run("wrong nonce", func(t *testing.T) {
			_, err := Verify(attest(newNonce(t)), newNonce(t), known)
			if !errors.Is(err, ErrWrongNonce) {
				t.Fatalf("Verify = %v, want ErrWrongNonce", err)
			}
		})
		t.Run("replayed quote", func(t *testing.T) {
			nonce := newNonce(t)
			replay := *old
			replay.Nonce = nonce
			_, err := Verify(&replay, nonce, known)
			if !errors.Is(err, ErrReplayedQuote) {
				t.Fatalf("Verify = %v, want ErrReplayedQuote", err)
			}
		})
		t.Run("forged signature", func(t *testing.T) {
			nonce := newNonce(t)
			b := attest(nonce)
			b.Quote[len(b.Quote)-1] ^= 1
			if _, err := Verify(b, nonce, known); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify = %v, want ErrBadSignature", err)
			}
		})
		t.Run("PCR values not the quoted ones", func(t *testing.T) {
			nonce := newNonce(t)
			b := attest(nonce)
			b.PCRs[PCR] = ExpectedPCR(testIdentity("A", "1.3.0"))
			if _, err := Verify(b, nonce, known); !errors.Is(err, ErrPCRDigest) {
				t.Fatalf("Verify = %v, want ErrPCRDigest", err)
			}
		})
		t.Run("edited event log", func(t *testing.T) {
			nonce := newNonce(t)
			b := attest(nonce)
			b.Log.Events[0].Release = "9.9.9"
			_, err := Verify(b, nonce, known)
			var e *EventError
			if !errors.Is(err, ErrEventLogEdited) || !errors.As(err, &e) || e.Index != 0 {
				t.Fatalf("Verify = %v, want ErrEventLogEdited at event 0", err)
			}
		})
		t.Run("unknown root hash", func(t *testing.T) {
			nonce := newNonce(t)
			_, err := Verify(attest(nonce), nonce, []Manifest{manifestOf(testIdentity("A", "1.3.0"))})
			var u *UnknownRootHashError
			if !errors.As(err, &u) || u.Event != 0 {
				t.Fatalf("Verify = %v, want unknown root hash at event 0", err)
			}
		})
		// Last: it changes the TPM for good.
		t.Run("PCR extended out of band", func(t *testing.T) {
			if err := tp.extend(PCR, bytes.Repeat([]byte{0xee}, 32)); err != nil {
				t.Fatal(err)
			}
			nonce := newNonce(t)
			_, err := Verify(attest(nonce), nonce, known)
			var m *PCRMismatchError
			if !errors.As(err, &m) || m.Event != 1 {
				t.Fatalf("Verify = %v, want PCR mismatch at event 1", err)
			}
		})
	})
}
