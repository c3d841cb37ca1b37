package k3s

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/content"
	"github.com/containerd/containerd/namespaces"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// startContainerd runs a real containerd with its own root, state and socket
// under a temp dir and returns the socket.
func startContainerd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a containerd daemon")
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		t.Fatalf("containerd not installed (scripts/install-deps.sh): %v", err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("containerd needs root")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	waitFor(t, "the containerd socket", func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	return sock
}

// ociImage is a one-layer image in an OCI layout tarball, built here so that
// nothing is pulled from a registry.
type ociImage struct {
	tar      []byte
	manifest string // digest
	layer    []byte
}

func buildOCIImage(t *testing.T, name, file, body string) ociImage {
	t.Helper()
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	lw.WriteHeader(&tar.Header{Name: file, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(0, 0)})
	lw.Write([]byte(body))
	lw.Close()
	blobs := map[string][]byte{}
	add := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[d] = b
		return d, len(b)
	}
	desc := func(mt string, b []byte) map[string]any {
		d, n := add(b)
		return map[string]any{"mediaType": mt, "digest": d, "size": n}
	}
	layerDesc := desc("application/vnd.oci.image.layer.v1.tar", layer.Bytes())
	config, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDesc["digest"].(string)}},
		"config": map[string]any{"Cmd": []string{"/" + file}},
	})
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc("application/vnd.oci.image.config.v1+json", config),
		"layers": []any{layerDesc},
	})
	mdesc := desc("application/vnd.oci.image.manifest.v1+json", manifest)
	mdesc["annotations"] = map[string]string{"io.containerd.image.name": name}
	mdesc["platform"] = map[string]string{"architecture": runtime.GOARCH, "os": "linux"}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{mdesc}})

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	put := func(name string, b []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0)})
		tw.Write(b)
	}
	put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	put("index.json", index)
	for d, b := range blobs {
		put("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), b)
	}
	tw.Close()
	return ociImage{tar: out.Bytes(), manifest: mdesc["digest"].(string), layer: layer.Bytes()}
}

func TestAirgapTarballsImportIntoK8sNamespace(t *testing.T) {
	sock := startContainerd(t)
	dir := t.TempDir()
	plain := buildOCIImage(t, "registry.example/cairn/pos-app:1.0", "hello.txt", "hello from the store box\n")
	zst := buildOCIImage(t, "registry.example/cairn/sensor:2.1", "sensor.txt", "line 3 cell 7\n")
	plainPath := filepath.Join(dir, "pos-app.tar")
	if err := os.WriteFile(plainPath, plain.tar, 0o644); err != nil {
		t.Fatal(err)
	}
	zstPath := filepath.Join(dir, "sensor.tar.zst")
	tmp := filepath.Join(dir, "sensor.tar")
	os.WriteFile(tmp, zst.tar, 0o644)
	if out, err := exec.Command("zstd", "-q", "--rm", tmp, "-o", zstPath).CombinedOutput(); err != nil {
		t.Fatalf("zstd: %v: %s", err, out)
	}

	ctx := context.Background()
	names, err := ImportImages(ctx, sock, []string{plainPath, zstPath})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if want := []string{"registry.example/cairn/pos-app:1.0", "registry.example/cairn/sensor:2.1"}; !slices.Equal(names, want) {
		t.Fatalf("imported %v, want %v", names, want)
	}

	// ctr, containerd's own client, is the oracle for what the kubelet sees.
	out, err := exec.Command("ctr", "--address", sock, "-n", "k8s.io", "images", "ls").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr: %v: %s", err, out)
	}
	for _, want := range []string{"registry.example/cairn/pos-app:1.0", plain.manifest, zst.manifest} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ctr images ls in k8s.io lacks %s:\n%s", want, out)
		}
	}
	if out, _ := exec.Command("ctr", "--address", sock, "-n", "default", "images", "ls", "-q").CombinedOutput(); len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("images landed in the default namespace too: %s", out)
	}

	client, err := containerd.New(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nctx := namespaces.WithNamespace(ctx, ContainerdNamespace)
	img, err := client.ImageService().Get(nctx, "registry.example/cairn/pos-app:1.0")
	if err != nil {
		t.Fatal(err)
	}
	if img.Labels[pinnedLabel] != "pinned" {
		t.Errorf("image labels %v, want it pinned against garbage collection", img.Labels)
	}
	sum := sha256.Sum256(plain.layer)
	manifest, err := content.ReadBlob(nctx, client.ContentStore(), img.Target)
	if err != nil || len(manifest) == 0 {
		t.Fatalf("manifest not in the content store: %v", err)
	}
	ra, err := client.ContentStore().ReaderAt(nctx, descFor(sum[:], len(plain.layer)))
	if err != nil {
		t.Fatalf("layer not in the content store: %v", err)
	}
	got := make([]byte, ra.Size())
	ra.ReadAt(got, 0)
	ra.Close()
	if !bytes.Equal(got, plain.layer) {
		t.Fatal("layer bytes in containerd differ from the tarball's")
	}

	// Importing again is harmless: the same images, no error.
	if _, err := ImportImages(ctx, sock, []string{plainPath}); err != nil {
		t.Fatalf("second import: %v", err)
	}
}

func TestAirgapBadTarballsAreNamed(t *testing.T) {
	sock := startContainerd(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tar")
	os.WriteFile(good, buildOCIImage(t, "registry.example/ok:1", "ok", "ok\n").tar, 0o644)
	gz := filepath.Join(dir, "app.tar.gz")
	os.WriteFile(gz, []byte("not read"), 0o644)
	broken := filepath.Join(dir, "broken.tar")
	img := buildOCIImage(t, "registry.example/broken:1", "x", "x\n")
	os.WriteFile(broken, img.tar[:len(img.tar)/2], 0o644)
	missing := filepath.Join(dir, "missing.tar")

	names, err := ImportImages(context.Background(), sock, []string{gz, broken, good, missing})
	if !slices.Equal(names, []string{"registry.example/ok:1"}) {
		t.Errorf("imported %v, want the good tarball despite the bad ones", names)
	}
	if !errors.Is(err, ErrUnsupportedArchive) {
		t.Errorf("error %v does not say .tar.gz is unsupported", err)
	}
	for _, p := range []string{gz, broken, missing} {
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("error %v does not name %s", err, p)
		}
	}
}

func TestReadImageListRoundTrips(t *testing.T) {
	p := tempPaths(t.TempDir())
	images := []string{"/var/lib/cairn/images/a.tar", "/var/lib/cairn/images/b.tar.zst"}
	files, err := Render(Spec{Role: RoleServer, AirgapImages: images}, Node{}, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(files); err != nil {
		t.Fatal(err)
	}
	got, err := ReadImageList(p.ImageList)
	if err != nil || !slices.Equal(got, images) {
		t.Fatalf("ReadImageList = %v, %v; want %v", got, err, images)
	}
}

func descFor(sum []byte, size int) ocispec.Descriptor {
	return ocispec.Descriptor{Digest: digest.NewDigestFromBytes(digest.SHA256, sum), Size: int64(size)}
}
