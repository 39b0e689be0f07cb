package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/dynkv/dynkv/node/internal/authguard"
	"github.com/dynkv/dynkv/node/internal/frontend"
	"github.com/dynkv/dynkv/vclock"
	"github.com/go-chi/chi/v5"
)

// fakeBackend is an in-memory Backend: one replica's sets, updated as the
// coordinator updates them.
type fakeBackend struct {
	mu     sync.Mutex
	sets   map[string]vclock.Set
	full   bool // Acquire finds no slot
	ready  bool
	status string
	lastW  int
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{sets: map[string]vclock.Set{}, ready: true, status: "ready"}
}

func (b *fakeBackend) Get(_ context.Context, db int, key []byte, _ int) (vclock.Set, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.sets[string(rune('0'+db))+string(key)]
	return s, ok, nil
}

func (b *fakeBackend) Put(_ context.Context, db int, key []byte, vc vclock.Context, blind bool, sib vclock.Sibling, w int) (vclock.Context, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := string(rune('0'+db)) + string(key)
	cur := b.sets[k]
	if blind {
		vc = cur.Context
	}
	var out vclock.Context
	b.sets[k], out = cur.Update("fake", vc, sib)
	b.lastW = w
	return out, nil
}

func (b *fakeBackend) Acquire() (func(), bool) {
	if b.full {
		return nil, false
	}
	return func() {}, true
}

func (b *fakeBackend) Ready() (bool, string) { return b.ready, b.status }

func do(t *testing.T, h http.Handler, method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestAPIServesKeysOverABackendWithoutANode(t *testing.T) {
	b := newFakeBackend()
	api := New(b, Config{Databases: 4, Replicas: 3})
	if w := do(t, api, http.MethodGet, "/kv/a", "", nil); w.Code != http.StatusNotFound || w.Header().Get(ContextHeader) == "" {
		t.Fatalf("GET of an absent key = %d (X-Context %q), want 404 with a context", w.Code, w.Header().Get(ContextHeader))
	}
	w := do(t, api, http.MethodPut, "/db/2/kv/a?w=all", "v1", map[string]string{"Content-Type": "text/plain"})
	if w.Code != http.StatusNoContent || w.Header().Get(ContextHeader) == "" {
		t.Fatalf("PUT = %d %q, want 204 with a context", w.Code, w.Body)
	}
	if b.lastW != 3 {
		t.Fatalf("?w=all reached the backend as w=%d, want N=3", b.lastW)
	}
	ctx := w.Header().Get(ContextHeader)
	w = do(t, api, http.MethodGet, "/db/2/kv/a", "", nil)
	if w.Code != http.StatusOK || w.Body.String() != "v1" || w.Header().Get("Content-Type") != "text/plain" {
		t.Fatalf("GET = %d %q (%s), want 200 v1 text/plain", w.Code, w.Body, w.Header().Get("Content-Type"))
	}
	// A write without the context is concurrent: two siblings, 300.
	do(t, api, http.MethodPut, "/db/2/kv/a", "v2", map[string]string{ContextHeader: EncodeContext(vclock.Context{})})
	if w := do(t, api, http.MethodGet, "/db/2/kv/a", "", nil); w.Code != http.StatusMultipleChoices {
		t.Fatalf("GET after a concurrent write = %d, want 300", w.Code)
	}
	if w := do(t, api, http.MethodDelete, "/db/2/kv/a", "", map[string]string{ContextHeader: ctx}); w.Code != http.StatusNoContent {
		t.Fatalf("DELETE = %d", w.Code)
	}
	if w := do(t, api, http.MethodGet, "/db/9/kv/a", "", nil); w.Code != http.StatusBadRequest {
		t.Fatalf("GET in database 9 of 4 = %d, want 400", w.Code)
	}
}

func TestAPIShedsLoadAndReportsReadinessFromTheBackend(t *testing.T) {
	b := newFakeBackend()
	api := New(b, Config{})
	b.full = true
	if w := do(t, api, http.MethodGet, "/kv/a", "", nil); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("GET with no slot free = %d (Retry-After %q), want 429 with Retry-After 1", w.Code, w.Header().Get("Retry-After"))
	}
	if w := do(t, api, http.MethodGet, "/health", "", nil); w.Code != http.StatusOK {
		t.Fatalf("/health with no slot free = %d, want 200 (not behind the limit)", w.Code)
	}
	b.ready, b.status = false, "joining: no committed ring seen yet"
	w := do(t, api, http.MethodGet, "/ready", "", nil)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), b.status) {
		t.Fatalf("/ready of a backend not ready = %d %q", w.Code, w.Body)
	}
}

func TestAPIRoutesTheNodesEndpointsBehindItsTokens(t *testing.T) {
	api := New(newFakeBackend(), Config{
		Shared: frontend.Shared{Tokens: authguard.HashTokens([]string{"s3cret"})},
		Routes: func(r chi.Router) {
			r.Get("/cluster/status", func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, http.StatusOK, "ok") })
		},
	})
	if w := do(t, api, http.MethodGet, "/cluster/status", "", nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("/cluster/status without a token = %d, want 401", w.Code)
	}
	if w := do(t, api, http.MethodGet, "/cluster/status", "", map[string]string{"Authorization": "Bearer s3cret"}); w.Code != http.StatusOK {
		t.Fatalf("/cluster/status with the token = %d, want 200", w.Code)
	}
	if w := do(t, api, http.MethodPost, "/cluster/status", "", map[string]string{"Authorization": "Bearer s3cret"}); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET" {
		t.Fatalf("POST /cluster/status = %d (Allow %q), want 405 Allow GET", w.Code, w.Header().Get("Allow"))
	}
	if w := do(t, api, http.MethodGet, "/health", "", nil); w.Code != http.StatusOK {
		t.Fatalf("/health without a token = %d, want 200", w.Code)
	}
}
