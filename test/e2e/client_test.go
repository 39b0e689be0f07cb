package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

func TestMain(m *testing.M) { os.Exit(testnode.Main(m)) }

// node is one `dynkv server` process run by the shared harness, with this
// suite's request helpers on top.
type node struct{ *testnode.Node }

// startNode runs node 1 (id "n1" unless opts.ID is set) on a fresh data
// directory unless opts.DataDir is set, and waits until it is ready.
func startNode(t *testing.T, opts testnode.NodeOptions) *node {
	t.Helper()
	n := newNode(t, 1, opts)
	n.Start()
	return n
}

// newNode prepares node index without starting it.
func newNode(t *testing.T, index int, opts testnode.NodeOptions) *node {
	t.Helper()
	return &node{testnode.NewNode(t, index, opts)}
}

// kvPath is the URL path of key in database db; db < 0 means the plain
// /kv/ route (database 0). Every byte outside the unreserved set is
// percent-encoded, so any byte string travels as itself.
func kvPath(db int, key string) string {
	var b strings.Builder
	if db >= 0 {
		fmt.Fprintf(&b, "/db/%d", db)
	}
	b.WriteString("/kv/")
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// response is a fully read HTTP response.
type response = testnode.Response

// request is one HTTP call; zero fields are left out.
type request struct {
	method      string
	path        string // already escaped, may carry a query
	body        []byte
	context     string // X-Context
	contentType string
}

// do sends req and reads the whole response. Transport errors are returned,
// never retried: a write that failed is indeterminate and tests count it so.
func (n *node) do(req request) (*response, error) {
	h := http.Header{}
	if req.context != "" {
		h.Set(testnode.ContextHeader, req.context)
	}
	if req.contentType != "" {
		h.Set("Content-Type", req.contentType)
	}
	r, err := n.Do(testnode.Request{Method: req.method, Path: req.path, Body: req.body, Header: h})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// must is do that fails the test on a transport error.
func (n *node) must(t *testing.T, req request) *response {
	t.Helper()
	r, err := n.do(req)
	if err != nil {
		t.Fatal(err) // it names the node and the request
	}
	return r
}

// put writes value and requires 204 with an X-Context; it returns the context.
func (n *node) put(t *testing.T, db int, key string, value []byte, ctx string) string {
	t.Helper()
	r := n.must(t, request{method: http.MethodPut, path: kvPath(db, key), body: value, context: ctx})
	if r.Status != http.StatusNoContent {
		t.Fatalf("PUT %s: got %s, want 204", kvPath(db, key), r)
	}
	got := r.Header.Get("X-Context")
	if got == "" {
		t.Fatalf("PUT %s: got 204 without an X-Context header, want one", kvPath(db, key))
	}
	return got
}

// expectValue requires GET to answer 200 with exactly want.
func (n *node) expectValue(t *testing.T, db int, key string, want []byte) {
	t.Helper()
	r := n.must(t, request{method: http.MethodGet, path: kvPath(db, key)})
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, want) {
		t.Errorf("GET %s: got %s, want 200 %q", kvPath(db, key), r, clip(want))
	}
}

// expectAbsent requires GET to answer 404.
func (n *node) expectAbsent(t *testing.T, db int, key string) *response {
	t.Helper()
	r := n.must(t, request{method: http.MethodGet, path: kvPath(db, key)})
	if r.Status != http.StatusNotFound {
		t.Errorf("GET %s: got %s, want 404", kvPath(db, key), r)
	}
	return r
}

// expectHealthy requires the process to be alive and GET /health to be 200.
func (n *node) expectHealthy(t *testing.T) {
	t.Helper()
	if !n.Running() {
		t.Fatalf("node %s is not running, want it up", n.ID())
	}
	r := n.must(t, request{method: http.MethodGet, path: "/health"})
	if r.Status != http.StatusOK {
		t.Fatalf("GET /health: got %s, want 200", r)
	}
}

// expectJSONError requires one of the wanted statuses and a SPEC error body
// {"error": "..."} with a non-empty message.
func expectJSONError(t *testing.T, what string, r *response, want ...int) {
	t.Helper()
	ok := false
	for _, w := range want {
		ok = ok || r.Status == w
	}
	if !ok {
		t.Errorf("%s: got %s, want status %v", what, r, want)
		return
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || e.Error == "" {
		t.Errorf("%s: got body %q (Content-Type %q), want JSON {\"error\": \"...\"}", what, clip(r.Body), r.Header.Get("Content-Type"))
	}
}

// siblingsBody is the SPEC's 300 Multiple Choices document.
type siblingsBody struct {
	Siblings []testnode.Sibling `json:"siblings"`
}

// siblingValues decodes a 300 and returns its values (sorted by the caller if
// needed), failing the test on a malformed document.
func siblingValues(t *testing.T, what string, r *response) []string {
	t.Helper()
	var sb siblingsBody
	if err := json.Unmarshal(r.Body, &sb); err != nil {
		t.Fatalf("%s: 300 body is not the SPEC siblings JSON: %v; body %q", what, err, clip(r.Body))
	}
	vals := make([]string, 0, len(sb.Siblings))
	for i, s := range sb.Siblings {
		if _, err := time.Parse(time.RFC3339, s.LastModified); err != nil {
			t.Errorf("%s: sibling %d last_modified %q is not RFC 3339: %v", what, i, s.LastModified, err)
		}
		vals = append(vals, string(s.Value))
	}
	return vals
}

// rawExchange writes raw bytes on a fresh TCP connection and reads one HTTP
// response, for requests net/http refuses to build.
func (n *node) rawExchange(raw string) (*response, error) {
	conn, err := net.DialTimeout("tcp", n.Addr(), 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", n.Addr(), err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		return nil, fmt.Errorf("writing %q: %w", clip([]byte(raw)), err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, fmt.Errorf("reading the response to %q: %w", clip([]byte(raw)), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the body of the response to %q: %w", clip([]byte(raw)), err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// clip shortens b for failure messages.
func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "...(" + strconv.Itoa(len(b)) + " bytes)"
	}
	return string(b)
}

// testSeed is DYNKV_E2E_SEED when set (to replay a failure), else the clock.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	return testnode.Seed(t, "DYNKV_E2E_SEED")
}
