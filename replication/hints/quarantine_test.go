package hints

import (
	"fmt"
	"testing"

	"github.com/dynkv/dynkv/store"
)

// The damaged-record tests of this room (the store's quarantine of
// records that do not decode); the helpers are replication/internal/reptest's.

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
	d := New(Config{Store: holder, Send: snd.send, Alive: func(string) bool { return true }})
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
