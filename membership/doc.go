// Package membership decides who is in the cluster and who owns what.
//
// It has three layers, from pure to I/O:
//
//   - Ring (ring.go): the placement of a fixed number of partitions onto a
//     member set, by a capped rendezvous assignment, and the preference list
//     of a partition (the first N distinct owners clockwise), as in Dynamo
//     and Riak. A Ring depends only on its member set and partition count, so
//     every node computes the same one.
//   - State (state.go): the ring state as a state-based CRDT: one versioned
//     entry per member (status and ownership-handoff progress) and the
//     committed ring (an epoch and its member list). Merge is commutative,
//     associative and idempotent, and TryCommit is a pure function of the
//     merged state, so every node reaches the same ring without a leader.
//   - Membership (membership.go, delegate.go): hashicorp/memberlist for
//     liveness (alive, suspect, dead) and as the transport of the State (push/
//     pull plus broadcasts on change), with the State persisted in
//     <data-dir>/ring.state so a restart keeps the node's identity and ring.
//
// Ring membership is explicit: a crash or a partition changes Liveness and
// therefore routing, never the ring; only Join, Leave and Remove change it.
package membership
