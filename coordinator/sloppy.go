package coordinator

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/dynkv/dynkv/vclock"
	"go.uber.org/zap"
)

// Sloppy quorum (Dynamo section 4.6): a write whose preference-list node
// is unreachable goes to the next healthy node walking the ring clockwise
// beyond the list, as a hint naming the intended owner; the fallback's ack
// counts for the owner. The decisions are pure functions below; the
// coordinator's fan-out calls them.

// ringWalkLen asks Cluster.PreferenceLists for the whole ring: the first N
// entries are the preference list, the rest the fallbacks in clockwise
// order. PreferenceLists caps it at the member count.
const ringWalkLen = 1 << 16

// fallbackCandidates lists, in ring order, the nodes that may hold a hint
// for this write: beyond every node the write already goes to, alive now.
func fallbackCandidates(ring []string, plan *writePlan, alive func(string) bool) []string {
	var out []string
	for _, id := range ring {
		if plan.contains(id) || slices.Contains(out, id) || !alive(id) {
			continue
		}
		out = append(out, id)
	}
	return out
}

// fallbackPicker hands each missing owner its own fallback, in ring order,
// at most one per owner. Owners found dead before the fan-out are assigned
// first, in preference order (assignDead), so the choice is deterministic;
// owners whose merge fails later take the next free candidate.
type fallbackPicker struct {
	mu         sync.Mutex
	candidates []string
	assigned   map[string]string // owner -> fallback
	hinting    map[string]bool   // owners whose hint a caller claimed
}

func newFallbackPicker(candidates []string) *fallbackPicker {
	return &fallbackPicker{candidates: candidates, assigned: map[string]string{}}
}

// pick returns owner's fallback, choosing one if it has none yet; "" when
// every candidate is taken.
func (p *fallbackPicker) pick(owner string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pickLocked(owner)
}

func (p *fallbackPicker) pickLocked(owner string) string {
	if fb, ok := p.assigned[owner]; ok {
		return fb
	}
	if len(p.candidates) == 0 {
		return ""
	}
	fb := p.candidates[0]
	p.candidates = p.candidates[1:]
	p.assigned[owner] = fb
	return fb
}

// claim is pick for a caller about to store owner's hint: first is true
// for the first caller only, so that a merge that fails after a hedge
// already hinted around it (or the reverse) does not hint twice. "" when
// no candidate is free.
func (p *fallbackPicker) claim(owner string) (fb string, first bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fb = p.pickLocked(owner); fb == "" {
		return "", false
	}
	if p.hinting == nil {
		p.hinting = map[string]bool{}
	}
	first = !p.hinting[owner]
	p.hinting[owner] = true
	return fb, first
}

// assignDead picks fallbacks for the owners the failure detector already
// reports dead, in the order of nodes, and returns them as owner ->
// fallback ("" when none is left). An owner that gossip says is alive but
// whose calls keep failing (unreachable) gets one too, unless none is free:
// then it is merged to anyway, as there is nothing better to do.
func (p *fallbackPicker) assignDead(nodes []string, self string, alive, unreachable func(string) bool) map[string]string {
	out := map[string]string{}
	for _, id := range nodes {
		switch {
		case id == self:
		case !alive(id):
			out[id] = p.pick(id)
		case unreachable(id):
			if fb := p.pick(id); fb != "" {
				out[id] = fb
			}
		}
	}
	return out
}

// replicateOrHint delivers the write's new Set to replica id: a merge when
// the failure detector says id is alive, else (or when the merge fails) a
// hint on id's fallback. The result is id's answer for the quorum: a
// stored hint acknowledges for its owner.
func (c *Coordinator) replicateOrHint(ctx context.Context, picker *fallbackPicker, deadFallback map[string]string, id string, db int, key []byte, set vclock.Set) error {
	fb, dead := deadFallback[id]
	if !dead {
		err := c.replicas.Merge(ctx, id, db, key, set)
		if err == nil || ctx.Err() != nil {
			return err
		}
		var first bool
		fb, first = picker.claim(id)
		if fb == "" {
			c.keepHint(ctx, id, db, key, set)
			return fmt.Errorf("coordinator: merge to %s failed and no fallback node is free: %w", id, err)
		}
		if !first {
			// A hedge is already storing the hint (hedgeWrite).
			return err
		}
		c.log.Debug("merge failed, hinting on a fallback", zap.String("peer", id), zap.String("fallback", fb), zap.Error(err))
	} else if fb == "" {
		c.keepHint(ctx, id, db, key, set)
		return fmt.Errorf("coordinator: replica %s is down and no fallback node is free", id)
	}
	if err := c.replicas.Hint(ctx, fb, id, db, key, set); err != nil {
		c.stats.hintFailures.Add(1)
		return fmt.Errorf("coordinator: hint for %s on fallback %s: %w", id, fb, err)
	}
	c.stats.hinted.Add(1)
	return nil
}

// keepHint stores the write as a hint on this node when no node beyond the
// lists can take it (a cluster of about N nodes has none). It does not
// count toward W, since this node already acknowledged for itself, but the
// owner still receives the write when it returns instead of waiting for
// anti-entropy.
func (c *Coordinator) keepHint(ctx context.Context, owner string, db int, key []byte, set vclock.Set) {
	if err := c.replicas.Hint(ctx, c.cluster.Self(), owner, db, key, set); err != nil {
		c.stats.hintFailures.Add(1)
		c.log.Debug("keeping a hint locally failed", zap.String("peer", owner), zap.Error(err))
		return
	}
	c.stats.hinted.Add(1)
}
