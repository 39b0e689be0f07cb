// Package antientropy is dynkv's active anti-entropy (Dynamo section 4.7,
// Riak's AAE) and the tombstone GC that depends on it:
//
//   - HashTrees (aae_tree.go): one Merkle tree per partition, fed by the
//     store's change hook (store.Options.OnChange) from the moment it
//     opens, and built in the background from a scan.
//   - AntiEntropy (aae.go, aae_exchange.go): every --aae-interval it
//     compares the partition roots with each live peer that shares a
//     partition, exchanges the trees of those that differ and repairs the
//     keys of the differing leaves both ways, paced by internal/ratelimit.
//   - The aae-tree, aae-keys and aae-roots calls (aae_rpc.go): their
//     frames (kinds assigned in replication/rpc's table), the client side
//     (FetchTree, FetchKeys, FetchRoots, and RPCPeers over rpc.Replicas)
//     and the server side, which Register adds to an rpc.Server.
//   - TombstoneGC (tombstone_gc.go): decides whether the store may reclaim
//     a key that holds only old tombstones, by asking every replica.
package antientropy
