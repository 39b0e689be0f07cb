package membership

import (
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"
)

// Join makes this node join the cluster the gossip addresses addrs belong to.
// A node already in a multi-node ring (or with another member joining its
// own) only reconnects its gossip, and a node already joining keeps
// trying; otherwise it becomes joining and enters the ring once the
// ownership handoff for it is done (see State.TryCommit).
//
// The join is staged, as Riak's: while it runs, peers are shown this node
// joining with no committed ring of its own (so the cluster's ring wins the
// first merge, whatever the epochs), and what they answer is merged into
// that staged state only; the node keeps serving, and saving, its current
// state. Only once a member of the cluster has answered does the staged
// state (now holding the cluster's ring) replace it. If no address answers
// within JoinTimeout, Join returns the error and the node is exactly as it
// was, in memory and in ring.state. Its data stays in its store: once the
// join commits, the stray sweep of the ownership handoff pushes the keys it
// no longer replicates to their owners.
//
// An address that reaches this node's own gossip listener is refused with
// ErrJoinSelf: gossip would answer from this node itself.
func (m *Membership) Join(addrs []string) error {
	if len(addrs) == 0 {
		return errors.New("membership: join: no address given")
	}
	if m.mlLeft.Load() {
		return ErrLeft
	}
	self := m.gossipListeners() // outside mu: memberlist locks inside
	for _, a := range addrs {
		if IsLocalAddr(a, self...) {
			return fmt.Errorf("%w: %s is this node's own gossip address", ErrJoinSelf, a)
		}
	}
	gossipAddr := self[0]
	m.mu.Lock()
	if m.staged != nil {
		m.mu.Unlock()
		return ErrJoinInProgress
	}
	me, _ := m.state.Member(m.cfg.NodeID)
	switch {
	case me.Status == StatusLeft || me.Status == StatusRemoved:
		m.mu.Unlock()
		return ErrLeft
	case me.Status == StatusJoining || m.inClusterLocked():
		// Nothing of this node's own to keep apart: reconnect.
		m.mu.Unlock()
		return m.gossipJoin(addrs)
	}
	me.ID = m.cfg.NodeID
	m.stageJoinLocked(markJoining(m.state, me, gossipAddr, m.cfg.HTTPAddr))
	m.mu.Unlock()
	return m.finishJoin(addrs, m.gossipJoin(addrs))
}

// inClusterLocked reports whether this node is a member of a cluster with
// others: it is valid or leaving, and another node is in the committed or
// the target ring. m.mu must be held.
func (m *Membership) inClusterLocked() bool {
	me, _ := m.state.Member(m.cfg.NodeID)
	if me.Status != StatusValid && me.Status != StatusLeaving {
		return false
	}
	other := func(id string) bool { return id != m.cfg.NodeID }
	return slices.ContainsFunc(m.state.Committed.Members, other) || slices.ContainsFunc(m.state.Target(), other)
}

// stageJoinLocked starts a join attempt that shows peers staged (see Join).
// Broadcasts of the current state still queued are dropped: once the
// attempt reaches a peer, memberlist would send them, and a ring of this
// node's own could then beat the cluster's in a merge. m.mu must be held.
func (m *Membership) stageJoinLocked(staged State) {
	m.staged, m.heard, m.echoed, m.discarded = &staged, false, false, nil
	m.queue.Reset()
}

// finishJoin ends the attempt stageJoinLocked started, whose gossip join
// of addrs returned joinErr. If another node's state reached this node (in
// the answer to the join, or sent by a member that the attempt reached
// although it reported an error), the staged state, merged with what the
// peers sent, becomes the node's state: saved, broadcast, in force.
// Otherwise the staged state is dropped and the node goes on as it was;
// the error is joinErr, or ErrJoinSelf when gossip answered only from this
// node itself (an address IsLocalAddr did not recognise).
//
// A peer that received the staged state while its answer never came back
// (an asymmetric failure lasting the whole JoinTimeout) is not detected:
// it lists this node joining while this node keeps its own ring.
func (m *Membership) finishJoin(addrs []string, joinErr error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	staged, heard, echoed := *m.staged, m.heard, m.echoed
	m.staged, m.heard, m.echoed = nil, false, false
	if heard {
		if joinErr != nil {
			m.log.Info("join reached the cluster although the attempt reported an error", zap.Error(joinErr))
		}
		return m.commitLocked(staged, true)
	}
	switch {
	case joinErr != nil:
	case echoed:
		joinErr = fmt.Errorf("%w: %v reached only this node's own gossip", ErrJoinSelf, addrs)
	default:
		joinErr = fmt.Errorf("membership: join %v: no member sent its ring state", addrs)
	}
	m.discarded = &staged
	m.log.Warn("join failed; this node's ring state is unchanged", zap.Uint64("epoch", m.state.Committed.Epoch),
		zap.Strings("members", m.state.Committed.Members), zap.Error(joinErr))
	return joinErr
}

// Leave starts this node's graceful departure: it becomes leaving, the
// handoff worker moves its data and reports Done, and the ring commit then
// marks it left, after which it stops counting as a member.
func (m *Membership) Leave() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	self, ok := m.state.Member(m.cfg.NodeID)
	if !ok {
		return ErrNotMember
	}
	switch self.Status {
	case StatusLeaving, StatusLeft:
		return nil
	case StatusRemoved:
		return ErrNotMember
	}
	if t := m.state.Target(); len(t) == 1 && t[0] == m.cfg.NodeID {
		return ErrLastMember
	}
	self.Status = StatusLeaving
	self.Version++
	self.Handoff = Handoff{}
	return m.commitLocked(m.state.With(self), false)
}

// Remove takes a member out of the ring for good (an operator's decision
// that it is dead); its replicas are rebuilt on the new owners.
func (m *Membership) Remove(id string) error {
	if id == m.cfg.NodeID {
		return ErrSelf
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.staged != nil {
		return ErrJoinInProgress // the join would drop the removal
	}
	mb, ok := m.state.Member(id)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownMember, id)
	}
	if mb.Status == StatusRemoved || mb.Status == StatusLeft {
		return nil
	}
	mb.Status = StatusRemoved
	mb.Version++
	mb.Handoff = Handoff{}
	return m.commitLocked(m.state.With(mb), false)
}

// ReportHandoff publishes this node's ownership-handoff progress. A report
// equal to the last one is not re-gossiped.
func (m *Membership) ReportHandoff(h Handoff) {
	m.mu.Lock()
	defer m.mu.Unlock()
	self, ok := m.state.Member(m.cfg.NodeID)
	if !ok || self.Status == StatusLeft || self.Status == StatusRemoved || self.Handoff == h {
		return
	}
	self.Handoff = h
	self.Version++
	if err := m.commitLocked(m.state.With(self), false); err != nil {
		m.log.Error("saving handoff progress", zap.Error(err))
	}
}
