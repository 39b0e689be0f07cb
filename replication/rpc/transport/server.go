package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Server defaults, applied to zero Server fields.
const (
	DefaultMaxConcurrentCalls = 256
	DefaultHandshakeTimeout   = 10 * time.Second
	DefaultIdleTimeout        = 2 * time.Minute
)

// Handler serves one call: call is the caller's call byte, payload its
// request (owned by the handler). ctx carries the caller's remaining
// deadline and is cancelled when the caller gives up or the connection
// closes. The response belongs to the transport once returned (it may be
// written from that very slice). A returned *Error reaches the caller as
// is; any other error as an *Error with Code 0 and the error's text.
// Handlers run concurrently, at most Server.MaxConcurrentCalls per
// connection; a panic is recovered, logged and answered as an error.
type Handler func(ctx context.Context, call byte, payload []byte) ([]byte, error)

// Server serves the transport on connections upgraded from HTTP/1.1
// (ServeHTTP). Set the fields before the first connection; a zero Server
// with a Handler works. Close or Shutdown stops it.
type Server struct {
	// Handler serves every call.
	Handler Handler
	// Keys, when set, demands the keyed handshake and MACs every frame.
	Keys *Keyring
	// Authorize, when set, admits an upgrade request (the node checks the
	// peer's client certificate or bearer token); a refused one gets 401.
	Authorize func(*http.Request) bool
	// MaxFrameBytes is the largest request payload accepted, announced to
	// clients; default DefaultMaxFrameBytes.
	MaxFrameBytes int
	// MaxConcurrentCalls bounds the handlers running for one connection,
	// announced to clients (which wait on their side for a slot). A
	// request beyond it is refused at once, unrun, with ErrBusy: the
	// connection never stalls. Default 256.
	MaxConcurrentCalls int
	// HandshakeTimeout bounds the handshake after the upgrade; default 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that sent nothing (not even a ping)
	// for this long; default 2m (clients ping every 10s).
	IdleTimeout time.Duration
	// WriteTimeout bounds one batch write: a client that stops reading is
	// disconnected; default 10s.
	WriteTimeout time.Duration
	// Logger receives refusals and connection failures at debug level and
	// handler panics at error level; nil is a no-op.
	Logger *zap.Logger

	stats serverCounters

	mu     sync.Mutex
	conns  map[*serverConn]struct{}
	raw    map[net.Conn]struct{} // upgraded, still in the handshake
	closed bool
	wg     sync.WaitGroup // connection goroutines and handlers
}

func (s *Server) maxFrame() int {
	if s.MaxFrameBytes <= 0 {
		return DefaultMaxFrameBytes
	}
	return min(s.MaxFrameBytes, maxFrameLimit)
}

func (s *Server) maxCalls() int {
	if s.MaxConcurrentCalls <= 0 {
		return DefaultMaxConcurrentCalls
	}
	return s.MaxConcurrentCalls
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (s *Server) logger() *zap.Logger {
	if s.Logger == nil {
		return zap.NewNop()
	}
	return s.Logger
}

// ServeHTTP answers "GET <path> HTTP/1.1" with "Connection: Upgrade" and
// "Upgrade: dynkv-rpc/1": after Authorize it answers 101, takes the
// connection over from net/http and serves it until it closes, on
// goroutines the Server owns. The connection still counts against the
// HTTP listener's limits. ServeHTTP returns once the connection is taken.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 1 {
		http.Error(w, Protocol+" needs HTTP/1.1: dial with ALPN http/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	if r.Method != http.MethodGet || !headerHasToken(r.Header, "Connection", "upgrade") ||
		!strings.EqualFold(r.Header.Get("Upgrade"), Protocol) {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", Protocol)
		http.Error(w, "want GET with Connection: Upgrade and Upgrade: "+Protocol, http.StatusUpgradeRequired)
		return
	}
	if s.Authorize != nil && !s.Authorize(r) {
		s.stats.upgradesRefused.Add(1)
		s.logger().Debug("rpc upgrade refused", zap.String("remote", r.RemoteAddr))
		http.Error(w, "not a cluster member: no client certificate issued by the --tls-ca, or no valid bearer token", http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.wg.Done()
		http.Error(w, "cannot take over the connection: "+err.Error(), http.StatusInternalServerError)
		return
	}
	// net/http may have armed its read and write deadlines.
	_ = nc.SetDeadline(time.Time{})
	br := bufio.NewReaderSize(nc, readBufferSize)
	if n := brw.Reader.Buffered(); n > 0 {
		// Bytes the client sent after the request; normally none, as it
		// waits for the 101.
		early, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), nc), readBufferSize)
	}
	go s.serveConn(nc, br, r.RemoteAddr)
}

// headerHasToken reports whether a comma-separated header holds token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// serveConn is the goroutine of one upgraded connection: it answers the
// 101, runs the handshake, starts the writer and reads requests until the
// connection ends, then waits for its handlers.
func (s *Server) serveConn(nc net.Conn, br *bufio.Reader, remote string) {
	defer s.wg.Done()
	log := s.logger()
	if !s.track(nc, true) {
		_ = nc.Close()
		return
	}
	_ = nc.SetDeadline(time.Now().Add(orDefault(s.HandshakeTimeout, DefaultHandshakeTimeout)))
	if _, err := io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+Protocol+"\r\n\r\n"); err != nil {
		_ = nc.Close()
		return
	}
	sess, err := serverHandshake(nc, br, s.Keys, s.maxFrame(), s.maxCalls())
	s.track(nc, false)
	if err != nil {
		// Debug only: a stranger must not be able to fill the log; the
		// refused member sees the reason in its own errors.
		s.stats.handshakeFailures.Add(1)
		log.Debug("rpc handshake failed", zap.String("remote", remote), zap.Error(err))
		_ = nc.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	sc := &serverConn{s: s, remote: remote, sem: make(chan struct{}, s.maxCalls()), peerMaxFrame: sess.peerMaxFrame,
		running: map[uint64]context.CancelFunc{}}
	sc.ctx, sc.cancel = context.WithCancelCause(context.Background())
	sc.l.init(nc, br, sess, s.maxFrame(), orDefault(s.WriteTimeout, DefaultWriteTimeout))
	sc.l.onClose = func(err error) { sc.cancel(err) }

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sc.l.close(ErrClosed)
		return
	}
	if s.conns == nil {
		s.conns = map[*serverConn]struct{}{}
	}
	s.conns[sc] = struct{}{}
	s.mu.Unlock()

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		sc.l.writeLoop(nil, nil)
	}()
	err = sc.readLoop(orDefault(s.IdleTimeout, DefaultIdleTimeout))
	sc.l.close(err)
	sc.handlers.Wait()
	<-writerDone
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, ErrClosed) {
		log.Debug("rpc connection closed", zap.String("remote", remote), zap.Error(err))
	}
}

// serverConn is the server's end of one connection.
type serverConn struct {
	s            *Server
	remote       string
	l            link
	sem          chan struct{} // a token per running handler
	peerMaxFrame int
	ctx          context.Context // cancelled when the connection closes
	cancel       context.CancelCauseFunc
	handlers     sync.WaitGroup

	// guarded by l.mu
	running  map[uint64]context.CancelFunc
	draining bool
}

// readLoop reads frames until the connection fails; it returns why.
func (sc *serverConn) readLoop(idle time.Duration) error {
	br := sc.l.fr.br
	for {
		if br.Buffered() < headerSize {
			_ = sc.l.nc.SetReadDeadline(time.Now().Add(idle))
		}
		h, payload, err := sc.l.fr.read()
		if err != nil {
			switch {
			case errors.Is(err, ErrUnauthorized):
				sc.refuseConn(refusedUnauthorized, err)
			case errors.Is(err, ErrProtocol):
				sc.refuseConn(refusedProtocol, err)
			}
			return err
		}
		switch h.typ {
		case frameRequest:
			if err := sc.dispatch(h, payload); err != nil {
				sc.refuseConn(refusedProtocol, err)
				return err
			}
		case frameCancel:
			sc.l.mu.Lock()
			if cancel := sc.running[h.id]; cancel != nil {
				cancel()
			}
			sc.l.mu.Unlock()
		case framePing:
			sc.l.enqueue(outFrame{h: header{typ: framePong, id: h.id}})
		default:
			err := fmt.Errorf("%w: frame %d: unexpected %s frame from the client", ErrProtocol, sc.l.fr.n, h.typ)
			sc.refuseConn(refusedProtocol, err)
			return err
		}
	}
}

// refuseConn tells the client why its connection is being closed.
func (sc *serverConn) refuseConn(code byte, err error) {
	msg := err.Error()
	if len(msg) > maxNoticePayload {
		msg = msg[:maxNoticePayload]
	}
	sc.l.closeAfter(outFrame{h: header{typ: frameRefused, code: code}, payload: []byte(msg)}, err)
}

// dispatch starts a handler for a request, or refuses it at once: beyond
// the cap, or while draining. It never blocks, so the connection keeps
// flowing whatever the handlers do.
func (sc *serverConn) dispatch(h header, payload []byte) error {
	l := &sc.l
	l.mu.Lock()
	if _, dup := sc.running[h.id]; dup {
		l.mu.Unlock()
		return fmt.Errorf("%w: request ID %d is already running", ErrProtocol, h.id)
	}
	refuse := byte(0)
	switch {
	case sc.draining:
		refuse = refusedShuttingDown
	default:
		select {
		case sc.sem <- struct{}{}:
		default:
			refuse = refusedBusy
		}
	}
	if refuse != 0 {
		sc.s.stats.callsRefused.Add(1)
		l.enqueueLocked(outFrame{h: header{typ: frameRefused, code: refuse, id: h.id}})
		l.mu.Unlock()
		l.kick()
		return nil
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if h.timeout > 0 {
		ctx, cancel = context.WithTimeout(sc.ctx, time.Duration(h.timeout)*time.Microsecond)
	} else {
		ctx, cancel = context.WithCancel(sc.ctx)
	}
	sc.running[h.id] = cancel
	sc.handlers.Add(1)
	l.mu.Unlock()
	go sc.run(ctx, cancel, h, payload)
	return nil
}

// run is one handler's goroutine.
func (sc *serverConn) run(ctx context.Context, cancel context.CancelFunc, h header, payload []byte) {
	defer sc.handlers.Done()
	resp, err := sc.call(ctx, h.code, payload)
	cancel()
	f := outFrame{h: header{typ: frameResponse, id: h.id}, payload: resp}
	switch {
	case err != nil:
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Detail: []byte(err.Error())}
		}
		f.h.typ, f.h.code, f.payload = frameError, e.Code, e.Detail
		if len(f.payload) > sc.peerMaxFrame {
			f.payload = f.payload[:sc.peerMaxFrame]
		}
	case len(resp) > sc.peerMaxFrame:
		f.h.typ, f.h.code = frameRefused, refusedTooLarge
		f.payload = fmt.Appendf(nil, "the response of %d bytes exceeds the caller's limit of %d", len(resp), sc.peerMaxFrame)
	}
	l := &sc.l
	l.mu.Lock()
	delete(sc.running, h.id)
	ok := l.enqueueLocked(f)
	<-sc.sem
	l.mu.Unlock()
	if ok {
		l.kick()
	}
}

// call runs the handler, turning a panic into an error for the caller.
func (sc *serverConn) call(ctx context.Context, call byte, payload []byte) (resp []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			sc.s.logger().Error("rpc handler panicked", zap.Uint8("call", call), zap.String("remote", sc.remote), zap.Any("panic", p))
			resp, err = nil, fmt.Errorf("transport: handler for call %d panicked: %v", call, p)
		}
	}()
	if sc.s.Handler == nil {
		return nil, fmt.Errorf("transport: no handler")
	}
	return sc.s.Handler(ctx, call, payload)
}

// goAway stops new calls on the connection; it reports whether handlers
// are still running.
func (sc *serverConn) goAway() bool {
	l := &sc.l
	l.mu.Lock()
	if !sc.draining {
		sc.draining = true
		if l.enqueueLocked(outFrame{h: header{typ: frameGoAway}, payload: []byte("the node is shutting down")}) {
			defer l.kick()
		}
	}
	busy := len(sc.running) > 0 && !l.closed
	l.mu.Unlock()
	return busy
}

// Shutdown stops taking connections and calls (new ones are refused with
// ErrShuttingDown, unrun), waits until the calls running finish or ctx
// ends, then closes every connection and waits for the goroutines.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	var err error
	for {
		s.mu.Lock()
		busy := false
		for sc := range s.conns {
			if sc.goAway() {
				busy = true
			}
		}
		s.mu.Unlock()
		if !busy {
			break
		}
		select {
		case <-t.C:
			continue
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
		break
	}
	down := fmt.Errorf("%w: shut down", ErrShuttingDown)
	if err != nil {
		s.closeConns(down)
	} else {
		// Flush the responses of the calls that just finished, then close.
		s.mu.Lock()
		for sc := range s.conns {
			sc.l.drain(down)
		}
		for nc := range s.raw {
			_ = nc.Close() // in the handshake: no calls yet
		}
		s.mu.Unlock()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = context.Cause(ctx)
		}
		s.closeConns(down)
		<-done
	}
	return err
}

// Close closes every connection at once (running handlers' contexts are
// cancelled; calls in flight fail on the callers' side as outcome unknown)
// and waits for the server's goroutines, handlers included.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeConns(ErrClosed)
	s.wg.Wait()
	return nil
}

// track adds a connection in its handshake to the set Close closes, or
// removes it; adding fails once the server is closed.
func (s *Server) track(nc net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.raw, nc)
		return true
	}
	if s.closed {
		return false
	}
	if s.raw == nil {
		s.raw = map[net.Conn]struct{}{}
	}
	s.raw[nc] = struct{}{}
	return true
}

func (s *Server) closeConns(err error) {
	s.mu.Lock()
	conns := make([]*serverConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	for nc := range s.raw {
		_ = nc.Close()
	}
	s.mu.Unlock()
	for _, sc := range conns {
		sc.l.close(err)
	}
}

// ServerStats are a Server's counters since it started, for metrics.
type ServerStats struct {
	Conns             int    // connections open (after the handshake)
	UpgradesRefused   uint64 // upgrade requests Authorize refused
	HandshakeFailures uint64 // upgraded connections whose handshake failed or was refused
	CallsRefused      uint64 // calls refused unrun: at the cap, or draining
}

type serverCounters struct {
	upgradesRefused, handshakeFailures, callsRefused atomic.Uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Conns:             s.connCount(),
		UpgradesRefused:   s.stats.upgradesRefused.Load(),
		HandshakeFailures: s.stats.handshakeFailures.Load(),
		CallsRefused:      s.stats.callsRefused.Load(),
	}
}

func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
