package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeNode implements the SPEC section 3 responses over an in-memory map.
// A context is "v<version>": a PUT whose context names the current version
// (or no context: a blind write) replaces the values; a stale context adds
// a sibling, which is how concurrent writers look to a client.
type fakeNode struct {
	mu       sync.Mutex
	data     map[string]*fakeEntry // db + "/" + key
	requests []*http.Request
	bodies   [][]byte
	// failNext answers that many requests with failStatus before serving.
	failNext   int
	failStatus int
}

type fakeEntry struct {
	version  int
	siblings []fakeSibling
	deleted  bool
}

type fakeSibling struct {
	value       []byte
	contentType string
	modified    time.Time
}

func newFakeNode(t *testing.T) (*fakeNode, *httptest.Server) {
	t.Helper()
	f := &fakeNode{data: map[string]*fakeEntry{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": msg})
}

func (f *fakeNode) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakeNode) lastRequest() (*http.Request, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1], f.bodies[len(f.bodies)-1]
}

func (f *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r)
	f.bodies = append(f.bodies, body)
	if f.failNext > 0 {
		f.failNext--
		if f.failStatus == http.StatusServiceUnavailable {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"quorum not reached","needed":2,"acked":1}`)
			return
		}
		if f.failStatus == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		writeErr(w, f.failStatus, "shedding load")
		return
	}
	if r.URL.Path == "/cluster/join" && r.Method == http.MethodPost {
		_, _ = w.Write([]byte(`{"joined":true}`))
		return
	}
	db, key, ok := parseKVPath(r.URL.EscapedPath())
	if !ok {
		http.NotFound(w, r)
		return
	}
	id := db + "/" + key
	e := f.data[id]
	switch r.Method {
	case http.MethodPut:
		if e == nil {
			e = &fakeEntry{}
			f.data[id] = e
		}
		sib := fakeSibling{value: body, contentType: r.Header.Get("Content-Type"), modified: time.Unix(int64(1700000000+e.version), 0).UTC()}
		c := r.Header.Get("X-Context")
		if c == "" || c == ctxOf(e.version) || e.deleted {
			e.siblings = []fakeSibling{sib}
		} else {
			e.siblings = append(e.siblings, sib)
		}
		e.deleted = false
		e.version++
		w.Header().Set("X-Context", ctxOf(e.version))
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		if e == nil {
			e = &fakeEntry{}
			f.data[id] = e
		}
		e.version++
		e.deleted = true
		e.siblings = nil
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet:
		if e == nil {
			writeErr(w, http.StatusNotFound, "not found")
			return
		}
		w.Header().Set("X-Context", ctxOf(e.version))
		if e.deleted {
			writeErr(w, http.StatusNotFound, "not found")
			return
		}
		if len(e.siblings) == 1 {
			s := e.siblings[0]
			if s.contentType != "" {
				w.Header().Set("Content-Type", s.contentType)
			}
			w.Header().Set("Last-Modified", s.modified.Format(http.TimeFormat))
			_, _ = w.Write(s.value)
			return
		}
		var doc struct {
			Siblings []map[string]any `json:"siblings"`
		}
		for _, s := range e.siblings {
			doc.Siblings = append(doc.Siblings, map[string]any{
				"value": s.value, "content_type": s.contentType, "last_modified": s.modified.Format(time.RFC3339),
			})
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMultipleChoices)
		_ = json.NewEncoder(w).Encode(doc)
	default:
		writeErr(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

func ctxOf(v int) string { return base64.RawURLEncoding.EncodeToString([]byte("v" + strconv.Itoa(v))) }

// parseKVPath splits /kv/{key} or /db/{n}/kv/{key}, decoding the key the way
// the SPEC says: the rest of the path, percent-decoded.
func parseKVPath(escaped string) (db, key string, ok bool) {
	db = "0"
	rest, found := strings.CutPrefix(escaped, "/kv/")
	if !found {
		after, found := strings.CutPrefix(escaped, "/db/")
		if !found {
			return "", "", false
		}
		n, tail, found := strings.Cut(after, "/kv/")
		if !found {
			return "", "", false
		}
		db, rest = n, tail
	}
	k, err := unescapePath(rest)
	if err != nil || k == "" {
		return "", "", false
	}
	return db, k, true
}

func unescapePath(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("short escape")
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

func newTestClient(t *testing.T, addrs []string, opts ...Option) *Client {
	t.Helper()
	opts = append([]Option{WithBackoff(time.Millisecond, 2*time.Millisecond)}, opts...)
	c, err := New(addrs, opts...)
	if err != nil {
		t.Fatalf("New(%v): %v", addrs, err)
	}
	return c
}

func TestAnyByteStringKeyRoundTrips(t *testing.T) {
	f, srv := newFakeNode(t)
	c := newTestClient(t, []string{srv.URL})
	keys := []string{"plain", "a/b/c", "with space", "q?x=1&y#frag", "100%", "\xff\x00\x01binary", "ключ", "..", strings.Repeat("k", 1024)}
	for i, k := range keys {
		val := []byte(fmt.Sprintf("value-%d", i))
		if _, err := c.Put(context.Background(), k, val, PutOptions{}); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
		res, err := c.Get(context.Background(), k, GetOptions{})
		if err != nil {
			t.Fatalf("Get(%q): %v", k, err)
		}
		if got := res.Values[0].Value; !bytes.Equal(got, val) {
			t.Fatalf("Get(%q) = %q, want %q", k, got, val)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.data) != len(keys) {
		t.Fatalf("server saw %d distinct keys, want %d: a key was mangled on the wire", len(f.data), len(keys))
	}
	for _, k := range keys {
		if _, ok := f.data["0/"+k]; !ok {
			t.Errorf("server never stored key %q", k)
		}
	}
}

func TestEmptyKeyIsRejectedBeforeSending(t *testing.T) {
	f, srv := newFakeNode(t)
	c := newTestClient(t, []string{srv.URL})
	if _, err := c.Put(context.Background(), "", []byte("x"), PutOptions{}); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("Put with empty key: err = %v, want ErrEmptyKey", err)
	}
	if n := f.attempts(); n != 0 {
		t.Fatalf("server saw %d requests, want 0", n)
	}
}

func TestPutSendsOptionsOnTheWire(t *testing.T) {
	f, srv := newFakeNode(t)
	c := newTestClient(t, []string{srv.URL}, WithToken("s3cret"))
	newCtx, err := c.Put(context.Background(), "k", []byte("v"), PutOptions{
		Context: "abc", TTL: 30 * time.Second, W: 3, ContentType: "text/plain", DB: 7,
	})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if newCtx != ctxOf(1) {
		t.Fatalf("Put returned context %q, want %q", newCtx, ctxOf(1))
	}
	r, body := f.lastRequest()
	checks := []struct{ what, got, want string }{
		{"method", r.Method, http.MethodPut},
		{"path", r.URL.EscapedPath(), "/db/7/kv/k"},
		{"ttl", r.URL.Query().Get("ttl"), "30s"},
		{"w", r.URL.Query().Get("w"), "3"},
		{"X-Context", r.Header.Get("X-Context"), "abc"},
		{"Content-Type", r.Header.Get("Content-Type"), "text/plain"},
		{"Authorization", r.Header.Get("Authorization"), "Bearer s3cret"},
		{"body", string(body), "v"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.what, ch.got, ch.want)
		}
	}
}

func TestGetReadQuorumAndDatabaseZeroPath(t *testing.T) {
	f, srv := newFakeNode(t)
	c := newTestClient(t, []string{srv.URL})
	_, _ = c.Get(context.Background(), "k", GetOptions{R: 1})
	r, _ := f.lastRequest()
	if r.URL.EscapedPath() != "/kv/k" || r.URL.Query().Get("r") != "1" {
		t.Fatalf("request %s, want /kv/k?r=1", r.URL)
	}
	if r.Header.Get("Authorization") != "" {
		t.Fatalf("Authorization sent without a token: %q", r.Header.Get("Authorization"))
	}
}

func TestGetOfDeletedKeyReturnsNotFoundWithTombstoneContext(t *testing.T) {
	_, srv := newFakeNode(t)
	c := newTestClient(t, []string{srv.URL})
	ctx := context.Background()
	if _, err := c.Put(ctx, "k", []byte("v"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "k", DeleteOptions{}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	res, err := c.Get(ctx, "k", GetOptions{})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete: err = %v, want ErrNotFound", err)
	}
	if res == nil || res.Context != ctxOf(2) {
		t.Fatalf("Get after delete: result %+v, want tombstone context %q", res, ctxOf(2))
	}
	res, err = c.Get(ctx, "never-written", GetOptions{})
	if !errors.Is(err, ErrNotFound) || res.Context != "" {
		t.Fatalf("Get of absent key: %+v, %v; want empty context and ErrNotFound", res, err)
	}
}

func TestConcurrentWritesComeBackAsSiblingsAndResolve(t *testing.T) {
	_, srv := newFakeNode(t)
	ctx := context.Background()
	longest := func(s []Sibling) []byte {
		best := s[0].Value
		for _, x := range s[1:] {
			if len(x.Value) > len(best) {
				best = x.Value
			}
		}
		return best
	}
	c := newTestClient(t, []string{srv.URL}, WithResolver(longest))
	base, err := c.Put(ctx, "k", []byte("base"), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Two writers start from the same context: the second is concurrent.
	if _, err := c.Put(ctx, "k", []byte("first"), PutOptions{Context: base, ContentType: "text/a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "k", []byte("second-longer"), PutOptions{Context: base, ContentType: "text/b"}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Get(ctx, "k", GetOptions{})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !res.Conflict() || len(res.Values) != 2 {
		t.Fatalf("Get returned %d values, want 2 siblings", len(res.Values))
	}
	if string(res.Values[0].Value) != "first" || res.Values[0].ContentType != "text/a" || res.Values[0].LastModified.IsZero() {
		t.Fatalf("first sibling decoded as %+v", res.Values[0])
	}
	v, resolvedCtx, err := c.GetResolved(ctx, "k", GetOptions{})
	if err != nil || string(v) != "second-longer" || resolvedCtx != res.Context {
		t.Fatalf("GetResolved = %q, %q, %v; want the custom resolver's pick and context %q", v, resolvedCtx, err, res.Context)
	}
	// Writing the resolution with the read context replaces both siblings.
	if _, err := c.Put(ctx, "k", v, PutOptions{Context: resolvedCtx}); err != nil {
		t.Fatal(err)
	}
	res, err = c.Get(ctx, "k", GetOptions{})
	if err != nil || res.Conflict() || string(res.Values[0].Value) != "second-longer" {
		t.Fatalf("after resolving: %+v, %v", res, err)
	}
}

func TestLatestWinsPicksNewestSibling(t *testing.T) {
	t0 := time.Unix(100, 0)
	sibs := []Sibling{{Value: []byte("a"), LastModified: t0}, {Value: []byte("b"), LastModified: t0.Add(time.Second)}, {Value: []byte("c"), LastModified: t0}}
	if got := LatestWins(sibs); string(got) != "b" {
		t.Fatalf("LatestWins = %q, want b", got)
	}
}

func TestRetriesQuorumFailureThenSucceeds(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			f, srv := newFakeNode(t)
			f.failNext, f.failStatus = 2, status
			c := newTestClient(t, []string{srv.URL}, WithRetries(3))
			if _, err := c.Put(context.Background(), "k", []byte("v"), PutOptions{}); err != nil {
				t.Fatalf("Put after two %d answers: %v", status, err)
			}
			if n := f.attempts(); n != 3 {
				t.Fatalf("server saw %d attempts, want 3", n)
			}
			_, body := f.lastRequest()
			if string(body) != "v" {
				t.Fatalf("retried body = %q, want the full value again", body)
			}
		})
	}
}

func TestRetriesAreBoundedAndReportTheQuorum(t *testing.T) {
	f, srv := newFakeNode(t)
	f.failNext, f.failStatus = 100, http.StatusServiceUnavailable
	c := newTestClient(t, []string{srv.URL}, WithRetries(2))
	_, err := c.Put(context.Background(), "k", []byte("v"), PutOptions{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v (%T), want *APIError", err, err)
	}
	if apiErr.Status != 503 || apiErr.Needed != 2 || apiErr.Acked != 1 || apiErr.Message != "quorum not reached" {
		t.Fatalf("APIError = %+v, want 503 needed 2 acked 1", apiErr)
	}
	if !IsRetryable(err) {
		t.Fatalf("IsRetryable(%v) = false, want true", err)
	}
	if n := f.attempts(); n != 3 {
		t.Fatalf("server saw %d attempts, want 1 + 2 retries", n)
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	f, srv := newFakeNode(t)
	f.failNext, f.failStatus = 1, http.StatusRequestEntityTooLarge
	c := newTestClient(t, []string{srv.URL}, WithRetries(3))
	_, err := c.Put(context.Background(), "k", []byte("v"), PutOptions{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 413 || apiErr.Message != "shedding load" {
		t.Fatalf("err = %v, want APIError 413 with the server's message", err)
	}
	if IsRetryable(err) {
		t.Fatalf("IsRetryable(413) = true")
	}
	if n := f.attempts(); n != 1 {
		t.Fatalf("server saw %d attempts, want 1", n)
	}
}

// deadAddr returns an address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestFailsOverToTheNextNodeAndSticksToIt(t *testing.T) {
	f, srv := newFakeNode(t)
	c := newTestClient(t, []string{deadAddr(t), srv.URL}, WithRetries(2))
	ctx := context.Background()
	if _, err := c.Put(ctx, "k", []byte("v"), PutOptions{}); err != nil {
		t.Fatalf("Put with the first node down: %v", err)
	}
	if _, err := c.Get(ctx, "k", GetOptions{}); err != nil {
		t.Fatalf("Get with the first node down: %v", err)
	}
	if n := f.attempts(); n != 2 {
		t.Fatalf("live node saw %d requests, want 2", n)
	}
	if c.preferred.Load() != 1 {
		t.Fatalf("preferred address = %d, want 1 (the live one)", c.preferred.Load())
	}
}

func TestFailsOverFromAnOverloadedNode(t *testing.T) {
	busy, busySrv := newFakeNode(t)
	busy.failNext, busy.failStatus = 100, http.StatusTooManyRequests
	good, goodSrv := newFakeNode(t)
	c := newTestClient(t, []string{busySrv.URL, goodSrv.URL}, WithRetries(1))
	if _, err := c.Put(context.Background(), "k", []byte("v"), PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if busy.attempts() != 1 || good.attempts() != 1 {
		t.Fatalf("attempts busy=%d good=%d, want 1 each", busy.attempts(), good.attempts())
	}
}

func TestAllNodesDownGivesConnError(t *testing.T) {
	c := newTestClient(t, []string{deadAddr(t), deadAddr(t)}, WithRetries(1))
	_, err := c.Get(context.Background(), "k", GetOptions{})
	var ce *ConnError
	if !errors.As(err, &ce) || !IsRetryable(err) {
		t.Fatalf("err = %v (%T), want *ConnError", err, err)
	}
}

func TestRetryAfterIsReadAndCappedByTheBackoff(t *testing.T) {
	f, srv := newFakeNode(t)
	f.failNext, f.failStatus = 100, http.StatusTooManyRequests
	// Retry-After: 1 would wait a second per retry; the 2ms cap wins.
	c := newTestClient(t, []string{srv.URL}, WithRetries(2))
	_, err := c.Get(context.Background(), "k", GetOptions{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 429 || apiErr.RetryAfter != time.Second {
		t.Fatalf("err = %v (%+v), want 429 with RetryAfter 1s", err, apiErr)
	}
	if n := f.attempts(); n != 3 {
		t.Fatalf("server saw %d attempts, want 3", n)
	}
}

func TestCancelledContextStopsRetrying(t *testing.T) {
	f, srv := newFakeNode(t)
	f.failNext, f.failStatus = 100, http.StatusServiceUnavailable
	// Cancel once the client has read and closed the first 503, so that
	// it is backing off, not still waiting for that response.
	answered := &closeSignal{RoundTripper: http.DefaultTransport, closed: make(chan struct{})}
	c, err := New([]string{srv.URL}, WithRetries(1000), WithBackoff(time.Hour, time.Hour),
		WithHTTPClient(&http.Client{Transport: answered}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Put(ctx, "k", []byte("v"), PutOptions{})
		done <- err
	}()
	<-answered.closed
	cancel()
	err = <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 503 {
		t.Fatalf("err = %v, want it to carry the last 503 too", err)
	}
}

// closeSignal closes closed when the body of the first response it
// returned is closed.
type closeSignal struct {
	http.RoundTripper
	once   sync.Once
	closed chan struct{}
}

func (s *closeSignal) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.RoundTripper.RoundTrip(r)
	if err == nil {
		resp.Body = signalingBody{resp.Body, s}
	}
	return resp, err
}

type signalingBody struct {
	io.ReadCloser
	s *closeSignal
}

func (b signalingBody) Close() error {
	err := b.ReadCloser.Close()
	b.s.once.Do(func() { close(b.s.closed) })
	return err
}

func TestClusterCalls(t *testing.T) {
	f, srv := newFakeNode(t)
	c := newTestClient(t, []string{srv.URL})
	ctx := context.Background()
	out, err := c.ClusterJoin(ctx, []string{"10.0.0.1:7946", "10.0.0.2:7946"})
	if err != nil || string(out) != `{"joined":true}` {
		t.Fatalf("ClusterJoin = %s, %v", out, err)
	}
	r, body := f.lastRequest()
	if r.Method != http.MethodPost || r.URL.Path != "/cluster/join" || string(body) != `{"addrs":["10.0.0.1:7946","10.0.0.2:7946"]}` {
		t.Fatalf("join sent %s %s %s", r.Method, r.URL, body)
	}
	// The fake has no status endpoint: the client reports the server's 404.
	_, err = c.ClusterStatus(ctx)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("ClusterStatus err = %v, want APIError 404", err)
	}
	_, _ = c.ClusterLeave(ctx, "node-3")
	r, _ = f.lastRequest()
	if r.URL.Path != "/cluster/leave" || r.URL.Query().Get("node") != "node-3" {
		t.Fatalf("leave sent %s", r.URL)
	}
}

func TestNewNormalisesAndValidatesAddresses(t *testing.T) {
	c, err := New([]string{"127.0.0.1:8080", " https://h:1/ ", ""})
	if err != nil {
		t.Fatal(err)
	}
	got := c.Addrs()
	if len(got) != 2 || got[0] != "http://127.0.0.1:8080" || got[1] != "https://h:1" {
		t.Fatalf("Addrs = %q", got)
	}
	for _, bad := range [][]string{nil, {""}, {"ftp://x:1"}, {"http://"}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) succeeded, want an error", bad)
		}
	}
}

func TestAPIErrorFromPlainTextBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "missing token\nsecond line")
	}))
	defer srv.Close()
	c := newTestClient(t, []string{srv.URL})
	_, err := c.Get(context.Background(), "k", GetOptions{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Message != "missing token" {
		t.Fatalf("err = %v, want 401 with the first line of the body", err)
	}
	if !strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("error %q does not name the node", err)
	}
}

// BenchmarkPutGet measures the client's own cost per request pair against
// an in-process fake node over loopback HTTP.
func BenchmarkPutGet(b *testing.B) {
	f := &fakeNode{data: map[string]*fakeEntry{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := New([]string{srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	value := bytes.Repeat([]byte("v"), 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		key := "key-" + strconv.Itoa(i%1000)
		if _, err := c.Put(ctx, key, value, PutOptions{}); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Get(ctx, key, GetOptions{}); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			// The fake records every request; keep its memory flat.
			f.mu.Lock()
			f.requests, f.bodies = f.requests[:0], f.bodies[:0]
			f.mu.Unlock()
		}
	}
}
