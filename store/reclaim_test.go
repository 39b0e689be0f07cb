package store

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynkv/dynkv/vclock"
)

func mustReclaim(t *testing.T, s *Store) int {
	t.Helper()
	n, err := s.reclaimPass()
	if err != nil {
		t.Fatalf("reclaim pass: %v", err)
	}
	return n
}

func TestExpiredValueReadsAsGoneAndIsReclaimed(t *testing.T) {
	clk := newTestClock()
	s := mustOpen(t, testOptions(t.TempDir(), clk))
	defer closeStore(t, s)

	mustPut(t, s, 2, "session", "n1", vclock.Context{}, vclock.Sibling{Value: []byte("v"), Expires: clk.After(time.Minute)})
	if live := mustGet(t, s, 2, "session").Live(clk.Now().UnixNano()); len(live) != 1 {
		t.Fatalf("before expiry: %d live siblings, want 1", len(live))
	}
	if n := mustReclaim(t, s); n != 0 {
		t.Fatalf("reclaim before expiry dropped %d keys, want 0", n)
	}
	clk.Advance(time.Minute + time.Second)
	if live := mustGet(t, s, 2, "session").Live(clk.Now().UnixNano()); len(live) != 0 {
		t.Fatalf("after expiry: %d live siblings, want 0", len(live))
	}
	if n := mustReclaim(t, s); n != 1 {
		t.Fatalf("reclaim after expiry dropped %d keys, want 1", n)
	}
	if _, err := s.Get(2, []byte("session")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after reclaim: %v, want ErrNotFound", err)
	}
	if idx := reclaimIndex(t, s); len(idx) != 0 {
		t.Fatalf("reclaim index still holds %d entries", len(idx))
	}
}

func TestExpiredValueIsReclaimedAfterRestart(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, clk))
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, vclock.Sibling{Value: []byte("v"), Expires: clk.After(time.Hour)})
	closeStore(t, s)

	clk.Advance(2 * time.Hour)
	s = mustOpen(t, testOptions(dir, clk))
	if n := mustReclaim(t, s); n != 1 {
		t.Fatalf("reclaim after restart dropped %d keys, want 1", n)
	}
	// The drop is a WAL record: a crash right after it must not resurrect the key.
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	closeStore(t, s)
	s = mustOpen(t, testOptions(crashed, clk))
	defer closeStore(t, s)
	if _, err := s.Get(0, []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after reclaim and crash: %v, want ErrNotFound", err)
	}
}

func TestTombstoneIsReclaimedOnlyAfterGrace(t *testing.T) {
	clk := newTestClock()
	opts := testOptions(t.TempDir(), clk)
	opts.TombstoneGrace = time.Hour
	s := mustOpen(t, opts)
	defer closeStore(t, s)

	_, c := mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("v"))
	mustPut(t, s, 0, "k", "n1", c, vclock.Sibling{Tombstone: true})
	clk.Advance(time.Hour - time.Second)
	if n := mustReclaim(t, s); n != 0 {
		t.Fatalf("reclaim within grace dropped %d keys, want 0", n)
	}
	set := mustGet(t, s, 0, "k")
	if len(set.Siblings) != 1 || !set.Siblings[0].Tombstone {
		t.Fatalf("within grace the key holds %+v, want the tombstone", set.Siblings)
	}
	clk.Advance(time.Second)
	if n := mustReclaim(t, s); n != 1 {
		t.Fatalf("reclaim after grace dropped %d keys, want 1", n)
	}
	if _, err := s.Get(0, []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after the tombstone was reclaimed: %v, want ErrNotFound", err)
	}
}

func TestTombstoneStaysWhileReplicasMayLackIt(t *testing.T) {
	clk := newTestClock()
	var allow atomic.Bool
	opts := testOptions(t.TempDir(), clk)
	opts.TombstoneGrace = time.Minute
	opts.CanDropTombstone = func(db int, key []byte) bool { return allow.Load() }
	s := mustOpen(t, opts)
	defer closeStore(t, s)

	mustPut(t, s, 0, "deleted", "n1", vclock.Context{}, vclock.Sibling{Tombstone: true})
	mustPut(t, s, 0, "expiring", "n1", vclock.Context{}, vclock.Sibling{Value: []byte("v"), Expires: clk.After(2 * time.Minute)})
	clk.Advance(3 * time.Minute)
	// The refused tombstone must not block the expired value behind it.
	if n := mustReclaim(t, s); n != 1 {
		t.Fatalf("reclaim dropped %d keys, want 1 (the expired value only)", n)
	}
	if _, err := s.Get(0, []byte("deleted")); err != nil {
		t.Fatalf("tombstone dropped although CanDropTombstone said no: %v", err)
	}
	allow.Store(true)
	clk.Advance(reclaimRetryDelay)
	if n := mustReclaim(t, s); n != 1 {
		t.Fatalf("reclaim once replicas hold the tombstone dropped %d keys, want 1", n)
	}
	if _, err := s.Get(0, []byte("deleted")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get: %v, want ErrNotFound", err)
	}
}

func TestKeyWithAnEverlastingSiblingIsNeverReclaimed(t *testing.T) {
	clk := newTestClock()
	s := mustOpen(t, testOptions(t.TempDir(), clk))
	defer closeStore(t, s)

	_, c := mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("base"))
	mustPut(t, s, 0, "k", "n1", c, vclock.Sibling{Value: []byte("ttl"), Expires: clk.After(time.Second)})
	mustPut(t, s, 0, "k", "n1", c, value("forever")) // concurrent with the TTL sibling
	if idx := reclaimIndex(t, s); len(idx) != 0 {
		t.Fatalf("reclaim index has %d entries for a key with an everlasting sibling", len(idx))
	}
	clk.Advance(time.Hour)
	mustReclaim(t, s)
	if got := values(mustGet(t, s, 0, "k").Siblings); !sameStrings(got, []string{"ttl", "forever"}) {
		t.Fatalf("siblings %v, want [ttl forever] (the expired one is filtered by Live, not dropped)", got)
	}
}

func TestReclaimIndexFollowsOverwrites(t *testing.T) {
	clk := newTestClock()
	s := mustOpen(t, testOptions(t.TempDir(), clk))
	defer closeStore(t, s)

	mustPut(t, s, 0, "k", "n1", vclock.Context{}, vclock.Sibling{Value: []byte("a"), Expires: clk.After(time.Minute)})
	later := clk.After(time.Hour)
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, vclock.Sibling{Value: []byte("b"), Expires: later})
	idx := reclaimIndex(t, s)
	if len(idx) != 1 || idx[0].at != later {
		t.Fatalf("index after a TTL overwrite: %+v, want one entry at %d", idx, later)
	}
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("no ttl"))
	if idx := reclaimIndex(t, s); len(idx) != 0 {
		t.Fatalf("index after overwriting with a value without TTL: %+v, want none", idx)
	}
	clk.Advance(2 * time.Hour)
	if n := mustReclaim(t, s); n != 0 {
		t.Fatalf("reclaimed %d keys, want 0", n)
	}
}

func TestReclaimerRepairsAStaleIndexEntry(t *testing.T) {
	clk := newTestClock()
	s := mustOpen(t, testOptions(t.TempDir(), clk))
	defer closeStore(t, s)

	exp := clk.After(time.Hour)
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, vclock.Sibling{Value: []byte("v"), Expires: exp})
	// An orphan entry due now, for a key that expires later, and one for a
	// key that does not exist.
	for _, k := range [][]byte{reclaimKey(clk.After(0), 0, []byte("k")), reclaimKey(clk.After(0), 0, []byte("ghost"))} {
		if err := s.db().Put(k, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := mustReclaim(t, s); n != 0 {
		t.Fatalf("reclaimed %d keys on stale entries, want 0", n)
	}
	idx := reclaimIndex(t, s)
	if len(idx) != 1 || idx[0].at != exp || string(idx[0].key) != "k" {
		t.Fatalf("index after repair: %+v, want only k at %d", idx, exp)
	}
	mustGet(t, s, 0, "k")
}

func TestReclaimerRunsInTheBackground(t *testing.T) {
	clk := newTestClock()
	opts := testOptions(t.TempDir(), clk)
	opts.ReclaimInterval = 10 * time.Millisecond
	s := mustOpen(t, opts)
	defer closeStore(t, s)
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, vclock.Sibling{Value: []byte("v"), Expires: clk.After(time.Second)})
	clk.Advance(time.Minute)
	waitFor(t, "the background reclaimer to drop the expired key", func() bool {
		_, err := s.Get(0, []byte("k"))
		return errors.Is(err, ErrNotFound)
	})
}
