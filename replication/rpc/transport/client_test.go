package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/testutil"
)

func TestCallRoundTripsPayloadsOfEverySize(t *testing.T) {
	p := startPeer(t, &Server{Handler: echo}, nil)
	c := newTestClient(t, ClientConfig{})
	for _, n := range []int{0, 1, 100, copyLimit, copyLimit + 1, 1 << 20} {
		payload := bytes.Repeat([]byte{byte(n)}, n)
		resp, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, 7, payload)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if want := append([]byte{7}, payload...); !bytes.Equal(resp, want) {
			t.Fatalf("%d bytes: got %d bytes back, want %d", n, len(resp), len(want))
		}
	}
	if n := p.srv.Load().connCount(); n != 1 {
		t.Fatalf("the server holds %d connections, want 1 reused by every call", n)
	}
}

func TestConcurrentCallersShareOneConnectionAndAnswersComeOutOfOrder(t *testing.T) {
	release := make(chan struct{})
	h := func(ctx context.Context, call byte, payload []byte) ([]byte, error) {
		if call == 1 { // the slow call waits until every fast one is answered
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return echo(ctx, call, payload)
	}
	p := startPeer(t, &Server{Handler: h}, nil)
	c := newTestClient(t, ClientConfig{})
	slow := make(chan error, 1)
	go func() {
		resp, err := c.Call(ctxTimeout(t, 10*time.Second), p.addr, 1, []byte("slow"))
		if err == nil && string(resp) != "\x01slow" {
			err = fmt.Errorf("slow call answered %q", resp)
		}
		slow <- err
	}()
	const callers = 64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				want := fmt.Appendf(nil, "caller %d call %d", i, j)
				resp, err := c.Call(ctxTimeout(t, 10*time.Second), p.addr, 2, want)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(resp[1:], want) {
					errs <- fmt.Errorf("caller %d got %q, want %q: responses crossed", i, resp[1:], want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	select {
	case err := <-slow:
		t.Fatalf("the slow call returned before it was released: %v", err)
	default:
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if n := p.srv.Load().connCount(); n != 1 {
		t.Fatalf("the server holds %d connections, want 1 shared by all callers", n)
	}
}

func TestCallReturnsAtItsDeadlineAndTheConnectionStaysUsable(t *testing.T) {
	seen := make(chan time.Duration, 1)
	ended := make(chan error, 1)
	release := make(chan struct{})
	h := func(ctx context.Context, call byte, payload []byte) ([]byte, error) {
		if call == 1 {
			dl, ok := ctx.Deadline()
			if !ok {
				seen <- -1
			} else {
				seen <- time.Until(dl)
			}
			<-ctx.Done()
			ended <- ctx.Err()
			<-release // answer late, after the caller gave up
			return []byte("late"), nil
		}
		return echo(ctx, call, payload)
	}
	p := startPeer(t, &Server{Handler: h}, nil)
	c := newTestClient(t, ClientConfig{})
	if _, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, 2, nil); err != nil {
		t.Fatal(err)
	}
	const timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := c.Call(ctxTimeout(t, timeout), p.addr, 1, []byte("slow"))
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("slow call: %v, want a deadline error with ErrOutcomeUnknown", err)
	}
	if took > 5*time.Second {
		t.Fatalf("the caller waited %s, far past its %s deadline", took, timeout)
	}
	if left := <-seen; left <= 0 || left > timeout {
		t.Fatalf("the handler's context had %v left, want a deadline within the caller's %s", left, timeout)
	}
	// Its own deadline or the caller's cancel, whichever came first.
	if err := <-ended; !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		t.Fatalf("the handler's context ended with %v, want its deadline or a cancel", err)
	}
	close(release) // the late response is dropped
	resp, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, 2, []byte("after"))
	if err != nil || string(resp) != "\x02after" {
		t.Fatalf("call after the deadline: %q, %v", resp, err)
	}
	if n := p.srv.Load().connCount(); n != 1 {
		t.Fatalf("the server holds %d connections, want the first one still in use", n)
	}
}

func TestCancelledCallCancelsTheHandler(t *testing.T) {
	started := make(chan struct{})
	ended := make(chan error, 1)
	h := func(ctx context.Context, _ byte, _ []byte) ([]byte, error) {
		close(started)
		<-ctx.Done()
		ended <- ctx.Err()
		return nil, ctx.Err()
	}
	p := startPeer(t, &Server{Handler: h}, nil)
	c := newTestClient(t, ClientConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	_, err := c.Call(ctx, p.addr, 1, nil)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("cancelled call: %v, want context.Canceled with ErrOutcomeUnknown", err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler context ended with %v, want Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler was not cancelled when its caller gave up")
	}
}

func TestPeerDyingMidCallIsOutcomeUnknownAndTheNextCallRedials(t *testing.T) {
	started := make(chan struct{}, 1)
	block := func(ctx context.Context, _ byte, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	p := startPeer(t, &Server{Handler: block}, nil)
	c := newTestClient(t, ClientConfig{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctxTimeout(t, 10*time.Second), p.addr, 1, nil)
		errc <- err
	}()
	<-started
	p.swap(&Server{Handler: echo}) // the old server dies with the call running
	err := <-errc
	if !errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrNotDelivered) {
		t.Fatalf("call on a connection that died: %v, want ErrOutcomeUnknown only", err)
	}
	resp, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, 3, []byte("again"))
	if err != nil || string(resp) != "\x03again" {
		t.Fatalf("call after the peer came back: %q, %v", resp, err)
	}
}

func TestUnreachablePeerIsNotDeliveredAndBacksOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	var dials atomic.Int32
	d := &net.Dialer{}
	c := newTestClient(t, ClientConfig{RedialBackoff: time.Hour, MaxRedialDelay: time.Hour,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		}})
	for i := range 3 {
		_, err := c.Call(ctxTimeout(t, 5*time.Second), addr, 1, nil)
		if !errors.Is(err, ErrNotDelivered) || errors.Is(err, ErrOutcomeUnknown) {
			t.Fatalf("call %d to a closed port: %v, want ErrNotDelivered only", i, err)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1: calls within the backoff fail at once", n)
	}
	if st := c.Stats(); st.DialFailures != 1 || st.Dials != 0 || st.Conns != 0 {
		t.Fatalf("client stats %+v, want 1 dial failure and nothing open", st)
	}
}

func TestOversizedRequestIsRefusedBeforeItIsSent(t *testing.T) {
	var calls atomic.Int32
	h := func(ctx context.Context, call byte, payload []byte) ([]byte, error) {
		calls.Add(1)
		return echo(ctx, call, payload)
	}
	p := startPeer(t, &Server{Handler: h, MaxFrameBytes: 1000}, nil)
	c := newTestClient(t, ClientConfig{})
	_, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, 1, make([]byte, 1001))
	if !errors.Is(err, ErrFrameTooLarge) || !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("1001 bytes to a server taking 1000: %v, want ErrFrameTooLarge, not delivered", err)
	}
	if _, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, 1, make([]byte, 1000)); err != nil {
		t.Fatalf("1000 bytes: %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the handler ran %d times, want 1", n)
	}
}

func TestOversizedResponseIsRefusedByTheServer(t *testing.T) {
	h := func(context.Context, byte, []byte) ([]byte, error) { return make([]byte, 2000), nil }
	p := startPeer(t, &Server{Handler: h}, nil)
	c := newTestClient(t, ClientConfig{MaxFrameBytes: 1000})
	_, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, 1, nil)
	if !errors.Is(err, ErrFrameTooLarge) || !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("2000-byte response to a client taking 1000: %v, want ErrFrameTooLarge (ran, answer lost)", err)
	}
	if _, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, 1, nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("second call: %v, want the same refusal on the same connection", err)
	}
	if n := p.srv.Load().connCount(); n != 1 {
		t.Fatalf("%d connections, want 1: a refused response leaves the connection up", n)
	}
}

func TestHandlerErrorsReachTheCaller(t *testing.T) {
	h := func(_ context.Context, call byte, _ []byte) ([]byte, error) {
		switch call {
		case 1:
			return nil, &Error{Code: 42, Detail: []byte{0, 1, 2}}
		case 2:
			return nil, errors.New("disk on fire")
		default:
			panic("handler bug")
		}
	}
	p := startPeer(t, &Server{Handler: h}, nil)
	c := newTestClient(t, ClientConfig{})
	for _, tc := range []struct {
		call   byte
		code   byte
		detail string
	}{{1, 42, "\x00\x01\x02"}, {2, 0, "disk on fire"}, {3, 0, "transport: handler for call 3 panicked: handler bug"}} {
		_, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, tc.call, nil)
		var e *Error
		if !errors.As(err, &e) || e.Code != tc.code || string(e.Detail) != tc.detail {
			t.Fatalf("call %d: %v, want *Error{%d, %q}", tc.call, err, tc.code, tc.detail)
		}
		if errors.Is(err, ErrNotDelivered) || errors.Is(err, ErrOutcomeUnknown) {
			t.Fatalf("call %d: a handler's error %v must match neither sentinel", tc.call, err)
		}
	}
}

func TestClientKeepsToTheServersCap(t *testing.T) {
	var running, peak atomic.Int32
	h := func(ctx context.Context, call byte, payload []byte) ([]byte, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		return echo(ctx, call, payload)
	}
	p := startPeer(t, &Server{Handler: h, MaxConcurrentCalls: 3}, nil)
	c := newTestClient(t, ClientConfig{MaxCallsPerConn: 100})
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Call(ctxTimeout(t, 10*time.Second), p.addr, 1, nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a call failed: %v (the client should wait for one of the server's 3 slots)", err)
	}
	if n := peak.Load(); n > 3 {
		t.Fatalf("%d handlers ran at once, over the server's cap of 3", n)
	}
}

func TestServerAtItsCapRefusesWithoutStalling(t *testing.T) {
	release := make(chan struct{})
	var ran atomic.Int32
	h := func(ctx context.Context, call byte, payload []byte) ([]byte, error) {
		ran.Add(1)
		if call == 1 {
			<-release
		}
		return echo(ctx, call, payload)
	}
	p := startPeer(t, &Server{Handler: h, MaxConcurrentCalls: 2}, nil)
	r := dialRaw(t, p.addr, nil)
	if r.sess.peerMaxCalls != 2 {
		t.Fatalf("the server announced %d max calls, want 2", r.sess.peerMaxCalls)
	}
	// A client that ignores the announced cap: two blocking calls, then
	// a third.
	r.send(t, header{typ: frameRequest, code: 1, id: 1}, nil)
	r.send(t, header{typ: frameRequest, code: 1, id: 2}, nil)
	eventually(t, 5*time.Second, "both calls running", func() bool { return ran.Load() == 2 })
	r.send(t, header{typ: frameRequest, code: 2, id: 3}, nil)
	h3, _ := r.read(t)
	if h3.typ != frameRefused || h3.code != refusedBusy || h3.id != 3 {
		t.Fatalf("third call got %s code %d id %d, want refused busy for 3", h3.typ, h3.code, h3.id)
	}
	// The connection still flows: pings are answered while at the cap.
	r.send(t, header{typ: framePing, id: 9}, nil)
	if h, _ := r.read(t); h.typ != framePong || h.id != 9 {
		t.Fatalf("ping at the cap got %s %d, want pong 9", h.typ, h.id)
	}
	close(release)
	got := map[uint64]bool{}
	for range 2 {
		h, _ := r.read(t)
		if h.typ != frameResponse {
			t.Fatalf("got %s, want responses to 1 and 2", h.typ)
		}
		got[h.id] = true
	}
	r.send(t, header{typ: frameRequest, code: 2, id: 4}, []byte("x"))
	if h, p := r.read(t); h.typ != frameResponse || h.id != 4 || string(p) != "\x02x" {
		t.Fatalf("call after the cap freed: %s %d %q", h.typ, h.id, p)
	}
	if ran.Load() != 3 {
		t.Fatalf("handlers ran %d times, want 3: the refused call must not run", ran.Load())
	}
	if st := p.srv.Load().Stats(); st.CallsRefused != 1 || st.Conns != 1 {
		t.Fatalf("server stats %+v, want 1 call refused on 1 connection", st)
	}
	// And through the Client, a refusal is "not delivered, busy".
	if err := callRefusal(refusedBusy, nil); !errors.Is(err, ErrBusy) || !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("busy refusal: %v", err)
	}
}

func TestSilentPeerIsDroppedByPing(t *testing.T) {
	// A server that completes the upgrade and handshake, then never
	// answers anything, as a peer behind a partition.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer nc.Close()
		_, _ = nc.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + Protocol + "\r\n\r\n"))
		if _, err := serverHandshake(nc, brw.Reader, nil, DefaultMaxFrameBytes, 10); err != nil {
			return
		}
		buf := make([]byte, 64<<10)
		for { // swallow, answer nothing, until the client hangs up
			if _, err := nc.Read(buf); err != nil {
				return
			}
		}
	})}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	c := newTestClient(t, ClientConfig{PingInterval: 50 * time.Millisecond})
	start := time.Now()
	_, err = c.Call(ctxTimeout(t, 10*time.Second), ln.Addr().String(), 1, nil)
	if !errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call to a silent peer: %v, want the ping to fail the connection before the deadline", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %s to notice the silent peer", took)
	}
	_ = c.Close()
	_ = hs.Close()
}

func TestShutdownDrainsCallsInFlight(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h := func(ctx context.Context, call byte, payload []byte) ([]byte, error) {
		if call == 1 {
			close(started)
			<-release
		}
		return echo(ctx, call, payload)
	}
	srv := &Server{Handler: h}
	p := startPeer(t, srv, nil)
	c := newTestClient(t, ClientConfig{})
	errc := make(chan error, 1)
	go func() {
		resp, err := c.Call(ctxTimeout(t, 10*time.Second), p.addr, 1, []byte("inflight"))
		if err == nil && string(resp) != "\x01inflight" {
			err = fmt.Errorf("got %q", resp)
		}
		errc <- err
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctxTimeout(t, 10*time.Second)) }()
	eventually(t, 5*time.Second, "the connection draining", func() bool {
		s := (*c.peers.Load())[p.addr].slots[0].cur.Load()
		return s != nil && !s.usable.Load()
	})
	_, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, 2, nil)
	if !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("call during shutdown: %v, want ErrNotDelivered", err)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatalf("the call in flight at shutdown: %v, want its answer", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestClientCloseFailsPendingCallsAndStopsItsGoroutines(t *testing.T) {
	started := make(chan struct{})
	h := func(ctx context.Context, _ byte, _ []byte) ([]byte, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	p := startPeer(t, &Server{Handler: h}, nil)
	c := NewClient(ClientConfig{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), p.addr, 1, nil)
		errc <- err
	}()
	<-started
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrClosed) {
		t.Fatalf("call pending at Close: %v, want ErrOutcomeUnknown and ErrClosed", err)
	}
	if _, err := c.Call(context.Background(), p.addr, 1, nil); !errors.Is(err, ErrClosed) || !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("call after Close: %v", err)
	}
	// goleak in TestMain checks that nothing is left running.
}

func TestPeerWithoutTheTransportIsNotSupported(t *testing.T) {
	// A node of an older version: /internal/v1/rpc is not one of its calls.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `no RPC call "/internal/v1/rpc"`, http.StatusNotFound)
	})}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	c := newTestClient(t, ClientConfig{})
	_, err = c.Call(ctxTimeout(t, 5*time.Second), ln.Addr().String(), 1, nil)
	if !errors.Is(err, ErrNotSupported) || !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("call to an old node: %v, want ErrNotSupported, not delivered", err)
	}
}

func TestManyConnectionsPerPeerSpreadCalls(t *testing.T) {
	p := startPeer(t, &Server{Handler: echo}, nil)
	c := newTestClient(t, ClientConfig{ConnsPerPeer: 3})
	for i := range 9 {
		if _, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, byte(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.srv.Load().connCount(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

func TestCallerDoesNotWaitBehindAPeerThatStopsReading(t *testing.T) {
	// A peer that completes the handshake and then reads nothing: a big
	// request fills the socket buffers and blocks the writer.
	stop := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer nc.Close()
		_, _ = nc.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + Protocol + "\r\n\r\n"))
		if _, err := serverHandshake(nc, brw.Reader, nil, DefaultMaxFrameBytes, 10); err != nil {
			return
		}
		<-stop
	})}
	go func() { _ = hs.Serve(ln) }()
	c := NewClient(ClientConfig{WriteTimeout: 2 * time.Second, PingInterval: -1})
	addr := ln.Addr().String()
	if _, err := c.Call(ctxTimeout(t, 50*time.Millisecond), addr, 1, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first call: %v, want its deadline (the peer answers nothing)", err)
	}
	big := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), addr, 1, make([]byte, 32<<20))
		big <- err
	}()
	// Wait until the writer is inside the big frame's write (not merely
	// until it was queued): only then is the small call certain to queue
	// behind it, and certain not to be delivered.
	cc := c.peer(addr).pick().cur.Load()
	eventually(t, 10*time.Second, "the writer blocked on the big frame", func() bool {
		cc.l.mu.Lock()
		defer cc.l.mu.Unlock()
		for _, pc := range cc.pending {
			if pc.large && pc.state == callEncoded {
				return true
			}
		}
		return false
	})
	start := time.Now()
	_, err = c.Call(ctxTimeout(t, 200*time.Millisecond), addr, 2, []byte("small"))
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a small call waited %s behind a blocked write, past its 200ms deadline", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("small call queued behind a blocked write: %v, want its deadline, not delivered", err)
	}
	if err := <-big; !errors.Is(err, ErrNotDelivered) && !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("the big call: %v, want the write timeout to fail it", err)
	}
	_ = c.Close()
	close(stop)
	_ = hs.Close()
}

func TestCallsGivenUpAtRandomNeverGetAnotherCallsAnswer(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = int64(testutil.Seed(t, testutil.SeedEnv))
	} else {
		t.Logf("seed %d (from -transport.seed)", seed)
	}
	h := func(ctx context.Context, call byte, payload []byte) ([]byte, error) {
		if d := time.Duration(payload[0]) * 20 * time.Microsecond; d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil, &Error{Code: 1, Detail: []byte("cancelled")}
			}
		}
		return echo(ctx, call, payload)
	}
	for _, keyed := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyed=%v", keyed), func(t *testing.T) {
			var keys *Keyring
			if keyed {
				keys = mustKeys(t, "storm")
			}
			p := startPeer(t, &Server{Handler: h, MaxConcurrentCalls: 16, Keys: keys}, nil)
			c := newTestClient(t, ClientConfig{MaxCallsPerConn: 24, Keys: keys})
			callStorm(t, c, p.addr, seed)
		})
	}
}

// callStorm runs 32 callers making calls with random sizes, handler
// delays and deadlines; every answer must be the caller's own, every
// failure one of the two outcomes, and the connection must survive.
func callStorm(t *testing.T, c *Client, addr string, seed int64) {
	var wg sync.WaitGroup
	var ok, gaveUp atomic.Int64
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := newRand(seed + int64(g))
			for i := range 200 {
				size := 1 + rng.IntN(3)*copyLimit // some payloads big enough to be written in place
				payload := make([]byte, size)
				payload[0] = byte(rng.IntN(100))
				copy(payload[1:], fmt.Sprintf("g%d-%d", g, i))
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(20000))*time.Microsecond)
				resp, err := c.Call(ctx, addr, byte(g), payload)
				cancel()
				var e *Error
				switch {
				case err == nil:
					if resp[0] != byte(g) || !bytes.Equal(resp[1:], payload) {
						errs <- fmt.Errorf("caller %d call %d got another call's answer", g, i)
						return
					}
					ok.Add(1)
				case errors.As(err, &e), errors.Is(err, ErrNotDelivered) != errors.Is(err, ErrOutcomeUnknown):
					gaveUp.Add(1)
				default:
					errs <- fmt.Errorf("caller %d call %d: %v matches neither or both sentinels", g, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d answered, %d given up", ok.Load(), gaveUp.Load())
	if _, err := c.Call(ctxTimeout(t, 5*time.Second), addr, 1, []byte{0}); err != nil {
		t.Fatalf("after the storm: %v", err)
	}
	if st := c.Stats(); st.Dials != 1 {
		t.Fatalf("client stats %+v: want the one connection to survive", st)
	}
}
