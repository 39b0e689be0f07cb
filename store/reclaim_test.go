package store

import (
	"errors"
	"sync"
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

// onlyTombstoneTwin fails unless set is exactly the tombstone twin of v:
// v's dot, no value, not live, and a LastModified after v's.
func onlyTombstoneTwin(t *testing.T, set vclock.Set, v vclock.Sibling, now int64) {
	t.Helper()
	if len(set.Siblings) != 1 {
		t.Fatalf("key holds %d siblings %+v, want only the tombstone twin of %+v", len(set.Siblings), set.Siblings, v)
	}
	got := set.Siblings[0]
	if !got.Tombstone || got.Dot != v.Dot || len(got.Value) != 0 || got.LastModified <= v.LastModified || got.Live(now) {
		t.Fatalf("key holds %+v, want the tombstone twin of %+v (same dot, no value, later LastModified)", got, v)
	}
}

func TestExpiredValueBecomesATombstoneTwinThenGoesAfterGrace(t *testing.T) {
	clk := newTestClock()
	opts := testOptions(t.TempDir(), clk)
	opts.TombstoneGrace = time.Hour
	s := mustOpen(t, opts)
	defer closeStore(t, s)

	exp := clk.After(time.Minute)
	written, _ := mustPut(t, s, 2, "session", "n1", vclock.Context{}, vclock.Sibling{Value: []byte("v"), Expires: exp})
	if n := mustReclaim(t, s); n != 0 {
		t.Fatalf("reclaim before expiry dropped %d keys, want 0", n)
	}
	if got := mustGet(t, s, 2, "session"); !got.Equal(written) {
		t.Fatalf("before expiry the reclaimer changed the key to %+v", got)
	}
	clk.Advance(time.Minute + time.Second)
	if n := mustReclaim(t, s); n != 0 {
		t.Fatalf("reclaim right after expiry dropped %d keys, want 0 (the value becomes a tombstone first)", n)
	}
	buried := mustGet(t, s, 2, "session")
	onlyTombstoneTwin(t, buried, written.Siblings[0], clk.Now().UnixNano())
	if buried.Siblings[0].LastModified != exp {
		t.Fatalf("tombstone twin LastModified %d, want the value's expiry %d", buried.Siblings[0].LastModified, exp)
	}
	if !buried.Context.Equal(written.Context) {
		t.Fatalf("burying changed the context from %v to %v", written.Context, buried.Context)
	}
	if live := buried.Live(clk.Now().UnixNano()); len(live) != 0 {
		t.Fatalf("after burying: %d live siblings, want 0", len(live))
	}
	if st := s.Stats(); st.BuriedKeys != 1 {
		t.Fatalf("Stats.BuriedKeys %d, want 1", st.BuriedKeys)
	}
	idx := reclaimIndex(t, s)
	if want := exp + int64(time.Hour); len(idx) != 1 || idx[0].at != want {
		t.Fatalf("index after burying: %+v, want one entry at expiry+grace %d", idx, want)
	}
	clk.Advance(time.Hour - 2*time.Second)
	if n := mustReclaim(t, s); n != 0 {
		t.Fatalf("reclaim within the tombstone's grace dropped %d keys, want 0", n)
	}
	clk.Advance(time.Second)
	if n := mustReclaim(t, s); n != 1 {
		t.Fatalf("reclaim after the grace dropped %d keys, want 1", n)
	}
	if _, err := s.Get(2, []byte("session")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after reclaim: %v, want ErrNotFound", err)
	}
	if idx := reclaimIndex(t, s); len(idx) != 0 {
		t.Fatalf("reclaim index still holds %d entries", len(idx))
	}
}

// A replica that has not buried its copy yet (its reclaimer is behind, or
// it was down) must not bring the value back into one that has, and
// merging the other way must bury it there: Merge has to prefer the twin
// whichever side it is on.
func TestTombstoneTwinWinsMergeWithItsValueInBothOrders(t *testing.T) {
	clk := newTestClock()
	now := clk.Now().UnixNano()
	for _, tc := range []struct {
		name string
		v    vclock.Sibling
	}{
		{"expires after it was written", vclock.Sibling{Value: []byte("v"), LastModified: now, Expires: now + int64(time.Minute)}},
		{"written already expired", vclock.Sibling{Value: []byte("v"), LastModified: now, Expires: now - int64(time.Minute)}},
		{"expires the instant it was written", vclock.Sibling{Value: []byte("v"), LastModified: now, Expires: now}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			val, _ := vclock.Set{}.Update("n1", vclock.Context{}, tc.v)
			later := max(tc.v.Expires, now) + 1
			twin := buryExpired(val, later)
			onlyTombstoneTwin(t, twin, val.Siblings[0], later)
			for _, m := range []vclock.Set{vclock.Merge(val, twin), vclock.Merge(twin, val)} {
				if !m.Equal(twin) {
					t.Fatalf("Merge of a value and its tombstone twin gave %+v, want the twin %+v", m.Siblings, twin.Siblings)
				}
			}
		})
	}
}

func TestExpiredValueIsBuriedAndReclaimedAcrossRestarts(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	opts := testOptions(dir, clk)
	opts.TombstoneGrace = time.Hour
	s := mustOpen(t, opts)
	written, _ := mustPut(t, s, 0, "k", "n1", vclock.Context{}, vclock.Sibling{Value: []byte("v"), Expires: clk.After(time.Hour)})
	closeStore(t, s)

	clk.Advance(2 * time.Hour)
	s = mustOpen(t, opts)
	if n := mustReclaim(t, s); n != 0 {
		t.Fatalf("first reclaim after restart dropped %d keys, want 0 (it buries)", n)
	}
	// Burying is a WAL record: a crash right after it must not bring the value back.
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	closeStore(t, s)
	opts.Dir = crashed
	s = mustOpen(t, opts)
	onlyTombstoneTwin(t, mustGet(t, s, 0, "k"), written.Siblings[0], clk.Now().UnixNano())

	if n := mustReclaim(t, s); n != 1 {
		t.Fatalf("reclaim after expiry plus grace dropped %d keys, want 1", n)
	}
	// So is the drop.
	crashed2 := t.TempDir()
	copyDir(t, crashed, crashed2)
	closeStore(t, s)
	opts.Dir = crashed2
	s = mustOpen(t, opts)
	defer closeStore(t, s)
	if _, err := s.Get(0, []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after reclaim and crash: %v, want ErrNotFound", err)
	}
}

func TestExpiredValueBesideATombstoneIsBuriedAtItsExpiry(t *testing.T) {
	clk := newTestClock()
	opts := testOptions(t.TempDir(), clk)
	opts.TombstoneGrace = time.Hour
	s := mustOpen(t, opts)
	defer closeStore(t, s)

	_, c := mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("base"))
	mustPut(t, s, 0, "k", "n1", c, vclock.Sibling{Tombstone: true})
	set, _ := mustPut(t, s, 0, "k", "n2", c, vclock.Sibling{Value: []byte("ttl"), Expires: clk.After(time.Minute)}) // concurrent with the delete
	clk.Advance(2 * time.Minute)
	mustReclaim(t, s)
	got := mustGet(t, s, 0, "k")
	if len(got.Siblings) != 2 || !got.Siblings[0].Tombstone || !got.Siblings[1].Tombstone {
		t.Fatalf("after the value expired the key holds %+v, want two tombstones", got.Siblings)
	}
	if !got.Context.Equal(set.Context) {
		t.Fatalf("burying changed the context from %v to %v", set.Context, got.Context)
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
	var mu sync.Mutex
	asked := map[string]int{}
	opts := testOptions(t.TempDir(), clk)
	opts.TombstoneGrace = time.Minute
	opts.CanDropTombstone = func(db int, key []byte) bool {
		mu.Lock()
		asked[string(key)]++
		mu.Unlock()
		return allow.Load()
	}
	askedAbout := func(k string) int {
		mu.Lock()
		defer mu.Unlock()
		return asked[k]
	}
	s := mustOpen(t, opts)
	defer closeStore(t, s)

	mustPut(t, s, 0, "deleted", "n1", vclock.Context{}, vclock.Sibling{Tombstone: true})
	mustPut(t, s, 0, "expiring", "n1", vclock.Context{}, vclock.Sibling{Value: []byte("v"), Expires: clk.After(time.Second)})
	clk.Advance(3 * time.Minute)
	if n := mustReclaim(t, s); n != 0 {
		t.Fatalf("reclaim dropped %d keys although CanDropTombstone says no", n)
	}
	if askedAbout("deleted") != 1 {
		t.Fatalf("CanDropTombstone asked %d times about the deleted key, want once", askedAbout("deleted"))
	}
	// The refused tombstone must not block the expired value behind it.
	if got := mustGet(t, s, 0, "expiring"); len(got.Siblings) != 1 || !got.Siblings[0].Tombstone {
		t.Fatalf("expired value beside a refused tombstone: %+v, want it buried", got.Siblings)
	}
	if got := mustGet(t, s, 0, "deleted"); len(got.Siblings) != 1 || !got.Siblings[0].Tombstone {
		t.Fatalf("refused tombstone: key holds %+v, want the tombstone", got.Siblings)
	}
	// The buried value's tombstone is past its grace too (it dates from
	// the expiry); a refused key waits before it is asked about again.
	mustReclaim(t, s)
	if askedAbout("deleted") != 1 || askedAbout("expiring") != 1 {
		t.Fatalf("CanDropTombstone asked %v on the next pass, want each key once (the deleted key was postponed)", asked)
	}
	allow.Store(true)
	clk.Advance(s.retryDelay())
	if n := mustReclaim(t, s); n != 2 {
		t.Fatalf("reclaim once replicas hold the tombstones dropped %d keys, want 2", n)
	}
	for _, k := range []string{"deleted", "expiring"} {
		if _, err := s.Get(0, []byte(k)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get %q: %v, want ErrNotFound", k, err)
		}
	}
}

func TestRetryDelayFollowsAShortGraceWithinBounds(t *testing.T) {
	for _, tc := range []struct{ grace, interval, want time.Duration }{
		{24 * time.Hour, time.Second, reclaimRetryDelay},
		{2 * time.Second, 200 * time.Millisecond, 2 * time.Second},
		{time.Second, 5 * time.Second, 5 * time.Second},
	} {
		s := &Store{opts: Options{TombstoneGrace: tc.grace, ReclaimInterval: tc.interval}}
		if got := s.retryDelay(); got != tc.want {
			t.Errorf("retryDelay with grace %v and reclaim interval %v: %v, want %v", tc.grace, tc.interval, got, tc.want)
		}
	}
}

// The hook talks to other nodes; the reclaimer must not hold the key's
// lock meanwhile (writes to it, or to keys sharing its lock stripe, would
// stall for an RPC timeout), and a write that lands meanwhile must keep
// the key.
func TestCanDropTombstoneRunsWithoutTheKeyLockAndAWriteMeanwhileKeepsTheKey(t *testing.T) {
	clk := newTestClock()
	opts := testOptions(t.TempDir(), clk)
	opts.TombstoneGrace = time.Minute
	s := mustOpen(t, opts)
	defer closeStore(t, s)
	_, c := mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("old"))
	mustPut(t, s, 0, "k", "n1", c, vclock.Sibling{Tombstone: true})
	clk.Advance(2 * time.Minute)

	wrote := make(chan error, 1)
	s.SetCanDropTombstone(func(db int, key []byte) bool {
		// A write from another goroutine, as a client's would be; with
		// the lock held it would never finish.
		go func() {
			_, _, err := s.Put(db, key, "n2", vclock.Context{}, value("new"))
			wrote <- err
		}()
		select {
		case err := <-wrote:
			if err != nil {
				t.Errorf("Put while CanDropTombstone runs: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Put while CanDropTombstone runs did not finish: the reclaimer holds the key's lock across the hook")
		}
		return true
	})
	if n := mustReclaim(t, s); n != 0 {
		t.Fatalf("reclaim dropped %d keys although the key was written while the replicas were asked", n)
	}
	if got := values(mustGet(t, s, 0, "k").Live(clk.Now().UnixNano())); !sameStrings(got, []string{"new"}) {
		t.Fatalf("key holds live %v, want [new]", got)
	}
}

func TestSetCanDropTombstoneOverridesTheOption(t *testing.T) {
	clk := newTestClock()
	opts := testOptions(t.TempDir(), clk)
	opts.TombstoneGrace = time.Minute
	opts.CanDropTombstone = func(int, []byte) bool { return true }
	s := mustOpen(t, opts)
	defer closeStore(t, s)
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, vclock.Sibling{Tombstone: true})
	var asked []string
	s.SetCanDropTombstone(func(db int, key []byte) bool {
		asked = append(asked, string(key))
		return false
	})
	clk.Advance(2 * time.Minute)
	if n := mustReclaim(t, s); n != 0 {
		t.Fatalf("reclaim dropped %d keys, want 0: the installed hook says no", n)
	}
	if !sameStrings(asked, []string{"k"}) {
		t.Fatalf("installed hook asked about %q, want [k]", asked)
	}
	s.SetCanDropTombstone(nil)
	clk.Advance(s.retryDelay())
	if n := mustReclaim(t, s); n != 1 {
		t.Fatalf("with a nil hook (one node) reclaim dropped %d keys, want 1", n)
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
	opts.TombstoneGrace = time.Second
	s := mustOpen(t, opts)
	defer closeStore(t, s)
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, vclock.Sibling{Value: []byte("v"), Expires: clk.After(time.Second)})
	clk.Advance(time.Minute)
	waitFor(t, "the background reclaimer to bury, then drop, the expired key", func() bool {
		_, err := s.Get(0, []byte("k"))
		return errors.Is(err, ErrNotFound)
	})
}
