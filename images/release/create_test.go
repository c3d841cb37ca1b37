package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
)

// slotImage writes a file that compresses like a file system: runs of zeros
// between random blocks.
func slotImage(t *testing.T, size int) string {
	t.Helper()
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for off := 0; off < size; off += 8192 {
		for i := off; i < min(off+4096, size); i++ {
			data[i] = byte(r.IntN(256))
		}
	}
	path := filepath.Join(t.TempDir(), "slot.img")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func TestCreateWritesArtifactsThatZstdDecompresses(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		if testing.Short() {
			t.Skip("zstd not installed")
		}
		t.Fatal("zstd (Debian package zstd) is the oracle for release artifacts:", err)
	}
	img := slotImage(t, 4<<20)
	k3s := slotImage(t, 1<<20)
	out := filepath.Join(t.TempDir(), "releases", "1.2.0", "qemu-x86")
	var calls int
	m, err := Create(context.Background(), CreateOptions{
		Image: img, K3s: map[string]string{"amd64": k3s},
		Version: "1.2.0", Board: "qemu-x86", Arch: "amd64", Notes: "first",
		OutDir:   out,
		Progress: func(string, int64, int64) { calls++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 {
		t.Error("Progress was never called")
	}
	onDisk, err := ReadManifest(filepath.Join(out, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(onDisk.Image, m.Image) || !reflect.DeepEqual(onDisk.K3s["amd64"], m.K3s["amd64"]) {
		t.Fatalf("manifest on disk %+v differs from returned %+v", onDisk, m)
	}
	for name, pair := range map[string]struct {
		a   Artifact
		src string
	}{"image": {m.Image, img}, "k3s": {m.K3s["amd64"], k3s}} {
		zst := filepath.Join(out, pair.a.Path)
		if got := fileSHA256(t, zst); got != pair.a.CompressedSHA256 {
			t.Errorf("%s: compressed sha256 %s, manifest says %s", name, got, pair.a.CompressedSHA256)
		}
		raw := filepath.Join(t.TempDir(), "raw")
		if outp, err := exec.Command("zstd", "-q", "-d", zst, "-o", raw).CombinedOutput(); err != nil {
			t.Fatalf("%s: zstd -d: %v\n%s", name, err, outp)
		}
		if got := fileSHA256(t, raw); got != pair.a.SHA256 || got != fileSHA256(t, pair.src) {
			t.Errorf("%s: zstd -d gives sha256 %s, manifest says %s", name, got, pair.a.SHA256)
		}
		st, _ := os.Stat(zst)
		if st.Size() != pair.a.CompressedSize || pair.a.Size != mustSize(t, pair.src) {
			t.Errorf("%s: sizes in manifest %d/%d do not match files", name, pair.a.Size, pair.a.CompressedSize)
		}
		t.Logf("%s: %d bytes compressed to %d", name, pair.a.Size, pair.a.CompressedSize)
	}
}

func mustSize(t *testing.T, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestCreateRefusesBadInputBeforeWritingAnything(t *testing.T) {
	img := slotImage(t, 1<<16)
	for name, opts := range map[string]CreateOptions{
		"bad version":   {Image: img, Version: "v1", Board: "rpi4", Arch: "arm64"},
		"bad k3s arch":  {Image: img, Version: "1.0.0", Board: "rpi4", Arch: "arm64", K3s: map[string]string{"mips": img}},
		"missing image": {Image: filepath.Join(t.TempDir(), "nope"), Version: "1.0.0", Board: "rpi4", Arch: "arm64"},
	} {
		out := filepath.Join(t.TempDir(), "out")
		opts.OutDir = out
		if _, err := Create(context.Background(), opts); err == nil {
			t.Errorf("%s: Create succeeded", name)
		}
		entries, _ := os.ReadDir(out)
		var names bytes.Buffer
		for _, e := range entries {
			names.WriteString(e.Name() + " ")
		}
		if len(entries) != 0 {
			t.Errorf("%s: left files behind: %s", name, names.String())
		}
	}
}

// Each frame of the table must be a complete zstd frame on its own: the
// installer resumes by decoding from a frame boundary with a fresh decoder.
func TestCreateWritesFramesThatZstdDecompressesOneByOne(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		if testing.Short() {
			t.Skip("zstd not installed")
		}
		t.Fatal("zstd (Debian package zstd) is the oracle for release artifacts:", err)
	}
	img := slotImage(t, 1<<20+12345)
	out := t.TempDir()
	m, err := Create(context.Background(), CreateOptions{
		Image: img, Version: "1.2.0", Board: "qemu-x86", Arch: "amd64", OutDir: out, FrameSize: 256 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	fr := m.Image.Frames
	if fr == nil || fr.Size != 256<<10 || len(fr.CompressedSizes) != 5 {
		t.Fatalf("frame table %+v, want 5 frames of 256 KiB", fr)
	}
	raw, _ := os.ReadFile(img)
	zst, _ := os.ReadFile(filepath.Join(out, m.Image.Path))
	for _, f := range fr.List(m.Image.Size) {
		cmd := exec.Command("zstd", "-q", "-d", "-c")
		cmd.Stdin = bytes.NewReader(zst[f.CompressedOffset : f.CompressedOffset+f.CompressedSize])
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("frame %d: zstd -d: %v", f.Index, err)
		}
		if !bytes.Equal(got, raw[f.Offset:f.Offset+f.Size]) {
			t.Fatalf("frame %d: zstd -d gives %d bytes that differ from image bytes %d-%d", f.Index, len(got), f.Offset, f.Offset+f.Size)
		}
	}
}

func TestFrameSizeGrowsToKeepTheTableSmall(t *testing.T) {
	for _, c := range []struct{ size, want, got int64 }{
		{1 << 30, 0, DefaultFrameSize},
		{8 << 30, 0, DefaultFrameSize},
		{8<<30 + 1, 0, 2 * DefaultFrameSize},
		{100, 64 << 10, 64 << 10},
	} {
		if got := frameSizeFor(c.size, c.want); got != c.got {
			t.Errorf("frameSizeFor(%d, %d) = %d, want %d", c.size, c.want, got, c.got)
		}
	}
}
