package antientropy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/internal/testutil/storetest"
	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
	"github.com/dynkv/dynkv/wal"
)

const testPartitions = 8

// openTreeStore opens a store whose changes feed a new HashTrees, and
// builds the trees.
func openTreeStore(t testing.TB, dir string) (*store.Store, *HashTrees) {
	t.Helper()
	trees := NewHashTrees(testPartitions)
	opts := storetest.Options(dir)
	opts.OnChange = trees.Observe
	s, err := store.Open(opts)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := trees.Build(context.Background(), s); err != nil {
		t.Fatalf("Build: %v", err)
	}
	return s, trees
}

// rebuilt is what a fresh build from the store's contents gives.
func rebuilt(t testing.TB, s *store.Store) *HashTrees {
	t.Helper()
	fresh := NewHashTrees(testPartitions)
	if err := fresh.Build(context.Background(), s); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	return fresh
}

func sameTrees(t testing.TB, what string, got, want *HashTrees) {
	t.Helper()
	for p := range testPartitions {
		g, _ := got.Summary(p)
		w, _ := want.Summary(p)
		if d := DiffLeaves(&g, &w); len(d) > 0 || g.Root != w.Root {
			t.Fatalf("%s: partition %d differs from a rebuild in leaves %v", what, p, d)
		}
	}
	if got.Keys() != want.Keys() {
		t.Fatalf("%s: trees count %d keys, a rebuild %d", what, got.Keys(), want.Keys())
	}
}

func randomOp(t testing.TB, rng *rand.Rand, s *store.Store) {
	t.Helper()
	if err := tryRandomOp(rng, s); err != nil {
		t.Fatal(err)
	}
}

func tryRandomOp(rng *rand.Rand, s *store.Store) error {
	db, key := rng.IntN(3), []byte(fmt.Sprintf("k%03d", rng.IntN(60)))
	var err error
	switch rng.IntN(5) {
	case 0, 1:
		_, _, err = s.Put(db, key, "n1", vclock.Context{}, vclock.Sibling{Value: []byte(fmt.Sprint(rng.Int()))})
	case 2:
		var other vclock.Set
		other, _ = other.Update("n2", vclock.Context{}, vclock.Sibling{Value: []byte(fmt.Sprint(rng.Int())), LastModified: 1})
		_, err = s.Merge(db, key, other)
	case 3:
		_, _, err = s.Put(db, key, "n1", vclock.Context{}, vclock.Sibling{Tombstone: true})
	case 4:
		cur, gerr := s.Get(db, key)
		if gerr == nil {
			_, err = s.Drop(db, key, cur)
		}
	}
	if err != nil {
		return fmt.Errorf("op on db %d key %s: %w", db, key, err)
	}
	return nil
}

func TestIncrementalTreesEqualARebuildAfterRandomOperations(t *testing.T) {
	seed := testutil.Seed(t, testutil.SeedEnv)
	rng := rand.New(rand.NewPCG(seed, 1))
	s, trees := openTreeStore(t, t.TempDir())
	for i := range 600 {
		randomOp(t, rng, s)
		if i%100 == 99 {
			sameTrees(t, fmt.Sprintf("seed %d after %d operations", seed, i+1), trees, rebuilt(t, s))
		}
	}
}

func TestTreesBuiltDuringWritesEqualARebuild(t *testing.T) {
	seed := testutil.Seed(t, testutil.SeedEnv)
	s, _ := openTreeStore(t, t.TempDir())
	rng := rand.New(rand.NewPCG(seed, 2))
	for range 300 {
		randomOp(t, rng, s)
	}
	// A second store, filled from the first, whose trees are built while
	// writes keep landing.
	trees := NewHashTrees(testPartitions)
	dir := t.TempDir()
	s2, err := store.Open(store.Options{Dir: dir, MinFreeBytes: 1, Sync: wal.SyncPolicy{Interval: 10 * time.Millisecond}, OnChange: trees.Observe})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s.Scan(func(db int, key []byte, set vclock.Set) error {
		_, err := s2.Merge(db, key, set)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(seed, 3))
		for {
			select {
			case <-stop:
				return
			default:
				if err := tryRandomOp(r, s2); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	err = trees.Build(context.Background(), s2)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	sameTrees(t, fmt.Sprintf("seed %d", seed), trees, rebuilt(t, s2))
}

func TestTreesWithOneDifferentKeyDifferInExactlyItsLeaf(t *testing.T) {
	a, ta := openTreeStore(t, t.TempDir())
	b, tb := openTreeStore(t, t.TempDir())
	for i := range 200 {
		var set vclock.Set
		set, _ = set.Update("n1", vclock.Context{}, vclock.Sibling{Value: []byte(fmt.Sprint(i)), LastModified: int64(i + 1)})
		for _, s := range []*store.Store{a, b} {
			if _, err := s.Merge(0, []byte(fmt.Sprintf("key-%d", i)), set); err != nil {
				t.Fatal(err)
			}
		}
	}
	sameTrees(t, "identical stores", ta, tb)
	key := []byte("key-77")
	if _, _, err := b.Put(0, key, "n2", vclock.Context{}, vclock.Sibling{Value: []byte("changed")}); err != nil {
		t.Fatal(err)
	}
	h := placeHash(0, key)
	p := partitionOfHash(h, testPartitions)
	for q := range testPartitions {
		sa, _ := ta.Summary(q)
		sb, _ := tb.Summary(q)
		d := DiffLeaves(&sa, &sb)
		if q != p && len(d) != 0 {
			t.Fatalf("partition %d (not the key's %d) differs in leaves %v", q, p, d)
		}
		if q == p && !slices.Equal(d, []int{bucketOfHash(h)}) {
			t.Fatalf("partition %d differs in leaves %v, want exactly the key's bucket %d", q, d, bucketOfHash(h))
		}
	}
}

func TestTreePlacementMatchesMembership(t *testing.T) {
	for i := range 1000 {
		key := []byte(fmt.Sprintf("k%d", i))
		for _, parts := range []int{1, 7, 256} {
			if got, want := partitionOfHash(placeHash(i%4, key), parts), membership.PartitionOf(i%4, key, parts); got != want {
				t.Fatalf("key %s db %d, %d partitions: trees place it in %d, membership in %d", key, i%4, parts, got, want)
			}
		}
	}
}

func TestTreesAreNotReadyBeforeBuild(t *testing.T) {
	trees := NewHashTrees(4)
	trees.Observe(0, []byte("k"), nil, []byte("x"))
	s, err := trees.Summary(1)
	if err != nil || s.Ready {
		t.Fatalf("Summary before Build: ready %v err %v, want not ready", s.Ready, err)
	}
	if _, err := trees.Summary(4); err == nil {
		t.Fatal("Summary of partition 4 of 4: no error")
	}
}

func TestDiffKeysFindsMissingAndDifferentKeysOnly(t *testing.T) {
	local := []KeyHash{{0, []byte("a"), 1}, {0, []byte("b"), 2}, {1, []byte("a"), 3}}
	remote := []KeyHash{{0, []byte("b"), 2}, {1, []byte("a"), 4}, {2, []byte("z"), 5}}
	got := diffKeys(local, remote)
	want := []keyDiff{
		{DB: 0, Key: []byte("a"), Local: true},
		{DB: 1, Key: []byte("a"), Local: true, Remote: true, RemoteHash: 4},
		{DB: 2, Key: []byte("z"), Remote: true, RemoteHash: 5},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("diffKeys = %v, want %v", got, want)
	}
}

func BenchmarkHashTreesObserve(b *testing.B) {
	trees := NewHashTrees(256)
	trees.live = true
	key := []byte("user:000000012345")
	before, after := make([]byte, 120), make([]byte, 130)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		key[len(key)-1] = byte(i)
		trees.Observe(1, key, before, after)
	}
}

func BenchmarkHashTreesSummary(b *testing.B) {
	trees := NewHashTrees(256)
	trees.live, trees.ready = true, true
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		trees.Observe(0, []byte(fmt.Sprint(i)), nil, []byte("v"))
		_, _ = trees.Summary(0)
	}
}

func fillForBench(b *testing.B, s *store.Store, n int) {
	b.Helper()
	for i := range n {
		var set vclock.Set
		set, _ = set.Update("n1", vclock.Context{}, vclock.Sibling{Value: make([]byte, 100), LastModified: int64(i + 1)})
		if _, err := s.Merge(0, []byte(fmt.Sprintf("user:%08d", i)), set); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashTreesBuild20k is the start-up scan of a store of 20,000
// keys of 100-byte values.
func BenchmarkHashTreesBuild20k(b *testing.B) {
	s, _ := openTreeStore(b, b.TempDir())
	fillForBench(b, s, 20000)
	b.ReportAllocs()
	for b.Loop() {
		if err := NewHashTrees(testPartitions).Build(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBucketKeys20k is the key listing of one differing leaf: a
// filtered scan of a store of 20,000 keys.
func BenchmarkBucketKeys20k(b *testing.B) {
	s, _ := openTreeStore(b, b.TempDir())
	fillForBench(b, s, 20000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bucketKeys(s, testPartitions, 3, []int{17}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRootsAgreeWithSummariesAndAnEmptyPartitionHashesTheSameEverywhere(t *testing.T) {
	if r := NewHashTrees(testPartitions).Roots(); r.Ready || len(r.Roots) != 0 {
		t.Fatalf("roots before Build: %+v, want not ready and no hashes", r)
	}
	s, trees := openTreeStore(t, t.TempDir())
	_, empty := openTreeStore(t, t.TempDir())
	// Only partition 0 gets keys; one of them is deleted again.
	var keys []string
	for i := 0; len(keys) < 5; i++ {
		k := fmt.Sprintf("k%d", i)
		if partitionOfHash(placeHash(0, []byte(k)), testPartitions) == 0 {
			keys = append(keys, k)
			mustMerge(t, s, k, write("a", "v", vclock.Context{}, vclock.Set{}))
		}
	}
	r, e := trees.Roots(), empty.Roots()
	if !r.Ready || len(r.Roots) != testPartitions {
		t.Fatalf("roots %+v, want ready with %d roots", r, testPartitions)
	}
	for p := range testPartitions {
		sum, _ := trees.Summary(p)
		if r.Roots[p] != sum.Root {
			t.Errorf("partition %d: root %016x, its summary's %016x", p, r.Roots[p], sum.Root)
		}
		if differs := r.Roots[p] != e.Roots[p]; differs != (p == 0) {
			t.Errorf("partition %d: root %016x, an empty node's %016x; want them different only in partition 0", p, r.Roots[p], e.Roots[p])
		}
	}
	// A change after Roots shows in the next Roots (the dirty tree is
	// rehashed), and removing every key gives back the empty root.
	before := r.Roots[0]
	drop := func(k string) {
		t.Helper()
		if ok, err := s.Drop(0, []byte(k), write("a", "v", vclock.Context{}, vclock.Set{})); err != nil || !ok {
			t.Fatalf("Drop %s: dropped %v, %v", k, ok, err)
		}
	}
	drop(keys[0])
	if after := trees.Roots().Roots[0]; after == before {
		t.Fatal("partition 0's root did not change after a key of it was removed")
	}
	for _, k := range keys[1:] {
		drop(k)
	}
	if got, want := trees.Roots().Roots[0], e.Roots[0]; got != want {
		t.Fatalf("partition 0 with every key removed has root %016x, an empty partition %016x", got, want)
	}
}

// BenchmarkHashTreesRoots is the cost of answering one aae-roots call on a
// node of 256 partitions, all holding keys, where one key changed since the
// last call.
func BenchmarkHashTreesRoots(b *testing.B) {
	const partitions = 256
	trees := NewHashTrees(partitions)
	trees.live, trees.ready = true, true
	for i := range 100 * partitions {
		trees.Observe(0, []byte(fmt.Sprint("k", i)), nil, []byte("v"))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		trees.Observe(0, []byte(fmt.Sprint(i)), nil, []byte("v"))
		if r := trees.Roots(); len(r.Roots) != partitions {
			b.Fatalf("%d roots, want %d", len(r.Roots), partitions)
		}
	}
}
