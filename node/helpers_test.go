package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/dynkv/dynkv/node/httpapi"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	// goleveldb's memory-pool drainer waits up to a second after Close
	// before it returns (leveldb/db_state.go); it is not ours to stop.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"))
}

// testConfig is a config for a node on a free loopback port with its data in
// a fresh temporary directory.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.ID = "n1"
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.RESPAddr = ""
	// A small free-space floor so that tests run on nearly full CI disks.
	cfg.MinFreeBytes = 1 << 20
	return cfg
}

// testNode is a started node with a client that talks to it.
type testNode struct {
	*Node
	t      testing.TB
	base   string
	client *http.Client
}

// startNode starts a node on cfg (testConfig when nil) and stops it when
// the test ends.
func startNode(t testing.TB, cfg *Config, hook func(*http.Request)) *testNode {
	t.Helper()
	c := testConfig(t)
	if cfg != nil {
		c = *cfg
	}
	return startNodeWith(t, c, func(n *Node) { n.testHook = hook })
}

// startNodeWith starts a node on cfg after prepare has set its test
// switches, and stops it when the test ends.
func startNodeWith(t testing.TB, cfg Config, prepare func(*Node)) *testNode {
	t.Helper()
	n, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	prepare(n)
	if err := n.Start(); err != nil {
		_ = n.Shutdown(context.Background())
		t.Fatalf("Start: %v", err)
	}
	tr := &http.Transport{}
	tn := &testNode{Node: n, t: t, base: "http://" + n.Addr(), client: &http.Client{Transport: tr}}
	t.Cleanup(func() {
		if err := n.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		tr.CloseIdleConnections()
	})
	return tn
}

// response is a fully read HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) context() string { return r.header.Get(ContextHeader) }

// jsonError decodes an error body, failing the test when it is not the
// JSON error shape of SPEC section 3.
func (r response) jsonError(t testing.TB) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error response Content-Type = %q, want application/json (status %d, body %q)", ct, r.status, r.body)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {\"error\": \"...\"}: %v", r.body, err)
	}
	return e.Error
}

// do sends a request whose target (path and query) goes on the wire exactly
// as given, so tests control the percent-encoding.
func (tn *testNode) do(method, target string, body io.Reader, header map[string]string) response {
	tn.t.Helper()
	r, err := tn.try(method, target, body, header)
	if err != nil {
		tn.t.Fatal(err)
	}
	return r
}

// try is do that returns a transport error instead of failing the test.
func (tn *testNode) try(method, target string, body io.Reader, header map[string]string) (response, error) {
	req, err := http.NewRequest(method, tn.base, body)
	if err != nil {
		return response{}, fmt.Errorf("building %s %s: %w", method, target, err)
	}
	path, query, _ := strings.Cut(target, "?")
	// Opaque is written to the request line verbatim.
	req.URL.Opaque = path
	req.URL.RawQuery = query
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := tn.client.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: reading body: %w", method, target, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func (tn *testNode) put(target, value string, header map[string]string) response {
	tn.t.Helper()
	return tn.do(http.MethodPut, target, strings.NewReader(value), header)
}

func (tn *testNode) get(target string, header map[string]string) response {
	tn.t.Helper()
	return tn.do(http.MethodGet, target, nil, header)
}

// mustPut stores value and returns the X-Context of the write.
func (tn *testNode) mustPut(target, value, ctx string) string {
	tn.t.Helper()
	h := map[string]string{}
	if ctx != "" {
		h[ContextHeader] = ctx
	}
	r := tn.put(target, value, h)
	if r.status != http.StatusNoContent || r.context() == "" {
		tn.t.Fatalf("PUT %s = %d with X-Context %q, want 204 with a context (body %q)", target, r.status, r.context(), r.body)
	}
	return r.context()
}

// mustGet expects a single value.
func (tn *testNode) mustGet(target, want string) response {
	tn.t.Helper()
	r := tn.get(target, nil)
	if r.status != http.StatusOK || string(r.body) != want {
		tn.t.Fatalf("GET %s = %d %q, want 200 %q", target, r.status, r.body, want)
	}
	return r
}

func keyPath(key string) string { return "/kv/" + url.PathEscape(key) }

// httpStatusOf is the status the HTTP API answers err with.
func httpStatusOf(err error) int {
	w := httptest.NewRecorder()
	httpapi.WriteError(nil, w, httptest.NewRequest(http.MethodGet, "/", nil), err)
	return w.Code
}
