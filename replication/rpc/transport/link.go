package transport

import (
	"bufio"
	"net"
	"slices"
	"sync"
	"time"
)

const (
	// readBufferSize is each connection's read buffer: a burst of small
	// frames is read with one system call.
	readBufferSize = 32 << 10
	// copyLimit: payloads up to this size are copied into the batch
	// buffer beside their headers, so a batch of small frames is one
	// write (one TLS record, one syscall); larger ones are written from
	// the caller's slice (writev on a plain TCP connection).
	copyLimit = 16 << 10
	// maxKeptBuffer: a batch buffer grown beyond this by a burst is
	// dropped after the write rather than kept for the connection's life.
	maxKeptBuffer = 1 << 20
)

// outFrame is a frame waiting for the writer.
type outFrame struct {
	h        header // length is set by the writer
	payload  []byte
	deadline int64 // requests: unix nanoseconds, 0 = none; the writer turns it into h.timeout
	call     *call // client requests: the call whose delivery the writer reports
}

// link is what both ends of a connection share: the connection, the queue
// of frames to write and the writer goroutine that drains it. The reader
// goroutine is the client's or the server's own.
//
// mu guards the queue, the closed state, and the state of the ends that
// embed a link (the client's pending calls, the server's running
// handlers), so that registering a call and queueing its frame is one
// critical section.
type link struct {
	nc           net.Conn
	fr           frameReader // the reader goroutine's
	send         *frameMAC   // the writer goroutine's; nil when unkeyed
	writeTimeout time.Duration

	// onTake, onEncoded and onWritten are called by the writer under mu
	// with the batch it took, once it is encoded (small payloads copied),
	// and after the write with how many of its frames were handed whole to
	// the kernel. onClose is called under mu, once.
	onTake    func(batch []outFrame)
	onEncoded func(batch []outFrame)
	onWritten func(batch []outFrame, whole int)
	onClose   func(err error)

	wake chan struct{} // cap 1: the queue is not empty
	done chan struct{} // closed by close

	mu         sync.Mutex
	cond       sync.Cond // L is &mu; broadcast after each write while waiters > 0
	waiters    int
	queue      []outFrame
	closed     bool
	err        error // why the link closed
	closing    bool  // write what is queued, then close with closingErr
	closingErr error
}

func (l *link) init(nc net.Conn, br *bufio.Reader, s session, maxRecv int, writeTimeout time.Duration) {
	l.nc = nc
	l.fr = frameReader{br: br, limit: maxRecv, mac: s.recv}
	l.send = s.send
	l.writeTimeout = writeTimeout
	l.wake = make(chan struct{}, 1)
	l.done = make(chan struct{})
	l.cond.L = &l.mu
}

// enqueueLocked queues f; mu is held. It reports false on a closed link.
func (l *link) enqueueLocked(f outFrame) bool {
	if l.closed {
		return false
	}
	l.queue = append(l.queue, f)
	return true
}

// kick wakes the writer.
func (l *link) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// enqueue queues f and wakes the writer.
func (l *link) enqueue(f outFrame) {
	l.mu.Lock()
	ok := l.enqueueLocked(f)
	l.mu.Unlock()
	if ok {
		l.kick()
	}
}

// drain closes the link with err once the writer has written everything
// queued so far.
func (l *link) drain(err error) {
	l.mu.Lock()
	if !l.closed && !l.closing {
		l.closing, l.closingErr = true, err
	}
	l.mu.Unlock()
	l.kick()
}

// closeAfter queues a last frame (a notice telling the peer why), lets the
// writer flush it, then closes with err. It returns once the link is
// closed: at the latest after the write timeout.
func (l *link) closeAfter(notice outFrame, err error) {
	l.enqueue(notice)
	l.drain(err)
	t := time.NewTimer(l.writeTimeout)
	defer t.Stop()
	select {
	case <-l.done:
	case <-t.C:
		l.close(err)
	}
}

// close closes the link once, with err as the reason.
func (l *link) close(err error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed, l.err = true, err
	close(l.done)
	if l.onClose != nil {
		l.onClose(err)
	}
	clear(l.queue)
	l.queue = l.queue[:0]
	if l.waiters > 0 {
		l.cond.Broadcast()
	}
	l.mu.Unlock()
	_ = l.nc.Close()
}

// closeErr is why the link closed (nil while open).
func (l *link) closeErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// writeLoop is the writer goroutine: it takes everything queued, writes
// it as one batch (one write, or one writev when big payloads ride
// along), and repeats; frames queued during a write go out together in
// the next. tick, when not nil, calls onTick (the client's pings).
func (l *link) writeLoop(tick <-chan time.Time, onTick func() error) {
	var (
		batch []outFrame
		buf   []byte
		bufs  net.Buffers
		ends  []int
	)
	for {
		select {
		case <-l.wake:
		case <-tick:
			if err := onTick(); err != nil {
				l.close(err)
				return
			}
			continue
		case <-l.done:
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return
		}
		batch, l.queue = l.queue, batch[:0]
		if l.onTake != nil {
			l.onTake(batch)
		}
		l.mu.Unlock()

		var err error
		whole := len(batch)
		if len(batch) > 0 {
			buf, bufs, ends = l.build(batch, buf[:0], bufs[:0], ends[:0])
			if l.onEncoded != nil {
				l.mu.Lock()
				l.onEncoded(batch)
				if l.waiters > 0 {
					l.cond.Broadcast()
				}
				l.mu.Unlock()
			}
			var n int64
			_ = l.nc.SetWriteDeadline(time.Now().Add(l.writeTimeout))
			if len(bufs) == 0 {
				var m int
				m, err = l.nc.Write(buf)
				n = int64(m)
			} else {
				wb := bufs
				n, err = wb.WriteTo(l.nc)
			}
			if err != nil {
				whole = 0
				for whole < len(ends) && int64(ends[whole]) <= n {
					whole++
				}
			}
			clear(bufs)
			if cap(buf) > maxKeptBuffer {
				buf = nil
			}
		}

		l.mu.Lock()
		if l.onWritten != nil {
			l.onWritten(batch, whole)
		}
		clear(batch)
		if l.waiters > 0 {
			l.cond.Broadcast()
		}
		closing := l.closing && len(l.queue) == 0
		l.mu.Unlock()
		if err != nil {
			l.close(err)
			return
		}
		if closing {
			l.close(l.closingErr)
			return
		}
	}
}

// build encodes batch into buf (headers, small payloads and MACs) and bufs
// (buf's segments interleaved with large payloads, or empty when buf holds
// everything); ends[i] is the byte offset at which frame i ends.
func (l *link) build(batch []outFrame, buf []byte, bufs net.Buffers, ends []int) ([]byte, net.Buffers, []int) {
	var now int64
	seg, flushed := 0, 0
	for i := range batch {
		f := &batch[i]
		h := f.h
		h.length = uint32(len(f.payload))
		if f.deadline != 0 {
			if now == 0 {
				now = time.Now().UnixNano()
			}
			h.timeout = timeoutMicros(f.deadline - now)
		}
		off := len(buf)
		buf = slices.Grow(buf, headerSize+tagSize)[:off+headerSize]
		h.put(buf[off:])
		hdr := buf[off : off+headerSize]
		if len(f.payload) <= copyLimit {
			buf = append(buf, f.payload...)
		} else {
			bufs = append(bufs, buf[seg:], f.payload)
			flushed += len(buf) - seg + len(f.payload)
			seg = len(buf)
		}
		if l.send != nil {
			buf = l.send.appendTag(buf, hdr, f.payload)
		}
		ends = append(ends, flushed+len(buf)-seg)
	}
	if len(bufs) > 0 && len(buf) > seg {
		bufs = append(bufs, buf[seg:])
	}
	return buf, bufs, ends
}

// timeoutMicros is the header's timeout for d nanoseconds left: at least
// 1 (0 would mean none), at most maxTimeoutMicros.
func timeoutMicros(d int64) uint32 {
	us := d / 1000
	switch {
	case us < 1:
		return 1
	case us > maxTimeoutMicros:
		return maxTimeoutMicros
	}
	return uint32(us)
}
