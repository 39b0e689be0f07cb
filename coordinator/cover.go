package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// A blind write without the context read.
//
// SPEC section 5 asks that sequential blind writes through different nodes
// leave exactly the last value, so a blind write must supersede every write
// acknowledged before it started. The gather path (writeLocal) gets there
// by reading the key's context from R replicas first: R+W > N, so the read
// meets a replica of the previous write's quorum. That read is a third of a
// write's calls.
//
// coverBlindWrite gets there without it. The coordinating replica writes
// locally, superseding what it holds, and sends the new Set to the other
// replicas as a merge-covering (store.MergeCovering): a replica merges it
// only if the Set's context covers every write the replica holds for the
// key, and otherwise writes nothing and answers with its context. Only
// those covering merges, and the coordinator's own write, count towards W.
//
// Why that is enough. Let w1 be a write acknowledged before the blind write
// w2 started: w1 was durable on a set A1 of at least W replicas of the
// committed list before w2 began. w2 is acknowledged only when a set A2 of
// at least W replicas of the same list took it covering, each checking
// under the key's lock that w2's context covers what it held. canCover
// admits only lists where W+W > N, so A1 and A2 share a replica r; r held
// w1 (or a later state whose context covers w1's dot) when it checked w2,
// so w2's context covers w1's dot, and every merge anywhere drops w1 in
// w2's favour. If r is the coordinator itself, its local write superseded
// what it held, w1 included. TestABlindWriteCoversWhatOnlyItsPeersHold
// fails if the check is skipped.
//
// When a replica refuses the covering merge (it had seen a write the
// coordinator had not), or failures leave fewer than W replicas that can
// take it, the coordinator falls back to the gather path at once: it reads R replicas' contexts, adds what
// the refusing replicas answered, and writes again with a new dot whose
// context covers the first attempt, so the first attempt's Set, where it
// landed, is superseded by the second. A replica that refused a write that
// was acknowledged anyway is sent the Set as a plain merge (or a hint, if
// the merge fails), as the gather path would have: what it held and the
// write did not cover is concurrent with the write, not before it (the
// argument above), so keeping both as siblings is what SPEC section 5 asks.
//
// canCover keeps the argument's premises true and leaves everything else to
// the gather path: a ring in transition (two lists, joint quorums), a
// dead replica (its slot goes to a hint, whose holder has no history of the
// key to check against), W+W <= N, a coordinator outside the committed
// list, and Config.LocalBlindWrites or Config.GatherBlindWrites.

// canCover reports whether plan's blind write may skip the context read.
// W here is the write's own quorum and the node default's, the W the
// previous write was acknowledged with.
func (c *Coordinator) canCover(plan *writePlan, req WriteRequest) bool {
	if !req.Blind || c.cfg.LocalBlindWrites || c.cfg.GatherBlindWrites || plan.lists[1] != nil {
		return false
	}
	list, self := plan.lists[0], c.cluster.Self()
	n := len(list)
	if n < 2 || plan.need[0]+min(c.cfg.W, n) <= n || !inList(list, self) {
		return false
	}
	for _, id := range list {
		if id != self && !c.reachable(id) {
			return false
		}
	}
	return true
}

// coverAnswer is one replica's answer to a covering merge.
type coverAnswer struct {
	id      string
	covered bool
	held    vclock.Context // when not covered and err is nil
	err     error
}

// coverFollowUp tells the replicas that did not take a covering merge
// whether the write stands (deliver: merge it to them plainly) or is being
// written again by the gather path (leave them be: the second attempt goes
// to every replica).
type coverFollowUp struct {
	decided chan struct{}
	deliver bool // written before decided is closed
	once    sync.Once
	picker  *fallbackPicker
}

func (f *coverFollowUp) decide(deliver bool) {
	f.deliver = deliver
	close(f.decided)
}

// coverBlindWrite runs plan's blind write with covering merges. fallBack
// reports that fewer than W replicas took it covering: nothing is
// acknowledged, and learned is what the refusing replicas held, for the
// gather path to supersede too. Otherwise res and err are the write's
// outcome.
func (c *Coordinator) coverBlindWrite(ctx, rctx context.Context, plan *writePlan, req WriteRequest) (res WriteResult, fallBack bool, learned vclock.Context, err error) {
	self := c.cluster.Self()
	set, clientCtx, err := c.local.Write(req.DB, req.Key, self, store.Supersede{Blind: true}, req.Sibling)
	if err != nil {
		return WriteResult{}, false, vclock.Context{}, fmt.Errorf("coordinator: local write to db %d on %s: %w", req.DB, self, err)
	}
	tally := newWriteTally(plan)
	tally.record(self, true)
	follow := &coverFollowUp{decided: make(chan struct{})}
	answers := make(chan coverAnswer, len(plan.nodes))
	refused := false
	pending := c.newPendingCalls(len(plan.nodes))
	defer pending.stop()
	for _, id := range plan.nodes {
		pending.add(id)
	}
	c.fanOut(plan.nodes, self, func(ctx context.Context, id string) {
		covered, held, err := c.replicas.MergeCovering(ctx, id, req.DB, req.Key, set)
		answers <- coverAnswer{id, covered, held, err}
		if !covered {
			c.deliverUncovered(ctx, follow, plan, req, id, set, err != nil && !olderPeer(err))
		}
	}, func(id string) { answers <- coverAnswer{id: id, err: ErrClosed} })
	for {
		done, qerr := tally.outcome()
		switch {
		case done && qerr == nil:
			follow.decide(true)
			c.stats.coveredBlindWrites.Add(1)
			return WriteResult{Context: clientCtx}, false, vclock.Context{}, nil
		case (done || refused) && pastDeadline(rctx):
			// No time left to write again: indeterminate, and the Set
			// still goes to the others.
			follow.decide(true)
			if qerr == nil {
				qerr = tally.timedOut()
			}
			return WriteResult{}, false, vclock.Context{}, c.quorumFailed(qerr)
		case done || refused:
			follow.decide(false)
			c.stats.coverFallbacks.Add(1)
			return WriteResult{}, true, learned, nil
		}
		select {
		case <-pending.wait():
			if len(pending.fired()) > 0 {
				// A peer ran past its deadline with W not met: the gather
				// path hints around it, where waiting here could only
				// wait out its RPC timeout.
				refused = true
				c.stats.hedges.Add(1)
			}
		case a := <-answers:
			pending.done(a.id)
			switch {
			case olderPeer(a.err):
				// A node of a version before merge-covering, during a
				// rolling upgrade: it cannot check, so it counts as a
				// refusal (and gets a plain merge if the write stands).
				refused = true
			case a.err != nil:
				c.log.Debug("covering merge failed", zap.String("peer", a.id), zap.Error(a.err))
			case !a.covered:
				// This replica has seen a write the coordinator has not:
				// that is the case the gather path is for, and waiting for
				// the other peers' answers would only tie the write to the
				// slowest of them.
				learned, refused = learned.Merge(a.held), true
			}
			tally.record(a.id, a.err == nil && a.covered)
		case <-rctx.Done():
			// Indeterminate, as a gather-path write that times out: the
			// Set is on this replica, so it still goes to the others.
			follow.decide(true)
			if err := ctx.Err(); err != nil {
				return WriteResult{}, false, vclock.Context{}, fmt.Errorf("coordinator: write abandoned by the client: %w", err)
			}
			return WriteResult{}, false, vclock.Context{}, c.quorumFailed(tally.timedOut())
		}
	}
}

// deliverUncovered waits for the write's outcome and, if it stands, hands
// set to replica id, which refused it or failed, as the gather path's
// fan-out would: a plain merge to a replica that refused, a hint on a
// fallback node for one whose covering merge failed (it was just tried,
// with its retries: trying again would only hold the hint back).
func (c *Coordinator) deliverUncovered(ctx context.Context, f *coverFollowUp, plan *writePlan, req WriteRequest, id string, set vclock.Set, failed bool) {
	select {
	case <-f.decided:
	case <-ctx.Done():
		return
	}
	if !f.deliver {
		return
	}
	f.once.Do(func() {
		ring, _ := c.cluster.PreferenceLists(req.DB, req.Key, ringWalkLen)
		f.picker = newFallbackPicker(fallbackCandidates(ring, plan, c.reachable))
	})
	var hintNow map[string]string
	if failed {
		hintNow = map[string]string{id: f.picker.pick(id)}
	}
	if err := c.replicateOrHint(ctx, f.picker, hintNow, id, req.DB, req.Key, set); err != nil {
		c.log.Debug("replica missed a covered blind write", zap.String("peer", id), zap.Error(err))
	}
}

// pastDeadline reports whether ctx is done or past its deadline (its timer
// may not have fired yet: a peer's call with a later deadline can fail
// first).
func pastDeadline(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// olderPeer reports whether a covering merge failed because the peer does
// not know the call: a node of an older version answers an unknown call as
// a bad request. A real bad request (a key or database out of range) fails
// the plain merge the same way, which is the answer it deserves.
func olderPeer(err error) bool { return err != nil && errors.Is(err, rpc.ErrBadRequest) }
