package antientropy

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/replication/internal/rpctest"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// The damaged-record tests of this room (the store's quarantine of
// records that do not decode); the helpers are replication/internal/reptest's.

// TestTreeBuildAndExchangeGoOnPastADamagedRecord: a record that does not
// decode neither stops the hash-tree build nor an exchange, on either side
// of it; the exchange moves it aside and repairs the key from the other
// replica, after which the trees agree and equal a rebuild.
func TestTreeBuildAndExchangeGoOnPastADamagedRecord(t *testing.T) {
	for _, damagedSide := range []string{"local", "peer"} {
		t.Run(damagedSide, func(t *testing.T) {
			checkLeaks(t)
			dirs := map[string]string{"a": t.TempDir(), "b": t.TempDir()}
			stores := map[string]*store.Store{}
			trees := map[string]*HashTrees{}
			for id, dir := range dirs {
				stores[id], trees[id] = openTreeStore(t, dir)
			}
			const keys = 40
			for i := range keys {
				set := write("n1", fmt.Sprintf("v%d", i), vclock.Context{}, vclock.Set{})
				mustMerge(t, stores["a"], fmt.Sprintf("k%02d", i), set)
				mustMerge(t, stores["b"], fmt.Sprintf("k%02d", i), set)
			}
			bad := "a"
			if damagedSide == "peer" {
				bad = "b"
			}
			closeOrFail(t, stores[bad])
			damageStored(t, dirs[bad], dataRecordKey(0, "k07"), dataRecordKey(0, "k31"))
			stores[bad], trees[bad] = openTreeStore(t, dirs[bad]) // builds the trees
			if !trees[bad].Ready() {
				t.Fatal("the trees of the damaged store are not ready")
			}
			if q := stores[bad].Stats().Quarantine; q.Total() != 0 {
				t.Fatalf("the tree build moved records aside (%+v); it hashes them as stored", q)
			}

			addr := serveTrees(t, stores["b"], trees["b"])
			client := rpctest.NewClient(t, rpc.ClientConfig{})
			peers := &countingPeers{Peers: RPCPeers{&rpc.Replicas{Self: "a", Store: stores["a"], Client: client, Members: func(id string) (membership.Member, bool) {
				return membership.Member{ID: id, HTTPAddr: addr}, id == "b"
			}}}}
			ae, err := New(Config{
				Self: "a", Store: stores["a"], Trees: trees["a"], Peers: peers, N: 2,
				Membership:        twoReplicas{membership.NewRing([]string{"a", "b"}, testPartitions)},
				ExchangesPerRound: 2 * testPartitions,
				Rate:              -1,
				TombstoneGrace:    time.Hour,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx := ctxTimeout(t)
			if err := ae.Round(ctx); err != nil {
				t.Fatalf("anti-entropy round over a damaged record: %v", err)
			}
			for id, s := range stores {
				for _, k := range []string{"k07", "k31"} {
					got, err := s.Get(0, []byte(k))
					if err != nil || len(got.Siblings) != 1 {
						t.Fatalf("%s on %s after the round: %+v, %v; want it repaired", k, id, got, err)
					}
				}
			}
			if q := stores[bad].Stats().Quarantine; q.Data != 2 {
				t.Errorf("quarantine stats of %s: %+v, want the two damaged records", bad, q)
			}
			sameRoots(t, "after the repairing round", trees["a"], trees["b"])
			for id, s := range stores {
				sameTrees(t, id+"'s trees after the round", trees[id], rebuilt(t, s))
			}
			if got := peers.treesFetched(); len(got) == 0 {
				t.Error("the repairing round fetched no tree: the damage did not show in the roots")
			}
			if err := ae.Round(ctx); err != nil {
				t.Fatalf("second round: %v", err)
			}
			if again := peers.treesFetched(); len(again) != 0 {
				t.Errorf("the round after the repair fetched the trees of partitions %v, want none (the replicas agree)", again)
			}
		})
	}
}

// TestTombstoneGCCountsADamagedReplicaAsNotHoldingTheKey: a replica whose
// record of the key does not decode moves it aside and answers not-found,
// as a replica that already reaped it would; the decision completes.
func TestTombstoneGCCountsADamagedReplicaAsNotHoldingTheKey(t *testing.T) {
	checkLeaks(t)
	_, tomb := deleted(t)
	key := []byte("k")
	a, b := openStore(t), openStore(t)
	dirC := t.TempDir()
	c := openStoreAt(t, dirC)
	for _, s := range []*store.Store{a, b, c} {
		if _, err := s.Merge(0, key, tomb); err != nil {
			t.Fatal(err)
		}
	}
	closeOrFail(t, c)
	damageStored(t, dirC, dataRecordKey(0, "k"))
	c = openStoreAt(t, dirC)
	g := newTestGC(t, storeReplicas{"a": a, "b": b, "c": c}, membership.Placement{Committed: ring("a", "b", "c")}, nil)
	if ok, why := g.decide(0, key); !ok {
		t.Fatalf("CanDropTombstone refused: %s", why)
	}
	if q := c.Stats().Quarantine; q.Data != 1 {
		t.Errorf("quarantine stats of the damaged replica %+v, want one data record", q)
	}
	if _, err := c.Get(0, key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the damaged replica's key: %v, want not found", err)
	}
}
