// Package coordinator runs a client request's life on any node of a dynkv
// cluster, as in Dynamo: find the key's preference list, hand a write to a
// replica in it, fan the write or read out to the list, wait for W acks or R
// answers, merge the answers (dominated versions dropped, concurrent
// siblings kept) and read-repair the replicas that answered with a stale
// version, off the client's path.
//
// The decisions (which replicas, how many acks each list needs, when a
// request has succeeded or can no longer succeed, what to repair) are pure
// functions in quorum.go; the code that sends and waits is a thin layer
// around them.
//
// # Where a write is coordinated
//
// A write is coordinated by a replica of its key, so its new version is
// minted by a node that holds the key's history. A node outside the
// committed preference list forwards it to the first live replica, moving
// to the next only when the write certainly did not land there (unreachable,
// not ready, not a replica any more); the replica never forwards again, so
// a write makes at most one hop.
//
// # Joint quorum during a ring transition
//
// While the ring moves from a committed member set to a target set, a write
// needs min(W, |C|) acks from the committed preference list C and
// min(W, |T|) from the target list T. Reads ask C only: the write is
// readable in the ring in force now, and in the target ring once it is
// committed, with no window in between.
//
// # Blind writes
//
// A write without a context supersedes what its coordinating replica
// holds (SPEC section 5). A replica that was not among the W that acked the
// previous write may not hold it yet, so by default the coordinator first
// gathers the key's context from R replicas of C; since R+W > N that read
// meets at least one replica of the previous write's quorum, and sequential
// blind writes through different nodes leave exactly the last value.
// Config.LocalBlindWrites skips that round trip.
//
// # Writes with a context
//
// A write with a client context (WriteRequest.Blind false) supersedes
// exactly what the context covers; the empty context of a 404 covers
// nothing, so two clients that create a key from a 404 leave two siblings.
// A client context is not trusted to claim writes that were never made:
// when it covers writes the coordinating replica has not seen, the
// coordinator asks the nodes that would have minted them, and the store
// cuts the claims of those that answered to what exists (writeLocal, vouch,
// store.Supersede), so a forged context cannot supersede writes that have
// not happened yet; the claims of a node that cannot answer are kept.
//
// # Sloppy quorum
//
// A replica of the write that the failure detector reports dead, or whose
// merge fails, is replaced by the next healthy node walking the ring
// clockwise beyond every list the write goes to (sloppy.go; Dynamo section
// 4.6). That fallback stores the new Set as a hint naming the intended
// owner (replication's hint call) and its ack counts for the owner, in
// every list the owner belongs to. Each missing owner gets at most one
// fallback; owners already dead when the write starts are assigned first,
// in preference order, so the choice is deterministic. With no fallback
// free (a cluster of about N nodes) the slot fails, and the coordinator
// keeps the hint itself without counting it, so the owner still receives
// the write when it returns. Reads ask the primaries only; a write is
// still coordinated by a live primary, or fails with 503.
package coordinator
