// Package rpc is the node-to-node RPC of a dynkv cluster: the client
// (Client, whose Invoke is the one retry loop of every call), the server
// (Server, with a handler registry keyed by Call, on which the rooms
// replication/hints and replication/antientropy register their calls), the
// frames of the core calls, the error frames, the HTTP/2 fallback's peer
// signatures and the replica adapter (Replicas: call a replica by node ID).
// The framing layer is replication/rpc/transport.
//
// Node-to-node calls are get, merge, merge-batch (idempotent replica reads
// and writes), coordinate (hand a client write to a replica of its
// preference list, which mints the new version), hint (replication/hints) and the anti-entropy
// reads (replication/antientropy) (calls.go lists them, with every frame kind). They travel on the node-to-node transport
// (replication/rpc/transport): one persistent connection per peer, reached by
// an HTTP/1.1 upgrade on the node's HTTP port (TLS with the node's
// certificate when configured), on which every concurrent call is a pair
// of binary frames; Server.ServeCall serves them. A peer that answers the
// upgrade with 404 is a node of an older version, which speaks only the
// HTTP/2 RPC: HTTP/2 requests under PathPrefix, one multiplexed connection
// per peer (h2c with prior knowledge, or h2 over TLS). The client calls
// such a peer that way for a minute at a time, and Server.Handler serves
// that RPC to such peers, so a cluster upgrades by rolling restarts.
//
// Bodies are small binary frames (codec.go), never JSON: a format version
// byte, a frame kind byte, then uvarints, length-prefixed byte strings and
// the vclock encodings of contexts and sets. Every call ID and frame kind
// is assigned in calls.go; the rooms encode their own frames (with Header
// and Decoder) and serve their calls through Server.Handle. Every decoder checks each length
// against the bytes left and against a fixed bound before it allocates, and
// accepts only the canonical encoding, so decode then encode reproduces the
// input; each has a fuzz target.
//
// # Errors
//
// A failed call answers an error frame {code, message, needed, acked,
// index}: in a transport error frame's detail, or with a non-200 HTTP/2
// status. The client turns it back into the sentinel the server saw (store.ErrDiskFull, store.ErrClosed, store.ErrBadKey, a
// *QuorumError, ...) wrapped in a *RemoteError, so callers branch with
// errors.Is and errors.As exactly as they would on a local call.
//
// # Timeouts and retries
//
// Every call is bounded by ClientConfig.Timeout, retries included, except a
// coordinate call with a deadline: a forwarded write is a whole client
// request, so it runs within the forwarder's deadline, which travels with
// it and bounds the remote coordination. Only the
// idempotent calls (get, merge, merge-batch) are retried, on transport
// errors and on internal server errors, with jittered exponential backoff:
// a replica merge applied twice is the same as once (vclock.Merge is
// idempotent). Coordinate is never retried: each delivery mints a new dot,
// so a retried write could become a sibling of itself. A call that was
// certainly not delivered (no connection, not even the upgrade) fails with
// an error wrapping ErrUnreachable, one the peer refused unrun (busy at its
// cap, or shutting down) with ErrUnavailable, and a coordinator may try
// another replica; a call whose outcome is unknown (the connection broke
// after the request was sent) wraps neither.
package rpc
