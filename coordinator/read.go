package coordinator

import (
	"context"
	"fmt"

	"github.com/dynkv/dynkv/vclock"
	"go.uber.org/zap"
)

// Get runs a client read: every replica of the committed list is asked,
// and the read succeeds once r of them answered (0: the default R; a
// not-found is an answer). It returns the merge of the answers: dominated
// versions dropped, concurrent siblings kept, tombstones and expired values
// included (the caller applies Live). found is false when no replica knows
// the key. When the answers diverge, the stale replicas are repaired in the
// background after all of them answered or timed out.
func (c *Coordinator) Get(ctx context.Context, db int, key []byte, r int) (vclock.Set, bool, error) {
	c.stats.reads.Add(1)
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
	answers := c.fanOutGets(committed, db, key)
	// Whatever the outcome, the answers still on their way feed read repair.
	defer c.spawn(func(bctx context.Context) { c.readRepair(bctx, tally, answers, db, key) })
	for {
		if done, qerr := tally.outcome(); done {
			if qerr != nil {
				return vclock.Set{}, false, c.quorumFailed(qerr)
			}
			return tally.merged, found(tally.merged), nil
		}
		select {
		case a := <-answers:
			if a.err != nil {
				c.log.Debug("replica read failed", zap.String("peer", a.id), zap.Error(a.err))
			}
			tally.record(a)
		case <-rctx.Done():
			if err := ctx.Err(); err != nil {
				return vclock.Set{}, false, fmt.Errorf("coordinator: read abandoned by the client: %w", err)
			}
			return vclock.Set{}, false, c.quorumFailed(tally.timedOut())
		}
	}
}

// fanOutGets asks every node of list for the key; each sends exactly one
// answer on the returned channel, which is buffered so that nobody has to
// receive the late ones.
func (c *Coordinator) fanOutGets(list []string, db int, key []byte) chan readAnswer {
	answers := make(chan readAnswer, len(list))
	c.fanOutGetsTo(answers, list, db, key)
	return answers
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
// waits for the remaining replicas, and merges the full result into every
// replica that answered with something else.
func (c *Coordinator) readRepair(ctx context.Context, tally *readTally, answers <-chan readAnswer, db int, key []byte) {
	for !tally.complete() {
		select {
		case a := <-answers:
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
