package antientropy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/internal/defaults"
	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/replication/handoff"
	"github.com/dynkv/dynkv/vclock"
)

// DefaultTombstoneGCTimeout bounds one CanDropTombstone decision when
// TombstoneGCConfig.Timeout is zero (the default --rpc-timeout).
const DefaultTombstoneGCTimeout = 2 * time.Second

// TombstoneReplicas reads one node's copy of a key: the local store for the
// node itself, an RPC otherwise. *rpc.Replicas is one.
type TombstoneReplicas interface {
	Get(ctx context.Context, id string, db int, key []byte) (vclock.Set, bool, error)
}

// TombstoneGCConfig configures a TombstoneGC. Self, Placement and Replicas
// are required.
type TombstoneGCConfig struct {
	Self string
	// N is the replica count before capping at the ring's member count.
	N int
	// Placement is the current ring snapshot (membership.Placement).
	Placement func() membership.Placement
	// Alive reports whether the failure detector sees node id alive; a
	// replica that is not is not asked (it could not answer within the
	// timeout) and the answer is no. Nil asks every replica.
	Alive    func(id string) bool
	Replicas TombstoneReplicas
	// Timeout bounds one decision, all replicas asked in parallel
	// (--rpc-timeout).
	Timeout time.Duration
	// Now is the clock that decides what is live (expired values are not).
	Now    func() time.Time
	Logger *zap.Logger
}

// TombstoneGC decides, for the store's reclaimer, whether a key holding
// only old tombstones may be dropped: Dynamo keeps a delete marker until
// every replica holds it, because a replica that missed the delete and
// still holds the value would otherwise bring it back through read repair,
// hints or anti-entropy once nothing covers it any more.
//
// It answers yes only when, with no ring transition pending, every node of
// the key's committed preference list (all N, this node included by its
// local store) answers within the timeout, and each answer is either
// not-found (a replica that never had the key, or already reaped it) or a
// state holding nothing live and no sibling the local state lacks: the
// replica has the same tombstones. (Checking only that merging the answer
// into the local state adds nothing live is not enough: a stale replica's
// old value is covered by the local context and vanishes from the merge,
// but once the local copy is dropped nothing covers it.) A pending transition answers no, since the key's replicas are
// about to change and the new ones may still be receiving it.
//
// What it does not cover: a replica that answers not-found because it
// never received the key may still be sent the old value later by a hint
// a fallback node holds for it. Hints are delivered as soon as the owner
// is back, so a grace longer than any outage (the default 24h) makes that
// window theoretical; Riak accepts the same trade.
type TombstoneGC struct {
	cfg TombstoneGCConfig
	log *zap.Logger

	asked, agreed atomic.Uint64
}

// TombstoneGCStats counts decisions since start.
type TombstoneGCStats struct {
	Asked  uint64 // CanDropTombstone calls
	Agreed uint64 // of which answered yes
}

// NewTombstoneGC checks cfg and applies defaults.
func NewTombstoneGC(cfg TombstoneGCConfig) (*TombstoneGC, error) {
	var errs []error
	if cfg.Self == "" {
		errs = append(errs, errors.New("Self is empty"))
	}
	if cfg.Placement == nil {
		errs = append(errs, errors.New("Placement is nil"))
	}
	if cfg.Replicas == nil {
		errs = append(errs, errors.New("Replicas is nil"))
	}
	if cfg.N < 0 || cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("N %d and Timeout %s must not be negative", cfg.N, cfg.Timeout))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("replication: tombstone GC config: %w", errors.Join(errs...))
	}
	defaults.Set(&cfg.N, handoff.DefaultHandoffN)
	defaults.Set(&cfg.Timeout, DefaultTombstoneGCTimeout)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &TombstoneGC{cfg: cfg, log: cfg.Logger}, nil
}

// Stats returns the decision counters.
func (g *TombstoneGC) Stats() TombstoneGCStats {
	return TombstoneGCStats{Asked: g.asked.Load(), Agreed: g.agreed.Load()}
}

// CanDropTombstone is the store's Options.CanDropTombstone hook (see the
// type's comment). It blocks for at most the configured timeout.
func (g *TombstoneGC) CanDropTombstone(db int, key []byte) bool {
	g.asked.Add(1)
	ok, why := g.decide(db, key)
	if !ok {
		g.log.Debug("tombstone kept", zap.Int("db", db), zap.Int("key_len", len(key)), zap.String("reason", why))
		return false
	}
	g.agreed.Add(1)
	return true
}

func (g *TombstoneGC) decide(db int, key []byte) (bool, string) {
	p := g.cfg.Placement()
	if p.Committed == nil || p.Committed.Len() == 0 {
		return false, "no committed ring"
	}
	if p.Target != nil {
		return false, "ring transition pending"
	}
	ids := p.Committed.PreferenceList(p.Partition(db, key), g.cfg.N)
	if !slices.Contains(ids, g.cfg.Self) {
		// A stray copy: compare with the owners all the same, from the
		// local state.
		ids = append(slices.Clone(ids), g.cfg.Self)
	}
	for _, id := range ids {
		if id != g.cfg.Self && g.cfg.Alive != nil && !g.cfg.Alive(id) {
			return false, "replica " + id + " is not alive"
		}
	}
	answers := g.ask(ids, db, key)
	var local replicaAnswer
	for _, a := range answers {
		if a.id == g.cfg.Self {
			local = a
		}
	}
	return tombstoneDroppable(local, answers, g.cfg.Now().UnixNano())
}

// replicaAnswer is one node's copy of a key, or why it gave none.
type replicaAnswer struct {
	id    string
	set   vclock.Set
	found bool
	err   error
}

// ask reads the key from every id in parallel, within the timeout. Every
// goroutine it starts has returned when it does.
func (g *TombstoneGC) ask(ids []string, db int, key []byte) []replicaAnswer {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
	defer cancel()
	answers := make([]replicaAnswer, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			set, found, err := g.cfg.Replicas.Get(ctx, id, db, key)
			answers[i] = replicaAnswer{id: id, set: set, found: found, err: err}
		})
	}
	wg.Wait()
	return answers
}

// tombstoneDroppable is the decision, pure: local is this node's own
// answer, answers every replica's (local's among them). It returns the
// reason for a no.
func tombstoneDroppable(local replicaAnswer, answers []replicaAnswer, now int64) (bool, string) {
	if local.err != nil {
		return false, fmt.Sprintf("reading the local copy: %v", local.err)
	}
	if !local.found || len(local.set.Siblings) == 0 {
		return false, "no local tombstone (already dropped)"
	}
	if len(local.set.Live(now)) > 0 {
		return false, "the local copy holds a live value"
	}
	for _, a := range answers {
		if a.err != nil {
			return false, fmt.Sprintf("replica %s did not answer: %v", a.id, a.err)
		}
		if !a.found {
			continue
		}
		if sib, ok := notCaughtUp(local.set, a.set, now); ok {
			return false, fmt.Sprintf("replica %s holds %s that the local tombstones do not match", a.id, describe(sib))
		}
	}
	return true, ""
}

// notCaughtUp returns a sibling of remote showing that the replica has
// not caught up with the local tombstones: a live one, or one the local
// state does not hold. Merging alone would not show it: the local context
// covers the old value a stale replica still holds, so the merge drops it,
// yet once the local copy is gone nothing covers it any more. An expired
// value whose tombstone twin is local is caught up (it is dead, and its own
// reclaimer buries it).
func notCaughtUp(local, remote vclock.Set, now int64) (vclock.Sibling, bool) {
	for _, x := range remote.Siblings {
		if x.Live(now) {
			return x, true
		}
		if _, held := slices.BinarySearchFunc(local.Siblings, x.Dot, func(s vclock.Sibling, d vclock.Dot) int {
			return compareDots(s.Dot, d)
		}); !held {
			return x, true
		}
	}
	return vclock.Sibling{}, false
}

func compareDots(a, b vclock.Dot) int {
	switch {
	case a.Actor < b.Actor:
		return -1
	case a.Actor > b.Actor:
		return 1
	case a.Counter < b.Counter:
		return -1
	case a.Counter > b.Counter:
		return 1
	}
	return 0
}

func describe(s vclock.Sibling) string {
	kind := "a value"
	if s.Tombstone {
		kind = "a tombstone"
	}
	return fmt.Sprintf("%s with dot %s:%d", kind, s.Dot.Actor, s.Dot.Counter)
}
