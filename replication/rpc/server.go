package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/replication/rpc/transport"
	"github.com/dynkv/dynkv/store"
)

// ContentType marks RPC frames, so a stray browser or proxy response is
// not mistaken for one.
const ContentType = contentType

const contentType = "application/x-dynkv-rpc"

// Server answers the node-to-node calls of one node, two ways in with one
// set of handlers: ServeCall is the handler of the node's transport.Server
// (the node-to-node transport, reached by an HTTP/1.1 upgrade at
// transport.DefaultPath), and Handler serves the HTTP/2 RPC, which nodes
// of older versions still call: node mounts it at PathPrefix on its HTTP
// server, whose Protocols include unencrypted HTTP/2 (or HTTP/2 over TLS).
//
// On the HTTP/2 RPC a request body is read in full as soon as the call
// arrives, never left waiting for a slot: on a shared HTTP/2 connection an
// unread body holds the connection's flow-control window and stalls every
// other call to this node (measured: a queued 2 MiB write held up small
// reads for seconds). The transport reads each request frame whole too.
// Memory per connection is therefore bounded by the calls it runs at once
// (the HTTP/2 stream limit, the transport's MaxConcurrentCalls) times
// MaxFrameBytes; senders keep it far lower by sizing merge batches
// (handoff) and values (--max-value-bytes).
type Server struct {
	// Store is the node's local store.
	Store *store.Store
	// Coordinate coordinates a write handed over by another node; node sets
	// it to the coordinator. Nil answers CodeUnavailable.
	Coordinate func(context.Context, WriteRequest) (WriteResult, error)
	// Authorize, when set, admits an HTTP/2 request (node checks the
	// peer's client certificate or bearer token); a refused request gets
	// 401. The transport.Server applies the same check to its upgrade.
	Authorize func(*http.Request) bool
	// PeerKeys, when set, demands a signature (peerauth.go) on every
	// HTTP/2 call: the header's before the body is read, the body's after.
	// A refused request gets 401. Both it and Authorize must pass when
	// both are set. The transport's counterpart is its Keyring.
	PeerKeys *PeerKeys
	// Logger receives unexpected failures at debug level; nil is a no-op.
	Logger *zap.Logger

	// handlers are the handlers the rooms registered (Handle): hint
	// (replication/hints) and the aae-* calls (replication/antientropy).
	handlers [maxCall + 1]atomic.Pointer[Handler]
	served   callCounters
}

// Handler serves one call: it gets the request frame and returns the
// response frame, or an error the server turns into an error frame
// (rpc_errors.go). Both ways in (ServeCall and the HTTP/2 RPC) run the
// same handler.
type Handler func(ctx context.Context, body []byte) ([]byte, error)

// Handle makes h serve call id on both ways in, in place of what served it
// before. The server serves the core calls (get, merge, merge-batch,
// merge-covering, coordinate) itself; every other call is served by the
// room that owns it (hints.Register, antientropy.Register) and answers
// ErrUnavailable until one is registered. Safe to call while serving.
func (s *Server) Handle(id Call, h Handler) {
	if !id.Valid() {
		panic(fmt.Sprintf("rpc: Handle of unknown call %d", id))
	}
	s.handlers[id].Store(&h)
}

// handler is the Server's handler of call id, shared by both ways in
// (ServeCall and the HTTP/2 handler); id must be valid.
func (s *Server) handler(id Call) Handler {
	if h := s.handlers[id].Load(); h != nil {
		return *h
	}
	switch id {
	case CallGet:
		return s.get
	case CallMerge:
		return s.merge
	case CallMergeBatch:
		return s.mergeBatch
	case CallCoordinate:
		return s.coordinate
	case CallCover:
		return s.mergeCovering
	}
	return func(context.Context, []byte) ([]byte, error) {
		return nil, fmt.Errorf("%w: %s is not served on this node", ErrUnavailable, id)
	}
}

// Handler serves the HTTP/2 RPC: POST PathPrefix + a call's name (get,
// merge, merge-batch, coordinate, hint, aae-*). It accepts the full path or
// the call name alone, so it works whether the router strips the prefix or
// not. Any other name, the transport's upgrade path included, is a 404:
// what a node of an older version answers the upgrade with.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serve)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	call := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, PathPrefix), "/")
	id, ok := callByName(call)
	if !ok {
		s.fail(w, call, http.StatusNotFound, errorFrame{Code: CodeBadRequest, Message: fmt.Sprintf("no RPC call %q", r.URL.Path), Index: -1})
		return
	}
	handle := s.handler(id)
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
	s.served.add(id, true)
	resp, err := handle(r.Context(), body)
	if err != nil {
		s.fail(w, call, 0, s.failure(err))
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

// ServeCall is the transport.Handler of the node-to-node transport
// (replication/rpc/transport): it serves call with the same handlers as the
// HTTP/2 RPC. Who may call was settled before, by the transport.Server
// (its Authorize on the upgrade request, its Keys in the handshake and on
// every frame), so Authorize and PeerKeys, the HTTP/2 RPC's checks, play
// no part here. A failure is a *transport.Error whose Detail is the error
// frame the HTTP/2 RPC would answer, and whose Code is that frame's code.
func (s *Server) ServeCall(ctx context.Context, call byte, payload []byte) ([]byte, error) {
	id := Call(call)
	if !id.Valid() {
		return nil, callError(errorFrame{Code: CodeBadRequest, Message: fmt.Sprintf("no RPC call %d", call), Index: -1})
	}
	s.served.add(id, false)
	resp, err := s.handler(id)(ctx, payload)
	if err != nil {
		f := s.failure(err)
		s.logFailure(calls[id].name, f)
		return nil, callError(f)
	}
	return resp, nil
}

// callError carries an error frame back over the transport.
func callError(f errorFrame) *transport.Error {
	return &transport.Error{Code: byte(f.Code), Detail: encodeError(f)}
}

// failure is the error frame of a handler's error.
func (s *Server) failure(err error) errorFrame {
	index := -1
	var be *batchItemError
	if errors.As(err, &be) {
		index = be.index
	}
	return classify(err, index)
}

// ServerStats are a Server's counters, for metrics.
type ServerStats struct {
	// Calls counts the calls served (authenticated and routed to their
	// handler, whatever the outcome), by call and path.
	Calls []CallCount
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats { return ServerStats{Calls: s.served.counts()} }

func (s *Server) logFailure(call string, f errorFrame) {
	if f.Code == CodeInternal && s.Logger != nil {
		s.Logger.Debug("rpc call failed", zap.String("call", call), zap.String("err", f.Message))
	}
}

func (s *Server) fail(w http.ResponseWriter, call string, status int, f errorFrame) {
	if status == 0 {
		status = f.Code.status()
	}
	s.logFailure(call, f)
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

// mergeCovering merges the request's set only when it covers what the
// replica holds (store.MergeCovering), and otherwise answers with the
// replica's context.
func (s *Server) mergeCovering(_ context.Context, body []byte) ([]byte, error) {
	req, err := decodeCoverRequest(body)
	if err != nil {
		return nil, err
	}
	cur, covered, err := s.Store.MergeCovering(req.DB, req.Key, req.Set)
	if err != nil {
		return nil, err
	}
	return encodeCoverResult(coverResult{Covered: covered, Held: cur.Context}), nil
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
