// Package replication moves versioned values between the nodes of a dynkv
// cluster: the node-to-node RPC (this file set) and the ownership handoff
// that follows a ring change.
//
// # RPC
//
// Node-to-node calls are HTTP/2 requests on the node's HTTP port, under
// PathPrefix: get, merge, merge-batch (idempotent replica reads and writes)
// and coordinate (hand a client write to a replica of its preference list,
// which mints the new version). HTTP/2 multiplexes every concurrent call to
// a peer over one TCP connection, so a node keeps one connection per peer
// instead of a pool that grows with load; without TLS the client speaks
// h2c with prior knowledge, with TLS it negotiates h2 and presents the
// node's certificate.
//
// Bodies are small binary frames (codec.go), never JSON: a format version
// byte, a frame kind byte, then uvarints, length-prefixed byte strings and
// the vclock encodings of contexts and sets. Every decoder checks each length
// against the bytes left and against a fixed bound before it allocates, and
// accepts only the canonical encoding, so decode then encode reproduces the
// input; each has a fuzz target.
//
// # Errors
//
// A failed call answers a non-200 status with an error frame {code, message,
// needed, acked, index}. The client turns it back into the sentinel the
// server saw (store.ErrDiskFull, store.ErrClosed, store.ErrBadKey, a
// *QuorumError, ...) wrapped in a *RemoteError, so callers branch with
// errors.Is and errors.As exactly as they would on a local call.
//
// # Timeouts and retries
//
// Every call is bounded by ClientConfig.Timeout, retries included. Only the
// idempotent calls (get, merge, merge-batch) are retried, on transport
// errors and on internal server errors, with jittered exponential backoff:
// a replica merge applied twice is the same as once (vclock.Merge is
// idempotent). Coordinate is never retried: each delivery mints a new dot,
// so a retried write could become a sibling of itself. A call that could not
// even open a connection fails with an error wrapping ErrUnreachable; the
// request was then certainly not delivered, and a coordinator may try
// another replica.
//
// # Hinted handoff
//
// A coordinator that finds a replica unreachable stores the write on a
// fallback node as a hint for that owner (the hint call, hints_rpc.go;
// store.PutHint keeps it durably through the WAL). Each node runs a
// HintDelivery worker (hints_delivery.go): every --hint-interval, for each
// owner it holds hints for that the failure detector says is alive, it
// merges the hints into the owner with merge-batch (batches of at most 1
// MiB and MaxBatchItems) and drops each acknowledged hint only if it did
// not change meanwhile (store.DropHint), so a write that landed during the
// delivery is delivered by the next pass. A failed delivery backs off per
// owner, exponentially and jittered, up to 30s. Hints for an owner that
// left or was removed from the ring go to each key's current committed
// preference list instead, and are dropped once every replica took them.
package replication
