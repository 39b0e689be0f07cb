package rpc

import (
	"errors"
	"fmt"

	"github.com/dynkv/dynkv/vclock"
)

// PathPrefix is where node mounts Server.Handler; the calls are
// PathPrefix + "get", "merge", "merge-batch" and "coordinate".
const PathPrefix = "/internal/v1/"

// WriteRequest is a client write handed to a replica of the key's
// preference list, which coordinates it: the replica applies it locally with
// itself as the actor, then replicates it. Blind is a write without a
// client context, which supersedes what the replicas hold; otherwise the
// write supersedes exactly what Context covers, nothing when it is empty
// (SPEC section 5). Sibling.Dot is ignored: the coordinating replica mints
// it. W is the write quorum the client asked for (0: the node default).
//
// Counter makes the request an increment of the key's counter by Delta
// (negative to decrement) instead of a write of Sibling: the coordinating
// replica adds Delta to its own share (store.Store.Increment); Context,
// Blind and Sibling are unused.
type WriteRequest struct {
	DB      int
	Key     []byte
	Context vclock.Context
	Blind   bool
	Sibling vclock.Sibling
	W       int
	Counter bool
	Delta   int64
}

// WriteResult is the outcome of a coordinated write: the context to hand
// back to the client (its context plus the new dot), and for an increment
// the counter's value as the coordinating replica saw it once it had
// added the increment.
type WriteResult struct {
	Context vclock.Context
	Value   int64
}

// Item is one key's state in a merge batch.
type Item struct {
	DB  int
	Key []byte
	Set vclock.Set
}

// Sentinel errors callers branch on.
var (
	// ErrQuorum is matched by every *QuorumError.
	ErrQuorum = errors.New("replication: quorum not reached")
	// ErrUnreachable wraps failures to open a connection to a peer: the
	// request was not delivered, so even a non-idempotent call may be sent
	// elsewhere.
	ErrUnreachable = errors.New("replication: peer unreachable")
	// ErrUnknownNode is returned by Replicas for a node id with no member
	// entry.
	ErrUnknownNode = errors.New("replication: unknown node")
	// ErrBadRequest is a frame the peer could not decode or a call it does
	// not serve: a bug or a version skew, never worth a retry.
	ErrBadRequest = errors.New("replication: bad request")
	// ErrUnauthorized: the peer refused our bearer token.
	ErrUnauthorized = errors.New("replication: unauthorized")
	// ErrUnavailable: the peer cannot serve the call now (for example it
	// has no coordinator yet).
	ErrUnavailable = errors.New("replication: unavailable")
	// ErrInternal is an unexpected failure on the peer.
	ErrInternal = errors.New("replication: internal error on peer")
)

// QuorumError reports that a coordinated request gathered fewer replica
// acknowledgements than it needed. A write that fails this way is
// indeterminate: some replicas may hold it. The coordinator returns it, the
// RPC carries it between nodes and node answers it with HTTP 503.
type QuorumError struct {
	Needed int // acknowledgements the request asked for (r or w)
	Acked  int // acknowledgements it got before giving up
}

func (e *QuorumError) Error() string {
	return fmt.Sprintf("quorum not reached: needed %d, acked %d", e.Needed, e.Acked)
}

// Is makes errors.Is(err, ErrQuorum) true for every QuorumError.
func (e *QuorumError) Is(target error) bool { return target == ErrQuorum }
