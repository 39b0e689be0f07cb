package antientropy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/internal/defaults"
	"github.com/dynkv/dynkv/internal/lifecycle"
	"github.com/dynkv/dynkv/internal/ratelimit"
	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/replication/handoff"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// Active anti-entropy defaults, applied to zero Config fields.
const (
	DefaultInterval             = 10 * time.Second
	DefaultRate                 = 4 << 20 // bytes/s
	DefaultAAEExchangesPerRound = 64
	DefaultAAEKeysPerExchange   = 1000
	// aaeBucketsPerExchange bounds the leaves one exchange lists keys of;
	// the rest differ still at the next round and are taken then.
	aaeBucketsPerExchange = 256
	// aaeTreeBytes is what one tree exchange costs on the wire, charged to
	// the rate limit.
	aaeTreeBytes = 8 * (1 + TreeInner + TreeLeaves)
	// DefaultAAESettle is well above a write's usual time from its first
	// replica to its last under load (a few ms to tens), so that a leaf
	// that differs only because a write is on its way is left alone.
	DefaultAAESettle = 200 * time.Millisecond
)

// Membership is what anti-entropy needs of membership.Membership.
type Membership interface {
	Placement() membership.Placement
	Liveness(id string) membership.Liveness
}

// Peers reaches the other replicas of a partition by node id;
// RPCPeers implements it over RPC.
type Peers interface {
	AAERoots(ctx context.Context, id string) (TreeRoots, error)
	AAETree(ctx context.Context, id string, partition int) (*TreeSummary, error)
	AAEKeys(ctx context.Context, id string, partition int, buckets []int) ([]KeyHash, error)
	Get(ctx context.Context, id string, db int, key []byte) (vclock.Set, bool, error)
	Merge(ctx context.Context, id string, db int, key []byte, s vclock.Set) error
}

// Config configures an AntiEntropy. Self, Store, Trees,
// Membership and Peers are required; zero values of the rest take the
// defaults above.
type Config struct {
	Self string
	// Store must report its changes to Trees.Observe (store.Options.OnChange).
	Store      *store.Store
	Trees      *HashTrees
	Membership Membership
	Peers      Peers
	// N is the replica count before capping at the ring's member count.
	N int
	// Interval is the time between rounds (--aae-interval).
	Interval time.Duration
	// Rate bounds the bytes/s exchanges send and fetch (--aae-rate);
	// negative means unlimited.
	Rate int64
	// ExchangesPerRound bounds the exchanges (one partition with one peer
	// whose roots differ) a round makes; partitions left over are taken
	// first by the next round. Comparing roots is not bounded by it: a
	// round compares every partition.
	ExchangesPerRound int
	// KeysPerExchange bounds the keys one exchange with one peer repairs.
	KeysPerExchange int
	// TombstoneGrace is --tombstone-grace: a Set of nothing but tombstones
	// older than this is about to be reaped everywhere, and is never pushed.
	TombstoneGrace time.Duration
	// Settle is how long an exchange whose trees differ waits before it
	// compares them again and lists the keys of only the leaves that still
	// differ (DefaultAAESettle; negative: list at once).
	Settle time.Duration
	Now    func() time.Time
	Logger *zap.Logger
}

func (c Config) withDefaults() Config {
	if c.N <= 0 {
		c.N = handoff.DefaultHandoffN
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	defaults.Set(&c.Rate, DefaultRate)
	if c.ExchangesPerRound <= 0 {
		c.ExchangesPerRound = DefaultAAEExchangesPerRound
	}
	if c.KeysPerExchange <= 0 {
		c.KeysPerExchange = DefaultAAEKeysPerExchange
	}
	if c.TombstoneGrace <= 0 {
		c.TombstoneGrace = store.DefaultTombstoneGrace
	}
	defaults.Set(&c.Settle, DefaultAAESettle)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Stats are anti-entropy's counters since start, for /cluster/status
// and metrics.
type Stats struct {
	TreesReady          bool          `json:"trees_ready"`
	TreeBuildTime       time.Duration `json:"-"`
	TreeBuildSeconds    float64       `json:"tree_build_seconds"`
	TreeKeys            int64         `json:"tree_keys"`
	Rounds              uint64        `json:"rounds"`
	RootsFetched        uint64        `json:"roots_fetched"`        // roots-of-every-partition calls to one peer
	Exchanges           uint64        `json:"exchanges"`            // tree fetches of one partition from one peer (their roots differed)
	PartitionsDiffering uint64        `json:"partitions_differing"` // exchanges whose trees still differed
	KeysPulled          uint64        `json:"keys_pulled"`
	KeysPushed          uint64        `json:"keys_pushed"`
	TombstonesNotPushed uint64        `json:"tombstones_not_pushed"`
	Errors              uint64        `json:"errors"`
	LastExchange        time.Time     `json:"last_exchange"` // last roots comparison or exchange
	LastError           string        `json:"last_error,omitempty"`
}

// AntiEntropy is Dynamo's active anti-entropy for one node (Riak's AAE):
// every Interval it fetches, from each live peer sharing a partition with
// this node, the roots of all that peer's partition trees (8 bytes a
// partition) and compares them with its own, so every partition is checked
// every round. Only partitions whose roots differ, and whose committed
// preference list holds both nodes, are exchanged: their full trees are
// compared and the keys of the differing leaves listed on both sides, and for each key that differs pulls the
// peer's Set (Get, then a local store.Merge) and pushes the merged Set back
// (Merge), so both replicas end with the same state. Keys nobody reads and
// whose hints were lost converge so.
//
// Traffic is bounded by Rate (token bucket) and KeysPerExchange. A Set made
// only of tombstones past TombstoneGrace is pulled but never pushed: it is
// about to be reaped everywhere, and pushing it to a replica that reaped it
// already would bring the tombstone back.
type AntiEntropy struct {
	cfg    Config
	log    *zap.Logger
	bucket *ratelimit.Bucket
	// next is the partition the next round exchanges first, so a backlog
	// larger than ExchangesPerRound is worked through in turn rather than
	// the low partitions starving the rest (loop goroutine only).
	next int

	mu    sync.Mutex
	stats Stats

	life lifecycle.Worker
}

// New checks cfg; Start runs it.
func New(cfg Config) (*AntiEntropy, error) {
	cfg = cfg.withDefaults()
	switch {
	case cfg.Self == "":
		return nil, errors.New("replication: anti-entropy needs Self")
	case cfg.Store == nil || cfg.Trees == nil:
		return nil, errors.New("replication: anti-entropy needs Store and Trees")
	case cfg.Membership == nil || cfg.Peers == nil:
		return nil, errors.New("replication: anti-entropy needs Membership and Peers")
	}
	rate := float64(cfg.Rate)
	return &AntiEntropy{
		cfg:    cfg,
		log:    cfg.Logger,
		bucket: ratelimit.NewBucket(rate, max(rate, 2*aaeTreeBytes), ratelimit.RealClock{}),
	}, nil
}

// Start builds the hash trees in the background and then runs a round every
// Interval until ctx ends or Close. A second call, or one after Close,
// fails (lifecycle.Worker).
func (a *AntiEntropy) Start(ctx context.Context) error {
	return a.life.Start(ctx, "replication: anti-entropy", a.loop)
}

// Close stops the rounds and waits for the current one to end.
func (a *AntiEntropy) Close() { a.life.Close() }

func (a *AntiEntropy) loop(ctx context.Context) {
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		if !a.cfg.Trees.Ready() {
			a.build(ctx)
		} else if err := a.Round(ctx); err != nil && ctx.Err() == nil {
			a.log.Debug("anti-entropy round failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *AntiEntropy) build(ctx context.Context) {
	start := time.Now()
	if err := a.cfg.Trees.Build(ctx, a.cfg.Store); err != nil {
		if !errors.Is(err, store.ErrClosed) && ctx.Err() == nil {
			a.log.Warn("building anti-entropy hash trees failed; retrying next interval", zap.Error(err))
		}
		return
	}
	a.log.Info("anti-entropy hash trees built", zap.Duration("took", time.Since(start)), zap.Int64("keys", a.cfg.Trees.Keys()))
}

// Round compares every partition this node replicates with its other live
// replicas by root, and exchanges up to ExchangesPerRound of those that
// differ. It returns the errors of the calls that failed, after trying
// every one. Round and Exchange are not safe for concurrent use (the rate
// limiter and the round-robin cursor are the loop's); tests call them
// directly on an AntiEntropy they did not Start.
func (a *AntiEntropy) Round(ctx context.Context) error {
	if !a.cfg.Trees.Ready() {
		return nil
	}
	pl := a.cfg.Membership.Placement()
	ring := pl.Committed
	if ring == nil || ring.Len() == 0 || !ring.Contains(a.cfg.Self) {
		return nil
	}
	parts := ring.Partitions()
	if parts != a.cfg.Trees.Partitions() {
		return fmt.Errorf("replication: anti-entropy: the ring has %d partitions, the trees %d", parts, a.cfg.Trees.Partitions())
	}
	defer a.count(func(s *Stats) { s.Rounds++ })
	n := min(a.cfg.N, ring.Len())
	// The other live replicas of each partition this node replicates.
	shared := make([][]string, parts)
	var peers []string
	seen := map[string]bool{}
	for p := range parts {
		prefs := ring.PreferenceList(p, n)
		if !slices.Contains(prefs, a.cfg.Self) {
			continue
		}
		for _, id := range prefs {
			if id == a.cfg.Self || a.cfg.Membership.Liveness(id) != membership.Alive {
				continue
			}
			shared[p] = append(shared[p], id)
			if !seen[id] {
				seen[id] = true
				peers = append(peers, id)
			}
		}
	}
	if len(peers) == 0 {
		return nil
	}
	local := a.cfg.Trees.Roots()
	if !local.Ready {
		return nil
	}
	var errs []error
	remote := make(map[string][]uint64, len(peers))
	for _, peer := range peers {
		roots, err := a.fetchRoots(ctx, peer, parts)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if roots != nil {
			remote[peer] = roots
		}
	}
	budget := a.cfg.ExchangesPerRound
	start := a.next % parts
	var differ []leafDiff
	func() {
		for i := range parts {
			p := (start + i) % parts
			for _, peer := range shared[p] {
				roots, ok := remote[peer]
				if !ok || roots[p] == local.Roots[p] {
					continue
				}
				if budget == 0 {
					// Resume here next round: p and those after it still
					// wait, those before it were exchanged this round.
					a.next = p
					return
				}
				budget--
				d, err := a.compare(ctx, p, peer)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					errs = append(errs, err)
				}
				if d != nil {
					differ = append(differ, *d)
				}
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	// One settle for the whole round: the exchanges' trees were compared
	// one after another above, so waiting here gives each at least Settle.
	if err := a.settleWait(ctx, len(differ)); err != nil {
		return err
	}
	for _, d := range differ {
		if err := a.reconcile(ctx, d); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// fetchRoots returns peer's roots, nil while it is still building its
// trees.
func (a *AntiEntropy) fetchRoots(ctx context.Context, peer string, parts int) (roots []uint64, err error) {
	defer func() {
		a.mu.Lock()
		a.stats.RootsFetched++
		if err == nil {
			// Comparing roots is comparing every shared partition: in a
			// converged cluster it is the only exchange there is, and
			// operators read LastExchange as "anti-entropy is running".
			a.stats.LastExchange = a.cfg.Now()
		} else {
			a.stats.Errors++
			a.stats.LastError = err.Error()
		}
		a.mu.Unlock()
	}()
	if err := a.bucket.Wait(ctx, 8*parts); err != nil {
		return nil, err
	}
	r, err := a.cfg.Peers.AAERoots(ctx, peer)
	if err != nil {
		return nil, fmt.Errorf("replication: anti-entropy roots of %s: %w", peer, err)
	}
	if !r.Ready {
		return nil, nil
	}
	if len(r.Roots) != parts {
		return nil, fmt.Errorf("replication: anti-entropy roots of %s: %d partitions, this node has %d", peer, len(r.Roots), parts)
	}
	return r.Roots, nil
}

// Exchange brings partition p of this node and of peer together: it
// compares their trees, waits Settle, and lists and repairs the keys of the
// leaves that still differ.
func (a *AntiEntropy) Exchange(ctx context.Context, p int, peer string) error {
	d, err := a.compare(ctx, p, peer)
	if err != nil || d == nil {
		return err
	}
	if err := a.settleWait(ctx, 1); err != nil {
		return err
	}
	return a.reconcile(ctx, *d)
}

func (a *AntiEntropy) count(f func(*Stats)) {
	a.mu.Lock()
	f(&a.stats)
	a.mu.Unlock()
}

// Stats returns the counters and the trees' state.
func (a *AntiEntropy) Stats() Stats {
	a.mu.Lock()
	s := a.stats
	a.mu.Unlock()
	s.TreesReady = a.cfg.Trees.Ready()
	s.TreeBuildTime, s.TreeKeys = a.cfg.Trees.BuildStats()
	s.TreeBuildSeconds = s.TreeBuildTime.Seconds()
	return s
}
