package footer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/images/verity"
)

// decodeBody validates the signed header and manifest, b being exactly the
// body (its size already checked against the body size field).
func decodeBody(b []byte) (*Footer, error) {
	le := binary.LittleEndian
	if v := le.Uint32(b[offVersion:]); v != Version {
		return nil, invalid(offVersion, "format version", "%d, want %d", v, Version)
	}
	if n := int(le.Uint32(b[offBodySize:])); n != len(b) {
		return nil, invalid(offBodySize, "body size", "%d, want %d", n, len(b))
	}
	for _, c := range []struct {
		off  int
		name string
		want uint32
	}{
		{offHashType, "verity hash type", verity.HashType},
		{offDataBlock, "data block size", verity.BlockSize},
		{offHashBlock, "hash block size", verity.BlockSize},
	} {
		if v := le.Uint32(b[c.off:]); v != c.want {
			return nil, invalid(c.off, c.name, "%d, want %d", v, c.want)
		}
	}
	alg := make([]byte, algorithmSize)
	copy(alg, verity.Algorithm)
	if got := b[offAlgorithm : offAlgorithm+algorithmSize]; !bytes.Equal(got, alg) {
		return nil, invalid(offAlgorithm, "hash algorithm", "%q, want %q", bytes.TrimRight(got, "\x00"), verity.Algorithm)
	}
	f := &Footer{}
	if err := decodeSizes(b, f); err != nil {
		return nil, err
	}
	saltSize := int(le.Uint16(b[offSaltSize:]))
	if saltSize > verity.MaxSaltSize {
		return nil, invalid(offSaltSize, "salt size", "%d, at most %d", saltSize, verity.MaxSaltSize)
	}
	if n := le.Uint16(b[offRootHashSize:]); n != sha256.Size {
		return nil, invalid(offRootHashSize, "root hash size", "%d, want %d", n, sha256.Size)
	}
	f.RootHash = bytes.Clone(b[offRootHash : offRootHash+sha256.Size])
	f.Salt = bytes.Clone(b[offSalt : offSalt+saltSize])
	for _, z := range []struct {
		from, to int
		name     string
	}{
		{offRootHash + sha256.Size, offSalt, "root hash padding"},
		{offSalt + saltSize, offManifestSize, "salt padding"},
		{offReserved, headerSize, "reserved"},
	} {
		if i := bytes.IndexFunc(b[z.from:z.to], func(r rune) bool { return r != 0 }); i >= 0 {
			return nil, invalid(z.from+i, z.name, "not zero")
		}
	}
	msize := int(le.Uint32(b[offManifestSize:]))
	if msize != len(b)-headerSize || msize == 0 {
		return nil, invalid(offManifestSize, "manifest size", "%d, want %d (body size less the header) and more than 0", msize, len(b)-headerSize)
	}
	f.ManifestJSON = bytes.Clone(b[headerSize:])
	m, err := parseManifest(f.ManifestJSON)
	if err != nil {
		return nil, fmt.Errorf("offset %d (manifest): %w", headerSize, err)
	}
	if want := hex.EncodeToString(f.RootHash); m.VerityRootHash != want {
		return nil, invalid(headerSize, "manifest", "verity_root_hash %q, the header says %s", m.VerityRootHash, want)
	}
	f.Manifest = m
	return f, nil
}

// decodeSizes reads the four sizes and checks that data, tree and footer
// fit the slot in that order, with the tree veritysetup would compute.
func decodeSizes(b []byte, f *Footer) error {
	le := binary.LittleEndian
	fields := []struct {
		off  int
		name string
		dst  *int64
	}{
		{offSlotSize, "slot size", &f.SlotSize},
		{offDataSize, "data size", &f.DataSize},
		{offHashOffset, "hash offset", &f.HashOffset},
		{offHashSize, "hash size", &f.HashSize},
	}
	for _, fl := range fields {
		v := le.Uint64(b[fl.off:])
		if v > 1<<62 {
			return invalid(fl.off, fl.name, "%d is out of range", v)
		}
		*fl.dst = int64(v)
	}
	if f.DataSize <= 0 || f.DataSize%verity.BlockSize != 0 {
		return invalid(offDataSize, "data size", "%d: want a positive multiple of %d", f.DataSize, verity.BlockSize)
	}
	l, err := verity.NewLayout(f.DataSize)
	if err != nil {
		return invalid(offDataSize, "data size", "%v", err)
	}
	if f.HashOffset != l.HashOffset {
		return invalid(offHashOffset, "hash offset", "%d, want %d (right after the data)", f.HashOffset, l.HashOffset)
	}
	if f.HashSize != l.HashSize {
		return invalid(offHashSize, "hash size", "%d, want %d for %d data blocks", f.HashSize, l.HashSize, l.DataBlocks)
	}
	if end := f.HashOffset + f.HashSize; f.SlotSize%verity.BlockSize != 0 || f.SlotSize < end+Size {
		return invalid(offSlotSize, "slot size", "%d: want a multiple of %d holding the tree's end (%d) and the footer", f.SlotSize, verity.BlockSize, end)
	}
	return nil
}

// parseManifest decodes the manifest as release.ParseManifest does, except
// that the image artifact must be empty: the slot image is what it would
// describe, and a slot cannot carry its own digest. The channel's TUF
// manifest carries it.
func parseManifest(data []byte) (*release.Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m release.Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", release.ErrInvalidManifest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", release.ErrInvalidManifest)
	}
	if !reflect.ValueOf(m.Image).IsZero() {
		return nil, fmt.Errorf("%w: key \"image\": must be empty in a slot footer", release.ErrInvalidManifest)
	}
	check := m
	check.Image = placeholderImage
	if err := check.Validate(); err != nil {
		return nil, err
	}
	if m.VerityRootHash == "" {
		return nil, fmt.Errorf("%w: key \"verity_root_hash\": missing", release.ErrInvalidManifest)
	}
	return &m, nil
}

// placeholderImage stands in for the empty image artifact so that
// release.Manifest.Validate checks every other key.
var placeholderImage = release.Artifact{
	Path: "slot.img.zst", Compression: release.CompressionZstd, Size: 1, CompressedSize: 1,
	SHA256: hex.EncodeToString(make([]byte, 32)), CompressedSHA256: hex.EncodeToString(make([]byte, 32)),
}
