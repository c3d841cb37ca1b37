package k3s

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
	"github.com/klauspost/compress/zstd"
)

// ContainerdNamespace is where the kubelet (CRI) looks for images.
const ContainerdNamespace = "k8s.io"

// DefaultContainerdSocket is the socket of the containerd that k3s embeds.
const DefaultContainerdSocket = "/run/k3s/containerd/containerd.sock"

// pinnedLabel keeps an image from the kubelet's image garbage collection,
// the way k3s pins the images it imports: on an air-gapped box a collected
// image cannot be pulled again.
const pinnedLabel = "io.cri-containerd.pinned"

// ErrUnsupportedArchive is returned for a tarball name that is neither .tar
// nor .tar.zst.
var ErrUnsupportedArchive = errors.New("unsupported image archive (want .tar or .tar.zst)")

// ImportImages imports image tarballs (docker save or OCI layout, plain or
// zstd-compressed) into the k8s.io namespace of the containerd at socket and
// returns the names of the images imported. It goes on after a bad tarball
// and returns the errors of all of them.
func ImportImages(ctx context.Context, socket string, tarballs []string) ([]string, error) {
	client, err := containerd.New(socket, containerd.WithDefaultNamespace(ContainerdNamespace))
	if err != nil {
		return nil, fmt.Errorf("containerd %s: %w", socket, err)
	}
	defer client.Close()
	ctx = namespaces.WithNamespace(ctx, ContainerdNamespace)
	var names []string
	var errs []error
	for _, path := range tarballs {
		n, err := importTarball(ctx, client, path)
		names = append(names, n...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return names, errors.Join(errs...)
}

func importTarball(ctx context.Context, client *containerd.Client, path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("air-gap image %s: %w", path, err)
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	switch {
	case strings.HasSuffix(path, ".tar.zst"):
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("air-gap image %s: zstd: %w", path, err)
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(path, ".tar"):
	default:
		return nil, fmt.Errorf("air-gap image %s: %w", path, ErrUnsupportedArchive)
	}
	imgs, err := client.Import(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("air-gap image %s: import: %w", path, err)
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("air-gap image %s: no named image in the archive", path)
	}
	var names []string
	is := client.ImageService()
	for _, img := range imgs {
		if img.Labels == nil {
			img.Labels = map[string]string{}
		}
		img.Labels[pinnedLabel] = "pinned"
		if _, err := is.Update(ctx, img, "labels."+pinnedLabel); err != nil && !errdefs.IsNotFound(err) {
			return names, fmt.Errorf("air-gap image %s: pin %s: %w", path, img.Name, err)
		}
		names = append(names, img.Name)
	}
	return names, nil
}

// ReadImageList reads the air-gap image list that Render writes: one
// tarball path a line, # comments.
func ReadImageList(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("air-gap image list %s: %w", path, err)
	}
	var out []string
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "/") {
			return nil, fmt.Errorf("air-gap image list %s: line %d: %q is not an absolute path", path, i+1, line)
		}
		out = append(out, line)
	}
	return out, nil
}
