package handoff

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/vclock"
)

// pass is one scan of the store towards one ring state.
type pass struct {
	h    *Handoff
	mode handoffMode
	plan *handoffPlan
	// fp is the ring state the pass works for: the target fingerprint
	// (transfer) or the committed one (sweep). A pass stops when it changes.
	fp membership.Fingerprint

	// Batches by destination set: one node for a transfer; the whole
	// preference list for a sweep, whose keys may only be dropped once every
	// owner has them. buffered bounds the memory of all of them together.
	groups   map[string]*batchGroup
	buffered int

	started      time.Time
	lastProgress time.Time
	// Counted in key copies (a key sent to two nodes counts twice); Total
	// grows while the scan finds more.
	sentKeys, totalKeys uint64
	sentBytes           uint64
	dropped, kept       uint64
	// failed holds the destinations a send failed to in this pass: they get
	// nothing more until the next pass, so one dead node costs one timeout,
	// and the others still get their data. skipped counts what was withheld
	// (key copies in a transfer, keys kept in a sweep).
	failed  map[string]error
	skipped uint64
}

type batchGroup struct {
	dests []string
	items []rpc.Item
	bytes int
}

func (h *Handoff) newPass(mode handoffMode, plan *handoffPlan, fp membership.Fingerprint) *pass {
	now := h.cfg.clock.Now()
	return &pass{h: h, mode: mode, plan: plan, fp: fp, groups: map[string]*batchGroup{}, failed: map[string]error{}, started: now, lastProgress: now}
}

// maxBufferedBatches bounds a pass's memory to this many full batches.
const maxBufferedBatches = 4

func (p *pass) run(ctx context.Context) error {
	err := p.h.cfg.Store.Scan(func(db int, key []byte, set vclock.Set) error {
		return p.visit(ctx, db, key, set)
	})
	if err != nil {
		return fmt.Errorf("replication: handoff %s: %w", p.mode, err)
	}
	// Flush the rest in a fixed order, so a rerun retries the same way.
	names := make([]string, 0, len(p.groups))
	for name := range p.groups {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := p.flush(ctx, name); err != nil {
			return fmt.Errorf("replication: handoff %s: %w", p.mode, err)
		}
	}
	if len(p.failed) > 0 {
		ids := make([]string, 0, len(p.failed))
		for id := range p.failed {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		errs := make([]error, 0, len(ids))
		for _, id := range ids {
			errs = append(errs, p.failed[id])
		}
		return fmt.Errorf("replication: handoff %s: %d keys not handed off, failed destinations %s: %w", p.mode, p.skipped, strings.Join(ids, ", "), errors.Join(errs...))
	}
	return nil
}

// visit files one scanned key into the batches of its destinations. Scan
// hands over key and set, so batches keep them without copying.
func (p *pass) visit(ctx context.Context, db int, key []byte, set vclock.Set) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dests := p.plan.destinations(p.plan.partition(db, key))
	if len(dests) == 0 {
		return nil
	}
	item := rpc.Item{DB: db, Key: key, Set: set}
	size := itemSize(item)
	p.totalKeys += uint64(len(dests))
	if p.anyFailed(dests) && p.mode == modeSweep {
		p.skipped++
		return nil // kept: not every owner can acknowledge it in this pass
	}
	if p.mode == modeTransfer {
		for i, d := range dests {
			if p.failed[d] != nil {
				p.skipped++
				continue
			}
			if err := p.add(ctx, d, dests[i:i+1], item, size); err != nil {
				return err
			}
		}
	} else if err := p.add(ctx, strings.Join(dests, "\x00"), dests, item, size); err != nil {
		return err
	}
	for p.buffered > maxBufferedBatches*p.h.cfg.BatchBytes {
		if err := p.flush(ctx, p.largest()); err != nil {
			return err
		}
	}
	p.maybeReport()
	return nil
}

// add appends item to the batch of group name (created for dests, which it
// keeps but never modifies) and sends the batch once it is full.
func (p *pass) add(ctx context.Context, name string, dests []string, item rpc.Item, size int) error {
	g := p.groups[name]
	if g == nil {
		g = &batchGroup{dests: dests}
		p.groups[name] = g
	}
	g.items = append(g.items, item)
	g.bytes += size
	p.buffered += size
	if g.bytes >= p.h.cfg.BatchBytes || len(g.items) >= rpc.MaxBatchItems {
		return p.flush(ctx, name)
	}
	return nil
}

func (p *pass) anyFailed(dests []string) bool {
	for _, d := range dests {
		if p.failed[d] != nil {
			return true
		}
	}
	return false
}

func (p *pass) largest() string {
	best, bestBytes := "", -1
	for name, g := range p.groups {
		if g.bytes > bestBytes || g.bytes == bestBytes && name < best {
			best, bestBytes = name, g.bytes
		}
	}
	return best
}

// flush sends the group's batch to each of its destinations, paced by the
// token bucket, and for a sweep drops the keys once all of them have
// acknowledged. A key written since the scan read it is not dropped
// (store.Drop compares), and the next sweep sends its new state.
func (p *pass) flush(ctx context.Context, name string) error {
	g := p.groups[name]
	if g == nil || len(g.items) == 0 {
		return nil
	}
	if err := p.checkRing(); err != nil {
		return err
	}
	delivered := true
	for _, d := range g.dests {
		if p.failed[d] != nil {
			delivered = false
			continue
		}
		if err := p.h.bucket.Wait(ctx, g.bytes); err != nil {
			return err
		}
		if err := p.h.cfg.Send(ctx, d, g.items); err != nil {
			if ctx.Err() != nil {
				return err
			}
			p.failed[d] = fmt.Errorf("send %d keys (%d bytes) to %s: %w", len(g.items), g.bytes, d, err)
			p.h.log.Warn("handoff destination failed; skipping it until the next pass", zap.String("peer", d), zap.Stringer("mode", p.mode), zap.Error(err))
			delivered = false
			continue
		}
		p.sentKeys += uint64(len(g.items))
		p.sentBytes += uint64(g.bytes)
		p.h.stats.keysSent.Add(uint64(len(g.items)))
		p.h.stats.bytesSent.Add(uint64(g.bytes))
	}
	p.buffered -= g.bytes
	delete(p.groups, name)
	if !delivered {
		p.skipped += uint64(len(g.items))
		p.maybeReport()
		return nil
	}
	if p.mode == modeSweep {
		// The owners were computed from a ring that must still be the one
		// in force: dropping on a stale ring could drop a copy a pending
		// transition is about to need from us.
		if err := p.checkRing(); err != nil {
			return err
		}
		for _, it := range g.items {
			ok, err := p.h.cfg.Store.Drop(it.DB, it.Key, it.Set)
			if err != nil {
				return fmt.Errorf("drop a handed-off stray key: %w", err)
			}
			if ok {
				p.dropped++
				p.h.stats.keysDropped.Add(1)
			} else {
				p.kept++
			}
		}
	}
	p.maybeReport()
	return nil
}

// checkRing fails with errRingChanged when the ring state moved on from
// the one the pass was planned for.
func (p *pass) checkRing() error {
	st := p.h.cfg.Membership.State()
	switch p.mode {
	case modeTransfer:
		if !st.Pending() || st.TargetFingerprint() != p.fp {
			return errRingChanged
		}
	case modeSweep:
		if st.Pending() || st.Committed.Fingerprint() != p.fp {
			return errRingChanged
		}
	}
	return nil
}

func (p *pass) maybeReport() {
	if p.mode != modeTransfer {
		return
	}
	if now := p.h.cfg.clock.Now(); now.Sub(p.lastProgress) >= p.h.cfg.ProgressInterval {
		p.lastProgress = now
		p.report(false)
	}
}

func (p *pass) report(done bool) {
	if p.mode != modeTransfer {
		return
	}
	p.h.cfg.Membership.ReportHandoff(membership.Handoff{Target: p.fp, Done: done, Sent: p.sentKeys, Total: p.totalKeys})
}

// itemSize is what an item costs on the wire, near enough for pacing: the
// key and its Set's encoding plus a few bytes of framing.
func itemSize(it rpc.Item) int {
	return len(it.Key) + len(it.Set.Encode()) + 8
}
