package handoff

import (
	"context"
	"testing"

	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/store"
)

// The damaged-record tests of this room (the store's quarantine of
// records that do not decode); the helpers are replication/internal/reptest's.

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
		lkeys = append(lkeys, dataRecordKey(k.DB, k.Key))
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
