package update

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"

	"go.uber.org/zap"
)

// CheckpointName is the install checkpoint's file name in StateDir.
const CheckpointName = "install-checkpoint.json"

const checkpointFormat = 1

// installState is where an install stands: the next frame, the bytes
// consumed and written so far and the SHA-256 state over each.
type installState struct {
	frame      int
	compressed int64 // compressed bytes consumed: the next Range start
	offset     int64 // uncompressed bytes written: the next slot offset
	chash      hash.Hash
	uhash      hash.Hash
	saved      int64 // compressed offset of the last checkpoint
}

// checkpoint is the file form of an installState, bound to one image and
// one device (docs/update.md, "Checkpoint file").
type installCheckpoint struct {
	Format           int    `json:"format"`
	Target           string `json:"target"`
	CompressedSHA256 string `json:"compressed_sha256"`
	SHA256           string `json:"sha256"`
	Device           string `json:"device"`
	Frame            int    `json:"frame"`
	CompressedOffset int64  `json:"compressed_offset"`
	Offset           int64  `json:"offset"`
	// The sha256 digests' marshalled states (encoding.BinaryMarshaler),
	// base64 in JSON.
	CompressedState []byte `json:"compressed_state"`
	State           []byte `json:"state"`
}

func (in *Installer) checkpointPath() string { return filepath.Join(in.StateDir, CheckpointName) }

// save makes everything installed so far durable: the slot first, then
// the checkpoint that points past it, so a checkpoint never names bytes a
// power cut could still take back.
func (in *Installer) save(p *installPlan, slot *os.File, st *installState) error {
	if st.compressed == st.saved {
		return nil
	}
	c, err := in.snapshot(p, st)
	if err != nil {
		return err
	}
	if err := in.writeCheckpoint(p, slot, c); err != nil {
		return err
	}
	st.saved = st.compressed
	return nil
}

// snapshot is the checkpoint of st as it is now.
func (in *Installer) snapshot(p *installPlan, st *installState) (*installCheckpoint, error) {
	cs, err := st.chash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	us, err := st.uhash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &installCheckpoint{
		Format: checkpointFormat, Target: p.target.Path,
		CompressedSHA256: p.img.CompressedSHA256, SHA256: p.img.SHA256, Device: p.req.Device,
		Frame: st.frame, CompressedOffset: st.compressed, Offset: st.offset,
		CompressedState: cs, State: us,
	}, nil
}

// writeCheckpoint syncs the slot, then writes c: bytes written after c's
// offset may be synced too, which only makes more durable than c names.
func (in *Installer) writeCheckpoint(p *installPlan, slot *os.File, c *installCheckpoint) error {
	if err := slot.Sync(); err != nil {
		return fmt.Errorf("install %s: sync at offset %d: %w", p.req.Device, c.Offset, err)
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(in.checkpointPath(), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("install %s: checkpoint at offset %d: %w: %w", p.req.Device, c.CompressedOffset, ErrCheckpoint, err)
	}
	return nil
}

// saveComplete makes the whole image durable and records it with a
// checkpoint past the last frame. Only the sync must succeed: without the
// record (a full /var) a restart downloads again, nothing worse.
func (in *Installer) saveComplete(p *installPlan, slot *os.File, st *installState) error {
	err := in.save(p, slot, st) // nothing to do when resumed from a complete checkpoint
	if errors.Is(err, ErrCheckpoint) {
		in.log().Warn("install: image synced, its checkpoint not written", zap.String("device", p.req.Device), zap.Error(err))
		return nil
	}
	return err
}

// resume loads the checkpoint of an earlier attempt at the same image on
// the same device; anything else is removed and the install starts over.
func (in *Installer) resume(p *installPlan) *installState {
	path := in.checkpointPath()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return newInstallState()
	}
	st, err := p.parseCheckpoint(data)
	if err != nil {
		in.log().Warn("install: starting over", zap.String("checkpoint", path), zap.Error(err))
		in.dropCheckpoint(p)
		return newInstallState()
	}
	in.log().Info("install: resuming", zap.String("device", p.req.Device), zap.Int("frame", st.frame),
		zap.Int64("compressed_offset", st.compressed), zap.Int64("offset", st.offset))
	return st
}

func (p *installPlan) parseCheckpoint(data []byte) (*installState, error) {
	var c installCheckpoint
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	switch {
	case c.Format != checkpointFormat:
		return nil, fmt.Errorf("format %d", c.Format)
	case c.CompressedSHA256 != p.img.CompressedSHA256 || c.SHA256 != p.img.SHA256:
		return nil, fmt.Errorf("for another image (%s)", c.Target)
	case c.Device != p.req.Device:
		return nil, fmt.Errorf("for device %s", c.Device)
	case c.Frame <= 0 || c.Frame > len(p.frames):
		return nil, fmt.Errorf("frame %d of %d", c.Frame, len(p.frames))
	}
	// Frame len(frames) is a complete checkpoint: it starts where the
	// image ends.
	wantC, want := p.img.CompressedSize, p.img.Size
	if c.Frame < len(p.frames) {
		wantC, want = p.frames[c.Frame].CompressedOffset, p.frames[c.Frame].Offset
	}
	if c.CompressedOffset != wantC || c.Offset != want {
		return nil, fmt.Errorf("frame %d at %d/%d, the frame table says %d/%d",
			c.Frame, c.CompressedOffset, c.Offset, wantC, want)
	}
	st := newInstallState()
	if err := st.chash.(encoding.BinaryUnmarshaler).UnmarshalBinary(c.CompressedState); err != nil {
		return nil, fmt.Errorf("compressed_state: %w", err)
	}
	if err := st.uhash.(encoding.BinaryUnmarshaler).UnmarshalBinary(c.State); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	st.frame, st.compressed, st.offset, st.saved = c.Frame, c.CompressedOffset, c.Offset, c.CompressedOffset
	return st, nil
}

// dropCheckpoint forgets the install: after a failed verification, so the
// next attempt starts over instead of resuming onto bytes that did not
// verify, and when the checkpoint belongs to another image or device.
func (in *Installer) dropCheckpoint(p *installPlan) {
	if err := removeFileIfExists(in.checkpointPath()); err != nil {
		in.log().Warn("install: remove checkpoint", zap.String("device", p.req.Device), zap.Error(err))
	}
}
