package coordinator

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/vclock"
)

// Peer health: what this coordinator learns of each peer from its own
// calls, beside what gossip says.
//
// Gossip alone misses the failures that matter most to a request. A peer
// cut off from this node but reachable from the others (a "bridge": nodes
// 1-2 and 4-5 cannot reach each other, node 3 reaches all) passes
// memberlist's indirect probes through node 3 and stays alive, and even a
// plain split takes the failure detector a second or more to see. A
// request that waits on such a peer waits out its whole RPC timeout.
//
// So every call to a peer is timed (observedReplicas), and each peer has a
// per-call deadline: hedgeFactor times the p99 of its recent answers,
// within [Config.GatherHedge, maxHedgeAfter]. A request still short of
// its quorum when a peer's deadline passes hedges around it (a hint on a
// fallback node for a write, the next replica for a read) and counts the
// call late. A peer whose last tripAfter calls all failed or ran late,
// with no answer in between, is open: the coordinator treats it as
// unreachable for routing, even while gossip says it is alive. It does
// not forward writes to it while another replica is healthy, does not
// pick it as a fallback, reads from it last, and hints its share of a
// write to a fallback node at once instead of waiting on it. Once every
// probeInterval while it is open, routing around it sends it a probe (a
// read of a key no client can write, probeKey), so that its first answer,
// to the probe or to any other call, closes it again, whether or not any
// request would have called it.
//
// An open peer is not a dead one for anything but routing: its writes are
// still acknowledged through hints, which are delivered when it answers,
// and a read or context read that can only be served by open peers fails
// or completes best effort exactly as if they had failed (it never waits
// for them longer than their deadline).

const (
	// hedgeFactor times a peer's p99 is its per-call deadline: well past a
	// loaded peer's usual tail, so a healthy cluster almost never hedges.
	hedgeFactor = 4
	// maxHedgeAfter caps a per-call deadline, so a peer whose answers were
	// slow does not hold a write for the whole RPC timeout when it stops
	// answering altogether.
	maxHedgeAfter = 500 * time.Millisecond
	// initialHedgeAfter is a peer's deadline before it has answered
	// enough calls for a p99.
	initialHedgeAfter = 200 * time.Millisecond
	// tripAfter consecutive failed or late calls open a peer.
	tripAfter = 3
	// probeInterval is how often an open peer is probed.
	probeInterval = 500 * time.Millisecond
	// latencyWindow answers make a peer's p99, recomputed every
	// latencyRecompute answers.
	latencyWindow    = 256
	latencyRecompute = 128
	// minLatencySamples answers are needed before the p99 is trusted.
	minLatencySamples = 32
)

// PeerHealth is one peer as this coordinator's calls see it.
type PeerHealth struct {
	ID string
	// Unreachable: the peer is open (see the package's health.go): its
	// last calls all failed or ran late, so routing avoids it until it
	// answers again.
	Unreachable bool
	// Since is when the peer became unreachable (zero while reachable).
	Since time.Time
	// Misses counts its failed or late calls since its last answer.
	Misses int
	// Trips counts how often it became unreachable since this node started.
	Trips uint64
	// P99 is the p99 latency of its recent answers (0 until enough), and
	// HedgeAfter the per-call deadline derived from it.
	P99, HedgeAfter time.Duration
}

// peerHealth is the table of PeerHealth, updated by every call.
type peerHealth struct {
	now      func() time.Time
	minHedge time.Duration

	mu    sync.RWMutex
	peers map[string]*peerStat
}

type peerStat struct {
	mu        sync.Mutex
	samples   [latencyWindow]time.Duration
	scratch   [latencyWindow]time.Duration // sorted copy, for the p99
	n         int                          // answers timed, in total
	p99       time.Duration
	misses    int
	open      bool
	since     time.Time
	nextProbe time.Time
	trips     uint64
}

func newPeerHealth(now func() time.Time, minHedge time.Duration) *peerHealth {
	return &peerHealth{now: now, minHedge: max(minHedge, time.Millisecond), peers: map[string]*peerStat{}}
}

func (h *peerHealth) stat(id string) *peerStat {
	h.mu.RLock()
	p := h.peers[id]
	h.mu.RUnlock()
	if p != nil {
		return p
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if p = h.peers[id]; p == nil {
		p = &peerStat{}
		h.peers[id] = p
	}
	return p
}

// answered records an answer from id that took d (d < 0: not timed, as
// a forwarded write, whose time is a whole remote request's).
func (h *peerHealth) answered(id string, d time.Duration) {
	p := h.stat(id)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.misses, p.open, p.since = 0, false, time.Time{}
	if d < 0 {
		return
	}
	p.samples[p.n%latencyWindow] = d
	p.n++
	if p.n >= minLatencySamples && p.n%latencyRecompute == 0 {
		s := p.scratch[:min(p.n, latencyWindow)]
		copy(s, p.samples[:])
		slices.Sort(s)
		p.p99 = s[(len(s)*99)/100]
	}
}

// missed records a call to id that failed without an answer or ran past
// its deadline.
func (h *peerHealth) missed(id string) {
	p := h.stat(id)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.misses++
	now := h.now()
	if p.misses == 1 {
		p.nextProbe = now.Add(probeInterval)
	}
	if !p.open && p.misses >= tripAfter {
		p.open, p.since, p.nextProbe = true, now, now.Add(probeInterval)
		p.trips++
	}
}

// unreachable reports whether id is open.
func (h *peerHealth) unreachable(id string) bool { return h.rank(id) == rankUnreachable }

// A peer's rank for routing (forwardOrder): in good standing, missing
// (failed or late calls since its last answer, fewer than tripAfter), or
// unreachable (open).
const (
	rankGood = iota
	rankMissing
	rankUnreachable
)

// rank is id's rank; rankGood for a peer never called.
func (h *peerHealth) rank(id string) int {
	h.mu.RLock()
	p := h.peers[id]
	h.mu.RUnlock()
	if p == nil {
		return rankGood
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.open:
		return rankUnreachable
	case p.misses > 0:
		return rankMissing
	}
	return rankGood
}

// probeDue reports whether peer id, open or missing (its last call failed
// or ran late), is due a probe: at most once per probeInterval, the first
// probeInterval after its first miss. False for a peer in good standing.
func (h *peerHealth) probeDue(id string) bool {
	p := h.stat(id)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.misses == 0 {
		return false
	}
	now := h.now()
	if now.Before(p.nextProbe) {
		return false
	}
	p.nextProbe = now.Add(probeInterval)
	return true
}

// hedgeAfter is id's per-call deadline: 0 while it is open (hedge at
// once), else hedgeFactor × its p99 within [minHedge, maxHedgeAfter].
func (h *peerHealth) hedgeAfter(id string) time.Duration {
	p := h.stat(id)
	p.mu.Lock()
	defer p.mu.Unlock()
	return h.hedgeAfterLocked(p)
}

func (h *peerHealth) hedgeAfterLocked(p *peerStat) time.Duration {
	switch {
	case p.open:
		return 0
	case p.p99 == 0:
		return max(initialHedgeAfter, h.minHedge)
	}
	return min(max(hedgeFactor*p.p99, h.minHedge), max(maxHedgeAfter, h.minHedge))
}

// snapshot lists every peer called so far, by id.
func (h *peerHealth) snapshot() []PeerHealth {
	h.mu.RLock()
	out := make([]PeerHealth, 0, len(h.peers))
	for id, p := range h.peers {
		p.mu.Lock()
		out = append(out, PeerHealth{ID: id, Unreachable: p.open, Since: p.since, Misses: p.misses,
			Trips: p.trips, P99: p.p99, HedgeAfter: h.hedgeAfterLocked(p)})
		p.mu.Unlock()
	}
	h.mu.RUnlock()
	slices.SortFunc(out, func(a, b PeerHealth) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// noAnswer reports whether err says a call got no answer from the peer:
// it was not delivered, timed out, or its connection broke. An error the
// peer answered with (a *rpc.RemoteError: busy, disk full, a quorum it
// could not reach) is an answer, and so are success and a refusal at the
// peer's door (busy at its in-flight cap: it is there, and hedging works
// around it as it does around a slow one); a call this node cancelled
// itself says nothing about the peer.
func noAnswer(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, rpc.ErrUnavailable) {
		return false
	}
	if _, ok := errors.AsType[*rpc.RemoteError](err); ok {
		return false
	}
	return true
}

// observedReplicas times every call to a peer and feeds peerHealth.
type observedReplicas struct {
	Replicas
	self   string
	health *peerHealth
	now    func() time.Time
}

func (o *observedReplicas) done(id string, start time.Time, err error, timed bool) {
	if id == o.self {
		return
	}
	switch {
	case noAnswer(err):
		o.health.missed(id)
	case err == nil || !errors.Is(err, context.Canceled):
		d := time.Duration(-1)
		if timed {
			d = o.now().Sub(start)
		}
		o.health.answered(id, d)
	}
}

func (o *observedReplicas) Get(ctx context.Context, id string, db int, key []byte) (s vclock.Set, found bool, err error) {
	start := o.now()
	s, found, err = o.Replicas.Get(ctx, id, db, key)
	o.done(id, start, err, true)
	return s, found, err
}

func (o *observedReplicas) Merge(ctx context.Context, id string, db int, key []byte, s vclock.Set) error {
	start := o.now()
	err := o.Replicas.Merge(ctx, id, db, key, s)
	o.done(id, start, err, true)
	return err
}

func (o *observedReplicas) MergeCovering(ctx context.Context, id string, db int, key []byte, s vclock.Set) (bool, vclock.Context, error) {
	start := o.now()
	covered, held, err := o.Replicas.MergeCovering(ctx, id, db, key, s)
	o.done(id, start, err, true)
	return covered, held, err
}

func (o *observedReplicas) Hint(ctx context.Context, id, owner string, db int, key []byte, s vclock.Set) error {
	start := o.now()
	err := o.Replicas.Hint(ctx, id, owner, db, key, s)
	o.done(id, start, err, true)
	return err
}

// Coordinate counts only whether the peer answered: a forwarded write's
// time is a whole remote request's, and a timeout there may be the remote
// coordinator's wait on its own replicas, so only a call that certainly
// never reached the peer counts against it.
func (o *observedReplicas) Coordinate(ctx context.Context, id string, req WriteRequest) (WriteResult, error) {
	res, err := o.Replicas.Coordinate(ctx, id, req)
	if id != o.self {
		_, remote := errors.AsType[*rpc.RemoteError](err)
		switch {
		case err == nil || remote:
			o.health.answered(id, -1)
		case errors.Is(err, rpc.ErrUnreachable):
			o.health.missed(id)
		}
	}
	return res, err
}
