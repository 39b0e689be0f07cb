package coordinator

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/vclock"
)

func (h *harness) coords(id string) int {
	n := h.net.node(id)
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.coords
}

func peer(c *Coordinator, id string) PeerHealth {
	for _, p := range c.Peers() {
		if p.ID == id {
			return p
		}
	}
	return PeerHealth{ID: id}
}

// A replica that stops answering without failing (a cut link drops its
// packets; gossip still says it is alive) must not hold a write for the
// request timeout (a minute here): once it runs past its per-call deadline
// with W not met, a hint on a fallback node answers for it.
func TestAReplicaThatStopsAnsweringIsHedgedWithAHintOnAFallback(t *testing.T) {
	ring := []string{"a", "b", "c", "d", "e"}
	h := newHarness(t, Config{N: 3, W: 3}, ring, nil, ring...)
	stuck := make(chan struct{})
	defer close(stuck)
	h.setMergeGate("b", stuck)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := h.coord("a").Put(ctx, WriteRequest{Key: key, Blind: true, Sibling: sib("v1"), W: 3})
	if err != nil {
		t.Fatalf("write at W=3 with b not answering: %v, want success through a hedged hint", err)
	}
	if got := fmt.Sprint(h.hints("d")); got != "map[b|0/k:[v1]]" {
		t.Errorf("hints on d: %s, want the write held for b", got)
	}
	st := h.coord("a").Stats()
	if st.Hedges == 0 {
		t.Errorf("Stats.Hedges = 0, want the hedge counted")
	}
	if p := peer(h.coord("a"), "b"); p.Misses == 0 {
		t.Errorf("b's misses on a: %+v, want its late calls counted", p)
	}
}

// Without a fallback node (a cluster of N nodes) there is nothing to hedge
// to: the write waits for the replica as before, and fails at its deadline
// when W cannot be met without it.
func TestWithoutAFallbackAWriteWaitsForTheSlowReplica(t *testing.T) {
	ring := []string{"a", "b", "c"}
	h := newHarness(t, Config{N: 3, W: 3, RequestTimeout: 2 * time.Second}, ring, nil, ring...)
	release := make(chan struct{})
	h.setMergeGate("b", release)
	go func() {
		time.Sleep(600 * time.Millisecond) // past b's deadline (200 ms before any p99)
		close(release)
	}()
	if _, err := put(t, h.coord("a"), "v1", vclock.Context{}, 3); err != nil {
		t.Fatalf("write at W=3 with b slow and no fallback: %v, want success once b answers", err)
	}
	h.quiesce()
	if got := values(h.net.node("b").set(0, key)); fmt.Sprint(got) != "[v1]" {
		t.Errorf("b holds %v, want [v1]", got)
	}
}

// A peer whose calls keep failing is unreachable for routing while gossip
// still says it is alive: a node outside the key's list stops forwarding
// writes to it, and a probe closes it again once it answers.
func TestAPeerThatKeepsFailingIsRoutedAroundAndRecovers(t *testing.T) {
	list := []string{"b", "a", "c"}
	// A clock that moves when told, from the real time: request deadlines
	// are built from it and run on real timers.
	clock := testutil.NewFakeClockAt(time.Now())
	h := newHarness(t, Config{N: 3, W: 2, Now: clock.Now}, list, nil, "a", "b", "c", "d")
	h.fail("b", fmt.Errorf("dial: %w", rpc.ErrUnreachable))
	d := h.coord("d")
	if _, err := put(t, d, "v0", vclock.Context{}, 2); err != nil {
		t.Fatalf("write forwarded from d with b failing: %v, want the next replica to take it", err)
	}
	if p := peer(d, "b"); p.Misses != 1 || p.Unreachable {
		t.Fatalf("b on d after a failed forward: %+v, want one miss, not yet unreachable", p)
	}
	// One miss already sends d's forwards to a first; more make b
	// unreachable (from d's other calls to it).
	for range tripAfter - 1 {
		d.health.missed("b")
	}
	p := peer(d, "b")
	if !p.Unreachable || p.Trips != 1 || p.Since.IsZero() {
		t.Fatalf("b on d after %d misses: %+v, want unreachable, tripped once", tripAfter, p)
	}
	h.fail("b", nil)
	before := h.coords("b")
	if _, err := put(t, d, "after", vclock.Context{}, 2); err != nil {
		t.Fatal(err)
	}
	if got := h.coords("b"); got != before {
		t.Errorf("b coordinated %d writes for d while unreachable, want none (a takes them)", got-before)
	}
	// Routing around b once the probe interval has passed sends it a
	// probe; its answer closes it.
	clock.Advance(probeInterval)
	if _, err := put(t, d, "probing", vclock.Context{}, 2); err != nil {
		t.Fatal(err)
	}
	h.quiesce()
	if p := peer(d, "b"); p.Unreachable || p.Misses != 0 {
		t.Errorf("b on d after its probe answered: %+v, want reachable again", p)
	}
	if _, err := put(t, d, "again", vclock.Context{}, 2); err != nil {
		t.Fatal(err)
	}
	if got := h.coords("b"); got != before+1 {
		t.Errorf("b coordinated %d writes after recovering, want 1 (it is first in the list)", got-before)
	}
}

// An unreachable replica's share of a write goes straight to a fallback,
// without a merge to wait on.
func TestAnUnreachableReplicaIsHintedAtOnce(t *testing.T) {
	ring := []string{"a", "b", "c", "d"}
	h := newHarness(t, Config{N: 3, W: 3}, ring, nil, ring...)
	a := h.coord("a")
	for range tripAfter {
		a.health.missed("b")
	}
	stuck := make(chan struct{})
	defer close(stuck)
	h.setMergeGate("b", stuck) // a merge to b would hang
	h.setGetGate("b", stuck)   // and so would its probe
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Put(ctx, WriteRequest{Key: key, Blind: true, Sibling: sib("v1"), W: 3}); err != nil {
		t.Fatalf("write with b unreachable: %v, want success through a hint on d", err)
	}
	if got := fmt.Sprint(h.hints("d")); got != "map[b|0/k:[v1]]" {
		t.Errorf("hints on d: %s, want the write held for b", got)
	}
	if got := h.net.node("b").mergeLog(); len(got) != 0 {
		t.Errorf("merges sent to b: %v, want none", got)
	}
}

// A blind write's context read does not wait out the RPC timeout of peers
// that are unreachable and not answering: it completes best effort, as if
// they had failed, and the write is acknowledged through hints.
func TestAContextReadDoesNotWaitForUnreachablePeers(t *testing.T) {
	ring := []string{"a", "b", "c", "d", "e"}
	h := newHarness(t, Config{N: 3, W: 3, GatherBlindWrites: true}, ring, nil, ring...)
	stuck := make(chan struct{})
	defer close(stuck)
	for _, id := range []string{"b", "c"} {
		h.setGetGate(id, stuck)
		h.setMergeGate(id, stuck)
	}
	a := h.coord("a")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Put(ctx, WriteRequest{Key: key, Blind: true, Sibling: sib("v1"), W: 3}); err != nil {
		t.Fatalf("blind write with b and c cut off: %v, want success through hints on d and e", err)
	}
	if st := a.Stats(); st.Hedges == 0 {
		t.Errorf("Stats.Hedges = 0, want the context read and the merges hedged")
	}
	if got := fmt.Sprint(h.hints("d"), h.hints("e")); got != "map[b|0/k:[v1]] map[c|0/k:[v1]]" {
		t.Errorf("hints on d and e: %s, want the write held for b and c", got)
	}
}

func TestNoAnswerTellsAnAnswerFromSilence(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.Canceled, false},
		{fmt.Errorf("merge: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("dial: %w", rpc.ErrUnreachable), true},
		{fmt.Errorf("busy: %w", rpc.ErrUnavailable), false},
		{errors.New("connection reset"), true},
		{&rpc.RemoteError{}, false},
	} {
		if got := noAnswer(tc.err); got != tc.want {
			t.Errorf("noAnswer(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestHedgeAfterFollowsThePeersP99(t *testing.T) {
	now := time.Unix(0, 0)
	h := newPeerHealth(func() time.Time { return now }, 50*time.Millisecond)
	if got := h.hedgeAfter("p"); got != initialHedgeAfter {
		t.Errorf("before any answer: %v, want %v", got, initialHedgeAfter)
	}
	for range latencyWindow {
		h.answered("p", 30*time.Millisecond)
	}
	if got := h.hedgeAfter("p"); got != hedgeFactor*30*time.Millisecond {
		t.Errorf("p99 30ms: %v, want %v", got, hedgeFactor*30*time.Millisecond)
	}
	for range latencyWindow {
		h.answered("p", time.Millisecond)
	}
	if got := h.hedgeAfter("p"); got != 50*time.Millisecond {
		t.Errorf("p99 1ms: %v, want the floor 50ms", got)
	}
	for range latencyWindow {
		h.answered("p", time.Second)
	}
	if got := h.hedgeAfter("p"); got != maxHedgeAfter {
		t.Errorf("p99 1s: %v, want the cap %v", got, maxHedgeAfter)
	}
	for range tripAfter {
		h.missed("p")
	}
	if got := h.hedgeAfter("p"); got != 0 || !h.unreachable("p") {
		t.Errorf("after %d misses: hedge %v unreachable %v, want 0 and true", tripAfter, got, h.unreachable("p"))
	}
	if h.probeDue("p") {
		t.Errorf("probeDue right after its misses: true, want a wait of probeInterval")
	}
	now = now.Add(probeInterval)
	if !h.probeDue("p") || h.probeDue("p") {
		t.Errorf("probeDue after the interval: want exactly one probe")
	}
	h.answered("p", -1)
	if h.unreachable("p") {
		t.Errorf("after an answer: still unreachable")
	}
}

// A write forwarded with a deadline is coordinated within that deadline
// less a margin, so the forwarder gets the remote coordinator's verdict
// (here a QuorumError with its counts) instead of running out of time
// itself with the outcome unknown.
func TestAForwardedWriteAnswersWithinTheForwardersDeadline(t *testing.T) {
	list := []string{"a", "b", "c"}
	h := newHarness(t, Config{N: 3, W: 2}, list, nil, "a", "b", "c", "d")
	stuck := make(chan struct{})
	defer close(stuck)
	for _, id := range []string{"b", "c"} {
		h.setMergeGate(id, stuck)
		h.setGetGate(id, stuck)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := h.coord("d").Put(ctx, WriteRequest{Key: key, Blind: true, Sibling: sib("v1"), W: 2})
	qe, ok := errors.AsType[*QuorumError](err)
	if !ok || qe.Needed != 2 || qe.Acked != 1 {
		t.Fatalf("forwarded write with both peers of its coordinator stuck: %v, want a's QuorumError{2, 1}", err)
	}
	if ctx.Err() != nil {
		t.Errorf("the verdict came after the forwarder's deadline")
	}
}

// A read whose quorum hangs on peers that are unreachable and late fails
// with a QuorumError then, rather than waiting out the request timeout
// (a minute here) for calls whose RPC timeouts would fail them anyway.
func TestAReadDoesNotWaitForUnreachablePeers(t *testing.T) {
	ring := []string{"a", "b", "c", "d", "e"}
	h := newHarness(t, Config{N: 3, R: 2}, ring, nil, ring...)
	stuck := make(chan struct{})
	defer close(stuck)
	a := h.coord("a")
	for _, id := range []string{"b", "c"} {
		h.setGetGate(id, stuck)
		for range tripAfter {
			a.health.missed(id)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := a.Get(ctx, 0, key, 2)
	if qe, ok := errors.AsType[*QuorumError](err); !ok || qe.Needed != 2 || qe.Acked != 1 {
		t.Fatalf("read at R=2 with b and c unreachable: %v, want QuorumError{2, 1}", err)
	}
	// A peer that is only slow is waited for.
	release := make(chan struct{})
	h.setGetGate("b", release)
	a.health.answered("b", -1)
	go func() {
		time.Sleep(300 * time.Millisecond) // past b's deadline
		close(release)
	}()
	if _, _, err := a.Get(ctx, 0, key, 2); err != nil {
		t.Fatalf("read at R=2 with b slow but reachable: %v, want success once b answers", err)
	}
}

// A forwarded write whose coordinator stops answering while it holds the
// write cannot go elsewhere (it may have been applied), but once that
// coordinator is unreachable the client gets the indeterminate 503 then,
// not at the request timeout (a minute here).
func TestAForwardToACoordinatorThatStopsAnsweringFailsEarly(t *testing.T) {
	list := []string{"a", "b", "c"}
	h := newHarness(t, Config{N: 3, W: 2}, list, nil, "a", "b", "c", "d")
	stuck := make(chan struct{})
	defer close(stuck)
	n := h.net.node("a")
	n.mu.Lock()
	n.coordGate = stuck
	n.mu.Unlock()
	d := h.coord("d")
	go func() {
		// d's other calls to a fail meanwhile.
		time.Sleep(100 * time.Millisecond)
		for range tripAfter {
			d.health.missed("a")
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := d.Put(ctx, WriteRequest{Key: key, Blind: true, Sibling: sib("v1"), W: 2})
	if _, ok := errors.AsType[*QuorumError](err); !ok || !errors.Is(err, errStoppedAnswering) {
		t.Fatalf("forward to a stuck, unreachable a: %v, want an indeterminate QuorumError saying a stopped answering", err)
	}
	if got := h.coords("b") + h.coords("c"); got != 0 {
		t.Errorf("the write was sent on to %d other replicas, want none (a may have applied it)", got)
	}
}

// SPEC section 5: a blind write supersedes what a quorum holds. A peer
// that is slow but reachable runs past its per-call deadline without the
// context read giving up on it (it would then leave the earlier write as
// a sibling): only unreachable peers, or a wait of giveUpAfter, end the
// wait early.
func TestAContextReadWaitsForASlowReachablePeer(t *testing.T) {
	ring := []string{"a", "b", "c"}
	h := newHarness(t, Config{N: 3, W: 2, GatherBlindWrites: true}, ring, nil, ring...)
	// An earlier write that b and c hold and a does not.
	earlier := h.net.node("b").set(0, key)
	earlier, _ = earlier.Update("b", vclock.Context{}, sib("v0"))
	h.net.node("b").store(0, key, earlier)
	h.net.node("c").store(0, key, earlier)
	release := make(chan struct{})
	for _, id := range []string{"b", "c"} {
		h.setGetGate(id, release)
	}
	go func() {
		time.Sleep(400 * time.Millisecond) // past the 200 ms deadline, short of giveUpAfter
		close(release)
	}()
	if _, err := put(t, h.coord("a"), "v1", vclock.Context{}, 2); err != nil {
		t.Fatalf("blind write with slow peers: %v", err)
	}
	h.quiesce()
	for _, id := range ring {
		if got := values(h.net.node(id).set(0, key)); fmt.Sprint(got) != "[v1]" {
			t.Errorf("%s holds %v, want [v1]: the blind write must supersede v0", id, got)
		}
	}
}
