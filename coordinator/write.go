package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
	"go.uber.org/zap"
)

// Put runs a client write (a delete is a Put of a tombstone sibling). When
// this node is a replica of the key in the committed ring it coordinates
// the write itself; otherwise it hands the write to the first live replica
// that accepts it. It returns the context for the client, a *QuorumError
// when W acks were not reached (the write is then indeterminate), or the
// local store's error when this node coordinated and its own write failed
// (nothing was acknowledged anywhere).
func (c *Coordinator) Put(ctx context.Context, req WriteRequest) (WriteResult, error) {
	c.stats.writes.Add(1)
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	plan, err := c.planWrite(req)
	if err != nil {
		return WriteResult{}, err
	}
	if inList(plan.lists[0], c.cluster.Self()) {
		return c.coordinate(ctx, &plan, req)
	}
	return c.forward(ctx, &plan, req)
}

// CoordinateLocal runs a write another node forwarded here (the RPC
// server's coordinate call). It writes locally when this node is a replica
// of the key in either ring and never forwards again, so a write makes at
// most one hop; otherwise it fails with ErrNotReplica and the sender tries
// the next replica.
func (c *Coordinator) CoordinateLocal(ctx context.Context, req WriteRequest) (WriteResult, error) {
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	plan, err := c.planWrite(req)
	if err != nil {
		return WriteResult{}, err
	}
	if !plan.contains(c.cluster.Self()) {
		return WriteResult{}, fmt.Errorf("coordinator: write to db %d forwarded to %s: %w", req.DB, c.cluster.Self(), ErrNotReplica)
	}
	return c.coordinate(ctx, &plan, req)
}

func (c *Coordinator) planWrite(req WriteRequest) (writePlan, error) {
	if c.isClosed() {
		return writePlan{}, ErrClosed
	}
	w, err := resolveQuorum(req.W, c.cfg.W, c.cfg.N)
	if err != nil {
		return writePlan{}, err
	}
	committed, target := c.cluster.PreferenceLists(req.DB, req.Key, c.cfg.N)
	if len(committed) == 0 {
		return writePlan{}, ErrNoRing
	}
	return planWrite(committed, target, w), nil
}

// mergeResult is one replica's answer to a write's merge.
type mergeResult struct {
	id  string
	err error
}

// coordinate is the write at a replica of the key: durable locally first,
// then merged to every other replica of both lists in parallel. It returns
// as soon as the joint quorum is decided; the merges still in flight finish
// in the background.
func (c *Coordinator) coordinate(ctx context.Context, plan *writePlan, req WriteRequest) (WriteResult, error) {
	self := c.cluster.Self()
	rctx, cancel := c.requestContext(ctx)
	defer cancel()

	var learned vclock.Context
	if !req.Counter && c.canCover(plan, req) {
		res, fallBack, held, err := c.coverBlindWrite(ctx, rctx, plan, req)
		if !fallBack {
			return res, err
		}
		learned = held
	}
	var (
		set       vclock.Set
		clientCtx vclock.Context
		value     int64
		err       error
	)
	if req.Counter {
		set, value, err = c.incrementLocal(ctx, rctx, plan, req)
	} else {
		set, clientCtx, err = c.writeLocal(ctx, rctx, plan, req, learned)
	}
	if err != nil {
		return WriteResult{}, err
	}
	tally := newWriteTally(plan)
	tally.record(self, true)

	// Sloppy quorum (sloppy.go): a replica that is down or fails gets a
	// hint on a fallback node instead, and so does one that runs past its
	// per-call deadline while the write is short of W (health.go).
	ring, _ := c.cluster.PreferenceLists(req.DB, req.Key, ringWalkLen)
	picker := newFallbackPicker(fallbackCandidates(ring, plan, c.reachable))
	deadFallback := picker.assignDead(plan.nodes, self, c.cluster.Alive, c.health.unreachable)
	// Room for a hedge's answer beside each merge's.
	results := make(chan mergeResult, 2*len(plan.nodes))
	pending := c.newPendingCalls(len(plan.nodes))
	defer pending.stop()
	for _, id := range plan.nodes {
		if _, dead := deadFallback[id]; !dead {
			pending.add(id)
		}
	}
	// hedged lists the replicas with a hedge's hint running beside their
	// merge: a replica's failure counts only when both failed.
	var hedged []string
	c.fanOut(plan.nodes, self, func(ctx context.Context, id string) {
		results <- mergeResult{id, c.replicateOrHint(ctx, picker, deadFallback, id, req.DB, req.Key, set)}
	}, func(id string) { results <- mergeResult{id, ErrClosed} })
	for {
		if done, qerr := tally.outcome(); done {
			if qerr != nil {
				return WriteResult{}, c.quorumFailed(qerr)
			}
			return WriteResult{Context: clientCtx, Value: value}, nil
		}
		select {
		case r := <-results:
			pending.done(r.id)
			if r.err != nil {
				c.log.Debug("replica merge failed", zap.String("peer", r.id), zap.Error(r.err))
				if i := slices.Index(hedged, r.id); i >= 0 {
					hedged = slices.Delete(hedged, i, i+1)
					continue // the other delivery may still answer for it
				}
			}
			tally.record(r.id, r.err == nil)
		case <-pending.wait():
			for _, id := range pending.fired() {
				if c.hedgeWrite(picker, results, id, req.DB, req.Key, set) {
					hedged = append(hedged, id)
				}
			}
		case <-rctx.Done():
			if err := ctx.Err(); err != nil {
				return WriteResult{}, fmt.Errorf("coordinator: write abandoned by the client: %w", err)
			}
			return WriteResult{}, c.quorumFailed(tally.timedOut())
		}
	}
}

// hedgeWrite stores replica id's share of a write as a hint on a fallback
// node while its merge is still running past the peer's deadline: the
// hint acknowledges for it, so a replica that stopped answering costs the
// write its deadline, not the RPC timeout. The merge goes on; if it lands
// too, the hint's delivery later changes nothing (merges are idempotent).
// It reports false when no fallback is free, or the merge already failed
// and hinted.
func (c *Coordinator) hedgeWrite(picker *fallbackPicker, results chan<- mergeResult, id string, db int, key []byte, set vclock.Set) bool {
	fb, first := picker.claim(id)
	if fb == "" || !first {
		return false
	}
	started := c.spawn(func(ctx context.Context) {
		err := c.replicas.Hint(ctx, fb, id, db, key, set)
		if err != nil {
			c.stats.hintFailures.Add(1)
			err = fmt.Errorf("coordinator: hedged hint for %s on fallback %s: %w", id, fb, err)
		} else {
			c.stats.hinted.Add(1)
		}
		results <- mergeResult{id, err}
	})
	if started {
		c.stats.hedges.Add(1)
	}
	return started
}

// requestContext bounds a write this node coordinates: RequestTimeout,
// and, when the caller has a deadline (a write forwarded here carries the
// forwarder's), that deadline less a margin, so the verdict (a
// QuorumError with its counts, or success) reaches the caller before it
// gives up on the call.
func (c *Coordinator) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	now := c.cfg.Now()
	deadline := now.Add(c.cfg.RequestTimeout)
	if dl, ok := ctx.Deadline(); ok {
		margin := min(max(dl.Sub(now)/10, minReplyMargin), maxReplyMargin)
		deadline = minTime(deadline, dl.Add(-margin))
	}
	return context.WithDeadline(ctx, deadline)
}

// The margin a forwarded write's coordinator keeps for its answer's trip
// back: a tenth of the time left, within these bounds.
const (
	minReplyMargin = 10 * time.Millisecond
	maxReplyMargin = 250 * time.Millisecond
)

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// writeLocal applies the write to this replica's store, the first and
// durable step of coordinating it.
//
// A blind write first gathers the key's context from R replicas, so that it
// supersedes what a quorum holds, and what the replicas that refused a
// covering merge of it (coverBlindWrite) held: learned. A write with a client context supersedes
// exactly what the context covers, clamped to what the replicas hold: when
// the context covers writes this replica has not seen (it missed them, or
// the context is forged), the replica learns the others' contexts and
// writes again, and what no replica answering holds is dropped from the
// context (store.Supersede).
func (c *Coordinator) writeLocal(ctx, rctx context.Context, plan *writePlan, req WriteRequest, learned vclock.Context) (vclock.Set, vclock.Context, error) {
	self := c.cluster.Self()
	peers := len(plan.lists[0]) > 1
	sup := store.Supersede{Blind: req.Blind, Context: req.Context, Strict: peers}
	if req.Blind {
		sup.Context = vclock.Context{}
		if !c.cfg.LocalBlindWrites && peers {
			gathered, err := c.gatherState(rctx, plan.lists[0], req.DB, req.Key)
			if err != nil {
				return vclock.Set{}, vclock.Context{}, c.gatherFailed(ctx, plan, err)
			}
			sup.Context = gathered.Context.Merge(learned)
		}
	}
	set, clientCtx, err := c.local.Write(req.DB, req.Key, self, sup, req.Sibling)
	if ahead, ok := errors.AsType[*store.ContextAheadError](err); ok {
		c.stats.contextsAhead.Add(1)
		sup.Known, sup.Strict = c.vouch(rctx, plan.lists[0], req, ahead.Held), false
		set, clientCtx, err = c.local.Write(req.DB, req.Key, self, sup, req.Sibling)
	}
	if err != nil {
		return vclock.Set{}, vclock.Context{}, fmt.Errorf("coordinator: local write to db %d on %s: %w", req.DB, self, err)
	}
	return set, clientCtx, nil
}

// incrementLocal adds the increment to this replica's share of the
// counter, the first and durable step of coordinating it, and returns the
// new state and the counter's value in it.
//
// It first reads the key's state from R replicas, this one among them
// (gatherState), and the store merges it in before it adds: this
// replica's own share is normally its latest (only this node increments
// it, under the key's lock, and its store is durable), but a replica that
// lost its copy, or handed it off and got it back stale, would otherwise
// build on an old share, and the new share would replace increments it
// had acknowledged. Any R replicas meet the W that acknowledged the last
// of them. LocalBlindWrites does not skip the read: it trades only the
// supersede rule of blind writes, never a counter's increments.
func (c *Coordinator) incrementLocal(ctx, rctx context.Context, plan *writePlan, req WriteRequest) (vclock.Set, int64, error) {
	self := c.cluster.Self()
	var base vclock.Set
	if len(plan.lists[0]) > 1 {
		gathered, err := c.gatherState(rctx, plan.lists[0], req.DB, req.Key)
		if err != nil {
			return vclock.Set{}, 0, c.gatherFailed(ctx, plan, err)
		}
		base = gathered
	}
	set, err := c.local.Increment(req.DB, req.Key, self, base, req.Delta)
	if err != nil {
		return vclock.Set{}, 0, fmt.Errorf("coordinator: local increment of db %d on %s: %w", req.DB, self, err)
	}
	value, _, err := set.CounterValue()
	if err != nil {
		return vclock.Set{}, 0, fmt.Errorf("coordinator: local increment of db %d on %s: %w", req.DB, self, err)
	}
	return set, value, nil
}

// vouch decides how much of a client context that covers writes this
// replica does not hold (held) to believe, and returns it as the
// Supersede.Known of the write.
//
// Only the actor that minted a dot knows for sure whether it exists: a
// replica's store holds every write it coordinated, before it answered the
// client. So vouch asks each actor the context claims too much of, and the
// key's other replicas, for their state of the key. The claims of an actor
// that answered are cut to what the answers hold: that is how a forged
// counter (2^64-1 for every node) is dropped before it can supersede writes
// that have not happened yet. The claims of an actor that did not answer
// (down, partitioned, slow, or not a member at all) are kept as the client
// sent them: they may be real writes still replicating, and dropping them
// would undo an acknowledged write or delete the client saw, which is worse
// than trusting an unverifiable claim. Actors the failure detector reports
// down are not asked, and the wait is bounded by a few hedges, so a write
// stalls for no peer.
func (c *Coordinator) vouch(ctx context.Context, list []string, req WriteRequest, held vclock.Context) vclock.Context {
	self := c.cluster.Self()
	excess := req.Context.ActorsBeyond(held)
	ask := slices.DeleteFunc(slices.Clone(list), func(id string) bool { return id == self || !c.reachable(id) })
	for _, a := range excess {
		if a != self && !slices.Contains(ask, a) && c.reachable(a) {
			ask = append(ask, a)
		}
	}
	vctx, cancel := context.WithTimeout(ctx, vouchHedges*c.cfg.GatherHedge)
	defer cancel()
	answers := make(chan readAnswer, len(ask))
	c.fanOutGetsTo(answers, ask, req.DB, req.Key)
	known := held
	answered := map[string]bool{self: true}
	pendingActors := 0
	for _, a := range excess {
		if slices.Contains(ask, a) {
			pendingActors++
		}
	}
	for outstanding := len(ask); outstanding > 0 && pendingActors > 0; outstanding-- {
		select {
		case a := <-answers:
			if a.err != nil {
				continue
			}
			answered[a.id] = true
			known = known.Merge(a.set.Context)
			if slices.Contains(excess, a.id) {
				pendingActors--
			}
		case <-vctx.Done():
			outstanding = 0
		}
	}
	unverified := req.Context.Prune(func(actor string) bool { return answered[actor] })
	return known.Merge(unverified)
}

// vouchHedges bounds vouch's wait in GatherHedges: long enough for a loaded
// peer's answer, short enough that a peer the failure detector has not yet
// declared dead delays the write by a fraction of a second, not an RPC
// timeout. A late answer only means a claim is kept unverified.
const vouchHedges = 10

// gatherFailed is the error of a write whose context read failed. Nothing
// is written yet: fail cleanly rather than leave a write that can no longer
// be acknowledged.
func (c *Coordinator) gatherFailed(ctx context.Context, plan *writePlan, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("coordinator: write abandoned by the client: %w", ctx.Err())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return c.quorumFailed(&QuorumError{Needed: plan.need[0], Acked: 0})
	}
	return err
}

// gatherState reads the key's state (its merged context, and for an
// increment its counter shares) from R replicas of the committed
// list, this node's own store always among them (a blind write supersedes
// at least what its coordinator holds, as SPEC section 5 says), so that it
// supersedes every write a quorum acknowledged, not only what this replica
// happens to hold: any R replicas overlap the W that acknowledged it.
//
// It asks only this node and R-1 peers (live ones first) rather than the
// whole list: the answers beyond R were thrown away, and on a loaded
// cluster those extra round trips were a sixth of all RPC work. A peer
// that fails is replaced by the next replica at once, and peers that have
// not answered within GatherHedge are backed up by all the remaining
// replicas, so a stalled peer delays a write by the hedge, not by the RPC
// timeout. Other replicas are best effort: with fewer answers the write
// supersedes less, as a plain blind write would. It fails when the local
// read fails or time runs out.
func (c *Coordinator) gatherState(ctx context.Context, committed []string, db int, key []byte) (vclock.Set, error) {
	self := c.cluster.Self()
	ask := committed
	if !inList(committed, self) {
		// A replica of the target ring only (a joining node): its own
		// state counts too.
		ask = append(slices.Clip(committed), self)
	}
	tally := newReadTally(c.cfg.R, len(ask))
	answers := make(chan readAnswer, len(ask))
	// The peers in the order they are asked: live ones first.
	peers := c.routeOrder(slices.DeleteFunc(slices.Clone(ask), func(id string) bool { return id == self }))
	first := min(tally.need-1, len(peers))
	calls := c.newPendingCalls(len(ask))
	defer calls.stop()
	send := func(ids []string) {
		for _, id := range ids {
			calls.add(id)
		}
		c.fanOutGetsTo(answers, ids, db, key)
	}
	send(append([]string{self}, peers[:first]...))
	pending := peers[first:]
	outstanding := 1 + first
	var hedge <-chan time.Time
	if len(pending) > 0 {
		t := time.NewTimer(c.cfg.GatherHedge)
		defer t.Stop()
		hedge = t.C
	}
	selfDone := false
	for outstanding > 0 {
		if done, _ := tally.outcome(); done && selfDone {
			break
		}
		select {
		case a := <-answers:
			outstanding--
			calls.done(a.id)
			if a.id == self {
				if a.err != nil {
					return vclock.Set{}, fmt.Errorf("coordinator: reading the key's state on %s: %w", self, a.err)
				}
				selfDone = true
			} else if a.err != nil && len(pending) > 0 {
				send(pending[:1])
				pending, outstanding = pending[1:], outstanding+1
			}
			tally.record(a)
		case <-hedge:
			hedge = nil
			send(pending)
			pending, outstanding = nil, outstanding+len(pending)
		case <-calls.wait():
			calls.fired()
			if selfDone && len(pending) == 0 && calls.allGone(giveUpAfter) {
				// Every peer still asked is past its deadline and
				// unreachable, or has kept the write waiting giveUpAfter:
				// as if they had failed (their RPC timeouts would fail
				// them), the write supersedes what the answers hold (best
				// effort, as above).
				c.stats.hedges.Add(1)
				return tally.merged, nil
			}
		case <-ctx.Done():
			return vclock.Set{}, ctx.Err()
		}
	}
	return tally.merged, nil
}

// errStoppedAnswering: a forwarded write's coordinator became unreachable
// (health.go) while the write was with it.
var errStoppedAnswering = errors.New("the coordinating replica stopped answering while it held the write")

// forwardTo hands the write to replica id and waits for its verdict, or
// until id has held it for giveUpAfter and is unreachable by then (its
// calls keep failing, or gossip says it is down): a write that may have
// been applied cannot be sent elsewhere, but the client need not wait
// out the request timeout to learn that it is indeterminate. The watch
// is a timer that first fires after giveUpAfter, so a forward answered
// within it costs no goroutine.
func (c *Coordinator) forwardTo(ctx context.Context, id string, req WriteRequest) (WriteResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Once giveUpAfter has passed, check every recheckLate until the
	// call returns (its deferred cancel ends the chain).
	var check func()
	check = func() {
		switch {
		case ctx.Err() != nil:
		case !c.reachable(id):
			cancel(errStoppedAnswering)
		default:
			time.AfterFunc(recheckLate, check)
		}
	}
	watch := time.AfterFunc(giveUpAfter, check)
	defer watch.Stop()
	res, err := c.replicas.Coordinate(ctx, id, req)
	if err != nil && errors.Is(context.Cause(ctx), errStoppedAnswering) {
		return WriteResult{}, fmt.Errorf("%w (%v)", errStoppedAnswering, err)
	}
	return res, err
}

// forward hands the write to a replica of the committed list: the live
// ones first in preference order, then the others in case the failure
// detector is behind. It moves on only when a replica certainly did not
// apply the write (tryNext): a write delivered twice would mint two dots and
// become a sibling of itself.
func (c *Coordinator) forward(ctx context.Context, plan *writePlan, req WriteRequest) (WriteResult, error) {
	c.stats.forwards.Add(1)
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	var lastErr error
	candidates := c.routeOrder(plan.lists[0])
	for _, id := range candidates {
		res, err := c.forwardTo(rctx, id, req)
		if err == nil {
			return res, nil
		}
		var qerr *QuorumError
		switch {
		case errors.As(err, &qerr):
			c.stats.quorumFailures.Add(1)
			return WriteResult{}, fmt.Errorf("coordinator: write forwarded to %s: %w", id, err)
		case errors.Is(err, errStoppedAnswering):
			// Possibly applied: indeterminate, and not sent elsewhere.
			c.stats.quorumFailures.Add(1)
			return WriteResult{}, fmt.Errorf("coordinator: write forwarded to %s: %w: %w", id, err,
				&QuorumError{Needed: plan.need[0], Acked: 0})
		case ctx.Err() != nil:
			return WriteResult{}, fmt.Errorf("coordinator: write abandoned by the client: %w", ctx.Err())
		case rctx.Err() != nil:
			// Timed out with the write possibly applied: indeterminate, as a
			// quorum failure is.
			c.stats.quorumFailures.Add(1)
			return WriteResult{}, fmt.Errorf("coordinator: write forwarded to %s timed out (%v): %w", id, err,
				&QuorumError{Needed: plan.need[0], Acked: 0})
		case !tryNext(err):
			return WriteResult{}, fmt.Errorf("coordinator: write forwarded to %s: %w", id, err)
		}
		c.log.Debug("replica could not take the write, trying the next", zap.String("peer", id), zap.Error(err))
		lastErr = fmt.Errorf("%s: %w", id, err)
	}
	c.stats.quorumFailures.Add(1)
	return WriteResult{}, fmt.Errorf("coordinator: no replica of the key took the write (%d tried, last %v): %w",
		len(candidates), lastErr, &QuorumError{Needed: plan.need[0], Acked: 0})
}
