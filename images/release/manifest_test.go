package release

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sampleManifest() *Manifest {
	return &Manifest{
		Format:     ManifestFormat,
		Version:    "1.2.0",
		Board:      "rpi4",
		Arch:       "arm64",
		Created:    time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		MinVersion: "1.0.0",
		Notes:      "fixes the NTP start order",
		Image: Artifact{
			Path: "rpi4-1.2.0.img.zst", Compression: "zstd",
			Size: 1 << 30, SHA256: strings.Repeat("ab", 32),
			CompressedSize: 300 << 20, CompressedSHA256: strings.Repeat("cd", 32),
		},
		VerityRootHash: strings.Repeat("ef", 32),
		K3s: map[string]Artifact{"arm64": {
			Path: "k3s-arm64-1.2.0.zst", Compression: "zstd",
			Size: 70 << 20, SHA256: strings.Repeat("01", 32),
			CompressedSize: 20 << 20, CompressedSHA256: strings.Repeat("23", 32),
		}},
	}
}

func TestManifestMatchesGoldenFile(t *testing.T) {
	golden := filepath.Join("testdata", "manifest-v1.json")
	got, err := sampleManifest().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("marshal differs from %s:\n%s", golden, got)
	}
	m, err := ParseManifest(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, sampleManifest()) {
		t.Fatalf("parsed golden file = %+v, want %+v", m, sampleManifest())
	}
}

// framedManifest is a small release whose image carries a frame table.
func framedManifest() *Manifest {
	m := sampleManifest()
	m.K3s = nil
	m.Image.Size = 10<<20 + 100
	m.Image.CompressedSize = 1000 + 2000 + 30
	m.Image.Frames = &Frames{Size: 4 << 20, CompressedSizes: []int64{1000, 2000, 30}}
	return m
}

func TestFramedManifestMatchesGoldenFile(t *testing.T) {
	golden := filepath.Join("testdata", "manifest-v1-frames.json")
	got, err := framedManifest().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("marshal differs from %s:\n%s", golden, got)
	}
	m, err := ParseManifest(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, framedManifest()) {
		t.Fatalf("parsed golden file = %+v, want %+v", m, framedManifest())
	}
	list := m.Image.Frames.List(m.Image.Size)
	if last := list[2]; last.Offset != 8<<20 || last.Size != 2<<20+100 || last.CompressedOffset != 3000 || last.CompressedSize != 30 {
		t.Fatalf("last frame %+v", last)
	}
}

// The largest frame table Create writes must fit the manifest size limit.
func TestLargestFrameTableFitsInAManifest(t *testing.T) {
	m := sampleManifest()
	m.Image.Size = MaxFrames * DefaultFrameSize
	m.Image.Frames = &Frames{Size: DefaultFrameSize, CompressedSizes: make([]int64, MaxFrames)}
	m.Image.CompressedSize = 0
	for i := range m.Image.Frames.CompressedSizes {
		m.Image.Frames.CompressedSizes[i] = DefaultFrameSize + 1000 // incompressible
		m.Image.CompressedSize += DefaultFrameSize + 1000
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseManifest(data); err != nil {
		t.Fatalf("%d bytes: %v", len(data), err)
	}
	t.Logf("manifest with %d frames: %d bytes of %d", MaxFrames, len(data), MaxManifestSize)
}

func TestInvalidManifestNamesTheKey(t *testing.T) {
	cases := []struct {
		key    string
		change func(*Manifest)
	}{
		{"format", func(m *Manifest) { m.Format = 2 }},
		{"version", func(m *Manifest) { m.Version = "1.2" }},
		{"board", func(m *Manifest) { m.Board = "Raspberry Pi" }},
		{"arch", func(m *Manifest) { m.Arch = "riscv64" }},
		{"created", func(m *Manifest) { m.Created = time.Time{} }},
		{"min_version", func(m *Manifest) { m.MinVersion = "2.0.0" }},
		{"image.path", func(m *Manifest) { m.Image.Path = "../etc/passwd" }},
		{"image.compression", func(m *Manifest) { m.Image.Compression = "gzip" }},
		{"image.size", func(m *Manifest) { m.Image.Size = 0 }},
		{"image.sha256", func(m *Manifest) { m.Image.SHA256 = "abc" }},
		{"image.compressed_sha256", func(m *Manifest) { m.Image.CompressedSHA256 = strings.Repeat("AB", 32) }},
		{"verity_root_hash", func(m *Manifest) { m.VerityRootHash = "xyz" }},
		{"k3s.riscv64", func(m *Manifest) { m.K3s["riscv64"] = m.K3s["arm64"] }},
		{"image.frames.size", func(m *Manifest) { m.Image.Frames = &Frames{} }},
		{"image.frames.compressed_sizes", func(m *Manifest) {
			m.Image.Frames = &Frames{Size: 512 << 20, CompressedSizes: []int64{200 << 20, 100 << 20}}
			m.Image.Frames.CompressedSizes[1]--
		}},
		{"image.frames.compressed_sizes", func(m *Manifest) { m.Image.Frames = &Frames{Size: 512 << 20, CompressedSizes: []int64{300 << 20}} }},
		{"image.frames.compressed_sizes", func(m *Manifest) {
			m.Image.Frames = &Frames{Size: 512 << 20, CompressedSizes: []int64{301 << 20, -1 << 20}}
		}},
		{"k3s.arm64.compressed_size", func(m *Manifest) { a := m.K3s["arm64"]; a.CompressedSize = -1; m.K3s["arm64"] = a }},
	}
	for _, c := range cases {
		t.Run(c.key, func(t *testing.T) {
			m := sampleManifest()
			c.change(m)
			err := m.Validate()
			if !errors.Is(err, ErrInvalidManifest) || !strings.Contains(err.Error(), `key "`+c.key+`"`) {
				t.Fatalf("Validate() = %v, want an error naming key %q", err, c.key)
			}
		})
	}
}

func TestParseManifestRefusesUnknownKeysAndTrailingData(t *testing.T) {
	good, err := sampleManifest().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"unknown key":   bytes.Replace(good, []byte(`"format"`), []byte(`"signature": "x", "format"`), 1),
		"trailing data": append(append([]byte{}, good...), []byte("{}")...),
		"too large":     append(good, bytes.Repeat([]byte(" "), MaxManifestSize)...),
	} {
		if _, err := ParseManifest(data); !errors.Is(err, ErrInvalidManifest) {
			t.Errorf("%s: ParseManifest() = %v, want ErrInvalidManifest", name, err)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	good, _ := sampleManifest().Marshal()
	f.Add(good)
	f.Add([]byte(`{"format":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("a parsed manifest does not marshal: %v", err)
		}
		again, err := ParseManifest(out)
		if err != nil || !reflect.DeepEqual(m, again) {
			t.Fatalf("round trip changed the manifest: %v", err)
		}
	})
}

func TestBoardNamesOfTheShippedBoardsAreValid(t *testing.T) {
	for _, board := range []string{"qemu-x86_64", "generic-x86_64", "qemu-aarch64", "rpi4"} {
		m := sampleManifest()
		m.Board = board
		if err := m.Validate(); err != nil {
			t.Errorf("board %s: %v", board, err)
		}
	}
	for _, board := range []string{"-rpi4", "Rpi4", "rpi 4", "rpi/4"} {
		m := sampleManifest()
		m.Board = board
		if err := m.Validate(); err == nil {
			t.Errorf("board %q accepted", board)
		}
	}
}
