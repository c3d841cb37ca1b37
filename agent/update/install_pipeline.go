package update

import (
	"context"
	"fmt"
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

// frameItem carries one frame through the pipeline.
type frameItem struct {
	f         release.Frame
	comp, out []byte
	err       error         // why the frame did not decompress; set before decoded closes
	decoded   chan struct{} // closed once out (or err) is final
}

// framePipeline receives and decompresses frames ahead of the writer,
// which takes them from order in frame order.
type framePipeline struct {
	order   chan *frameItem // frames in order, each decoded or failing
	free    chan *frameItem // buffers the writer is done with
	acks    chan struct{}   // one per checkpoint written; two may be unread
	readErr chan error      // the reader's result, sent before order closes
	workers sync.WaitGroup
}

// startPipeline starts the reader at frame first, with checkpoint frames
// every grid compressed bytes, and the decode workers.
func (p *installPlan) startPipeline(ctx context.Context, dec *zstd.Decoder, body io.Reader, first int, grid int64) *framePipeline {
	pl := &framePipeline{
		order:   make(chan *frameItem, pipelineFrames),
		free:    make(chan *frameItem, pipelineFrames),
		acks:    make(chan struct{}, 2),
		readErr: make(chan error, 1),
	}
	for range pipelineFrames {
		pl.free <- &frameItem{comp: make([]byte, p.maxCS), out: make([]byte, p.img.Frames.Size)}
	}
	// Buffered for every frame in flight: the reader never waits on work
	// or order, only for a free buffer, bytes, or a checkpoint.
	work := make(chan *frameItem, pipelineFrames)
	for range decodeWorkers() {
		pl.workers.Add(1)
		go func() {
			defer pl.workers.Done()
			for it := range work {
				p.decode(dec, it)
			}
		}()
	}
	go func() {
		err := p.readFrames(ctx, body, first, grid, pl, work)
		close(work)
		pl.readErr <- err
		close(pl.order)
	}()
	return pl
}

// wait returns the reader's result once the reader and the workers have
// stopped, dropping frames the writer did not take.
func (pl *framePipeline) wait() error {
	for range pl.order {
	}
	pl.workers.Wait()
	return <-pl.readErr
}

// readFrames reads frames from index first on, handing each to the
// workers and, in the same order, to the writer. At each checkpoint frame
// after the first of the attempt it waits until the writer's previous
// checkpoint is written.
func (p *installPlan) readFrames(ctx context.Context, body io.Reader, first int, grid int64, pl *framePipeline, work chan<- *frameItem) error {
	started := false // a checkpoint frame of this attempt went by
	for _, f := range p.frames[first:] {
		var it *frameItem
		select {
		case it = <-pl.free:
		case <-ctx.Done():
			return ctx.Err()
		}
		it.f, it.comp, it.err = f, it.comp[:f.CompressedSize], nil
		if n, err := io.ReadFull(body, it.comp); err != nil {
			return fmt.Errorf("install %s: frame %d at offset %d, %d of %d bytes: %w: %w",
				p.req.Device, f.Index, f.CompressedOffset, n, f.CompressedSize, ErrTruncated, err)
		}
		it.decoded = make(chan struct{})
		work <- it
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

// slotWriter writes frames to the slot while both SHA-256 run beside the
// write, each on its own CPU.
type slotWriter struct {
	slot *os.File
	fd   int
}

func newSlotWriter(slot *os.File) *slotWriter {
	return &slotWriter{slot: slot, fd: int(slot.Fd())}
}

func (w *slotWriter) write(st *installState, it *frameItem) error {
	var hashed sync.WaitGroup
	hashed.Add(2)
	go func() { st.chash.Write(it.comp); hashed.Done() }()
	go func() { st.uhash.Write(it.out); hashed.Done() }()
	_, err := w.slot.WriteAt(it.out, it.f.Offset)
	if err == nil {
		// Start writing the frame to the medium now rather than at the
		// next checkpoint's fsync, so the medium works while the next
		// frames are decompressed and the fsync finds little left to do.
		// Only a hint: an error here (a file system without it) changes
		// nothing the fsync does not guarantee anyway.
		_ = unix.SyncFileRange(w.fd, it.f.Offset, int64(len(it.out)), unix.SYNC_FILE_RANGE_WRITE)
	}
	hashed.Wait()
	return err
}
