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
	// reclaimRetryDelay postpones a due key CanDropTombstone refused, so
	// it does not sit at the head of the index and starve the entries after it.
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

// reclaimKey drops e's key if it is still wholly reclaimable, otherwise
// makes the index agree with the key's current state.
func (s *Store) reclaimKey(e reclaimEntry, now int64) (bool, error) {
	if e.db < 0 || e.db >= s.opts.Databases || len(e.key) < 1 || len(e.key) > MaxKeyLen {
		// Not an entry this store could have written; drop it.
		return false, s.fixIndex(e, nil)
	}
	mu := s.lockFor(e.db, e.key)
	mu.Lock()
	defer mu.Unlock()
	cur, found, err := s.read(e.db, e.key)
	if err != nil {
		return false, err
	}
	if !found {
		return false, s.fixIndex(e, nil)
	}
	ok, hasTombstone := reclaimable(cur, now, s.opts.TombstoneGrace)
	if ok && hasTombstone && s.opts.CanDropTombstone != nil && !s.opts.CanDropTombstone(e.db, e.key) {
		later := reclaimKey(now+int64(reclaimRetryDelay), e.db, e.key)
		return false, s.fixIndex(e, later)
	}
	if !ok {
		var want []byte
		if at, ok := reclaimAt(cur, s.opts.TombstoneGrace); ok {
			want = reclaimKey(at, e.db, e.key)
		}
		return false, s.fixIndex(e, want)
	}
	b := s.dropBatch(e.db, e.key, cur, true)
	b.Delete(e.indexKey)
	if err := s.commit(e.db, e.key, encodeRecord(opDrop, e.db, e.key, nil), b, pendingApply{set: vclock.Set{}, dropped: true, before: s.encodeForHook(cur, true)}); err != nil {
		return false, fmt.Errorf("store: reclaim db %d key_hash %016x: %w", e.db, keyHash(e.db, e.key), err)
	}
	s.reclaimed.Add(1)
	return true, nil
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
