package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"go.uber.org/zap"

	"github.com/dynkv/dynkv/internal/defaults"
	"github.com/dynkv/dynkv/vclock"
	"github.com/dynkv/dynkv/wal"
)

// Sentinel errors callers branch on; returned errors wrap them with context.
var (
	ErrNotFound    = errors.New("store: key not found")
	ErrDiskFull    = errors.New("store: disk full")
	ErrBadDatabase = errors.New("store: database number out of range")
	ErrBadKey      = errors.New("store: key must be 1 to 1024 bytes")
	ErrClosed      = errors.New("store: closed")
	// ErrWrongType: the key holds another kind of data (a value, or a
	// counter) than the operation works on.
	ErrWrongType = vclock.ErrWrongType
	// ErrCounterOverflow: the increment would take the counter out of
	// the int64 range.
	ErrCounterOverflow = vclock.ErrCounterOverflow
)

const (
	// lockStripes bounds the memory of per-key locking; two keys sharing a
	// stripe only serialise, never deadlock, since a write holds one stripe.
	lockStripes = 4096
	// pendingRetryInterval paces re-applying WAL records LevelDB rejected.
	pendingRetryInterval = 100 * time.Millisecond
	// levelDBReopenInterval paces reopening LevelDB while applies fail.
	levelDBReopenInterval = time.Second
)

var (
	writeNoSync = &opt.WriteOptions{Sync: false}
	writeSync   = &opt.WriteOptions{Sync: true}
)

// Store is one node's local engine. All methods are safe for concurrent use.
type Store struct {
	opts   Options
	log    *zap.Logger
	ldbDir string
	// ldb is swapped only by reopenLevelDB, under ldbSwap, the gate and
	// ckptMu; readers that find a closed handle wait on ldbSwap and retry.
	ldb     atomic.Pointer[leveldb.DB]
	ldbSwap sync.RWMutex
	// lastReopen paces LevelDB reopens (maintain goroutine only).
	lastReopen   time.Time
	reopens      atomic.Uint64
	wal          *wal.WAL
	space        *freeSpaceGuard
	segmentBytes int64

	locks [lockStripes]sync.Mutex

	// gate is held shared by every write from before its WAL append until
	// after its LevelDB apply, and exclusively by Checkpoint and Close: a
	// checkpoint LSN then never covers a record LevelDB has not absorbed.
	gate   sync.RWMutex
	closed atomic.Bool

	// pending holds WAL-durable records LevelDB rejected, oldest first.
	// While it is non-empty every write is refused (pendingErr says why) and
	// checkpoints stop before its first LSN.
	pendingMu  sync.Mutex
	pending    []pendingApply
	pendingErr error
	pendingN   atomic.Int64

	ckptMu          sync.Mutex // serialises checkpoints
	checkpointLSN   atomic.Uint64
	sinceCheckpoint atomic.Int64 // WAL payload bytes appended since the last checkpoint
	kick            chan struct{}

	// cache holds recent states in front of LevelDB (cache.go); nil when
	// Options.CacheBytes turns it off.
	cache *stateCache

	// apply writes a batch to LevelDB; tests replace it to inject faults.
	apply func(*leveldb.Batch) error

	hints hintIndex  // in-memory summary of the hint namespace (hints.go)
	quar  quarantine // damaged records moved aside (quarantine.go)

	keysWritten atomic.Uint64
	replayed    atomic.Uint64
	reclaimed   atomic.Uint64
	buried      atomic.Uint64 // keys whose expired values became tombstones

	// canDrop, when set, overrides Options.CanDropTombstone: the node opens
	// the store before membership exists and installs the hook later.
	canDrop atomic.Pointer[func(db int, key []byte) bool]

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) the store under opts.Dir, replays the WAL past the
// last checkpoint into LevelDB, checkpoints, and starts the background
// checkpointer and reclaimer. Close stops them.
func Open(opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	ldbDir := filepath.Join(opts.Dir, "leveldb")
	walDir := filepath.Join(opts.Dir, "wal")
	for _, d := range []string{opts.Dir, ldbDir, walDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("store: create %s: %w", d, err)
		}
	}
	ldb, err := openLevelDB(ldbDir)
	if err != nil {
		return nil, err
	}
	s := &Store{
		opts:         opts,
		log:          opts.Logger,
		ldbDir:       ldbDir,
		space:        newFreeSpaceGuard(opts.Dir, opts.MinFreeBytes),
		segmentBytes: opts.SegmentSize,
		kick:         make(chan struct{}, 1),
		stop:         make(chan struct{}),
	}
	if opts.checkpointBytes != 0 {
		s.segmentBytes = opts.checkpointBytes
	}
	defaults.Set(&s.segmentBytes, wal.DefaultSegmentSize)
	s.ldb.Store(ldb)
	s.cache = newStateCache(opts.CacheBytes)
	s.apply = func(b *leveldb.Batch) error { return s.db().Write(b, writeNoSync) }
	if opts.wrapApply != nil {
		s.apply = opts.wrapApply(s.apply)
	}
	if opts.freeSpace != nil {
		s.space.stat = opts.freeSpace
	}
	s.quar.init(opts.Dir)

	ckpt, err := s.readCheckpoint()
	if err != nil {
		ldb.Close()
		return nil, err
	}
	s.checkpointLSN.Store(ckpt)
	w, err := wal.Open(wal.Options{
		Dir:         walDir,
		SegmentSize: opts.SegmentSize,
		Sync:        opts.Sync,
		Repair:      opts.Repair,
		StartLSN:    ckpt + 1,
		FS:          opts.FS,
		Logger:      opts.Logger.Named("wal"),
		Observer:    opts.WALObserver,
	})
	if err != nil {
		ldb.Close()
		return nil, fmt.Errorf("store: open WAL at %s: %w", walDir, err)
	}
	s.wal = w
	if err := s.replay(ckpt); err != nil {
		w.Close()
		ldb.Close()
		return nil, err
	}
	if err := s.Checkpoint(); err != nil {
		w.Close()
		ldb.Close()
		return nil, fmt.Errorf("store: checkpoint after replay: %w", err)
	}
	if err := s.loadHintStats(); err != nil {
		w.Close()
		ldb.Close()
		return nil, err
	}
	s.log.Info("store opened",
		zap.String("dir", opts.Dir),
		zap.Uint64("checkpoint_lsn", ckpt),
		zap.Uint64("replayed_records", s.replayed.Load()),
		zap.Uint64("last_lsn", w.LastLSN()))

	s.wg.Add(2)
	go s.maintain()
	go s.reclaimLoop()
	return s, nil
}

// Get returns the key's raw Set, tombstones and expired values included;
// callers filter with Set.Live. ErrNotFound when the store holds no record.
func (s *Store) Get(db int, key []byte) (vclock.Set, error) {
	if err := s.checkKey(db, key); err != nil {
		return vclock.Set{}, err
	}
	set, found, err := s.readCurrent(db, key)
	if _, ok := errors.AsType[*damagedError](err); ok {
		set, found, err = s.readQuarantining(db, key)
	}
	if err != nil {
		return vclock.Set{}, err
	}
	if !found {
		return vclock.Set{}, ErrNotFound
	}
	return set, nil
}

// readQuarantining is read for a caller that does not hold the key's lock
// (Get): it takes the lock so that moving a damaged record aside cannot
// race with a write, and reads the key as absent when the record could
// not be moved aside (a full disk): it is skipped for now.
func (s *Store) readQuarantining(db int, key []byte) (vclock.Set, bool, error) {
	mu := s.lockFor(db, key)
	mu.Lock()
	defer mu.Unlock()
	set, found, err := s.read(db, key)
	if errors.Is(err, errNotQuarantined) {
		return vclock.Set{}, false, nil
	}
	return set, found, err
}

// Put is Write with the client context ctx, where a zero ctx is a blind
// write (Supersede{Blind: true}). Tests and tools that write directly use
// it; the coordinator says what a write supersedes with Write.
func (s *Store) Put(db int, key []byte, actor string, ctx vclock.Context, sib vclock.Sibling) (vclock.Set, vclock.Context, error) {
	return s.Write(db, key, actor, Supersede{Blind: ctx.IsZero(), Context: ctx}, sib)
}

// Merge folds a Set from another replica into this one (replication, read
// repair, handoff). It writes nothing when the result equals what the store
// holds, so repeating it is cheap; the outcome is independent of order.
func (s *Store) Merge(db int, key []byte, in vclock.Set) (vclock.Set, error) {
	merged, _, err := s.merge(db, key, in, false)
	return merged, err
}

// MergeCovering is Merge on one condition: in's context covers every write
// this replica holds for the key (its context, siblings and the versions
// they superseded). Then the merge leaves exactly in's siblings, and it
// reports covered. Otherwise it writes nothing and returns the replica's
// current state, covered false: the writer has not seen some version here.
// It is how a coordinator proves, replica by replica, that a blind write
// supersedes everything a quorum held (coordinator.coverBlindWrite).
func (s *Store) MergeCovering(db int, key []byte, in vclock.Set) (vclock.Set, bool, error) {
	return s.merge(db, key, in, true)
}

// merge is Merge, or MergeCovering when covering is set.
func (s *Store) merge(db int, key []byte, in vclock.Set, covering bool) (vclock.Set, bool, error) {
	if err := s.checkKey(db, key); err != nil {
		return vclock.Set{}, false, err
	}
	mu := s.lockFor(db, key)
	mu.Lock()
	defer mu.Unlock()
	cur, found, err := s.read(db, key)
	if err != nil {
		return vclock.Set{}, false, err
	}
	if covering && !cur.Context.CoveredBy(in.Context) {
		return cur, false, nil
	}
	merged, err := s.mergeLocked(db, key, cur, found, in)
	return merged, true, err
}

// mergeLocked folds in into cur, the key's state read under its lock.
func (s *Store) mergeLocked(db int, key []byte, cur vclock.Set, found bool, in vclock.Set) (vclock.Set, error) {
	merged := vclock.Merge(cur, in)
	if found && merged.Equal(cur) {
		return cur, nil
	}
	if !found && len(merged.Siblings) == 0 && merged.Context.IsZero() {
		return merged, nil
	}
	if err := s.commitPut(db, key, cur, found, merged); err != nil {
		return vclock.Set{}, err
	}
	return merged, nil
}

func (s *Store) checkKey(db int, key []byte) error {
	if db < 0 || db >= s.opts.Databases {
		return fmt.Errorf("store: database %d, want 0 to %d: %w", db, s.opts.Databases-1, ErrBadDatabase)
	}
	if len(key) < 1 || len(key) > MaxKeyLen {
		return fmt.Errorf("store: key of %d bytes: %w", len(key), ErrBadKey)
	}
	return nil
}

func keyHash(db int, key []byte) uint64 {
	// Mixing db in after hashing avoids building a db+key buffer per call.
	return xxhash.Sum64(key) ^ (uint64(db)+1)*0x9E3779B97F4A7C15
}

func (s *Store) lockFor(db int, key []byte) *sync.Mutex {
	return &s.locks[keyHash(db, key)%lockStripes]
}

// read returns the key's current state; the caller holds the key's lock.
// A stored record that does not decode is moved aside (quarantine.go) and
// the key reads as absent, so that a write or a merge replaces it; if it
// cannot be moved aside, read fails (wrapping errNotQuarantined).
func (s *Store) read(db int, key []byte) (vclock.Set, bool, error) {
	set, found, err := s.readCurrent(db, key)
	if d, ok := errors.AsType[*damagedError](err); ok {
		if err := s.quarantineDataLocked(d); err != nil {
			return vclock.Set{}, false, err
		}
		return vclock.Set{}, false, nil
	}
	return set, found, err
}

// readCurrent returns the key's current state: a pending (durable, not yet
// applied) state if there is one, else LevelDB's. A record that does not
// decode is a *damagedError.
func (s *Store) readCurrent(db int, key []byte) (vclock.Set, bool, error) {
	return s.readState(db, key, s.cache != nil)
}

// readStored is readCurrent past the state cache.
func (s *Store) readStored(db int, key []byte) (vclock.Set, bool, error) {
	return s.readState(db, key, false)
}

func (s *Store) readState(db int, key []byte, cached bool) (vclock.Set, bool, error) {
	if s.closed.Load() {
		return vclock.Set{}, false, ErrClosed
	}
	if s.pendingN.Load() > 0 {
		if p, ok := s.pendingState(db, key); ok {
			return p.set, !p.dropped, nil
		}
	}
	if cached {
		return s.readCached(db, key)
	}
	return s.readLevelDB(db, key)
}

// readCached is readLevelDB through the state cache.
func (s *Store) readCached(db int, key []byte) (vclock.Set, bool, error) {
	enc, found, hit, seq := s.cache.get(db, key)
	var err error
	if !hit {
		if enc, found, err = s.readLevelDBRaw(db, key); err != nil {
			return vclock.Set{}, false, err
		}
	}
	if !found {
		if !hit {
			s.cache.fill(db, key, nil, false, seq)
		}
		return vclock.Set{}, false, nil
	}
	set, err := vclock.DecodeSet(enc)
	if err != nil {
		return vclock.Set{}, false, damagedData(db, key, enc, err)
	}
	if !hit {
		s.cache.fill(db, key, enc, true, seq)
	}
	return set, true, nil
}

func (s *Store) readLevelDB(db int, key []byte) (vclock.Set, bool, error) {
	v, found, err := s.readLevelDBRaw(db, key)
	if err != nil || !found {
		return vclock.Set{}, false, err
	}
	set, err := vclock.DecodeSet(v)
	if err != nil {
		return vclock.Set{}, false, damagedData(db, key, v, err)
	}
	return set, true, nil
}

// readLevelDBRaw returns the key's stored bytes.
func (s *Store) readLevelDBRaw(db int, key []byte) ([]byte, bool, error) {
	dk := dataKey(db, key)
	v, err := s.db().Get(dk, nil)
	if errors.Is(err, leveldb.ErrClosed) && !s.closed.Load() {
		// A reopen swapped the handle under us; wait for it to finish.
		s.ldbSwap.RLock()
		v, err = s.db().Get(dk, nil)
		s.ldbSwap.RUnlock()
	}
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		return nil, false, nil
	case errors.Is(err, leveldb.ErrClosed):
		return nil, false, ErrClosed
	case err != nil:
		return nil, false, fmt.Errorf("store: read db %d key_hash %016x: %w", db, keyHash(db, key), err)
	}
	return v, true, nil
}

// commitPut makes next the key's state: WAL first, then LevelDB.
func (s *Store) commitPut(db int, key []byte, old vclock.Set, oldFound bool, next vclock.Set) error {
	body := next.Encode()
	payload := encodeRecord(opPut, db, key, body)
	p := pendingApply{set: next, after: body}
	if s.opts.OnChange != nil {
		p.before = s.encodeForHook(old, oldFound)
	}
	err := s.commit(db, key, payload, s.putBatch(db, key, old, oldFound, next, body), p)
	if err == nil {
		s.keysWritten.Add(1)
	}
	return err
}

// commit appends payload to the WAL and applies batch to LevelDB; p
// describes the new state should the apply have to be retried. The caller
// holds the key's lock.
func (s *Store) commit(db int, key []byte, payload []byte, batch *leveldb.Batch, p pendingApply) error {
	if err := s.space.check(); err != nil {
		return err
	}
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.refuseWhilePending(); err != nil {
		return err
	}
	lsn, err := s.wal.Append(payload)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			s.space.invalidate()
			return fmt.Errorf("store: WAL append (%s): %w: %w", p.subject(db), ErrDiskFull, err)
		}
		if errors.Is(err, wal.ErrClosed) {
			return fmt.Errorf("store: WAL append (%s): %w: %w", p.subject(db), ErrClosed, err)
		}
		return fmt.Errorf("store: WAL append (%s): %w", p.subject(db), err)
	}
	if s.opts.OnChange != nil && !p.hint {
		// Durable now, so reported even if the apply below fails: reads
		// return the queued state. Deferred to run before the gate's
		// RUnlock, which ScanMarked relies on.
		defer s.opts.OnChange(db, key, p.before, p.after)
	}
	if err := s.apply(batch); err != nil {
		aerr := classifyApplyError(err)
		p.lsn, p.db, p.key, p.batch = lsn, db, append([]byte(nil), key...), batch
		s.pendingMu.Lock()
		s.pending = append(s.pending, p)
		s.pendingErr = aerr
		s.pendingN.Add(1)
		s.pendingMu.Unlock()
		s.cacheChange(db, key, p)
		s.log.Error("LevelDB apply failed after WAL append; refusing writes until a retry applies it",
			zap.Uint64("lsn", lsn), zap.Int("db", db), zap.Error(err))
		return fmt.Errorf("store: apply WAL record %d (%s) to LevelDB; it is durable and will be applied by a retry or on the next open: %w", lsn, p.subject(db), aerr)
	}
	s.cacheChange(db, key, p)
	if s.sinceCheckpoint.Add(int64(len(payload))) >= s.segmentBytes {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// cacheChange records a committed change in the state cache. It runs once
// the change is applied, or queued (reads check the queue first): a change
// cached before LevelDB holds it could be evicted, and a reader that then
// missed would cache the older state LevelDB still returned.
func (s *Store) cacheChange(db int, key []byte, p pendingApply) {
	if s.cache != nil && !p.hint {
		s.cache.set(db, key, p.after, !p.dropped)
	}
}

// encodeForHook is a state as Options.OnChange reports it: nil when absent,
// nil too when no hook wants it (the encoding is not free).
func (s *Store) encodeForHook(set vclock.Set, found bool) []byte {
	if !found || s.opts.OnChange == nil {
		return nil
	}
	return set.Encode()
}

// putBatch writes the new state and moves the key's reclaim index entry.
func (s *Store) putBatch(db int, key []byte, old vclock.Set, oldFound bool, next vclock.Set, encoded []byte) *leveldb.Batch {
	b := new(leveldb.Batch)
	b.Put(dataKey(db, key), encoded)
	newAt, newOK := reclaimAt(next, s.opts.TombstoneGrace)
	if oldFound {
		if oldAt, ok := reclaimAt(old, s.opts.TombstoneGrace); ok && (!newOK || oldAt != newAt) {
			b.Delete(reclaimKey(oldAt, db, key))
		}
	}
	if newOK {
		b.Put(reclaimKey(newAt, db, key), nil)
	}
	return b
}

func (s *Store) dropBatch(db int, key []byte, old vclock.Set, oldFound bool) *leveldb.Batch {
	b := new(leveldb.Batch)
	b.Delete(dataKey(db, key))
	if oldFound {
		if at, ok := reclaimAt(old, s.opts.TombstoneGrace); ok {
			b.Delete(reclaimKey(at, db, key))
		}
	}
	return b
}

// Close stops the background work, waits for in-flight writes, takes a
// final checkpoint (unless records are pending) and closes the WAL and
// LevelDB. Calls after the first return its result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		s.wg.Wait()
		s.ckptMu.Lock()
		defer s.ckptMu.Unlock()
		s.gate.Lock()
		lsn, err := s.writeCheckpointLocked()
		s.gate.Unlock()
		var errs []error
		// A final checkpoint that fails (say the disk is full) is not a
		// failed close: the WAL still holds every record the checkpoint
		// would have covered, and the next open replays them.
		if err != nil {
			s.log.Warn("final checkpoint failed; the next open replays the WAL", zap.Error(err))
		} else if err := s.wal.Release(lsn); err != nil {
			s.log.Warn("releasing WAL segments failed at close", zap.Uint64("lsn", lsn), zap.Error(err))
		}
		if n := s.pendingN.Load(); n > 0 {
			s.log.Warn("closing with WAL records LevelDB has not absorbed; the next open replays them", zap.Int64("pending", n))
		}
		if err := s.wal.Close(); err != nil {
			errs = append(errs, fmt.Errorf("store: close WAL: %w", err))
		}
		// ldbSwap: a Scan may have an iterator open, and goleveldb must not
		// be closed under one.
		s.ldbSwap.Lock()
		if err := s.db().Close(); err != nil && !errors.Is(err, leveldb.ErrClosed) {
			// LevelDB keeps reporting an earlier write error (a full disk)
			// at close. Nothing is lost by it: LevelDB only ever holds what
			// the last checkpoint covers durably, and the WAL the rest.
			s.log.Warn("LevelDB reported an error at close; the next open replays the WAL past the last checkpoint", zap.Error(err))
		}
		s.ldbSwap.Unlock()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
