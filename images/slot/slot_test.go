package slot

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/images/verity"
)

func needTool(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: skipping a test that needs %s", name)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed (scripts/install-deps.sh): %v", name, err)
	}
	return p
}

var kernel = bytes.Repeat([]byte("not really a kernel "), 5000)

// rootTree writes a small root filesystem tree.
func rootTree(t *testing.T, mtime time.Time) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"boot/vmlinuz":             kernel,
		"boot/initrd":              []byte("initramfs"),
		"etc/hostname":             []byte("cairn\n"),
		"etc/name with \"quotes\"": []byte("odd names survive"),
		".hidden":                  []byte("dot file"),
	}
	for i := range 40 {
		files["usr/share/doc/f"+strconv.Itoa(i)] = []byte(strings.Repeat("x", i*100))
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../boot/vmlinuz", filepath.Join(dir, "etc/kernel")); err != nil {
		t.Fatal(err)
	}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil || p == filepath.Join(dir, "etc/kernel") {
			return err
		}
		return os.Chtimes(p, mtime, mtime)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func options(t *testing.T, root string, key *ecdsa.PrivateKey) Options {
	return Options{
		RootDir: root, Output: filepath.Join(t.TempDir(), "slot.img"), SlotSize: 32 << 20,
		Manifest:        release.Manifest{Version: "1.3.0", Board: "qemu-amd64", Arch: "amd64"},
		ReleaseKey:      key,
		SourceDateEpoch: 1767225600, // 2026-01-01
	}
}

func TestBuildingTwiceGivesIdenticalBytes(t *testing.T) {
	needTool(t, "mkfs.ext4")
	key := newKey(t)
	a, err := Build(context.Background(), options(t, rootTree(t, time.Unix(1e9, 0)), key))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the second tree's ctimes are a second later
	b, err := Build(context.Background(), options(t, rootTree(t, time.Unix(1.5e9, 0)), key))
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := os.ReadFile(a.Path)
	bb, _ := os.ReadFile(b.Path)
	if !bytes.Equal(ab, bb) {
		n := 0
		for i := range ab {
			if ab[i] != bb[i] {
				n++
			}
		}
		t.Fatalf("two builds differ in %d bytes", n)
	}
	if a.SHA256 != b.SHA256 || int64(len(ab)) != a.SlotSize {
		t.Fatalf("results differ or wrong size: %+v %+v", a, b)
	}
}

func TestSlotImageIsReadableAndVerifiable(t *testing.T) {
	e2fsck, debugfs, vs := needTool(t, "e2fsck"), needTool(t, "debugfs"), needTool(t, "veritysetup")
	key := newKey(t)
	res, err := Build(context.Background(), options(t, rootTree(t, time.Unix(1e9, 0)), key))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(e2fsck, "-fn", res.Path).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn: %v\n%s", err, out)
	}
	got, err := exec.Command(debugfs, "-R", "cat /boot/vmlinuz", res.Path).Output()
	if err != nil || !bytes.Equal(got, kernel) {
		t.Fatalf("debugfs cat /boot/vmlinuz: %d bytes, %v; want the %d bytes written", len(got), err, len(kernel))
	}
	f, err := footer.ReadFromDevice(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(f.RootHash) != res.RootHash || f.Manifest.VerityRootHash != res.RootHash {
		t.Fatalf("footer root hash %x, manifest %s, build %s", f.RootHash, f.Manifest.VerityRootHash, res.RootHash)
	}
	out, err := exec.Command(vs, "verify", "--no-superblock", "--salt="+hex.EncodeToString(f.Salt),
		"--data-blocks="+strconv.FormatInt(f.DataSize/verity.BlockSize, 10),
		"--hash-offset="+strconv.FormatInt(f.HashOffset, 10), res.Path, res.Path, res.RootHash).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup verify: %v\n%s", err, out)
	}
	if err := f.Verify(&key.PublicKey); err != nil {
		t.Fatalf("footer does not verify with the release key: %v", err)
	}
	if err := f.Verify(&newKey(t).PublicKey); !errors.Is(err, footer.ErrBadSignature) {
		t.Fatalf("footer with another key: %v, want ErrBadSignature", err)
	}
	img, _ := os.ReadFile(res.Path)
	if m := f.Manifest; m.Created.Unix() != 1767225600 || m.Version != "1.3.0" {
		t.Fatalf("manifest in the footer: %+v", m)
	}

	// A flipped byte in the footer's signed part, or in the filesystem.
	flipped := bytes.Clone(img)
	flipped[len(img)-footer.Size+offsetOfVersion(t, f)] ^= 1
	g, err := footer.Decode(flipped[len(img)-footer.Size:])
	if err == nil {
		err = g.Verify(&key.PublicKey)
	}
	if err == nil {
		t.Fatal("footer with a flipped byte accepted")
	}
	flipped = bytes.Clone(img)
	flipped[f.DataSize/2] ^= 1
	err = verity.Verify(context.Background(), bytes.NewReader(flipped), f.DataSize, f.VerityParams(), f.RootHash)
	if !errors.Is(err, verity.ErrMismatch) {
		t.Fatalf("filesystem with a flipped byte: %v, want verity.ErrMismatch", err)
	}
}

// offsetOfVersion is where the manifest's version digits sit in the footer.
func offsetOfVersion(t *testing.T, f *footer.Footer) int {
	i := bytes.Index(f.ManifestJSON, []byte(`"1.3.0"`))
	if i < 0 {
		t.Fatal("no version in the manifest")
	}
	return 512 + i + 1
}

func TestTooBigIsRefusedSayingByHowMuch(t *testing.T) {
	o := options(t, t.TempDir(), newKey(t))
	o.FSSize = o.SlotSize - 4096
	_, err := Build(context.Background(), o)
	if !errors.Is(err, ErrTooBig) || !strings.Contains(err.Error(), "bytes more than the slot's 33554432") {
		t.Fatalf("filesystem as large as the slot: %v", err)
	}
	// 40 MiB of incompressible data in a 32 MiB slot.
	needTool(t, "mkfs.ext4")
	root := t.TempDir()
	big := make([]byte, 40<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(root, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	o = options(t, root, newKey(t))
	_, err = Build(context.Background(), o)
	if !errors.Is(err, ErrTooBig) {
		t.Fatalf("40 MiB tree in a 32 MiB slot: %v, want ErrTooBig", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(o.Output)); len(entries) != 0 {
		t.Fatalf("failed build left %d files behind", len(entries))
	}
}

func TestFitLeavesRoomForTreeAndFooter(t *testing.T) {
	for _, slot := range []int64{1 << 20, 32 << 20, 1 << 30, 4<<30 + 4096} {
		fs, err := Fit(slot, 0)
		if err != nil {
			t.Fatal(err)
		}
		if need(fs) > slot || need(fs+verity.BlockSize) <= slot {
			t.Fatalf("slot %d: filesystem %d is not the largest that fits", slot, fs)
		}
	}
	if _, err := Fit(12345, 0); err == nil {
		t.Fatal("slot size not a multiple of 4096 accepted")
	}
}
