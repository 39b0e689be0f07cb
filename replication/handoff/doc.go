// Package handoff is ownership handoff (Dynamo's ownership transfer,
// Riak's handoff): when the ring changes, each node copies the keys it
// replicates to the nodes the target ring adds, reports Done so the ring
// can commit, and sweeps stray keys (of a node that left, or a partition
// that moved away) to their owners before dropping them. The worker is
// Handoff (handoff.go); a pass over the store is pass.go, its per-partition
// plan plan.go. Traffic is paced by internal/ratelimit at --handoff-rate
// (default DefaultRate, which node's configuration refers to); the
// batches travel as rpc merge-batch calls through rpc.Replicas.MergeBatch.
package handoff
