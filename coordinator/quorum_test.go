package coordinator

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

func TestResolveQuorumDefaultsAndCapsAtN(t *testing.T) {
	for _, tc := range []struct{ req, def, n, want int }{
		{0, 2, 3, 2}, // default
		{1, 2, 3, 1}, // override down
		{3, 2, 3, 3}, // override up
		{5, 2, 3, 3}, // capped at N
		{0, 2, 1, 1}, // default capped on a one-replica setup
	} {
		got, err := resolveQuorum(tc.req, tc.def, tc.n)
		if err != nil || got != tc.want {
			t.Errorf("resolveQuorum(%d, def %d, n %d) = %d, %v; want %d", tc.req, tc.def, tc.n, got, err, tc.want)
		}
	}
	if _, err := resolveQuorum(-1, 2, 3); err == nil {
		t.Error("resolveQuorum(-1) accepted a negative quorum")
	}
}

// step is one replica answer fed to a tally, and the outcome expected after it.
type step struct {
	id      string
	ok      bool
	done    bool
	qerr    *QuorumError // when done with a failure
	comment string
}

func TestWriteTally(t *testing.T) {
	abc := []string{"a", "b", "c"}
	for _, tc := range []struct {
		name              string
		committed, target []string
		w                 int
		steps             []step
		timeout           *QuorumError // timedOut() after the steps
	}{
		{
			name: "W=2 met by the coordinator and one replica", committed: abc, w: 2,
			steps: []step{{id: "a", ok: true}, {id: "b", ok: true, done: true}},
		},
		{
			name: "W=2 impossible once two of three failed", committed: abc, w: 2,
			steps: []step{{id: "a", ok: true}, {id: "b"}, {id: "c", done: true, qerr: &QuorumError{Needed: 2, Acked: 1}}},
		},
		{
			name: "W=3 impossible at the first failure", committed: abc, w: 3,
			steps: []step{{id: "a", ok: true}, {id: "c", done: true, qerr: &QuorumError{Needed: 3, Acked: 1}}},
		},
		{
			name: "a duplicate answer counts once", committed: abc, w: 2,
			steps:   []step{{id: "a", ok: true}, {id: "a", ok: true}, {id: "x", ok: true, comment: "not a replica"}},
			timeout: &QuorumError{Needed: 2, Acked: 1},
		},
		{
			name: "W capped at a short list", committed: []string{"a"}, w: 2,
			steps: []step{{id: "a", ok: true, done: true}},
		},
		{
			name: "joint quorum: acks from C alone are not enough", committed: abc, target: []string{"a", "d", "e"}, w: 2,
			steps: []step{
				{id: "a", ok: true}, {id: "b", ok: true}, {id: "c", ok: true},
			},
			timeout: &QuorumError{Needed: 2, Acked: 1},
		},
		{
			name: "joint quorum met when T has its acks too", committed: abc, target: []string{"a", "d", "e"}, w: 2,
			steps: []step{
				{id: "a", ok: true}, {id: "b", ok: true}, {id: "d", ok: true, done: true},
			},
		},
		{
			name: "joint quorum fails on T's failures and reports T's count", committed: abc, target: []string{"a", "d", "e"}, w: 2,
			steps: []step{
				{id: "b", ok: true}, {id: "d"}, {id: "e", done: true, qerr: &QuorumError{Needed: 2, Acked: 0}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planWrite(tc.committed, tc.target, tc.w)
			tally := newWriteTally(&p)
			for i, s := range tc.steps {
				tally.record(s.id, s.ok)
				done, qerr := tally.outcome()
				if done != s.done || !sameQuorumErr(qerr, s.qerr) {
					t.Fatalf("after step %d (%s ok=%v %s): done=%v err=%v; want done=%v err=%v",
						i, s.id, s.ok, s.comment, done, qerr, s.done, s.qerr)
				}
			}
			if tc.timeout != nil {
				if got := tally.timedOut(); !sameQuorumErr(got, tc.timeout) {
					t.Fatalf("timedOut() = %v, want %v", got, tc.timeout)
				}
			}
		})
	}
}

func TestPlanWriteUnionKeepsPreferenceOrder(t *testing.T) {
	p := planWrite([]string{"a", "b", "c"}, []string{"d", "a", "e"}, 2)
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(p.nodes, want) {
		t.Fatalf("nodes = %v, want %v", p.nodes, want)
	}
	if p.need != [2]int{2, 2} {
		t.Fatalf("need = %v, want [2 2]", p.need)
	}
}

func sameQuorumErr(a, b *QuorumError) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// sets used by the read tests: v1 by a; v2 by b having seen v1; v3 by c
// concurrently (not having seen v1).
func readFixture() (v1, v2, v3 vclock.Set) {
	v1, _ = vclock.Set{}.Update("a", vclock.Context{}, sib("v1"))
	v2, _ = v1.Update("b", v1.Context, sib("v2"))
	v3, _ = vclock.Set{}.Update("c", vclock.Context{}, sib("v3"))
	return v1, v2, v3
}

func TestReadTallyMergesAndListsStaleReplicas(t *testing.T) {
	v1, v2, v3 := readFixture()
	tally := newReadTally(2, 4)
	tally.record(readAnswer{id: "a", set: v1, found: true})
	if done, _ := tally.outcome(); done {
		t.Fatal("done after one answer with R=2")
	}
	tally.record(readAnswer{id: "b", set: v2, found: true})
	if done, qerr := tally.outcome(); !done || qerr != nil {
		t.Fatalf("after two answers: done=%v err=%v, want success", done, qerr)
	}
	tally.record(readAnswer{id: "c", set: v3, found: true})
	tally.record(readAnswer{id: "d"}) // not found
	if !tally.complete() {
		t.Fatal("not complete after every replica answered")
	}
	if got, want := values(tally.merged), []string{"v2", "v3"}; !slices.Equal(got, want) {
		t.Fatalf("merged values %v, want %v (v1 dominated by v2, v3 concurrent)", got, want)
	}
	if got, want := tally.repairTargets(), []string{"a", "b", "c", "d"}; !slices.Equal(got, want) {
		t.Fatalf("repair targets %v, want %v", got, want)
	}
}

func TestReadTallyRepairsNothingWhenReplicasAgree(t *testing.T) {
	_, v2, _ := readFixture()
	tally := newReadTally(2, 3)
	for _, id := range []string{"a", "b", "c"} {
		tally.record(readAnswer{id: id, set: v2, found: true})
	}
	if got := tally.repairTargets(); got != nil {
		t.Fatalf("repair targets %v for agreeing replicas", got)
	}
	none := newReadTally(2, 2)
	none.record(readAnswer{id: "a"})
	none.record(readAnswer{id: "b"})
	if got := none.repairTargets(); got != nil || found(none.merged) {
		t.Fatalf("all not-found: targets %v, found %v", got, found(none.merged))
	}
}

func TestReadTallyFailsWhenRUnreachable(t *testing.T) {
	tally := newReadTally(2, 3)
	tally.record(readAnswer{id: "a"})
	tally.record(readAnswer{id: "b", err: errors.New("down")})
	if done, _ := tally.outcome(); done {
		t.Fatal("decided with one answer, one failure and one replica pending")
	}
	tally.record(readAnswer{id: "c", err: errors.New("down")})
	done, qerr := tally.outcome()
	if !done || !sameQuorumErr(qerr, &QuorumError{Needed: 2, Acked: 1}) {
		t.Fatalf("done=%v err=%v, want QuorumError needed 2 acked 1", done, qerr)
	}
	if got := tally.repairTargets(); got != nil {
		t.Fatalf("repair of %v when nothing was found", got)
	}
}

func TestForwardOrderPrefersLiveReplicas(t *testing.T) {
	dead := map[string]bool{"a": true, "c": true}
	got := forwardOrder([]string{"a", "b", "c", "d"}, func(id string) int {
		if dead[id] {
			return rankUnreachable
		}
		return rankGood
	})
	if want := []string{"b", "d", "a", "c"}; !slices.Equal(got, want) {
		t.Fatalf("forwardOrder = %v, want %v", got, want)
	}
}

func TestTryNextOnlyWhenTheWriteCertainlyDidNotLand(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("dial: %w", rpc.ErrUnreachable), true},
		{fmt.Errorf("remote: %w", rpc.ErrUnavailable), true},
		{ErrNotReplica, true},
		{fmt.Errorf("remote: %w", store.ErrDiskFull), true},
		{fmt.Errorf("remote: %w", &QuorumError{Needed: 2, Acked: 1}), false},
		{fmt.Errorf("remote: %w", rpc.ErrInternal), false},
		{fmt.Errorf("remote: %w", store.ErrBadKey), false},
	} {
		if got := tryNext(tc.err); got != tc.want {
			t.Errorf("tryNext(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
