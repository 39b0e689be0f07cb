package testnode

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/dynkv/dynkv/client"
)

// Status is a node's GET /cluster/status document (the client library's
// type) and the bytes it was decoded from.
type Status struct {
	client.ClusterStatus
	Raw []byte `json:"-"` // the document as served, for failure messages
}

// Transition and MemberStatus are the status document's parts.
type (
	Transition   = client.Transition
	MemberStatus = client.MemberStatus
)

// Member states of the status document.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
	StateJoining = "joining"
	StateLeaving = "leaving"
	StateLeft    = "left"
	StateRemoved = "removed"
)

// Member returns the entry of id.
func (s Status) Member(id string) (MemberStatus, bool) {
	for _, m := range s.Members {
		if m.ID == id {
			return m, true
		}
	}
	return MemberStatus{}, false
}

// Valid lists, sorted, the members that are settled in the ring: their
// state is a liveness (alive, suspect, dead), not a ring transition.
func (s Status) Valid() []string {
	var ids []string
	for _, m := range s.Members {
		switch m.State {
		case StateAlive, StateSuspect, StateDead:
			ids = append(ids, m.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// Summary is a one-line description for failure messages.
func (s Status) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node=%s epoch=%d ring=%s", s.Node, s.Epoch, s.RingFingerprint)
	if s.Transition != nil {
		fmt.Fprintf(&b, " transition{target=%v done=%d/%d}", s.Transition.Target, s.Transition.MembersDone, s.Transition.MembersTotal)
	}
	b.WriteString(" members=[")
	for i, m := range s.Members {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%s:%.3f", m.ID, m.State, m.RingShare)
		if m.Handoff.Total > 0 || m.Handoff.Done {
			fmt.Fprintf(&b, ":handoff=%d/%d,done=%t", m.Handoff.Sent, m.Handoff.Total, m.Handoff.Done)
		}
	}
	b.WriteByte(']')
	return b.String()
}

// Agreed checks that every status shows the same settled ring: no
// transition pending, the same epoch and fingerprint, and exactly want
// (in any order) as the valid members, each with a share of the ring.
func Agreed(statuses map[string]Status, want []string) error {
	want = slices.Sorted(slices.Values(want))
	var first *Status
	ids := make([]string, 0, len(statuses))
	for id := range statuses {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s := statuses[id]
		if s.Transition != nil {
			return fmt.Errorf("node %s: transition pending: %s", id, s.Summary())
		}
		if got := s.Valid(); !slices.Equal(got, want) {
			return fmt.Errorf("node %s: valid members %v, want %v: %s", id, got, want, s.Summary())
		}
		for _, m := range want {
			if ms, _ := s.Member(m); ms.RingShare <= 0 {
				return fmt.Errorf("node %s: member %s has ring share %v, want > 0: %s", id, m, ms.RingShare, s.Summary())
			}
		}
		if first == nil {
			first = &s
			continue
		}
		if s.Epoch != first.Epoch || s.RingFingerprint != first.RingFingerprint {
			return fmt.Errorf("nodes disagree on the ring: %s vs %s", first.Summary(), s.Summary())
		}
	}
	return nil
}
