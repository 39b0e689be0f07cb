package coordinator

import (
	"errors"
	"fmt"
	"slices"

	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// resolveQuorum turns a per-request quorum (0: the default) into the count
// a request needs, capped at n: asking for more acks than there are
// replicas could never succeed.
func resolveQuorum(requested, def, n int) (int, error) {
	if requested < 0 {
		return 0, fmt.Errorf("coordinator: quorum must not be negative, got %d", requested)
	}
	q := requested
	if q == 0 {
		q = def
	}
	return max(1, min(q, n)), nil
}

// writePlan is who a write goes to and what counts as success: the
// committed list always, the target list during a transition (a joint
// quorum, so the write is readable in both rings).
type writePlan struct {
	lists [2][]string // committed, target (nil without a transition)
	need  [2]int
	nodes []string // lists' union in preference order, each node once
}

func planWrite(committed, target []string, w int) writePlan {
	p := writePlan{lists: [2][]string{committed, target}}
	for i, l := range p.lists {
		if l == nil {
			continue
		}
		p.need[i] = min(w, len(l))
		for _, id := range l {
			if !slices.Contains(p.nodes, id) {
				p.nodes = append(p.nodes, id)
			}
		}
	}
	return p
}

// contains reports whether id is a replica of the write in either list.
func (p *writePlan) contains(id string) bool { return slices.Contains(p.nodes, id) }

// writeTally counts one write's acks and failures per list. A node's answer
// counts in every list it belongs to, the coordinator's own write included.
type writeTally struct {
	plan    *writePlan
	acked   [2]int
	failed  [2]int
	settled []string // nodes that answered; a second answer is ignored
}

func newWriteTally(p *writePlan) *writeTally {
	return &writeTally{plan: p, settled: make([]string, 0, len(p.nodes))}
}

// record notes node id's answer.
func (t *writeTally) record(id string, ok bool) {
	if slices.Contains(t.settled, id) || !t.plan.contains(id) {
		return
	}
	t.settled = append(t.settled, id)
	for i, l := range t.plan.lists {
		if !slices.Contains(l, id) {
			continue
		}
		if ok {
			t.acked[i]++
		} else {
			t.failed[i]++
		}
	}
}

// outcome says whether the write is decided: success (nil error) once
// every list has its acks, or the QuorumError of the first list that can
// no longer reach its count.
func (t *writeTally) outcome() (done bool, err *QuorumError) {
	met := true
	for i, l := range t.plan.lists {
		if l == nil {
			continue
		}
		if len(l)-t.failed[i] < t.plan.need[i] {
			return true, &QuorumError{Needed: t.plan.need[i], Acked: t.acked[i]}
		}
		if t.acked[i] < t.plan.need[i] {
			met = false
		}
	}
	return met, nil
}

// timedOut is the error of a write still undecided at its deadline: the
// first list short of its acks.
func (t *writeTally) timedOut() *QuorumError {
	for i, l := range t.plan.lists {
		if l != nil && t.acked[i] < t.plan.need[i] {
			return &QuorumError{Needed: t.plan.need[i], Acked: t.acked[i]}
		}
	}
	return nil
}

// readAnswer is one replica's reply to a read; found false with no error
// is a not-found answer, which counts towards R.
type readAnswer struct {
	id    string
	set   vclock.Set
	found bool
	err   error
}

// readTally merges a read's answers as they arrive.
type readTally struct {
	need, total int
	answers     []readAnswer // successful answers only
	failed      int
	merged      vclock.Set
}

func newReadTally(r, total int) *readTally {
	return &readTally{need: min(r, total), total: total, answers: make([]readAnswer, 0, total)}
}

func (t *readTally) record(a readAnswer) {
	if a.err != nil {
		t.failed++
		return
	}
	if !a.found {
		a.set = vclock.Set{}
	}
	t.answers = append(t.answers, a)
	t.merged = vclock.Merge(t.merged, a.set)
}

// outcome: success once R answered, failure once too many replicas failed
// for R to be reachable.
func (t *readTally) outcome() (done bool, err *QuorumError) {
	switch {
	case len(t.answers) >= t.need:
		return true, nil
	case t.total-t.failed < t.need:
		return true, &QuorumError{Needed: t.need, Acked: len(t.answers)}
	}
	return false, nil
}

func (t *readTally) timedOut() *QuorumError {
	return &QuorumError{Needed: t.need, Acked: len(t.answers)}
}

// complete reports whether every replica has answered or failed.
func (t *readTally) complete() bool { return len(t.answers)+t.failed >= t.total }

// found says whether a merged read result names a key at all: a sibling
// (live or not) or a context to hand back. The node layer applies Live.
func found(s vclock.Set) bool { return len(s.Siblings) > 0 || !s.Context.IsZero() }

// repairTargets lists the replicas whose answer differs from the merge of
// all answers (not-found answers included): Dynamo's read repair. Nothing is
// repaired when no replica holds anything.
func (t *readTally) repairTargets() []string {
	if !found(t.merged) {
		return nil
	}
	var stale []string
	for _, a := range t.answers {
		if !a.set.Equal(t.merged) {
			stale = append(stale, a.id)
		}
	}
	return stale
}

func inList(l []string, id string) bool { return slices.Contains(l, id) }

// forwardOrder is the order in which a node tries replicas any of which
// can serve (the one to coordinate a forwarded write, the peers a read
// asks first): by rank, lowest first (Coordinator.routeRank: in good
// standing, missing, unreachable), and in preference order within a rank.
// The unreachable still come last rather than not at all, since the
// failure detector may lag behind a recovery.
func forwardOrder(ids []string, rank func(string) int) []string {
	ranks := make([]int, len(ids))
	top := 0
	for i, id := range ids {
		ranks[i] = rank(id)
		top = max(top, ranks[i])
	}
	out := make([]string, 0, len(ids))
	for r := 0; r <= top; r++ {
		for i, id := range ids {
			if ranks[i] == r {
				out = append(out, id)
			}
		}
	}
	return out
}

// tryNext says whether a replica that failed to coordinate a forwarded
// write certainly did not apply it, so that another replica may: it was
// never reached, was not ready or no longer a replica, or its own durable
// write failed before anything was acknowledged.
func tryNext(err error) bool {
	for _, target := range []error{
		rpc.ErrUnreachable, rpc.ErrUnavailable, rpc.ErrUnknownNode,
		store.ErrDiskFull, store.ErrClosed,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
