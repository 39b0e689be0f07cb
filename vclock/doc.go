// Package vclock implements the causality of dynkv: dotted version vectors,
// the causal contexts clients carry in X-Context, and the sibling sets every
// replica stores per key.
//
// # Dotted version vectors
//
// Each stored value (a Sibling) carries one dot, (actor, counter), naming
// the write that created it. A causal Context is a version vector plus a few
// exception dots not contiguous with it, and it stands for a set of dots:
// the writes someone has seen. A write made with context C supersedes
// exactly the siblings whose dots C covers; everything else survives as a
// concurrent sibling. This is the scheme of Preguiça et al., "Dotted Version
// Vectors: Logical Clocks for Optimistic Replication", and of Riak with
// dvv_enabled.
//
// # Why no sibling explosion
//
// With one plain vector clock per value, two clients writing one key
// through the same node with stale contexts keep producing clocks that
// neither dominates, and siblings pile up: every write is concurrent with
// every sibling the client did not see, including the old versions of the
// other client's value that were already superseded. A dot separates "which
// write is this value" from "what had the writer seen": the coordinator
// gives each write a fresh dot, and the write removes only the siblings its
// context covers. Two clients that each write with the context of their own
// previous PUT therefore leave exactly two siblings, their latest values
// (SPEC section 5), because each write removes its own client's previous
// value and nothing else.
//
// # Actors are node ids
//
// The actor of a dot is the replica that coordinated the write, never the
// client. A vector then has at most one entry per node that ever
// coordinated a write to the key, a small bounded number, whereas client
// actors grow without bound. Node-id actors are safe with dots because a
// coordinator mints each dot above every counter it has seen for itself,
// both in its stored Set and in the client's context, so two writes never
// share a dot even when they go through the same node. Entries of nodes
// removed for good can be dropped with Context.Prune or Set.Prune, under
// the safety rule documented there.
//
// # Tombstones and expiry
//
// A delete is a write like any other: its sibling has Tombstone set and an
// empty value, so it supersedes what its context covers and replicates and
// merges by the same rules, and a replica that missed the delete cannot
// resurrect the value. A TTL is an absolute expiry time, Sibling.Expires in
// unix nanoseconds, fixed by the coordinator, so every replica agrees on
// when a value dies regardless of when it received it. Set.Live filters
// tombstones and expired siblings out of reads; the set's Context still
// covers their dots, so a later write with a read context supersedes them.
// Removing them from disk is the store's job, after a grace period.
//
// All functions are pure: they never modify their arguments, and results
// may share unmodified slices with them.
package vclock
