package store

import (
	"errors"
	"fmt"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/dynkv/dynkv/vclock"
)

// ErrScanPending is returned by Scan while WAL records await their LevelDB
// apply: a LevelDB snapshot would miss their states, so the caller retries.
var ErrScanPending = errors.New("store: scan refused while WAL records await LevelDB apply")

const (
	// scanChunkKeys and scanChunkBytes bound what Scan copies out of LevelDB
	// at a time, so memory stays bounded whatever the store's size, and no
	// iterator is open while fn runs (fn may write, and goleveldb must not be
	// closed or reopened under an open iterator).
	scanChunkKeys  = 256
	scanChunkBytes = 1 << 20
)

// Scan calls fn for every key the store holds, in (db, key) order, as of a
// LevelDB snapshot taken when Scan starts: writes that happen during the
// scan are not seen. fn owns key and set (they are not reused) and may call
// any Store method. Scan stops at the first error fn returns and returns it.
// Records LevelDB rejected and still holds pending make Scan fail with
// ErrScanPending, since the snapshot would not show them.
//
// A record that does not decode is moved aside (quarantine.go) and not
// handed to fn: the scan goes on. Records outside the configured databases
// or key length are skipped and left in place.
//
// Handoff uses Scan to find the keys to move when the ring changes.
func (s *Store) Scan(fn func(db int, key []byte, set vclock.Set) error) error {
	return s.scan(nil, fn)
}

// ErrScanInterrupted is returned by ScanMarked when LevelDB had to be
// reopened during the scan: a fresh snapshot would no longer match its mark,
// so the caller starts over.
var ErrScanInterrupted = errors.New("store: marked scan interrupted by a LevelDB reopen")

// ScanMarked is Scan, with mark called once, right when the snapshot is
// taken and while no write is between its WAL append and its
// Options.OnChange call: every change reported to OnChange before mark is
// in the scan, every change reported after it is not. A consumer can so
// build state from the scan and the changes after mark without missing or
// counting twice any change (active anti-entropy builds its hash trees so).
//
// A record that does not decode is moved aside and skipped, as by Scan;
// that removal is reported to OnChange after the mark (before: the damaged
// bytes), although fn never saw the record. A consumer that must account
// for every byte OnChange reports uses ScanMarkedEncoded.
func (s *Store) ScanMarked(mark func(), fn func(db int, key []byte, set vclock.Set) error) error {
	return s.scan(mark, fn)
}

// ScanMarkedEncoded is ScanMarked handing fn each record's stored encoding
// instead of its decoded Set (the same bytes Options.OnChange reports),
// without decoding it: a record that does not decode is handed over as it
// is, and left in place. So a consumer summarising the store by the bytes
// (anti-entropy's hash trees) agrees with the before of the OnChange call
// that reports the record's quarantine when another path meets it. fn owns
// key and encoded.
func (s *Store) ScanMarkedEncoded(mark func(), fn func(db int, key, encoded []byte) error) error {
	return s.scanEntries(mark, func(e scanEntry) error { return fn(e.db, e.key, e.value) })
}

func (s *Store) scan(mark func(), fn func(db int, key []byte, set vclock.Set) error) error {
	return s.scanEntries(mark, func(e scanEntry) error {
		set, err := vclock.DecodeSet(e.value)
		if err != nil {
			s.quarantineScanned(e.db, e.key)
			return nil
		}
		return fn(e.db, e.key, set)
	})
}

func (s *Store) scanEntries(mark func(), fn func(e scanEntry) error) error {
	snap, err := s.scanSnapshot(mark)
	if err != nil {
		return err
	}
	defer func() {
		if snap != nil {
			snap.Release()
		}
	}()
	var after []byte // the last key handed to fn; nil before the first
	for {
		chunk, done, err := s.scanChunk(snap, after)
		if errors.Is(err, ErrClosed) && !s.closed.Load() {
			// A LevelDB reopen closed the snapshot's handle. Its state
			// then is no older than the snapshot's, so resume from a fresh
			// snapshot after the last key seen.
			snap.Release()
			snap = nil
			if mark != nil {
				return ErrScanInterrupted
			}
			if snap, err = s.scanSnapshot(nil); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range chunk {
			if e.value == nil {
				continue // skipped, it only marks where the chunk ended
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
		after = chunk[len(chunk)-1].lkey
	}
}

type scanEntry struct {
	db    int
	key   []byte
	value []byte // nil: a skipped record, kept only as the chunk's end
	lkey  []byte // the LevelDB key, set on the chunk's last entry
}

// scanSnapshot takes the gate exclusively, like a checkpoint, so no write is
// between its WAL append and its LevelDB apply: the snapshot then holds every
// acknowledged write, unless some are pending after a failed apply.
func (s *Store) scanSnapshot(mark func()) (*leveldb.Snapshot, error) {
	s.gate.Lock()
	defer s.gate.Unlock()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if n := s.pendingN.Load(); n > 0 {
		return nil, fmt.Errorf("%w (%d records)", ErrScanPending, n)
	}
	snap, err := s.db().GetSnapshot()
	if errors.Is(err, leveldb.ErrClosed) {
		return nil, ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan: take LevelDB snapshot: %w", err)
	}
	if mark != nil {
		mark()
	}
	return snap, nil
}

// scanChunk copies the next data records after the LevelDB key after (nil:
// from the first). done reports that the chunk ends the scan.
func (s *Store) scanChunk(snap *leveldb.Snapshot, after []byte) (chunk []scanEntry, done bool, err error) {
	// Reopen and Close take ldbSwap exclusively before closing the handle,
	// so it cannot close under this iterator.
	s.ldbSwap.RLock()
	defer s.ldbSwap.RUnlock()
	if s.closed.Load() {
		return nil, false, ErrClosed
	}
	r := &util.Range{Start: []byte{prefixData}, Limit: []byte{prefixData + 1}}
	if after != nil {
		// The smallest key greater than after.
		r.Start = append(append(make([]byte, 0, len(after)+1), after...), 0)
	}
	it := snap.NewIterator(r, nil)
	defer it.Release()
	bytes := 0
	for len(chunk) < scanChunkKeys && bytes < scanChunkBytes {
		if !it.Next() {
			if err := it.Error(); err != nil {
				if errors.Is(err, leveldb.ErrClosed) || errors.Is(err, leveldb.ErrSnapshotReleased) {
					return nil, false, ErrClosed
				}
				return nil, false, fmt.Errorf("store: scan data records: %w", err)
			}
			return chunk, true, nil
		}
		k, v := it.Key(), it.Value()
		if len(k) < 3 {
			// Not a record this store writes (no db byte or an empty key).
			continue
		}
		if int(k[1]) >= s.opts.Databases || len(k)-2 > MaxKeyLen {
			// Unreachable through this configuration: no reader could
			// name it and no replica would take it.
			s.warnUnreachable(k)
			chunk = append(chunk, scanEntry{})
			continue
		}
		// One allocation per entry holds key and value; both are handed
		// to fn, which may keep them. A non-nil value marks the entry as
		// a record, even when empty.
		buf := make([]byte, len(k)-2+len(v))
		copy(buf, k[2:])
		copy(buf[len(k)-2:], v)
		chunk = append(chunk, scanEntry{db: int(k[1]), key: buf[: len(k)-2 : len(k)-2], value: buf[len(k)-2:]})
		bytes += len(buf)
	}
	if len(chunk) == 0 {
		return nil, true, nil
	}
	chunk[len(chunk)-1].lkey = append([]byte(nil), it.Key()...)
	return chunk, false, nil
}

// Drop deletes the key if its current state equals expect, the way the
// reclaimer drops a key: a "drop" WAL record, then the LevelDB record and its
// reclaim index entry go. It reports whether it dropped the key; a key that
// changed since the caller read expect (or is gone) is left alone, so a write
// racing with a handoff is never lost.
func (s *Store) Drop(db int, key []byte, expect vclock.Set) (bool, error) {
	if err := s.checkKey(db, key); err != nil {
		return false, err
	}
	mu := s.lockFor(db, key)
	mu.Lock()
	defer mu.Unlock()
	cur, found, err := s.read(db, key)
	if err != nil {
		return false, err
	}
	if !found || !cur.Equal(expect) {
		return false, nil
	}
	b := s.dropBatch(db, key, cur, true)
	if err := s.commit(db, key, encodeRecord(opDrop, db, key, nil), b, pendingApply{set: vclock.Set{}, dropped: true, before: s.encodeForHook(cur, true)}); err != nil {
		return false, fmt.Errorf("store: drop db %d key_hash %016x: %w", db, keyHash(db, key), err)
	}
	return true, nil
}
