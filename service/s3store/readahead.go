package s3store

import (
	"context"
	"time"
)

// readahead reads a file sequentially from a starting offset, window by
// window: a goroutine fills each window's buffer from a ranged GET of up to
// getRange bytes while the window before is being read. It is bounded to
// one window ahead (two buffers: the one being read and the one being
// filled), and it leaves a GET's answer half read for at most stallLimit
// while it waits for the reader: MinIO holds a lock on the object until it
// has written the whole answer.
type readahead struct {
	s      *Store
	next   int64 // the offset the next read must ask for to go on
	cancel context.CancelFunc
	done   chan struct{} // closed when the fetching goroutine has ended
	ready  chan window   // fetched windows, in order
	free   chan []byte   // buffers the fetcher may fill
	cur    window        // the window being read; cur.buf[cur.at:] is left
	pooled bool          // buffers come from the store's pool
}

// window is one fetched window: buf holds the file's bytes from off, or
// err says why they could not be fetched.
type window struct {
	buf []byte
	at  int
	off int64
	err error
}

// startReadahead starts reading f from off.
func (f *file) startReadahead(off int64) *readahead {
	ctx, cancel := context.WithCancel(f.ctx)
	ra := &readahead{s: f.s, next: off, cancel: cancel, done: make(chan struct{}),
		ready: make(chan window, 1), free: make(chan []byte, 2)}
	size := min(readWindow, f.info.Size-off)
	ra.pooled = size == readWindow
	for range 2 {
		ra.free <- ra.buffer(size)
	}
	go ra.fetch(ctx, f, off)
	return ra
}

// buffer returns a buffer of size bytes, from the store's pool when it is
// a whole window.
func (ra *readahead) buffer(size int64) []byte {
	if ra.pooled {
		return *ra.s.windows.Get().(*[]byte)
	}
	return make([]byte, size)
}

// fetch fetches the windows of f from off to its end, until an error or
// ctx's end.
func (ra *readahead) fetch(ctx context.Context, f *file, off int64) {
	defer close(ra.done)
	var g getStream
	defer g.close()
	for off < f.info.Size {
		buf, ok := ra.freeBuffer(ctx, &g)
		if !ok {
			return
		}
		end := min(off+readWindow, f.info.Size)
		buf = buf[:end-off]
		err := f.fill(ctx, &g, buf, off)
		select {
		case ra.ready <- window{buf: buf, off: off, err: err}:
		case <-ctx.Done():
			ra.put(buf)
			return
		}
		if err != nil {
			return
		}
		off = end
	}
}

// freeBuffer waits for a buffer to fill, closing g if the reader keeps it
// waiting for longer than the store's stall limit. It returns false if ctx
// ends first.
func (ra *readahead) freeBuffer(ctx context.Context, g *getStream) ([]byte, bool) {
	select {
	case buf := <-ra.free:
		return buf, true
	default:
	}
	if g.body != nil {
		stalled := time.NewTimer(time.Duration(ra.s.stallLimit.Load()))
		defer stalled.Stop()
		select {
		case buf := <-ra.free:
			return buf, true
		case <-stalled.C:
			g.close()
			if ra.s.onStall != nil {
				ra.s.onStall()
			}
		case <-ctx.Done():
			return nil, false
		}
	}
	select {
	case buf := <-ra.free:
		return buf, true
	case <-ctx.Done():
		return nil, false
	}
}

// read fills p with the next bytes of the file, waiting for their window
// as needed. p must not reach past the file's end.
func (ra *readahead) read(ctx context.Context, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if ra.cur.at == len(ra.cur.buf) {
			if ra.cur.buf != nil {
				ra.free <- ra.cur.buf[:cap(ra.cur.buf)]
				ra.cur = window{}
			}
			select {
			case w := <-ra.ready:
				if w.err != nil {
					ra.put(w.buf)
					return n, w.err
				}
				ra.cur = w
			case <-ctx.Done():
				return n, context.Cause(ctx)
			}
		}
		k := copy(p[n:], ra.cur.buf[ra.cur.at:])
		ra.cur.at += k
		n += k
		ra.next += int64(k)
	}
	return n, nil
}

// stop ends the fetching and gives the buffers back.
func (ra *readahead) stop() {
	ra.cancel()
	<-ra.done
	ra.put(ra.cur.buf)
	for {
		select {
		case w := <-ra.ready:
			ra.put(w.buf)
		case b := <-ra.free:
			ra.put(b)
		default:
			return
		}
	}
}

// put gives buf back to the store's pool, if it came from there.
func (ra *readahead) put(buf []byte) {
	if ra.pooled && cap(buf) == readWindow {
		buf = buf[:readWindow]
		ra.s.windows.Put(&buf)
	}
}
