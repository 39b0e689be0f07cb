package node

import (
	"bufio"
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
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/node/httpapi"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

func TestPutThenGetReturnsValueContentTypeAndContext(t *testing.T) {
	tn := startNode(t, nil, nil)
	r := tn.put("/kv/greeting", "hello", map[string]string{"Content-Type": "text/plain"})
	if r.status != http.StatusNoContent {
		t.Fatalf("PUT = %d %q, want 204", r.status, r.body)
	}
	if _, err := httpapi.DecodeContext(r.context()); err != nil || r.context() == "" {
		t.Fatalf("PUT X-Context %q does not decode: %v", r.context(), err)
	}
	g := tn.mustGet("/kv/greeting", "hello")
	if ct := g.header.Get("Content-Type"); ct != "text/plain" {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	if _, err := http.ParseTime(g.header.Get("Last-Modified")); err != nil {
		t.Errorf("Last-Modified %q: %v", g.header.Get("Last-Modified"), err)
	}
	if g.context() != r.context() {
		t.Errorf("GET X-Context %q, want the PUT's %q (the only write)", g.context(), r.context())
	}

	tn.mustPut("/kv/raw", "\x00\x01", "")
	if ct := tn.mustGet("/kv/raw", "\x00\x01").header.Get("Content-Type"); ct != httpapi.DefaultContentType {
		t.Errorf("Content-Type without one on PUT = %q, want %s", ct, httpapi.DefaultContentType)
	}
}

func TestHeadIsGetWithoutBody(t *testing.T) {
	tn := startNode(t, nil, nil)
	tn.mustPut("/kv/k", "12345", "")
	r := tn.do(http.MethodHead, "/kv/k", nil, nil)
	if r.status != http.StatusOK || len(r.body) != 0 || r.header.Get("Content-Length") != "5" || r.context() == "" {
		t.Fatalf("HEAD = %d, body %q, Content-Length %q, X-Context %q; want 200, no body, 5, a context",
			r.status, r.body, r.header.Get("Content-Length"), r.context())
	}
	if r := tn.do(http.MethodHead, "/kv/missing", nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("HEAD missing = %d, want 404", r.status)
	}
}

func TestKeysArePercentDecodedRawBytes(t *testing.T) {
	tn := startNode(t, nil, nil)
	cases := []struct {
		name, target, key string
	}{
		{"escaped slash", "/kv/a%2Fb", "a/b"},
		{"NUL byte", "/kv/%00", "\x00"},
		{"NUL inside", "/kv/a%00b", "a\x00b"},
		{"escaped unicode", "/kv/%C3%BCber", "über"},
		{"raw unicode", "/kv/\u00fcber-raw", "über-raw"},
		{"invalid UTF-8", "/kv/%FF%FE", "\xff\xfe"},
		{"escaped percent", "/kv/100%25", "100%"},
		{"escaped query mark", "/kv/what%3F", "what?"},
		{"raw hash", "/kv/a#b", "a#b"},
		{"space", "/kv/a%20b", "a b"},
		{"dot segments stay", "/kv/../x", "../x"},
		{"1024 bytes", "/kv/" + strings.Repeat("k", 1024), strings.Repeat("k", 1024)},
		{"1024 escaped bytes", "/kv/" + strings.Repeat("%2F", 1024), strings.Repeat("/", 1024)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			value := "value of " + c.name
			tn.mustPut(c.target, value, "")
			// The same key reached through the canonical encoding.
			tn.mustGet(keyPath(c.key), value)
		})
	}
	// A literal slash and %2F decode to the same key; %252F is a
	// different key whose bytes are "%2F".
	tn.mustPut("/kv/x/y", "slash", "")
	tn.mustGet("/kv/x%2Fy", "slash")
	tn.mustPut("/kv/x%252Fy", "escaped", "")
	tn.mustGet("/kv/x/y", "slash")
	tn.mustGet(keyPath("x%2Fy"), "escaped")
}

func TestMalformedKeysAre400(t *testing.T) {
	tn := startNode(t, nil, nil)
	for _, target := range []string{
		"/kv/",
		"/db/3/kv/",
		"/kv/" + strings.Repeat("k", 1025),
		"/kv/" + strings.Repeat("%00", 1025),
	} {
		for _, method := range []string{http.MethodPut, http.MethodGet, http.MethodDelete} {
			r := tn.do(method, target, strings.NewReader("v"), nil)
			if r.status != http.StatusBadRequest {
				t.Errorf("%s %.40s... = %d %q, want 400", method, target, r.status, r.body)
				continue
			}
			if msg := r.jsonError(t); !strings.Contains(msg, "key") {
				t.Errorf("%s %.40s...: error %q does not mention the key", method, target, msg)
			}
		}
	}
}

// Go's HTTP server answers some malformed request targets itself with a
// plain-text 400 before any handler runs; the node cannot make those JSON.
// This test pins down which ones, so a Go upgrade that changes it is noticed.
func TestGoServerRejectsMalformedTargetsBeforeRouting(t *testing.T) {
	tn := startNode(t, nil, nil)
	addr := strings.TrimPrefix(tn.base, "http://")
	for _, target := range []string{"/kv/%zz", "/kv/%", "/kv/%2", "/kv/a\x01b", "/kv/a\x7fb", "kv/a"} {
		status, ct := rawRequest(t, addr, "GET "+target+" HTTP/1.1")
		if status != http.StatusBadRequest || !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("GET %q = %d %q, want Go's plain-text 400", target, status, ct)
		}
	}
	// A bad escape in the query does reach the node, which answers JSON.
	r := tn.put("/kv/a?ttl=%zz", "v", nil)
	if r.status != http.StatusBadRequest {
		t.Fatalf("PUT with malformed query = %d %q, want 400", r.status, r.body)
	}
	r.jsonError(t)
}

// rawRequest writes a request line by hand, bypassing the client's own URL
// validation, and returns the status and Content-Type.
func rawRequest(t *testing.T, addr, requestLine string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "%s\r\nHost: x\r\nConnection: close\r\n\r\n", requestLine); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: reading response: %v", requestLine, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type")
}

func TestOversizedValueIs413(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxValueBytes = 1024
	tn := startNode(t, &cfg, nil)

	tn.mustPut("/kv/exact", strings.Repeat("v", 1024), "")

	withLength := tn.put("/kv/big", strings.Repeat("v", 1025), nil)
	if withLength.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("PUT 1025 bytes with Content-Length = %d %q, want 413", withLength.status, withLength.body)
	}
	withLength.jsonError(t)

	// io.MultiReader hides the length, so the client sends the body
	// chunked and only the read limit can catch it.
	chunked := tn.do(http.MethodPut, "/kv/big", io.MultiReader(strings.NewReader(strings.Repeat("v", 5000))), nil)
	if chunked.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("PUT 5000 bytes chunked = %d %q, want 413", chunked.status, chunked.body)
	}
	chunked.jsonError(t)
	if r := tn.get("/kv/big", nil); r.status != http.StatusNotFound {
		t.Fatalf("after rejected PUTs GET = %d %q, want 404 (nothing stored)", r.status, r.body)
	}
}

func TestMalformedContextIs400(t *testing.T) {
	tn := startNode(t, nil, nil)
	good := tn.mustPut("/kv/k", "v", "")
	for _, h := range []string{
		"not base64!",
		base64.RawURLEncoding.EncodeToString([]byte("garbage")),
		base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 20)),
		good[:len(good)-1],
		strings.Repeat("A", httpapi.MaxContextHeaderBytes+1),
	} {
		for _, method := range []string{http.MethodPut, http.MethodDelete} {
			r := tn.do(method, "/kv/k", strings.NewReader("x"), map[string]string{ContextHeader: h})
			if r.status != http.StatusBadRequest {
				t.Errorf("%s with X-Context %.30q = %d %q, want 400", method, h, r.status, r.body)
				continue
			}
			if msg := r.jsonError(t); !strings.Contains(msg, ContextHeader) {
				t.Errorf("error %q does not name %s", msg, ContextHeader)
			}
		}
	}
	// Padding some clients add is accepted.
	tn.mustPut("/kv/k", "padded", good+"==")
	tn.mustGet("/kv/k", "padded")
}

func TestTTLAndQuorumQueriesAreValidated(t *testing.T) {
	tn := startNode(t, nil, nil)
	bad := []string{
		"ttl=", "ttl=0", "ttl=0s", "ttl=-1", "ttl=-5s", "ttl=abc", "ttl=1.5", "ttl=5x",
		"ttl=99999999999999999999", "ttl=1000000h", "ttl=+5",
		"w=", "w=0", "w=-1", "w=two", "w=+1", "w=1.0", "w=99999999999999999999",
		"a;b", "ttl=%zz",
	}
	for _, q := range bad {
		r := tn.put("/kv/k?"+q, "v", nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("PUT ?%s = %d %q, want 400", q, r.status, r.body)
			continue
		}
		r.jsonError(t)
	}
	for _, q := range []string{"w=x", "w=0"} {
		if r := tn.do(http.MethodDelete, "/kv/k?"+q, nil, nil); r.status != http.StatusBadRequest {
			t.Errorf("DELETE ?%s = %d, want 400", q, r.status)
		}
	}
	for _, q := range []string{"r=", "r=0", "r=many"} {
		if r := tn.get("/kv/k?"+q, nil); r.status != http.StatusBadRequest {
			t.Errorf("GET ?%s = %d, want 400", q, r.status)
		}
	}

	good := []string{
		"ttl=30", "ttl=30s", "ttl=1h30m", "ttl=500ms", "w=1", "w=3", "w=7", "w=one", "w=quorum", "w=all",
		"ttl=10&w=all", "unknown=param",
	}
	for _, q := range good {
		tn.mustPut("/kv/k?"+q, "v", "")
	}
	for _, q := range []string{"r=1", "r=all", "r=quorum", "r=one", "r=9", "foo=bar"} {
		tn.mustGet("/kv/k?"+q, "v")
	}
}

func TestDatabasesAreIsolatedAndBounded(t *testing.T) {
	tn := startNode(t, nil, nil)
	tn.mustPut("/kv/k", "zero", "")
	tn.mustPut("/db/1/kv/k", "one", "")
	tn.mustPut("/db/15/kv/k", "fifteen", "")
	tn.mustGet("/kv/k", "zero")
	tn.mustGet("/db/0/kv/k", "zero")
	tn.mustGet("/db/1/kv/k", "one")
	tn.mustGet("/db/15/kv/k", "fifteen")
	if r := tn.get("/db/2/kv/k", nil); r.status != http.StatusNotFound {
		t.Fatalf("GET /db/2/kv/k = %d %q, want 404 (written only in other databases)", r.status, r.body)
	}
	if r := tn.do(http.MethodDelete, "/db/1/kv/k", nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE /db/1/kv/k = %d", r.status)
	}
	tn.mustGet("/kv/k", "zero")

	// An empty database segment must not fall back to database 0.
	if r := tn.get("/db//kv/k", nil); r.status != http.StatusBadRequest && r.status != http.StatusNotFound {
		t.Errorf("GET /db//kv/k = %d %q, want 400 or 404", r.status, r.body)
	}
	for _, db := range []string{"16", "-1", "x", "%31", "+1", "1e1", "99999999999999999999", "01", "00", "015"} {
		r := tn.put("/db/"+db+"/kv/k", "v", nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("PUT /db/%s/kv/k = %d %q, want 400", db, r.status, r.body)
			continue
		}
		if msg := r.jsonError(t); !strings.Contains(msg, "database") {
			t.Errorf("PUT /db/%s/kv/k: error %q does not mention the database", db, msg)
		}
	}
}

func TestWrongMethodIs405WithAllow(t *testing.T) {
	tn := startNode(t, nil, nil)
	for _, c := range []struct{ method, target, allow string }{
		{http.MethodPost, "/kv/k", "DELETE, GET, HEAD, PUT"},
		{http.MethodPatch, "/db/1/kv/k", "DELETE, GET, HEAD, PUT"},
		{http.MethodPost, "/health", "GET, HEAD"},
		{http.MethodDelete, "/ready", "GET, HEAD"},
		{http.MethodPost, "/metrics", "GET"},
		{http.MethodPut, "/cluster/status", "GET"},
		{http.MethodGet, "/cluster/join", "POST"},
	} {
		r := tn.do(c.method, c.target, nil, nil)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s = %d Allow %q, want 405 Allow %q", c.method, c.target, r.status, r.header.Get("Allow"), c.allow)
			continue
		}
		r.jsonError(t)
	}
}

func TestUnknownPathIs404JSON(t *testing.T) {
	tn := startNode(t, nil, nil)
	for _, target := range []string{"/", "/nope", "/kv", "/db/1/kv", "/db/1/x/k", "/KV/k"} {
		r := tn.get(target, nil)
		if r.status != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", target, r.status)
			continue
		}
		r.jsonError(t)
	}
}

type siblingsResponse struct {
	Siblings []struct {
		Value        []byte `json:"value"`
		ContentType  string `json:"content_type"`
		LastModified string `json:"last_modified"`
	} `json:"siblings"`
}

func TestConcurrentWritesBecomeSiblingsUntilAPutWithTheirContext(t *testing.T) {
	tn := startNode(t, nil, nil)
	base := tn.mustPut("/kv/cart", "empty", "")
	tn.mustPut("/kv/cart", "apples", base)
	r := tn.put("/kv/cart", "pears", map[string]string{ContextHeader: base, "Content-Type": "text/plain"})
	if r.status != http.StatusNoContent {
		t.Fatalf("second concurrent PUT = %d", r.status)
	}

	g := tn.get("/kv/cart", nil)
	if g.status != http.StatusMultipleChoices || g.header.Get("Content-Type") != "application/json" || g.context() == "" {
		t.Fatalf("GET after two concurrent PUTs = %d (%s) X-Context %q, want 300 JSON with a context; body %q",
			g.status, g.header.Get("Content-Type"), g.context(), g.body)
	}
	var sr siblingsResponse
	if err := json.Unmarshal(g.body, &sr); err != nil {
		t.Fatalf("300 body %q: %v", g.body, err)
	}
	got := map[string]string{}
	for _, s := range sr.Siblings {
		if _, err := time.Parse(time.RFC3339Nano, s.LastModified); err != nil {
			t.Errorf("sibling last_modified %q: %v", s.LastModified, err)
		}
		got[string(s.Value)] = s.ContentType
	}
	want := map[string]string{"apples": httpapi.DefaultContentType, "pears": "text/plain"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("siblings = %v, want %v (the superseded \"empty\" must be gone)", got, want)
	}
	// The value field is standard base64 on the wire.
	if !bytes.Contains(g.body, []byte(base64.StdEncoding.EncodeToString([]byte("apples")))) {
		t.Errorf("300 body %s does not carry values as standard base64", g.body)
	}
	if h := tn.do(http.MethodHead, "/kv/cart", nil, nil); h.status != http.StatusMultipleChoices || len(h.body) != 0 {
		t.Errorf("HEAD on siblings = %d with %d body bytes, want 300 without body", h.status, len(h.body))
	}

	tn.mustPut("/kv/cart", "apples and pears", g.context())
	tn.mustGet("/kv/cart", "apples and pears")
}

func TestBlindWriteSupersedesEverything(t *testing.T) {
	tn := startNode(t, nil, nil)
	base := tn.mustPut("/kv/k", "v0", "")
	tn.mustPut("/kv/k", "a", base)
	tn.mustPut("/kv/k", "b", base)
	tn.mustPut("/kv/k", "blind", "")
	tn.mustGet("/kv/k", "blind")
}

func TestDeleteLeavesATombstoneThatReadsAsAbsent(t *testing.T) {
	tn := startNode(t, nil, nil)
	if r := tn.get("/kv/never", nil); r.status != http.StatusNotFound || r.context() != httpapi.EncodeContext(vclock.Context{}) {
		t.Fatalf("GET never-written key = %d X-Context %q, want 404 with the empty context", r.status, r.context())
	}
	ctx := tn.mustPut("/kv/k", "v", "")
	d := tn.do(http.MethodDelete, "/kv/k", nil, map[string]string{ContextHeader: ctx})
	if d.status != http.StatusNoContent || d.context() == "" {
		t.Fatalf("DELETE = %d X-Context %q, want 204 with a context", d.status, d.context())
	}
	g := tn.get("/kv/k", nil)
	if g.status != http.StatusNotFound || g.context() == "" {
		t.Fatalf("GET deleted key = %d X-Context %q, want 404 with the tombstone's context", g.status, g.context())
	}
	g.jsonError(t)
	// A delete of a key never written is a tombstone too, not an error.
	if r := tn.do(http.MethodDelete, "/kv/never", nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE never-written key = %d, want 204", r.status)
	}
	tn.mustPut("/kv/k", "again", g.context())
	tn.mustGet("/kv/k", "again")
}

func TestDeleteConcurrentWithUpdateKeepsTheUpdate(t *testing.T) {
	tn := startNode(t, nil, nil)
	base := tn.mustPut("/kv/k", "v0", "")
	if r := tn.do(http.MethodDelete, "/kv/k", nil, map[string]string{ContextHeader: base}); r.status != http.StatusNoContent {
		t.Fatalf("DELETE = %d", r.status)
	}
	tn.mustPut("/kv/k", "update", base)
	tn.mustGet("/kv/k", "update")
}

func TestTTLExpiresValuesByTheInjectedClock(t *testing.T) {
	clock := testutil.NewFakeClock()
	cfg := testConfig(t)
	cfg.Now = clock.Now
	tn := startNode(t, &cfg, nil)

	tn.mustPut("/kv/session?ttl=30s", "token", "")
	tn.mustPut("/kv/seconds?ttl=60", "token", "")
	tn.mustPut("/kv/forever", "token", "")
	clock.Advance(29 * time.Second)
	tn.mustGet("/kv/session", "token")
	clock.Advance(2 * time.Second)
	if r := tn.get("/kv/session", nil); r.status != http.StatusNotFound {
		t.Fatalf("GET 31s after a 30s TTL = %d %q, want 404", r.status, r.body)
	}
	tn.mustGet("/kv/seconds", "token")
	clock.Advance(30 * time.Second)
	if r := tn.get("/kv/seconds", nil); r.status != http.StatusNotFound {
		t.Fatalf("GET 61s after ttl=60 = %d %q, want 404", r.status, r.body)
	}
	tn.mustGet("/kv/forever", "token")
}

func TestOverloadedNodeSheds429(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	hook := func(r *http.Request) {
		if r.Header.Get("X-Test-Block") != "" {
			entered <- struct{}{}
			<-release
		}
	}
	cfg := testConfig(t)
	cfg.MaxInflight = 1
	tn := startNode(t, &cfg, hook)
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before the node's Shutdown, even on failure

	blocked := make(chan response, 1)
	go func() { blocked <- tn.put("/kv/slow", "v", map[string]string{"X-Test-Block": "1"}) }()
	<-entered

	r := tn.put("/kv/other", "v", nil)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("PUT while the only slot is held = %d Retry-After %q, want 429 with Retry-After", r.status, r.header.Get("Retry-After"))
	}
	r.jsonError(t)
	if h := tn.get("/health", nil); h.status != http.StatusOK {
		t.Fatalf("/health while overloaded = %d, want 200 (probes are never shed)", h.status)
	}

	unblock()
	if b := <-blocked; b.status != http.StatusNoContent {
		t.Fatalf("held PUT = %d, want 204", b.status)
	}
	tn.mustPut("/kv/other", "v", "")
}

func TestDiskBelowMinimumIs507(t *testing.T) {
	cfg := testConfig(t)
	cfg.MinFreeBytes = 1 << 62
	tn := startNode(t, &cfg, nil)
	for _, method := range []string{http.MethodPut, http.MethodDelete} {
		r := tn.do(method, "/kv/k", strings.NewReader("v"), nil)
		if r.status != http.StatusInsufficientStorage {
			t.Fatalf("%s on a full disk = %d %q, want 507", method, r.status, r.body)
		}
		r.jsonError(t)
	}
	if r := tn.get("/kv/k", nil); r.status != http.StatusNotFound {
		t.Fatalf("GET on a full disk = %d, want 404 (reads still work)", r.status)
	}
}

func TestPanicInHandlerIs500AndTheNodeKeepsServing(t *testing.T) {
	hook := func(r *http.Request) {
		if r.Header.Get("X-Test-Panic") != "" {
			panic("injected")
		}
	}
	tn := startNode(t, nil, hook)
	r := tn.put("/kv/k", "v", map[string]string{"X-Test-Panic": "1"})
	if r.status != http.StatusInternalServerError {
		t.Fatalf("panicking request = %d, want 500", r.status)
	}
	if msg := r.jsonError(t); strings.Contains(msg, "injected") {
		t.Errorf("500 body %q leaks the panic value", msg)
	}
	tn.mustPut("/kv/k", "v", "")
	tn.mustGet("/kv/k", "v")
}

func TestHealthAndReadiness(t *testing.T) {
	cfg := testConfig(t)
	n, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	status := func(path string) int {
		w := httptest.NewRecorder()
		n.Handler().ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w.Code
	}
	if s := status("/ready"); s != http.StatusServiceUnavailable {
		t.Errorf("/ready before Start = %d, want 503", s)
	}
	if s := status("/health"); s != http.StatusOK {
		t.Errorf("/health before Start = %d, want 200", s)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if s := status("/ready"); s != http.StatusOK {
		t.Errorf("/ready after Start = %d, want 200", s)
	}
	if err := n.Start(); err == nil {
		t.Errorf("second Start succeeded, want an error")
	}
	if err := n.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := status("/ready"); s != http.StatusServiceUnavailable {
		t.Errorf("/ready after Shutdown = %d, want 503", s)
	}
	if err := n.Shutdown(t.Context()); err != nil {
		t.Errorf("second Shutdown = %v, want the first result (nil)", err)
	}
}

func TestGracefulShutdownLetsInFlightRequestsFinish(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	cfg := testConfig(t)
	n, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	n.testHook = func(r *http.Request) {
		close(entered)
		<-release
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPut, "http://"+n.Addr()+"/kv/inflight", strings.NewReader("survives"))
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				err = fmt.Errorf("status %d, want 204", resp.StatusCode)
			}
		}
		done <- err
	}()
	<-entered

	shut := make(chan error, 1)
	go func() { shut <- n.Shutdown(t.Context()) }()
	// Wait until Shutdown has begun so the request is released into a
	// draining server, not a running one.
	testutil.Eventually(t, hangBound, time.Millisecond, "Shutdown to begin", func() bool { return n.state.Load() == stateStopping })
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("in-flight PUT during Shutdown: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	// The acknowledged write is in the closed store: a new node on the
	// same directory reads it.
	again := startNode(t, &cfg, nil)
	again.mustGet("/kv/inflight", "survives")
}

func TestAcknowledgedWritesSurviveARestart(t *testing.T) {
	cfg := testConfig(t)
	first := startNode(t, &cfg, nil)
	ctx := first.mustPut("/db/3/kv/k", "v1", "")
	first.mustPut("/db/3/kv/k", "v2", ctx)
	first.mustPut("/db/3/kv/gone", "x", "")
	if r := first.do(http.MethodDelete, "/db/3/kv/gone", nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE = %d", r.status)
	}
	if err := first.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	second := startNode(t, &cfg, nil)
	second.mustGet("/db/3/kv/k", "v2")
	if r := second.get("/db/3/kv/gone", nil); r.status != http.StatusNotFound || r.context() == "" {
		t.Fatalf("deleted key after restart = %d X-Context %q, want 404 with context", r.status, r.context())
	}
}

func TestContextFromPutCoversOnlyWhatTheClientSaw(t *testing.T) {
	tn := startNode(t, nil, nil)
	c1 := tn.mustPut("/kv/k", "a", "")
	ctx1, _ := httpapi.DecodeContext(c1)
	c2 := tn.mustPut("/kv/k", "b", c1)
	ctx2, _ := httpapi.DecodeContext(c2)
	if ctx2.Compare(ctx1) != vclock.After {
		t.Fatalf("second PUT context %v is not after the first %v", ctx2, ctx1)
	}
}

func TestShutdownPastItsDeadlineStillClosesTheStore(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	cfg := testConfig(t)
	n, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	n.testHook = func(r *http.Request) {
		close(entered)
		<-release
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	done := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get("http://" + n.Addr() + "/kv/held")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-entered

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = n.Shutdown(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with an expired context and a request in flight = %v, want context.Canceled", err)
	}
	if _, err := n.store.Get(0, []byte("held")); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("store after Shutdown: Get = %v, want ErrClosed", err)
	}
	// The held request's connection was closed under it.
	if err := <-done; err == nil {
		t.Fatalf("held request finished normally, want its connection closed")
	}
	close(release)
}

func TestExpiredSiblingDropsOutLeavingTheOther(t *testing.T) {
	clock := testutil.NewFakeClock()
	cfg := testConfig(t)
	cfg.Now = clock.Now
	tn := startNode(t, &cfg, nil)
	stale := tn.mustPut("/kv/sib", "base", "")
	tn.mustPut("/kv/sib", "stays", stale)
	tn.mustPut("/kv/sib?ttl=1s", "expires", stale)
	if r := tn.get("/kv/sib", nil); r.status != http.StatusMultipleChoices {
		t.Fatalf("GET with two live siblings = %d %q, want 300", r.status, r.body)
	}
	clock.Advance(2 * time.Second)
	tn.mustGet("/kv/sib", "stays")
}

func TestNodeErrorsAnswerTheirStatus(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
	}{
		{errNotStarted, http.StatusServiceUnavailable},
	} {
		if got := httpStatusOf(c.err); got != c.status {
			t.Errorf("%v answers %d, want %d", c.err, got, c.status)
		}
	}
}
