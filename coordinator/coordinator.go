package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/replication/rpc"
)

var (
	// ErrClosed: the coordinator was closed (the node is shutting down).
	ErrClosed = errors.New("coordinator: closed")
	// ErrNoRing: this node has not joined a ring yet, so no key has a
	// preference list. It wraps rpc.ErrUnavailable so that a node
	// forwarding a write here tries another replica.
	ErrNoRing = fmt.Errorf("coordinator: no committed ring yet: %w", rpc.ErrUnavailable)
	// ErrNotReplica: a write forwarded here for coordination found this node
	// in neither preference list of the key (the ring changed in between).
	// It wraps rpc.ErrUnavailable, which crosses the RPC as such, so
	// the sender tries the next replica.
	ErrNotReplica = fmt.Errorf("coordinator: this node is not a replica of the key: %w", rpc.ErrUnavailable)
)

// Coordinator runs client reads and writes against the replicas of a key.
// It is safe for concurrent use.
type Coordinator struct {
	cfg      Config
	cluster  Cluster
	replicas Replicas
	local    Local
	log      *zap.Logger
	// health is what the coordinator's own calls say of each peer
	// (health.go); replicas feeds it.
	health *peerHealth

	// bg parents the work that outlives a request (the merges beyond W, the
	// answers beyond R, read repair); Close cancels it and waits for wg.
	bg     context.Context
	cancel context.CancelFunc
	mu     sync.Mutex // orders wg.Add against Close's wg.Wait
	closed bool
	wg     sync.WaitGroup

	// inFlight counts the requests being served and the background work
	// they left behind (Stats.InFlight).
	inFlight atomic.Int64

	stats struct {
		reads, writes, forwards, quorumFailures, readRepairs, readRepairFailures atomic.Uint64
		hinted, hintFailures                                                     atomic.Uint64
		contextsAhead                                                            atomic.Uint64
		coveredBlindWrites, coverFallbacks                                       atomic.Uint64
		hedges                                                                   atomic.Uint64
	}
}

// Stats are counters since the coordinator started.
type Stats struct {
	Reads, Writes      uint64 // client requests received
	Forwards           uint64 // writes handed to another replica to coordinate
	QuorumFailures     uint64 // reads and writes answered with a QuorumError
	ReadRepairs        uint64 // repair merges sent to stale replicas
	ReadRepairFailures uint64 // repair merges that failed
	Hinted             uint64 // replica writes stored as hints on a fallback (sloppy quorum)
	HintFailures       uint64 // hints a fallback failed to store
	// ContextsAhead counts writes whose client context covered writes this
	// replica had not seen, so the replicas' contexts were read to clamp it.
	ContextsAhead uint64
	// CoveredBlindWrites counts blind writes acknowledged on covering
	// merges, without reading the key's context first (cover.go).
	CoveredBlindWrites uint64
	// CoverFallbacks counts blind writes that fewer than W replicas took
	// covering, so they read the key's context and were written again.
	CoverFallbacks uint64
	// Hedges counts the calls started around a peer that ran past its
	// per-call deadline or was unreachable: hints on a fallback node for
	// a write's share, covering writes sent the gather way, reads and
	// context reads completed without it (health.go).
	Hedges uint64
	// InFlight is a gauge: the reads and writes this coordinator is
	// serving plus the work they left running after their answer (the
	// merges beyond W, which store a hint when they fail; the answers
	// beyond R; read repair). Zero means nothing it started can still
	// write to a replica or store a hint.
	InFlight int64
}

// New returns a coordinator for this node. cfg is completed with defaults;
// call cfg.Validate first to reject a bad one with a message.
func New(cfg Config, cluster Cluster, replicas Replicas, local Local) *Coordinator {
	cfg = cfg.withDefaults()
	bg, cancel := context.WithCancel(context.Background())
	health := newPeerHealth(cfg.Now, cfg.GatherHedge)
	return &Coordinator{
		cfg: cfg, cluster: cluster, local: local,
		replicas: &observedReplicas{Replicas: replicas, self: cluster.Self(), health: health, now: cfg.Now},
		health:   health,
		log:      cfg.Logger.Named("coordinator"), bg: bg, cancel: cancel,
	}
}

// Peers reports the health of every peer this coordinator has called
// (health.go), by id.
func (c *Coordinator) Peers() []PeerHealth { return c.health.snapshot() }

// reachable reports whether the coordinator routes to id: gossip says it
// is alive and its calls have not kept failing (health.go). Asking about
// a peer not in good standing probes it when a probe is due.
func (c *Coordinator) reachable(id string) bool {
	return c.routeRank(id) != rankUnreachable
}

// maybeProbe sends peer id a probe when one is due (peerHealth.probeDue):
// a peer routed around may get no other call that would show it answers.
func (c *Coordinator) maybeProbe(id string) {
	if c.health.probeDue(id) {
		c.spawn(func(ctx context.Context) {
			// Its answer, found or not, puts the peer back in good
			// standing (observedReplicas).
			_, _, _ = c.replicas.Get(ctx, id, 0, probeKey)
		})
	}
}

// routeOrder is the order in which the coordinator tries ids, any of
// which can serve (the replica to forward a write to, the peers to read a
// context or a value from): forwardOrder by routeRank. A peer that just
// started missing is tried after the others before it has missed enough
// to be unreachable: in a bridge, where gossip never notices the cut, a
// forward to it would wait out the request.
func (c *Coordinator) routeOrder(ids []string) []string { return forwardOrder(ids, c.routeRank) }

// routeRank is id's rank for routing (peerHealth.rank, and unreachable
// while gossip says it is not alive). Asking about a peer that is not in
// good standing probes it when a probe is due.
func (c *Coordinator) routeRank(id string) int {
	if !c.cluster.Alive(id) {
		return rankUnreachable
	}
	r := c.health.rank(id)
	if r != rankGood {
		c.maybeProbe(id)
	}
	return r
}

// probeKey is the key an open peer's probe reads: a valid key (so any
// version of the peer answers it) that no client is likely to use, and
// reading it changes nothing even if one does.
var probeKey = []byte("\x00dynkv:peer-probe")

// Close cancels the background merges and repairs and waits for them.
// Requests after Close fail with ErrClosed.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// Stats returns the counters.
func (c *Coordinator) Stats() Stats {
	return Stats{
		Reads:              c.stats.reads.Load(),
		Writes:             c.stats.writes.Load(),
		Forwards:           c.stats.forwards.Load(),
		QuorumFailures:     c.stats.quorumFailures.Load(),
		ReadRepairs:        c.stats.readRepairs.Load(),
		ReadRepairFailures: c.stats.readRepairFailures.Load(),
		Hinted:             c.stats.hinted.Load(),
		HintFailures:       c.stats.hintFailures.Load(),
		ContextsAhead:      c.stats.contextsAhead.Load(),
		CoveredBlindWrites: c.stats.coveredBlindWrites.Load(),
		CoverFallbacks:     c.stats.coverFallbacks.Load(),
		Hedges:             c.stats.hedges.Load(),
		InFlight:           c.inFlight.Load(),
	}
}

// spawn runs fn in a goroutine owned by the coordinator, with a context
// cancelled by Close and bounded by the request timeout. It reports false,
// without running fn, once the coordinator is closed.
func (c *Coordinator) spawn(fn func(ctx context.Context)) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.wg.Add(1)
	c.inFlight.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer c.inFlight.Add(-1)
		ctx, cancel := context.WithTimeout(c.bg, c.cfg.RequestTimeout)
		defer cancel()
		fn(ctx)
	}()
	return true
}

// fanOut runs fn(ctx, id) for every id of ids except skip, each in a
// goroutine owned by the coordinator. They share one context, cancelled by
// Close and bounded by the request timeout, released by the last to
// finish: one timer per request rather than one per replica. Once the
// coordinator is closed nothing runs and refused(id) is called instead.
func (c *Coordinator) fanOut(ids []string, skip string, fn func(ctx context.Context, id string), refused func(id string)) {
	n := 0
	for _, id := range ids {
		if id != skip {
			n++
		}
	}
	if n == 0 {
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		for _, id := range ids {
			if id != skip {
				refused(id)
			}
		}
		return
	}
	c.wg.Add(n)
	c.inFlight.Add(int64(n))
	c.mu.Unlock()
	g := &fanGroup{}
	g.ctx, g.cancel = context.WithTimeout(c.bg, c.cfg.RequestTimeout)
	g.left.Store(int32(n))
	for _, id := range ids {
		if id == skip {
			continue
		}
		go func() {
			defer c.wg.Done()
			defer c.inFlight.Add(-1)
			fn(g.ctx, id)
			if g.left.Add(-1) == 0 {
				g.cancel()
			}
		}()
	}
}

// fanGroup is the context a fan-out's goroutines share.
type fanGroup struct {
	ctx    context.Context
	cancel context.CancelFunc
	left   atomic.Int32 // goroutines still running; the last cancels ctx
}

func (c *Coordinator) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// quorumFailed counts a QuorumError on its way to the client.
func (c *Coordinator) quorumFailed(err *QuorumError) error {
	c.stats.quorumFailures.Add(1)
	return err
}
