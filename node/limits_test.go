package node

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
)

// hangBound keeps a broken server from hanging a test; it is never what a
// test measures.
const hangBound = 30 * time.Second

// rawHTTP is a plain TCP connection to the HTTP port, for requests no
// well-behaved client sends.
type rawHTTP struct {
	t  *testing.T
	c  net.Conn
	rd *bufio.Reader
}

func dialHTTP(t *testing.T, tn *testNode) *rawHTTP {
	t.Helper()
	c, err := net.Dial("tcp", tn.Addr())
	if err != nil {
		t.Fatalf("dialling %s: %v", tn.Addr(), err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(hangBound))
	return &rawHTTP{t: t, c: c, rd: bufio.NewReader(c)}
}

// get sends GET path on the connection and reads the response.
func (r *rawHTTP) get(path string) (*http.Response, []byte, error) {
	if _, err := fmt.Fprintf(r.c, "GET %s HTTP/1.1\r\nHost: dynkv\r\n\r\n", path); err != nil {
		return nil, nil, err
	}
	return r.response()
}

func (r *rawHTTP) response() (*http.Response, []byte, error) {
	resp, err := http.ReadResponse(r.rd, nil)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body, err
}

// closedByServer tells whether the next read ends in EOF or a reset (the
// server closed), as opposed to data or the test's own hang bound.
func (r *rawHTTP) closedByServer() error {
	b, err := r.rd.ReadByte()
	switch {
	case err == nil:
		return fmt.Errorf("read %q, want the connection closed", b)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), strings.Contains(err.Error(), "connection reset"):
		return nil
	default:
		return fmt.Errorf("read: %v, want EOF (the server closing)", err)
	}
}

func TestHTTPHeaderBeyondTheLimitGets431(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTPMaxHeaderBytes = 4 << 10
	tn := startNode(t, &cfg, nil)

	r := dialHTTP(t, tn)
	// net/http allows 4 KiB of slack over MaxHeaderBytes; 64 KiB is far
	// beyond both.
	big := strings.Repeat("a", 64<<10)
	if _, err := fmt.Fprintf(r.c, "GET /health HTTP/1.1\r\nHost: dynkv\r\nX-Big: %s\r\n\r\n", big); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	resp, _, err := r.response()
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 64 KiB header with --http-max-header-bytes 4KiB = %d, want 431", resp.StatusCode)
	}
	// A header within the limit is served.
	ok := dialHTTP(t, tn)
	if resp, _, err := ok.get("/health?pad=" + strings.Repeat("b", 2<<10)); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a 2 KiB request line = %v, %v; want 200", resp, err)
	}
}

func TestHTTPSlowHeaderConnectionIsClosed(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTPReadHeaderTimeout = 100 * time.Millisecond
	tn := startNode(t, &cfg, nil)

	// Slowloris: a request line and one header, then nothing. The server
	// must hang up by itself; the test bounds only its own wait.
	r := dialHTTP(t, tn)
	if _, err := io.WriteString(r.c, "GET /health HTTP/1.1\r\nHost: dynkv\r\n"); err != nil {
		t.Fatalf("writing half a request: %v", err)
	}
	if err := r.closedByServer(); err != nil {
		t.Fatalf("a connection that never finishes its headers: %v", err)
	}
	// A complete request on another connection is served.
	if resp, _, err := dialHTTP(t, tn).get("/health"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /health after the slow client = %v, %v; want 200", resp, err)
	}
}

func TestHTTPConnectionsBeyondTheLimitGet429AndClose(t *testing.T) {
	cfg := testConfig(t)
	const limit = 4
	cfg.HTTPMaxConns = limit
	tn := startNode(t, &cfg, nil)

	// limit connections, each proven accepted by a response.
	var held []*rawHTTP
	for i := range limit {
		r := dialHTTP(t, tn)
		if resp, _, err := r.get("/health"); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %d of %d: GET /health = %v, %v; want 200", i+1, limit, resp, err)
		}
		held = append(held, r)
	}

	// Extra connections get a complete 429, then EOF.
	const extra = 3
	for i := range extra {
		r := dialHTTP(t, tn)
		resp, body, err := r.get("/kv/k")
		if err != nil {
			t.Fatalf("extra connection %d: %v, want a 429 response", i+1, err)
		}
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" ||
			resp.Header.Get("Content-Type") != "application/json" || !resp.Close {
			t.Fatalf("extra connection %d: %d Retry-After %q Content-Type %q close %v; want 429, 1, application/json, close",
				i+1, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), resp.Close)
		}
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error, "too many connections") {
			t.Fatalf("extra connection %d: body %q, want {\"error\": \"too many connections...\"}", i+1, body)
		}
		if err := r.closedByServer(); err != nil {
			t.Fatalf("extra connection %d after its 429: %v", i+1, err)
		}
	}

	// The connections within the limit keep working.
	for i, r := range held {
		if resp, _, err := r.get("/health"); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("held connection %d after the refusals: %v, %v; want 200", i+1, resp, err)
		}
	}

	fams := gatherMetrics(t, tn)
	if v := value(sample(t, fams, "dynkv_http_connections_refused_total", nil)); v != extra {
		t.Errorf("dynkv_http_connections_refused_total = %v, want %d", v, extra)
	}
	if v := value(sample(t, fams, "dynkv_http_connections_open", nil)); v != limit {
		t.Errorf("dynkv_http_connections_open = %v, want %d", v, limit)
	}

	// Once two close, new connections are admitted again. The server
	// notices a close when its read returns, a moment later: retry a
	// bounded number of times.
	for _, r := range held[:2] {
		_ = r.c.Close()
	}
	admitted := 0
	for attempt := 0; attempt < 200 && admitted < 2; attempt++ {
		r := dialHTTP(t, tn)
		resp, _, err := r.get("/health")
		switch {
		case err != nil:
			t.Fatalf("a new connection after two closed: %v", err)
		case resp.StatusCode == http.StatusOK:
			admitted++
			held = append(held, r) // keep it open: it holds a place
		case resp.StatusCode == http.StatusTooManyRequests:
			_ = r.c.Close()
			time.Sleep(10 * time.Millisecond)
		default:
			t.Fatalf("a new connection after two closed: %d, want 200 or 429", resp.StatusCode)
		}
	}
	if admitted != 2 {
		t.Fatalf("after two connections closed, %d new ones were admitted, want 2", admitted)
	}
	// And the limit still holds.
	if resp, _, err := dialHTTP(t, tn).get("/health"); err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("one connection beyond the limit again = %v, %v; want 429", resp, err)
	}
}

// gatherMetrics reads tn's registry as /metrics would serve it, without a
// connection of its own (which the connection limit would count).
func gatherMetrics(t *testing.T, tn *testNode) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := tn.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily, len(fams))
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func TestRESPIdleTimeoutDoesNotHoldUpShutdown(t *testing.T) {
	cfg := testConfig(t)
	cfg.RESPAddr = "127.0.0.1:0"
	cfg.RESPIdleTimeout = time.Hour
	cfg.ShutdownTimeout = hangBound
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: n.RESPAddr(), PoolSize: 1, MaxRetries: -1})
	defer rc.Close()
	if err := rc.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	// The idle connection's read deadline is an hour away; the drain
	// must end it anyway, not wait for the shutdown timeout.
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown with an idle connection and --resp-idle-timeout 1h: %v, want a clean drain", err)
	}
}

func TestTLSConnectionsBeyondTheLimitAreClosedBeforeTheHandshake(t *testing.T) {
	pki := newTestPKI(t)
	cfg := testConfig(t)
	cfg.TLSCert, cfg.TLSKey = pki.certFile, pki.keyFile
	cfg.HTTPMaxConns = 1
	tn := startNode(t, &cfg, nil)
	dial := func() (*tls.Conn, error) {
		d := &net.Dialer{Timeout: hangBound}
		c, err := tls.DialWithDialer(d, "tcp", tn.Addr(), &tls.Config{RootCAs: pki.pool, NextProtos: []string{"http/1.1"}})
		if err != nil {
			return nil, err
		}
		_ = c.SetDeadline(time.Now().Add(hangBound))
		return c, nil
	}
	get := func(c *tls.Conn) (int, error) {
		if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: dynkv\r\n\r\n"); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}

	first, err := dial()
	if err != nil {
		t.Fatalf("the one TLS connection within the limit: %v", err)
	}
	defer first.Close()
	if code, err := get(first); err != nil || code != http.StatusOK {
		t.Fatalf("GET /health on it = %d, %v; want 200", code, err)
	}
	// A 429 cannot be written in plain text on a TLS port: the second
	// connection is closed, and its handshake fails.
	if c, err := dial(); err == nil {
		code, gerr := get(c)
		c.Close()
		t.Fatalf("a TLS connection beyond --http-max-conns 1 completed its handshake (then GET = %d, %v); want it closed", code, gerr)
	}
	if code, err := get(first); err != nil || code != http.StatusOK {
		t.Fatalf("the connection within the limit after the refusal: %d, %v; want 200", code, err)
	}
	if v := value(sample(t, gatherMetrics(t, tn), "dynkv_http_connections_refused_total", nil)); v != 1 {
		t.Errorf("dynkv_http_connections_refused_total = %v, want 1", v)
	}
	// Once it closes, a new one is admitted (when the server has seen
	// the close: a bounded retry).
	first.Close()
	for attempt := 0; ; attempt++ {
		c, err := dial()
		if err == nil {
			code, err := get(c)
			c.Close()
			if err != nil || code != http.StatusOK {
				t.Fatalf("a TLS connection after the first closed: GET = %d, %v; want 200", code, err)
			}
			break
		}
		if attempt == 200 {
			t.Fatalf("no TLS connection admitted after the first closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
