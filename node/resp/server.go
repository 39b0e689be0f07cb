// Package resp serves the Redis protocol (SPEC section 4) in front of a
// Backend: the node's coordinator, or a fake one in tests.
package resp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynkv/dynkv/internal/defaults"
	"github.com/dynkv/dynkv/node/internal/frontend"
	"github.com/dynkv/dynkv/node/metrics"
	"github.com/dynkv/dynkv/vclock"

	"github.com/tidwall/redcon"
	"go.uber.org/zap"
)

// respWriteTimeout bounds one flush of replies to a client, so that a
// client that stops reading cannot pin its connection's goroutine forever.
const respWriteTimeout = time.Minute

// respReplyBufferSize is how many bytes of replies to a pipeline are held
// before they are written, even though more commands are waiting.
const respReplyBufferSize = 64 << 10

// respCommandOverhead is what a command may carry beyond its values: keys,
// option words and framing.
const respCommandOverhead = 1 << 20

// respMaxReply bounds the values one MGET may return (or the largest
// command, 4 × --max-value-bytes + 1 MiB, when that is more): the reply is
// built in memory before it is written, and without a bound one command
// naming a large key a million times would ask for a terabyte.
const respMaxReply = 64 << 20

// Backend is what the Redis protocol needs of a node: reads and writes
// through the coordinator, the node's in-flight slots (which HTTP shares,
// so that one front end cannot starve the other), and the cluster's size
// for INFO.
type Backend interface {
	// Get reads key of database db at the configured read quorum; found
	// is false when no replica holds it.
	Get(ctx context.Context, db int, key []byte) (set vclock.Set, found bool, err error)
	// Put writes sib under key at the configured write quorum,
	// superseding vc, or with blind what the replicas hold.
	Put(ctx context.Context, db int, key []byte, vc vclock.Context, blind bool, sib vclock.Sibling) error
	// Acquire takes an in-flight slot; ok is false when none is free.
	Acquire() (release func(), ok bool)
	// ClusterSize is the number of members of the committed ring (0
	// before there is one).
	ClusterSize() int
}

// Config is what the server needs of the node's configuration. The zero
// value serves one database with no authentication (see withDefaults).
type Config struct {
	Databases     int   // --databases
	MaxValueBytes int64 // --max-value-bytes
	// MaxConns bounds the connections open at once (--resp-max-conns).
	MaxConns int
	// IdleTimeout closes a connection that sends nothing for that long
	// (--resp-idle-timeout); zero never does.
	IdleTimeout time.Duration
	// MaxBufferBytes bounds the memory of the commands every connection
	// is reading or executing (--resp-max-buffer-bytes).
	MaxBufferBytes int64

	// Shared: the AUTH passwords (--auth-token; none turns AUTH off)
	// and their guard, the metrics, the logger and the clock.
	frontend.Shared

	// Info is what INFO says about the node.
	Info Info
}

// Info is the server section of INFO.
type Info struct {
	NodeID                            string
	Version                           string
	Replicas, ReadQuorum, WriteQuorum int
}

// Defaults of the fields a zero Config leaves empty.
const (
	DefaultMaxValueBytes  = 1 << 20
	DefaultMaxConns       = 10000
	DefaultMaxBufferBytes = 256 << 20
)

func (c Config) withDefaults() Config {
	if c.Databases <= 0 {
		c.Databases = 1
	}
	if c.MaxValueBytes <= 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxBufferBytes <= 0 {
		c.MaxBufferBytes = max(DefaultMaxBufferBytes, 4*c.MaxValueBytes+respCommandOverhead)
	}
	c.Shared = c.Shared.WithDefaults()
	defaults.Set(&c.Info.Version, "dev")
	return c
}

// Server serves the Redis protocol (SPEC section 4) on its own listener.
// redcon writes the replies; respReader parses requests (see there why),
// and the accept loop and the per-connection loops are ours rather than
// redcon.Server's, which cannot drain: Shutdown waits for the connections
// it serves.
type Server struct {
	cfg     Config
	backend Backend
	ln      net.Listener
	log     *zap.Logger
	metrics *metrics.Metrics

	// ctx is cancelled only when a graceful drain ran out of time: it
	// aborts coordinator calls still waiting for replicas.
	ctx    context.Context
	cancel context.CancelFunc

	// maxCommand bounds the argument bytes of one command (an MSET of
	// several large values still fits).
	maxCommand int64
	nextID     atomic.Int64

	// maxReply bounds the bytes of values one MGET gathers for its reply.
	maxReply int64

	// budget bounds the memory of the commands every connection is
	// reading or executing (--resp-max-buffer-bytes).
	budget *respBudget

	started    atomic.Bool
	acceptDone chan struct{}
	wg         sync.WaitGroup // one per connection goroutine
	// stopping is set by stop before it ends every connection's reads, so
	// that the idle timeout does not push that deadline back.
	stopping atomic.Bool

	// mu guards conns: the accept loop adds, connection goroutines
	// remove, and shutdown walks it to end every connection's reads.
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// New is a server that will accept on ln (already wrapped in TLS when the
// node serves TLS) and run commands against b. Nothing is accepted until
// Start.
func New(ln net.Listener, b Backend, cfg Config) *Server {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:        cfg,
		backend:    b,
		ln:         ln,
		log:        cfg.Logger,
		metrics:    cfg.Metrics,
		ctx:        ctx,
		cancel:     cancel,
		maxCommand: MaxCommandBytes(cfg.MaxValueBytes),
		maxReply:   max(respMaxReply, MaxCommandBytes(cfg.MaxValueBytes)),
		budget:     newRESPBudget(cfg.MaxBufferBytes, cfg.Metrics.Limits.RESPBufferBytes),
		acceptDone: make(chan struct{}),
		conns:      make(map[net.Conn]struct{}),
	}
}

// MaxCommandBytes is the largest command a server with --max-value-bytes
// limit reads: an MSET of several large values still fits.
// --resp-max-buffer-bytes must hold it.
func MaxCommandBytes(maxValueBytes int64) int64 {
	return 4*maxValueBytes + respCommandOverhead
}

// Addr is the address the server listens on; empty for a server made
// without a listener (tests that feed it streams).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Start runs the accept loop in its own goroutine until Stop.
func (s *Server) Start() {
	if s.started.Swap(true) {
		return
	}
	go s.serve()
}

// serve runs the accept loop until the listener closes.
func (s *Server) serve() {
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
		full := len(s.conns) >= s.cfg.MaxConns
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

func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
	}()
	sess := s.newSession(c.RemoteAddr().String())
	var r io.Reader = c
	if idle := s.cfg.IdleTimeout; idle > 0 {
		r = &idleReader{c: c, idle: idle, stopping: &s.stopping}
	}
	err := s.serveStream(r, c, sess)
	if err != nil {
		s.log.Debug("connection closed", zap.String("remote", sess.addr), zap.Error(err))
	}
	var perr protocolError
	if errors.As(err, &perr) {
		lingerClose(c)
	}
}

// After a protocol error the client may still be sending the rest of what
// it announced; closing a socket with unread input sends a reset, which
// can destroy the error reply before the client reads it. So the
// connection is half-closed and drained, for at most respLinger and
// respLingerBytes, before it is closed.
const (
	respLinger      = time.Second
	respLingerBytes = 256 << 10
)

func lingerClose(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return // TLS: the close alert is what the client reads
	}
	if tc.CloseWrite() != nil {
		return
	}
	_ = tc.SetReadDeadline(time.Now().Add(respLinger))
	_, _ = io.CopyN(io.Discard, tc, respLingerBytes)
}

// newSession is the state of one client connection.
func (s *Server) newSession(addr string) *respSession {
	return &respSession{id: s.nextID.Add(1), addr: addr, authed: len(s.cfg.Tokens) == 0}
}

// idleReader closes an idle connection (--resp-idle-timeout, Redis's
// "timeout"): every read must see a byte within idle of its start. A
// command that is executing does not read, so a slow quorum never counts
// as idleness; a client that sends nothing, or trickles a command slower
// than that, is cut off.
type idleReader struct {
	c        net.Conn
	idle     time.Duration
	stopping *atomic.Bool
}

func (r *idleReader) Read(p []byte) (int, error) {
	if !r.stopping.Load() {
		_ = r.c.SetReadDeadline(time.Now().Add(r.idle))
		// stop sets stopping before it sets a past deadline: if it
		// ran in between, its deadline was overwritten; restore it.
		if r.stopping.Load() {
			_ = r.c.SetReadDeadline(time.Now())
		}
	}
	return r.c.Read(p)
}

// deadliner is the part of net.Conn that serveStream uses when it has one.
type deadliner interface{ SetWriteDeadline(time.Time) error }

// serveStream reads commands from r and writes replies to w until r ends,
// fails, sends something that is not RESP, or the client quits. Replies
// to commands that arrive together (a pipeline) go out in one write, after
// the last of them, or before the connection waits for more input.
func (s *Server) serveStream(r io.Reader, w io.Writer, sess *respSession) error {
	wr := redcon.NewWriter(w)
	dl, _ := w.(deadliner)
	flush := func() error {
		// The deadline is absolute: set it afresh for every write, or a
		// reply after a long idle spell would fail at once.
		if dl != nil {
			_ = dl.SetWriteDeadline(time.Now().Add(respWriteTimeout))
		}
		return wr.Flush()
	}
	// Replies held for the rest of a pipeline go out before the reader
	// waits for more input: the rest may be an unfinished command (AUTH,
	// then a large SET still arriving), and the client may be waiting
	// for those replies.
	r = &flushBeforeRead{r: r, flush: func() error {
		if len(wr.Buffer()) == 0 {
			return nil
		}
		if err := flush(); err != nil {
			return fmt.Errorf("writing replies: %w", err)
		}
		return nil
	}}
	// Arguments up to the read buffer's size are kept even when the
	// limit is lower, so that a long key or value gets the command's own
	// error rather than this generic one.
	rd := newRESPReader(r, max(s.cfg.MaxValueBytes, respReadBufferSize), s.maxCommand)
	rd.budget = s.budget
	defer rd.release()
	for {
		// Before AUTH only small commands are read (respUnauthMaxArgs).
		rd.unauth = !sess.authed
		args, err := rd.readCommand()
		var tooLarge *argTooLargeError
		switch {
		case errors.As(err, &tooLarge):
			wr.WriteError("ERR " + tooLarge.Error())
		case errors.Is(err, errRESPBufferFull):
			s.metrics.Limits.RESPRefused.WithLabelValues(metrics.RefusedBuffer).Inc()
			wr.WriteError(respErrBufferFull)
		case err != nil:
			var perr protocolError
			if errors.As(err, &perr) {
				switch {
				case perr == errUnauthMultibulk || perr == errUnauthBulk:
					s.metrics.Limits.RESPRefused.WithLabelValues(metrics.RefusedUnauthenticated).Inc()
				case strings.HasPrefix(string(perr), "command too large"):
					s.metrics.Limits.RESPRefused.WithLabelValues(metrics.RefusedTooLarge).Inc()
				}
				// As Redis: say why, then hang up.
				wr.WriteError("ERR Protocol error: " + string(perr))
			}
			// Replies to what came before still go out.
			_ = flush()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case len(args) > 0:
			if s.execute(wr, sess, args) == actionClose {
				return flush()
			}
		}
		// The command is done: its memory goes back to the budget.
		rd.release()
		// A long pipeline's replies go out in pieces, so that their
		// memory stays bounded: at most respReplyBufferSize plus one
		// reply (a GET's value, or an MGET's, bounded by maxReply) are
		// held, whatever the pipeline's length. A client that pipelines
		// and never reads blocks the flush once the socket buffers fill;
		// its connection reads nothing more meanwhile (so its input
		// stays in the kernel and the read buffer) and is closed after
		// respWriteTimeout. redcon drops a buffer that grew past 256 KiB
		// after the flush, so one large reply does not stay allocated.
		if rd.buffered() && len(wr.Buffer()) < respReplyBufferSize {
			continue
		}
		if err := flush(); err != nil {
			return fmt.Errorf("writing replies: %w", err)
		}
	}
}

// flushBeforeRead calls flush before every read of r: the connection's
// reader reads from the socket only when what it buffered does not hold
// the next command.
type flushBeforeRead struct {
	r     io.Reader
	flush func() error
}

func (f *flushBeforeRead) Read(p []byte) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.r.Read(p)
}

// protocolError is input that is not RESP; the connection cannot go on.
type protocolError string

func (e protocolError) Error() string { return string(e) }

// Stop closes the listener, lets every connection finish the commands it
// has read (their replies are written), then waits for the connections to
// end. When ctx ends first, commands still waiting for replicas are
// aborted and the connections closed. A server that was never started
// only closes its listener.
func (s *Server) Stop(ctx context.Context) error {
	_ = s.ln.Close()
	if s.started.Swap(true) {
		<-s.acceptDone
	}
	// A read deadline in the past ends every connection at its next read,
	// which comes after it has answered what it read.
	s.stopping.Store(true)
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
		err = fmt.Errorf("resp: draining Redis-protocol connections: %w", ctx.Err())
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
