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

	"github.com/dynkv/dynkv/wal"
)

// TestMoreCallersThanThePeersStreamsAllComplete: many more concurrent calls
// to one peer than its HTTP/2 stream limit must all complete. Without the
// client's per-peer call slots, Go's strict-mode HTTP/2 client left most of
// them waiting for a stream until their deadline (Go 1.26.8: 6,566 of 9,000
// calls with 300 callers and 20 streams).
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
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: (&Server{Store: st}).Handler(), Protocols: &protocols,
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: streams}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	c := newTestClient(t, ClientConfig{Timeout: 20 * time.Second, Retries: -1, MaxCallsPerPeer: streams})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := range callers {
		wg.Go(func() {
			for i := range calls {
				key := fmt.Appendf(nil, "key-%d", (g+i)%50)
				if _, found, err := c.Get(context.Background(), ln.Addr().String(), 0, key); err != nil || !found {
					if failed.Add(1) <= 3 {
						t.Errorf("get %s: found=%v err=%v", key, found, err)
					}
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d calls failed with %d callers against %d streams", n, callers*calls, callers, streams)
	}
}

// TestCallWaitingForASlotEndsWithItsContext: a call that finds every slot
// of its peer taken waits no longer than its context.
func TestCallWaitingForASlotEndsWithItsContext(t *testing.T) {
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
