// Package hints is hinted handoff (Dynamo section 4.6): the hint call a
// coordinator sends a fallback node when a replica is unreachable (Send,
// served by Register, reached by node ID through Replicas), and the
// delivery worker that hands the hints to their owners (Delivery).
//
// A coordinator that finds a replica unreachable stores the write on a
// fallback node as a hint for that owner (the hint call, rpc.go;
// store.PutHint keeps it durably through the WAL). Each node runs a
// Delivery worker (delivery.go): every --hint-interval, for each
// owner it holds hints for that the failure detector says is alive, it
// merges the hints into the owner with merge-batch (batches of at most 1
// MiB and rpc.MaxBatchItems) and drops each acknowledged hint only if it did
// not change meanwhile (store.DropHint), so a write that landed during the
// delivery is delivered by the next pass. A failed delivery backs off per
// owner, exponentially and jittered, up to 30s. Hints for an owner that
// left or was removed from the ring go to each key's current committed
// preference list instead, and are dropped once every replica took them.
package hints
