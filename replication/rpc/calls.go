package rpc

import (
	"sync/atomic"
)

// This file is the one table of the node-to-node calls and of the frame
// kinds their bodies carry: every call ID and every frame kind is assigned
// here, whichever room encodes the frames (rpc itself for the core calls,
// replication/hints for hint, replication/antientropy for the aae-*
// calls). Both are part of the wire format: never renumber.

// Call is a node-to-node call's number: the call byte of a transport
// request frame.
type Call byte

// The calls.
const (
	CallGet        Call = 1
	CallMerge      Call = 2
	CallMergeBatch Call = 3
	CallCoordinate Call = 4
	CallHint       Call = 5 // replication/hints
	CallAAETree    Call = 6 // replication/antientropy
	CallAAEKeys    Call = 7 // replication/antientropy
	CallAAERoots   Call = 8 // replication/antientropy
	CallCover      Call = 9
	maxCall             = CallCover
)

// Frame kinds, the second byte of every frame: a frame sent to the wrong
// call or read as the wrong type fails to decode instead of being
// misread. The hint and anti-entropy kinds are far from the core calls'
// kinds, as they were assigned when those calls were added.
const (
	KindGetRequest        byte = 1
	KindGetResponse       byte = 2
	KindMergeRequest      byte = 3
	KindAck               byte = 4
	KindMergeBatchRequest byte = 5
	KindCoordinateRequest byte = 6
	KindCoordinateResult  byte = 7
	KindError             byte = 8
	KindCoverRequest      byte = 9
	KindCoverResult       byte = 10

	KindHintRequest byte = 32 // replication/hints; answered with KindAck

	KindAAETreeRequest   byte = 0x40 // replication/antientropy
	KindAAETreeResponse  byte = 0x41
	KindAAEKeysRequest   byte = 0x42
	KindAAEKeysResponse  byte = 0x43
	KindAAERootsRequest  byte = 0x44
	KindAAERootsResponse byte = 0x45
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
	// wholeRequest calls carry a client request the peer runs to the end
	// (a forwarded write's coordination, which waits on the peer's own
	// replica calls): bounded by the caller's deadline, not by
	// ClientConfig.Timeout, which is one replica call's budget.
	wholeRequest bool
}

var calls = [maxCall + 1]callSpec{
	CallGet:        {name: "get", idempotent: true},
	CallMerge:      {name: "merge", idempotent: true},
	CallMergeBatch: {name: "merge-batch", idempotent: true},
	CallCoordinate: {name: "coordinate", wholeRequest: true},
	CallHint:       {name: "hint", idempotent: true}, // a hint stored twice merges to the same hint
	CallAAETree:    {name: "aae-tree", idempotent: true},
	CallAAEKeys:    {name: "aae-keys", idempotent: true},
	CallAAERoots:   {name: "aae-roots", idempotent: true},
	// A merge-covering delivered twice finds its own set there the second
	// time, which it covers; if another write landed in between, the repeat
	// answers not covered, which only sends the coordinator the safe way.
	CallCover: {name: "merge-covering", idempotent: true},
}

// Valid reports whether id names a call.
func (id Call) Valid() bool { return id >= 1 && id <= maxCall }

// String is the call's name: the last element of its HTTP/2 RPC path.
func (id Call) String() string {
	if id.Valid() {
		return calls[id].name
	}
	return "unknown"
}

// callByName is the call of an HTTP/2 RPC path's last element.
func callByName(name string) (Call, bool) {
	for id := Call(1); id <= maxCall; id++ {
		if calls[id].name == name {
			return id, true
		}
	}
	return 0, false
}

// Paths a call travels, the "via" of CallCount.
const (
	ViaTransport = "transport" // the node-to-node transport (replication/rpc/transport)
	ViaHTTP2     = "http2"     // the HTTP/2 RPC, kept for peers of older versions
)

// callCounters counts calls by call and path; the zero value is ready.
type callCounters struct {
	n [maxCall + 1][2]atomic.Uint64 // [call][0: transport, 1: http2]
}

func (c *callCounters) add(id Call, http2 bool) {
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
	out := make([]CallCount, 0, 2*maxCall)
	for id := Call(1); id <= maxCall; id++ {
		out = append(out,
			CallCount{Call: calls[id].name, Via: ViaTransport, Count: c.n[id][0].Load()},
			CallCount{Call: calls[id].name, Via: ViaHTTP2, Count: c.n[id][1].Load()})
	}
	return out
}
