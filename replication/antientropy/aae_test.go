package antientropy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/lifecycle"
	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/replication/internal/rpctest"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// twoReplicas is a ring of a and b, both replicas of every partition.
type twoReplicas struct{ ring *membership.Ring }

func (r twoReplicas) Placement() membership.Placement {
	return membership.Placement{Committed: r.ring}
}
func (twoReplicas) Liveness(string) membership.Liveness { return membership.Alive }

// countingPeers counts the calls anti-entropy makes.
type countingPeers struct {
	Peers
	gets, merges, roots atomic.Int64

	mu    sync.Mutex
	trees []int // partitions whose tree was fetched, in order
}

func (c *countingPeers) AAERoots(ctx context.Context, id string) (TreeRoots, error) {
	c.roots.Add(1)
	return c.Peers.AAERoots(ctx, id)
}

func (c *countingPeers) AAETree(ctx context.Context, id string, p int) (*TreeSummary, error) {
	c.mu.Lock()
	c.trees = append(c.trees, p)
	c.mu.Unlock()
	return c.Peers.AAETree(ctx, id, p)
}

// treesFetched returns the partitions whose trees were fetched since the
// last call, in order, each once: an exchange's second look after Settle is
// folded into its first.
func (c *countingPeers) treesFetched() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for _, p := range c.trees {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	c.trees = nil
	return out
}

// healingPeers lands the writes of heal on the peer's store right after
// the first tree fetch of an exchange: a difference that is only a write on
// its way.
type healingPeers struct {
	*countingPeers
	heal    func()
	fetches atomic.Int64
}

func (h *healingPeers) AAETree(ctx context.Context, id string, p int) (*TreeSummary, error) {
	s, err := h.countingPeers.AAETree(ctx, id, p)
	if h.fetches.Add(1) == 1 {
		h.heal()
	}
	return s, err
}

func (c *countingPeers) Get(ctx context.Context, id string, db int, key []byte) (vclock.Set, bool, error) {
	c.gets.Add(1)
	return c.Peers.Get(ctx, id, db, key)
}

func (c *countingPeers) Merge(ctx context.Context, id string, db int, key []byte, s vclock.Set) error {
	c.merges.Add(1)
	return c.Peers.Merge(ctx, id, db, key, s)
}

type aaeRig struct {
	a, b   *store.Store
	ta, tb *HashTrees
	peers  *countingPeers
	ae     *AntiEntropy
}

// newAAERig runs anti-entropy on a against b, which is served over real
// h2c RPC.
func newAAERig(t *testing.T, tweak func(*Config)) *aaeRig {
	t.Helper()
	r := &aaeRig{}
	r.a, r.ta = openTreeStore(t, t.TempDir())
	r.b, r.tb = openTreeStore(t, t.TempDir())
	addr := serveTrees(t, r.b, r.tb)
	client := rpctest.NewClient(t, rpc.ClientConfig{})
	r.peers = &countingPeers{Peers: RPCPeers{&rpc.Replicas{Self: "a", Store: r.a, Client: client, Members: func(id string) (membership.Member, bool) {
		return membership.Member{ID: id, HTTPAddr: addr}, id == "b"
	}}}}
	cfg := Config{
		Self: "a", Store: r.a, Trees: r.ta, Peers: r.peers, N: 2,
		Membership:        twoReplicas{membership.NewRing([]string{"a", "b"}, testPartitions)},
		ExchangesPerRound: 2 * testPartitions,
		Rate:              -1,
		TombstoneGrace:    time.Hour,
		Settle:            5 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	var err error
	if r.ae, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	return r
}

func mustMerge(t *testing.T, s *store.Store, key string, set vclock.Set) {
	t.Helper()
	if _, err := s.Merge(0, []byte(key), set); err != nil {
		t.Fatalf("Merge %s: %v", key, err)
	}
}

func write(actor, value string, ctx vclock.Context, base vclock.Set) vclock.Set {
	s, _ := base.Update(actor, ctx, vclock.Sibling{Value: []byte(value), LastModified: 1})
	return s
}

func TestAntiEntropyConvergesDivergentReplicasMovingOnlyDifferingKeys(t *testing.T) {
	checkLeaks(t)
	r := newAAERig(t, nil)
	for i := range 300 {
		s := write("x", fmt.Sprint(i), vclock.Context{}, vclock.Set{})
		mustMerge(t, r.a, fmt.Sprintf("common-%d", i), s)
		mustMerge(t, r.b, fmt.Sprintf("common-%d", i), s)
	}
	const onlyA, onlyB, newerOnB, siblings = 20, 15, 10, 5
	for i := range onlyA {
		mustMerge(t, r.a, fmt.Sprintf("only-a-%d", i), write("a", "v", vclock.Context{}, vclock.Set{}))
	}
	for i := range onlyB {
		mustMerge(t, r.b, fmt.Sprintf("only-b-%d", i), write("b", "v", vclock.Context{}, vclock.Set{}))
	}
	for i := range newerOnB {
		old := write("a", "old", vclock.Context{}, vclock.Set{})
		mustMerge(t, r.a, fmt.Sprintf("newer-%d", i), old)
		mustMerge(t, r.b, fmt.Sprintf("newer-%d", i), write("b", "new", old.Context, old))
	}
	for i := range siblings {
		mustMerge(t, r.a, fmt.Sprintf("sib-%d", i), write("a", "from-a", vclock.Context{}, vclock.Set{}))
		mustMerge(t, r.b, fmt.Sprintf("sib-%d", i), write("b", "from-b", vclock.Context{}, vclock.Set{}))
	}

	if err := r.ae.Round(ctxTimeout(t)); err != nil {
		t.Fatalf("Round: %v", err)
	}
	ca, cb := storeContents(t, r.a), storeContents(t, r.b)
	if want := 300 + onlyA + onlyB + newerOnB + siblings; len(ca) != want || len(cb) != want {
		t.Fatalf("after a round a holds %d keys, b %d, want %d each", len(ca), len(cb), want)
	}
	for k, s := range ca {
		if !s.Equal(cb[k]) {
			t.Fatalf("key %v: a holds %v, b holds %v", k, s, cb[k])
		}
	}
	for i := range siblings {
		if n := len(ca[storedKey{DB: 0, Key: fmt.Sprintf("sib-%d", i)}].Siblings); n != 2 {
			t.Fatalf("sib-%d has %d siblings after the exchange, want both writes", i, n)
		}
	}
	if got, want := r.peers.gets.Load(), int64(onlyB+newerOnB+siblings); got != want {
		t.Errorf("fetched %d keys from the peer, want the %d it held differently", got, want)
	}
	if got, want := r.peers.merges.Load(), int64(onlyA+siblings); got != want {
		t.Errorf("pushed %d keys to the peer, want the %d it lacked", got, want)
	}
	sameTrees(t, "after the exchange", r.ta, r.tb)

	gets, merges := r.peers.gets.Load(), r.peers.merges.Load()
	first := r.ae.Stats()
	if err := r.ae.Round(ctxTimeout(t)); err != nil {
		t.Fatalf("second Round: %v", err)
	}
	if r.peers.gets.Load() != gets || r.peers.merges.Load() != merges {
		t.Fatalf("a round between converged replicas transferred keys: gets %d -> %d, merges %d -> %d",
			gets, r.peers.gets.Load(), merges, r.peers.merges.Load())
	}
	st := r.ae.Stats()
	if st.KeysPulled != uint64(onlyB+newerOnB+siblings) || st.KeysPushed != uint64(onlyA+siblings) {
		t.Fatalf("stats %+v: want %d pulled, %d pushed", st, onlyB+newerOnB+siblings, onlyA+siblings)
	}
	if st.Exchanges != first.Exchanges || st.RootsFetched != 2 {
		t.Fatalf("stats %+v: the round between converged replicas made %d exchanges and %d roots calls, want 0 exchanges and 1 roots call per round",
			st, st.Exchanges-first.Exchanges, st.RootsFetched)
	}
}

func TestAntiEntropyPullsButNeverPushesTombstonesPastGrace(t *testing.T) {
	checkLeaks(t)
	r := newAAERig(t, nil)
	old := time.Now().Add(-2 * time.Hour).UnixNano()
	tomb := func(actor string) vclock.Set {
		s, _ := vclock.Set{}.Update(actor, vclock.Context{}, vclock.Sibling{Tombstone: true, LastModified: old})
		return s
	}
	mustMerge(t, r.a, "reaped-on-b", tomb("a"))
	mustMerge(t, r.b, "only-on-b", tomb("b"))
	fresh, _ := vclock.Set{}.Update("a", vclock.Context{}, vclock.Sibling{Tombstone: true, LastModified: time.Now().UnixNano()})
	mustMerge(t, r.a, "fresh-delete", fresh)

	if err := r.ae.Round(ctxTimeout(t)); err != nil {
		t.Fatalf("Round: %v", err)
	}
	if _, err := r.b.Get(0, []byte("reaped-on-b")); err == nil {
		t.Fatal("a tombstone past grace was pushed to a replica that does not hold it (a reaped delete would come back)")
	}
	if _, err := r.a.Get(0, []byte("only-on-b")); err != nil {
		t.Fatalf("a tombstone past grace held by the peer was not pulled: %v", err)
	}
	if _, err := r.b.Get(0, []byte("fresh-delete")); err != nil {
		t.Fatalf("a tombstone within grace was not pushed: %v", err)
	}
	// only-on-b is pulled and then equal on both sides: nothing to push.
	if st := r.ae.Stats(); st.TombstonesNotPushed != 1 || st.KeysPushed != 1 || st.KeysPulled != 1 {
		t.Fatalf("stats %+v: want 1 tombstone held back, 1 key pushed (fresh-delete), 1 pulled (only-on-b)", st)
	}
}

func TestAntiEntropyRunsInTheBackgroundUntilClosed(t *testing.T) {
	checkLeaks(t)
	r := newAAERig(t, func(c *Config) { c.Interval = 5 * time.Millisecond; c.ExchangesPerRound = 1 })
	for i := range 50 {
		mustMerge(t, r.b, fmt.Sprintf("k%d", i), write("b", "v", vclock.Context{}, vclock.Set{}))
	}
	if err := r.ae.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer r.ae.Close()
	deadline := time.Now().Add(20 * time.Second)
	for len(storeContents(t, r.a)) < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("after 20s a holds %d of b's 50 keys; stats %+v", len(storeContents(t, r.a)), r.ae.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.ae.Close()
	if st := r.ae.Stats(); st.KeysPulled != 50 || !st.TreesReady {
		t.Fatalf("stats %+v, want 50 keys pulled and trees ready", st)
	}
}

// keysIn returns n keys of db 0 that fall in partition p.
func keysIn(p, n int, prefix string) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		k := fmt.Sprintf("%s-%d", prefix, i)
		if partitionOfHash(placeHash(0, []byte(k)), testPartitions) == p {
			out = append(out, k)
		}
	}
	return out
}

// divergeIn gives a and b the same keys everywhere, plus keys only a holds
// in the given partitions.
func (r *aaeRig) divergeIn(t *testing.T, parts ...int) {
	t.Helper()
	for i := range 200 {
		s := write("x", fmt.Sprint(i), vclock.Context{}, vclock.Set{})
		mustMerge(t, r.a, fmt.Sprintf("common-%d", i), s)
		mustMerge(t, r.b, fmt.Sprintf("common-%d", i), s)
	}
	for _, p := range parts {
		for _, k := range keysIn(p, 3, "only-a") {
			mustMerge(t, r.a, k, write("a", "v", vclock.Context{}, vclock.Set{}))
		}
	}
}

func sameRoots(t *testing.T, what string, a, b *HashTrees) {
	t.Helper()
	if ra, rb := a.Roots(), b.Roots(); !slices.Equal(ra.Roots, rb.Roots) {
		t.Fatalf("%s: roots differ:\n a %016x\n b %016x", what, ra.Roots, rb.Roots)
	}
}

func TestAntiEntropyRoundExchangesExactlyThePartitionsWhoseRootsDiffer(t *testing.T) {
	checkLeaks(t)
	r := newAAERig(t, nil)
	differing := []int{1, 4, 6}
	r.divergeIn(t, differing...)

	if err := r.ae.Round(ctxTimeout(t)); err != nil {
		t.Fatalf("Round: %v", err)
	}
	if got := r.peers.treesFetched(); !slices.Equal(got, differing) {
		t.Errorf("fetched the trees of partitions %v, want exactly the differing %v", got, differing)
	}
	st := r.ae.Stats()
	if st.RootsFetched != 1 || r.peers.roots.Load() != 1 {
		t.Errorf("stats %+v, %d roots calls: want one roots call to the one peer", st, r.peers.roots.Load())
	}
	if st.Exchanges != uint64(len(differing)) || st.PartitionsDiffering != uint64(len(differing)) {
		t.Errorf("stats %+v: want %d exchanges, all differing", st, len(differing))
	}
	if want := 3 * len(differing); st.KeysPushed != uint64(want) || r.peers.merges.Load() != int64(want) {
		t.Errorf("stats %+v: want the %d keys b lacked pushed", st, want)
	}
	sameRoots(t, "after one round with the differences within budget", r.ta, r.tb)
}

func TestAntiEntropyLeavesADifferenceThatSettlesAlone(t *testing.T) {
	checkLeaks(t)
	r := newAAERig(t, nil)
	r.divergeIn(t, 3)
	healing := &healingPeers{countingPeers: r.peers, heal: func() {
		for _, k := range keysIn(3, 3, "only-a") {
			mustMerge(t, r.b, k, write("a", "v", vclock.Context{}, vclock.Set{}))
		}
	}}
	r.ae.cfg.Peers = healing
	if err := r.ae.Exchange(ctxTimeout(t), 3, "b"); err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if n := healing.fetches.Load(); n != 2 {
		t.Fatalf("fetched b's tree %d times, want 2 (a second look after Settle)", n)
	}
	st := r.ae.Stats()
	if st.PartitionsDiffering != 0 || st.KeysPushed != 0 || st.KeysPulled != 0 || r.peers.gets.Load() != 0 {
		t.Fatalf("stats %+v, %d gets: a difference gone after Settle was listed or repaired", st, r.peers.gets.Load())
	}
	sameRoots(t, "after the write on its way landed", r.ta, r.tb)
}

func TestAntiEntropyRoundBetweenEqualReplicasFetchesOnlyRoots(t *testing.T) {
	checkLeaks(t)
	r := newAAERig(t, nil)
	r.divergeIn(t)
	for range 3 {
		if err := r.ae.Round(ctxTimeout(t)); err != nil {
			t.Fatalf("Round: %v", err)
		}
	}
	if got := r.peers.treesFetched(); len(got) != 0 {
		t.Errorf("equal replicas: fetched the trees of partitions %v, want none", got)
	}
	if st := r.ae.Stats(); r.peers.roots.Load() != 3 || st.Exchanges != 0 || st.Rounds != 3 || st.Errors != 0 || st.LastExchange.IsZero() {
		t.Errorf("stats %+v after 3 rounds, %d roots calls: want 3 roots calls, no exchange, and the last comparison's time", st, r.peers.roots.Load())
	}
}

func TestAntiEntropyWorksThroughABacklogLargerThanItsBudgetInTurn(t *testing.T) {
	checkLeaks(t)
	r := newAAERig(t, func(c *Config) { c.ExchangesPerRound = 2 })
	differing := []int{0, 2, 3, 5, 7}
	r.divergeIn(t, differing...)

	var seen []int
	for round := 1; round <= 3; round++ {
		if err := r.ae.Round(ctxTimeout(t)); err != nil {
			t.Fatalf("Round %d: %v", round, err)
		}
		got := r.peers.treesFetched()
		if len(got) > 2 {
			t.Fatalf("round %d fetched the trees of partitions %v, over the budget of 2", round, got)
		}
		seen = append(seen, got...)
	}
	if !slices.Equal(seen, differing) {
		t.Fatalf("three rounds with a budget of 2 fetched the trees of partitions %v, want each differing one once in turn: %v", seen, differing)
	}
	sameRoots(t, "after the backlog was worked through", r.ta, r.tb)
	if err := r.ae.Round(ctxTimeout(t)); err != nil {
		t.Fatalf("Round: %v", err)
	}
	if got := r.peers.treesFetched(); len(got) != 0 {
		t.Fatalf("a round after convergence fetched the trees of partitions %v", got)
	}
}

// notReadyPeers answers like a peer still building its trees.
type notReadyPeers struct{ Peers }

func (notReadyPeers) AAERoots(context.Context, string) (TreeRoots, error) { return TreeRoots{}, nil }

func TestAntiEntropyLeavesAPeerStillBuildingItsTreesAlone(t *testing.T) {
	checkLeaks(t)
	r := newAAERig(t, nil)
	r.divergeIn(t, 2)
	r.ae.cfg.Peers = notReadyPeers{r.peers}
	if err := r.ae.Round(ctxTimeout(t)); err != nil {
		t.Fatalf("Round: %v", err)
	}
	if got := r.peers.treesFetched(); len(got) != 0 {
		t.Fatalf("fetched the trees of partitions %v from a peer whose trees are not built", got)
	}
	if st := r.ae.Stats(); st.Exchanges != 0 || st.Errors != 0 {
		t.Fatalf("stats %+v: want no exchange and no error", st)
	}
}

func TestAntiEntropyExchangesAPartitionOnlyWithItsOtherReplicas(t *testing.T) {
	checkLeaks(t)
	a, ta := openTreeStore(t, t.TempDir())
	b, tb := openTreeStore(t, t.TempDir())
	c, tc := openTreeStore(t, t.TempDir())
	addrs := map[string]string{
		"b": serveTrees(t, b, tb),
		"c": serveTrees(t, c, tc),
	}
	peers := &countingPeers{Peers: RPCPeers{&rpc.Replicas{Self: "a", Store: a, Client: rpctest.NewClient(t, rpc.ClientConfig{}), Members: func(id string) (membership.Member, bool) {
		addr, ok := addrs[id]
		return membership.Member{ID: id, HTTPAddr: addr}, ok
	}}}}
	ring := membership.NewRing([]string{"a", "b", "c"}, testPartitions)
	ae, err := New(Config{
		Self: "a", Store: a, Trees: ta, Peers: peers, N: 2,
		Membership: twoReplicas{ring}, Rate: -1, TombstoneGrace: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	// b and c hold a key in every partition; a must take only those of
	// partitions it replicates, each from a node that replicates it too.
	want := map[storedKey]bool{}
	for p := range testPartitions {
		prefs := ring.PreferenceList(p, 2)
		for _, id := range []string{"b", "c"} {
			k := keysIn(p, 1, "from-"+id)[0]
			mustMerge(t, map[string]*store.Store{"b": b, "c": c}[id], k, write(id, "v", vclock.Context{}, vclock.Set{}))
			if slices.Contains(prefs, "a") && slices.Contains(prefs, id) {
				want[storedKey{DB: 0, Key: k}] = true
			}
		}
	}
	if len(want) == 0 || len(want) == 2*testPartitions {
		t.Fatalf("the ring gives a %d of the %d keys: the test needs some but not all", len(want), 2*testPartitions)
	}
	if err := ae.Round(ctxTimeout(t)); err != nil {
		t.Fatalf("Round: %v", err)
	}
	got := storeContents(t, a)
	for k := range got {
		if !want[k] {
			t.Errorf("a took %v from a partition it does not share with that key's holder", k)
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("a lacks %v, held by another replica of its partition", k)
		}
	}
	if st := ae.Stats(); st.RootsFetched != 2 {
		t.Errorf("stats %+v: want one roots call to each of the 2 peers", st)
	}
}

func TestAntiEntropySecondStartFails(t *testing.T) {
	checkLeaks(t)
	r := newAAERig(t, func(c *Config) { c.Interval = time.Hour })
	if err := r.ae.Start(context.Background()); err != nil {
		t.Fatalf("first Start: %v", err)
	}
	if err := r.ae.Start(context.Background()); !errors.Is(err, lifecycle.ErrStarted) {
		t.Fatalf("second Start: %v, want lifecycle.ErrStarted", err)
	}
	r.ae.Close()
	r.ae.Close()
	closed := newAAERig(t, nil)
	closed.ae.Close()
	if err := closed.ae.Start(context.Background()); err == nil {
		t.Fatal("Start after Close did not fail")
	}
}
