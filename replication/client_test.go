package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

func TestGetAndMergeReachTheRemoteStore(t *testing.T) {
	checkLeaks(t)
	st := openStore(t)
	p := startPeer(t, (&Server{Store: st}).Handler())
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
	st := openStore(t)
	p := startPeer(t, (&Server{Store: st}).Handler())
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
	p := startPeer(t, srv.Handler())
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
	p := startPeer(t, (&Server{Store: openStore(t)}).Handler())
	c := newTestClient(t, ClientConfig{})
	_, err := c.Coordinate(ctxTimeout(t), p.addr, sampleWrite())
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Coordinate with no callback: %v, want ErrUnavailable", err)
	}
}

// TestErrorsCrossTheWireAsTheSameSentinels: what the peer's store or
// coordinator returned is what the caller can test for.
func TestErrorsCrossTheWireAsTheSameSentinels(t *testing.T) {
	checkLeaks(t)
	var next error
	srv := &Server{Store: openStore(t), Coordinate: func(context.Context, WriteRequest) (WriteResult, error) {
		return WriteResult{}, next
	}}
	p := startPeer(t, srv.Handler())
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
	st := openStore(t)
	p := startPeer(t, (&Server{Store: st}).Handler())
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
}

func TestConcurrentCallsShareOneConnection(t *testing.T) {
	checkLeaks(t)
	st := openStore(t)
	var http2 sync.Map
	srv := (&Server{Store: st}).Handler()
	p := startPeer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http2.Store(r.Proto, true)
		srv.ServeHTTP(w, r)
	}))
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
	if n := p.listener.accepted.Load(); n != 1 {
		t.Fatalf("%d goroutines x %d calls opened %d connections, want 1", goroutines, calls, n)
	}
	var protos []any
	http2.Range(func(k, _ any) bool { protos = append(protos, k); return true })
	if len(protos) != 1 || protos[0] != "HTTP/2.0" {
		t.Fatalf("calls used protocols %v, want only HTTP/2.0", protos)
	}
}

func TestCallFailsWhenThePeerDoesNotAnswerWithinTheTimeout(t *testing.T) {
	checkLeaks(t)
	b := &blocking{release: make(chan struct{})}
	p := startPeer(t, b)
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
		fail     func(http.ResponseWriter)
		wantErr  error // nil: the call succeeds
		attempts int64
	}{
		{"two internal errors then success", 2, failWith(CodeInternal), nil, 3},
		{"three internal errors exhaust the retries", 3, failWith(CodeInternal), ErrInternal, 3},
		{"a bare 502 from a proxy is retried", 1, func(w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) }, nil, 2},
		{"a bare 429 from load shedding is retried", 3, func(w http.ResponseWriter) { w.WriteHeader(http.StatusTooManyRequests) }, ErrUnavailable, 3},
		{"a bare 401 from an auth middleware is not retried", 1, func(w http.ResponseWriter) { w.WriteHeader(http.StatusUnauthorized) }, ErrUnauthorized, 1},
		{"disk full is not retried", 1, failWith(CodeDiskFull), store.ErrDiskFull, 1},
		{"a closed store is not retried", 1, failWith(CodeClosed), store.ErrClosed, 1},
		{"a bad request is not retried", 1, failWith(CodeBadRequest), ErrBadRequest, 1},
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
			}
			for name, call := range calls {
				f := &flaky{h: (&Server{Store: st}).Handler(), n: tc.failures, fail: tc.fail}
				p := startPeer(t, f)
				c := newTestClient(t, fast)
				err := call(c, p.addr)
				if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("%s: %v, want %v", name, err, tc.wantErr)
				}
				if got := f.calls.Load(); got != tc.attempts {
					t.Errorf("%s: %d attempts, want %d", name, got, tc.attempts)
				}
			}
		})
	}
}

func TestCoordinateIsNeverRetried(t *testing.T) {
	checkLeaks(t)
	var applied int
	srv := &Server{Store: openStore(t), Coordinate: func(context.Context, WriteRequest) (WriteResult, error) {
		applied++
		return WriteResult{}, nil
	}}
	f := &flaky{h: srv.Handler(), n: 1, fail: failWith(CodeInternal)}
	p := startPeer(t, f)
	c := newTestClient(t, ClientConfig{Retries: 5, Backoff: time.Millisecond})
	if _, err := c.Coordinate(ctxTimeout(t), p.addr, sampleWrite()); !errors.Is(err, ErrInternal) {
		t.Fatalf("Coordinate failing once: %v, want ErrInternal", err)
	}
	if n := f.calls.Load(); n != 1 || applied != 0 {
		t.Fatalf("Coordinate made %d attempts (%d applied), want exactly 1", n, applied)
	}
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
// the same address is reachable again without restarting its peers.
func TestClientReconnectsAfterThePeerRestarts(t *testing.T) {
	checkLeaks(t)
	st := openStore(t)
	h := (&Server{Store: st}).Handler()
	p := startPeer(t, h)
	c := newTestClient(t, ClientConfig{Backoff: time.Millisecond})
	if err := c.Merge(ctxTimeout(t), p.addr, 0, []byte("k"), sampleSet("v")); err != nil {
		t.Fatalf("Merge before the restart: %v", err)
	}
	p.stop()
	if err := c.Merge(ctxTimeout(t), p.addr, 0, []byte("k"), sampleSet("v")); err == nil {
		t.Fatal("Merge while the peer is down succeeded")
	}
	again := startPeerAt(t, p.addr, h)
	if err := c.Merge(ctxTimeout(t), again.addr, 0, []byte("k"), sampleSet("v")); err != nil {
		t.Fatalf("Merge after the restart: %v", err)
	}
}

func TestBearerTokenIsCheckedWhenConfigured(t *testing.T) {
	checkLeaks(t)
	srv := &Server{Store: openStore(t), Authorize: func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer s3cret"
	}}
	f := &flaky{h: srv.Handler()}
	p := startPeer(t, f)

	anonymous := newTestClient(t, ClientConfig{})
	if _, _, err := anonymous.Get(ctxTimeout(t), p.addr, 0, []byte("k")); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Get without a token: %v, want ErrUnauthorized", err)
	}
	if n := f.calls.Load(); n != 1 {
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
	st := openStore(t)
	big, _ := vclock.Set{}.Update("a", vclock.Context{}, vclock.Sibling{Value: make([]byte, 64<<10)})
	if _, err := st.Merge(0, []byte("big"), big); err != nil {
		t.Fatal(err)
	}
	p := startPeer(t, (&Server{Store: st}).Handler())
	c := newTestClient(t, ClientConfig{MaxResponseBytes: 4 << 10, Retries: -1})
	if _, _, err := c.Get(ctxTimeout(t), p.addr, 0, []byte("big")); err == nil {
		t.Fatal("a 64 KiB response passed a 4 KiB limit")
	}
	if _, found, err := c.Get(ctxTimeout(t), p.addr, 0, []byte("small")); err != nil || found {
		t.Fatalf("a small response after a refused one: found=%v err=%v", found, err)
	}
}
