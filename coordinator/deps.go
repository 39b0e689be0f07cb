package coordinator

import (
	"context"

	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// Cluster is what the coordinator needs from membership: its own id, a
// key's preference lists in one consistent snapshot of the ring, and
// liveness for choosing where to forward a write.
type Cluster interface {
	Self() string
	// PreferenceLists returns the key's preference list of length n (capped
	// at the member count) in the committed ring, and in the target ring
	// when a transition is pending (nil otherwise). An empty committed list
	// means this node has no ring yet.
	PreferenceLists(db int, key []byte, n int) (committed, target []string)
	// Alive reports whether the failure detector currently considers id
	// alive (neither suspect nor dead).
	Alive(id string) bool
}

// Replicas reaches the replicas of a key by node id: the local store for
// this node, RPC for the others (rpc.Replicas).
type Replicas interface {
	Get(ctx context.Context, id string, db int, key []byte) (vclock.Set, bool, error)
	Merge(ctx context.Context, id string, db int, key []byte, s vclock.Set) error
	// MergeCovering merges s into id's state of the key only if s's
	// context covers every write id holds for it (store.MergeCovering);
	// otherwise it writes nothing and returns id's context.
	MergeCovering(ctx context.Context, id string, db int, key []byte, s vclock.Set) (covered bool, held vclock.Context, err error)
	Coordinate(ctx context.Context, id string, req WriteRequest) (WriteResult, error)
	// Hint stores s on node id as a hint for owner, an unreachable replica
	// (sloppy quorum).
	Hint(ctx context.Context, id, owner string, db int, key []byte, s vclock.Set) error
}

// Local is the coordinating replica's own store (store.Store).
type Local interface {
	Write(db int, key []byte, actor string, sup store.Supersede, sib vclock.Sibling) (vclock.Set, vclock.Context, error)
	// Increment adds delta to actor's share of the key's counter, after
	// merging base, what a quorum of the key's replicas holds.
	Increment(db int, key []byte, actor string, base vclock.Set, delta int64) (vclock.Set, error)
}
