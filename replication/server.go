package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/store"
)

// contentType marks RPC frames, so a stray browser or proxy response is not
// mistaken for one.
const contentType = "application/x-dynkv-rpc"

// Server answers the node-to-node calls of one node. Node mounts Handler
// at PathPrefix on its HTTP server, whose Protocols include unencrypted
// HTTP/2 (or HTTP/2 over TLS).
//
// A request body is read in full as soon as the call arrives, never left
// waiting for a slot: on a shared HTTP/2 connection an unread body holds
// the connection's flow-control window and stalls every other call to this
// node (measured: a queued 2 MiB write held up small reads for seconds).
// Memory per connection is therefore bounded by the server's HTTP/2 stream
// limit times MaxFrameBytes; senders keep it far lower by sizing merge
// batches (handoff) and values (--max-value-bytes).
type Server struct {
	// Store is the node's local store.
	Store *store.Store
	// Coordinate coordinates a write handed over by another node; node sets
	// it to the coordinator. Nil answers CodeUnavailable.
	Coordinate func(context.Context, WriteRequest) (WriteResult, error)
	// Authorize, when set, admits a request (node checks the peer's client
	// certificate or bearer token); a refused request gets 401.
	Authorize func(*http.Request) bool
	// PeerKeys, when set, demands a signature (peerauth.go) on every call:
	// the header's before the body is read, the body's after. A refused
	// request gets 401. Both it and Authorize must pass when both are set.
	PeerKeys *PeerKeys
	// Logger receives unexpected failures at debug level; nil is a no-op.
	Logger *zap.Logger
	// Trees, when set, serves the anti-entropy calls (aae_rpc.go).
	Trees *HashTrees
}

// Handler serves POST PathPrefix + {get, merge, merge-batch, coordinate}.
// It accepts the full path or the call name alone, so it works whether the
// router strips the prefix or not.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serve)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	call := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, PathPrefix), "/")
	var handle func(context.Context, []byte) ([]byte, error)
	switch call {
	case callGet:
		handle = s.get
	case callMerge:
		handle = s.merge
	case callMergeBatch:
		handle = s.mergeBatch
	case callCoordinate:
		handle = s.coordinate
	case callHint:
		handle = s.hint // hints_rpc.go
	case callAAETree, callAAEKeys, callAAERoots:
		handle = s.aaeHandler(call)
	default:
		s.fail(w, call, http.StatusNotFound, errorFrame{Code: CodeBadRequest, Message: fmt.Sprintf("no RPC call %q", r.URL.Path), Index: -1})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.fail(w, call, http.StatusMethodNotAllowed, errorFrame{Code: CodeBadRequest, Message: r.Method + " not allowed, want POST", Index: -1})
		return
	}
	if s.Authorize != nil && !s.Authorize(r) {
		s.fail(w, call, 0, errorFrame{Code: CodeUnauthorized, Message: "not a cluster member: no client certificate issued by the --tls-ca, or no valid bearer token", Index: -1})
		return
	}
	var sig PeerSignature
	if s.PeerKeys != nil {
		var err error
		if sig, err = s.PeerKeys.VerifyHeader(r, time.Now()); err != nil {
			s.refuse(w, r, call, err)
			return
		}
	}
	body, err := readBody(r.Body, r.ContentLength, MaxFrameBytes)
	if err != nil {
		s.fail(w, call, 0, errorFrame{Code: CodeBadRequest, Message: fmt.Sprintf("reading %s request: %v", call, err), Index: -1})
		return
	}
	if s.PeerKeys != nil {
		if err := sig.VerifyBody(body); err != nil {
			s.refuse(w, r, call, err)
			return
		}
	}
	resp, err := handle(r.Context(), body)
	if err != nil {
		index := -1
		var be *batchItemError
		if errors.As(err, &be) {
			index = be.index
		}
		s.fail(w, call, 0, classify(err, index))
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(resp)))
	_, _ = w.Write(resp) // the peer sees a broken stream and may retry
}

// refuse answers a call whose signature failed. Not logged above debug: a
// stranger must not be able to fill the log; the refused member sees the
// message in its own RPC errors.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, call string, err error) {
	if s.Logger != nil {
		s.Logger.Debug("rpc call refused", zap.String("call", call), zap.String("remote", r.RemoteAddr), zap.Error(err))
	}
	s.fail(w, call, 0, errorFrame{Code: CodeUnauthorized, Message: err.Error(), Index: -1})
}

func (s *Server) fail(w http.ResponseWriter, call string, status int, f errorFrame) {
	if status == 0 {
		status = f.Code.status()
	}
	if f.Code == CodeInternal && s.Logger != nil {
		s.Logger.Debug("rpc call failed", zap.String("call", call), zap.String("err", f.Message))
	}
	b := encodeError(f)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// readBody reads a whole body of at most limit bytes, in one allocation
// when the length is announced.
func readBody(r io.Reader, length, limit int64) ([]byte, error) {
	if length > limit {
		return nil, fmt.Errorf("body of %d bytes exceeds the limit %d", length, limit)
	}
	if length >= 0 {
		b := make([]byte, length)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		// A body longer than announced is a broken peer; HTTP/2 itself
		// rejects that, so one extra byte read is enough to check.
		var one [1]byte
		if n, _ := r.Read(one[:]); n > 0 {
			return nil, fmt.Errorf("body longer than its announced %d bytes", length)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("body exceeds the limit %d bytes", limit)
	}
	return b, nil
}

func (s *Server) get(_ context.Context, body []byte) ([]byte, error) {
	req, err := decodeGetRequest(body)
	if err != nil {
		return nil, err
	}
	set, err := s.Store.Get(req.DB, req.Key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return encodeGetResponse(getResponse{}), nil
	case err != nil:
		return nil, err
	}
	return encodeGetResponse(getResponse{Found: true, Set: set}), nil
}

func (s *Server) merge(_ context.Context, body []byte) ([]byte, error) {
	req, err := decodeMergeRequest(body)
	if err != nil {
		return nil, err
	}
	if _, err := s.Store.Merge(req.DB, req.Key, req.Set); err != nil {
		return nil, err
	}
	return ackFrame, nil
}

// batchItemError names the item of a merge batch that failed.
type batchItemError struct {
	index int
	err   error
}

func (e *batchItemError) Error() string { return fmt.Sprintf("item %d: %v", e.index, e.err) }
func (e *batchItemError) Unwrap() error { return e.err }

// mergeBatch applies items in order and stops at the first failure, so the
// sender knows every item before the reported index is applied.
func (s *Server) mergeBatch(ctx context.Context, body []byte) ([]byte, error) {
	items, err := decodeMergeBatchRequest(body)
	if err != nil {
		return nil, err
	}
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return nil, &batchItemError{i, err}
		}
		if _, err := s.Store.Merge(it.DB, it.Key, it.Set); err != nil {
			return nil, &batchItemError{i, err}
		}
	}
	return ackFrame, nil
}

func (s *Server) coordinate(ctx context.Context, body []byte) ([]byte, error) {
	req, err := decodeCoordinateRequest(body)
	if err != nil {
		return nil, err
	}
	if s.Coordinate == nil {
		return nil, fmt.Errorf("%w: this node does not coordinate writes yet", ErrUnavailable)
	}
	res, err := s.Coordinate(ctx, req)
	if err != nil {
		return nil, err
	}
	return encodeCoordinateResult(res), nil
}
