package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dynkv/dynkv/coordinator"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
)

func TestWriteErrorMapsEveryErrorToOneStatus(t *testing.T) {
	cases := []struct {
		err    error
		status int
	}{
		{BadRequestf("x"), 400},
		{fmt.Errorf("wrapped: %w", store.ErrBadDatabase), 400},
		{errTooLarge(1), 413},
		{errOverloaded, 429},
		{errUnauthorized, 401},
		{&rpc.QuorumError{Needed: 2, Acked: 1}, 503},
		{fmt.Errorf("put: %w", store.ErrDiskFull), 507},
		{store.ErrClosed, 503},
		{fmt.Errorf("put: %w", store.ErrBadKey), 400},
		{&coordinator.QuorumError{Needed: 3, Acked: 0}, 503},
		{fmt.Errorf("get: %w", coordinator.ErrNoRing), 503},
		{coordinator.ErrClosed, 503},
		{Error(http.StatusConflict, "x"), 409},
		{io.ErrUnexpectedEOF, 500},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		WriteError(nil, w, httptest.NewRequest("GET", "/kv/k", nil), c.err)
		if w.Code != c.status {
			t.Errorf("writeError(%v) = %d, want %d", c.err, w.Code, c.status)
		}
	}
	w := httptest.NewRecorder()
	WriteError(nil, w, httptest.NewRequest("GET", "/kv/k", nil), fmt.Errorf("coordinator: %w", &rpc.QuorumError{Needed: 2, Acked: 1}))
	var body struct {
		Error         string
		Needed, Acked int
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Needed != 2 || body.Acked != 1 || body.Error == "" {
		t.Fatalf("quorum error body %q, want {error, needed: 2, acked: 1}: %v", w.Body, err)
	}
}
