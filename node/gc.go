package node

import (
	"sync"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/replication/antientropy"
)

// tombstoneGC wires the store's reclaimer to the cluster: a key holding
// only tombstones older than --tombstone-grace is dropped only once every
// replica of it holds them (antientropy.TombstoneGC). The store opens
// before the cluster exists, so the hook it is given (canDropTombstone)
// refuses until Start has built the cluster, then builds the decider once.
type tombstoneGC struct {
	once sync.Once
	gc   *antientropy.TombstoneGC
	err  error
}

// canDropTombstone is the store's Options.CanDropTombstone. It runs on the
// store's reclaimer goroutine, which holds no key lock while it waits, and
// each call is bounded by --rpc-timeout.
func (n *Node) canDropTombstone(db int, key []byte) bool {
	c := n.cluster.Load()
	if c == nil {
		// Not yet part of a ring: the replicas are unknown, keep the tombstone.
		return false
	}
	n.gc.once.Do(func() {
		n.gc.gc, n.gc.err = antientropy.NewTombstoneGC(antientropy.TombstoneGCConfig{
			Self:      n.cfg.ID,
			N:         n.cfg.Replicas,
			Placement: c.members.Placement,
			Alive:     c.alive,
			Replicas:  c.replicas,
			Timeout:   n.cfg.RPCTimeout,
			Now:       n.cfg.now,
			Logger:    n.log.Named("tombstone-gc"),
		})
		if n.gc.err != nil {
			n.log.Error("tombstone GC not configured: tombstones are kept", zap.Error(n.gc.err))
		}
	})
	if n.gc.gc == nil {
		return false
	}
	return n.gc.gc.CanDropTombstone(db, key)
}
