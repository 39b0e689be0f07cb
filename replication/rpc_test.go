package replication

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/wal"
)

// checkLeaks fails t if a goroutine started during the test outlives it.
// Call it first, so that its cleanup runs after every other one.
func checkLeaks(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{
		goleak.IgnoreCurrent(),
		// goleveldb's memdb pool drainer outlives Close by up to a second
		// by design, then exits.
		goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"),
	}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

func openStore(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(store.Options{
		Dir: t.TempDir(),
		// Durability is not under test here; interval fsync keeps the
		// tests about the RPC, not the disk.
		Sync:               wal.SyncPolicy{Interval: 10 * time.Millisecond},
		MinFreeBytes:       1,
		CheckpointInterval: time.Hour,
		ReclaimInterval:    time.Hour,
	})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("store.Close: %v", err)
		}
	})
	return s
}

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
// port, the RPC handler under PathPrefix.
type peer struct {
	addr     string
	listener *countingListener
	srv      *http.Server
	done     chan struct{}
}

func startPeer(t testing.TB, h http.Handler) *peer {
	t.Helper()
	return startPeerAt(t, "127.0.0.1:0", h)
}

func startPeerAt(t testing.TB, addr string, h http.Handler) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	mux := http.NewServeMux()
	mux.Handle(PathPrefix, h)
	p := &peer{
		addr:     ln.Addr().String(),
		listener: &countingListener{Listener: ln},
		srv:      &http.Server{Handler: mux, Protocols: &protocols},
		done:     make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(p.listener)
	}()
	t.Cleanup(p.stop)
	return p
}

// stop closes the server and its connections and waits for Serve to end.
func (p *peer) stop() {
	_ = p.srv.Close()
	<-p.done
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

func ctxTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
