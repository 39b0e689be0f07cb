package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"
	"go.uber.org/zap"
)

// respWriteTimeout bounds one flush of replies to a client, so that a
// client that stops reading cannot pin its connection's goroutine forever.
const respWriteTimeout = time.Minute

// respCommandOverhead is what a command may carry beyond its values: keys,
// option words and framing.
const respCommandOverhead = 1 << 20

// respServer serves the Redis protocol (SPEC section 4) on its own
// listener. redcon parses and writes RESP; the accept loop and the
// per-connection loops are ours rather than redcon.Server's because
// redcon.Server neither recovers a panic in its parser (a bulk length near
// MaxInt64 indexes out of range and would take the whole node down), nor
// bounds the memory of one unfinished command, nor lets Shutdown wait for
// the connections it serves.
type respServer struct {
	n   *Node
	ln  net.Listener
	log *zap.Logger

	// ctx is cancelled only when a graceful drain ran out of time: it
	// aborts coordinator calls still waiting for replicas.
	ctx    context.Context
	cancel context.CancelFunc

	// maxCommand bounds the bytes read for one command that has not
	// completed yet (see limitedReader).
	maxCommand int64
	nextID     atomic.Int64

	acceptDone chan struct{}
	wg         sync.WaitGroup // one per connection goroutine

	// mu guards conns: the accept loop adds, connection goroutines
	// remove, and shutdown walks it to end every connection's reads.
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// listenRESP binds --resp-addr (TLS when --tls-cert is set). It returns nil
// when the Redis protocol is disabled.
func (n *Node) listenRESP() (*respServer, error) {
	if n.cfg.RESPAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", n.cfg.RESPAddr)
	if err != nil {
		return nil, fmt.Errorf("node: listening on --resp-addr %s: %w", n.cfg.RESPAddr, err)
	}
	if n.tls != nil {
		ln = tls.NewListener(ln, n.tls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &respServer{
		n:          n,
		ln:         ln,
		log:        n.log.Named("resp"),
		ctx:        ctx,
		cancel:     cancel,
		maxCommand: 4*n.cfg.MaxValueBytes + respCommandOverhead,
		acceptDone: make(chan struct{}),
		conns:      make(map[net.Conn]struct{}),
	}, nil
}

// RESPAddr is the address the Redis protocol listens on: the bound one
// after Start (useful with port 0), the configured one before; empty when
// it is disabled.
func (n *Node) RESPAddr() string {
	if a := n.respAddr.Load(); a != nil {
		return *a
	}
	return n.cfg.RESPAddr
}

// serve runs the accept loop until the listener closes. It is started
// once, by Start, once the coordinator exists.
func (s *respServer) serve() {
	defer close(s.acceptDone)
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: retry, but
			// without spinning, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.mu.Lock()
		full := len(s.conns) >= s.n.cfg.RESPMaxConns
		if !full {
			s.conns[c] = struct{}{}
			s.wg.Add(1)
		}
		s.mu.Unlock()
		if full {
			// Redis's own answer; the client sees it before EOF.
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(c, "-ERR max number of clients reached\r\n")
			_ = c.Close()
			continue
		}
		go s.serveConn(c)
	}
}

func (s *respServer) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
	}()
	sess := s.newSession(c.RemoteAddr().String())
	if err := s.serveStream(c, c, sess); err != nil {
		s.log.Debug("connection closed", zap.String("remote", sess.addr), zap.Error(err))
	}
}

// newSession is the state of one client connection.
func (s *respServer) newSession(addr string) *respSession {
	return &respSession{id: s.nextID.Add(1), addr: addr, authed: len(s.n.tokens) == 0}
}

// deadliner is the part of net.Conn that serveStream uses when it has one.
type deadliner interface{ SetWriteDeadline(time.Time) error }

// serveStream reads commands from r and writes replies to w until r ends,
// fails, sends something that is not RESP, or the client quits. Commands
// that arrive together (a pipeline) are all answered before one flush.
func (s *respServer) serveStream(r io.Reader, w io.Writer, sess *respSession) (err error) {
	lr := &limitedReader{r: r, limit: s.maxCommand}
	rd := redcon.NewReader(lr)
	wr := redcon.NewWriter(w)
	dl, _ := w.(deadliner)
	for {
		cmds, err := readCommands(rd)
		if err != nil {
			var perr protocolError
			if errors.As(err, &perr) {
				// As Redis: say why, then hang up.
				wr.WriteError("ERR Protocol error: " + string(perr))
				_ = wr.Flush()
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		lr.reset()
		quit := false
		for _, cmd := range cmds {
			if s.execute(wr, sess, cmd.Args) == actionClose {
				quit = true
				break
			}
		}
		if dl != nil {
			_ = dl.SetWriteDeadline(time.Now().Add(respWriteTimeout))
		}
		if err := wr.Flush(); err != nil {
			return fmt.Errorf("writing replies: %w", err)
		}
		if quit {
			return nil
		}
	}
}

// protocolError is input that is not RESP; the connection cannot go on.
type protocolError string

func (e protocolError) Error() string { return string(e) }

// readCommands is redcon's reader with its failures made safe: a panic in
// its parser and redcon's own protocol errors both become a protocolError.
func readCommands(rd *redcon.Reader) (cmds []redcon.Command, err error) {
	defer func() {
		if p := recover(); p != nil {
			cmds, err = nil, protocolError("malformed request")
		}
	}()
	cmds, err = rd.ReadCommands()
	if err != nil {
		if errors.Is(err, errCommandTooLarge) {
			return nil, protocolError(err.Error())
		}
		var ne net.Error
		if !errors.Is(err, io.EOF) && !errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) &&
			!errors.Is(err, io.ErrUnexpectedEOF) {
			// What remains are redcon's parse errors ("invalid bulk
			// length", "unbalanced quotes", ...).
			return nil, protocolError(err.Error())
		}
	}
	return cmds, err
}

var errCommandTooLarge = errors.New("command too large")

// limitedReader fails once more than limit bytes were read without a
// command completing: redcon buffers an unfinished command whole, so
// without it one connection could announce a huge bulk and grow the
// node's memory with every byte it sends.
type limitedReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n >= l.limit {
		return 0, fmt.Errorf("%w: more than %d bytes", errCommandTooLarge, l.limit)
	}
	if rest := l.limit - l.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

// reset starts counting again after commands completed. What is left in
// redcon's buffer is part of the next command and was already counted;
// forgetting it loosens the bound by at most one read.
func (l *limitedReader) reset() { l.n = 0 }

// stop closes the listener, lets every connection finish the commands it
// has read (their replies are written), then waits for the connections to
// end. When ctx ends first, commands still waiting for replicas are
// aborted and the connections closed.
func (s *respServer) stop(ctx context.Context) error {
	_ = s.ln.Close()
	<-s.acceptDone
	// A read deadline in the past ends every connection at its next read,
	// which comes after it has answered what it read.
	s.mu.Lock()
	for c := range s.conns {
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("node: draining Redis-protocol connections: %w", ctx.Err())
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.cancel()
	return err
}
