package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/coordinator"
	"github.com/dynkv/dynkv/node/internal/authguard"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
)

// statusError is a response decided by the HTTP layer itself (413, 429,
// 404, 405, 401, or the node's own endpoints' 409 and 502) rather than
// derived from a store error.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// Error is an error answered with status and msg as its JSON error.
func Error(status int, msg string) error { return &statusError{status, msg} }

var (
	errOverloaded   = &statusError{http.StatusTooManyRequests, "node is overloaded: too many requests in flight, retry later"}
	errNoRoute      = &statusError{http.StatusNotFound, "no such endpoint"}
	errBadMethod    = &statusError{http.StatusMethodNotAllowed, "method not allowed on this path"}
	errUnauthorized = &statusError{http.StatusUnauthorized, "missing or invalid bearer token"}
	errKeyNotFound  = &statusError{http.StatusNotFound, "key not found"}
	// errAuthThrottled answers an authentication refused without its
	// token being checked.
	errAuthThrottled = &statusError{http.StatusTooManyRequests, authguard.ThrottledMessage}
)

func errTooLarge(limit int64) error {
	return &statusError{http.StatusRequestEntityTooLarge, fmt.Sprintf("value too large: at most %d bytes", limit)}
}

// errorBody is the JSON of every error response.
type errorBody struct {
	Error  string `json:"error"`
	Needed *int   `json:"needed,omitempty"`
	Acked  *int   `json:"acked,omitempty"`
}

// writeError answers err, logging what is internal to the API's log.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	WriteError(a.log, w, r, err)
}

// WriteError is the one place that turns an error into an HTTP status;
// an internal error is logged to log, not told to the client.
func WriteError(log *zap.Logger, w http.ResponseWriter, r *http.Request, err error) {
	var (
		body   = errorBody{Error: err.Error()}
		status int
		br     *badRequest
		se     *statusError
		qe     *rpc.QuorumError
	)
	switch {
	case errors.As(err, &br):
		status = http.StatusBadRequest
	case errors.As(err, &se):
		status = se.status
	case errors.As(err, &qe):
		status = http.StatusServiceUnavailable
		body.Needed, body.Acked = &qe.Needed, &qe.Acked
	case errors.Is(err, store.ErrDiskFull):
		status = http.StatusInsufficientStorage
		body.Error = "local disk full: the node refuses writes until space is freed"
	case errors.Is(err, store.ErrBadDatabase), errors.Is(err, store.ErrBadKey):
		status = http.StatusBadRequest
	case errors.Is(err, coordinator.ErrNoRing):
		status = http.StatusServiceUnavailable
		body.Error = "node has not joined a ring yet: retry, or ask another node"
	case errors.Is(err, store.ErrClosed), errors.Is(err, coordinator.ErrClosed):
		// Only reachable while shutting down: the client should retry
		// on another node.
		status = http.StatusServiceUnavailable
		body.Error = "node is shutting down"
	default:
		status = http.StatusInternalServerError
		if log == nil {
			log = zap.NewNop()
		}
		log.Error("request failed", zap.String("method", r.Method), zap.String("path", r.URL.EscapedPath()), zap.Error(err))
		// Internal detail stays in the log, not in the response.
		body.Error = "internal error"
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dynkv"`)
	}
	WriteJSON(w, status, body)
}

// WriteJSON writes v as the JSON body of a response with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own response types reach here, all of which
		// marshal; this keeps a future mistake visible.
		b = []byte(`{"error":"internal error: encoding response"}`)
		status = http.StatusInternalServerError
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", fmt.Sprint(len(b)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
