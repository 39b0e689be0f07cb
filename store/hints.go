package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/dynkv/dynkv/vclock"
)

// Hinted handoff storage (Dynamo section 4.6). A hint is a Set this node
// holds on behalf of an unreachable preference-list node (its owner) until a
// delivery worker hands it over. Hints live in their own LevelDB namespace,
// so Get, Scan, the reclaimer and anti-entropy never see them, and go
// through the WAL like data, so an acknowledged hinted write survives a
// crash of the node holding it.
//
//	h | len(owner) byte | owner | db byte | key -> created (8-byte big-endian unix ns) | Set encoding

const (
	prefixHint = 'h'
	// MaxHintOwnerLen bounds an owner id: its length is one byte of the key.
	MaxHintOwnerLen = 255
	// hintChunkKeys bounds what ScanHints copies out of LevelDB at a time so
	// no iterator is open while fn runs.
	hintChunkKeys = 256
)

// ErrBadHintOwner is returned for an empty or over-long owner id.
var ErrBadHintOwner = errors.New("store: hint owner must be 1 to 255 bytes")

// HintStat summarises the hints held for one owner.
type HintStat struct {
	Count  int
	Oldest time.Time // creation time of the oldest hint
}

// hintIndex is the in-memory view of the h namespace behind HintStats; Open
// rebuilds it by a scan, every hint commit keeps it current.
type hintIndex struct {
	mu     sync.Mutex
	owners map[string]*ownerHints
}

type ownerHints struct {
	created map[string]int64 // LevelDB hint key -> created unix ns
	oldest  int64
	stale   bool // oldest may be gone; recomputed on the next HintStats
}

func (x *hintIndex) set(owner string, lkey []byte, created int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.owners == nil {
		x.owners = make(map[string]*ownerHints)
	}
	o := x.owners[owner]
	if o == nil {
		o = &ownerHints{created: make(map[string]int64), oldest: created}
		x.owners[owner] = o
	}
	o.created[string(lkey)] = created
	if created < o.oldest {
		o.oldest = created
	}
}

func (x *hintIndex) remove(owner string, lkey []byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	o := x.owners[owner]
	if o == nil {
		return
	}
	c, ok := o.created[string(lkey)]
	if !ok {
		return
	}
	delete(o.created, string(lkey))
	if len(o.created) == 0 {
		delete(x.owners, owner)
		return
	}
	if c <= o.oldest {
		o.stale = true
	}
}

func (x *hintIndex) stats() map[string]HintStat {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make(map[string]HintStat, len(x.owners))
	for owner, o := range x.owners {
		if o.stale {
			first := true
			for _, c := range o.created {
				if first || c < o.oldest {
					o.oldest, first = c, false
				}
			}
			o.stale = false
		}
		out[owner] = HintStat{Count: len(o.created), Oldest: time.Unix(0, o.oldest)}
	}
	return out
}

func (x *hintIndex) reset() {
	x.mu.Lock()
	x.owners = nil
	x.mu.Unlock()
}

func hintPrefix(owner string) []byte {
	k := make([]byte, 0, 2+len(owner))
	k = append(k, prefixHint, byte(len(owner)))
	return append(k, owner...)
}

func hintKey(owner string, db int, key []byte) []byte {
	k := make([]byte, 0, 3+len(owner)+len(key))
	k = append(k, prefixHint, byte(len(owner)))
	k = append(k, owner...)
	k = append(k, byte(db))
	return append(k, key...)
}

// parseHintKey returns ok=false for keys that are not well-formed hint keys.
func parseHintKey(k []byte) (owner string, db int, key []byte, ok bool) {
	if len(k) < 2 || k[0] != prefixHint {
		return "", 0, nil, false
	}
	n := int(k[1])
	if n == 0 || len(k) < 2+n+2 {
		return "", 0, nil, false
	}
	return string(k[2 : 2+n]), int(k[2+n]), k[3+n:], true
}

func encodeHintValue(created int64, set []byte) []byte {
	v := make([]byte, 8+len(set))
	binary.BigEndian.PutUint64(v, uint64(created))
	copy(v[8:], set)
	return v
}

func decodeHintValue(v []byte) (int64, vclock.Set, error) {
	if len(v) < 8 {
		return 0, vclock.Set{}, fmt.Errorf("hint value of %d bytes, shorter than its timestamp", len(v))
	}
	set, err := vclock.DecodeSet(v[8:])
	if err != nil {
		return 0, vclock.Set{}, fmt.Errorf("hint value: %w", err)
	}
	return int64(binary.BigEndian.Uint64(v)), set, nil
}

// WAL bodies of the hint ops (after the common db and key fields):
//
//	hint:      uvarint len(owner) | owner | created (8-byte big-endian) | Set encoding
//	hint-drop: uvarint len(owner) | owner
func encodeHintBody(owner string, created int64, set []byte) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(owner)+8+len(set))
	b = binary.AppendUvarint(b, uint64(len(owner)))
	b = append(b, owner...)
	if set == nil {
		return b
	}
	b = binary.BigEndian.AppendUint64(b, uint64(created))
	return append(b, set...)
}

// decodeHintBody fills the hint fields of r from body; withSet is false for
// hint-drop. It never trusts a length before checking it.
func decodeHintBody(r *record, body []byte, withSet bool) error {
	n, k := binary.Uvarint(body)
	if k <= 0 {
		return fmt.Errorf("bad hint owner length varint")
	}
	rest := body[k:]
	if n < 1 || n > MaxHintOwnerLen || n > uint64(len(rest)) {
		return fmt.Errorf("hint owner length %d with %d bytes left", n, len(rest))
	}
	r.owner, rest = string(rest[:n]), rest[n:]
	if !withSet {
		if len(rest) != 0 {
			return fmt.Errorf("hint-drop with %d trailing bytes", len(rest))
		}
		return nil
	}
	if len(rest) < 8 {
		return fmt.Errorf("hint body of %d bytes after the owner, shorter than its timestamp", len(rest))
	}
	r.created = int64(binary.BigEndian.Uint64(rest))
	set, err := vclock.DecodeSet(rest[8:])
	if err != nil {
		return fmt.Errorf("%w: hint set: %w", errBadRecordBody, err)
	}
	r.set, r.body = set, rest[8:]
	return nil
}

// hintBatch applies a hint or hint-drop record to LevelDB.
func hintBatch(r record) *leveldb.Batch {
	b := new(leveldb.Batch)
	lk := hintKey(r.owner, r.db, r.key)
	if r.op == opHintDrop {
		b.Delete(lk)
	} else {
		b.Put(lk, encodeHintValue(r.created, r.body))
	}
	return b
}

func (s *Store) checkHint(owner string, db int, key []byte) error {
	if len(owner) < 1 || len(owner) > MaxHintOwnerLen {
		return fmt.Errorf("store: hint owner of %d bytes: %w", len(owner), ErrBadHintOwner)
	}
	return s.checkKey(db, key)
}

func (s *Store) hintLock(lkey []byte) *sync.Mutex {
	return &s.locks[xxhash.Sum64(lkey)%lockStripes]
}

// readHint reads one hint from LevelDB; the caller holds the hint's lock.
// Hint writes are refused while WAL records await their apply, so
// LevelDB's state is the current one whenever a hint write could follow. A
// hint record that does not decode is moved aside (quarantine.go) and
// reads as absent; if it cannot be, readHint fails.
func (s *Store) readHint(lkey []byte) (int64, vclock.Set, bool, error) {
	if s.closed.Load() {
		return 0, vclock.Set{}, false, ErrClosed
	}
	v, err := s.db().Get(lkey, nil)
	if errors.Is(err, leveldb.ErrClosed) && !s.closed.Load() {
		s.ldbSwap.RLock()
		v, err = s.db().Get(lkey, nil)
		s.ldbSwap.RUnlock()
	}
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		return 0, vclock.Set{}, false, nil
	case errors.Is(err, leveldb.ErrClosed):
		return 0, vclock.Set{}, false, ErrClosed
	case err != nil:
		return 0, vclock.Set{}, false, fmt.Errorf("store: read hint: %w", err)
	}
	created, set, err := decodeHintValue(v)
	if err != nil {
		if err := s.quarantineHintLocked(damagedHint(lkey, v, err)); err != nil {
			return 0, vclock.Set{}, false, err
		}
		return 0, vclock.Set{}, false, nil
	}
	return created, set, true, nil
}

// commitHint writes a hint record through the WAL; pendingApply.hint keeps
// it apart from data.
func (s *Store) commitHint(r record, lkey []byte) error {
	var payload []byte
	if r.op == opHintDrop {
		payload = encodeRecord(opHintDrop, r.db, r.key, encodeHintBody(r.owner, 0, nil))
	} else {
		payload = encodeRecord(opHint, r.db, r.key, encodeHintBody(r.owner, r.created, r.body))
	}
	return s.commit(r.db, lkey, payload, hintBatch(r), pendingApply{hint: true, dropped: r.op == opHintDrop})
}

// PutHint stores s for owner, merging with a hint already held for the same
// owner and key (vclock.Merge) and keeping the older creation time. It
// returns once the hint is durable per the WAL's sync policy.
func (s *Store) PutHint(owner string, db int, key []byte, set vclock.Set) error {
	if err := s.checkHint(owner, db, key); err != nil {
		return err
	}
	lkey := hintKey(owner, db, key)
	mu := s.hintLock(lkey)
	mu.Lock()
	defer mu.Unlock()
	created, cur, found, err := s.readHint(lkey)
	if err != nil {
		return err
	}
	now := s.opts.Now().UnixNano()
	next := set
	if found {
		next = vclock.Merge(cur, set)
		if next.Equal(cur) {
			return nil
		}
	} else {
		created = now
	}
	r := record{op: opHint, db: db, key: key, owner: owner, created: created, set: next, body: next.Encode()}
	if err := s.commitHint(r, lkey); err != nil {
		return fmt.Errorf("store: put hint for %s db %d key_hash %016x: %w", owner, db, keyHash(db, key), err)
	}
	s.hints.set(owner, lkey, created)
	return nil
}

// DropHint deletes owner's hint for the key if it still equals expect (a
// delivery acknowledged what it read) and reports whether it did; a hint
// that grew meanwhile stays for the next delivery.
func (s *Store) DropHint(owner string, db int, key []byte, expect vclock.Set) (bool, error) {
	if err := s.checkHint(owner, db, key); err != nil {
		return false, err
	}
	lkey := hintKey(owner, db, key)
	mu := s.hintLock(lkey)
	mu.Lock()
	defer mu.Unlock()
	_, cur, found, err := s.readHint(lkey)
	if err != nil {
		return false, err
	}
	if !found || !cur.Equal(expect) {
		return false, nil
	}
	if err := s.dropHintLocked(owner, db, key, lkey); err != nil {
		return false, err
	}
	return true, nil
}

func (s *Store) dropHintLocked(owner string, db int, key, lkey []byte) error {
	r := record{op: opHintDrop, db: db, key: key, owner: owner}
	if err := s.commitHint(r, lkey); err != nil {
		return fmt.Errorf("store: drop hint for %s db %d key_hash %016x: %w", owner, db, keyHash(db, key), err)
	}
	s.hints.remove(owner, lkey)
	return nil
}

// ScanHints calls fn for every hint held for owner, in (db, key) order.
// Hints added during the scan may or may not be seen. fn owns key and set
// and may call any Store method (DropHint included). Scan stops at the first
// error fn returns and returns it.
func (s *Store) ScanHints(owner string, fn func(db int, key []byte, set vclock.Set, created time.Time) error) error {
	if len(owner) < 1 || len(owner) > MaxHintOwnerLen {
		return fmt.Errorf("store: scan hints for an owner of %d bytes: %w", len(owner), ErrBadHintOwner)
	}
	return s.scanHintRange(hintPrefix(owner), func(o string, db int, key []byte, set vclock.Set, created int64) error {
		return fn(db, key, set, time.Unix(0, created))
	})
}

type hintEntry struct {
	lkey  []byte
	value []byte
}

func (s *Store) scanHintRange(prefix []byte, fn func(owner string, db int, key []byte, set vclock.Set, created int64) error) error {
	var after []byte
	for {
		chunk, done, err := s.hintChunk(prefix, after)
		if err != nil {
			return err
		}
		for _, e := range chunk {
			// A hint whose key or value does not decode is moved aside
			// and skipped (quarantine.go): it must not stop a delivery,
			// a wipe or the index rebuilt at Open.
			owner, db, key, created, set, d := s.decodeHintRecord(e.lkey, e.value)
			if d != nil {
				s.quarantineHintScanned(e.lkey)
				continue
			}
			if err := fn(owner, db, key, set, created); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
		after = chunk[len(chunk)-1].lkey
	}
}

// hintChunk copies the next hint records under prefix after the LevelDB key
// after (nil: from the first).
func (s *Store) hintChunk(prefix, after []byte) (chunk []hintEntry, done bool, err error) {
	// Reopen and Close take ldbSwap exclusively, so the handle cannot close
	// under this iterator.
	s.ldbSwap.RLock()
	defer s.ldbSwap.RUnlock()
	if s.closed.Load() {
		return nil, false, ErrClosed
	}
	r := util.BytesPrefix(prefix)
	if after != nil {
		r.Start = append(append(make([]byte, 0, len(after)+1), after...), 0)
	}
	it := s.db().NewIterator(r, nil)
	defer it.Release()
	for len(chunk) < hintChunkKeys {
		if !it.Next() {
			if err := it.Error(); err != nil {
				if errors.Is(err, leveldb.ErrClosed) {
					return nil, false, ErrClosed
				}
				return nil, false, fmt.Errorf("store: scan hint records: %w", err)
			}
			return chunk, true, nil
		}
		chunk = append(chunk, hintEntry{
			lkey:  append([]byte(nil), it.Key()...),
			value: append([]byte(nil), it.Value()...),
		})
	}
	return chunk, false, nil
}

// HintStats returns, per owner with pending hints, how many this node holds
// and when the oldest was created. It reads memory only.
func (s *Store) HintStats() map[string]HintStat {
	return s.hints.stats()
}

// HintOwners lists the owners this node holds hints for, sorted.
func (s *Store) HintOwners() []string {
	st := s.hints.stats()
	out := make([]string, 0, len(st))
	for o := range st {
		out = append(out, o)
	}
	sort.Strings(out)
	return out
}

// WipeHints durably deletes every hint this node holds and returns how many
// it deleted. Operators and the chaos suite use it to force replicas to
// converge through anti-entropy alone.
func (s *Store) WipeHints() (int, error) {
	n := 0
	err := s.scanHintRange([]byte{prefixHint}, func(owner string, db int, key []byte, _ vclock.Set, _ int64) error {
		lkey := hintKey(owner, db, key)
		mu := s.hintLock(lkey)
		mu.Lock()
		defer mu.Unlock()
		if err := s.dropHintLocked(owner, db, key, lkey); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("store: wipe hints after %d: %w", n, err)
	}
	return n, nil
}

// loadHintStats rebuilds the in-memory hint index from LevelDB (Open, after
// the WAL replay).
func (s *Store) loadHintStats() error {
	s.hints.reset()
	err := s.scanHintRange([]byte{prefixHint}, func(owner string, db int, key []byte, _ vclock.Set, created int64) error {
		s.hints.set(owner, hintKey(owner, db, key), created)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: load hint index: %w", err)
	}
	return nil
}
