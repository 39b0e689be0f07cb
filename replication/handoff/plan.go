package handoff

import (
	"slices"

	"github.com/dynkv/dynkv/membership"
)

// handoffMode says what a handoff pass is for.
type handoffMode int

const (
	// modeTransfer: a transition is pending; copy keys to the nodes that gain
	// them in the target ring, keep them locally.
	modeTransfer handoffMode = iota + 1
	// modeSweep: no transition is pending; push keys this node holds but
	// does not replicate to their owners, then drop them locally.
	modeSweep
)

func (m handoffMode) String() string {
	switch m {
	case modeTransfer:
		return "transfer"
	case modeSweep:
		return "stray sweep"
	}
	return "unknown"
}

// transferDestinations is where self sends a key during a transition from
// committed preference list c to target list t: to every node of t that is
// not in c, if self is in c. Only replicas in c send, so every new replica
// hears from each current one (any of them may hold the only copy of an
// acknowledged write), and a joining or removed node sends nothing.
func transferDestinations(self string, c, t []string) []string {
	if !slices.Contains(c, self) {
		return nil
	}
	var out []string
	for _, id := range t {
		if !slices.Contains(c, id) {
			out = append(out, id)
		}
	}
	return out
}

// strayDestinations is where self pushes a key before dropping it when no
// transition is pending: to every node of the committed preference list c,
// if self is not one of them. An empty c (a node that has not seen its
// cluster yet) gives nothing, so nothing is dropped.
func strayDestinations(self string, c []string) []string {
	if len(c) == 0 || slices.Contains(c, self) {
		return nil
	}
	return slices.Clone(c)
}

// handoffPlan answers, per partition, where a pass sends the keys of that
// partition. It is pure (rings in, node ids out) and memoises per partition,
// since a scan asks once per key and partitions are few.
type handoffPlan struct {
	self      string
	mode      handoffMode
	n         int
	committed *membership.Ring
	target    *membership.Ring // modeTransfer only
	dests     [][]string
	known     []bool
}

func newHandoffPlan(self string, mode handoffMode, n int, committed, target *membership.Ring) *handoffPlan {
	p := &handoffPlan{self: self, mode: mode, n: n, committed: committed, target: target}
	parts := committed.Partitions()
	p.dests = make([][]string, parts)
	p.known = make([]bool, parts)
	return p
}

// destinations returns the nodes the keys of partition go to (nil: none).
// The caller must not modify the result.
func (p *handoffPlan) destinations(partition int) []string {
	if partition < 0 || partition >= len(p.dests) {
		return nil
	}
	if p.known[partition] {
		return p.dests[partition]
	}
	c := p.committed.PreferenceList(partition, p.n)
	var d []string
	switch p.mode {
	case modeTransfer:
		d = transferDestinations(p.self, c, p.target.PreferenceList(partition, p.n))
	case modeSweep:
		d = strayDestinations(p.self, c)
	}
	p.dests[partition], p.known[partition] = d, true
	return d
}

// partition maps a key to its partition on the plan's rings (both have the
// cluster's partition count).
func (p *handoffPlan) partition(db int, key []byte) int {
	return membership.PartitionOf(db, key, p.committed.Partitions())
}
