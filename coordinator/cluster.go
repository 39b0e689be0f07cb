package coordinator

import "github.com/dynkv/dynkv/membership"

// RingCluster adapts membership to Cluster: placement returns the current
// ring snapshot (membership.Membership.Placement) and alive the failure
// detector's verdict, for example
//
//	coordinator.RingCluster(m.Self(), m.Placement, func(id string) bool {
//		return m.Liveness(id) == membership.Alive
//	})
func RingCluster(self string, placement func() membership.Placement, alive func(id string) bool) Cluster {
	return ringCluster{self: self, placement: placement, alive: alive}
}

type ringCluster struct {
	self      string
	placement func() membership.Placement
	alive     func(string) bool
}

func (r ringCluster) Self() string         { return r.self }
func (r ringCluster) Alive(id string) bool { return r.alive(id) }

// PreferenceLists takes one Placement snapshot, so both lists come from the
// same ring state. Without a committed ring there are no lists, not even
// a target's: the node has no ring yet (membership keeps Committed set, so
// this only guards a Placement built by hand).
func (r ringCluster) PreferenceLists(db int, key []byte, n int) (committed, target []string) {
	p := r.placement()
	if p.Committed == nil {
		return nil, nil
	}
	part := p.Partition(db, key)
	committed = p.Committed.PreferenceList(part, n)
	if p.Target != nil {
		target = p.Target.PreferenceList(part, n)
	}
	return committed, target
}
