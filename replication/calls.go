package replication

import (
	"context"
	"sync/atomic"
)

// callID is a node-to-node call's number: the call byte of a transport
// request frame. Part of the wire format: never renumber.
type callID byte

const (
	idGet        callID = 1
	idMerge      callID = 2
	idMergeBatch callID = 3
	idCoordinate callID = 4
	idHint       callID = 5
	idAAETree    callID = 6
	idAAEKeys    callID = 7
	idAAERoots   callID = 8
	idCover      callID = 9
	maxCallID           = idCover
)

// callSpec is what both ends know of a call. The table is the one place
// that says which calls exist, what they are called on the HTTP/2 RPC
// (the last element of the path) and which may be sent twice.
type callSpec struct {
	name string
	// idempotent calls are retried after a failure whose outcome is
	// unknown: a replica read, or a merge applied twice (vclock.Merge is
	// idempotent). Coordinate is not: each delivery mints a new dot, so a
	// write delivered twice would become a sibling of itself.
	idempotent bool
}

var calls = [maxCallID + 1]callSpec{
	idGet:        {name: callGet, idempotent: true},
	idMerge:      {name: callMerge, idempotent: true},
	idMergeBatch: {name: callMergeBatch, idempotent: true},
	idCoordinate: {name: callCoordinate},
	idHint:       {name: callHint, idempotent: true}, // a hint stored twice merges to the same hint
	idAAETree:    {name: callAAETree, idempotent: true},
	idAAEKeys:    {name: callAAEKeys, idempotent: true},
	idAAERoots:   {name: callAAERoots, idempotent: true},
	// A merge-covering delivered twice finds its own set there the second
	// time, which it covers; if another write landed in between, the repeat
	// answers not covered, which only sends the coordinator the safe way.
	idCover: {name: callCover, idempotent: true},
}

// valid reports whether id names a call.
func (id callID) valid() bool { return id >= 1 && id <= maxCallID }

func (id callID) String() string {
	if id.valid() {
		return calls[id].name
	}
	return "unknown"
}

// callByName is the call of an HTTP/2 RPC path's last element.
func callByName(name string) (callID, bool) {
	for id := callID(1); id <= maxCallID; id++ {
		if calls[id].name == name {
			return id, true
		}
	}
	return 0, false
}

// handler is the Server's handler of call id, shared by both ways in
// (ServeCall and the HTTP/2 handler); nil for an unknown call.
func (s *Server) handler(id callID) func(context.Context, []byte) ([]byte, error) {
	switch id {
	case idGet:
		return s.get
	case idMerge:
		return s.merge
	case idMergeBatch:
		return s.mergeBatch
	case idCoordinate:
		return s.coordinate
	case idCover:
		return s.mergeCovering
	case idHint:
		return s.hint // hints_rpc.go
	case idAAETree, idAAEKeys, idAAERoots:
		return s.aaeHandler(calls[id].name) // aae_rpc.go
	}
	return nil
}

// Paths a call travels, the "via" of CallCount.
const (
	ViaTransport = "transport" // the node-to-node transport (replication/rpc/transport)
	ViaHTTP2     = "http2"     // the HTTP/2 RPC, kept for peers of older versions
)

// callCounters counts calls by call and path; the zero value is ready.
type callCounters struct {
	n [maxCallID + 1][2]atomic.Uint64 // [call][0: transport, 1: http2]
}

func (c *callCounters) add(id callID, http2 bool) {
	i := 0
	if http2 {
		i = 1
	}
	c.n[id][i].Add(1)
}

// CallCount is how many node-to-node calls of one kind went one way.
type CallCount struct {
	Call  string // get, merge, merge-batch, coordinate, hint, aae-tree, aae-keys, aae-roots, merge-covering
	Via   string // ViaTransport or ViaHTTP2
	Count uint64
}

// counts lists every call and path, zero counts included, so that a
// metric's series exist from the start.
func (c *callCounters) counts() []CallCount {
	out := make([]CallCount, 0, 2*maxCallID)
	for id := callID(1); id <= maxCallID; id++ {
		out = append(out,
			CallCount{Call: calls[id].name, Via: ViaTransport, Count: c.n[id][0].Load()},
			CallCount{Call: calls[id].name, Via: ViaHTTP2, Count: c.n[id][1].Load()})
	}
	return out
}
