package transport

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Sentinel errors callers branch on with errors.Is; their texts are short
// because Call wraps them as "transport: call <n> to <addr>: ...". A
// failed Call matches
// exactly one of ErrNotDelivered and ErrOutcomeUnknown, or it is an *Error
// (the peer's handler ran and failed); the other sentinels say why and are
// matched together with one of the first two.
var (
	// ErrNotDelivered: the peer certainly did not run the call (the dial,
	// the upgrade or the handshake failed, the connection broke before
	// the request was written, the peer refused it at its cap or while
	// shutting down, or the caller gave up before it was written). Even a
	// call that is not idempotent may be sent again or elsewhere.
	ErrNotDelivered = errors.New("not delivered")
	// ErrOutcomeUnknown: the request was written and the connection was
	// lost (or the caller stopped waiting) before its response came
	// back. The peer may or may not have run it.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrUnauthorized: the peer refused this node (a bearer token, a
	// client certificate or the keyed handshake), this node refused the
	// peer's proof, or a frame failed its MAC (altered, replayed or
	// reordered in transit). Not worth a retry until configuration changes.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrBusy: the peer was at its cap of concurrent calls on the
	// connection and refused the call without running it.
	ErrBusy = errors.New("peer busy")
	// ErrShuttingDown: the peer is shutting down and took no new calls.
	ErrShuttingDown = errors.New("peer shutting down")
	// ErrNotSupported: the peer answered the upgrade with something other
	// than 101 and no authorization failure: a node of a version without
	// this transport, or something that is not a dynkv node.
	ErrNotSupported = errors.New("peer does not speak " + Protocol)
	// ErrFrameTooLarge: a request larger than the peer accepts, refused
	// before it was sent, or a response larger than this node accepts.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrProtocol: the peer sent bytes that are not a valid frame in the
	// current state; the connection is closed.
	ErrProtocol = errors.New("protocol violation")
	// ErrClosed: the Client or Server was closed.
	ErrClosed = errors.New("transport closed")
)

// Error is a failure reported by the peer's handler, carried back in an
// error frame: the handler ran. A Handler returns one to choose the code
// and detail the caller gets; any other error arrives as Code 0 with its
// text as Detail. The transport gives codes no meaning; the replication
// package puts its own error frame in Detail.
type Error struct {
	Code   byte
	Detail []byte
}

func (e *Error) Error() string {
	if utf8.Valid(e.Detail) {
		return fmt.Sprintf("transport: remote error (code %d): %s", e.Code, e.Detail)
	}
	return "transport: remote error (code " + strconv.Itoa(int(e.Code)) + "), " + strconv.Itoa(len(e.Detail)) + " bytes of detail"
}

// refusal codes, carried in the code byte of a frameRefused.
const (
	refusedBusy         byte = 1 // at the cap; not run
	refusedShuttingDown byte = 2 // draining; not run
	refusedUnauthorized byte = 3 // handshake refused (request ID 0); the connection closes
	refusedProtocol     byte = 4 // the peer broke the protocol (request ID 0); the connection closes
	refusedTooLarge     byte = 5 // the handler ran, its response exceeds the caller's advertised limit
	maxRefusal               = refusedTooLarge
)

// callRefusal is the caller's error for a refused frame answering its
// request.
func callRefusal(code byte, msg []byte) error {
	switch code {
	case refusedBusy:
		return fmt.Errorf("%w: %w", ErrNotDelivered, ErrBusy)
	case refusedShuttingDown:
		return fmt.Errorf("%w: %w", ErrNotDelivered, ErrShuttingDown)
	case refusedTooLarge:
		// The handler ran; only its answer is lost.
		return fmt.Errorf("%w: %w: %s", ErrOutcomeUnknown, ErrFrameTooLarge, msg)
	default:
		return fmt.Errorf("%w: %w: refusal code %d for a call: %s", ErrOutcomeUnknown, ErrProtocol, code, msg)
	}
}

// connRefusal is why the peer closes the connection, from a refused frame
// with request ID 0. It wraps neither ErrNotDelivered nor
// ErrOutcomeUnknown: each call on the connection gets the one that fits
// it.
func connRefusal(code byte, msg []byte) error {
	if code == refusedUnauthorized {
		return fmt.Errorf("%w: the peer refused this node: %s", ErrUnauthorized, msg)
	}
	return fmt.Errorf("%w: the peer closed the connection: %s", ErrProtocol, msg)
}
