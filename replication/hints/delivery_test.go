package hints

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/lifecycle"
	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// fakeSender merges into real stores by node id, failing while err is set.
type fakeSender struct {
	mu     sync.Mutex
	stores map[string]*store.Store
	err    error
	calls  map[string]int
	during func() // runs inside every send, before the merge
}

func (f *fakeSender) send(_ context.Context, id string, items []rpc.Item) error {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[id]++
	err, during, st := f.err, f.during, f.stores[id]
	f.mu.Unlock()
	if during != nil {
		during()
	}
	if err != nil {
		return err
	}
	if st == nil {
		return fmt.Errorf("no node %s: %w", id, rpc.ErrUnreachable)
	}
	for _, it := range items {
		if _, err := st.Merge(it.DB, it.Key, it.Set); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeSender) callsTo(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func hintedKeys(t *testing.T, st *store.Store, n int, owner string) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := st.PutHint(owner, i%3, []byte(fmt.Sprintf("k%d", i)), sampleSet(fmt.Sprint(i))); err != nil {
			t.Fatalf("PutHint: %v", err)
		}
	}
}

func pendingFor(st *store.Store, owner string) int { return st.HintStats()[owner].Count }

func TestDeliveryHandsHintsToALiveOwnerAndDropsThem(t *testing.T) {
	holder, owner := openStore(t), openStore(t)
	hintedKeys(t, holder, 300, "b")
	alive := atomic.Bool{}
	snd := &fakeSender{stores: map[string]*store.Store{"b": owner}}
	d := New(Config{Store: holder, Send: snd.send, Alive: func(string) bool { return alive.Load() }})

	d.RunOnce(ctxTimeout(t))
	if snd.callsTo("b") != 0 || pendingFor(holder, "b") != 300 {
		t.Fatalf("owner dead: %d sends, %d pending; want none sent, 300 pending", snd.callsTo("b"), pendingFor(holder, "b"))
	}
	alive.Store(true)
	d.RunOnce(ctxTimeout(t))
	if n := pendingFor(holder, "b"); n != 0 {
		t.Fatalf("after delivery %d hints pending, want 0", n)
	}
	for i := 0; i < 300; i++ {
		got, err := owner.Get(i%3, []byte(fmt.Sprintf("k%d", i)))
		if err != nil || !got.Equal(sampleSet(fmt.Sprint(i))) {
			t.Fatalf("owner's k%d: %v (%v), want the hinted set", i, got, err)
		}
	}
	if st := d.Stats(); st.Delivered != 300 || st.Pending != 0 || st.Failed != 0 {
		t.Errorf("stats %+v, want 300 delivered, 0 pending, 0 failed", st)
	}
}

func TestDeliveryBacksOffPerOwnerWhileSendsFail(t *testing.T) {
	holder, owner := openStore(t), openStore(t)
	hintedKeys(t, holder, 5, "b")
	clk := testutil.NewFakeClock()
	snd := &fakeSender{stores: map[string]*store.Store{"b": owner}, err: fmt.Errorf("dial: %w", rpc.ErrUnreachable)}
	d := New(Config{Store: holder, Send: snd.send, Interval: time.Second, MaxBackoff: 30 * time.Second, Now: clk.Now})

	d.RunOnce(ctxTimeout(t))
	first := d.Backoff("b")
	if snd.callsTo("b") != 1 || first < time.Second || first > 2*time.Second {
		t.Fatalf("after a failure: %d sends, backoff %v; want 1 send, backoff in [1s, 2s]", snd.callsTo("b"), first)
	}
	d.RunOnce(ctxTimeout(t))
	if snd.callsTo("b") != 1 {
		t.Fatalf("sent again during the backoff")
	}
	for i := 0; i < 10; i++ { // the backoff grows to its cap
		clk.Advance(time.Minute)
		d.RunOnce(ctxTimeout(t))
	}
	if b := d.Backoff("b"); b < 15*time.Second || b > 30*time.Second {
		t.Errorf("backoff after many failures %v, want within [15s, 30s]", b)
	}
	if pendingFor(holder, "b") != 5 {
		t.Errorf("failed deliveries dropped hints: %d pending, want 5", pendingFor(holder, "b"))
	}
	snd.mu.Lock()
	snd.err = nil
	snd.mu.Unlock()
	clk.Advance(time.Minute)
	d.RunOnce(ctxTimeout(t))
	if pendingFor(holder, "b") != 0 || d.Backoff("b") != 0 {
		t.Errorf("after recovery: %d pending, backoff %v; want 0 and none", pendingFor(holder, "b"), d.Backoff("b"))
	}
	if st := d.Stats(); st.Failed != 11 {
		t.Errorf("Failed %d, want 11", st.Failed)
	}
}

func TestDeliveryKeepsAHintThatChangedInFlight(t *testing.T) {
	holder, owner := openStore(t), openStore(t)
	if err := holder.PutHint("b", 0, []byte("k"), sampleSet("v1")); err != nil {
		t.Fatal(err)
	}
	newer, _ := vclock.Set{}.Update("n7", vclock.Context{}, vclock.Sibling{Value: []byte("v2"), LastModified: 2})
	once := sync.Once{}
	snd := &fakeSender{stores: map[string]*store.Store{"b": owner}}
	snd.during = func() {
		once.Do(func() {
			if err := holder.PutHint("b", 0, []byte("k"), newer); err != nil {
				t.Error(err)
			}
		})
	}
	d := New(Config{Store: holder, Send: snd.send})
	d.RunOnce(ctxTimeout(t))
	if pendingFor(holder, "b") != 1 {
		t.Fatalf("a hint that grew during its delivery was dropped")
	}
	d.RunOnce(ctxTimeout(t))
	if pendingFor(holder, "b") != 0 {
		t.Fatalf("second pass left %d hints", pendingFor(holder, "b"))
	}
	got, _ := owner.Get(0, []byte("k"))
	if want := vclock.Merge(sampleSet("v1"), newer); !got.Equal(want) {
		t.Errorf("owner holds %v, want %v", got, want)
	}
}

func TestHintsOfARemovedOwnerGoToTheKeysCurrentReplicas(t *testing.T) {
	holder, c, e := openStore(t), openStore(t), openStore(t)
	hintedKeys(t, holder, 10, "gone")
	snd := &fakeSender{stores: map[string]*store.Store{"c": c, "e": e}}
	d := New(Config{
		Store: holder, Send: snd.send,
		Alive:          func(string) bool { return false }, // the removed node is dead too
		InRing:         func(id string) bool { return id != "gone" },
		PreferenceList: func(int, []byte) []string { return []string{"c", "e"} },
	})
	d.RunOnce(ctxTimeout(t))
	if pendingFor(holder, "gone") != 0 {
		t.Fatalf("%d hints left for the removed owner", pendingFor(holder, "gone"))
	}
	for _, st := range []*store.Store{c, e} {
		for i := 0; i < 10; i++ {
			if got, err := st.Get(i%3, []byte(fmt.Sprintf("k%d", i))); err != nil || !got.Equal(sampleSet(fmt.Sprint(i))) {
				t.Fatalf("replica lacks k%d: %v %v", i, got, err)
			}
		}
	}
	if snd.callsTo("gone") != 0 {
		t.Errorf("sent to the removed owner")
	}

	// A replica that fails keeps the hint for a later pass.
	hintedKeys(t, holder, 1, "gone")
	snd.mu.Lock()
	delete(snd.stores, "e")
	snd.mu.Unlock()
	d.RunOnce(ctxTimeout(t))
	if pendingFor(holder, "gone") != 1 {
		t.Errorf("hint dropped although replica e did not take it")
	}
}

func TestDeliveryLoopStartsAndStops(t *testing.T) {
	checkLeaks(t)
	holder, owner := openStore(t), openStore(t)
	hintedKeys(t, holder, 3, "b")
	snd := &fakeSender{stores: map[string]*store.Store{"b": owner}}
	d := New(Config{Store: holder, Send: snd.send, Interval: time.Millisecond})
	if err := d.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := d.Start(context.Background()); err == nil {
		t.Error("a second Start did not fail")
	}
	d.Kick()
	deadline := time.Now().Add(10 * time.Second)
	for pendingFor(holder, "b") != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	d.Close()
	d.Close()
	if n := pendingFor(holder, "b"); n != 0 {
		t.Errorf("loop left %d hints", n)
	}
	New(Config{Store: holder}).Close() // never started
}

func TestHintDeliverySecondStartFails(t *testing.T) {
	checkLeaks(t)
	d := New(Config{Store: openStore(t), Send: (&fakeSender{}).send})
	if err := d.Start(context.Background()); err != nil {
		t.Fatalf("first Start: %v", err)
	}
	if err := d.Start(context.Background()); !errors.Is(err, lifecycle.ErrStarted) {
		t.Fatalf("second Start: %v, want lifecycle.ErrStarted", err)
	}
	d.Close()
	closed := New(Config{Store: openStore(t)})
	closed.Close()
	if err := closed.Start(context.Background()); err == nil {
		t.Fatal("Start after Close did not fail")
	}
}

func TestHintsOlderThanMaxAgeAreDroppedUndelivered(t *testing.T) {
	holder, owner := openStore(t), openStore(t)
	hintedKeys(t, holder, 4, "b")
	snd := &fakeSender{stores: map[string]*store.Store{"b": owner}}
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	d := New(Config{Store: holder, Send: snd.send, MaxAge: time.Hour, Now: later})
	d.RunOnce(ctxTimeout(t))
	if n := pendingFor(holder, "b"); n != 0 {
		t.Fatalf("%d expired hints still held", n)
	}
	if snd.callsTo("b") != 0 {
		t.Errorf("expired hints were sent (%d calls): a hint older than the tombstone grace could resurrect a reclaimed delete", snd.callsTo("b"))
	}
	if st := d.Stats(); st.Expired != 4 || st.Delivered != 0 {
		t.Errorf("stats %+v, want 4 expired, 0 delivered", st)
	}
	// Within MaxAge they are delivered as usual.
	hintedKeys(t, holder, 2, "b")
	New(Config{Store: holder, Send: snd.send, MaxAge: time.Hour}).RunOnce(ctxTimeout(t))
	if n := pendingFor(holder, "b"); n != 0 || snd.callsTo("b") != 1 {
		t.Errorf("fresh hints: %d pending, %d sends; want 0 pending, 1 send", n, snd.callsTo("b"))
	}
}
