package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynkv/dynkv/node/metrics"
	"go.uber.org/zap"
)

// Refusing a connection beyond --http-max-conns.
const (
	// refuseWriteTimeout bounds the write of the 429 response: a fresh
	// connection's send buffer is empty, so it does not block in practice.
	// It is generous because a node under overload may not run the
	// refusing goroutine for a while between setting the deadline and
	// writing (CI, -race on two busy cores: a 100ms deadline expired
	// there and the client got a reset instead of the 429).
	refuseWriteTimeout = 2 * time.Second
	// refuseLinger is how long a refused connection is drained after the
	// 429 before it is closed, as net/http does after an error reply:
	// closing a socket with unread input sends a reset, which may
	// destroy the 429 before the client has read it. A read past its
	// deadline returns at once without the bytes already received, so a
	// linger shorter than a starved node's scheduling delay resets too.
	// A client that closes after the 429 ends the drain at once.
	refuseLinger = 2 * time.Second
	// refuseDrainBytes is the most a refused connection is drained of, as
	// much as net/http drains of a body its handler left unread.
	refuseDrainBytes = 256 << 10
	// maxRefusing bounds the refused connections being answered at
	// once; beyond it they are closed at once, without a 429, so that a
	// flood cannot grow goroutines or sockets without bound.
	maxRefusing = 1024
	// refuseLogEvery rate-limits the warning about refused connections.
	refuseLogEvery = 10 * time.Second
)

// connLimiter is a listener that admits at most max open connections.
// Accept never blocks on the limit: a backlog of connections waiting in the
// kernel's accept queue is collapse (every client times out), not
// shedding. A connection beyond the limit is answered at once instead:
//
//   - on a plain-text port with a complete "HTTP/1.1 429 Too Many
//     Requests" response (Connection: close, Retry-After: 1, the SPEC's
//     JSON error body), after which the server half-closes, drains what
//     the client sent for a moment and closes;
//   - under TLS the response cannot be written before a handshake, and
//     handshaking with a client the node has no room for would spend the
//     CPU the limit protects, so the connection is simply closed: the
//     client sees EOF (or a reset) during its handshake.
//
// An HTTP/2 client speaking h2c with prior knowledge reads the 429 as a
// malformed server preface and fails the connection, which is what it
// should do.
//
// Node-to-node RPC shares the HTTP port: every peer holds one transport
// connection to this node (taken over from net/http, it keeps its place
// here until it closes; an older peer holds an HTTP/2 connection instead),
// so --http-max-conns must allow one per peer on top of the clients, or
// peers' replica calls are refused with the clients' (an upgrade refused
// with 429 reaches the peer as ErrBusy: unavailable, retried).
type connLimiter struct {
	net.Listener
	max      int64
	tls      bool
	body     string // the 429 response, ready to write
	log      *zap.Logger
	m        *metrics.Metrics
	open     atomic.Int64
	refusing atomic.Int64

	logMu      sync.Mutex
	lastLog    time.Time
	unreported int64 // refusals since the last warning
}

// LimitConns wraps the HTTP listener ln in the --http-max-conns limit of
// max connections; tls says ln serves TLS (a refusal is then a close, see
// above). m counts the open and refused connections.
func LimitConns(ln net.Listener, max int, tls bool, m *metrics.Metrics, log *zap.Logger) net.Listener {
	msg := fmt.Sprintf(`{"error":"too many connections: the node serves at most %d at once, retry later"}`, max)
	return &connLimiter{
		Listener: ln,
		max:      int64(max),
		tls:      tls,
		body: "HTTP/1.1 429 Too Many Requests\r\n" +
			"Content-Type: application/json\r\n" +
			"Retry-After: 1\r\n" +
			"Connection: close\r\n" +
			"Content-Length: " + strconv.Itoa(len(msg)+1) + "\r\n" +
			"\r\n" + msg + "\n",
		log: log,
		m:   m,
	}
}

// Accept returns the next connection within the limit, answering every
// one beyond it on the way.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			l.m.HTTPConnsOpen.Inc()
			return &limitedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refuse(c)
	}
}

// refuse answers a connection beyond the limit without blocking Accept.
func (l *connLimiter) refuse(c net.Conn) {
	l.m.HTTPConnsRefused.Inc()
	l.warn()
	if l.tls || l.refusing.Add(1) > maxRefusing {
		if !l.tls {
			l.refusing.Add(-1)
		}
		_ = c.Close()
		return
	}
	go func() {
		defer l.refusing.Add(-1)
		defer c.Close()
		_ = c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		if _, err := io.WriteString(c, l.body); err != nil {
			return
		}
		// Half-close, then read (and drop) what the client sent until
		// it closes or the linger runs out, so that the close does not
		// reset the connection under the 429.
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_ = c.SetReadDeadline(time.Now().Add(refuseLinger))
		_, _ = io.CopyN(io.Discard, c, refuseDrainBytes)
	}()
}

// warn logs refused connections at most once per refuseLogEvery, with the
// count since the last warning.
func (l *connLimiter) warn() {
	l.logMu.Lock()
	defer l.logMu.Unlock()
	l.unreported++
	if now := time.Now(); now.Sub(l.lastLog) >= refuseLogEvery {
		l.log.Warn("refusing HTTP connections: --http-max-conns reached",
			zap.Int64("max_conns", l.max), zap.Int64("refused_since_last_warning", l.unreported))
		l.lastLog, l.unreported = now, 0
	}
}

// limitedConn gives its place back when it is closed, once.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		c.l.m.HTTPConnsOpen.Dec()
	})
	return err
}

// CloseWrite lets net/http half-close a connection it ends after an error
// reply, as it does on a bare *net.TCPConn.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("node: connection cannot half-close")
}
