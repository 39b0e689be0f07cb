// Package membership decides who is in the cluster and who owns what.
//
// It has three layers, from pure to I/O:
//
//   - Ring (ring.go): the placement of a fixed number of partitions onto a
//     member set, by a capped rendezvous assignment, and the preference list
//     of a partition (the first N distinct owners clockwise), as in Dynamo
//     and Riak. A Ring depends only on its member set and partition count, so
//     every node computes the same one. Every member owns floor(P/M) or
//     ceil(P/M) partitions; adding or removing one member of 3 to 10 moves
//     1.0x to 1.6x the ideal P/M partitions (TestRingChangeMovesFewPartitions).
//   - State (state.go): the ring state as a state-based CRDT: one versioned
//     entry per member (status and ownership-handoff progress) and the
//     committed ring (an epoch and its member list). Merge is commutative,
//     associative and idempotent, and TryCommit is a pure function of the
//     merged state, so every node reaches the same ring without a leader.
//   - Membership (membership.go, delegate.go): hashicorp/memberlist for
//     liveness and as the transport of the State, persisted in
//     <data-dir>/ring.state so a restart keeps the node's identity and ring.
//
// Ring membership is explicit: a crash or a partition changes Liveness and
// therefore routing, never the ring; only Join, Leave and Remove change it.
// A transition (a join, leave or removal) commits only when every member of
// the old and new ring that is not removed reports its handoff done, so a
// member that is down but not removed holds a transition until it returns
// or an operator removes it (Dynamo's explicit membership).
//
// How the state travels: every local change is queued as a memberlist
// broadcast (piggybacked on gossip, so it reaches everyone in a few gossip
// intervals); a node that learns something from a merge re-broadcasts, so
// the spread is epidemic rather than limited to the originator's
// retransmits. A state larger than a UDP packet can carry (about 15 members
// and up) goes over TCP to a few random peers instead. memberlist's push/
// pull (every PushPullInterval) exchanges whole states as a backstop, and
// after a restart or a partition memberlist has given up on, a rejoin loop
// gossip-joins ring members it cannot see.
//
// Failure detection keeps memberlist's DefaultLANConfig values unless the
// Config sets them. Measured on loopback (BenchmarkFailureDetection, 3
// nodes): LAN defaults see a stopped node suspect after about 1.8s and dead
// after about 6s; probe 100ms, timeout 50ms, suspicion x2 after 0.25s and
// 0.4s, but
// such values make live nodes miss probes under load (-race on 2 cores
// falsely suspected and even killed live nodes at 50ms), so they stay a
// test and flag setting, not a default. Suspect is this node's own view:
// its last probe of the peer failed and memberlist has not declared it dead
// (memberlist does not expose its suspect state; see delegate.go).
package membership
