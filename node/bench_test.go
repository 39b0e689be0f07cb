package node

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dynkv/dynkv/node/httpapi"
)

// benchNode is a node whose handler is driven in-process, so the figures
// are the HTTP layer, the coordinator and the store, without the loopback
// network.
func benchNode(b *testing.B, fsync string) http.Handler {
	b.Helper()
	cfg := testConfig(b)
	cfg.Fsync = fsync
	n, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Shutdown(b.Context()) })
	// A one-node cluster: the data handlers go through the coordinator,
	// which Start brings up.
	if err := n.Start(); err != nil {
		b.Fatal(err)
	}
	return n.Handler()
}

func BenchmarkPut(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 1024)
	for _, fsync := range []string{"always", "10ms"} {
		b.Run("fsync="+fsync+"/value=1KiB", func(b *testing.B) {
			h := benchNode(b, fsync)
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			// Several writers per core, as behind a busy server, so
			// that group commit has batches to form.
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					req := httptest.NewRequest(http.MethodPut, fmt.Sprintf("/kv/key-%p-%d", pb, i%1000), bytes.NewReader(value))
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusNoContent {
						b.Fatalf("PUT = %d %s", w.Code, w.Body)
					}
				}
			})
		})
	}
}

func BenchmarkGet(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 1024)
	h := benchNode(b, "10ms")
	const keys = 1000
	for i := range keys {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPut, fmt.Sprintf("/kv/key-%d", i), bytes.NewReader(value)))
		if w.Code != http.StatusNoContent {
			b.Fatalf("PUT = %d", w.Code)
		}
	}
	b.Run("value=1KiB", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(value)))
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/kv/key-%d", i%keys), nil))
				if w.Code != http.StatusOK {
					b.Fatalf("GET = %d", w.Code)
				}
			}
		})
	})
}

func BenchmarkParseKey(b *testing.B) {
	raw := "users%2F12345%2Fprofile"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := httpapi.ParseKey(raw); err != nil {
			b.Fatal(err)
		}
	}
}
