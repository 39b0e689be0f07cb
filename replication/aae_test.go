package replication

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// twoReplicas is a ring of a and b, both replicas of every partition.
type twoReplicas struct{ ring *membership.Ring }

func (r twoReplicas) Placement() membership.Placement {
	return membership.Placement{Committed: r.ring}
}
func (twoReplicas) Liveness(string) membership.Liveness { return membership.Alive }

// countingPeers counts the key transfers anti-entropy makes.
type countingPeers struct {
	AAEPeers
	gets, merges atomic.Int64
}

func (c *countingPeers) Get(ctx context.Context, id string, db int, key []byte) (vclock.Set, bool, error) {
	c.gets.Add(1)
	return c.AAEPeers.Get(ctx, id, db, key)
}

func (c *countingPeers) Merge(ctx context.Context, id string, db int, key []byte, s vclock.Set) error {
	c.merges.Add(1)
	return c.AAEPeers.Merge(ctx, id, db, key, s)
}

type aaeRig struct {
	a, b   *store.Store
	ta, tb *HashTrees
	peers  *countingPeers
	ae     *AntiEntropy
}

// newAAERig runs anti-entropy on a against b, which is served over real
// h2c RPC.
func newAAERig(t *testing.T, tweak func(*AntiEntropyConfig)) *aaeRig {
	t.Helper()
	r := &aaeRig{}
	r.a, r.ta = openTreeStore(t, t.TempDir())
	r.b, r.tb = openTreeStore(t, t.TempDir())
	p := startPeer(t, (&Server{Store: r.b, Trees: r.tb}).Handler())
	client := newTestClient(t, ClientConfig{})
	r.peers = &countingPeers{AAEPeers: &Replicas{Self: "a", Store: r.a, Client: client, Members: func(id string) (membership.Member, bool) {
		return membership.Member{ID: id, HTTPAddr: p.addr}, id == "b"
	}}}
	cfg := AntiEntropyConfig{
		Self: "a", Store: r.a, Trees: r.ta, Peers: r.peers, N: 2,
		Membership:        twoReplicas{membership.NewRing([]string{"a", "b"}, testPartitions)},
		ExchangesPerRound: 2 * testPartitions,
		Rate:              -1,
		TombstoneGrace:    time.Hour,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	var err error
	if r.ae, err = NewAntiEntropy(cfg); err != nil {
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
		if n := len(ca[storedKey{0, fmt.Sprintf("sib-%d", i)}].Siblings); n != 2 {
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
	r := newAAERig(t, func(c *AntiEntropyConfig) { c.Interval = 5 * time.Millisecond; c.ExchangesPerRound = 1 })
	for i := range 50 {
		mustMerge(t, r.b, fmt.Sprintf("k%d", i), write("b", "v", vclock.Context{}, vclock.Set{}))
	}
	r.ae.Start()
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
