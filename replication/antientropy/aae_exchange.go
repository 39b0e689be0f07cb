package antientropy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// leafDiff is a partition whose tree differs from a peer's in Leaves.
type leafDiff struct {
	p      int
	peer   string
	leaves []int
}

// compare fetches peer's tree of partition p and returns the leaves that
// differ from this node's, nil when none do. It counts as the exchange.
func (a *AntiEntropy) compare(ctx context.Context, p int, peer string) (d *leafDiff, err error) {
	defer func() {
		a.mu.Lock()
		a.stats.Exchanges++
		a.stats.LastExchange = a.cfg.Now()
		a.mu.Unlock()
		a.failed(err)
	}()
	leaves, err := a.diffWith(ctx, p, peer)
	if err != nil || len(leaves) == 0 {
		return nil, err
	}
	return &leafDiff{p: p, peer: peer, leaves: leaves}, nil
}

// diffWith returns the leaves of partition p that differ between this
// node's tree and peer's.
func (a *AntiEntropy) diffWith(ctx context.Context, p int, peer string) ([]int, error) {
	local, err := a.cfg.Trees.Summary(p)
	if err != nil {
		return nil, err
	}
	if err := a.bucket.Wait(ctx, aaeTreeBytes); err != nil {
		return nil, err
	}
	remote, err := a.cfg.Peers.AAETree(ctx, peer, p)
	if err != nil {
		return nil, fmt.Errorf("replication: anti-entropy partition %d with %s: %w", p, peer, err)
	}
	if !remote.Ready {
		return nil, nil // the peer is still building its trees
	}
	return DiffLeaves(&local, remote), nil
}

// settleWait waits Settle before the second look at n differing
// partitions; no wait when there are none or Settle is negative.
func (a *AntiEntropy) settleWait(ctx context.Context, n int) error {
	if n == 0 || a.cfg.Settle < 0 {
		return nil
	}
	t := time.NewTimer(a.cfg.Settle)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reconcile looks at d's partition again and lists and repairs the keys of
// the leaves that still differ.
//
// Under writes a leaf differs for a moment on every write, between its
// first replica's write and its last one's merge, and listing a leaf's
// keys reads the whole store on both sides (bucketKeys): it was a tenth of
// a node's CPU under a write load, for differences that were gone a moment
// later. A real difference (a replica that missed a write) is still there
// after Settle, and is repaired now.
func (a *AntiEntropy) reconcile(ctx context.Context, d leafDiff) (err error) {
	defer func() { a.failed(err) }()
	p, peer, leaves := d.p, d.peer, d.leaves
	if a.cfg.Settle >= 0 {
		still, err := a.diffWith(ctx, p, peer)
		if err != nil {
			return err
		}
		leaves = slices.DeleteFunc(leaves, func(l int) bool { _, found := slices.BinarySearch(still, l); return !found })
		if len(leaves) == 0 {
			return nil
		}
	}
	a.count(func(s *Stats) { s.PartitionsDiffering++ })
	if len(leaves) > aaeBucketsPerExchange {
		leaves = leaves[:aaeBucketsPerExchange]
	}
	theirs, err := a.cfg.Peers.AAEKeys(ctx, peer, p, leaves)
	if err != nil {
		return fmt.Errorf("replication: anti-entropy partition %d with %s: %w", p, peer, err)
	}
	if err := a.bucket.Wait(ctx, 16*len(theirs)); err != nil {
		return err
	}
	ours, err := bucketKeys(a.cfg.Store, a.cfg.Trees.Partitions(), p, leaves)
	if err != nil {
		return err
	}
	diffs := diffKeys(ours, theirs)
	if len(diffs) > a.cfg.KeysPerExchange {
		diffs = diffs[:a.cfg.KeysPerExchange]
	}
	for _, d := range diffs {
		if err := a.repair(ctx, peer, d); err != nil {
			return fmt.Errorf("replication: anti-entropy partition %d with %s: %w", p, peer, err)
		}
	}
	a.log.Debug("anti-entropy exchange repaired keys", zap.String("peer", peer), zap.Int("partition", p),
		zap.Int("leaves", len(leaves)), zap.Int("keys", len(diffs)))
	return nil
}

// failed counts an exchange's error.
func (a *AntiEntropy) failed(err error) {
	if err == nil {
		return
	}
	a.mu.Lock()
	a.stats.Errors++
	a.stats.LastError = err.Error()
	a.mu.Unlock()
}

// repair makes one key's state equal on both replicas: the union (vclock
// merge) of what each holds.
func (a *AntiEntropy) repair(ctx context.Context, peer string, d keyDiff) error {
	var merged vclock.Set
	haveMerged := false
	remoteFound := false
	if d.Remote {
		set, found, err := a.cfg.Peers.Get(ctx, peer, d.DB, d.Key)
		if err != nil {
			return err
		}
		if found {
			remoteFound = true
			if err := a.bucket.Wait(ctx, len(d.Key)+len(set.Encode())); err != nil {
				return err
			}
			if merged, err = a.cfg.Store.Merge(d.DB, d.Key, set); err != nil {
				return fmt.Errorf("merging db %d key_hash %016x locally: %w", d.DB, placeHash(d.DB, d.Key), err)
			}
			haveMerged = true
			a.count(func(s *Stats) { s.KeysPulled++ })
		}
	}
	if !haveMerged {
		set, err := a.cfg.Store.Get(d.DB, d.Key)
		if errors.Is(err, store.ErrNotFound) {
			return nil // reaped or dropped meanwhile; the next round sees
		}
		if err != nil {
			return err
		}
		merged = set
	}
	enc := merged.Encode()
	if remoteFound && entryHash(d.DB, d.Key, enc) == d.RemoteHash {
		return nil // the peer holds it already (this side was behind)
	}
	if reapable(merged, a.cfg.Now().UnixNano(), a.cfg.TombstoneGrace) {
		a.count(func(s *Stats) { s.TombstonesNotPushed++ })
		return nil
	}
	if err := a.bucket.Wait(ctx, len(d.Key)+len(enc)); err != nil {
		return err
	}
	if err := a.cfg.Peers.Merge(ctx, peer, d.DB, d.Key, merged); err != nil {
		return err
	}
	a.count(func(s *Stats) { s.KeysPushed++ })
	return nil
}

// reapable reports whether s holds nothing but tombstones older than grace
// at now (or nothing at all): every replica's reclaimer is about to drop
// it, so anti-entropy must not hand it to a replica that may have already.
func reapable(s vclock.Set, now int64, grace time.Duration) bool {
	for _, sib := range s.Siblings {
		if !sib.Tombstone || sib.LastModified > now-int64(grace) {
			return false
		}
	}
	return true
}
