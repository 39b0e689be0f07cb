package node

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzHTTPKey drives the whole handler stack with arbitrary request targets
// and X-Context headers: a request is answered with a JSON error or
// succeeds, never panics or 500s, and a stored key reads back.
func FuzzHTTPKey(f *testing.F) {
	for _, s := range []string{"/kv/a", "/kv/a%2Fb", "/kv/%00", "/db/3/kv/x", "/db/99/kv/x", "/kv/", "/kv/a?ttl=5s&w=all", "/kv/a?w=0", "/db/x/kv/k", "/kv/\xff"} {
		f.Add(s, "")
	}
	f.Add("/kv/a", "AQ")
	cfg := testConfig(f)
	cfg.Fsync = "100ms" // durability is not what this explores
	n, err := New(cfg, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { n.Shutdown(f.Context()) })
	// The data handlers go through the coordinator, which Start brings up.
	if err := n.Start(); err != nil {
		f.Fatal(err)
	}
	h := n.Handler()

	f.Fuzz(func(t *testing.T, target, xcontext string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(target, "/") {
			return // Go's server answers these itself (see doc.go)
		}
		put := httptest.NewRequest(http.MethodPut, "/", strings.NewReader("v"))
		put.URL = u
		put.RequestURI = target
		if xcontext != "" {
			put.Header.Set(ContextHeader, xcontext)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, put)
		switch w.Code {
		case http.StatusNoContent:
		case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("PUT %q: %d with Content-Type %q, want JSON", target, w.Code, ct)
			}
			return
		default:
			t.Fatalf("PUT %q X-Context %q: unexpected %d %q", target, xcontext, w.Code, w.Body)
		}
		get := httptest.NewRequest(http.MethodGet, "/", nil)
		get.URL = u
		w = httptest.NewRecorder()
		h.ServeHTTP(w, get)
		expired := w.Code == http.StatusNotFound && u.Query().Has("ttl") // a ttl of 1ns is legal
		if w.Code != http.StatusOK && w.Code != http.StatusMultipleChoices && !expired {
			t.Fatalf("GET %q after a successful PUT = %d %q", target, w.Code, w.Body)
		}
	})
}
