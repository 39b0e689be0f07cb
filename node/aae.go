package node

import (
	"context"
	"sync"

	"github.com/dynkv/dynkv/replication/antientropy"
)

// aaeBody is the "aae" object of GET /cluster/status: anti-entropy's
// counters on this node.
type aaeBody = antientropy.Stats

// aaeState is the node's active anti-entropy: hash trees fed by the store
// from the moment it opens (so no change is missed), and the exchange
// worker, which runs while the node is part of a cluster.
type aaeState struct {
	trees *antientropy.HashTrees

	mu  sync.Mutex
	run *antientropy.AntiEntropy // nil until start, and after stop
}

// init creates the trees; New passes the result to the store as
// store.Options.OnChange.
func (a *aaeState) init(partitions int) func(db int, key, before, after []byte) {
	a.trees = antientropy.NewHashTrees(partitions)
	return a.trees.Observe
}

// start builds the trees (in the background) and begins exchanging with
// c's peers every --aae-interval.
func (a *aaeState) start(n *Node, c *cluster) error {
	ae, err := antientropy.New(antientropy.Config{
		Self:           n.cfg.ID,
		Store:          n.store,
		Trees:          a.trees,
		Peers:          antientropy.RPCPeers{Replicas: c.replicas},
		Membership:     c.members,
		N:              n.cfg.Replicas,
		Interval:       n.cfg.AAEInterval,
		Rate:           n.cfg.AAERate,
		TombstoneGrace: n.cfg.TombstoneGrace,
		Now:            n.cfg.now,
		Logger:         n.log.Named("aae"),
	})
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := ae.Start(context.Background()); err != nil {
		return err
	}
	a.run = ae
	return nil
}

// stop ends the exchanges; the trees stay current for as long as the store
// is open.
func (a *aaeState) stop() {
	a.mu.Lock()
	ae := a.run
	a.run = nil
	a.mu.Unlock()
	if ae != nil {
		ae.Close()
	}
}

// stats is the status object, nil while anti-entropy is not running.
func (a *aaeState) stats() *aaeBody {
	a.mu.Lock()
	ae := a.run
	a.mu.Unlock()
	if ae == nil {
		return nil
	}
	s := ae.Stats()
	return &s
}
