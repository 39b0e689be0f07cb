package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dynkv/dynkv/replication/internal/reptest"
	"github.com/dynkv/dynkv/replication/rpc/transport"
)

// Shared test helpers (replication/internal/reptest), by the names the
// tests of this package have always used.
var (
	checkLeaks = reptest.CheckLeaks
	openStore  = reptest.OpenStore
	sampleSet  = reptest.SampleSet
	ctxTimeout = reptest.Ctx
)

// countingListener counts the TCP connections a server accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// peer is a node's HTTP server as node runs it: HTTP/1 and h2c on one
// port, the RPC handler under PathPrefix and, unless the peer plays a node
// of an older version, the transport at transport.DefaultPath.
type peer struct {
	addr     string
	listener *countingListener
	srv      *http.Server
	rpc      *transport.Server // nil: the upgrade answers 404, as an older node's
	upgrades atomic.Int64      // upgrade requests that reached the transport
	done     chan struct{}
	stopOnce sync.Once
}

// startPeer serves h as a node of an older version does: the HTTP/2 RPC
// only, the transport's upgrade answered with 404, so that the client
// reaches h through its fallback.
func startPeer(t testing.TB, h http.Handler) *peer {
	t.Helper()
	return startPeerAt(t, "127.0.0.1:0", h)
}

func startPeerAt(t testing.TB, addr string, h http.Handler) *peer {
	t.Helper()
	return listenPeer(t, addr, h, nil, http.NotFoundHandler())
}

// serverConfig is how a test serves a Server as node does.
type serverConfig struct {
	keys     *transport.Keyring                        // the keyed handshake (node: from --gossip-key)
	maxCalls int                                       // transport.Server.MaxConcurrentCalls
	wrap     func(transport.Handler) transport.Handler // around ServeCall (injected failures)
	addr     string                                    // default 127.0.0.1:0
}

// startServer serves srv as node does: ServeCall behind a transport.Server
// (with srv.Authorize on the upgrade) and srv.Handler for the HTTP/2 RPC.
func startServer(t testing.TB, srv *Server, sc serverConfig) *peer {
	t.Helper()
	h := transport.Handler(srv.ServeCall)
	if sc.wrap != nil {
		h = sc.wrap(h)
	}
	ts := &transport.Server{Handler: h, Keys: sc.keys, Authorize: srv.Authorize, MaxConcurrentCalls: sc.maxCalls}
	if sc.addr == "" {
		sc.addr = "127.0.0.1:0"
	}
	return listenPeer(t, sc.addr, srv.Handler(), ts, nil)
}

// listenPeer serves h under PathPrefix and, at transport.DefaultPath, ts
// or, without one, old (what a node of an older version answers there).
func listenPeer(t testing.TB, addr string, h http.Handler, ts *transport.Server, old http.Handler) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	p := &peer{
		addr:     ln.Addr().String(),
		listener: &countingListener{Listener: ln},
		rpc:      ts,
		done:     make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.Handle(PathPrefix, h)
	mux.HandleFunc(transport.DefaultPath, func(w http.ResponseWriter, r *http.Request) {
		if ts == nil {
			old.ServeHTTP(w, r)
			return
		}
		p.upgrades.Add(1)
		ts.ServeHTTP(w, r)
	})
	p.srv = &http.Server{Handler: mux, Protocols: &protocols}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(p.listener)
	}()
	t.Cleanup(p.stop)
	return p
}

// stop closes the server and its connections, the transport's (which
// net/http no longer tracks once upgraded) included, and waits for Serve
// to end.
func (p *peer) stop() {
	p.stopOnce.Do(func() {
		_ = p.srv.Close()
		<-p.done
		if p.rpc != nil {
			_ = p.rpc.Close()
		}
	})
}

// via is how a test reaches its peer.
type via struct {
	name  string
	start func(t testing.TB, srv *Server) *peer
}

// bothWays are the transport (current nodes) and the HTTP/2 RPC through
// the client's fallback (a peer of an older version).
var bothWays = []via{
	{ViaTransport, func(t testing.TB, srv *Server) *peer { return startServer(t, srv, serverConfig{}) }},
	{ViaHTTP2, func(t testing.TB, srv *Server) *peer { return startPeer(t, srv.Handler()) }},
}

// eachWay runs f once per way in (bothWays), as subtests.
func eachWay(t *testing.T, f func(t *testing.T, w via)) {
	t.Helper()
	for _, w := range bothWays {
		t.Run(w.name, func(t *testing.T) { f(t, w) })
	}
}

func newTestClient(t testing.TB, cfg ClientConfig) *Client {
	t.Helper()
	c := NewClient(cfg)
	t.Cleanup(c.Close)
	return c
}

// flaky wraps h and fails the first n requests it sees with fail; calls
// counts every request.
type flaky struct {
	h     http.Handler
	n     int64
	fail  func(w http.ResponseWriter)
	calls atomic.Int64
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.calls.Add(1) <= f.n {
		f.fail(w)
		return
	}
	f.h.ServeHTTP(w, r)
}

// flakyCalls is flaky for the transport: it fails the first n calls with
// an error frame of code fail (as the handler would), or, when fail is 0,
// with a handler panic.
type flakyCalls struct {
	n     int64
	fail  ErrorCode
	calls atomic.Int64
}

func (f *flakyCalls) wrap(h transport.Handler) transport.Handler {
	return func(ctx context.Context, call byte, payload []byte) ([]byte, error) {
		if f.calls.Add(1) <= f.n {
			if f.fail == 0 {
				panic("injected panic")
			}
			return nil, callError(errorFrame{Code: f.fail, Message: fmt.Sprintf("injected %s", f.fail), Index: -1})
		}
		return h(ctx, call, payload)
	}
}

func failWith(code ErrorCode) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.WriteHeader(code.status())
		_, _ = w.Write(encodeError(errorFrame{Code: code, Message: fmt.Sprintf("injected %s", code), Index: -1}))
	}
}

// blocking is a handler that holds every request until release is closed
// or the request is cancelled.
type blocking struct {
	release chan struct{}
	once    sync.Once
}

func (b *blocking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case <-b.release:
	case <-r.Context().Done():
	}
	w.WriteHeader(http.StatusInternalServerError)
}

func (b *blocking) open() { b.once.Do(func() { close(b.release) }) }

// wrap is blocking for the transport: every call waits likewise.
func (b *blocking) wrap(transport.Handler) transport.Handler {
	return func(ctx context.Context, _ byte, _ []byte) ([]byte, error) {
		select {
		case <-b.release:
		case <-ctx.Done():
		}
		return nil, errors.New("blocked")
	}
}
