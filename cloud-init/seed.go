package cloudinit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
)

// ErrNoSeed means a source holds none of the NoCloud files.
var ErrNoSeed = errors.New("no NoCloud seed")

// ErrNotCIDATA means a volume is readable but not labelled CIDATA or cidata.
var ErrNotCIDATA = errors.New("volume is not labelled CIDATA")

// Seed is the raw content of one NoCloud source. A file the source does not
// have is nil. Origin names the source in errors (a directory, a device, a URL).
type Seed struct {
	Origin        string `json:"origin"`
	UserData      []byte `json:"user_data,omitempty"`
	MetaData      []byte `json:"meta_data,omitempty"`
	NetworkConfig []byte `json:"network_config,omitempty"`
}

func (s Seed) empty() bool {
	return s.UserData == nil && s.MetaData == nil && s.NetworkConfig == nil
}

// file names a file of the seed in errors, e.g. "/dev/sdb1:user-data".
func (s Seed) file(name string) string {
	if s.Origin == "" {
		return name
	}
	if strings.Contains(s.Origin, "://") {
		return strings.TrimSuffix(s.Origin, "/") + "/" + name
	}
	return s.Origin + ":" + name
}

// seedFiles are the NoCloud file names, in the order Seed lists them.
var seedFiles = []string{"user-data", "meta-data", "network-config"}

func (s *Seed) set(name string, b []byte) {
	switch name {
	case "user-data":
		s.UserData = b
	case "meta-data":
		s.MetaData = b
	case "network-config":
		s.NetworkConfig = b
	}
}

// readSeedFS reads the NoCloud files from a file system; readFile returns an
// error satisfying errors.Is(err, fs.ErrNotExist) for a missing file.
func readSeedFS(origin string, readFile func(name string) ([]byte, error)) (Seed, error) {
	s := Seed{Origin: origin}
	for _, name := range seedFiles {
		b, err := readFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Seed{}, fmt.Errorf("seed %s: read %s: %w", origin, name, err)
		}
		if b == nil {
			b = []byte{}
		}
		s.set(name, b)
	}
	if s.empty() {
		return Seed{}, fmt.Errorf("seed %s: %w (want user-data, meta-data or network-config)", origin, ErrNoSeed)
	}
	return s, nil
}

// ReadSeedDir reads a seed from a directory: a mounted CIDATA volume, the
// image defaults, or a file:// seed URL.
func ReadSeedDir(dir string) (Seed, error) {
	return readSeedFS(dir, func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(dir, name))
	})
}

// ReadSeedImage reads a seed straight from a FAT (12, 16 or 32) or ISO9660
// volume labelled CIDATA or cidata, without mounting it: path is a block
// device (/dev/sdb1) or an image file.
func ReadSeedImage(path string) (Seed, error) {
	d, err := diskfs.Open(path, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return Seed{}, fmt.Errorf("seed %s: open: %w", path, err)
	}
	defer d.Close()
	fsys, err := d.GetFilesystem(0)
	if err != nil {
		return Seed{}, fmt.Errorf("seed %s: no FAT or ISO9660 file system: %w", path, err)
	}
	defer fsys.Close()
	if label := strings.TrimSpace(fsys.Label()); !strings.EqualFold(label, "cidata") {
		return Seed{}, fmt.Errorf("seed %s: label %q: %w", path, label, ErrNotCIDATA)
	}
	names, err := rootNames(fsys)
	if err != nil {
		return Seed{}, fmt.Errorf("seed %s: list: %w", path, err)
	}
	return readSeedFS(path, func(name string) ([]byte, error) {
		// FAT is case-insensitive and Windows editors may save USER-DATA.
		actual, ok := names[strings.ToLower(name)]
		if !ok {
			return nil, fs.ErrNotExist
		}
		return fs.ReadFile(fsys, actual)
	})
}

// rootNames maps the lower-cased names in the root directory to their
// spelling on the volume.
func rootNames(fsys fs.ReadDirFS) (map[string]string, error) {
	entries, err := fsys.ReadDir(".")
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() {
			names[strings.ToLower(e.Name())] = e.Name()
		}
	}
	return names, nil
}

// LabelledSeedDevices returns the block devices udev lists under the NoCloud
// labels in byLabelDir (normally /dev/disk/by-label), resolved to device paths.
func LabelledSeedDevices(byLabelDir string) []string {
	var devs []string
	seen := map[string]bool{}
	for _, label := range []string{"CIDATA", "cidata"} {
		dev, err := filepath.EvalSymlinks(filepath.Join(byLabelDir, label))
		if err != nil || seen[dev] {
			continue
		}
		seen[dev] = true
		devs = append(devs, dev)
	}
	return devs
}
