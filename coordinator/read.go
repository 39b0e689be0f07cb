package coordinator

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dynkv/dynkv/vclock"
	"go.uber.org/zap"
)

// Get runs a client read: replicas of the committed list are asked as far
// as the quorum needs them (lazyReads), and the read succeeds once r of
// them answered (0: the default R; a
// not-found is an answer). It returns the merge of the answers: dominated
// versions dropped, concurrent siblings kept, tombstones and expired values
// included (the caller applies Live). found is false when no replica knows
// the key. When the answers diverge, the stale replicas are repaired in the
// background after all of them answered or timed out.
func (c *Coordinator) Get(ctx context.Context, db int, key []byte, r int) (vclock.Set, bool, error) {
	c.stats.reads.Add(1)
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	if c.isClosed() {
		return vclock.Set{}, false, ErrClosed
	}
	r, err := resolveQuorum(r, c.cfg.R, c.cfg.N)
	if err != nil {
		return vclock.Set{}, false, err
	}
	committed, _ := c.cluster.PreferenceLists(db, key, c.cfg.N)
	if len(committed) == 0 {
		return vclock.Set{}, false, ErrNoRing
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()

	tally := newReadTally(r, len(committed))
	reads := c.startReads(committed, tally.need, db, key)
	defer reads.calls.stop()
	// Whatever the outcome, the answers still on their way feed read
	// repair; when every replica asked has answered and they agree there
	// is nothing to wait for or repair, and no goroutine is started.
	defer func() {
		if reads.outstanding == 0 && len(tally.repairTargets()) == 0 {
			return
		}
		c.spawn(func(bctx context.Context) { c.readRepair(bctx, tally, reads, db, key) })
	}()
	var hedge <-chan time.Time
	if len(reads.pending) > 0 {
		t := time.NewTimer(c.cfg.GatherHedge)
		defer t.Stop()
		hedge = t.C
	}
	for {
		if done, qerr := tally.outcome(); done {
			if qerr != nil {
				return vclock.Set{}, false, c.quorumFailed(qerr)
			}
			return tally.merged, found(tally.merged), nil
		}
		select {
		case a := <-reads.answers:
			reads.outstanding--
			reads.calls.done(a.id)
			if a.err != nil {
				c.log.Debug("replica read failed", zap.String("peer", a.id), zap.Error(a.err))
				reads.more(1)
			}
			tally.record(a)
		case <-hedge:
			hedge = nil
			reads.more(len(reads.pending))
		case <-reads.calls.wait():
			reads.calls.fired()
			if len(reads.pending) == 0 && reads.calls.allGone(0) {
				// The quorum now hangs on peers that are late and
				// unreachable: their RPC timeouts would fail them anyway.
				return vclock.Set{}, false, c.quorumFailed(tally.timedOut())
			}
		case <-rctx.Done():
			if err := ctx.Err(); err != nil {
				return vclock.Set{}, false, fmt.Errorf("coordinator: read abandoned by the client: %w", err)
			}
			return vclock.Set{}, false, c.quorumFailed(tally.timedOut())
		}
	}
}

// lazyReads asks a key's replicas for a read only as far as the quorum
// needs them, as Cassandra does rather than Dynamo: first R of them (this
// node first, then live peers in preference order), one more at once for
// each that fails, and all the rest once GatherHedge passes without a
// quorum. With N=3 and R=2 a read then costs one round trip to a peer, not
// two; the replica not asked is left to anti-entropy, and read repair fixes
// the stale replicas among those that answered.
type lazyReads struct {
	c           *Coordinator
	db          int
	key         []byte
	answers     chan readAnswer
	pending     []string // replicas not asked yet, in the order to ask them
	outstanding int      // asked and not answered yet
	// calls are the peers asked and not answered, against their
	// deadlines (health.go); the read's loop stops it.
	calls *pendingCalls
}

func (c *Coordinator) startReads(list []string, need, db int, key []byte) *lazyReads {
	self := c.cluster.Self()
	order := make([]string, 0, len(list))
	if inList(list, self) {
		order = append(order, self)
	}
	order = append(order, c.routeOrder(slices.DeleteFunc(slices.Clone(list), func(id string) bool { return id == self }))...)
	l := &lazyReads{c: c, db: db, key: key, answers: make(chan readAnswer, len(order)), pending: order,
		calls: c.newPendingCalls(len(order))}
	l.more(need)
	return l
}

// more asks the next n replicas not asked yet.
func (l *lazyReads) more(n int) {
	n = min(n, len(l.pending))
	if n <= 0 {
		return
	}
	if n == 1 && len(l.pending) == 1 && l.pending[0] == l.c.cluster.Self() {
		// This node is the only replica left to ask (one node, or N=1):
		// read its store on this goroutine. There is no other replica to
		// hedge to while it reads, so a goroutine would only cost its
		// start and the growth of a fresh stack.
		s, ok, err := l.c.replicas.Get(l.c.bg, l.pending[0], l.db, l.key)
		l.answers <- readAnswer{id: l.pending[0], set: s, found: ok, err: err}
		l.pending, l.outstanding = nil, l.outstanding+1
		return
	}
	for _, id := range l.pending[:n] {
		l.calls.add(id)
	}
	l.c.fanOutGetsTo(l.answers, l.pending[:n], l.db, l.key)
	l.pending, l.outstanding = l.pending[n:], l.outstanding+n
}

// fanOutGetsTo asks every node of list for the key and sends one answer
// each on answers, which must have room for all of them.
func (c *Coordinator) fanOutGetsTo(answers chan<- readAnswer, list []string, db int, key []byte) {
	c.fanOut(list, "", func(ctx context.Context, id string) {
		s, ok, err := c.replicas.Get(ctx, id, db, key)
		answers <- readAnswer{id: id, set: s, found: ok, err: err}
	}, func(id string) { answers <- readAnswer{id: id, err: ErrClosed} })
}

// readRepair takes over a read's tally once the client has its answer,
// waits for the replicas asked and not answered yet, and merges the full
// result into every replica that answered with something else.
func (c *Coordinator) readRepair(ctx context.Context, tally *readTally, reads *lazyReads, db int, key []byte) {
	for ; reads.outstanding > 0; reads.outstanding-- {
		select {
		case a := <-reads.answers:
			tally.record(a)
		case <-ctx.Done():
			return
		}
	}
	merged := tally.merged
	targets := tally.repairTargets()
	c.stats.readRepairs.Add(uint64(len(targets)))
	c.fanOut(targets, "", func(ctx context.Context, id string) {
		if err := c.replicas.Merge(ctx, id, db, key, merged); err != nil {
			c.stats.readRepairFailures.Add(1)
			c.log.Debug("read repair failed", zap.String("peer", id), zap.Error(err))
		}
	}, func(string) {})
}
