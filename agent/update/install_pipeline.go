package update

import (
	"context"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/images/release"
)

// pipelineFrames bounds the frames in flight, each holding one compressed
// and one decompressed frame: the installer's buffers stay near
// 2 × pipelineFrames × the frame size (32 MiB with 4 MiB frames) whatever
// the image size.
const pipelineFrames = 4

// decodeWorkers is how many frames are decompressed at the same time:
// frames are independent, so decompression, the one step that is not
// sequential, uses every CPU while the writer hashes in frame order.
func decodeWorkers() int {
	return max(1, min(runtime.GOMAXPROCS(0), pipelineFrames-1))
}

// frameItem carries one frame through the pipeline. Each stage sets its
// fields before closing its channel; the writer of the install takes the
// frame once every channel is closed.
type frameItem struct {
	f         release.Frame
	comp, out []byte
	// chash is the compressed bytes' SHA-256 state after this frame, set
	// by the reader before the item leaves it.
	chash   hash.Hash
	err     error         // why the frame did not decompress
	decoded chan struct{} // closed once out (or err) is final
	werr    error         // why the frame was not written to the slot
	written chan struct{} // closed once the frame is in the slot (or werr)
	uhash   hash.Hash     // the image's SHA-256 state after this frame
	herr    error         // why uhash could not be kept
	hashed  chan struct{} // closed once uhash (or herr) is final
}

// framePipeline runs the stages of an attempt, each on its own goroutine:
// the reader (which also hashes the compressed bytes), decodeWorkers
// decompressing frames side by side, the slot writer, and the hasher of
// the decompressed bytes. The SHA-256 over the image is one chain that
// cannot be split, the longest piece of sequential work per byte; on its
// own goroutine it runs while the next frames are decompressed and the
// previous ones written, with nothing else waiting in line behind it.
type framePipeline struct {
	order   chan *frameItem // frames in order, for the install's writer
	free    chan *frameItem // buffers every stage is done with
	acks    chan struct{}   // one per checkpoint written; two may be unread
	readErr chan error      // the reader's result, sent before order closes
	stages  sync.WaitGroup  // decode workers, slot writer, hasher
}

// startPipeline starts the stages at frame first, with checkpoint frames
// every grid compressed bytes, continuing the hash states of st.
func (p *installPlan) startPipeline(ctx context.Context, dec *zstd.Decoder, body io.Reader, slot *os.File,
	st *installState, grid int64) (*framePipeline, error) {
	chash, err := cloneHash(st.chash)
	if err != nil {
		return nil, err
	}
	uhash, err := cloneHash(st.uhash)
	if err != nil {
		return nil, err
	}
	pl := &framePipeline{
		order:   make(chan *frameItem, pipelineFrames),
		free:    make(chan *frameItem, pipelineFrames),
		acks:    make(chan struct{}, 2),
		readErr: make(chan error, 1),
	}
	for range pipelineFrames {
		pl.free <- &frameItem{comp: make([]byte, p.maxCS), out: make([]byte, p.img.Frames.Size)}
	}
	// Each stage's channel holds every frame in flight: the reader never
	// waits on a stage, only for a free buffer, bytes, or a checkpoint.
	work := make(chan *frameItem, pipelineFrames)
	toSlot := make(chan *frameItem, pipelineFrames)
	toHash := make(chan *frameItem, pipelineFrames)
	pl.run(decodeWorkers(), work, func(it *frameItem) { p.decode(dec, it) })
	fd := int(slot.Fd())
	pl.run(1, toSlot, func(it *frameItem) { writeFrame(slot, fd, it) })
	pl.run(1, toHash, func(it *frameItem) { hashFrame(uhash, it) })
	go func() {
		err := p.readFrames(ctx, body, st.frame, grid, chash, pl, work, toSlot, toHash)
		close(work)
		close(toSlot)
		close(toHash)
		pl.readErr <- err
		close(pl.order)
	}()
	return pl, nil
}

// run starts n goroutines doing stage on every item of in.
func (pl *framePipeline) run(n int, in <-chan *frameItem, stage func(*frameItem)) {
	for range n {
		pl.stages.Add(1)
		go func() {
			defer pl.stages.Done()
			for it := range in {
				stage(it)
			}
		}()
	}
}

// wait returns the reader's result once every stage has stopped, dropping
// frames the install's writer did not take.
func (pl *framePipeline) wait() error {
	for range pl.order {
	}
	pl.stages.Wait()
	return <-pl.readErr
}

// readFrames reads frames from index first on, hashing their compressed
// bytes and handing each to the stages and, in the same order, to the
// install's writer. At each checkpoint frame after the first of the
// attempt it waits until the writer's previous checkpoint is written.
func (p *installPlan) readFrames(ctx context.Context, body io.Reader, first int, grid int64, chash hash.Hash,
	pl *framePipeline, stages ...chan<- *frameItem) error {
	started := false // a checkpoint frame of this attempt went by
	for _, f := range p.frames[first:] {
		var it *frameItem
		select {
		case it = <-pl.free:
		case <-ctx.Done():
			return ctx.Err()
		}
		it.f, it.comp, it.err, it.werr, it.herr = f, it.comp[:f.CompressedSize], nil, nil, nil
		if n, err := io.ReadFull(body, it.comp); err != nil {
			return fmt.Errorf("install %s: frame %d at offset %d, %d of %d bytes: %w: %w",
				p.req.Device, f.Index, f.CompressedOffset, n, f.CompressedSize, ErrTruncated, err)
		}
		chash.Write(it.comp)
		var err error
		if it.chash, err = cloneHash(chash); err != nil {
			return err
		}
		it.decoded, it.written, it.hashed = make(chan struct{}), make(chan struct{}), make(chan struct{})
		for _, s := range stages {
			s <- it
		}
		pl.order <- it
		if f.Index+1 == len(p.frames) || !isCheckpointFrame(f, grid) {
			continue
		}
		if started {
			select {
			case <-pl.acks:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		started = true
	}
	return nil
}

// decode decompresses one frame into its buffer; a frame that does not
// decompress to its size is corrupt.
func (p *installPlan) decode(dec *zstd.Decoder, it *frameItem) {
	defer close(it.decoded)
	f := it.f
	out, err := dec.DecodeAll(it.comp, it.out[:0])
	if err == nil && int64(len(out)) != f.Size {
		err = fmt.Errorf("%d bytes, want %d", len(out), f.Size)
	}
	if err != nil {
		it.err = fmt.Errorf("install %s: frame %d at offset %d: %w: %v", p.req.Device, f.Index, f.CompressedOffset, ErrCorruptFrame, err)
		return
	}
	it.out = out
}

// writeFrame writes a decompressed frame to the slot.
func writeFrame(slot *os.File, fd int, it *frameItem) {
	defer close(it.written)
	if <-it.decoded; it.err != nil {
		return
	}
	if _, it.werr = slot.WriteAt(it.out, it.f.Offset); it.werr != nil {
		return
	}
	// Start writing the frame to the medium now rather than at the next
	// checkpoint's fsync, so the medium works while the next frames are
	// decompressed and the fsync finds little left to do. Only a hint: an
	// error here (a file system without it) changes nothing the fsync does
	// not guarantee anyway.
	_ = unix.SyncFileRange(fd, it.f.Offset, int64(len(it.out)), unix.SYNC_FILE_RANGE_WRITE)
}

// hashFrame continues the image's SHA-256 over a decompressed frame.
func hashFrame(uhash hash.Hash, it *frameItem) {
	defer close(it.hashed)
	if <-it.decoded; it.err != nil {
		return
	}
	uhash.Write(it.out)
	it.uhash, it.herr = cloneHash(uhash)
}

// cloneHash copies a SHA-256 state, so that the state after each frame
// can be kept while the chain goes on.
func cloneHash(h hash.Hash) (hash.Hash, error) {
	c, ok := h.(hash.Cloner)
	if !ok {
		return nil, fmt.Errorf("install: %T cannot be cloned", h)
	}
	return c.Clone()
}
