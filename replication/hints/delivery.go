package hints

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/internal/lifecycle"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// Defaults of Config.
const (
	DefaultHintInterval   = time.Second
	DefaultHintMaxBackoff = 30 * time.Second
	// hintBatchBytes bounds the encoded sets of one delivery batch, so a
	// batch transfers well within the RPC timeout.
	hintBatchBytes = 1 << 20
)

// Config wires a Delivery to its node.
type Config struct {
	// Store holds the hints (store.PutHint) and loses them once delivered.
	Store *store.Store
	// Send merges items into node id, in order (Replicas.MergeBatch): the
	// local store when id is this node.
	Send func(ctx context.Context, id string, items []rpc.Item) error
	// Alive reports whether the failure detector considers id alive.
	Alive func(id string) bool
	// InRing reports whether id is still a member of the ring (committed or
	// target). Hints for a node that left or was removed go to the key's
	// current replicas instead.
	InRing func(id string) bool
	// PreferenceList is the key's committed preference list, for hints
	// whose owner left the ring.
	PreferenceList func(db int, key []byte) []string
	// Interval between delivery passes (--hint-interval); default 1s.
	Interval time.Duration
	// MaxBackoff caps the per-owner backoff after failed deliveries;
	// default 30s.
	MaxBackoff time.Duration
	// Timeout bounds one delivery call; default rpc.DefaultTimeout.
	Timeout time.Duration
	// MaxAge drops, undelivered, a hint first stored longer ago than this
	// (node sets --tombstone-grace; 0 keeps hints forever). A hint that
	// old may predate a delete whose tombstone every replica has since
	// reclaimed, and delivering it would bring the value back (Cassandra
	// bounds hints by gc_grace for the same reason). Nothing is lost: the
	// write's coordinator is a replica and holds it, and anti-entropy
	// spreads it.
	MaxAge time.Duration
	Logger *zap.Logger
	// Now is the clock behind backoffs; default time.Now.
	Now func() time.Time
	// HintClock is the clock the store stamps hints with (store.Options.Now),
	// against which MaxAge is measured; default Now.
	HintClock func() time.Time
}

// Stats are counters since the worker started, and the hints
// the store holds now.
type Stats struct {
	Delivered uint64 // hints handed over and dropped
	Failed    uint64 // delivery attempts that failed (each starts a backoff)
	Expired   uint64 // hints dropped undelivered after MaxAge
	Pending   int    // hints held now, every owner
}

// Delivery is the hinted-handoff worker (Dynamo section 4.6): every
// Interval, for each owner with hints whose failure detector verdict is
// alive, it merges the hints into the owner in batches and drops each one
// the owner acknowledged, unless it changed meanwhile. A failed delivery
// backs off exponentially per owner, jittered, up to MaxBackoff. Start
// runs it; Close stops it and waits.
type Delivery struct {
	cfg Config
	log *zap.Logger

	mu      sync.Mutex // guards backoff
	backoff map[string]ownerBackoff

	delivered, failed, expired atomic.Uint64

	life lifecycle.Worker
	kick chan struct{}
}

type ownerBackoff struct {
	failures int
	until    time.Time
}

// New returns a stopped worker for cfg.
func New(cfg Config) *Delivery {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultHintInterval
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultHintMaxBackoff
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = rpc.DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HintClock == nil {
		cfg.HintClock = cfg.Now
	}
	return &Delivery{
		cfg: cfg, log: cfg.Logger, backoff: map[string]ownerBackoff{},
		kick: make(chan struct{}, 1),
	}
}

// Start runs the delivery loop in a goroutine, until ctx ends or Close.
// A second call, or one after Close, fails (lifecycle.Worker).
func (d *Delivery) Start(ctx context.Context) error {
	return d.life.Start(ctx, "hints: delivery", d.loop)
}

// Close stops the loop, cancelling a delivery in flight, and waits for it.
func (d *Delivery) Close() { d.life.Close() }

// Kick asks for a delivery pass now, for example when a member came back.
func (d *Delivery) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Stats returns the counters and the hints pending now.
func (d *Delivery) Stats() Stats {
	pending := 0
	for _, st := range d.cfg.Store.HintStats() {
		pending += st.Count
	}
	return Stats{Delivered: d.delivered.Load(), Failed: d.failed.Load(), Expired: d.expired.Load(), Pending: pending}
}

func (d *Delivery) loop(ctx context.Context) {
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.kick:
		}
		d.RunOnce(ctx)
	}
}

// RunOnce makes one delivery pass over every owner not backing off. The
// loop calls it every Interval; tests call it directly.
func (d *Delivery) RunOnce(ctx context.Context) {
	for _, owner := range d.cfg.Store.HintOwners() {
		if ctx.Err() != nil {
			return
		}
		if !d.due(owner) {
			continue
		}
		var err error
		if d.cfg.InRing == nil || d.cfg.InRing(owner) {
			if d.cfg.Alive != nil && !d.cfg.Alive(owner) {
				continue
			}
			err = d.deliverToOwner(ctx, owner)
		} else {
			err = d.redirect(ctx, owner)
		}
		if err != nil && ctx.Err() == nil {
			d.fail(owner, err)
			continue
		}
		d.succeed(owner)
	}
}

func (d *Delivery) due(owner string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.backoff[owner]
	return !ok || !d.cfg.Now().Before(b.until)
}

func (d *Delivery) fail(owner string, err error) {
	d.failed.Add(1)
	d.mu.Lock()
	b := d.backoff[owner]
	b.failures++
	delay := d.cfg.Interval << min(b.failures, 20)
	if delay > d.cfg.MaxBackoff || delay <= 0 {
		delay = d.cfg.MaxBackoff
	}
	// Jittered in [delay/2, delay) so holders of hints for the same owner
	// do not retry in step.
	delay = delay/2 + rand.N(delay/2+1)
	b.until = d.cfg.Now().Add(delay)
	d.backoff[owner] = b
	d.mu.Unlock()
	d.log.Debug("hint delivery failed; backing off", zap.String("peer", owner),
		zap.Int("failures", b.failures), zap.Duration("backoff", delay), zap.Error(err))
}

func (d *Delivery) succeed(owner string) {
	d.mu.Lock()
	delete(d.backoff, owner)
	d.mu.Unlock()
}

// Backoff reports how long owner's deliveries are suspended (0: none).
func (d *Delivery) Backoff(owner string) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.backoff[owner]
	if !ok {
		return 0
	}
	return max(0, b.until.Sub(d.cfg.Now()))
}

// deliverToOwner sends owner's hints in batches of at most rpc.MaxBatchItems
// and hintBatchBytes, then drops each acknowledged hint that is unchanged.
func (d *Delivery) deliverToOwner(ctx context.Context, owner string) error {
	var items []rpc.Item
	size := 0
	flush := func() error {
		if len(items) == 0 {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		err := d.cfg.Send(cctx, owner, items)
		cancel()
		if err != nil {
			return fmt.Errorf("replication: deliver %d hints to %s: %w", len(items), owner, err)
		}
		for _, it := range items {
			if err := d.drop(owner, it); err != nil {
				return err
			}
		}
		items, size = items[:0], 0
		return nil
	}
	err := d.cfg.Store.ScanHints(owner, func(db int, key []byte, set vclock.Set, created time.Time) error {
		if expired, err := d.expire(owner, db, key, set, created); expired || err != nil {
			return err
		}
		items = append(items, rpc.Item{DB: db, Key: key, Set: set})
		size += len(key) + len(set.Encode())
		if len(items) >= rpc.MaxBatchItems || size >= hintBatchBytes {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

func (d *Delivery) drop(owner string, it rpc.Item) error {
	dropped, err := d.cfg.Store.DropHint(owner, it.DB, it.Key, it.Set)
	if err != nil {
		return fmt.Errorf("replication: drop delivered hint for %s: %w", owner, err)
	}
	if dropped {
		d.delivered.Add(1)
	}
	// Not dropped: the hint grew while it was in flight; the next pass
	// delivers the rest.
	return nil
}

// redirect delivers the hints of an owner that left the ring to each key's
// current committed replicas, dropping a hint once every replica took it,
// so nothing acknowledged through the old owner is lost.
func (d *Delivery) redirect(ctx context.Context, owner string) error {
	var firstErr error
	err := d.cfg.Store.ScanHints(owner, func(db int, key []byte, set vclock.Set, created time.Time) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if expired, err := d.expire(owner, db, key, set, created); expired || err != nil {
			return err
		}
		var targets []string
		if d.cfg.PreferenceList != nil {
			targets = d.cfg.PreferenceList(db, key)
		}
		if len(targets) == 0 {
			if firstErr == nil {
				firstErr = fmt.Errorf("replication: hints for %s, which left the ring: no replicas for the key yet", owner)
			}
			return nil
		}
		ok := true
		for _, id := range targets {
			if id == owner {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
			err := d.cfg.Send(cctx, id, []rpc.Item{{DB: db, Key: key, Set: set}})
			cancel()
			if err != nil {
				ok = false
				if firstErr == nil {
					firstErr = fmt.Errorf("replication: redirect hint for departed %s to %s: %w", owner, id, err)
				}
			}
		}
		if !ok {
			return nil
		}
		return d.drop(owner, rpc.Item{DB: db, Key: key, Set: set})
	})
	if err != nil {
		return err
	}
	return firstErr
}

// expire drops a hint older than MaxAge instead of delivering it and
// reports whether it did.
func (d *Delivery) expire(owner string, db int, key []byte, set vclock.Set, created time.Time) (bool, error) {
	if d.cfg.MaxAge <= 0 || d.cfg.HintClock().Sub(created) <= d.cfg.MaxAge {
		return false, nil
	}
	dropped, err := d.cfg.Store.DropHint(owner, db, key, set)
	if err != nil {
		return true, fmt.Errorf("replication: drop expired hint for %s: %w", owner, err)
	}
	if dropped {
		d.expired.Add(1)
		d.log.Debug("hint older than the tombstone grace dropped undelivered", zap.String("peer", owner),
			zap.Time("created", created))
	}
	return true, nil
}
