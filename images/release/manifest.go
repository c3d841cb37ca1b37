// Package release describes and builds a Cairn release for one board: the
// manifest that names a release's artifacts, and Create, which compresses a
// slot image into those artifacts.
package release

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/internal/atomicfile"

	"github.com/Masterminds/semver/v3"
)

// ManifestFormat is the manifest format version this package reads and writes.
const ManifestFormat = 1

// ManifestName is the file name of a release manifest, beside its artifacts.
const ManifestName = "manifest.json"

// MaxManifestSize bounds a manifest; anything larger is not one of ours.
const MaxManifestSize = 64 << 10

// CompressionZstd is the only artifact compression so far.
const CompressionZstd = "zstd"

// ErrInvalidManifest is wrapped by every validation error.
var ErrInvalidManifest = errors.New("invalid release manifest")

// Manifest describes one release for one board (docs/formats.md, "Release
// manifest").
type Manifest struct {
	Format  int       `json:"format"`
	Version string    `json:"version"`
	Board   string    `json:"board"`
	Arch    string    `json:"arch"`
	Created time.Time `json:"created"`
	// MinVersion is the oldest installed version this release may be
	// installed over; empty means any.
	MinVersion string   `json:"min_version,omitempty"`
	Notes      string   `json:"notes,omitempty"`
	Image      Artifact `json:"image"`
	// VerityRootHash is the dm-verity root hash of the uncompressed image,
	// hex, once images carry a verity tree.
	VerityRootHash string `json:"verity_root_hash,omitempty"`
	// K3s holds a k3s binary per architecture, keyed by GOARCH name.
	K3s map[string]Artifact `json:"k3s,omitempty"`
}

// Artifact is one compressed file of a release.
type Artifact struct {
	// Path is the file name, relative to the manifest's directory.
	Path             string `json:"path"`
	Compression      string `json:"compression"`
	Size             int64  `json:"size"`
	SHA256           string `json:"sha256"`
	CompressedSize   int64  `json:"compressed_size"`
	CompressedSHA256 string `json:"compressed_sha256"`
	// Frames is the frame table that makes an install resumable; Create
	// always writes one.
	Frames *Frames `json:"frames,omitempty"`
}

// Arches are the architectures Cairn builds for.
var arches = map[string]bool{"amd64": true, "arm64": true}

// boardName allows the names boards/ uses, such as qemu-x86_64.
var boardName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ParseManifest decodes and validates a manifest. Unknown keys are refused:
// a newer format gets a new format number.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidManifest, len(data), MaxManifestSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidManifest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalidManifest)
	}
	if len(m.K3s) == 0 {
		m.K3s = nil // "k3s": {} says the same as no key, and marshals as none
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// ReadManifest reads and validates the manifest at path.
func ReadManifest(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}

// Marshal encodes a valid manifest the way it is stored: indented JSON,
// keys in a fixed order, trailing newline.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// WriteFile writes the manifest to path atomically.
func (m *Manifest) WriteFile(path string) error {
	data, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("manifest %s: %w", path, err)
	}
	return atomicfile.Write(path, data, 0o644)
}

// SemVer is the parsed release version.
func (m *Manifest) SemVer() *semver.Version {
	v, err := semver.StrictNewVersion(m.Version)
	if err != nil {
		return nil
	}
	return v
}

func invalid(key, format string, args ...any) error {
	return fmt.Errorf("%w: key %q: %s", ErrInvalidManifest, key, fmt.Sprintf(format, args...))
}

// Validate checks every key and names the first one that is wrong.
func (m *Manifest) Validate() error {
	if m.Format != ManifestFormat {
		return invalid("format", "%d, want %d", m.Format, ManifestFormat)
	}
	v, err := semver.StrictNewVersion(m.Version)
	if err != nil {
		return invalid("version", "%q is not a semantic version: %v", m.Version, err)
	}
	if !boardName.MatchString(m.Board) {
		return invalid("board", "%q: want lower-case letters, digits, dashes and underscores", m.Board)
	}
	if !arches[m.Arch] {
		return invalid("arch", "%q: want amd64 or arm64", m.Arch)
	}
	if m.Created.IsZero() {
		return invalid("created", "missing")
	}
	if m.MinVersion != "" {
		minV, err := semver.StrictNewVersion(m.MinVersion)
		if err != nil {
			return invalid("min_version", "%q is not a semantic version: %v", m.MinVersion, err)
		}
		if minV.GreaterThan(v) {
			return invalid("min_version", "%s is newer than version %s", m.MinVersion, m.Version)
		}
	}
	if err := m.Image.validate("image"); err != nil {
		return err
	}
	if m.VerityRootHash != "" {
		if err := checkHex(m.VerityRootHash); err != nil {
			return invalid("verity_root_hash", "%v", err)
		}
	}
	for arch, a := range m.K3s {
		if !arches[arch] {
			return invalid("k3s."+arch, "unknown architecture: want amd64 or arm64")
		}
		if err := a.validate("k3s." + arch); err != nil {
			return err
		}
	}
	return nil
}

func (a *Artifact) validate(key string) error {
	if a.Path == "" || a.Path != filepath.Base(a.Path) || strings.HasPrefix(a.Path, ".") ||
		strings.ContainsAny(a.Path, `/\`) {
		return invalid(key+".path", "%q: want a plain file name", a.Path)
	}
	if a.Compression != CompressionZstd {
		return invalid(key+".compression", "%q: want %q", a.Compression, CompressionZstd)
	}
	if a.Size <= 0 {
		return invalid(key+".size", "%d: want more than 0", a.Size)
	}
	if a.CompressedSize <= 0 {
		return invalid(key+".compressed_size", "%d: want more than 0", a.CompressedSize)
	}
	if err := checkSHA256(a.SHA256); err != nil {
		return invalid(key+".sha256", "%v", err)
	}
	if err := checkSHA256(a.CompressedSHA256); err != nil {
		return invalid(key+".compressed_sha256", "%v", err)
	}
	if a.Frames != nil {
		return a.Frames.validate(key+".frames", a)
	}
	return nil
}

func checkSHA256(s string) error {
	if len(s) != 64 {
		return fmt.Errorf("%q: want 64 lower-case hex digits", s)
	}
	return checkHex(s)
}

func checkHex(s string) error {
	if s == "" || len(s)%2 != 0 || strings.ToLower(s) != s {
		return fmt.Errorf("%q: want lower-case hex digits", s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	return nil
}
