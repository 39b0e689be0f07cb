package node

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dynkv/dynkv/node/metrics"
)

// BenchmarkObserveRequest is what every HTTP request pays for its count
// and latency.
func BenchmarkObserveRequest(b *testing.B) {
	tn := startNode(b, nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		tn.metrics.ObserveRequest("http", metrics.OpGet, "200", time.Millisecond)
	}
}

// BenchmarkScrape is one /metrics scrape of a node holding some keys,
// served in-process.
func BenchmarkScrape(b *testing.B) {
	tn := startNode(b, nil, nil)
	for i := range 100 {
		tn.mustPut(keyPath(fmt.Sprintf("key-%03d", i)), "v", "")
	}
	h := tn.Handler()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("GET /metrics = %d", rec.Code)
		}
	}
}
