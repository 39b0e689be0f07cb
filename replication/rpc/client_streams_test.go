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
	"time"

	"github.com/dynkv/dynkv/replication/rpc/transport"
	"github.com/dynkv/dynkv/wal"
)

// TestMoreCallersThanThePeersStreamsAllComplete: many more concurrent calls
// to one peer than its HTTP/2 stream limit must all complete. Without the
// client's per-peer call slots, Go's strict-mode HTTP/2 client left most of
// them waiting for a stream until their deadline (Go 1.26.8: 6,566 of 9,000
// calls with 300 callers and 20 streams). The peer is a node of an older
// version (its RPC answers the transport's upgrade with 404), the only kind
// still called over HTTP/2; TestMoreCallersThanThePeersCapAllComplete is
// the transport's counterpart.
func TestMoreCallersThanThePeersStreamsAllComplete(t *testing.T) {
	const streams, callers, calls = 10, 120, 10
	st := benchStore(t, wal.SyncPolicy{Interval: 10 * time.Millisecond})
	set := benchSet(t)
	for i := range 50 {
		if _, err := st.Merge(0, fmt.Appendf(nil, "key-%d", i), set); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: (&Server{Store: st}).Handler(), Protocols: &protocols,
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: streams}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	c := newTestClient(t, ClientConfig{Timeout: 20 * time.Second, Retries: -1, MaxCallsPerPeer: streams})
	if failed := getConcurrently(t, c, ln.Addr().String(), callers, calls); failed > 0 {
		t.Fatalf("%d of %d calls failed with %d callers against %d streams", failed, callers*calls, callers, streams)
	}
	if c.Stats().HTTP2Peers != 1 {
		t.Fatalf("client stats %+v, want the peer called over HTTP/2", c.Stats())
	}
}

// getConcurrently runs callers goroutines of calls replica reads each
// (keys key-0 to key-49) and returns how many failed.
func getConcurrently(t *testing.T, c *Client, addr string, callers, calls int) int64 {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := range callers {
		wg.Go(func() {
			for i := range calls {
				key := fmt.Appendf(nil, "key-%d", (g+i)%50)
				if _, found, err := c.Get(context.Background(), addr, 0, key); err != nil || !found {
					if failed.Add(1) <= 3 {
						t.Errorf("get %s: found=%v err=%v", key, found, err)
					}
				}
			}
		})
	}
	wg.Wait()
	return failed.Load()
}

// TestMoreCallersThanThePeersCapAllComplete: over the transport, many more
// concurrent calls than the peer runs at once per connection (it announces
// its cap in the handshake, node: --rpc-max-calls) all complete: the client
// keeps to the cap and queues the rest itself, so none is refused busy and
// none runs into its deadline. The caller configures no bound of its own.
func TestMoreCallersThanThePeersCapAllComplete(t *testing.T) {
	checkLeaks(t)
	const limit, callers, calls = 10, 120, 10
	st := benchStore(t, wal.SyncPolicy{Interval: 10 * time.Millisecond})
	set := benchSet(t)
	for i := range 50 {
		if _, err := st.Merge(0, fmt.Appendf(nil, "key-%d", i), set); err != nil {
			t.Fatal(err)
		}
	}
	var running, most atomic.Int64
	p := startServer(t, &Server{Store: st}, serverConfig{maxCalls: limit, wrap: func(h transport.Handler) transport.Handler {
		return func(ctx context.Context, call byte, payload []byte) ([]byte, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(time.Millisecond) // long enough for the callers to pile up
			return h(ctx, call, payload)
		}
	}})
	c := newTestClient(t, ClientConfig{Timeout: 20 * time.Second, Retries: -1})
	if failed := getConcurrently(t, c, p.addr, callers, calls); failed > 0 {
		t.Fatalf("%d of %d calls failed with %d callers against a cap of %d", failed, callers*calls, callers, limit)
	}
	if m := most.Load(); m > limit {
		t.Fatalf("the peer ran %d calls at once, over its cap of %d", m, limit)
	}
	if refused := p.rpc.Stats().CallsRefused; refused > 0 {
		t.Fatalf("the peer refused %d calls at its cap, want none: the client keeps to it", refused)
	}
}

// TestCallWaitingForASlotEndsWithItsContext: a call that finds every slot
// of its peer taken waits no longer than its context, over HTTP/2 (the
// client's MaxCallsPerPeer) and over the transport (the peer's cap).
func TestCallWaitingForASlotEndsWithItsContext(t *testing.T) {
	t.Run(ViaHTTP2, testCallWaitingForASlotEndsWithItsContextHTTP2)
	t.Run(ViaTransport, func(t *testing.T) {
		b := &blocking{release: make(chan struct{})}
		var entered sync.WaitGroup
		entered.Add(1)
		var once sync.Once
		p := startServer(t, &Server{Store: openStore(t)}, serverConfig{maxCalls: 1, wrap: func(h transport.Handler) transport.Handler {
			wait := b.wrap(h)
			return func(ctx context.Context, call byte, payload []byte) ([]byte, error) {
				once.Do(entered.Done)
				return wait(ctx, call, payload)
			}
		}})
		t.Cleanup(b.open)
		c := newTestClient(t, ClientConfig{Timeout: 30 * time.Second, Retries: -1})
		go func() { _, _, _ = c.Get(context.Background(), p.addr, 0, []byte("k")) }()
		entered.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, _, err := c.Get(ctx, p.addr, 0, []byte("k"))
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second call with the peer's one slot taken and a 50ms deadline: %v, want context.DeadlineExceeded", err)
		}
	})
}

func testCallWaitingForASlotEndsWithItsContextHTTP2(t *testing.T) {
	release := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(1)
	var once sync.Once
	p := startPeer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(entered.Done)
		<-release
		http.Error(w, "late", http.StatusServiceUnavailable)
	}))
	defer close(release)
	c := newTestClient(t, ClientConfig{Timeout: 30 * time.Second, Retries: -1, MaxCallsPerPeer: 1})
	go func() { _, _, _ = c.Get(context.Background(), p.addr, 0, []byte("k")) }()
	entered.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := c.Get(ctx, p.addr, 0, []byte("k"))
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("second call with every slot taken and a cancelled context: %v, want context.Canceled", err)
	}
}
