package initrd

import (
	"bytes"
	"strings"
	"testing"
)

func TestCryptTableMapsThePayloadWithoutDiscards(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, 64)
	got, err := CryptTable("/dev/vda4", key, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if want := "aes-xts-plain64 " + strings.Repeat("ab", 64) + " 0 /dev/vda4 2048"; got != want {
		t.Errorf("table %q, want %q", got, want)
	}
	if _, err := CryptTable("/dev/vda4", key[:32], 1<<20); err == nil {
		t.Error("a 32-byte key was accepted")
	}
	if _, err := CryptTable("/dev/vda4", key, 1000); err == nil {
		t.Error("an offset that is not whole sectors was accepted")
	}
}
