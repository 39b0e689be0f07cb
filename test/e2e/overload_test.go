package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

// Limits of the overloaded node, and the storm that exceeds them.
const (
	ovMaxInflight  = 16
	ovMaxConns     = 64
	ovRESPMaxConns = 32
	// ovFloodConns raw connections to the HTTP port and ovRESPFlood to the
	// Redis port, each far beyond its limit.
	ovFloodConns = 400
	ovRESPFlood  = 100
	// ovH2Streams goroutines share one HTTP/2 connection (h2c), so their
	// requests are in flight at once, far beyond --max-inflight; ovH1
	// more share ovH1Conns HTTP/1.1 connections.
	ovH2Streams = 200
	ovH1        = 100
	ovH1Conns   = 16
	// ovStorm is how long the storm lasts; ovMaxOps bounds each loop.
	ovStorm    = 3 * time.Second
	ovMaxOps   = 2000
	ovValueLen = 32 << 10
	// ovDeadline bounds any one exchange: a hang, not a measurement.
	ovDeadline = 20 * time.Second
)

// ovStats counts what the storm saw; every field is updated atomically.
type ovStats struct {
	connsOpened, connsAccepted, connsRefused429 atomic.Int64
	respOpened, respAccepted, respRefused       atomic.Int64
	requests, shed, ok, other                   atomic.Int64
	wellBehavedAcks                             atomic.Int64

	mu     sync.Mutex
	acked  map[string][]byte // key -> value of every acknowledged write
	faults []string          // what broke the contract, for the failure message
}

func (s *ovStats) ack(key string, value []byte) {
	s.mu.Lock()
	s.acked[key] = value
	s.mu.Unlock()
}

func (s *ovStats) fault(format string, args ...any) {
	s.mu.Lock()
	if len(s.faults) < 20 {
		s.faults = append(s.faults, fmt.Sprintf(format, args...))
	}
	s.mu.Unlock()
}

// TestOverloadShedsPolitelyAndLosesNoAcknowledgedWrite is issue 6's load
// test: one node with small limits gets far more connections and in-flight
// requests than they allow, on both ports, while a well-behaved client
// writes within them. The node must stay up, answer what it cannot serve
// with 429 (or close a connection politely, after a 429 line), keep
// serving within its limits, and lose no acknowledged write.
func TestOverloadShedsPolitelyAndLosesNoAcknowledgedWrite(t *testing.T) {
	t.Parallel()
	host := testnode.Loopback{}.Host(1)
	respAddr, err := testnode.FreePort(host)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, testnode.NodeOptions{Args: []string{
		"--max-inflight", strconv.Itoa(ovMaxInflight),
		"--http-max-conns", strconv.Itoa(ovMaxConns),
		"--resp-max-conns", strconv.Itoa(ovRESPMaxConns),
		"--resp-addr", respAddr,
	}})
	n.HTTPClient().CloseIdleConnections() // its connections would count too
	base := n.URL()
	st := &ovStats{acked: map[string][]byte{}}
	rssBefore := rssMiB(t, n.PID())

	// Clients that connect before the storm, within the limits: one
	// HTTP/2 connection whose streams all run at once, a few HTTP/1.1
	// connections, and the well-behaved client's one. Their transports
	// get exactly those connections and cannot dial more: a connection
	// dialled during the flood would be refused (a 429 the transport
	// reads as an unsolicited response), and a redial would mean the node
	// closed a connection it had accepted, which the storm counts as a
	// fault.
	//
	// ovH2Streams stays below the server's 250 streams per connection, so
	// the HTTP/2 client never needs a second connection.
	var h2p http.Protocols
	h2p.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Timeout: ovDeadline, Transport: &http.Transport{
		Protocols: &h2p, DialContext: preDialed(t, st, "h2", n.Addr(), 1, false),
	}}
	h1 := &http.Client{Timeout: ovDeadline, Transport: &http.Transport{
		MaxConnsPerHost: ovH1Conns, MaxIdleConnsPerHost: ovH1Conns, DisableCompression: true,
		DialContext: preDialed(t, st, "h1", n.Addr(), ovH1Conns, true),
	}}
	wb := &http.Client{Timeout: ovDeadline, Transport: &http.Transport{
		MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true,
		DialContext: preDialed(t, st, "well-behaved", n.Addr(), 1, true),
	}}
	defer h2.CloseIdleConnections()
	defer h1.CloseIdleConnections()
	defer wb.CloseIdleConnections()
	for _, c := range []*http.Client{h2, h1, wb} {
		if code, _, err := ovDo(c, http.MethodGet, base+"/health", nil); err != nil || code != http.StatusOK {
			t.Fatalf("warming a client: GET /health = %d, %v", code, err)
		}
	}

	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var wg sync.WaitGroup
	var peakRSS atomic.Int64
	peakRSS.Store(int64(rssBefore))
	wg.Go(func() {
		for !stopped() {
			if r, err := rssOf(n.PID()); err == nil && int64(r) > peakRSS.Load() {
				peakRSS.Store(int64(r))
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	// The in-flight storm: PUTs (acknowledged ones recorded) and GETs.
	storm := func(c *http.Client, name string, g int) {
		for i := 0; i < ovMaxOps && !stopped(); i++ {
			key := fmt.Sprintf("ov/%s/%d/%d", name, g, i)
			method, body := http.MethodPut, ovValue(key)
			if i%2 == 1 {
				method, body = http.MethodGet, nil
				key = fmt.Sprintf("ov/%s/%d/%d", name, g, i-1)
			}
			st.requests.Add(1)
			code, hdr, err := ovDo(c, method, base+kvPathOf(key), body)
			st.classify(method+" "+key, code, hdr, err)
			if code == http.StatusNoContent && method == http.MethodPut {
				st.ack(key, ovValue(key))
			}
		}
	}
	for g := range ovH2Streams {
		wg.Go(func() { storm(h2, "h2", g) })
	}
	for g := range ovH1 {
		wg.Go(func() { storm(h1, "h1", g) })
	}

	// The connection flood: each raw connection asks for /health and is
	// either served (and then held open, taking a place) or told 429
	// and closed.
	var held []net.Conn
	var heldMu sync.Mutex
	for range ovFloodConns {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", n.Addr(), ovDeadline)
			if err != nil {
				st.fault("flood: dial: %v", err)
				return
			}
			st.connsOpened.Add(1)
			_ = c.SetDeadline(time.Now().Add(ovDeadline))
			if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: dynkv\r\n\r\n"); err != nil {
				st.fault("flood: writing a request: %v", err)
				c.Close()
				return
			}
			rd := bufio.NewReader(c)
			resp, err := http.ReadResponse(rd, nil)
			if err != nil {
				st.fault("flood: no response before the close: %v", err)
				c.Close()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			switch {
			case resp.StatusCode == http.StatusOK:
				st.connsAccepted.Add(1)
				heldMu.Lock()
				held = append(held, c)
				heldMu.Unlock()
				return
			case resp.StatusCode == http.StatusTooManyRequests && resp.Close && resp.Header.Get("Retry-After") == "1" && isJSONError(body):
				st.connsRefused429.Add(1)
				if _, err := rd.ReadByte(); err == nil {
					st.fault("flood: a refused connection sent more after its 429")
				}
			default:
				st.fault("flood: %d %q (close %v), want 200 or a 429 with Retry-After and a JSON error", resp.StatusCode, body, resp.Close)
			}
			c.Close()
		})
	}

	// The same against the Redis port: accepted connections write (each
	// +OK is an acknowledged write), the rest are told Redis's "max
	// number of clients reached".
	for g := range ovRESPFlood {
		wg.Go(func() { respStorm(st, respAddr, g, stopped) })
	}

	// The well-behaved client: sequential writes within the limits, and
	// /health on its own connection all along.
	wg.Go(func() {
		for i := 0; i < ovMaxOps && !stopped(); i++ {
			key := fmt.Sprintf("ov/wb/%d", i)
			code, hdr, err := ovDo(wb, http.MethodPut, base+kvPathOf(key), ovValue(key))
			st.classify("well-behaved PUT "+key, code, hdr, err)
			if code == http.StatusNoContent {
				st.ack(key, ovValue(key))
				st.wellBehavedAcks.Add(1)
			}
			if i%10 == 0 {
				if code, _, err := ovDo(wb, http.MethodGet, base+"/health", nil); err != nil || code != http.StatusOK {
					st.fault("GET /health during the storm = %d, %v; want 200", code, err)
				}
			}
		}
	})

	time.Sleep(ovStorm)
	close(stop)
	wg.Wait()
	for _, c := range held {
		c.Close()
	}
	h1.CloseIdleConnections()
	h2.CloseIdleConnections()

	if !n.Running() {
		t.Fatal("the node died under the storm")
	}
	// Places free up as the node notices the closes: a bounded retry.
	after := &http.Client{Timeout: ovDeadline}
	defer after.CloseIdleConnections()
	healthy := false
	for range 200 {
		if code, _, err := ovDo(after, http.MethodGet, base+"/health", nil); err == nil && code == http.StatusOK {
			healthy = true
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if !healthy {
		t.Fatal("GET /health after the storm never answered 200")
	}
	lost := 0
	for key, want := range st.acked {
		code, _, body, err := ovGet(after, base+kvPathOf(key))
		if err != nil || code != http.StatusOK || !bytes.Equal(body, want) {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged write %s: read back %d (%d bytes), %v; want 200 with its %d bytes", key, code, len(body), err, len(want))
			}
		}
	}
	rssAfter := rssMiB(t, n.PID())
	line := fmt.Sprintf("overload: conns opened %d, refused with 429 %d, requests %d, 429 %d, ok %d, acked %d, lost %d, rss before/peak/after %d/%d/%d MiB"+
		" (HTTP conns %d, 429 %d; Redis conns %d, max-clients %d; well-behaved acks %d)",
		st.connsOpened.Load()+st.respOpened.Load(), st.connsRefused429.Load()+st.respRefused.Load(),
		st.requests.Load(), st.shed.Load(), st.ok.Load(), len(st.acked), lost, rssBefore, peakRSS.Load(), rssAfter,
		st.connsOpened.Load(), st.connsRefused429.Load(), st.respOpened.Load(), st.respRefused.Load(), st.wellBehavedAcks.Load())
	t.Log(line)
	fmt.Println(line)

	for _, f := range st.faults {
		t.Error(f)
	}
	if st.other.Load() > 0 {
		t.Errorf("%d responses were neither 2xx, 404, 429 nor a documented 503/507", st.other.Load())
	}
	if st.connsRefused429.Load() == 0 || st.connsAccepted.Load() == 0 {
		t.Errorf("flood: %d connections served, %d refused with 429; want both (the limit is %d of %d)",
			st.connsAccepted.Load(), st.connsRefused429.Load(), ovMaxConns, ovFloodConns)
	}
	if st.shed.Load() == 0 {
		t.Errorf("no request was shed with 429: the storm did not exceed --max-inflight %d", ovMaxInflight)
	}
	if st.ok.Load() == 0 || st.wellBehavedAcks.Load() == 0 {
		t.Errorf("%d requests succeeded, %d of the well-behaved client's writes: want progress within the limits", st.ok.Load(), st.wellBehavedAcks.Load())
	}
	if st.respRefused.Load() == 0 || st.respAccepted.Load() == 0 {
		t.Errorf("Redis port: %d connections served, %d refused; want both (the limit is %d of %d)",
			st.respAccepted.Load(), st.respRefused.Load(), ovRESPMaxConns, ovRESPFlood)
	}
}

// preDialed opens conns connections to addr now and returns a dialer that
// hands them out and then refuses to dial: a transport that asks for more
// lost one the node had accepted, which is recorded as a fault. With
// check, each connection first proves it was accepted with a GET /health
// (HTTP/1.1 only: an h2c connection must start with its preface).
func preDialed(t *testing.T, st *ovStats, name, addr string, conns int, check bool) func(context.Context, string, string) (net.Conn, error) {
	t.Helper()
	pool := make(chan net.Conn, conns)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, ovDeadline)
		if err != nil {
			t.Fatalf("%s client: dialling connection %d: %v", name, i+1, err)
		}
		t.Cleanup(func() { c.Close() })
		if check {
			_ = c.SetDeadline(time.Now().Add(ovDeadline))
			rd := bufio.NewReader(c)
			_, _ = io.WriteString(c, "GET /health HTTP/1.1\r\nHost: dynkv\r\n\r\n")
			resp, err := http.ReadResponse(rd, nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("%s client: connection %d: GET /health = %v, %v; want 200", name, i+1, resp, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			if rd.Buffered() > 0 {
				t.Fatalf("%s client: connection %d: bytes after the response", name, i+1)
			}
			_ = c.SetDeadline(time.Time{})
		}
		pool <- c
	}
	return func(context.Context, string, string) (net.Conn, error) {
		select {
		case c := <-pool:
			return c, nil
		default:
			st.fault("%s client: the node closed one of its %d connections, and the transport dialled again", name, conns)
			return nil, errors.New("no pre-dialled connection left")
		}
	}
}

// classify counts one HTTP exchange of the storm and records what breaks
// the contract: a transport error (a reset before a response on a
// connection the node accepted), or a status other than 2xx, 404, 429 and
// the documented 503 (quorum) and 507 (disk).
func (s *ovStats) classify(what string, code int, hdr http.Header, err error) {
	switch {
	case err != nil:
		s.fault("%s: %v (no response)", what, err)
	case code == http.StatusTooManyRequests:
		s.shed.Add(1)
		if hdr.Get("Retry-After") != "1" || hdr.Get("Content-Type") != "application/json" {
			s.fault("%s: 429 with Retry-After %q Content-Type %q, want 1 and application/json", what, hdr.Get("Retry-After"), hdr.Get("Content-Type"))
		}
	case code/100 == 2 || code == http.StatusNotFound:
		s.ok.Add(1)
	case code == http.StatusServiceUnavailable || code == http.StatusInsufficientStorage:
		s.ok.Add(0) // documented, neither progress nor a fault
	default:
		s.other.Add(1)
		s.fault("%s: status %d", what, code)
	}
}

// respStorm is one connection to the Redis port for the storm's length.
func respStorm(st *ovStats, addr string, g int, stopped func() bool) {
	c, err := net.DialTimeout("tcp", addr, ovDeadline)
	if err != nil {
		st.fault("resp: dial: %v", err)
		return
	}
	defer c.Close()
	st.respOpened.Add(1)
	_ = c.SetDeadline(time.Now().Add(ovDeadline + ovStorm))
	rd := bufio.NewReader(c)
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		st.fault("resp: writing PING: %v", err)
		return
	}
	line, err := rd.ReadString('\n')
	switch {
	case err != nil:
		st.fault("resp: no reply to PING before the close: %v", err)
		return
	case line == "-ERR max number of clients reached\r\n":
		st.respRefused.Add(1)
		return
	case line != "+PONG\r\n":
		st.fault("resp: PING = %q", line)
		return
	}
	st.respAccepted.Add(1)
	for i := 0; i < ovMaxOps && !stopped(); i++ {
		key := fmt.Sprintf("ov/resp/%d/%d", g, i)
		v := ovValue(key)
		st.requests.Add(1)
		fmt.Fprintf(c, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(key), key, len(v), v)
		line, err := rd.ReadString('\n')
		switch {
		case err != nil:
			st.fault("resp: SET %s: %v (no reply)", key, err)
			return
		case line == "+OK\r\n":
			st.ok.Add(1)
			st.ack(key, v)
		case strings.HasPrefix(line, "-TRYAGAIN node is overloaded"):
			st.shed.Add(1)
		default:
			st.other.Add(1)
			st.fault("resp: SET %s = %q", key, line)
		}
	}
}

// ovValue is the value written to key: recognisable, ovValueLen bytes.
func ovValue(key string) []byte {
	v := bytes.Repeat([]byte{'.'}, ovValueLen)
	copy(v, key)
	return v
}

func kvPathOf(key string) string { return kvPath(-1, key) }

// ovDo sends one request and drains the response.
func ovDo(c *http.Client, method, url string, body []byte) (int, http.Header, error) {
	code, hdr, _, err := ovRequest(c, method, url, body)
	return code, hdr, err
}

func ovGet(c *http.Client, url string) (int, http.Header, []byte, error) {
	return ovRequest(c, http.MethodGet, url, nil)
}

func ovRequest(c *http.Client, method, url string, body []byte) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ovDeadline)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

func isJSONError(body []byte) bool {
	var e struct {
		Error string `json:"error"`
	}
	return json.Unmarshal(body, &e) == nil && e.Error != ""
}

// rssOf is the resident memory of process pid in MiB (VmRSS).
func rssOf(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				return 0, fmt.Errorf("VmRSS line %q: %w", l, err)
			}
			return kb >> 10, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc/<pid>/status")
}

func rssMiB(t *testing.T, pid int) int {
	t.Helper()
	r, err := rssOf(pid)
	if err != nil {
		t.Fatalf("resident memory of node process %d: %v", pid, err)
	}
	return r
}
