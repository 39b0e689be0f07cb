package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynkv/dynkv/replication/rpc/transport"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

func TestGetAndMergeReachTheRemoteStore(t *testing.T) {
	checkLeaks(t)
	eachWay(t, testGetAndMergeReachTheRemoteStore)
}

func testGetAndMergeReachTheRemoteStore(t *testing.T, w via) {
	st := openStore(t)
	p := w.start(t, &Server{Store: st})
	c := newTestClient(t, ClientConfig{})
	ctx := ctxTimeout(t)

	if _, found, err := c.Get(ctx, p.addr, 1, []byte("k")); err != nil || found {
		t.Fatalf("Get of an absent key: found=%v err=%v, want not found and no error", found, err)
	}
	in := sampleSet("v1")
	if err := c.Merge(ctx, p.addr, 1, []byte("k"), in); err != nil {
		t.Fatalf("Merge: %v", err)
	}
	local, err := st.Get(1, []byte("k"))
	if err != nil || !local.Equal(in) {
		t.Fatalf("remote store holds %v (%v), want the merged set %v", local, err, in)
	}
	got, found, err := c.Get(ctx, p.addr, 1, []byte("k"))
	if err != nil || !found || !got.Equal(in) {
		t.Fatalf("Get: %v found=%v err=%v, want %v", got, found, err, in)
	}
	// Merging again is a no-op, which is why merge may be retried.
	if err := c.Merge(ctx, p.addr, 1, []byte("k"), in); err != nil {
		t.Fatalf("second Merge: %v", err)
	}
	if again, _ := st.Get(1, []byte("k")); !again.Equal(in) {
		t.Fatalf("after a repeated merge the store holds %v, want %v", again, in)
	}
}

func TestMergeBatchAppliesItemsUpToTheFirstFailure(t *testing.T) {
	checkLeaks(t)
	eachWay(t, testMergeBatchAppliesItemsUpToTheFirstFailure)
}

func testMergeBatchAppliesItemsUpToTheFirstFailure(t *testing.T, w via) {
	st := openStore(t)
	p := w.start(t, &Server{Store: st})
	c := newTestClient(t, ClientConfig{})
	ctx := ctxTimeout(t)

	good := []Item{{DB: 0, Key: []byte("a"), Set: sampleSet("a")}, {DB: 5, Key: []byte("b"), Set: sampleSet("b")}}
	if err := c.MergeBatch(ctx, p.addr, good); err != nil {
		t.Fatalf("MergeBatch: %v", err)
	}
	for _, it := range good {
		if s, err := st.Get(it.DB, it.Key); err != nil || !s.Equal(it.Set) {
			t.Fatalf("item %s: store holds %v (%v), want %v", it.Key, s, err, it.Set)
		}
	}

	// Database 200 is out of range for a 16-database store.
	bad := []Item{
		{DB: 1, Key: []byte("c"), Set: sampleSet("c")},
		{DB: 1, Key: []byte("d"), Set: sampleSet("d")},
		{DB: 200, Key: []byte("e"), Set: sampleSet("e")},
		{DB: 1, Key: []byte("f"), Set: sampleSet("f")},
	}
	err := c.MergeBatch(ctx, p.addr, bad)
	var re *RemoteError
	if !errors.As(err, &re) || re.Index != 2 || !errors.Is(err, store.ErrBadDatabase) {
		t.Fatalf("MergeBatch with a bad item at index 2: %v, want a RemoteError at index 2 wrapping store.ErrBadDatabase", err)
	}
	for _, k := range []string{"c", "d"} {
		if _, err := st.Get(1, []byte(k)); err != nil {
			t.Errorf("item %s before the failure: %v, want it applied", k, err)
		}
	}
	if _, err := st.Get(1, []byte("f")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("item f after the failure: %v, want it not applied", err)
	}
}

func TestCoordinateRunsTheCallbackWithTheRequest(t *testing.T) {
	checkLeaks(t)
	eachWay(t, testCoordinateRunsTheCallbackWithTheRequest)
}

func testCoordinateRunsTheCallbackWithTheRequest(t *testing.T, w via) {
	st := openStore(t)
	want := sampleWrite()
	var got WriteRequest
	srv := &Server{Store: st, Coordinate: func(_ context.Context, req WriteRequest) (WriteResult, error) {
		got = req
		// As if the coordinator had learnt the request's dots from the
		// other replicas: a context is clamped to what replicas hold.
		_, ctx, err := st.Write(req.DB, req.Key, "node-b", store.Supersede{Context: req.Context, Known: req.Context}, req.Sibling)
		return WriteResult{Context: ctx}, err
	}}
	p := w.start(t, srv)
	c := newTestClient(t, ClientConfig{})

	res, err := c.Coordinate(ctxTimeout(t), p.addr, want)
	if err != nil {
		t.Fatalf("Coordinate: %v", err)
	}
	if got.DB != want.DB || !bytes.Equal(got.Key, want.Key) || !got.Context.Equal(want.Context) ||
		!sameSibling(got.Sibling, want.Sibling) || got.W != want.W {
		t.Fatalf("callback saw %+v, want %+v", got, want)
	}
	set, err := st.Get(want.DB, want.Key)
	if err != nil || len(set.Siblings) != 1 {
		t.Fatalf("store after the write: %v (%v), want one sibling", set, err)
	}
	if dot := set.Siblings[0].Dot; !res.Context.Covers(dot) || want.Context.Compare(res.Context) != vclock.Before {
		t.Fatalf("result context %v must cover the new dot %v and follow the request context %v", res.Context, dot, want.Context)
	}
}

func TestCoordinateWithoutACoordinatorIsUnavailable(t *testing.T) {
	checkLeaks(t)
	eachWay(t, func(t *testing.T, w via) {
		p := w.start(t, &Server{Store: openStore(t)})
		c := newTestClient(t, ClientConfig{})
		_, err := c.Coordinate(ctxTimeout(t), p.addr, sampleWrite())
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Coordinate with no callback: %v, want ErrUnavailable", err)
		}
	})
}

// TestErrorsCrossTheWireAsTheSameSentinels: what the peer's store or
// coordinator returned is what the caller can test for.
func TestErrorsCrossTheWireAsTheSameSentinels(t *testing.T) {
	checkLeaks(t)
	eachWay(t, testErrorsCrossTheWireAsTheSameSentinels)
}

func testErrorsCrossTheWireAsTheSameSentinels(t *testing.T, w via) {
	var next error
	srv := &Server{Store: openStore(t), Coordinate: func(context.Context, WriteRequest) (WriteResult, error) {
		return WriteResult{}, next
	}}
	p := w.start(t, srv)
	c := newTestClient(t, ClientConfig{Retries: -1})
	for _, want := range []error{
		store.ErrDiskFull, store.ErrClosed, store.ErrNotFound, store.ErrBadDatabase, store.ErrBadKey,
		ErrBadRequest, ErrUnavailable, ErrInternal,
	} {
		next = fmt.Errorf("coordinator: write k: %w", want)
		_, err := c.Coordinate(ctxTimeout(t), p.addr, sampleWrite())
		var re *RemoteError
		if !errors.Is(err, want) || !errors.As(err, &re) || re.Peer != p.addr || re.Call != "coordinate" {
			t.Errorf("peer failed with %q; caller got %v, want a RemoteError wrapping %v", next, err, want)
		}
	}

	next = fmt.Errorf("coordinator: %w", &QuorumError{Needed: 3, Acked: 1})
	_, err := c.Coordinate(ctxTimeout(t), p.addr, sampleWrite())
	var qe *QuorumError
	if !errors.As(err, &qe) || qe.Needed != 3 || qe.Acked != 1 || !errors.Is(err, ErrQuorum) {
		t.Fatalf("peer failed with a quorum error; caller got %v, want *QuorumError{3, 1} matching ErrQuorum", err)
	}

	next = errors.New("something unexpected")
	if _, err := c.Coordinate(ctxTimeout(t), p.addr, sampleWrite()); !errors.Is(err, ErrInternal) {
		t.Fatalf("peer failed with an unknown error; caller got %v, want ErrInternal", err)
	}
}

func TestClosedStoreErrorsReachTheCaller(t *testing.T) {
	checkLeaks(t)
	eachWay(t, func(t *testing.T, w via) {
		st := openStore(t)
		p := w.start(t, &Server{Store: st})
		c := newTestClient(t, ClientConfig{})
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Get(ctxTimeout(t), p.addr, 0, []byte("k")); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("Get on a closed store: %v, want store.ErrClosed", err)
		}
		if err := c.Merge(ctxTimeout(t), p.addr, 0, []byte("k"), sampleSet("v")); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("Merge on a closed store: %v, want store.ErrClosed", err)
		}
	})
}

func TestConcurrentCallsShareOneConnection(t *testing.T) {
	checkLeaks(t)
	eachWay(t, testConcurrentCallsShareOneConnection)
}

func testConcurrentCallsShareOneConnection(t *testing.T, w via) {
	st := openStore(t)
	var protos, remotes sync.Map // of the HTTP/2 RPC's requests
	srv := &Server{Store: st}
	var p *peer
	if w.name == ViaTransport {
		p = startServer(t, srv, serverConfig{})
	} else {
		h := srv.Handler()
		p = startPeer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			protos.Store(r.Proto, true)
			remotes.Store(r.RemoteAddr, true)
			h.ServeHTTP(w, r)
		}))
	}
	c := newTestClient(t, ClientConfig{})
	ctx := ctxTimeout(t)

	const goroutines, calls = 64, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				key := []byte(fmt.Sprintf("g%d-%d", g, i))
				if err := c.Merge(ctx, p.addr, 0, key, sampleSet("v")); err != nil {
					errs <- err
					return
				}
				if _, found, err := c.Get(ctx, p.addr, 0, key); err != nil || !found {
					errs <- fmt.Errorf("get %s: found=%v err=%v", key, found, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	served := map[string]uint64{}
	for _, cc := range srv.Stats().Calls {
		served[cc.Via] += cc.Count
	}
	if served[w.name] != 2*goroutines*calls || served[ViaTransport]+served[ViaHTTP2] != 2*goroutines*calls {
		t.Fatalf("calls served by way: %v, want all %d %s", served, 2*goroutines*calls, w.name)
	}
	if w.name == ViaTransport {
		if n, u := p.listener.accepted.Load(), p.upgrades.Load(); n != 1 || u != 1 {
			t.Fatalf("%d goroutines x %d calls opened %d connections with %d upgrades, want 1 upgraded connection", goroutines, calls, n, u)
		}
		return
	}
	var protoList, remoteList []any
	protos.Range(func(k, _ any) bool { protoList = append(protoList, k); return true })
	remotes.Range(func(k, _ any) bool { remoteList = append(remoteList, k); return true })
	if len(remoteList) != 1 {
		t.Fatalf("%d goroutines x %d calls came over %d connections %v, want 1", goroutines, calls, len(remoteList), remoteList)
	}
	if len(protoList) != 1 || protoList[0] != "HTTP/2.0" {
		t.Fatalf("calls used protocols %v, want only HTTP/2.0", protoList)
	}
}

func TestCallFailsWhenThePeerDoesNotAnswerWithinTheTimeout(t *testing.T) {
	checkLeaks(t)
	eachWay(t, testCallFailsWhenThePeerDoesNotAnswerWithinTheTimeout)
}

func testCallFailsWhenThePeerDoesNotAnswerWithinTheTimeout(t *testing.T, w via) {
	b := &blocking{release: make(chan struct{})}
	var p *peer
	if w.name == ViaTransport {
		p = startServer(t, &Server{Store: openStore(t)}, serverConfig{wrap: b.wrap})
	} else {
		p = startPeer(t, b)
	}
	t.Cleanup(b.open) // before the server's own cleanup, which waits for handlers
	c := newTestClient(t, ClientConfig{Timeout: 200 * time.Millisecond})

	calls := map[string]func() error{
		"get": func() error { _, _, err := c.Get(context.Background(), p.addr, 0, []byte("k")); return err },
		"merge": func() error {
			return c.Merge(context.Background(), p.addr, 0, []byte("k"), sampleSet("v"))
		},
		"coordinate": func() error { _, err := c.Coordinate(context.Background(), p.addr, sampleWrite()); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s to a peer that never answers: %v, want context.DeadlineExceeded", name, err)
		}
	}
	// The caller's own deadline bounds the call too.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	slow := newTestClient(t, ClientConfig{Timeout: time.Hour})
	if _, _, err := slow.Get(ctx, p.addr, 0, []byte("k")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("get with a short caller deadline: %v, want context.DeadlineExceeded", err)
	}
}

func TestIdempotentCallsAreRetriedAfterServerErrors(t *testing.T) {
	checkLeaks(t)
	st := openStore(t)
	fast := ClientConfig{Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	for _, tc := range []struct {
		name     string
		failures int64
		fail     func(http.ResponseWriter) // over HTTP/2; nil: a failure only the transport has
		code     ErrorCode                 // over the transport: the error frame's code, 0 a handler panic; -1: none
		wantErr  error                     // nil: the call succeeds
		attempts int64
	}{
		{"two internal errors then success", 2, failWith(CodeInternal), CodeInternal, nil, 3},
		{"three internal errors exhaust the retries", 3, failWith(CodeInternal), CodeInternal, ErrInternal, 3},
		{"a bare 502 from a proxy is retried", 1, func(w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) }, noCode, nil, 2},
		{"a bare 429 from load shedding is retried", 3, func(w http.ResponseWriter) { w.WriteHeader(http.StatusTooManyRequests) }, noCode, ErrUnavailable, 3},
		{"a bare 401 from an auth middleware is not retried", 1, func(w http.ResponseWriter) { w.WriteHeader(http.StatusUnauthorized) }, noCode, ErrUnauthorized, 1},
		{"disk full is not retried", 1, failWith(CodeDiskFull), CodeDiskFull, store.ErrDiskFull, 1},
		{"a closed store is not retried", 1, failWith(CodeClosed), CodeClosed, store.ErrClosed, 1},
		{"a bad request is not retried", 1, failWith(CodeBadRequest), CodeBadRequest, ErrBadRequest, 1},
		{"an unavailable peer is retried", 1, failWith(CodeUnavailable), CodeUnavailable, nil, 2},
		{"a handler that panicked is retried as an internal error", 3, nil, 0, ErrInternal, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := map[string]func(c *Client, addr string) error{
				"get": func(c *Client, addr string) error {
					_, _, err := c.Get(ctxTimeout(t), addr, 0, []byte("k"))
					return err
				},
				"merge": func(c *Client, addr string) error {
					return c.Merge(ctxTimeout(t), addr, 0, []byte("k"), sampleSet("v"))
				},
				"merge-batch": func(c *Client, addr string) error {
					return c.MergeBatch(ctxTimeout(t), addr, []Item{{Key: []byte("k"), Set: sampleSet("v")}})
				},
				// The hint call (replication/hints) goes through the
				// same loop, Invoke; here a stub handler acks it.
				"hint": func(c *Client, addr string) error {
					resp, err := c.Invoke(ctxTimeout(t), addr, CallHint, nil)
					if err != nil {
						return err
					}
					return DecodeAck(resp)
				},
			}
			for name, call := range calls {
				if tc.fail != nil {
					f := &flaky{h: withHint(&Server{Store: st}).Handler(), n: tc.failures, fail: tc.fail}
					p := startPeer(t, f)
					err := call(newTestClient(t, fast), p.addr)
					if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
						t.Errorf("%s over HTTP/2: %v, want %v", name, err, tc.wantErr)
					}
					if got := f.calls.Load(); got != tc.attempts {
						t.Errorf("%s over HTTP/2: %d attempts, want %d", name, got, tc.attempts)
					}
				}
				if tc.code != noCode {
					f := &flakyCalls{n: tc.failures, fail: tc.code}
					p := startServer(t, withHint(&Server{Store: st}), serverConfig{wrap: f.wrap})
					err := call(newTestClient(t, fast), p.addr)
					if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
						t.Errorf("%s over the transport: %v, want %v", name, err, tc.wantErr)
					}
					if got := f.calls.Load(); got != tc.attempts {
						t.Errorf("%s over the transport: %d attempts, want %d", name, got, tc.attempts)
					}
				}
			}
		})
	}
}

// withHint registers a hint handler that acks every request, as
// replication/hints registers the real one.
func withHint(s *Server) *Server {
	s.Handle(CallHint, func(context.Context, []byte) ([]byte, error) { return Ack(), nil })
	return s
}

// noCode marks a failure the transport has no counterpart of.
const noCode ErrorCode = 255

func TestCoordinateIsNeverRetried(t *testing.T) {
	checkLeaks(t)
	eachWay(t, func(t *testing.T, w via) {
		var applied int
		srv := &Server{Store: openStore(t), Coordinate: func(context.Context, WriteRequest) (WriteResult, error) {
			applied++
			return WriteResult{}, nil
		}}
		var attempts func() int64
		var p *peer
		if w.name == ViaTransport {
			f := &flakyCalls{n: 1, fail: CodeInternal}
			p, attempts = startServer(t, srv, serverConfig{wrap: f.wrap}), f.calls.Load
		} else {
			f := &flaky{h: srv.Handler(), n: 1, fail: failWith(CodeInternal)}
			p, attempts = startPeer(t, f), f.calls.Load
		}
		c := newTestClient(t, ClientConfig{Retries: 5, Backoff: time.Millisecond})
		if _, err := c.Coordinate(ctxTimeout(t), p.addr, sampleWrite()); !errors.Is(err, ErrInternal) {
			t.Fatalf("Coordinate failing once: %v, want ErrInternal", err)
		}
		if n := attempts(); n != 1 || applied != 0 {
			t.Fatalf("Coordinate made %d attempts (%d applied), want exactly 1", n, applied)
		}
	})
}

func TestUnreachablePeerIsReportedAsUndelivered(t *testing.T) {
	checkLeaks(t)
	p := startPeer(t, http.NotFoundHandler())
	addr := p.addr
	p.stop() // nothing listens on addr any more
	c := newTestClient(t, ClientConfig{Backoff: time.Millisecond})
	if _, err := c.Coordinate(ctxTimeout(t), addr, sampleWrite()); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Coordinate to a closed port: %v, want ErrUnreachable", err)
	}
	if _, _, err := c.Get(ctxTimeout(t), addr, 0, []byte("k")); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Get to a closed port: %v, want ErrUnreachable", err)
	}
}

// TestClientReconnectsAfterThePeerRestarts: a node killed and restarted on
// the same address is reachable again without restarting its peers, by
// the first call after the restart (the transport's redial backoff ends
// within the call's retries).
func TestClientReconnectsAfterThePeerRestarts(t *testing.T) {
	checkLeaks(t)
	eachWay(t, func(t *testing.T, w via) {
		for _, backoff := range []time.Duration{time.Millisecond, DefaultBackoff} {
			t.Run(backoff.String(), func(t *testing.T) { testClientReconnectsAfterThePeerRestarts(t, w, backoff) })
		}
	})
}

func testClientReconnectsAfterThePeerRestarts(t *testing.T, w via, backoff time.Duration) {
	st := openStore(t)
	srv := &Server{Store: st}
	p := w.start(t, srv)
	c := newTestClient(t, ClientConfig{Backoff: backoff})
	if err := c.Merge(ctxTimeout(t), p.addr, 0, []byte("k"), sampleSet("v")); err != nil {
		t.Fatalf("Merge before the restart: %v", err)
	}
	p.stop()
	if err := c.Merge(ctxTimeout(t), p.addr, 0, []byte("k"), sampleSet("v")); err == nil {
		t.Fatal("Merge while the peer is down succeeded")
	}
	var again *peer
	if w.name == ViaTransport {
		again = startServer(t, srv, serverConfig{addr: p.addr})
	} else {
		again = startPeerAt(t, p.addr, srv.Handler())
	}
	if err := c.Merge(ctxTimeout(t), again.addr, 0, []byte("k"), sampleSet("v")); err != nil {
		t.Fatalf("Merge after the restart: %v", err)
	}
}

func TestBearerTokenIsCheckedWhenConfigured(t *testing.T) {
	checkLeaks(t)
	eachWay(t, testBearerTokenIsCheckedWhenConfigured)
}

func testBearerTokenIsCheckedWhenConfigured(t *testing.T, w via) {
	srv := &Server{Store: openStore(t), Authorize: func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer s3cret"
	}}
	var p *peer
	var attempts func() int64
	if w.name == ViaTransport {
		p = startServer(t, srv, serverConfig{})
		attempts = p.upgrades.Load
	} else {
		f := &flaky{h: srv.Handler()}
		p, attempts = startPeer(t, f), f.calls.Load
	}

	anonymous := newTestClient(t, ClientConfig{})
	if _, _, err := anonymous.Get(ctxTimeout(t), p.addr, 0, []byte("k")); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Get without a token: %v, want ErrUnauthorized", err)
	}
	if n := attempts(); n != 1 {
		t.Fatalf("a refused token was tried %d times, want once", n)
	}
	wrong := newTestClient(t, ClientConfig{AuthToken: "guess"})
	if _, _, err := wrong.Get(ctxTimeout(t), p.addr, 0, []byte("k")); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Get with a wrong token: %v, want ErrUnauthorized", err)
	}
	good := newTestClient(t, ClientConfig{AuthToken: "s3cret"})
	if _, _, err := good.Get(ctxTimeout(t), p.addr, 0, []byte("k")); err != nil {
		t.Fatalf("Get with the token: %v", err)
	}
}

func TestResponsesLargerThanTheLimitAreRefused(t *testing.T) {
	checkLeaks(t)
	eachWay(t, func(t *testing.T, w via) {
		st := openStore(t)
		big, _ := vclock.Set{}.Update("a", vclock.Context{}, vclock.Sibling{Value: make([]byte, 64<<10)})
		if _, err := st.Merge(0, []byte("big"), big); err != nil {
			t.Fatal(err)
		}
		p := w.start(t, &Server{Store: st})
		c := newTestClient(t, ClientConfig{MaxResponseBytes: 4 << 10, Retries: -1})
		if _, _, err := c.Get(ctxTimeout(t), p.addr, 0, []byte("big")); err == nil {
			t.Fatal("a 64 KiB response passed a 4 KiB limit")
		}
		if _, found, err := c.Get(ctxTimeout(t), p.addr, 0, []byte("small")); err != nil || found {
			t.Fatalf("a small response after a refused one: found=%v err=%v", found, err)
		}
	})
}

// TestPeerOfAnOlderVersionIsCalledOverHTTP2: a peer whose RPC knows no
// transport (a node of an older version during a rolling upgrade: it
// answers the upgrade with 404) is called over the HTTP/2 RPC, signed as
// such a node demands; the refused upgrade is remembered, so the peer sees
// one upgrade attempt and not one per call; once the peer is upgraded and
// the memory runs out, calls take the transport.
func TestPeerOfAnOlderVersionIsCalledOverHTTP2(t *testing.T) {
	checkLeaks(t)
	st := openStore(t)
	srv := &Server{Store: st, PeerKeys: peerKeys(t, secretOld)}
	var upgrades, rpcs atomic.Int64
	h := srv.Handler()
	count := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == transport.DefaultPath {
			upgrades.Add(1)
		}
		rpcs.Add(1)
		h.ServeHTTP(w, r)
	})
	// The upgrade goes to the old handler too, as an older node routes
	// it: its own 404 ("no RPC call") is what the upgrade meets.
	old := listenPeer(t, "127.0.0.1:0", count, nil, count)
	c := newTestClient(t, ClientConfig{Keys: transportKeys(t, secretOld), PeerKeys: peerKeys(t, secretOld)})
	ctx := ctxTimeout(t)
	const n = 20
	for i := range n {
		key := fmt.Appendf(nil, "k%d", i)
		if err := c.Merge(ctx, old.addr, 0, key, sampleSet("v")); err != nil {
			t.Fatalf("Merge %d to an older peer: %v", i, err)
		}
		if _, found, err := c.Get(ctx, old.addr, 0, key); err != nil || !found {
			t.Fatalf("Get %d from an older peer: found=%v err=%v", i, found, err)
		}
	}
	if u, r := upgrades.Load(), rpcs.Load(); u != 1 || r != 2*n+1 {
		t.Fatalf("%d calls reached the older peer as %d requests with %d upgrades, want one refused upgrade and %d HTTP/2 calls", 2*n, r, u, 2*n)
	}
	st1 := c.Stats()
	sent := map[string]uint64{}
	for _, cc := range st1.Calls {
		sent[cc.Via] += cc.Count
	}
	if st1.HTTP2Peers != 1 || sent[ViaHTTP2] != 2*n || sent[ViaTransport] != 0 {
		t.Fatalf("client stats %+v (sent by way %v), want one peer on HTTP/2 and every call sent that way", st1, sent)
	}

	// The peer is upgraded: restarted on its address with the transport.
	addr := old.addr
	old.stop()
	srv2 := &Server{Store: st}
	startServer(t, srv2, serverConfig{addr: addr, keys: transportKeys(t, secretOld)})
	// The memory runs out; the transport redials once the backoff from
	// the refused upgrade ends.
	servedOverTransport := func() bool {
		for _, cc := range srv2.Stats().Calls {
			if cc.Via == ViaTransport && cc.Count > 0 {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); !servedOverTransport(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the upgraded peer served %+v, want calls over the transport", srv2.Stats().Calls)
		}
		c.peer(addr).http2Until.Store(time.Now().Add(-time.Second).UnixNano())
		if _, found, err := c.Get(ctx, addr, 0, []byte("k0")); err != nil || !found {
			t.Fatalf("Get from the upgraded peer: found=%v err=%v", found, err)
		}
	}
	if c.Stats().HTTP2Peers != 0 {
		t.Fatalf("client stats %+v, want no peer on HTTP/2 any more", c.Stats())
	}
}

// A forwarded write is a whole client request: the coordinate call runs
// within the caller's deadline, which reaches the peer's coordinator,
// rather than within --rpc-timeout, one replica call's budget. A peer
// still waiting on its own replicas past the RPC timeout answers in time.
func TestCoordinateRunsWithinTheCallersDeadlineNotTheRPCTimeout(t *testing.T) {
	checkLeaks(t)
	remaining := make(chan time.Duration, 1)
	srv := &Server{Store: openStore(t), Coordinate: func(ctx context.Context, req WriteRequest) (WriteResult, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			remaining <- 0
			return WriteResult{}, errors.New("no deadline reached the peer")
		}
		remaining <- time.Until(dl)
		time.Sleep(300 * time.Millisecond) // three RPC timeouts
		return WriteResult{}, nil
	}}
	p := startServer(t, srv, serverConfig{})
	c := newTestClient(t, ClientConfig{Timeout: 100 * time.Millisecond, Retries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Coordinate(ctx, p.addr, sampleWrite()); err != nil {
		t.Fatalf("Coordinate taking 300ms with a 100ms RPC timeout and a 20s deadline: %v, want success", err)
	}
	if got := <-remaining; got < 10*time.Second {
		t.Errorf("the peer's coordinator saw %v left, want about the caller's 20s", got)
	}
	// Without a deadline of its own the call keeps the RPC timeout.
	if _, err := c.Coordinate(context.Background(), p.addr, sampleWrite()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Coordinate without a caller deadline: %v, want the 100ms RPC timeout", err)
	}
	if got := <-remaining; got > time.Second {
		t.Errorf("the peer saw %v left without a caller deadline, want at most the RPC timeout", got)
	}
}
