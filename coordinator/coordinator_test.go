package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	abc = []string{"a", "b", "c"}
	key = []byte("k")
	bg  = context.Background()
)

// put writes v with the client context ctx; a zero ctx is a blind write
// (no X-Context). putEmpty writes with the empty context of a 404.
func put(t *testing.T, c *Coordinator, v string, ctx vclock.Context, w int) (vclock.Context, error) {
	t.Helper()
	res, err := c.Put(bg, WriteRequest{DB: 0, Key: key, Context: ctx, Blind: ctx.IsZero(), Sibling: sib(v), W: w})
	return res.Context, err
}

func mustPut(t *testing.T, c *Coordinator, v string, ctx vclock.Context) vclock.Context {
	t.Helper()
	out, err := put(t, c, v, ctx, 0)
	if err != nil {
		t.Fatalf("put %q: %v", v, err)
	}
	return out
}

func mustGet(t *testing.T, c *Coordinator, r int) (vclock.Set, bool) {
	t.Helper()
	s, ok, err := c.Get(bg, 0, key, r)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	return s, ok
}

func asQuorumErr(t *testing.T, err error) QuorumError {
	t.Helper()
	var qerr *QuorumError
	if !errors.As(err, &qerr) {
		t.Fatalf("error %v, want a *QuorumError", err)
	}
	return *qerr
}

func TestWriteReturnsOnceWAcksWhileAThirdReplicaIsStillBlocked(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	release := make(chan struct{})
	h.setMergeGate("c", release)
	if _, err := put(t, h.coord("a"), "v1", vclock.Context{}, 0); err != nil {
		t.Fatalf("W=2 with a and b up: %v", err)
	}
	if got := values(h.net.node("c").set(0, key)); got != nil {
		t.Fatalf("c holds %v before its merge was released", got)
	}
	close(release)
	h.quiesce()
	for _, id := range abc {
		if got := values(h.net.node(id).set(0, key)); !slices.Equal(got, []string{"v1"}) {
			t.Errorf("replica %s holds %v after the background merge, want [v1]", id, got)
		}
	}
}

func TestWriteFailsWithNeededAndAckedAsSoonAsQuorumIsImpossible(t *testing.T) {
	// The request timeout is a minute: only the early decision can end this test.
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	h.fail("b", rpc.ErrUnreachable)
	h.fail("c", rpc.ErrUnreachable)
	_, err := put(t, h.coord("a"), "v1", vclock.Context{}, 0)
	if q := asQuorumErr(t, err); q != (QuorumError{Needed: 2, Acked: 1}) {
		t.Fatalf("got %+v, want needed 2 acked 1", q)
	}
	if got := h.coord("a").Stats().QuorumFailures; got != 1 {
		t.Fatalf("QuorumFailures = %d, want 1", got)
	}
}

func TestWriteTimesOutWithQuorumErrorWhenRepliesNeverCome(t *testing.T) {
	h := newHarness(t, Config{RequestTimeout: 20 * time.Millisecond}, abc, nil, "a", "b", "c")
	never := make(chan struct{})
	h.setMergeGate("b", never)
	h.setMergeGate("c", never)
	_, err := put(t, h.coord("a"), "v1", vclock.Context{}, 0)
	if q := asQuorumErr(t, err); q != (QuorumError{Needed: 2, Acked: 1}) {
		t.Fatalf("got %+v, want needed 2 acked 1", q)
	}
}

func TestPerRequestWOverridesAndIsCappedAtN(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	h.fail("b", rpc.ErrUnreachable)
	h.fail("c", rpc.ErrUnreachable)
	if _, err := put(t, h.coord("a"), "v1", vclock.Context{}, 1); err != nil {
		t.Fatalf("w=1 with only the coordinator up: %v", err)
	}
	never := make(chan struct{})
	h2 := newHarness(t, Config{RequestTimeout: 20 * time.Millisecond}, abc, nil, "a", "b", "c")
	h2.setMergeGate("c", never)
	_, err := put(t, h2.coord("a"), "v2", vclock.Context{}, 9)
	if q := asQuorumErr(t, err); q != (QuorumError{Needed: 3, Acked: 2}) {
		t.Fatalf("w=9 on N=3: got %+v, want needed 3 (capped) acked 2", q)
	}
	if _, err := put(t, h2.coord("a"), "v3", vclock.Context{}, -1); err == nil {
		t.Fatal("w=-1 accepted")
	}
}

func TestLocalStoreErrorIsReturnedAsItIsAndNothingIsReplicated(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	h.net.node("a").putErr = fmt.Errorf("store: %w", store.ErrDiskFull)
	_, err := put(t, h.coord("a"), "v1", vclock.Context{}, 0)
	if !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("got %v, want store.ErrDiskFull", err)
	}
	h.quiesce()
	for _, id := range []string{"b", "c"} {
		if m := h.net.node(id).mergeLog(); len(m) != 0 {
			t.Errorf("replica %s received merges %v of a write that failed locally", id, m)
		}
	}
}

func TestWriteThroughANonReplicaIsForwardedToTheFirstLiveReplica(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c", "d")
	h.clusters["d"].dead["a"] = true
	if _, err := put(t, h.coord("d"), "v1", vclock.Context{}, 0); err != nil {
		t.Fatalf("forwarded write: %v", err)
	}
	s := h.net.node("b").set(0, key)
	if len(s.Siblings) != 1 || s.Siblings[0].Dot.Actor != "b" {
		t.Fatalf("b holds %+v, want one sibling coordinated by b (a is dead)", s)
	}
	if got := h.net.node("d").set(0, key); len(got.Siblings) != 0 {
		t.Fatalf("non-replica d stored %+v", got)
	}
	if st := h.coord("d").Stats(); st.Forwards != 1 {
		t.Fatalf("Forwards = %d, want 1", st.Forwards)
	}
}

func TestForwardFailsOverOnConnectionErrorButNotOnQuorumError(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c", "d")
	h.net.node("a").coordErr = fmt.Errorf("dial a: %w", rpc.ErrUnreachable)
	h.net.node("b").coordErr = fmt.Errorf("remote: %w", ErrNotReplica)
	if _, err := put(t, h.coord("d"), "v1", vclock.Context{}, 0); err != nil {
		t.Fatalf("forwarded write with a unreachable and b not a replica: %v", err)
	}
	if s := h.net.node("c").set(0, key); len(s.Siblings) != 1 || s.Siblings[0].Dot.Actor != "c" {
		t.Fatalf("c holds %+v, want the write coordinated by c", s)
	}

	h.net.node("a").coordErr = fmt.Errorf("remote: %w", &QuorumError{Needed: 2, Acked: 1})
	h.coord("d").health.answered("a", -1) // a answers again: first in line again (routeOrder)
	before := h.net.node("c").coords
	_, err := put(t, h.coord("d"), "v2", vclock.Context{}, 0)
	if q := asQuorumErr(t, err); q != (QuorumError{Needed: 2, Acked: 1}) {
		t.Fatalf("got %+v, want a's quorum error", q)
	}
	if after := h.net.node("c").coords; after != before {
		t.Fatalf("write retried at c after a reported a quorum failure (it may have landed at a)")
	}
}

func TestForwardToNoReachableReplicaIsAQuorumFailure(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c", "d")
	for _, id := range abc {
		h.net.node(id).coordErr = fmt.Errorf("dial %s: %w", id, rpc.ErrUnreachable)
	}
	_, err := put(t, h.coord("d"), "v1", vclock.Context{}, 0)
	if q := asQuorumErr(t, err); q != (QuorumError{Needed: 2, Acked: 0}) {
		t.Fatalf("got %+v, want needed 2 acked 0", q)
	}
}

func TestCoordinateLocalRefusesAKeyThisNodeDoesNotReplicate(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c", "d")
	_, err := h.coord("d").CoordinateLocal(bg, WriteRequest{Key: key, Blind: true, Sibling: sib("v1")})
	if !errors.Is(err, ErrNotReplica) || !errors.Is(err, rpc.ErrUnavailable) {
		t.Fatalf("got %v, want ErrNotReplica (an ErrUnavailable)", err)
	}
}

func TestJointQuorumDuringTransitionNeedsAcksFromTheTargetList(t *testing.T) {
	target := []string{"a", "d", "e"}
	h := newHarness(t, Config{RequestTimeout: 20 * time.Millisecond}, abc, target, "a", "b", "c", "d", "e")
	never := make(chan struct{})
	h.setMergeGate("d", never)
	h.setMergeGate("e", never)
	_, err := put(t, h.coord("a"), "v1", vclock.Context{}, 0)
	if q := asQuorumErr(t, err); q != (QuorumError{Needed: 2, Acked: 1}) {
		t.Fatalf("acks from b and c only: got %+v, want the target list's needed 2 acked 1", q)
	}

	h2 := newHarness(t, Config{}, abc, target, "a", "b", "c", "d", "e")
	h2.setMergeGate("e", never)
	if _, err := put(t, h2.coord("a"), "v2", vclock.Context{}, 0); err != nil {
		t.Fatalf("with d acking for the target list: %v", err)
	}
}

func TestReadMergesSiblingsAndDropsDominatedVersions(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	v1, v2, v3 := readFixture()
	h.net.node("a").store(0, key, v1)
	h.net.node("b").store(0, key, v2)
	h.net.node("c").store(0, key, v3)
	s, ok := mustGet(t, h.coord("a"), 3)
	if !ok {
		t.Fatal("not found")
	}
	if got, want := values(s), []string{"v2", "v3"}; !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	if !s.Context.Covers(vclock.Dot{Actor: "a", Counter: 1}) || !s.Context.Covers(v3.Siblings[0].Dot) {
		t.Fatalf("read context %v does not cover every version seen", s.Context)
	}
}

func TestReadOfMissingKeyIsNotFoundAndRepairsNothing(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	if _, ok := mustGet(t, h.coord("b"), 0); ok {
		t.Fatal("found a key nobody wrote")
	}
	h.quiesce()
	if st := h.coord("b").Stats(); st.ReadRepairs != 0 {
		t.Fatalf("ReadRepairs = %d for a missing key", st.ReadRepairs)
	}
}

func TestReadFailsWithNeededAndAcked(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	h.fail("b", rpc.ErrUnreachable)
	h.fail("c", rpc.ErrUnreachable)
	// Decided once two replicas failed, whether or not a had answered by then.
	_, _, err := h.coord("a").Get(bg, 0, key, 0)
	if q := asQuorumErr(t, err); q.Needed != 2 || q.Acked > 1 {
		t.Fatalf("got %+v, want needed 2 acked at most 1", q)
	}
	if _, _, err := h.coord("a").Get(bg, 0, key, 1); err != nil {
		t.Fatalf("r=1 with the coordinator's replica up: %v", err)
	}
	_, _, err = h.coord("a").Get(bg, 0, key, 7)
	// Decided at the first failure, whether or not a's answer came first.
	if q := asQuorumErr(t, err); q.Needed != 3 || q.Acked > 1 {
		t.Fatalf("r=7 on N=3: got %+v, want needed 3 (capped) acked at most 1", q)
	}
}

func TestReadRepairTargetsExactlyTheStaleReplicasAfterTheResponse(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	v1, v2, _ := readFixture()
	h.net.node("a").store(0, key, v2)
	h.net.node("b").store(0, key, v2)
	h.net.node("c").store(0, key, v1)
	// b, the peer asked first, stalls: the hedge asks c, whose stale
	// answer makes the quorum with a's.
	release := make(chan struct{})
	h.setGetGate("b", release)

	s, _ := mustGet(t, h.coord("a"), 2)
	if got := values(s); !slices.Equal(got, []string{"v2"}) {
		t.Fatalf("read %v, want [v2]", got)
	}
	// The client has its answer while b has not even answered: no repair yet.
	for _, id := range abc {
		if m := h.net.node(id).mergeLog(); len(m) != 0 {
			t.Fatalf("replica %s repaired before the slow replica answered: %v", id, m)
		}
	}
	close(release)
	h.quiesce()
	for _, tc := range []struct {
		id      string
		repairs int
	}{{"a", 0}, {"b", 0}, {"c", 1}} {
		if got := len(h.net.node(tc.id).mergeLog()); got != tc.repairs {
			t.Errorf("replica %s got %d repairs, want %d", tc.id, got, tc.repairs)
		}
	}
	if got := h.net.node("c").set(0, key); !got.Equal(v2) {
		t.Fatalf("c after repair holds %v, want v2", values(got))
	}
	if st := h.coord("a").Stats(); st.ReadRepairs != 1 {
		t.Fatalf("ReadRepairs = %d, want 1", st.ReadRepairs)
	}
}

func TestReadRepairWritesToAReplicaThatAnsweredNotFound(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	_, v2, _ := readFixture()
	h.net.node("a").store(0, key, v2)
	h.net.node("b").store(0, key, v2)
	mustGet(t, h.coord("b"), 3)
	h.quiesce()
	if got := h.net.node("c").set(0, key); !got.Equal(v2) {
		t.Fatalf("c after repair holds %v, want v2", values(got))
	}
}

func TestSequentialBlindWritesThroughDifferentCoordinatorsLeaveTheLastValue(t *testing.T) {
	// Both ways a blind write goes: covering merges (the default) and the
	// context read first.
	for _, gather := range []bool{false, true} {
		t.Run(fmt.Sprintf("gather=%v", gather), func(t *testing.T) {
			sequentialBlindWrites(t, newHarness(t, Config{GatherBlindWrites: gather}, abc, nil, "a", "b", "c"))
		})
	}
}

func sequentialBlindWrites(t *testing.T, h *harness) {
	// Every write reaches only its W=2 acks before the next one starts: the
	// third replica's merges are held back until the end, the worst case for
	// a blind write at a replica that missed the previous write.
	coordinators := []string{"a", "c", "b", "a", "c"}
	for i, via := range coordinators {
		// Hold back the replica that will coordinate the next write.
		next := coordinators[(i+1)%len(coordinators)]
		gateOf := map[string]chan struct{}{}
		for _, id := range abc {
			if id != via && id == next {
				g := make(chan struct{})
				gateOf[id] = g
				h.setMergeGate(id, g)
			} else {
				h.setMergeGate(id, nil)
			}
		}
		mustPut(t, h.coord(via), fmt.Sprintf("v%d", i), vclock.Context{})
		s, _ := mustGet(t, h.coord(via), 2)
		if got, want := values(s), []string{fmt.Sprintf("v%d", i)}; !slices.Equal(got, want) {
			t.Fatalf("after blind write %d through %s: quorum read %v, want %v", i, via, got, want)
		}
		for id, g := range gateOf {
			close(g)
			h.setMergeGate(id, nil)
		}
	}
	h.quiesce()
	last := fmt.Sprintf("v%d", len(coordinators)-1)
	for _, id := range abc {
		if got := values(h.net.node(id).set(0, key)); !slices.Equal(got, []string{last}) {
			t.Errorf("replica %s converged to %v, want [%s]", id, got, last)
		}
	}
}

func TestBlindWriteSupersedesWhatItsCoordinatorHoldsEvenWhenPeersAnswerFirst(t *testing.T) {
	h := newHarness(t, Config{GatherBlindWrites: true}, abc, nil, "a", "b", "c")
	v0, _ := vclock.Set{}.Update("a", vclock.Context{}, sib("v0"))
	unacked, _ := v0.Update("a", vclock.Context{}, sib("unacked")) // a's write that never replicated
	h.net.node("a").store(0, key, unacked)
	h.net.node("b").store(0, key, v0)
	h.net.node("c").store(0, key, v0)
	if len(unacked.Siblings) != 2 {
		t.Fatalf("fixture: a should hold two siblings, holds %v", values(unacked))
	}
	served := make(chan string, 2)
	for _, id := range []string{"b", "c"} {
		h.net.node(id).served = served
	}
	release := make(chan struct{})
	h.setGetGate("a", release)
	done := make(chan error, 1)
	go func() { _, err := put(t, h.coord("a"), "last", vclock.Context{}, 0); done <- err }()
	<-served
	<-served // b and c answered: R=2 is met before a's own answer
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("blind write: %v", err)
	}
	h.quiesce()
	for _, id := range []string{"b", "c"} {
		h.net.node(id).mu.Lock()
		h.net.node(id).served = nil
		h.net.node(id).mu.Unlock()
	}
	s, _ := mustGet(t, h.coord("b"), 3)
	if got := values(s); !slices.Equal(got, []string{"last"}) {
		t.Fatalf("read %v, want only the blind write's value", got)
	}
}

func TestLocalBlindWritesSupersedeOnlyWhatTheCoordinatorHolds(t *testing.T) {
	// The trade-off LocalBlindWrites makes: a coordinator that missed the
	// previous write leaves it as a sibling.
	h := newHarness(t, Config{LocalBlindWrites: true}, abc, nil, "a", "b", "c")
	g := make(chan struct{})
	h.setMergeGate("c", g)
	mustPut(t, h.coord("a"), "v1", vclock.Context{})
	mustPut(t, h.coord("c"), "v2", vclock.Context{})
	close(g)
	h.quiesce()
	s, _ := mustGet(t, h.coord("b"), 3)
	if got, want := values(s), []string{"v1", "v2"}; !slices.Equal(got, want) {
		t.Fatalf("read %v, want siblings %v", got, want)
	}
}

func TestConcurrentWritesWithOneContextLeaveSiblingsThatTheReadContextResolves(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	base := mustPut(t, h.coord("a"), "v0", vclock.Context{})
	h.quiesce()
	mustPut(t, h.coord("b"), "x", base)
	mustPut(t, h.coord("c"), "y", base)
	h.quiesce()
	s, _ := mustGet(t, h.coord("a"), 0)
	if got, want := values(s), []string{"x", "y"}; !slices.Equal(got, want) {
		t.Fatalf("read %v, want the two concurrent writes %v", got, want)
	}
	mustPut(t, h.coord("a"), "z", s.Context)
	h.quiesce()
	s, _ = mustGet(t, h.coord("c"), 3)
	if got, want := values(s), []string{"z"}; !slices.Equal(got, want) {
		t.Fatalf("after the resolving write: %v, want %v", got, want)
	}
}

func TestSiblingsNeverExceedTheConcurrentWriters(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	// Two clients, each writing with the context of its own previous PUT,
	// through different coordinators.
	ctxs := [2]vclock.Context{}
	via := [2][]string{{"a", "b", "c"}, {"c", "a", "b"}}
	for round := range 6 {
		for w := range 2 {
			ctxs[w] = mustPut(t, h.coord(via[w][round%3]), fmt.Sprintf("w%d-%d", w, round), ctxs[w])
		}
		h.quiesce()
		s, _ := mustGet(t, h.coord("a"), 3)
		if n := len(s.Siblings); n > 2 {
			t.Fatalf("round %d: %d siblings %v with 2 writers", round, n, values(s))
		}
	}
}

func TestCloseStopsBackgroundWorkWithoutLeaks(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	never := make(chan struct{})
	h.setMergeGate("c", never)
	h.setGetGate("c", never)
	mustPut(t, h.coord("a"), "v1", vclock.Context{})
	mustGet(t, h.coord("a"), 2)
	for _, id := range abc {
		_ = h.coord(id).Close()
	}
	goleak.VerifyNone(t)
	if _, err := put(t, h.coord("a"), "v2", vclock.Context{}, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after Close: %v, want ErrClosed", err)
	}
	if _, _, err := h.coord("a").Get(bg, 0, key, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after Close: %v, want ErrClosed", err)
	}
}

func TestNoRingIsUnavailable(t *testing.T) {
	h := newHarness(t, Config{}, nil, nil, "a")
	_, err := put(t, h.coord("a"), "v1", vclock.Context{}, 0)
	if !errors.Is(err, ErrNoRing) || !errors.Is(err, rpc.ErrUnavailable) {
		t.Fatalf("put without a ring: %v, want ErrNoRing", err)
	}
	if _, _, err := h.coord("a").Get(bg, 0, key, 0); !errors.Is(err, ErrNoRing) {
		t.Fatalf("get without a ring: %v, want ErrNoRing", err)
	}
}

func TestOneNodeClusterNeedsNoPeers(t *testing.T) {
	h := newHarness(t, Config{}, []string{"a"}, nil, "a")
	ctx := mustPut(t, h.coord("a"), "v1", vclock.Context{})
	s, ok := mustGet(t, h.coord("a"), 0)
	if !ok || !slices.Equal(values(s), []string{"v1"}) || !s.Context.Equal(ctx) {
		t.Fatalf("one node read %v %v (ctx %v), want [v1] with the write's context %v", ok, values(s), s.Context, ctx)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{N: 1}, true},
		{Config{N: 3, R: 4}, false},
		{Config{N: 3, W: -1}, false},
		{Config{N: -2}, false},
		{Config{RequestTimeout: -time.Second}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
}

func TestBlindWriteThatTimesOutGatheringItsContextWritesNothing(t *testing.T) {
	h := newHarness(t, Config{RequestTimeout: 20 * time.Millisecond, GatherBlindWrites: true}, abc, nil, "a", "b", "c")
	never := make(chan struct{})
	h.setGetGate("a", never) // the coordinator's own answer never comes
	_, err := put(t, h.coord("a"), "v1", vclock.Context{}, 0)
	if q := asQuorumErr(t, err); q != (QuorumError{Needed: 2, Acked: 0}) {
		t.Fatalf("got %+v, want needed 2 acked 0", q)
	}
	h.quiesce()
	for _, id := range abc {
		if s := h.net.node(id).set(0, key); len(s.Siblings) != 0 {
			t.Errorf("replica %s holds %v after a write that failed before writing", id, values(s))
		}
	}
}

func TestCoordinateLocalOnATargetOnlyReplicaWritesAndMeetsTheJointQuorum(t *testing.T) {
	h := newHarness(t, Config{}, abc, []string{"d", "a", "b"}, "a", "b", "c", "d")
	res, err := h.coord("d").CoordinateLocal(bg, WriteRequest{Key: key, Blind: true, Sibling: sib("v1")})
	if err != nil {
		t.Fatalf("CoordinateLocal on joining replica d: %v", err)
	}
	if !res.Context.Covers(vclock.Dot{Actor: "d", Counter: 1}) {
		t.Fatalf("client context %v does not cover d's write", res.Context)
	}
	h.quiesce()
	for _, id := range []string{"a", "b", "c", "d"} {
		if got := values(h.net.node(id).set(0, key)); !slices.Equal(got, []string{"v1"}) {
			t.Errorf("replica %s holds %v, want [v1]", id, got)
		}
	}
}

func TestInFlightCountsRequestsAndTheWorkTheyLeaveRunning(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	gateC := make(chan struct{})
	h.setMergeGate("c", gateC)
	if n := h.coord("a").Stats().InFlight; n != 0 {
		t.Fatalf("InFlight of an idle coordinator = %d, want 0", n)
	}
	// W=2 answers on a and b; the merge to c is still running, and it is
	// what could store a hint if it failed.
	mustPut(t, h.coord("a"), "v1", vclock.Context{})
	if n := h.coord("a").Stats().InFlight; n < 1 {
		t.Fatalf("InFlight after a write answered while its merge to c waits = %d, want at least 1", n)
	}
	close(gateC)
	testutil.Eventually(t, 30*time.Second, time.Millisecond, "the merge to c to finish", func() bool {
		return h.coord("a").Stats().InFlight == 0
	})
}
