package update

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.uber.org/zap"

	"github.com/cairn-edge/cairn/images/release"
)

// download installs the frames from st on, retrying what a retry can fix.
// It returns nil once every frame is written.
func (in *Installer) download(ctx context.Context, p *installPlan, slot *os.File, st *installState, progress func(int64, int64)) error {
	retries := installDefault(in.Retries, DefaultRetries)
	backoff := installDefault(in.Backoff, DefaultBackoff)
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(decodeWorkers()),
		zstd.WithDecoderMaxMemory(uint64(p.img.Frames.Size)))
	if err != nil {
		return err
	}
	defer dec.Close()
	failures := 0
	for st.frame < len(p.frames) {
		before := st.compressed
		err := in.attempt(ctx, p, dec, slot, st, progress)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			// Stopped from outside, as by a power cut: what counts is the
			// last checkpoint.
			return fmt.Errorf("install %s: at offset %d: %w", p.req.Device, st.compressed, ctx.Err())
		}
		if !retryable(err) {
			return err
		}
		if err := in.save(p, slot, st); err != nil {
			return err
		}
		if st.compressed > before {
			failures = 0
		}
		failures++
		if retries < 0 || failures > retries {
			return fmt.Errorf("install %s: giving up after %d attempts: %w", p.req.Device, failures, err)
		}
		wait := min(backoff<<(failures-1), maxBackoff)
		in.log().Warn("install: retrying", zap.String("device", p.req.Device), zap.Int64("compressed_offset", st.compressed),
			zap.Duration("wait", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return fmt.Errorf("install %s: at offset %d: %w", p.req.Device, st.compressed, ctx.Err())
		case <-time.After(wait):
		}
	}
	return nil
}

// transient says whether another request may get further.
func retryable(err error) bool {
	var ue *url.Error
	return errors.Is(err, ErrServer) || errors.Is(err, ErrStalled) || errors.Is(err, ErrTruncated) ||
		errors.Is(err, ErrCorruptFrame) || errors.As(err, &ue)
}

// attempt is one request, through the stages of a framePipeline; this
// goroutine takes the frames in order once every stage is done with them,
// moves the install state past them and starts the checkpoints. The
// reader stops at every frame that calls for a checkpoint until the
// checkpoint before it is written: what an interruption loses stays
// within CheckpointBytes plus one frame.
func (in *Installer) attempt(ctx context.Context, p *installPlan, dec *zstd.Decoder, slot *os.File, st *installState, progress func(int64, int64)) error {
	body, err := in.get(ctx, p.target, st.compressed)
	if err != nil {
		return fmt.Errorf("install %s: %w", p.req.Device, err)
	}
	defer body.Close()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pl, err := p.startPipeline(pctx, dec, body, slot, st, checkpointGrid(in.checkpointBytes()))
	if err != nil {
		return fmt.Errorf("install %s: %w", p.req.Device, err)
	}
	werr := in.writeFrames(p, slot, st, pl, progress)
	if werr != nil {
		cancel()
		body.Close() // a reader waiting for bytes returns now
	}
	rerr := pl.wait()
	if werr != nil {
		return werr
	}
	return rerr
}

// writeFrames takes the pipeline's frames in order as the stages finish
// them. At each checkpoint frame it starts a checkpoint that syncs and
// saves while the next frames are written; one is in flight at a time,
// and the reader waits at a checkpoint frame until the checkpoint before
// it is written. With checkpoint frames every CheckpointBytes/2, what an
// interruption loses stays within CheckpointBytes plus one frame.
func (in *Installer) writeFrames(p *installPlan, slot *os.File, st *installState, pl *framePipeline, progress func(int64, int64)) error {
	var inflight chan error // the running checkpoint's result
	var inflightAt int64
	finish := func() error {
		if inflight == nil {
			return nil
		}
		err := <-inflight
		inflight = nil
		if err == nil {
			st.saved = inflightAt
		}
		return err
	}
	grid := checkpointGrid(in.checkpointBytes())
	for it := range pl.order {
		<-it.decoded
		<-it.written
		<-it.hashed
		f := it.f
		switch {
		case it.err != nil:
			return errors.Join(it.err, finish())
		case it.werr != nil:
			return errors.Join(fmt.Errorf("install %s: write at offset %d: %w", p.req.Device, f.Offset, it.werr), finish())
		case it.herr != nil:
			return errors.Join(fmt.Errorf("install %s: frame %d: %w", p.req.Device, f.Index, it.herr), finish())
		}
		st.frame, st.compressed, st.offset = f.Index+1, f.CompressedOffset+f.CompressedSize, f.Offset+f.Size
		st.chash, st.uhash = it.chash, it.uhash
		pl.free <- it // the reader's now
		if progress != nil {
			progress(st.offset, p.img.Size)
		}
		if st.frame < len(p.frames) && isCheckpointFrame(f, grid) {
			if err := finish(); err != nil {
				return err
			}
			c, err := in.snapshot(p, st)
			if err != nil {
				return err
			}
			done := make(chan error, 1)
			inflight, inflightAt = done, st.compressed
			go func() {
				err := in.writeCheckpoint(p, slot, c)
				if err == nil {
					pl.acks <- struct{}{} // the reader may go past the next checkpoint frame
				}
				done <- err
			}()
		}
	}
	return finish()
}

// checkpointGrid is the spacing of checkpoint frames for CheckpointBytes
// cpb: two of them fit in cpb, as two may be unwritten at a time.
func checkpointGrid(cpb int64) int64 { return max(1, cpb/2) }

// isCheckpointFrame says whether frame f ends on or past a multiple of
// grid that it starts before: the same frames on both sides of the
// pipeline and in every attempt, wherever an attempt resumed.
func isCheckpointFrame(f release.Frame, grid int64) bool {
	return (f.CompressedOffset+f.CompressedSize)/grid > f.CompressedOffset/grid
}
