package handoff

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/lifecycle"
	"github.com/dynkv/dynkv/internal/ratelimit"
	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/internal/testutil/storetest"
	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/replication/internal/reptest"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
	"github.com/dynkv/dynkv/wal"
)

const handoffPartitions = 64

// fakeRing is the membership a Handoff sees: a State the test sets, reports
// applied to the node's own entry as Membership.ReportHandoff does, and a
// coalesced change signal.
type fakeRing struct {
	self string

	mu       sync.Mutex
	state    membership.State
	reports  []membership.Handoff
	onReport func(membership.Handoff)
	subs     []chan struct{}
}

func (f *fakeRing) State() membership.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func (f *fakeRing) ReportHandoff(h membership.Handoff) {
	f.mu.Lock()
	f.reports = append(f.reports, h)
	if m, ok := f.state.Member(f.self); ok {
		m.Handoff = h
		m.Version++
		f.state = f.state.With(m)
	}
	hook := f.onReport
	f.mu.Unlock()
	if hook != nil {
		hook(h)
	}
	f.signal()
}

func (f *fakeRing) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	return ch, func() {}
}

func (f *fakeRing) signal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (f *fakeRing) set(st membership.State) {
	f.mu.Lock()
	f.state = st
	f.mu.Unlock()
	f.signal()
}

func (f *fakeRing) lastReport() (membership.Handoff, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reports) == 0 {
		return membership.Handoff{}, 0
	}
	return f.reports[len(f.reports)-1], len(f.reports)
}

func (f *fakeRing) doneReports() []membership.Handoff {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []membership.Handoff
	for _, r := range f.reports {
		if r.Done {
			out = append(out, r)
		}
	}
	return out
}

// ringState builds a State with committed ring {epoch, committed} and the
// given member statuses.
func ringState(epoch uint64, committed []string, statuses map[string]membership.Status) membership.State {
	st := membership.State{Partitions: handoffPartitions, Committed: membership.Committed{Epoch: epoch, Members: slices.Sorted(slices.Values(committed))}}
	for id, s := range statuses {
		st = st.With(membership.Member{ID: id, Status: s, Version: 1})
	}
	return st
}

func valid(ids ...string) map[string]membership.Status {
	m := map[string]membership.Status{}
	for _, id := range ids {
		m[id] = membership.StatusValid
	}
	return m
}

// fakeNet delivers Send calls into real stores by Merge, as MergeBatch does
// on the peer, and records what it delivered.
type fakeNet struct {
	mu     sync.Mutex
	stores map[string]*store.Store
	fail   func(ctx context.Context, to string, call int) error // nil: deliver everything
	before func(to string, items []rpc.Item)                    // runs before delivery
	calls  int
	acked  int // keys delivered
	sends  []fakeSend
	clock  *testutil.FakeClock
}

type fakeSend struct {
	to    string
	at    time.Time
	bytes int
	keys  int
}

func (n *fakeNet) Send(ctx context.Context, to string, items []rpc.Item) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	n.calls++
	call := n.calls
	fail, before := n.fail, n.before
	n.mu.Unlock()
	if before != nil {
		before(to, items)
	}
	if fail != nil {
		if err := fail(ctx, to, call); err != nil {
			return err
		}
	}
	s, ok := n.stores[to]
	if !ok {
		return fmt.Errorf("fake network: no node %s", to)
	}
	size := 0
	for _, it := range items {
		if _, err := s.Merge(it.DB, it.Key, it.Set); err != nil {
			return err
		}
		size += itemSize(it)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.acked += len(items)
	fs := fakeSend{to: to, bytes: size, keys: len(items)}
	if n.clock != nil {
		fs.at = n.clock.Now()
	}
	n.sends = append(n.sends, fs)
	return nil
}

func (n *fakeNet) ackedKeys() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.acked
}

func openHandoffStore(t *testing.T) *store.Store {
	t.Helper()
	return storetest.OpenTemp(t)
}

type storedKey = reptest.StoredKey

func fillStore(t *testing.T, s *store.Store, n int) map[storedKey]vclock.Set {
	t.Helper()
	out := map[storedKey]vclock.Set{}
	for i := 0; i < n; i++ {
		k := storedKey{DB: i % 3, Key: fmt.Sprintf("key-%04d", i)}
		set, _, err := s.Put(k.DB, []byte(k.Key), "a", vclock.Context{}, vclock.Sibling{Value: []byte(fmt.Sprintf("value-%d", i)), LastModified: int64(i + 1)})
		if err != nil {
			t.Fatalf("Put %v: %v", k, err)
		}
		out[k] = set
	}
	return out
}

func storeContents(t *testing.T, s *store.Store) map[storedKey]vclock.Set {
	return reptest.Contents(t, s)
}

type handoffRig struct {
	ring  *fakeRing
	net   *fakeNet
	clock *testutil.FakeClock
	h     *Handoff
}

func newHandoffRig(t *testing.T, self string, st membership.State, stores map[string]*store.Store, tweak func(*Config)) *handoffRig {
	t.Helper()
	rig := &handoffRig{ring: &fakeRing{self: self, state: st}, clock: testutil.NewFakeClock()}
	rig.net = &fakeNet{stores: stores, clock: rig.clock}
	cfg := Config{
		Self:       self,
		Store:      stores[self],
		Membership: rig.ring,
		Send:       rig.net.Send,
		N:          2,
		Rate:       -1,
		BatchBytes: 2 << 10, // many batches from a few hundred keys
		clock:      rig.clock,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	rig.h = h
	return rig
}

// wantTransfer is the specification, from the rings alone: a key goes from
// self to the nodes its target list adds, if self is in its committed list.
func wantTransfer(self string, st membership.State, n int, keys map[storedKey]vclock.Set) map[string]map[storedKey]bool {
	c := membership.NewRing(st.Committed.Members, st.Partitions)
	tr := membership.NewRing(st.Target(), st.Partitions)
	out := map[string]map[storedKey]bool{}
	for k := range keys {
		p := membership.PartitionOf(k.DB, []byte(k.Key), st.Partitions)
		cl, tl := c.PreferenceList(p, n), tr.PreferenceList(p, n)
		if !slices.Contains(cl, self) {
			continue
		}
		for _, id := range tl {
			if !slices.Contains(cl, id) {
				if out[id] == nil {
					out[id] = map[storedKey]bool{}
				}
				out[id][k] = true
			}
		}
	}
	return out
}

func checkReceived(t *testing.T, who string, s *store.Store, want map[storedKey]bool, sent map[storedKey]vclock.Set) {
	t.Helper()
	got := storeContents(t, s)
	for k := range want {
		set, ok := got[k]
		if !ok {
			t.Errorf("%s lacks %v, whose preference list gained it", who, k)
			continue
		}
		if !set.Equal(sent[k]) {
			t.Errorf("%s holds %v as %v, want the sender's %v", who, k, set, sent[k])
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("%s received %v, whose preference list did not gain it", who, k)
		}
	}
}

func TestPendingJoinMovesExactlyTheKeysWhoseListGainsTheNewNode(t *testing.T) {
	checkLeaks(t)
	stores := map[string]*store.Store{}
	for _, id := range []string{"a", "b", "c", "d"} {
		stores[id] = openHandoffStore(t)
	}
	keys := fillStore(t, stores["a"], 600)
	statuses := valid("a", "b", "c")
	statuses["d"] = membership.StatusJoining
	st := ringState(4, []string{"a", "b", "c"}, statuses)
	rig := newHandoffRig(t, "a", st, stores, nil)
	// Done must come only after every batch was acknowledged.
	want := wantTransfer("a", st, 2, keys)
	wantCopies := 0
	for _, ks := range want {
		wantCopies += len(ks)
	}
	if len(want["d"]) == 0 || len(want["d"]) == len(keys) {
		t.Fatalf("test setup: d gains %d of %d keys, want some but not all", len(want["d"]), len(keys))
	}
	rig.ring.onReport = func(h membership.Handoff) {
		if h.Done && rig.net.ackedKeys() != wantCopies {
			t.Errorf("Done reported with %d of %d key copies acknowledged", rig.net.ackedKeys(), wantCopies)
		}
	}

	if err := rig.h.step(context.Background()); err != nil {
		t.Fatalf("transfer pass: %v", err)
	}
	for _, id := range []string{"b", "c", "d"} {
		checkReceived(t, id, stores[id], want[id], keys)
	}
	if got := len(storeContents(t, stores["a"])); got != len(keys) {
		t.Errorf("the sender holds %d keys after the transfer, want all %d (it copies, not moves)", got, len(keys))
	}
	done := rig.ring.doneReports()
	if len(done) != 1 {
		t.Fatalf("%d Done reports, want 1", len(done))
	}
	if fp := st.TargetFingerprint(); done[0].Target != fp || done[0].Sent != uint64(wantCopies) || done[0].Total != uint64(wantCopies) {
		t.Errorf("Done report %+v, want target %x with Sent = Total = %d", done[0], fp, wantCopies)
	}
	if len(rig.net.sends) < 3 {
		t.Errorf("%d batches sent; the test wants several (BatchBytes is small)", len(rig.net.sends))
	}

	// Reported Done: further signals do not resend.
	calls := rig.net.calls
	if err := rig.h.step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rig.net.calls != calls {
		t.Errorf("a pass after Done sent %d more batches", rig.net.calls-calls)
	}
	if s := rig.h.Stats(); s.KeysSent != uint64(wantCopies) || s.Passes != 1 {
		t.Errorf("stats %+v, want %d keys sent in 1 pass", s, wantCopies)
	}
}

// A node that restarts mid-transition finds its Done in the gossiped state
// and does not scan again.
func TestDoneInTheStateSkipsTheTransfer(t *testing.T) {
	checkLeaks(t)
	stores := map[string]*store.Store{"a": openHandoffStore(t), "b": openHandoffStore(t)}
	fillStore(t, stores["a"], 10)
	st := ringState(1, []string{"a"}, map[string]membership.Status{"a": membership.StatusValid, "b": membership.StatusJoining})
	self, _ := st.Member("a")
	self.Handoff = membership.Handoff{Target: st.TargetFingerprint(), Done: true}
	rig := newHandoffRig(t, "a", st.With(self), stores, nil)
	if err := rig.h.step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rig.net.calls != 0 {
		t.Fatalf("%d batches sent for a transition already reported Done", rig.net.calls)
	}
}

func TestJoinerThatHasNotSeenItsClusterDoesNothing(t *testing.T) {
	checkLeaks(t)
	stores := map[string]*store.Store{"d": openHandoffStore(t)}
	fillStore(t, stores["d"], 10)
	st := ringState(0, nil, map[string]membership.Status{"d": membership.StatusJoining})
	rig := newHandoffRig(t, "d", st, stores, nil)
	if err := rig.h.step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, n := rig.ring.lastReport(); n != 0 || rig.net.calls != 0 {
		t.Fatalf("joiner at epoch 0 made %d reports and %d sends, want none", n, rig.net.calls)
	}
	if got := len(storeContents(t, stores["d"])); got != 10 {
		t.Fatalf("joiner holds %d keys, want its 10 untouched", got)
	}
}

func TestFailingSendPreventsDoneUntilARetrySucceeds(t *testing.T) {
	checkLeaks(t)
	stores := map[string]*store.Store{"a": openHandoffStore(t), "b": openHandoffStore(t)}
	keys := fillStore(t, stores["a"], 300)
	st := ringState(2, []string{"a"}, map[string]membership.Status{"a": membership.StatusValid, "b": membership.StatusJoining})
	rig := newHandoffRig(t, "a", st, stores, nil)
	down := errors.New("connection refused")
	rig.net.fail = func(_ context.Context, to string, call int) error {
		if call >= 3 {
			return down
		}
		return nil
	}
	err := rig.h.step(context.Background())
	if !errors.Is(err, down) {
		t.Fatalf("pass with a failing peer: %v, want the send error", err)
	}
	if done := rig.ring.doneReports(); len(done) != 0 {
		t.Fatalf("Done reported although a batch failed: %+v", done)
	}
	last, _ := rig.ring.lastReport()
	if last.Target != st.TargetFingerprint() || last.Sent == 0 || last.Sent >= uint64(len(keys)) {
		t.Errorf("progress after the failure %+v, want some but not all %d keys sent", last, len(keys))
	}
	if s := rig.h.Stats(); s.Failures != 1 {
		t.Errorf("stats %+v, want 1 failure", s)
	}

	rig.net.fail = nil
	// A retry waits out the backoff (on the handoff's clock)...
	calls := rig.net.calls
	if err := rig.h.step(context.Background()); err != nil || rig.net.calls != calls {
		t.Fatalf("pass right after a failure: %v, %d sends; want none before the backoff ends", err, rig.net.calls-calls)
	}
	// ...then runs in full.
	rig.clock.Advance(DefaultHandoffInterval)
	if err := rig.h.step(context.Background()); err != nil {
		t.Fatalf("retry pass: %v", err)
	}
	if done := rig.ring.doneReports(); len(done) != 1 || done[0].Sent != uint64(len(keys)) {
		t.Fatalf("Done reports after the retry %+v, want one with all %d keys", done, len(keys))
	}
	checkReceived(t, "b", stores["b"], wantTransfer("a", st, 2, keys)["b"], keys)
}

// A transition that changes mid-pass (a second node joins) abandons the pass
// without reporting Done for the stale target; the next pass covers the new
// one.
func TestRingChangeDuringTransferRestartsTowardsTheNewTarget(t *testing.T) {
	checkLeaks(t)
	stores := map[string]*store.Store{"a": openHandoffStore(t), "b": openHandoffStore(t), "c": openHandoffStore(t)}
	keys := fillStore(t, stores["a"], 200)
	st1 := ringState(1, []string{"a"}, map[string]membership.Status{"a": membership.StatusValid, "b": membership.StatusJoining})
	st2 := ringState(1, []string{"a"}, map[string]membership.Status{"a": membership.StatusValid, "b": membership.StatusJoining, "c": membership.StatusJoining})
	rig := newHandoffRig(t, "a", st1, stores, func(c *Config) { c.N = 3 })
	var once sync.Once
	rig.net.before = func(string, []rpc.Item) { once.Do(func() { rig.ring.set(st2) }) }
	if err := rig.h.step(context.Background()); !errors.Is(err, errRingChanged) {
		t.Fatalf("pass across a ring change: %v, want errRingChanged", err)
	}
	if done := rig.ring.doneReports(); len(done) != 0 {
		t.Fatalf("Done reported for a target that changed: %+v", done)
	}
	if err := rig.h.step(context.Background()); err != nil {
		t.Fatalf("pass towards the new target: %v", err)
	}
	done := rig.ring.doneReports()
	if len(done) != 1 || done[0].Target != st2.TargetFingerprint() {
		t.Fatalf("Done reports %+v, want one for the new target %x", done, st2.TargetFingerprint())
	}
	want := wantTransfer("a", st2, 3, keys)
	checkReceived(t, "b", stores["b"], want["b"], keys)
	checkReceived(t, "c", stores["c"], want["c"], keys)
}

func TestHandoffTrafficKeepsToTheRate(t *testing.T) {
	checkLeaks(t)
	stores := map[string]*store.Store{"a": openHandoffStore(t), "b": openHandoffStore(t), "c": openHandoffStore(t)}
	fillStore(t, stores["a"], 400)
	st := ringState(1, []string{"a"}, map[string]membership.Status{"a": membership.StatusValid, "b": membership.StatusJoining, "c": membership.StatusJoining})
	const rate, batch = 8 << 10, 1 << 10
	rig := newHandoffRig(t, "a", st, stores, func(c *Config) {
		c.N = 3
		c.Rate = rate
		c.BatchBytes = batch
	})
	start := rig.clock.Now()
	if err := rig.h.step(context.Background()); err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	var sizes []int
	total := 0
	for _, s := range rig.net.sends {
		at, sizes = append(at, s.at), append(sizes, s.bytes)
		total += s.bytes
	}
	if total < 20*batch {
		t.Fatalf("only %d bytes sent; the test needs many refills", total)
	}
	// Sends happen after their admission, so the bound holds at send time.
	if err := ratelimit.CheckPacing(start, at, sizes, rate, batch); err != nil {
		t.Fatal(err)
	}
	if elapsed, need := rig.clock.Now().Sub(start), time.Duration(float64(total-batch)/rate*float64(time.Second)); elapsed < need {
		t.Fatalf("%d bytes sent in %s of handoff clock, the rate needs %s", total, elapsed, need)
	}
	// Progress is reported as the (fake) time passes.
	if _, n := rig.ring.lastReport(); n < 3 {
		t.Errorf("%d handoff reports over %s, want progress reports along the way", n, rig.clock.Now().Sub(start))
	}
}

func TestStraySweepPushesToEveryOwnerThenDrops(t *testing.T) {
	checkLeaks(t)
	stores := map[string]*store.Store{"a": openHandoffStore(t), "b": openHandoffStore(t), "c": openHandoffStore(t)}
	keys := fillStore(t, stores["a"], 500)
	st := ringState(7, []string{"a", "b", "c"}, valid("a", "b", "c"))
	rig := newHandoffRig(t, "a", st, stores, nil)
	// A write lands on one stray key after the scan read it: the sweep
	// must not drop the new state.
	var changed storedKey
	var once sync.Once
	rig.net.before = func(_ string, items []rpc.Item) {
		once.Do(func() {
			changed = storedKey{DB: items[0].DB, Key: string(items[0].Key)}
			if _, _, err := stores["a"].Put(changed.DB, []byte(changed.Key), "a", vclock.Context{}, vclock.Sibling{Value: []byte("late write")}); err != nil {
				t.Errorf("late Put: %v", err)
			}
		})
	}
	if err := rig.h.step(context.Background()); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	c := membership.NewRing(st.Committed.Members, st.Partitions)
	wantKept, wantB, wantC := map[storedKey]bool{}, map[storedKey]bool{}, map[storedKey]bool{}
	for k := range keys {
		owners := c.PreferenceList(membership.PartitionOf(k.DB, []byte(k.Key), st.Partitions), 2)
		if slices.Contains(owners, "a") {
			wantKept[k] = true
			continue
		}
		for _, o := range owners {
			map[string]map[storedKey]bool{"b": wantB, "c": wantC}[o][k] = true
		}
	}
	if len(wantKept) == 0 || len(wantKept) == len(keys) {
		t.Fatalf("test setup: a owns %d of %d keys, want some but not all", len(wantKept), len(keys))
	}
	wantKept[changed] = true
	got := storeContents(t, stores["a"])
	if len(got) != len(wantKept) {
		t.Errorf("a holds %d keys after the sweep, want the %d it replicates plus the one written meanwhile", len(got), len(wantKept))
	}
	for k := range wantKept {
		if _, ok := got[k]; !ok {
			t.Errorf("a dropped %v, which it replicates or which changed meanwhile", k)
		}
	}
	if v := got[changed].Siblings; len(v) != 1 || string(v[0].Value) != "late write" {
		t.Errorf("the key written during the sweep reads %v, want [late write]", v)
	}
	checkReceived(t, "b", stores["b"], wantB, keys)
	checkReceived(t, "c", stores["c"], wantC, keys)
	if s := rig.h.Stats(); s.KeysDropped != uint64(len(keys)-len(wantKept)) {
		t.Errorf("stats %+v, want %d dropped", s, len(keys)-len(wantKept))
	}

	// A key was kept, so the next pass sweeps again at once and hands it off.
	if err := rig.h.step(context.Background()); err != nil {
		t.Fatalf("second sweep: %v", err)
	}
	if _, ok := storeContents(t, stores["a"])[changed]; ok {
		t.Errorf("the second sweep kept %v, a stray", changed)
	}
	// Now the ring is swept clean: the next signal does nothing until the
	// sweep is due again.
	calls := rig.net.calls
	if err := rig.h.step(context.Background()); err != nil || rig.net.calls != calls {
		t.Fatalf("sweep on a clean ring: %v, %d sends", err, rig.net.calls-calls)
	}
	rig.clock.Advance(DefaultStraySweepEvery)
	passes := rig.h.Stats().Passes
	if err := rig.h.step(context.Background()); err != nil || rig.h.Stats().Passes != passes+1 {
		t.Fatalf("periodic sweep: %v, %d passes; want one more", err, rig.h.Stats().Passes-passes)
	}
}

func TestStraySweepKeepsKeysAnOwnerDidNotAcknowledge(t *testing.T) {
	checkLeaks(t)
	stores := map[string]*store.Store{"x": openHandoffStore(t), "b": openHandoffStore(t), "c": openHandoffStore(t)}
	keys := fillStore(t, stores["x"], 200)
	// x left the ring: everything it holds is a stray owned by b and c.
	st := ringState(3, []string{"b", "c"}, map[string]membership.Status{"x": membership.StatusLeft, "b": membership.StatusValid, "c": membership.StatusValid})
	rig := newHandoffRig(t, "x", st, stores, nil)
	down := errors.New("c is down")
	rig.net.fail = func(_ context.Context, to string, _ int) error {
		if to == "c" {
			return down
		}
		return nil
	}
	if err := rig.h.step(context.Background()); !errors.Is(err, down) {
		t.Fatalf("sweep with an owner down: %v, want its error", err)
	}
	if got := len(storeContents(t, stores["x"])); got != len(keys) {
		t.Fatalf("x holds %d keys after a failed sweep, want all %d: none was acknowledged by every owner", got, len(keys))
	}
	rig.net.fail = nil
	rig.clock.Advance(DefaultHandoffInterval)
	if err := rig.h.step(context.Background()); err != nil {
		t.Fatalf("sweep after c is back: %v", err)
	}
	if got := len(storeContents(t, stores["x"])); got != 0 {
		t.Fatalf("x holds %d keys after a clean sweep, want none", got)
	}
	all := map[storedKey]bool{}
	for k := range keys {
		all[k] = true
	}
	checkReceived(t, "b", stores["b"], all, keys)
	checkReceived(t, "c", stores["c"], all, keys)
}

// The loop: a signal starts a pass, Close stops a pass blocked in Send.
func TestHandoffLoopFollowsSignalsAndStopsOnClose(t *testing.T) {
	checkLeaks(t)
	stores := map[string]*store.Store{"a": openHandoffStore(t), "b": openHandoffStore(t)}
	keys := fillStore(t, stores["a"], 50)
	rig := newHandoffRig(t, "a", ringState(1, []string{"a"}, valid("a")), stores, func(c *Config) {
		c.Interval = time.Hour // only signals drive it here
	})
	doneCh := make(chan membership.Handoff, 10)
	rig.ring.onReport = func(h membership.Handoff) {
		if h.Done {
			doneCh <- h
		}
	}
	if err := rig.h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := rig.h.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	joined := ringState(1, []string{"a"}, map[string]membership.Status{"a": membership.StatusValid, "b": membership.StatusJoining})
	rig.ring.set(joined)
	select {
	case h := <-doneCh:
		if h.Target != joined.TargetFingerprint() {
			t.Fatalf("Done for %x, want %x", h.Target, joined.TargetFingerprint())
		}
	case <-time.After(20 * time.Second): // bounds a broken test only
		t.Fatal("no Done report after the join signal")
	}
	checkReceived(t, "b", stores["b"], wantTransfer("a", joined, 2, keys)["b"], keys)

	// A peer that never answers: Close must still return.
	blocked := make(chan struct{})
	var once sync.Once
	rig.net.mu.Lock()
	rig.net.fail = func(ctx context.Context, _ string, _ int) error {
		once.Do(func() { close(blocked) })
		<-ctx.Done()
		return ctx.Err()
	}
	rig.net.mu.Unlock()
	st := ringState(2, []string{"a", "b"}, map[string]membership.Status{"a": membership.StatusValid, "b": membership.StatusValid, "c": membership.StatusJoining})
	rig.ring.set(st)
	select {
	case <-blocked:
	case <-time.After(20 * time.Second):
		t.Fatal("no send after the second join signal")
	}
	rig.h.Close()
	rig.h.Close() // idempotent
}

func TestNewHandoffRejectsIncompleteConfig(t *testing.T) {
	_, err := New(Config{BatchBytes: rpc.MaxFrameBytes})
	if err == nil {
		t.Fatal("New with no store, membership or send succeeded")
	}
	for _, want := range []string{"Self", "Store", "Membership", "Send", "BatchBytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// A transition that starts while a sweep is sending must stop it before it
// drops anything: the new target may need this node's copy.
func TestStraySweepDropsNothingOnceATransitionStarts(t *testing.T) {
	checkLeaks(t)
	stores := map[string]*store.Store{"x": openHandoffStore(t), "b": openHandoffStore(t), "c": openHandoffStore(t)}
	keys := fillStore(t, stores["x"], 100)
	st := ringState(3, []string{"b", "c"}, map[string]membership.Status{"x": membership.StatusLeft, "b": membership.StatusValid, "c": membership.StatusValid})
	rig := newHandoffRig(t, "x", st, stores, nil)
	rejoin := st.With(membership.Member{ID: "x", Status: membership.StatusJoining, Version: 2})
	var once sync.Once
	rig.net.before = func(string, []rpc.Item) { once.Do(func() { rig.ring.set(rejoin) }) }
	if err := rig.h.step(context.Background()); !errors.Is(err, errRingChanged) {
		t.Fatalf("sweep across a new transition: %v, want errRingChanged", err)
	}
	if got := len(storeContents(t, stores["x"])); got != len(keys) {
		t.Fatalf("x holds %d keys, want all %d: the sweep must not drop once a transition is pending", got, len(keys))
	}
}

// A write this node coordinated under the placement from just before the
// transition must be in the scan: the transfer waits Settle first.
func TestTransferWaitsForWritesUnderTheOldPlacementToSettle(t *testing.T) {
	checkLeaks(t)
	stores := map[string]*store.Store{"a": openHandoffStore(t), "b": openHandoffStore(t)}
	keys := fillStore(t, stores["a"], 20)
	st := ringState(1, []string{"a"}, map[string]membership.Status{"a": membership.StatusValid, "b": membership.StatusJoining})
	rig := newHandoffRig(t, "a", st, stores, nil)
	rig.clock.OnSleep(func(time.Duration) {
		set, _, err := stores["a"].Put(0, []byte("landed-while-settling"), "a", vclock.Context{}, vclock.Sibling{Value: []byte("v")})
		if err != nil {
			t.Errorf("Put: %v", err)
		}
		keys[storedKey{DB: 0, Key: "landed-while-settling"}] = set
	})
	start := rig.clock.Now()
	if err := rig.h.step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if waited := rig.clock.Now().Sub(start); waited < DefaultHandoffSettle {
		t.Fatalf("transfer started %s after the target appeared, want at least %s", waited, DefaultHandoffSettle)
	}
	all := map[storedKey]bool{}
	for k := range keys {
		all[k] = true
	}
	checkReceived(t, "b", stores["b"], all, keys)
}

// BenchmarkHandoffTransferPass: one transfer pass over 20k keys (100-byte
// values) that all go to a joining node, with a Send that discards and no
// rate limit: the CPU cost of scanning, planning and batching per key.
func BenchmarkHandoffTransferPass(b *testing.B) {
	s, err := store.Open(store.Options{Dir: b.TempDir(), Sync: wal.SyncPolicy{Interval: 10 * time.Millisecond}, MinFreeBytes: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const keys = 20_000
	val := make([]byte, 100)
	for i := 0; i < keys; i++ {
		if _, _, err := s.Put(i%4, fmt.Appendf(nil, "bench-key-%07d", i), "a", vclock.Context{}, vclock.Sibling{Value: val}); err != nil {
			b.Fatal(err)
		}
	}
	st := ringState(1, []string{"a"}, map[string]membership.Status{"a": membership.StatusValid, "b": membership.StatusJoining})
	ring := &fakeRing{self: "a", state: st}
	sent := 0
	h, err := New(Config{
		Self: "a", Store: s, Membership: ring, N: 3, Rate: -1, Settle: -1,
		Send: func(_ context.Context, _ string, items []rpc.Item) error { sent += len(items); return nil },
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.haveDone = false
		ring.set(st) // forget the Done report
		if err := h.step(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	if sent != keys*b.N {
		b.Fatalf("sent %d keys, want %d", sent, keys*b.N)
	}
	b.ReportMetric(float64(keys*b.N)/b.Elapsed().Seconds(), "keys/s")
}

// One dead owner costs one failed send per pass: the sweep still hands off
// and drops the keys the other owners take, and keeps the dead one's.
func TestStraySweepGoesOnPastADeadOwner(t *testing.T) {
	checkLeaks(t)
	stores := map[string]*store.Store{"x": openHandoffStore(t), "b": openHandoffStore(t), "c": openHandoffStore(t), "d": openHandoffStore(t)}
	keys := fillStore(t, stores["x"], 300)
	st := ringState(3, []string{"b", "c", "d"}, map[string]membership.Status{"x": membership.StatusLeft, "b": membership.StatusValid, "c": membership.StatusValid, "d": membership.StatusValid})
	rig := newHandoffRig(t, "x", st, stores, func(c *Config) { c.N = 1 })
	down := errors.New("c is down")
	cCalls := 0
	rig.net.fail = func(_ context.Context, to string, _ int) error {
		if to == "c" {
			cCalls++
			return down
		}
		return nil
	}
	if err := rig.h.step(context.Background()); !errors.Is(err, down) {
		t.Fatalf("sweep with c down: %v, want c's error", err)
	}
	if cCalls != 1 {
		t.Errorf("%d sends to the dead owner in one pass, want 1", cCalls)
	}
	c := membership.NewRing(st.Committed.Members, st.Partitions)
	wantKept := 0
	for k := range keys {
		if c.Owner(membership.PartitionOf(k.DB, []byte(k.Key), st.Partitions)) == "c" {
			wantKept++
		}
	}
	if got := len(storeContents(t, stores["x"])); got != wantKept || wantKept == 0 {
		t.Fatalf("x holds %d keys after the sweep, want the %d whose owner c is down", got, wantKept)
	}
	if got := len(storeContents(t, stores["b"])) + len(storeContents(t, stores["d"])); got != len(keys)-wantKept {
		t.Fatalf("b and d hold %d keys, want the %d they own", got, len(keys)-wantKept)
	}
	// Backoff doubles while c stays down.
	rig.clock.Advance(DefaultHandoffInterval)
	if err := rig.h.step(context.Background()); !errors.Is(err, down) {
		t.Fatalf("second sweep: %v", err)
	}
	rig.clock.Advance(DefaultHandoffInterval)
	if err := rig.h.step(context.Background()); err != nil || cCalls != 2 {
		t.Fatalf("sweep one interval after the second failure: %v, %d sends to c; want none (backoff 2 intervals)", err, cCalls)
	}
}

// A joiner that is down does not hold up the data for the others, only the
// Done report.
func TestTransferGoesOnPastADeadDestination(t *testing.T) {
	checkLeaks(t)
	stores := map[string]*store.Store{"a": openHandoffStore(t), "b": openHandoffStore(t), "c": openHandoffStore(t)}
	keys := fillStore(t, stores["a"], 300)
	st := ringState(1, []string{"a"}, map[string]membership.Status{"a": membership.StatusValid, "b": membership.StatusJoining, "c": membership.StatusJoining})
	rig := newHandoffRig(t, "a", st, stores, func(c *Config) { c.N = 3 })
	down := errors.New("c is down")
	cCalls := 0
	rig.net.fail = func(_ context.Context, to string, _ int) error {
		if to == "c" {
			cCalls++
			return down
		}
		return nil
	}
	if err := rig.h.step(context.Background()); !errors.Is(err, down) {
		t.Fatalf("transfer with c down: %v, want c's error", err)
	}
	if cCalls != 1 {
		t.Errorf("%d sends to the dead joiner in one pass, want 1", cCalls)
	}
	if done := rig.ring.doneReports(); len(done) != 0 {
		t.Fatalf("Done reported although c has nothing: %+v", done)
	}
	checkReceived(t, "b", stores["b"], wantTransfer("a", st, 3, keys)["b"], keys)
}

func TestHandoffSecondStartFails(t *testing.T) {
	checkLeaks(t)
	stores := map[string]*store.Store{"a": openHandoffStore(t)}
	rig := newHandoffRig(t, "a", ringState(1, []string{"a"}, valid("a")), stores, nil)
	if err := rig.h.Start(context.Background()); err != nil {
		t.Fatalf("first Start: %v", err)
	}
	if err := rig.h.Start(context.Background()); !errors.Is(err, lifecycle.ErrStarted) {
		t.Fatalf("second Start: %v, want lifecycle.ErrStarted", err)
	}
	rig.h.Close()
	rig.h.Close()
	closed := newHandoffRig(t, "a", ringState(1, []string{"a"}, valid("a")), stores, nil)
	closed.h.Close()
	if err := closed.h.Start(context.Background()); err == nil {
		t.Fatal("Start after Close did not fail")
	}
}
