package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
	"go.uber.org/zap"

	"github.com/dynkv/dynkv/vclock"
)

const (
	// reclaimBatch bounds one pass so a backlog (say after a long downtime)
	// cannot hold key locks and the disk for long; the next tick continues.
	reclaimBatch = 1000
	// reclaimRetryDelay is the longest wait before a key CanDropTombstone
	// refused is asked about again (see retryDelay).
	reclaimRetryDelay = time.Minute
)

// reclaimLoop runs reclaim passes every ReclaimInterval until Close.
func (s *Store) reclaimLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.ReclaimInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if _, err := s.reclaimPass(); err != nil && !errors.Is(err, ErrClosed) {
				s.log.Warn("reclaim pass failed", zap.Error(err))
			}
		}
	}
}

type reclaimEntry struct {
	indexKey []byte
	at       int64
	db       int
	key      []byte
}

// reclaimPass handles up to reclaimBatch index entries due at the injected
// now and returns how many keys it dropped.
func (s *Store) reclaimPass() (int, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	now := s.opts.Now().UnixNano()
	due, err := s.dueEntries(now)
	if err != nil {
		return 0, err
	}
	dropped := 0
	for _, e := range due {
		if s.closed.Load() {
			return dropped, ErrClosed
		}
		ok, err := s.reclaimKey(e, now)
		if err != nil {
			return dropped, err
		}
		if ok {
			dropped++
		}
	}
	if dropped > 0 {
		s.log.Debug("reclaimed expired keys and tombstones", zap.Int("keys", dropped))
	}
	return dropped, nil
}

func (s *Store) dueEntries(now int64) ([]reclaimEntry, error) {
	// goleveldb must not be closed under an open iterator: hold off reopens.
	s.ldbSwap.RLock()
	defer s.ldbSwap.RUnlock()
	it := s.db().NewIterator(&util.Range{Start: []byte{prefixReclaim}, Limit: reclaimBound(now)}, nil)
	defer it.Release()
	var due []reclaimEntry
	for len(due) < reclaimBatch && it.Next() {
		k := append([]byte(nil), it.Key()...)
		at, db, key, ok := parseReclaimKey(k)
		if !ok {
			due = append(due, reclaimEntry{indexKey: k, db: -1})
			continue
		}
		due = append(due, reclaimEntry{indexKey: k, at: at, db: db, key: key})
	}
	if err := it.Error(); err != nil {
		if errors.Is(err, leveldb.ErrClosed) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("store: scan reclaim index: %w", err)
	}
	return due, nil
}

// reclaimKey buries e's key's expired values or drops its old tombstones
// when that is due, otherwise makes the index agree with the key's current
// state. It reports whether the key was dropped.
func (s *Store) reclaimKey(e reclaimEntry, now int64) (bool, error) {
	if e.db < 0 || e.db >= s.opts.Databases || len(e.key) < 1 || len(e.key) > MaxKeyLen {
		// Not an entry this store could have written; drop it.
		return false, s.fixIndex(e, nil)
	}
	mu := s.lockFor(e.db, e.key)
	mu.Lock()
	cur, step, err := s.reclaimState(e, now)
	if err != nil || step == reclaimNothing {
		mu.Unlock()
		return false, err
	}
	if step == reclaimBury {
		defer mu.Unlock()
		return false, s.bury(e, cur, now)
	}
	hook := s.canDropTombstone()
	if hook == nil {
		defer mu.Unlock()
		return s.drop(e, cur)
	}
	// The hook asks the other replicas over the network: holding the key's
	// lock (a stripe shared with other keys) across those calls would stall
	// writes for up to an RPC timeout. So it is asked unlocked, and the key
	// is dropped only if nothing wrote to it meanwhile.
	mu.Unlock()
	yes := hook(e.db, e.key)
	mu.Lock()
	defer mu.Unlock()
	again, step, err := s.reclaimState(e, now)
	if err != nil || step == reclaimNothing {
		return false, err
	}
	if !again.Equal(cur) {
		// Changed while the replicas were asked; the next pass looks again.
		return false, nil
	}
	if !yes {
		return false, s.fixIndex(e, reclaimKey(now+int64(s.retryDelay()), e.db, e.key))
	}
	return s.drop(e, cur)
}

// reclaimState reads e's key (the caller holds its lock) and says what is
// due. When nothing is, it has already fixed the index entry.
func (s *Store) reclaimState(e reclaimEntry, now int64) (vclock.Set, reclaimStep, error) {
	cur, found, err := s.read(e.db, e.key)
	if err != nil {
		return vclock.Set{}, reclaimNothing, err
	}
	if !found {
		return vclock.Set{}, reclaimNothing, s.fixIndex(e, nil)
	}
	step := reclaimStepAt(cur, now, s.opts.TombstoneGrace)
	if step == reclaimNothing {
		var want []byte
		if at, ok := reclaimAt(cur, s.opts.TombstoneGrace); ok {
			want = reclaimKey(at, e.db, e.key)
		}
		return cur, reclaimNothing, s.fixIndex(e, want)
	}
	return cur, step, nil
}

// bury replaces the expired values of cur with tombstone twins through the
// normal put path (a WAL record with the new state), which also moves the
// index entry to when the tombstones may be dropped.
func (s *Store) bury(e reclaimEntry, cur vclock.Set, now int64) error {
	next := buryExpired(cur, now)
	if err := s.commitPut(e.db, e.key, cur, true, next); err != nil {
		return fmt.Errorf("store: bury expired values of db %d key_hash %016x: %w", e.db, keyHash(e.db, e.key), err)
	}
	s.buried.Add(1)
	// commitPut removed the entry cur implies; e may be a stale one beside it.
	var want []byte
	if at, ok := reclaimAt(next, s.opts.TombstoneGrace); ok {
		want = reclaimKey(at, e.db, e.key)
	}
	return s.fixIndex(e, want)
}

// drop removes the key with a "drop" WAL record.
func (s *Store) drop(e reclaimEntry, cur vclock.Set) (bool, error) {
	b := s.dropBatch(e.db, e.key, cur, true)
	b.Delete(e.indexKey)
	if err := s.commit(e.db, e.key, encodeRecord(opDrop, e.db, e.key, nil), b, pendingApply{set: vclock.Set{}, dropped: true, before: s.encodeForHook(cur, true)}); err != nil {
		return false, fmt.Errorf("store: reclaim db %d key_hash %016x: %w", e.db, keyHash(e.db, e.key), err)
	}
	s.reclaimed.Add(1)
	return true, nil
}

// retryDelay postpones a key CanDropTombstone refused, so that it does not
// sit at the head of the index and starve the entries after it: a minute,
// or the grace when that is shorter (tests and small deployments use short
// graces and expect reaping within a few of them), but never less than one
// reclaim interval.
func (s *Store) retryDelay() time.Duration {
	return max(min(reclaimRetryDelay, s.opts.TombstoneGrace), s.opts.ReclaimInterval)
}

// fixIndex replaces the stale entry e with want (nil: none). Index entries
// are derived from the states, so this needs no WAL record: replay recomputes
// them for every key it touches and the reclaimer repairs the rest.
func (s *Store) fixIndex(e reclaimEntry, want []byte) error {
	if want != nil && string(want) == string(e.indexKey) {
		return nil
	}
	b := new(leveldb.Batch)
	b.Delete(e.indexKey)
	if want != nil {
		b.Put(want, nil)
	}
	if err := s.db().Write(b, writeNoSync); err != nil {
		if errors.Is(err, leveldb.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("store: fix reclaim index entry: %w", err)
	}
	return nil
}

// SetCanDropTombstone installs the hook asked before a key holding only
// tombstones is dropped, replacing Options.CanDropTombstone. A node opens
// its store before it knows its cluster, so the replication layer's answer
// (every replica holds the tombstone) is wired in afterwards. A nil f means
// always yes. Safe to call while the reclaimer runs.
func (s *Store) SetCanDropTombstone(f func(db int, key []byte) bool) {
	s.canDrop.Store(&f)
}

func (s *Store) canDropTombstone() func(db int, key []byte) bool {
	if f := s.canDrop.Load(); f != nil {
		return *f
	}
	return s.opts.CanDropTombstone
}
