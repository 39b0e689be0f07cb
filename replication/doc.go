// Package replication moves versioned values between the nodes of a dynkv
// cluster. It holds no code of its own; each job has its room:
//
//   - replication/rpc: the node-to-node RPC (client, server and its
//     handler registry, frames, the one table of calls and frame kinds,
//     errors, peer signatures, the replica adapter), over
//     replication/rpc/transport, the framing layer.
//   - replication/hints: hinted handoff, the hint call and its delivery.
//   - replication/handoff: ownership handoff after a ring change.
//   - replication/antientropy: Merkle trees, exchange and repair, and
//     tombstone GC.
//
// The token bucket that paces handoff and anti-entropy is internal/ratelimit;
// the three background workers start and stop through internal/lifecycle.
package replication
