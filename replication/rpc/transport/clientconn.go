package transport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// call states, guarded by the link's mu.
const (
	callQueued  = iota // in the link's queue
	callTaken          // in the writer's batch, being encoded
	callEncoded        // encoded: a small payload is copied, a large one is being written from the caller's slice
	callWritten        // handed whole to the kernel
	callUnsent         // the write failed before the frame was whole
)

// call is one call in flight, pooled: a call is reused only once nothing
// refers to it (the writer checks the pending map before it touches one).
type call struct {
	state uint8
	large bool // the payload is written from the caller's slice, not copied
	resp  []byte
	err   error
	done  chan struct{} // cap 1: signalled once per use
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

// errConnGone: the connection closed or began draining before the call
// was queued; Call retries on a fresh one.
var errConnGone = fmt.Errorf("%w: connection gone", ErrNotDelivered)

// clientConn is one connection to a peer: a writer goroutine (link) and a
// reader goroutine that hands responses to the waiting callers.
type clientConn struct {
	c        *Client
	addr     string
	l        link
	sem      chan struct{} // a token per call in flight
	maxFrame int           // the server's announced limit
	usable   atomic.Bool   // open and not draining
	open     atomic.Bool   // not closed
	pinged   atomic.Bool   // a ping is unanswered
	received *countingReader
	seen     int64 // the writer's: received bytes at the last tick

	// guarded by l.mu
	pending  map[uint64]*call
	nextID   uint64
	draining bool
	pingID   uint64
}

func (c *Client) newConn(addr string, nc net.Conn, br *bufio.Reader, received *countingReader, s session) *clientConn {
	cn := &clientConn{
		c:        c,
		addr:     addr,
		received: received,
		sem:      make(chan struct{}, min(c.cfg.MaxCallsPerConn, s.peerMaxCalls)),
		maxFrame: s.peerMaxFrame,
		pending:  map[uint64]*call{},
		nextID:   1,
	}
	cn.l.init(nc, br, s, c.cfg.MaxFrameBytes, c.cfg.WriteTimeout)
	cn.l.onTake = cn.onTake
	cn.l.onEncoded = cn.onEncoded
	cn.l.onWritten = cn.onWritten
	cn.l.onClose = cn.onClose
	cn.usable.Store(true)
	cn.open.Store(true)
	return cn
}

// start runs the connection's goroutines, owned by the client.
func (cn *clientConn) start() {
	cn.c.wg.Add(2)
	go func() {
		defer cn.c.wg.Done()
		var tick <-chan time.Time
		if cn.c.cfg.PingInterval > 0 {
			t := time.NewTicker(cn.c.cfg.PingInterval)
			defer t.Stop()
			tick = t.C
		}
		cn.l.writeLoop(tick, cn.ping)
	}()
	go func() {
		defer cn.c.wg.Done()
		cn.readLoop()
	}()
}

// ping is the writer's tick: a connection that received nothing at all
// since the last tick while a ping was unanswered is dead. (A large
// response still arriving counts as alive: the pong waits behind it.)
func (cn *clientConn) ping() error {
	n := cn.received.n.Load()
	quiet := n == cn.seen
	cn.seen = n
	if cn.pinged.Load() {
		if quiet {
			return fmt.Errorf("the peer answered no ping within %s", cn.c.cfg.PingInterval)
		}
		return nil
	}
	cn.pinged.Store(true)
	cn.l.mu.Lock()
	cn.pingID++
	ok := cn.l.enqueueLocked(outFrame{h: header{typ: framePing, id: cn.pingID}})
	cn.l.mu.Unlock()
	if ok {
		cn.l.kick()
	}
	return nil
}

func (cn *clientConn) call(ctx context.Context, callID byte, payload []byte) ([]byte, error) {
	if len(payload) > cn.maxFrame {
		return nil, fmt.Errorf("%w: %w: request of %d bytes, the peer accepts at most %d", ErrNotDelivered, ErrFrameTooLarge, len(payload), cn.maxFrame)
	}
	select {
	case cn.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for one of %d call slots: %w", ErrNotDelivered, cap(cn.sem), context.Cause(ctx))
	case <-cn.l.done:
		return nil, errConnGone
	}
	defer func() { <-cn.sem }()
	var deadline int64
	if d, ok := ctx.Deadline(); ok {
		deadline = d.UnixNano()
	}
	cl := callPool.Get().(*call)
	cl.state, cl.large, cl.resp, cl.err = callQueued, len(payload) > copyLimit, nil, nil
	cn.l.mu.Lock()
	if cn.l.closed || cn.draining {
		cn.l.mu.Unlock()
		callPool.Put(cl)
		return nil, errConnGone
	}
	id := cn.nextID
	cn.nextID++
	cn.pending[id] = cl
	cn.l.queue = append(cn.l.queue, outFrame{h: header{typ: frameRequest, code: callID, id: id}, payload: payload, deadline: deadline, call: cl})
	cn.l.mu.Unlock()
	cn.l.kick()

	select {
	case <-cl.done:
	case <-ctx.Done():
		if err, gaveUp := cn.abandon(id, cl, ctx); gaveUp {
			callPool.Put(cl)
			return nil, err
		}
		<-cl.done // completed meanwhile: take the result
	}
	resp, err := cl.resp, cl.err
	cl.resp, cl.err = nil, nil
	callPool.Put(cl)
	return resp, err
}

// abandon withdraws a call whose caller gave up. It waits while the writer
// is writing the frame, so that payload is not referenced once Call
// returns; a call that was sent is cancelled on the peer. gaveUp is false
// when the call completed meanwhile (its result is on cl.done).
func (cn *clientConn) abandon(id uint64, cl *call, ctx context.Context) (_ error, gaveUp bool) {
	l := &cn.l
	l.mu.Lock()
	for cn.pending[id] == cl && cl.holdsPayload() {
		l.waiters++
		l.cond.Wait()
		l.waiters--
	}
	if cn.pending[id] != cl {
		l.mu.Unlock()
		return nil, false
	}
	delete(cn.pending, id)
	var err error
	switch cl.state {
	case callQueued:
		for i := range l.queue {
			if l.queue[i].call == cl {
				last := len(l.queue) - 1
				copy(l.queue[i:], l.queue[i+1:])
				l.queue[last] = outFrame{}
				l.queue = l.queue[:last]
				break
			}
		}
		err = fmt.Errorf("%w: %w", ErrNotDelivered, context.Cause(ctx))
	case callUnsent:
		err = fmt.Errorf("%w: %w", ErrNotDelivered, context.Cause(ctx))
	default:
		err = fmt.Errorf("%w: gave up waiting for the response: %w", ErrOutcomeUnknown, context.Cause(ctx))
		if l.enqueueLocked(outFrame{h: header{typ: frameCancel, id: id}}) {
			defer l.kick()
		}
	}
	closeNow := cn.draining && len(cn.pending) == 0
	l.mu.Unlock()
	if closeNow {
		l.close(fmt.Errorf("%w: drained", ErrShuttingDown))
	}
	return err, true
}

func (cn *clientConn) onTake(batch []outFrame) {
	for i := range batch {
		if cl := batch[i].call; cl != nil {
			cl.state = callTaken
		}
	}
}

func (cn *clientConn) onEncoded(batch []outFrame) {
	for i := range batch {
		f := &batch[i]
		if f.call != nil && cn.pending[f.h.id] == f.call {
			f.call.state = callEncoded
		}
	}
}

func (cn *clientConn) onWritten(batch []outFrame, whole int) {
	for i := range batch {
		f := &batch[i]
		if f.call == nil || cn.pending[f.h.id] != f.call {
			continue // not a call, or completed and maybe reused already
		}
		if i < whole {
			f.call.state = callWritten
		} else {
			f.call.state = callUnsent
		}
		if cn.l.closed {
			cn.failLocked(f.h.id, f.call, cn.l.err) // left by onClose while the writer held it
		}
	}
}

// holdsPayload says whether the writer may still read a call's payload.
func (cl *call) holdsPayload() bool {
	return cl.state == callTaken || cl.state == callEncoded && cl.large
}

// onClose fails every pending call, except those whose payload the writer
// still holds: it fails them itself when its write ends (onWritten), so
// that no payload is read after its Call returned.
func (cn *clientConn) onClose(err error) {
	cn.usable.Store(false)
	cn.open.Store(false)
	for id, cl := range cn.pending {
		if !cl.holdsPayload() {
			cn.failLocked(id, cl, err)
		}
	}
	cn.c.cfg.Logger.Debug("rpc connection closed", zap.String("peer", cn.addr), zap.Error(err))
}

// failLocked completes a pending call with the connection's failure:
// certainly not sent is not delivered, anything else outcome unknown.
func (cn *clientConn) failLocked(id uint64, cl *call, err error) {
	switch cl.state {
	case callQueued, callUnsent:
		cl.err = fmt.Errorf("%w: connection closed before the request was sent: %w", ErrNotDelivered, err)
	default:
		cl.err = fmt.Errorf("%w: connection lost after the request was sent: %w", ErrOutcomeUnknown, err)
	}
	delete(cn.pending, id)
	cl.done <- struct{}{}
}

// readLoop is the reader goroutine: it hands each response to its caller.
func (cn *clientConn) readLoop() {
	for {
		h, payload, err := cn.l.fr.read()
		if err != nil {
			cn.l.close(err)
			return
		}
		switch h.typ {
		case frameResponse, frameError, frameRefused:
			if h.id == 0 {
				if h.typ == frameRefused {
					cn.l.close(connRefusal(h.code, payload))
				} else {
					cn.l.close(fmt.Errorf("%w: %s frame for request ID 0", ErrProtocol, h.typ))
				}
				return
			}
			cn.deliver(h, payload)
		case framePong:
			cn.pinged.Store(false)
		case frameGoAway:
			cn.usable.Store(false)
			cn.l.mu.Lock()
			cn.draining = true
			idle := len(cn.pending) == 0
			cn.l.mu.Unlock()
			if idle {
				cn.l.close(fmt.Errorf("%w: %s", ErrShuttingDown, payload))
				return
			}
		default:
			cn.l.close(fmt.Errorf("%w: unexpected %s frame from the server", ErrProtocol, h.typ))
			return
		}
	}
}

func (cn *clientConn) deliver(h header, payload []byte) {
	cn.l.mu.Lock()
	cl := cn.pending[h.id]
	if cl != nil {
		delete(cn.pending, h.id)
	}
	closeNow := cn.draining && len(cn.pending) == 0
	cn.l.mu.Unlock()
	if cl != nil { // else a late answer to an abandoned call
		switch h.typ {
		case frameResponse:
			cl.resp = payload
		case frameError:
			cl.err = &Error{Code: h.code, Detail: payload}
		default:
			cl.err = callRefusal(h.code, payload)
		}
		cl.done <- struct{}{}
	}
	if closeNow {
		cn.l.close(fmt.Errorf("%w: drained", ErrShuttingDown))
	}
}

// countingReader counts the bytes a connection received, for the ping.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}
