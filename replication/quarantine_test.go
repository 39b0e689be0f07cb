package replication

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"

	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
	"github.com/dynkv/dynkv/wal"
)

// undecodable is a stored value no Set decoder accepts (an unknown format
// version), as a damaged disk or an encoder writing what the decoder
// refuses leaves it.
var undecodable = []byte{0xee, 'd', 'a', 'm', 'a', 'g', 'e', 'd'}

// dataRecordKey and hintRecordKey are the store's LevelDB layout
// (store/doc.go): a data record under 'd' | db | key, a hint under
// 'h' | len(owner) | owner | db | key.
func dataRecordKey(db int, key string) []byte {
	return append([]byte{'d', byte(db)}, key...)
}

func hintRecordKey(owner string, db int, key string) []byte {
	k := append([]byte{'h', byte(len(owner))}, owner...)
	return append(append(k, byte(db)), key...)
}

// damageStored overwrites records in the LevelDB of the closed store at
// dir.
func damageStored(t *testing.T, dir string, lkeys ...[]byte) {
	t.Helper()
	ldb, err := leveldb.OpenFile(filepath.Join(dir, "leveldb"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range lkeys {
		if err := ldb.Put(k, undecodable, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := ldb.Close(); err != nil {
		t.Fatal(err)
	}
}

func openStoreAt(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(store.Options{
		Dir:                dir,
		Sync:               wal.SyncPolicy{Interval: 10 * time.Millisecond},
		MinFreeBytes:       1,
		CheckpointInterval: time.Hour,
		ReclaimInterval:    time.Hour,
	})
	if err != nil {
		t.Fatalf("store.Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func closeOrFail(t *testing.T, s *store.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("store.Close: %v", err)
	}
}

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

			p := startServer(t, &Server{Store: stores["b"], Trees: trees["b"]}, serverConfig{})
			client := newTestClient(t, ClientConfig{})
			peers := &countingPeers{AAEPeers: &Replicas{Self: "a", Store: stores["a"], Client: client, Members: func(id string) (membership.Member, bool) {
				return membership.Member{ID: id, HTTPAddr: p.addr}, id == "b"
			}}}
			ae, err := NewAntiEntropy(AntiEntropyConfig{
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

// TestHandoffPassGoesOnPastDamagedRecords: a transfer pass that meets
// records it cannot decode moves them aside, sends every other key, and
// reports Done, so the ring change can commit (the leave does not hang).
func TestHandoffPassGoesOnPastDamagedRecords(t *testing.T) {
	checkLeaks(t)
	dirA := t.TempDir()
	stores := map[string]*store.Store{"a": openStoreAt(t, dirA)}
	for _, id := range []string{"b", "c", "d"} {
		stores[id] = openHandoffStore(t)
	}
	keys := fillStore(t, stores["a"], 300)
	statuses := valid("a", "b", "c")
	statuses["d"] = membership.StatusJoining
	st := ringState(4, []string{"a", "b", "c"}, statuses)
	want := wantTransfer("a", st, 2, keys)
	var damaged []storedKey
	for k := range want["d"] {
		if len(damaged) < 3 {
			damaged = append(damaged, k)
		}
	}
	if len(damaged) < 3 {
		t.Fatalf("test setup: d gains only %d keys", len(want["d"]))
	}
	closeOrFail(t, stores["a"])
	var lkeys [][]byte
	for _, k := range damaged {
		lkeys = append(lkeys, dataRecordKey(k.db, k.key))
		delete(keys, k)
		for _, to := range want {
			delete(to, k)
		}
	}
	damageStored(t, dirA, lkeys...)
	stores["a"] = openStoreAt(t, dirA)

	rig := newHandoffRig(t, "a", st, stores, nil)
	if err := rig.h.step(context.Background()); err != nil {
		t.Fatalf("transfer pass over damaged records: %v", err)
	}
	if done := rig.ring.doneReports(); len(done) != 1 {
		t.Fatalf("%d Done reports, want 1", len(done))
	}
	for _, id := range []string{"b", "c", "d"} {
		checkReceived(t, id, stores[id], want[id], keys)
	}
	if q := stores["a"].Stats().Quarantine; q.Data != uint64(len(damaged)) || q.Held != len(damaged) {
		t.Errorf("quarantine stats %+v, want %d data records", q, len(damaged))
	}
	if s := rig.h.Stats(); s.Failures != 0 {
		t.Errorf("handoff stats %+v, want no failed pass", s)
	}
}

// TestHintDeliveryGoesOnPastDamagedHints: hints that do not decode are
// moved aside when the store opens; every other hint is delivered, and no
// delivery fails.
func TestHintDeliveryGoesOnPastDamagedHints(t *testing.T) {
	dir := t.TempDir()
	holder := openStoreAt(t, dir)
	owner := openStore(t)
	hintedKeys(t, holder, 30, "b")
	closeOrFail(t, holder)
	damageStored(t, dir, hintRecordKey("b", 0, "k0"), hintRecordKey("b", 1, "k1"))
	holder = openStoreAt(t, dir)
	if n := pendingFor(holder, "b"); n != 28 {
		t.Fatalf("%d hints pending after the reopen, want the 28 intact", n)
	}
	snd := &fakeSender{stores: map[string]*store.Store{"b": owner}}
	d := NewHintDelivery(HintDeliveryConfig{Store: holder, Send: snd.send, Alive: func(string) bool { return true }})
	d.RunOnce(ctxTimeout(t))
	if n := pendingFor(holder, "b"); n != 0 {
		t.Fatalf("%d hints pending after delivery, want 0", n)
	}
	if st := d.Stats(); st.Delivered != 28 || st.Failed != 0 {
		t.Errorf("delivery stats %+v, want 28 delivered and no failure", st)
	}
	if q := holder.Stats().Quarantine; q.Hints != 2 {
		t.Errorf("quarantine stats %+v, want two hints", q)
	}
	for i := 2; i < 30; i++ {
		if _, err := owner.Get(i%3, []byte(fmt.Sprintf("k%d", i))); err != nil {
			t.Fatalf("owner's k%d: %v", i, err)
		}
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
