package node

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dynkv/dynkv/internal/testutil"
)

func TestHTTPWrongTokensAreDelayedMissingOnesAreNot(t *testing.T) {
	cfg := testConfig(t)
	cfg.AuthTokens = []string{"s3cret"}
	tn := startNode(t, &cfg, nil)
	for range 3 {
		if r := tn.get("/kv/k", map[string]string{"Authorization": "Bearer wrong"}); r.status != http.StatusUnauthorized {
			t.Fatalf("a wrong token = %d, want 401", r.status)
		}
		if r := tn.get("/kv/k", nil); r.status != http.StatusUnauthorized {
			t.Fatalf("no token = %d, want 401", r.status)
		}
	}
	m := tn.metrics.Limits
	if f, d := testutil.MetricValue(t, m.AuthFailures.WithLabelValues("http")), testutil.MetricValue(t, m.AuthDelayed.WithLabelValues("http")); f != 6 || d != 3 {
		t.Fatalf("failures %v, delayed %v; want 6 and 3", f, d)
	}
	// A throttled source gets 429 whatever its token.
	defer tn.auth.HoldPending("192.0.2.1")()
	req := httptest.NewRequest(http.MethodGet, "/kv/k", nil)
	req.RemoteAddr = "192.0.2.1:4000"
	req.Header.Set("Authorization", "Bearer s3cret")
	w := httptest.NewRecorder()
	tn.handler.ServeHTTP(w, req)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("a throttled source with the right token = %d (Retry-After %q), want 429 with Retry-After 1", w.Code, w.Header().Get("Retry-After"))
	}
}
