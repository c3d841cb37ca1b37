package initrd

import (
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/images/footer"
)

func TestVerityTableFromFooter(t *testing.T) {
	f := &footer.Footer{DataSize: 8 << 20, HashOffset: 8 << 20, RootHash: []byte{0xab, 0xcd}, Salt: []byte{1, 2}}
	got, err := VerityTable("/dev/vda2", f)
	if err != nil {
		t.Fatal(err)
	}
	if want := "1 /dev/vda2 /dev/vda2 4096 4096 2048 2048 sha256 abcd 0102"; got != want {
		t.Errorf("table %q, want %q", got, want)
	}
	f.DataSize = 4097
	if _, err := VerityTable("/dev/vda2", f); err == nil {
		t.Error("a data size that is not whole blocks was accepted")
	}
}

func TestTableLoadRequestLayout(t *testing.T) {
	b, err := dmRequest("cairn-root", unix.DM_READONLY_FLAG, 16384, "verity", "1 a b")
	if err != nil {
		t.Fatal(err)
	}
	le := binary.NativeEndian
	if n := le.Uint32(b[12:]); int(n) != len(b) || len(b)%8 != 0 {
		t.Errorf("data_size %d, buffer %d bytes", n, len(b))
	}
	if le.Uint32(b[16:]) != unix.SizeofDmIoctl || le.Uint32(b[20:]) != 1 || le.Uint32(b[28:]) != unix.DM_READONLY_FLAG {
		t.Errorf("header: data_start %d, targets %d, flags %d", le.Uint32(b[16:]), le.Uint32(b[20:]), le.Uint32(b[28:]))
	}
	if name := strings.TrimRight(string(b[48:48+128]), "\x00"); name != "cairn-root" {
		t.Errorf("name %q", name)
	}
	spec := b[unix.SizeofDmIoctl:]
	if le.Uint64(spec[8:]) != 16384 || strings.TrimRight(string(spec[24:40]), "\x00") != "verity" {
		t.Errorf("target spec: length %d, type %q", le.Uint64(spec[8:]), spec[24:40])
	}
	if params := strings.TrimRight(string(spec[unix.SizeofDmTargetSpec:]), "\x00"); params != "1 a b" {
		t.Errorf("params %q", params)
	}
	if _, err := dmRequest(strings.Repeat("x", 128), 0, 0, "", ""); err == nil {
		t.Error("a 128-byte name was accepted")
	}
}
