package antientropy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
	"github.com/dynkv/dynkv/wal"
)

// fakeReplica is one node's canned answer to a Get.
type fakeReplica struct {
	set   vclock.Set
	found bool
	err   error
	block bool // wait for the caller's deadline instead of answering
}

type fakeReplicas struct {
	mu        sync.Mutex
	nodes     map[string]fakeReplica
	asked     []string
	gaveUpErr error // what a blocking replica's Get returned
}

func (f *fakeReplicas) Get(ctx context.Context, id string, db int, key []byte) (vclock.Set, bool, error) {
	f.mu.Lock()
	r, ok := f.nodes[id]
	f.asked = append(f.asked, id)
	f.mu.Unlock()
	if !ok {
		return vclock.Set{}, false, fmt.Errorf("fake: %w: %q", rpc.ErrUnknownNode, id)
	}
	if r.block {
		<-ctx.Done()
		f.mu.Lock()
		f.gaveUpErr = ctx.Err()
		f.mu.Unlock()
		return vclock.Set{}, false, ctx.Err()
	}
	return r.set, r.found, r.err
}

// storeReplicas reads each node's copy from its own store, as Replicas
// does for Self.
type storeReplicas map[string]*store.Store

func (s storeReplicas) Get(_ context.Context, id string, db int, key []byte) (vclock.Set, bool, error) {
	set, err := s[id].Get(db, key)
	if errors.Is(err, store.ErrNotFound) {
		return vclock.Set{}, false, nil
	}
	return set, err == nil, err
}

var gcNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// deleted is a key's history: a value written at n1, then deleted at n1
// with the write's context. It returns the state before and after the
// delete.
func deleted(t testing.TB) (old, tomb vclock.Set) {
	t.Helper()
	old, ctx := vclock.Set{}.Update("n1", vclock.Context{}, vclock.Sibling{Value: []byte("old"), LastModified: gcNow.Add(-time.Hour).UnixNano()})
	tomb, _ = old.Update("n1", ctx, vclock.Sibling{Tombstone: true, LastModified: gcNow.Add(-time.Minute).UnixNano()})
	if len(tomb.Siblings) != 1 || !tomb.Siblings[0].Tombstone {
		t.Fatalf("test setup: delete left %+v, want one tombstone", tomb.Siblings)
	}
	return old, tomb
}

func newTestGC(t *testing.T, reps TombstoneReplicas, p membership.Placement, alive func(string) bool) *TombstoneGC {
	t.Helper()
	g, err := NewTombstoneGC(TombstoneGCConfig{
		Self:      "a",
		N:         3,
		Placement: func() membership.Placement { return p },
		Alive:     alive,
		Replicas:  reps,
		Timeout:   time.Second,
		Now:       func() time.Time { return gcNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func ring(members ...string) *membership.Ring { return membership.NewRing(members, 16) }

func TestTombstoneGCDecisions(t *testing.T) {
	old, tomb := deleted(t)
	// A concurrent delete at n2 that a never saw.
	otherTomb, _ := old.Update("n2", old.Context, vclock.Sibling{Tombstone: true, LastModified: gcNow.Add(-time.Minute).UnixNano()})
	// A TTL value and its tombstone twin, the way the store buries it.
	exp := gcNow.Add(-time.Hour).UnixNano()
	expired, _ := vclock.Set{}.Update("n1", vclock.Context{}, vclock.Sibling{Value: []byte("v"), LastModified: exp - int64(time.Minute), Expires: exp})
	twin := vclock.Set{Context: expired.Context, Siblings: []vclock.Sibling{{Dot: expired.Siblings[0].Dot, LastModified: exp, Tombstone: true}}}
	// A value written after the delete, with its context.
	rewritten, _ := tomb.Update("n1", tomb.Context, vclock.Sibling{Value: []byte("new")})

	holds := func(s vclock.Set) fakeReplica { return fakeReplica{set: s, found: true} }
	settled := membership.Placement{Committed: ring("a", "b", "c")}
	allAlive := func(string) bool { return true }
	for _, tc := range []struct {
		name      string
		placement membership.Placement
		alive     func(string) bool
		nodes     map[string]fakeReplica
		want      bool
	}{
		{"every replica holds the tombstone", settled, allAlive,
			map[string]fakeReplica{"a": holds(tomb), "b": holds(tomb), "c": holds(tomb)}, true},
		{"a replica already dropped it", settled, allAlive,
			map[string]fakeReplica{"a": holds(tomb), "b": holds(tomb), "c": {}}, true},
		{"a replica has not buried the expired value yet", settled, allAlive,
			map[string]fakeReplica{"a": holds(twin), "b": holds(expired), "c": holds(twin)}, true},
		{"a replica is not alive", settled, func(id string) bool { return id != "c" },
			map[string]fakeReplica{"a": holds(tomb), "b": holds(tomb), "c": holds(tomb)}, false},
		{"a replica does not answer", settled, allAlive,
			map[string]fakeReplica{"a": holds(tomb), "b": holds(tomb), "c": {err: errors.New("connection refused")}}, false},
		{"a replica holds the old live value", settled, allAlive,
			map[string]fakeReplica{"a": holds(tomb), "b": holds(tomb), "c": holds(old)}, false},
		{"a replica holds a tombstone this node lacks", settled, allAlive,
			map[string]fakeReplica{"a": holds(tomb), "b": holds(otherTomb), "c": holds(tomb)}, false},
		{"a replica holds a value written after the delete", settled, allAlive,
			map[string]fakeReplica{"a": holds(tomb), "b": holds(rewritten), "c": holds(tomb)}, false},
		{"the local copy is gone", settled, allAlive,
			map[string]fakeReplica{"a": {}, "b": holds(tomb), "c": holds(tomb)}, false},
		{"a ring transition is pending", membership.Placement{Committed: ring("a", "b", "c"), Target: ring("a", "b", "c", "d")}, allAlive,
			map[string]fakeReplica{"a": holds(tomb), "b": holds(tomb), "c": holds(tomb), "d": holds(tomb)}, false},
		{"no committed ring yet", membership.Placement{Committed: ring()}, allAlive,
			map[string]fakeReplica{"a": holds(tomb)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reps := &fakeReplicas{nodes: tc.nodes}
			g := newTestGC(t, reps, tc.placement, tc.alive)
			if got := g.CanDropTombstone(0, []byte("k")); got != tc.want {
				ok, why := g.decide(0, []byte("k"))
				t.Fatalf("CanDropTombstone = %v, want %v (decision %v: %s)", got, tc.want, ok, why)
			}
			st := g.Stats()
			wantAgreed := uint64(0)
			if tc.want {
				wantAgreed = 1
			}
			if st.Asked != 1 || st.Agreed != wantAgreed {
				t.Fatalf("stats %+v, want 1 asked, %d agreed", st, wantAgreed)
			}
		})
	}
}

func TestTombstoneGCAsksEveryReplicaOfTheKeyIncludingAStrayHolder(t *testing.T) {
	_, tomb := deleted(t)
	nodes := map[string]fakeReplica{}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		nodes[id] = fakeReplica{set: tomb, found: true}
	}
	p := membership.Placement{Committed: ring("a", "b", "c", "d", "e")}
	// A key whose preference list does not hold "a".
	var key []byte
	for i := 0; key == nil; i++ {
		k := []byte(fmt.Sprintf("k%d", i))
		list := p.Committed.PreferenceList(p.Partition(0, k), 3)
		if list[0] != "a" && list[1] != "a" && list[2] != "a" {
			key = k
		}
	}
	reps := &fakeReplicas{nodes: nodes}
	g := newTestGC(t, reps, p, nil)
	if !g.CanDropTombstone(0, key) {
		t.Fatalf("CanDropTombstone refused a stray tombstone every owner holds")
	}
	want := append(p.Committed.PreferenceList(p.Partition(0, key), 3), "a")
	if !sameSet(reps.asked, want) {
		t.Fatalf("asked %v, want the preference list and this node: %v", reps.asked, want)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestTombstoneGCGivesUpOnAReplicaThatDoesNotAnswerWithinTheTimeout(t *testing.T) {
	checkLeaks(t)
	_, tomb := deleted(t)
	reps := &fakeReplicas{nodes: map[string]fakeReplica{
		"a": {set: tomb, found: true}, "b": {set: tomb, found: true}, "c": {block: true},
	}}
	g, err := NewTombstoneGC(TombstoneGCConfig{
		Self: "a", N: 3, Replicas: reps, Timeout: 20 * time.Millisecond,
		Placement: func() membership.Placement { return membership.Placement{Committed: ring("a", "b", "c")} },
		Now:       func() time.Time { return gcNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	ok, why := g.decide(0, []byte("k"))
	reps.mu.Lock()
	gaveUp := reps.gaveUpErr
	reps.mu.Unlock()
	if ok || !errors.Is(gaveUp, context.DeadlineExceeded) {
		t.Fatalf("decision with a replica that never answers: %v (%s; its Get ended with %v), want no at the deadline", ok, why, gaveUp)
	}
	t.Logf("refused: %s", why)
}

func TestNewTombstoneGCRejectsAnIncompleteConfig(t *testing.T) {
	if _, err := NewTombstoneGC(TombstoneGCConfig{}); err == nil {
		t.Fatal("NewTombstoneGC with no Self, Placement or Replicas: nil error")
	}
}

// A replica X that missed a delete (it was down) keeps the old value while
// the others hold the tombstone. Read repair, hints and anti-entropy all
// merge whole states with vclock.Merge: merging X's state into the others
// must keep the delete, and merging theirs into X must delete it there.
func TestAStaleReplicaDoesNotResurrectADelete(t *testing.T) {
	checkLeaks(t)
	a, b, x := openStore(t), openStore(t), openStore(t)
	key := []byte("k")
	written, wctx, err := a.Put(0, key, "a", vclock.Context{}, vclock.Sibling{Value: []byte("old")})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*store.Store{b, x} {
		if _, err := s.Merge(0, key, written); err != nil {
			t.Fatal(err)
		}
	}
	tomb, _, err := a.Put(0, key, "a", wctx, vclock.Sibling{Tombstone: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Merge(0, key, tomb); err != nil { // x is down
		t.Fatal(err)
	}
	stale, err := x.Get(0, key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	if len(stale.Live(now)) != 1 {
		t.Fatalf("test setup: X holds %+v, want the old value", stale.Siblings)
	}

	g := newTestGC(t, storeReplicas{"a": a, "b": b, "c": x}, membership.Placement{Committed: ring("a", "b", "c")}, nil)
	if ok, why := g.decide(0, key); ok {
		t.Fatal("CanDropTombstone agreed while X holds the old value")
	} else {
		t.Logf("while X is stale: %s", why)
	}

	for _, s := range []*store.Store{a, b} {
		got, err := s.Merge(0, key, stale)
		if err != nil {
			t.Fatal(err)
		}
		if live := got.Live(now); len(live) != 0 {
			t.Fatalf("merging the stale replica's state brought back %q", live[0].Value)
		}
	}
	got, err := x.Merge(0, key, tomb)
	if err != nil {
		t.Fatal(err)
	}
	if live := got.Live(now); len(live) != 0 || len(got.Siblings) != 1 || !got.Siblings[0].Tombstone {
		t.Fatalf("X after merging the tombstone holds %+v, want only the tombstone", got.Siblings)
	}
	if ok, why := g.decide(0, key); !ok {
		t.Fatalf("CanDropTombstone refused once every replica holds the tombstone: %s", why)
	}
}

// The whole path on three stores with their reclaimers running: the
// tombstone stays everywhere while X holds the old value, and once X has
// the tombstone (as anti-entropy would bring it) every replica drops the
// key, and none brings it back.
func TestDeleteIsReapedEverywhereOnlyOnceTheStaleReplicaHasIt(t *testing.T) {
	checkLeaks(t)
	ids := []string{"a", "b", "c"}
	stores := storeReplicas{}
	gcs := map[string]*TombstoneGC{}
	for _, id := range ids {
		s, err := store.Open(store.Options{
			Dir:                t.TempDir(),
			Sync:               wal.SyncPolicy{Interval: 10 * time.Millisecond},
			MinFreeBytes:       1,
			CheckpointInterval: time.Hour,
			ReclaimInterval:    10 * time.Millisecond,
			TombstoneGrace:     50 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close %s: %v", id, err)
			}
		})
		stores[id] = s
	}
	for _, id := range ids {
		g, err := NewTombstoneGC(TombstoneGCConfig{
			Self: id, N: 3, Replicas: stores, Timeout: time.Second,
			Placement: func() membership.Placement { return membership.Placement{Committed: ring(ids...)} },
		})
		if err != nil {
			t.Fatal(err)
		}
		gcs[id] = g
	}
	key := []byte("k")
	written, wctx, err := stores["a"].Put(0, key, "a", vclock.Context{}, vclock.Sibling{Value: []byte("old")})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"b", "c"} {
		if _, err := stores[id].Merge(0, key, written); err != nil {
			t.Fatal(err)
		}
	}
	// Hooks go in after the writes, as a node installs its hook once its
	// cluster is up.
	for _, id := range ids {
		stores[id].SetCanDropTombstone(gcs[id].CanDropTombstone)
	}
	tomb, _, err := stores["a"].Put(0, key, "a", wctx, vclock.Sibling{Tombstone: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stores["b"].Merge(0, key, tomb); err != nil {
		t.Fatal(err)
	}

	// a and b have asked (and been refused) several times: the grace is long past.
	waitUntil(t, "a and b to ask about the tombstone twice each", func() bool {
		return gcs["a"].Stats().Asked >= 2 && gcs["b"].Stats().Asked >= 2
	})
	for _, id := range []string{"a", "b"} {
		set, err := stores[id].Get(0, key)
		if err != nil {
			t.Fatalf("%s dropped the tombstone while c holds the old value: %v", id, err)
		}
		if st := gcs[id].Stats(); st.Agreed != 0 {
			t.Fatalf("%s: GC agreed %d times while c holds the old value (%+v)", id, st.Agreed, set.Siblings)
		}
	}

	if _, err := stores["c"].Merge(0, key, tomb); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitUntil(t, "every replica to drop the key", func() bool {
		for _, id := range ids {
			if _, err := stores[id].Get(0, key); !errors.Is(err, store.ErrNotFound) {
				return false
			}
		}
		return true
	})
	t.Logf("every replica dropped the tombstone %v after the stale one received it", time.Since(start).Round(time.Millisecond))
}

// waitUntil polls cond; the deadline only bounds a broken test.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, 5*time.Millisecond, what, cond)
}

// BenchmarkTombstoneGCDecision: the cost of one decision besides the RPCs
// (fan-out, merge checks), with three replicas that all hold the tombstone.
func BenchmarkTombstoneGCDecision(b *testing.B) {
	_, tomb := deleted(b)
	reps := &fakeReplicas{nodes: map[string]fakeReplica{
		"a": {set: tomb, found: true}, "b": {set: tomb, found: true}, "c": {set: tomb, found: true},
	}}
	g, err := NewTombstoneGC(TombstoneGCConfig{
		Self: "a", N: 3, Replicas: reps, Timeout: time.Second,
		Placement: func() membership.Placement { return membership.Placement{Committed: ring("a", "b", "c")} },
		Now:       func() time.Time { return gcNow },
	})
	if err != nil {
		b.Fatal(err)
	}
	key := []byte("k")
	b.ReportAllocs()
	for b.Loop() {
		if !g.CanDropTombstone(0, key) {
			b.Fatal("CanDropTombstone refused")
		}
		reps.mu.Lock()
		reps.asked = reps.asked[:0]
		reps.mu.Unlock()
	}
}
