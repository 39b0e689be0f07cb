package handoff

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/internal/defaults"
	"github.com/dynkv/dynkv/internal/lifecycle"
	"github.com/dynkv/dynkv/internal/ratelimit"
	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
)

// Handoff defaults, applied to zero Config fields.
const (
	DefaultRate              = 8 << 20 // bytes/s
	DefaultHandoffBatchBytes = 1 << 20
	DefaultHandoffN          = 3
	DefaultHandoffInterval   = 5 * time.Second
	DefaultHandoffProgress   = 2 * time.Second
	DefaultStraySweepEvery   = 10 * time.Minute
	DefaultHandoffSettle     = time.Second
	// maxHandoffBackoff caps the wait before retrying a failed pass: a
	// destination down for long costs a full scan at most this often.
	maxHandoffBackoff = 2 * time.Minute
)

// errRingChanged aborts a pass whose rings are no longer current; the
// change's membership signal starts the next pass.
var errRingChanged = errors.New("replication: handoff: ring state changed during the pass")

// Membership is what Handoff needs of membership.Membership.
type Membership interface {
	State() membership.State
	ReportHandoff(membership.Handoff)
	// Subscribe returns a coalesced signal of ring state changes and a
	// function that ends the subscription.
	Subscribe() (<-chan struct{}, func())
}

// Config configures a Handoff. Self, Store, Membership and Send are
// required; zero values of the rest take the defaults above.
type Config struct {
	Self       string
	Store      *store.Store
	Membership Membership
	// Send delivers items to node id and returns once that node has made
	// them durable (node wires it to Client.MergeBatch through Replicas).
	// It must be idempotent: a failed pass sends again.
	Send func(ctx context.Context, id string, items []rpc.Item) error
	// N is the replica count before capping at the ring's member count.
	N int
	// Rate bounds handoff traffic in bytes/s, all destinations together
	// (--handoff-rate); negative means unlimited.
	Rate int64
	// BatchBytes is the size a batch to one destination grows to before it
	// is sent (or rpc.MaxBatchItems keys, whichever comes first).
	BatchBytes int
	// Interval is how often the state is re-checked without a membership
	// signal; a failed pass is retried on this tick.
	Interval time.Duration
	// ProgressInterval is how often a running transfer reports Sent/Total.
	ProgressInterval time.Duration
	// SweepInterval is how often the stray sweep runs again on an unchanged
	// ring (it always runs after a commit and at start).
	SweepInterval time.Duration
	// Settle is how long after first seeing a target the transfer scan
	// starts, so that writes coordinated here under the previous placement
	// have reached the store (see settleWait); negative means no wait.
	Settle time.Duration
	Logger *zap.Logger

	clock ratelimit.Clock // test seam; default the real clock
}

func (c Config) withDefaults() Config {
	defaults.Set(&c.N, DefaultHandoffN)
	defaults.Set(&c.Rate, DefaultRate)
	defaults.Set(&c.BatchBytes, DefaultHandoffBatchBytes)
	defaults.Set(&c.Interval, DefaultHandoffInterval)
	defaults.Set(&c.ProgressInterval, DefaultHandoffProgress)
	defaults.Set(&c.SweepInterval, DefaultStraySweepEvery)
	defaults.Set(&c.Settle, DefaultHandoffSettle)
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.clock == nil {
		c.clock = ratelimit.RealClock{}
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.Self == "" {
		errs = append(errs, errors.New("Self is empty"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("Store is nil"))
	}
	if c.Membership == nil {
		errs = append(errs, errors.New("Membership is nil"))
	}
	if c.Send == nil {
		errs = append(errs, errors.New("Send is nil"))
	}
	if c.N < 1 {
		errs = append(errs, fmt.Errorf("N is %d: must be at least 1", c.N))
	}
	if c.BatchBytes < 1 || c.BatchBytes > rpc.MaxFrameBytes/2 {
		errs = append(errs, fmt.Errorf("BatchBytes is %d: must be between 1 and %d (half the RPC frame limit)", c.BatchBytes, rpc.MaxFrameBytes/2))
	}
	for name, d := range map[string]time.Duration{"Interval": c.Interval, "ProgressInterval": c.ProgressInterval, "SweepInterval": c.SweepInterval} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s is %s: must be positive", name, d))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("replication: invalid handoff config: %w", errors.Join(errs...))
	}
	return nil
}

// Handoff moves data to its new owners when the ring changes (Dynamo's
// ownership transfer, Riak's handoff). While a transition is pending, every
// key whose committed preference list holds this node is copied to the nodes
// its target list adds; once the whole store has been scanned and every
// batch acknowledged, the node reports Done for the transition, and the ring
// commits when every member has. Keys are copied, not moved, so they stay
// readable under the committed ring until the commit. With no transition
// pending, a stray sweep pushes keys this node holds but does not replicate
// (it left, was removed, or a partition moved away) to their owners and
// drops them locally once every owner has acknowledged them.
//
// One goroutine, owned by Start and Close, does all the work.
type Handoff struct {
	cfg    Config
	log    *zap.Logger
	bucket *ratelimit.Bucket

	life lifecycle.Worker

	// Loop state, touched only by the goroutine (or a test driving step).
	doneFP    membership.Fingerprint // the transition last reported Done
	haveDone  bool
	sweptFP   membership.Fingerprint // the committed ring last swept clean
	haveSwept bool
	lastSweep time.Time
	// settleFP is the target first seen at settleSince.
	settleFP    membership.Fingerprint
	settleSince time.Time
	haveSettle  bool
	// After a failed pass towards failedFP, no new pass for it starts
	// before retryAt; the wait doubles with each failure in a row.
	failedMode handoffMode
	failedFP   membership.Fingerprint
	failStreak int
	retryAt    time.Time

	stats struct {
		passes, failures, keysSent, bytesSent, keysDropped atomic.Uint64
	}
}

// Stats are cumulative counters since New.
type Stats struct {
	Passes      uint64 // transfer and sweep passes completed
	Failures    uint64 // passes that failed (and will be retried)
	KeysSent    uint64 // key copies acknowledged by their destination
	BytesSent   uint64 // encoded bytes of those copies
	KeysDropped uint64 // strays dropped after every owner acknowledged them
}

// New checks cfg and returns a Handoff ready to Start.
func New(cfg Config) (*Handoff, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// A burst of one batch lets a pass start at once; the rate holds after.
	return &Handoff{
		cfg:    cfg,
		log:    cfg.Logger,
		bucket: ratelimit.NewBucket(float64(cfg.Rate), float64(cfg.BatchBytes), cfg.clock),
	}, nil
}

// Start runs the handoff loop until ctx ends or Close is called. A second
// call, or one after Close, fails (lifecycle.Worker).
func (h *Handoff) Start(ctx context.Context) error {
	signals, unsubscribe := h.cfg.Membership.Subscribe()
	err := h.life.Start(ctx, "replication: handoff", func(ctx context.Context) {
		h.run(ctx, signals, unsubscribe)
	})
	if err != nil {
		unsubscribe()
	}
	return err
}

// Close stops the loop, abandoning a pass in flight (it resumes from the
// start of a scan after a restart: sends are idempotent), and waits for it.
func (h *Handoff) Close() { h.life.Close() }

// Stats returns the counters.
func (h *Handoff) Stats() Stats {
	return Stats{
		Passes:      h.stats.passes.Load(),
		Failures:    h.stats.failures.Load(),
		KeysSent:    h.stats.keysSent.Load(),
		BytesSent:   h.stats.bytesSent.Load(),
		KeysDropped: h.stats.keysDropped.Load(),
	}
}

func (h *Handoff) run(ctx context.Context, signals <-chan struct{}, unsubscribe func()) {
	defer unsubscribe()
	tick := time.NewTicker(h.cfg.Interval)
	defer tick.Stop()
	for {
		if err := h.step(ctx); err != nil && ctx.Err() == nil {
			if errors.Is(err, errRingChanged) {
				h.log.Debug("handoff pass abandoned: the ring changed", zap.Error(err))
			} else {
				h.log.Warn("handoff pass failed; retrying later", zap.Error(err), zap.Duration("retry_in", h.cfg.Interval))
			}
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-signals:
			if !ok {
				signals = nil // membership shut down; keep to the tick
			}
		case <-tick.C:
		}
	}
}

// step does whatever the current ring state calls for: a transfer pass if a
// transition is pending and this node has not reported it Done, else a stray
// sweep if the committed ring changed since the last clean sweep or the
// sweep is due.
func (h *Handoff) step(ctx context.Context) error {
	for {
		st := h.cfg.Membership.State()
		if !st.Pending() {
			cfp := st.Committed.Fingerprint()
			if h.haveSwept && h.sweptFP == cfp && h.cfg.clock.Now().Sub(h.lastSweep) < h.cfg.SweepInterval {
				return nil
			}
			if h.backingOff(modeSweep, cfp) {
				return nil
			}
			return h.sweep(ctx, st, cfp)
		}
		fp := st.TargetFingerprint()
		if st.Committed.Epoch == 0 {
			return nil // a joiner that has not heard from its cluster yet
		}
		if h.haveDone && h.doneFP == fp {
			return nil
		}
		if m, ok := st.Member(h.cfg.Self); ok && m.Handoff.Done && m.Handoff.Target == fp {
			h.doneFP, h.haveDone = fp, true // reported before a restart
			return nil
		}
		if h.backingOff(modeTransfer, fp) {
			return nil
		}
		if wait := h.settleWait(fp); wait > 0 {
			if err := h.cfg.clock.Sleep(ctx, wait); err != nil {
				return err
			}
			continue // the state may have moved on meanwhile
		}
		return h.transfer(ctx, st, fp)
	}
}

// backingOff reports whether a pass of mode towards fp failed recently
// enough that retrying must wait. A new ring state retries at once.
func (h *Handoff) backingOff(mode handoffMode, fp membership.Fingerprint) bool {
	if h.failStreak == 0 || h.failedMode != mode || h.failedFP != fp {
		return false
	}
	return h.cfg.clock.Now().Before(h.retryAt)
}

// passEnded records a pass's outcome for the retry backoff and the stats.
func (h *Handoff) passEnded(ctx context.Context, mode handoffMode, fp membership.Fingerprint, err error) {
	switch {
	case err == nil:
		h.failStreak = 0
		h.stats.passes.Add(1)
	case errors.Is(err, errRingChanged) || ctx.Err() != nil:
		// Not a failure: the next state, or a shutdown.
	default:
		h.stats.failures.Add(1)
		if h.failedMode != mode || h.failedFP != fp {
			h.failStreak = 0
		}
		h.failedMode, h.failedFP = mode, fp
		h.failStreak++
		wait := maxHandoffBackoff
		if shift := h.failStreak - 1; shift < 16 {
			wait = min(wait, h.cfg.Interval<<shift)
		}
		h.retryAt = h.cfg.clock.Now().Add(wait)
	}
}

// settleWait is how much longer to wait before the first scan for target
// fp. A write this node coordinates with a placement taken just before it
// learnt of the target reaches only the committed replicas; its local apply
// follows the placement within moments, so a scan that starts Settle later
// sees it and sends it on.
func (h *Handoff) settleWait(fp membership.Fingerprint) time.Duration {
	now := h.cfg.clock.Now()
	if !h.haveSettle || h.settleFP != fp {
		h.settleFP, h.settleSince, h.haveSettle = fp, now, true
	}
	return h.cfg.Settle - now.Sub(h.settleSince)
}

func (h *Handoff) transfer(ctx context.Context, st membership.State, fp membership.Fingerprint) error {
	committed := membership.NewRing(st.Committed.Members, st.Partitions)
	target := membership.NewRing(st.Target(), st.Partitions)
	p := h.newPass(modeTransfer, newHandoffPlan(h.cfg.Self, modeTransfer, h.cfg.N, committed, target), fp)
	h.log.Info("handoff started",
		zap.Uint64("epoch", st.Committed.Epoch),
		zap.Strings("committed", st.Committed.Members),
		zap.Strings("target", st.Target()))
	h.cfg.Membership.ReportHandoff(membership.Handoff{Target: fp})
	err := p.run(ctx)
	h.passEnded(ctx, modeTransfer, fp, err)
	if err != nil {
		if !errors.Is(err, errRingChanged) && ctx.Err() == nil {
			p.report(false) // the progress so far; Done waits for a clean pass
		}
		return err
	}
	p.report(true)
	h.doneFP, h.haveDone = fp, true
	h.log.Info("handoff done",
		zap.Uint64("keys_sent", p.sentKeys),
		zap.Uint64("bytes_sent", p.sentBytes),
		zap.Duration("took", h.cfg.clock.Now().Sub(p.started)))
	return nil
}

func (h *Handoff) sweep(ctx context.Context, st membership.State, cfp membership.Fingerprint) error {
	committed := membership.NewRing(st.Committed.Members, st.Partitions)
	p := h.newPass(modeSweep, newHandoffPlan(h.cfg.Self, modeSweep, h.cfg.N, committed, nil), cfp)
	err := p.run(ctx)
	h.passEnded(ctx, modeSweep, cfp, err)
	if p.totalKeys > 0 || p.kept > 0 {
		h.log.Info("stray sweep ended",
			zap.Uint64("keys_sent", p.sentKeys),
			zap.Uint64("keys_dropped", p.dropped),
			zap.Uint64("keys_kept_changed", p.kept),
			zap.Uint64("keys_kept_unacknowledged", p.skipped),
			zap.Error(err))
	}
	if err != nil {
		return err
	}
	// A key kept because it changed under the sweep is still a stray: leave
	// the ring marked unswept so the next tick, not the next SweepInterval,
	// hands it off.
	h.sweptFP, h.haveSwept, h.lastSweep = cfp, p.kept == 0, h.cfg.clock.Now()
	return nil
}
