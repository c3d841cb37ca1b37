package update

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
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

// frameItem carries one frame from the reader to the writer.
type frameItem struct {
	f         release.Frame
	comp, out []byte
}

// attempt is one request: a reader goroutine receives and decompresses
// frames while this one hashes and writes them, so the two halves of the
// work share the CPUs. The reader stops at every frame that calls for a
// checkpoint until the checkpoint is written: what an interruption loses
// stays within CheckpointBytes plus one frame.
func (in *Installer) attempt(ctx context.Context, p *installPlan, dec *zstd.Decoder, slot *os.File, st *installState, progress func(int64, int64)) error {
	body, err := in.get(ctx, p.target, st.compressed)
	if err != nil {
		return fmt.Errorf("install %s: %w", p.req.Device, err)
	}
	defer body.Close()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	free := make(chan *frameItem, 2)
	for range cap(free) {
		free <- &frameItem{comp: make([]byte, p.maxCS), out: make([]byte, p.img.Frames.Size)}
	}
	full := make(chan *frameItem)
	acks := make(chan struct{}, 1)
	cpb := in.checkpointBytes()
	readErr := make(chan error, 1)
	go func() {
		defer close(full)
		readErr <- p.readFrames(pctx, dec, body, st.frame, st.saved, cpb, free, full, acks)
	}()
	werr := func() error {
		for it := range full {
			// Hashing and writing take about as long as receiving and
			// decompressing: overlap them too.
			hashed := make(chan struct{})
			go func() {
				st.chash.Write(it.comp)
				st.uhash.Write(it.out)
				close(hashed)
			}()
			_, err := slot.WriteAt(it.out, it.f.Offset)
			<-hashed
			if err != nil {
				return fmt.Errorf("install %s: write at offset %d: %w", p.req.Device, it.f.Offset, err)
			}
			st.frame, st.compressed, st.offset = it.f.Index+1, it.f.CompressedOffset+it.f.CompressedSize, it.f.Offset+it.f.Size
			free <- it
			if progress != nil {
				progress(st.offset, p.img.Size)
			}
			if st.frame < len(p.frames) && st.compressed-st.saved >= cpb {
				if err := in.save(p, slot, st); err != nil {
					return err
				}
				acks <- struct{}{}
			}
		}
		return nil
	}()
	if werr != nil {
		cancel()
		for range full {
		}
		return werr
	}
	return <-readErr
}

// readFrames reads and decompresses frames from index first on, handing
// them to the writer, and waits for the writer's checkpoint wherever the
// writer takes one (the same rule on both sides).
func (p *installPlan) readFrames(ctx context.Context, dec *zstd.Decoder, body io.Reader, first int, saved, cpb int64,
	free <-chan *frameItem, full chan<- *frameItem, acks <-chan struct{}) error {
	for _, f := range p.frames[first:] {
		var it *frameItem
		select {
		case it = <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
		it.f, it.comp = f, it.comp[:f.CompressedSize]
		if n, err := io.ReadFull(body, it.comp); err != nil {
			return fmt.Errorf("install %s: frame %d at offset %d, %d of %d bytes: %w: %w",
				p.req.Device, f.Index, f.CompressedOffset, n, f.CompressedSize, ErrTruncated, err)
		}
		out, err := dec.DecodeAll(it.comp, it.out[:0])
		if err == nil && int64(len(out)) != f.Size {
			err = fmt.Errorf("%d bytes, want %d", len(out), f.Size)
		}
		if err != nil {
			return fmt.Errorf("install %s: frame %d at offset %d: %w: %v", p.req.Device, f.Index, f.CompressedOffset, ErrCorruptFrame, err)
		}
		it.out = out
		select {
		case full <- it:
		case <-ctx.Done():
			return ctx.Err()
		}
		end := f.CompressedOffset + f.CompressedSize
		if f.Index+1 < len(p.frames) && end-saved >= cpb {
			select {
			case <-acks:
				saved = end
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}
