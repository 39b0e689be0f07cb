package membership

// Liveness is what memberlist's failure detector says about a node.
type Liveness string

const (
	Alive   Liveness = "alive"
	Suspect Liveness = "suspect"
	Dead    Liveness = "dead"
)

// Liveness reports what the failure detector says about id: Dead when
// memberlist does not know it or has declared it dead or left; Suspect when
// this node's own last probe of it failed (see delegate.go); else Alive.
func (m *Membership) Liveness(id string) Liveness {
	ml := m.ml.Load()
	if ml == nil {
		return Dead
	}
	if id == m.cfg.NodeID {
		if m.mlLeft.Load() {
			return Dead
		}
		return Alive
	}
	for _, n := range ml.Members() {
		if n.Name != id {
			continue
		}
		m.suspectMu.Lock()
		suspect := m.suspects[id]
		m.suspectMu.Unlock()
		if suspect {
			return Suspect
		}
		return Alive
	}
	return Dead
}

func (m *Membership) markSuspect(id string) {
	m.suspectMu.Lock()
	m.suspects[id] = true
	m.suspectMu.Unlock()
}

func (m *Membership) clearSuspect(id string) {
	m.suspectMu.Lock()
	delete(m.suspects, id)
	m.suspectMu.Unlock()
}
