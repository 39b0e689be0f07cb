package rpc

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/dynkv/dynkv/store"
)

// ErrorCode is the kind of failure an error frame reports. Codes are part
// of the wire format: never renumber them.
type ErrorCode byte

// Error codes. Each maps to one sentinel error on the client side.
const (
	CodeInternal     ErrorCode = 1 // ErrInternal
	CodeBadRequest   ErrorCode = 2 // ErrBadRequest
	CodeNotFound     ErrorCode = 3 // store.ErrNotFound
	CodeDiskFull     ErrorCode = 4 // store.ErrDiskFull
	CodeClosed       ErrorCode = 5 // store.ErrClosed
	CodeQuorum       ErrorCode = 6 // *QuorumError
	CodeBadDatabase  ErrorCode = 7 // store.ErrBadDatabase
	CodeBadKey       ErrorCode = 8 // store.ErrBadKey
	CodeUnauthorized ErrorCode = 9 // ErrUnauthorized
	CodeUnavailable  ErrorCode = 10
	CodeWrongType    ErrorCode = 11 // store.ErrWrongType
	CodeOverflow     ErrorCode = 12 // store.ErrCounterOverflow
	maxErrorCode               = CodeOverflow
)

var codeNames = [...]string{
	CodeInternal:     "internal",
	CodeBadRequest:   "bad-request",
	CodeNotFound:     "not-found",
	CodeDiskFull:     "disk-full",
	CodeClosed:       "closed",
	CodeQuorum:       "quorum",
	CodeBadDatabase:  "bad-database",
	CodeBadKey:       "bad-key",
	CodeUnauthorized: "unauthorized",
	CodeUnavailable:  "unavailable",
	CodeWrongType:    "wrong-type",
	CodeOverflow:     "overflow",
}

func (c ErrorCode) String() string {
	if c >= 1 && c <= maxErrorCode {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", byte(c))
}

// status is the HTTP status of an error frame with this code. Statuses
// are informative only (the code decides), except that a client meeting a
// 5xx without a readable frame treats it as CodeInternal.
func (c ErrorCode) status() int {
	switch c {
	case CodeBadRequest, CodeBadDatabase, CodeBadKey:
		return http.StatusBadRequest
	case CodeNotFound:
		return http.StatusNotFound
	case CodeDiskFull:
		return http.StatusInsufficientStorage
	case CodeClosed, CodeQuorum, CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeWrongType, CodeOverflow:
		return http.StatusConflict
	default:
		return http.StatusInternalServerError
	}
}

// retryable says whether an idempotent call failing with this code may
// succeed on the same peer moments later. Disk full, a closing store, a bad
// request and a refused token will not.
func (c ErrorCode) retryable() bool {
	return c == CodeInternal || c == CodeUnavailable
}

// errorFrame is the body of every failed call.
type errorFrame struct {
	Code    ErrorCode
	Message string
	Needed  int // CodeQuorum only
	Acked   int // CodeQuorum only
	Index   int // merge-batch: the item that failed; -1 when not about an item
}

// classify turns a server-side error into the frame that carries it.
func classify(err error, index int) errorFrame {
	f := errorFrame{Code: CodeInternal, Message: err.Error(), Index: index}
	var qe *QuorumError
	switch {
	case errors.As(err, &qe):
		f.Code, f.Needed, f.Acked = CodeQuorum, qe.Needed, qe.Acked
	case errors.Is(err, store.ErrDiskFull):
		f.Code = CodeDiskFull
	case errors.Is(err, store.ErrClosed):
		f.Code = CodeClosed
	case errors.Is(err, store.ErrBadDatabase):
		f.Code = CodeBadDatabase
	case errors.Is(err, store.ErrBadKey):
		f.Code = CodeBadKey
	case errors.Is(err, store.ErrNotFound):
		f.Code = CodeNotFound
	case errors.Is(err, store.ErrWrongType):
		f.Code = CodeWrongType
	case errors.Is(err, store.ErrCounterOverflow):
		f.Code = CodeOverflow
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrMalformed):
		f.Code = CodeBadRequest
	case errors.Is(err, ErrUnavailable):
		f.Code = CodeUnavailable
	case errors.Is(err, ErrUnauthorized):
		f.Code = CodeUnauthorized
	}
	return f
}

// RemoteError is a call that reached the peer and failed there. It wraps
// the sentinel of its code (and, for CodeQuorum, a *QuorumError), so
// errors.Is(err, store.ErrDiskFull) and errors.As(err, &quorumErr) work on
// the caller's side as on the peer's.
type RemoteError struct {
	Peer    string    // the address called
	Call    string    // get, merge, merge-batch or coordinate
	Code    ErrorCode // what failed
	Message string    // the peer's error text
	Index   int       // merge-batch: index of the first item that failed (earlier items are applied); -1 otherwise
	cause   error
}

func newRemoteError(peer, call string, f errorFrame) *RemoteError {
	e := &RemoteError{Peer: peer, Call: call, Code: f.Code, Message: f.Message, Index: f.Index}
	switch f.Code {
	case CodeQuorum:
		e.cause = &QuorumError{Needed: f.Needed, Acked: f.Acked}
	case CodeBadRequest:
		e.cause = ErrBadRequest
	case CodeNotFound:
		e.cause = store.ErrNotFound
	case CodeDiskFull:
		e.cause = store.ErrDiskFull
	case CodeClosed:
		e.cause = store.ErrClosed
	case CodeBadDatabase:
		e.cause = store.ErrBadDatabase
	case CodeBadKey:
		e.cause = store.ErrBadKey
	case CodeUnauthorized:
		e.cause = ErrUnauthorized
	case CodeUnavailable:
		e.cause = ErrUnavailable
	case CodeWrongType:
		e.cause = store.ErrWrongType
	case CodeOverflow:
		e.cause = store.ErrCounterOverflow
	default:
		e.cause = ErrInternal
	}
	return e
}

func (e *RemoteError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("replication: %s at %s: item %d: %s (%s)", e.Call, e.Peer, e.Index, e.Message, e.Code)
	}
	return fmt.Sprintf("replication: %s at %s: %s (%s)", e.Call, e.Peer, e.Message, e.Code)
}

func (e *RemoteError) Unwrap() error { return e.cause }

// Status is the HTTP status the HTTP/2 RPC answers an error frame of code
// c with.
func (c ErrorCode) Status() int { return c.status() }

// DecodeErrorFrame reads an error frame (the detail of a transport error,
// or the body of a failed HTTP/2 call): its code and message. The rooms'
// tests check their calls' failures with it.
func DecodeErrorFrame(b []byte) (ErrorCode, string, error) {
	f, err := decodeError(b)
	return f.Code, f.Message, err
}
