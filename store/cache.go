package store

import (
	"sync"
)

// DefaultCacheBytes is the default memory budget of the state cache.
const DefaultCacheBytes = 32 << 20

const (
	cacheShards = 64
	// cacheEntryOverhead is what an entry costs beyond its key and value
	// bytes (map slot, string and slice headers), for the budget.
	cacheEntryOverhead = 64
)

// stateCache holds the encoded current state of recently written and read
// keys in front of LevelDB. Every write and merge reads the key's state
// first, and a LevelDB point read walks the memtable's skiplist, whose
// comparisons were the largest single cost of a write after the system
// calls (docs/benchmarks.md); a hit skips it.
//
// Invariant: an entry, when present, is the key's current state, the one
// readCurrent would return from LevelDB or the pending queue. Writers keep
// it so: commit replaces the entry of every key it changes, under the key's
// lock, once the change is durable (applied or queued). Readers that missed
// fill the entry only if nothing in the shard changed while they read
// LevelDB (fill compares the shard's sequence number), because Get reads
// without the key's lock: a reader holding an older state must not put it
// back after a writer replaced it or eviction removed the newer one.
type stateCache struct {
	shards   [cacheShards]cacheShard
	perShard int64 // budget of each shard, in bytes
}

type cacheShard struct {
	mu    sync.Mutex
	m     map[string]cacheEntry
	bytes int64
	// seq counts the shard's changes (writes, evictions); fill checks it.
	seq uint64
}

// cacheEntry is a key's encoded state; found false caches an absent key.
type cacheEntry struct {
	enc   []byte
	found bool
}

// newStateCache returns a cache of about budget bytes, or nil (no cache)
// when budget is below what one shard needs to be useful.
func newStateCache(budget int64) *stateCache {
	per := budget / cacheShards
	if per < 4<<10 {
		return nil
	}
	c := &stateCache{perShard: per}
	for i := range c.shards {
		c.shards[i].m = make(map[string]cacheEntry)
	}
	return c
}

func (c *stateCache) shard(db int, key []byte) *cacheShard {
	return &c.shards[keyHash(db, key)%cacheShards]
}

// cacheKey is db then key; buf avoids an allocation for keys that fit.
func cacheKey(buf []byte, db int, key []byte) []byte {
	return append(append(buf[:0], byte(db)), key...)
}

// get returns the cached state of the key. On a miss it returns the
// shard's sequence number, for fill.
func (c *stateCache) get(db int, key []byte) (enc []byte, found, hit bool, seq uint64) {
	var buf [128]byte
	k := cacheKey(buf[:], db, key)
	sh := c.shard(db, key)
	sh.mu.Lock()
	e, ok := sh.m[string(k)]
	seq = sh.seq
	sh.mu.Unlock()
	return e.enc, e.found, ok, seq
}

// fill caches a state a reader found in LevelDB, unless the shard changed
// since get returned seq.
func (c *stateCache) fill(db int, key []byte, enc []byte, found bool, seq uint64) {
	sh := c.shard(db, key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.seq != seq {
		return
	}
	c.putLocked(sh, db, key, enc, found)
}

// set records the key's new state; the caller holds the key's lock and
// the state is durable.
func (c *stateCache) set(db int, key []byte, enc []byte, found bool) {
	sh := c.shard(db, key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.seq++
	c.putLocked(sh, db, key, enc, found)
}

func (c *stateCache) putLocked(sh *cacheShard, db int, key []byte, enc []byte, found bool) {
	var buf [128]byte
	k := cacheKey(buf[:], db, key)
	size := int64(len(k) + len(enc) + cacheEntryOverhead)
	if size > c.perShard/8 {
		// A value this large would evict much for one key: drop the entry
		// instead, so that the next read goes to LevelDB.
		sh.removeLocked(k)
		return
	}
	sh.removeLocked(k)
	sh.m[string(k)] = cacheEntry{enc: enc, found: found}
	sh.bytes += size
	if sh.bytes > c.perShard {
		// Evict about a quarter of the shard, in map order (random
		// enough: the map's iteration starts at a random slot).
		sh.seq++
		for ek := range sh.m {
			if sh.bytes <= c.perShard*3/4 {
				break
			}
			sh.removeLocked([]byte(ek))
		}
	}
}

// removeLocked drops the entry of k, if any, from the shard's map and
// budget; the caller holds sh.mu.
func (sh *cacheShard) removeLocked(k []byte) {
	if e, ok := sh.m[string(k)]; ok {
		sh.bytes -= int64(len(k) + len(e.enc) + cacheEntryOverhead)
		delete(sh.m, string(k))
	}
}
