package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/node/httpapi"
	"github.com/dynkv/dynkv/vclock"
)

// FuzzWriteHeadersReachTheStoredRecord drives a PUT's Content-Type and
// X-Context, whatever their bytes, through the HTTP API into the store and
// back. Issue 16: a 256-byte Content-Type passed the HTTP check but not
// the stored encoding, which made the key unreadable and background work
// fail forever. The property: a write is refused with a 4xx or stored in a
// record that reads back; after any write the key still reads, and a
// blind write still replaces it.
func FuzzWriteHeadersReachTheStoredRecord(f *testing.F) {
	empty := httpapi.EncodeContext(vclock.Context{})
	forged := httpapi.EncodeContext(vclock.Context{VV: []vclock.Entry{{Actor: "n1", Counter: ^uint64(0)}}})
	for _, seed := range []struct{ ct, ctx string }{
		{"text/plain", ""},
		{strings.Repeat("a", 255), ""},
		{strings.Repeat("a", 256), ""},
		{"", empty},
		{"text/plain; charset=utf-8", forged},
		{"a\x00b", "AQAA"},
		{"x", "not base64!"},
		{"x", "AQ"},
		{"\xff\xfe", empty + "=="},
	} {
		f.Add(seed.ct, seed.ctx, []byte("v"))
	}
	// The node logs through zap.NewNop: a logger bound to f may not be
	// called inside the fuzz function.
	n, err := New(testConfig(f), zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	if err := n.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	h := n.handler
	f.Fuzz(func(t *testing.T, contentType, ctxHeader string, value []byte) {
		const path = "/kv/fuzz"
		req := httptest.NewRequest(http.MethodPut, path, strings.NewReader(string(value)))
		req.Header["Content-Type"] = []string{contentType}
		if ctxHeader != "" {
			req.Header[ContextHeader] = []string{ctxHeader}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch {
		case w.Code == http.StatusNoContent:
			if w.Header().Get(ContextHeader) == "" {
				t.Fatalf("204 without an X-Context")
			}
		case w.Code >= 400 && w.Code < 500:
		default:
			t.Fatalf("PUT Content-Type %q X-Context %q = %d %q, want 204 or a 4xx", contentType, ctxHeader, w.Code, w.Body)
		}
		// The key reads: the stored record decodes.
		set, err := n.store.Get(0, []byte("fuzz"))
		if err != nil && w.Code == http.StatusNoContent {
			t.Fatalf("after a 204 the stored record does not read: %v", err)
		}
		g := httptest.NewRecorder()
		h.ServeHTTP(g, httptest.NewRequest(http.MethodGet, path, nil))
		if g.Code >= 500 || g.Header().Get(ContextHeader) == "" {
			t.Fatalf("GET after PUT Content-Type %q X-Context %q = %d %q (X-Context %q), want an answer with a context",
				contentType, ctxHeader, g.Code, g.Body, g.Header().Get(ContextHeader))
		}
		if w.Code == http.StatusNoContent {
			found := false
			for _, s := range set.Live(n.cfg.now().UnixNano()) {
				found = found || s.ContentType == contentType || contentType == "" && s.ContentType == httpapi.DefaultContentType
			}
			if !found && g.Code != http.StatusNotFound {
				t.Fatalf("the stored siblings lack the Content-Type %q written", contentType)
			}
		}
		// A blind write replaces whatever is there, so the key is never
		// stuck.
		b := httptest.NewRecorder()
		h.ServeHTTP(b, httptest.NewRequest(http.MethodPut, path, strings.NewReader("reset")))
		if b.Code != http.StatusNoContent {
			t.Fatalf("blind PUT after Content-Type %q X-Context %q = %d %q, want 204", contentType, ctxHeader, b.Code, b.Body)
		}
	})
}
