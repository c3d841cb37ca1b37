package k3s

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-edge/cairn/internal/atomicfile"

	"github.com/Masterminds/semver/v3"
)

// Binaries are the k3s binaries on the device: the image's own, read-only,
// and the ones staged from the channel on /var. Link is the symlink k3s is
// run through; switching versions swaps it atomically.
type Binaries struct {
	Image        string // k3s shipped in the OS image, e.g. /usr/local/bin/k3s
	ImageVersion string // its version, from the release manifest
	Dir          string // staged binaries, k3s-<version>, on /var
	Link         string // the symlink the runner executes
}

// Stage copies a verified k3s binary into Dir as k3s-<version> and returns
// its path. A binary already staged for that version is replaced.
func (b Binaries) Stage(verified, version string) (string, error) {
	if version == "" || strings.ContainsAny(version, "/\x00") || version[0] == '.' {
		return "", fmt.Errorf("k3s stage %s: bad version %q", verified, version)
	}
	if err := os.MkdirAll(b.Dir, 0o755); err != nil {
		return "", fmt.Errorf("k3s stage %s: %w", b.Dir, err)
	}
	dst := filepath.Join(b.Dir, "k3s-"+version)
	if _, err := copyFileSync(verified, dst, 0o755); err != nil {
		return "", fmt.Errorf("k3s stage: %w", err)
	}
	return dst, nil
}

// Current returns the binary Link points at and its version. Before the
// first switch that is the image's binary.
func (b Binaries) Current() (path, version string, err error) {
	target, err := os.Readlink(b.Link)
	if errors.Is(err, fs.ErrNotExist) {
		return b.Image, b.ImageVersion, nil
	}
	if err != nil {
		return "", "", fmt.Errorf("k3s link %s: %w", b.Link, err)
	}
	if target == b.Image {
		return target, b.ImageVersion, nil
	}
	v, ok := strings.CutPrefix(filepath.Base(target), "k3s-")
	if !ok || filepath.Dir(target) != filepath.Clean(b.Dir) {
		return "", "", fmt.Errorf("k3s link %s: points at %s, neither the image's binary nor a staged one", b.Link, target)
	}
	return target, v, nil
}

// Switch points Link at target: a new symlink renamed over the old one, so
// that Link always names a whole binary.
func (b Binaries) Switch(target string) error {
	dir := filepath.Dir(b.Link)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("k3s link %s: %w", b.Link, err)
	}
	tmp := filepath.Join(dir, "."+filepath.Base(b.Link)+".new")
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("k3s link %s: %w", b.Link, err)
	}
	if err := os.Rename(tmp, b.Link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("k3s link %s: %w", b.Link, err)
	}
	return atomicfile.SyncDir(dir)
}

// prune removes staged binaries other than the ones named.
func (b Binaries) prune(keep ...string) error {
	ents, err := os.ReadDir(b.Dir)
	if err != nil {
		return fmt.Errorf("k3s binaries %s: %w", b.Dir, err)
	}
	for _, e := range ents {
		p := filepath.Join(b.Dir, e.Name())
		if !strings.HasPrefix(e.Name(), "k3s-") || slices.Contains(keep, p) {
			continue
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("k3s binaries: %w", err)
		}
	}
	return nil
}

// Boot points Link at the binary to run at boot: the staged one while it is
// newer than the image's, else the image's. An OS update whose image ships
// a newer k3s than the one staged on /var thus takes over, and k3s never
// goes down a version.
func (b Binaries) Boot() error {
	path, version, err := b.Current()
	if err != nil || path == b.Image {
		return b.Switch(b.Image)
	}
	staged, err1 := semver.NewVersion(version)
	image, err2 := semver.NewVersion(b.ImageVersion)
	if err1 == nil && err2 == nil && !staged.GreaterThan(image) {
		return b.Switch(b.Image)
	}
	if _, err := os.Stat(path); err != nil {
		return b.Switch(b.Image)
	}
	return nil
}

// DefaultBinaries are the paths on a device: the image's k3s, staged ones
// and the link on /var. ImageVersion comes from the release manifest.
func DefaultBinaries(imageVersion string) Binaries {
	return Binaries{Image: "/usr/local/bin/k3s", ImageVersion: imageVersion,
		Dir: "/var/lib/cairn/k3s/bin", Link: "/var/lib/cairn/k3s/k3s"}
}
