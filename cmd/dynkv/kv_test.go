package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// fakeServer answers the SPEC section 3 key routes from a map. Keys named
// "conflict" answer 300 with two siblings; "quorum" answers 503, "bad" 400,
// "shed" 429, so every exit status can be provoked.
type fakeServer struct {
	mu    sync.Mutex
	data  map[string][]byte
	last  *http.Request
	calls int
}

func newFakeServer(t *testing.T) (*fakeServer, string) {
	t.Helper()
	f := &fakeServer{data: map[string][]byte{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func jsonErr(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last, f.calls = r, f.calls+1
	if r.Header.Get("Authorization") == "Bearer wrong" {
		jsonErr(w, 401, `{"error":"bad token"}`)
		return
	}
	raw, ok := strings.CutPrefix(r.URL.EscapedPath(), "/kv/")
	if !ok {
		jsonErr(w, 404, `{"error":"no such endpoint"}`)
		return
	}
	key, err := url.PathUnescape(raw)
	if err != nil {
		jsonErr(w, 400, `{"error":"malformed key"}`)
		return
	}
	switch key {
	case "quorum":
		jsonErr(w, 503, `{"error":"quorum not reached","needed":2,"acked":1}`)
		return
	case "bad":
		jsonErr(w, 400, `{"error":"malformed context"}`)
		return
	case "shed":
		jsonErr(w, 429, `{"error":"overloaded"}`)
		return
	case "conflict":
		w.Header().Set("X-Context", "ctx-both")
		jsonErr(w, 300, `{"siblings":[{"value":"b25l","content_type":"text/plain","last_modified":"2026-11-25T11:00:00Z"},{"value":"dHdv"}]}`)
		return
	}
	switch r.Method {
	case http.MethodPut:
		f.data[key] = body
		w.Header().Set("X-Context", "ctx-"+key)
		w.WriteHeader(204)
	case http.MethodGet:
		v, ok := f.data[key]
		if !ok {
			w.Header().Set("X-Context", "tomb-"+key)
			jsonErr(w, 404, `{"error":"key not found"}`)
			return
		}
		w.Header().Set("X-Context", "ctx-"+key)
		_, _ = w.Write(v)
	case http.MethodDelete:
		delete(f.data, key)
		w.WriteHeader(204)
	}
}

func (f *fakeServer) value(key string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.data[key]
}

func (f *fakeServer) lastRequest() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// cli runs the command with DYNKV_ADDR pointing at addr.
func cli(t *testing.T, addr, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, envOf(map[string]string{"DYNKV_ADDR": addr}), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestPutGetDeleteRoundTrip(t *testing.T) {
	f, addr := newFakeServer(t)
	code, out, errOut := cli(t, addr, "", "put", "a/b c", "hello", "--ttl", "30s", "--w", "1", "--content-type", "text/plain")
	if code != exitOK || out != "ctx-a/b c\n" || errOut != "" {
		t.Fatalf("put: exit %d stdout %q stderr %q", code, out, errOut)
	}
	if q := f.lastRequest().URL.Query(); q.Get("ttl") != "30s" || q.Get("w") != "1" || f.lastRequest().Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("put sent %s with Content-Type %q", f.lastRequest().URL, f.lastRequest().Header.Get("Content-Type"))
	}
	code, out, _ = cli(t, addr, "", "get", "a/b c")
	if code != exitOK || out != "hello" {
		t.Fatalf("get: exit %d stdout %q, want the raw value", code, out)
	}
	if code, _, errOut = cli(t, addr, "", "delete", "a/b c"); code != exitOK {
		t.Fatalf("delete: exit %d stderr %q", code, errOut)
	}
	code, out, errOut = cli(t, addr, "", "get", "a/b c")
	if code != exitNotFound || out != "" || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("get after delete: exit %d stdout %q stderr %q; want 1, nothing, one line", code, out, errOut)
	}
}

func TestPutReadsDashFromStdin(t *testing.T) {
	f, addr := newFakeServer(t)
	if code, _, errOut := cli(t, addr, "from\x00stdin", "put", "k", "-"); code != exitOK {
		t.Fatalf("put -: exit %d stderr %q", code, errOut)
	}
	if got := string(f.value("k")); got != "from\x00stdin" {
		t.Fatalf("stored %q, want stdin's bytes", got)
	}
}

func TestGetPrintsSiblingsAndTheirContext(t *testing.T) {
	_, addr := newFakeServer(t)
	code, out, _ := cli(t, addr, "", "get", "conflict")
	if code != exitOK || !strings.Contains(out, "one") || !strings.Contains(out, "two") || !strings.Contains(out, "ctx-both") {
		t.Fatalf("get of siblings: exit %d stdout %q", code, out)
	}
	code, out, _ = cli(t, addr, "", "get", "conflict", "--output", "json")
	var doc struct {
		Found    bool
		Context  string
		Siblings []jsonSibling
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != exitOK {
		t.Fatalf("json: exit %d, %v: %s", code, err, out)
	}
	if !doc.Found || doc.Context != "ctx-both" || len(doc.Siblings) != 2 || string(doc.Siblings[1].Value) != "two" || doc.Siblings[0].ContentType != "text/plain" {
		t.Fatalf("json siblings: %+v", doc)
	}
}

func TestJSONOutputForScripts(t *testing.T) {
	_, addr := newFakeServer(t)
	code, out, _ := cli(t, addr, "", "put", "k", "v", "--output", "json")
	var put map[string]any
	if err := json.Unmarshal([]byte(out), &put); err != nil || code != exitOK || put["context"] != "ctx-k" {
		t.Fatalf("put json: exit %d %q %v", code, out, err)
	}
	code, out, _ = cli(t, addr, "", "get", "missing", "--output", "json")
	var get map[string]any
	if err := json.Unmarshal([]byte(out), &get); err != nil || code != exitNotFound || get["found"] != false || get["context"] != "tomb-missing" {
		t.Fatalf("get json of a missing key: exit %d %q %v", code, out, err)
	}
	code, out, _ = cli(t, addr, "", "delete", "k", "--output", "json")
	var del map[string]any
	if err := json.Unmarshal([]byte(out), &del); err != nil || code != exitOK || del["deleted"] != true {
		t.Fatalf("delete json: exit %d %q %v", code, out, err)
	}
}

func TestServerErrorsMapToExitStatuses(t *testing.T) {
	_, addr := newFakeServer(t)
	cases := []struct {
		args []string
		want int
		msg  string
	}{
		{[]string{"put", "quorum", "v", "--timeout", "5s"}, exitFailure, "needed 2, acked 1"},
		{[]string{"get", "shed"}, exitFailure, "overloaded"},
		{[]string{"put", "bad", "v"}, exitUsage, "malformed context"},
		{[]string{"get", "k", "--auth-token", "wrong"}, exitFailure, "bad token"},
		{[]string{"cluster", "status"}, exitFailure, "does not serve the cluster endpoints"},
		{[]string{"cluster", "join", "10.0.0.1:7946"}, exitFailure, "HTTP 404"},
	}
	for _, c := range cases {
		code, _, errOut := cli(t, addr, "", c.args...)
		if code != c.want || !strings.Contains(errOut, c.msg) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("dynkv %q: exit %d stderr %q; want exit %d and one line with %q", c.args, code, errOut, c.want, c.msg)
		}
	}
}

func TestUnreachableServerExitsThree(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	code, _, errOut := cli(t, dead, "", "get", "k")
	if code != exitFailure || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "refused") {
		t.Fatalf("exit %d stderr %q, want 3 and one line about the connection", code, errOut)
	}
}

func TestAddrFlagBeatsEnvironmentAndFailsOver(t *testing.T) {
	f, addr := newFakeServer(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	var out, errOut bytes.Buffer
	env := envOf(map[string]string{"DYNKV_ADDR": dead})
	code := run([]string{"put", "k", "v", "--addr", dead + "," + addr}, env, nil, &out, &errOut)
	if code != exitOK || f.value("k") == nil {
		t.Fatalf("exit %d stderr %q: --addr must beat DYNKV_ADDR and fail over to the live node", code, errOut.String())
	}
}

func TestAuthTokenFromEnvironmentIsSent(t *testing.T) {
	f, addr := newFakeServer(t)
	var out, errOut bytes.Buffer
	env := envOf(map[string]string{"DYNKV_ADDR": addr, "DYNKV_AUTH_TOKEN": "tok1,tok2"})
	if code := run([]string{"get", "missing"}, env, nil, &out, &errOut); code != exitNotFound {
		t.Fatalf("exit %d stderr %q", code, errOut.String())
	}
	if got := f.lastRequest().Header.Get("Authorization"); got != "Bearer tok1" {
		t.Fatalf("Authorization %q, want the first token of DYNKV_AUTH_TOKEN", got)
	}
}
