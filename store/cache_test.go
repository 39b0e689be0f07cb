package store

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynkv/dynkv/vclock"
	"github.com/dynkv/dynkv/wal"
)

// forget drops the key's entry, as an eviction would (tests only).
func (c *stateCache) forget(db int, key []byte) {
	var buf [128]byte
	k := cacheKey(buf[:], db, key)
	sh := c.shard(db, key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.removeLocked(k)
	sh.seq++
}

// A reader that missed and read LevelDB must not put its state back once
// a writer (or an eviction) changed the shard in between: the state it
// holds may be older than the one the writer made durable.
func TestStateCacheFillLosesToAConcurrentChange(t *testing.T) {
	c := newStateCache(1 << 20)
	key := []byte("k")
	_, _, hit, seq := c.get(0, key)
	if hit {
		t.Fatal("empty cache reports a hit")
	}
	c.set(0, key, []byte("new"), true) // a writer commits meanwhile
	c.fill(0, key, []byte("old"), true, seq)
	if enc, found, hit, _ := c.get(0, key); !hit || !found || !bytes.Equal(enc, []byte("new")) {
		t.Fatalf("after a stale fill: %q found=%v hit=%v, want the writer's %q", enc, found, hit, "new")
	}

	other := []byte("other")
	_, _, _, seq = c.get(0, other)
	c.forget(0, key) // an eviction in the same or another shard
	c.fill(0, other, []byte("old"), true, seq)
	if c.shard(0, key) == c.shard(0, other) {
		if _, _, hit, _ := c.get(0, other); hit {
			t.Fatal("a fill after an eviction in its shard was kept")
		}
	}
	c.set(0, key, nil, false)
	if _, found, hit, _ := c.get(0, key); !hit || found {
		t.Fatalf("a cached absent key: found=%v hit=%v, want an absent hit", found, hit)
	}
}

func TestStateCacheStaysWithinItsBudget(t *testing.T) {
	const budget = 1 << 20
	c := newStateCache(budget)
	value := make([]byte, 200)
	for i := range 50_000 {
		c.set(i%16, fmt.Appendf(nil, "key-%d", i), value, true)
	}
	var total int64
	for i := range c.shards {
		total += c.shards[i].bytes
		if c.shards[i].bytes > c.perShard {
			t.Fatalf("shard %d holds %d bytes, over its budget %d", i, c.shards[i].bytes, c.perShard)
		}
	}
	if total > budget || total < budget/4 {
		t.Fatalf("cache holds %d bytes after 50,000 sets, want between a quarter of and its budget %d", total, budget)
	}
	if newStateCache(1024) != nil {
		t.Fatal("a budget too small for a shard still made a cache")
	}
}

// The store reads its own writes through the cache and, with the cache
// off, the same states from LevelDB.
func TestStoreReadsTheSameStatesWithAndWithoutTheCache(t *testing.T) {
	for _, cacheBytes := range []int64{0, -1} {
		clk := newTestClock()
		opts := testOptions(t.TempDir(), clk)
		opts.CacheBytes = cacheBytes
		s := mustOpen(t, opts)
		if (s.cache != nil) != (cacheBytes == 0) {
			t.Fatalf("CacheBytes %d: cache %v", cacheBytes, s.cache != nil)
		}
		var c vclock.Context
		for i := range 5 {
			_, c = mustPut(t, s, 1, "k", "n1", c, value(fmt.Sprint(i)))
		}
		if got := values(mustGet(t, s, 1, "k").Siblings); len(got) != 1 || got[0] != "4" {
			t.Fatalf("CacheBytes %d: %v, want [4]", cacheBytes, got)
		}
		if _, err := s.Get(1, []byte("missing")); err != ErrNotFound {
			t.Fatalf("CacheBytes %d: missing key: %v, want ErrNotFound", cacheBytes, err)
		}
		if s.cache != nil {
			s.cache.forget(1, []byte("k"))
			if got := values(mustGet(t, s, 1, "k").Siblings); len(got) != 1 || got[0] != "4" {
				t.Fatalf("after an eviction: %v, want [4] from LevelDB", got)
			}
		}
		closeStore(t, s)
	}
}

// Readers race writers while a small cache evicts all the time: a read
// never returns a state older than one acknowledged before it started,
// and once the writers stop every key reads its last write.
func TestCachedReadsNeverGoBackInTime(t *testing.T) {
	const keys, writes, readers = 64, 3000, 2
	clk := newTestClock()
	opts := testOptions(t.TempDir(), clk)
	opts.CacheBytes = cacheShards * (4 << 10) // the smallest cache: evictions all the time
	opts.Sync = wal.SyncPolicy{Interval: time.Hour}
	s := mustOpen(t, opts)
	defer closeStore(t, s)
	var acked [keys]atomic.Int64
	for i := range acked {
		acked[i].Store(-1)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		ctxs := make([]vclock.Context, keys)
		big := bytes.Repeat([]byte("x"), 300) // so that the cache overflows
		for i := range writes {
			k := i % keys
			sib := vclock.Sibling{Value: append(fmt.Appendf(nil, "%d:", i), big...)}
			_, c, err := s.Put(0, fmt.Appendf(nil, "key-%d", k), "n1", ctxs[k], sib)
			if err != nil {
				t.Errorf("Put #%d: %v", i, err)
				return
			}
			ctxs[k] = c
			acked[k].Store(int64(i))
		}
	}()
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				k := (i*7 + r) % keys
				floor := acked[k].Load()
				set, err := s.Get(0, fmt.Appendf(nil, "key-%d", k))
				if floor < 0 {
					continue
				}
				if err != nil || len(set.Siblings) != 1 {
					t.Errorf("key-%d after write #%d was acknowledged: %v %d siblings", k, floor, err, len(set.Siblings))
					return
				}
				if got := seqOf(set.Siblings[0].Value); got < floor {
					t.Errorf("key-%d read write #%d after #%d was acknowledged", k, got, floor)
					return
				}
			}
		}()
	}
	wg.Wait()
	for k := range keys {
		set, err := s.Get(0, fmt.Appendf(nil, "key-%d", k))
		if err != nil || len(set.Siblings) != 1 || seqOf(set.Siblings[0].Value) != acked[k].Load() {
			t.Fatalf("key-%d at the end: %v, want write #%d", k, err, acked[k].Load())
		}
	}
}

func seqOf(v []byte) int64 {
	var n int64
	for _, c := range v {
		if c == ':' {
			return n
		}
		n = n*10 + int64(c-'0')
	}
	return -1
}
