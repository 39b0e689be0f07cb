package membership

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

const stateFile = "ring.state"

// Membership is one node's view of the cluster. Its methods are safe for
// concurrent use.
type Membership struct {
	cfg   Config
	log   *zap.Logger
	meta  []byte
	queue *memberlist.TransmitLimitedQueue
	ml    atomic.Pointer[memberlist.Memberlist]

	// mu guards state, subs and the persisted file: a state change, its
	// fsync and its notification happen in one critical section, so a
	// reader of State never sees a ring that a crash could undo.
	mu        sync.Mutex
	state     State
	subs      map[uint64]chan struct{}
	nextSub   uint64
	placement atomic.Pointer[Placement]
	// staged is the state a join attempt shows its peers (this node
	// joining, no committed ring) while state, the one it serves and
	// saves, stays as it was until the attempt reaches the cluster; nil
	// when no attempt runs (see Join). heard: another node's state was
	// merged into staged; echoed: the staged state came back unchanged,
	// as gossip with this node itself sends it.
	staged *State
	heard  bool
	echoed bool
	// discarded is the staged state of the last join attempt that
	// failed, for the late arrivals of what it showed (see mergeRemote).
	discarded *State
	// stopped is set by Shutdown: a merge of gossip that memberlist
	// delivers after it (its stream handlers outlive Shutdown) changes
	// nothing, and above all writes no ring state into a data directory
	// the node has let go of.
	stopped bool
	mlLeft  atomic.Bool
	closed  atomic.Bool // set by Shutdown: memberlist's stragglers log nothing
	// refusedLog spaces the warnings about gossip no key decrypts.
	refusedLog logLimiter

	suspectMu sync.Mutex
	suspects  map[string]bool // peers whose last probe by this node failed

	leaveSignal chan struct{} // run loop: self may have become left
	pushSignal  chan struct{} // run loop: send a state too large to broadcast
	stop        chan struct{}
	wg          sync.WaitGroup
	shutdown    sync.Once
	shutdownErr error
}

// New loads <DataDir>/ring.state, starts memberlist and joins: a saved state
// rejoins its known members keeping its identity and ring; otherwise with
// cfg.Join it joins that cluster as Join does (an error if no address
// answers within JoinTimeout, and then nothing is saved); otherwise, or if
// every cfg.Join address is this node's own, it founds a one-node cluster.
func New(cfg Config) (*Membership, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	m := &Membership{
		cfg:         cfg,
		log:         cfg.Logger, // the node's logger already carries its id
		meta:        Meta{ID: cfg.NodeID, HTTPAddr: cfg.HTTPAddr, Partitions: cfg.Partitions}.Encode(),
		subs:        make(map[uint64]chan struct{}),
		suspects:    make(map[string]bool),
		leaveSignal: make(chan struct{}, 1),
		pushSignal:  make(chan struct{}, 1),
		stop:        make(chan struct{}),
	}
	if len(m.meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("membership: node id and http address too long for memberlist meta (%d > %d bytes)", len(m.meta), memberlist.MetaMaxSize)
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("membership: create data dir: %w", err)
		}
	}
	saved, haveSaved, err := loadState(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if haveSaved && saved.Partitions != cfg.Partitions {
		return nil, fmt.Errorf("membership: %s has %d partitions, configured %d; the partition count cannot change",
			statePath(cfg.DataDir), saved.Partitions, cfg.Partitions)
	}
	self, selfKnown := saved.Member(cfg.NodeID)
	restart := haveSaved && selfKnown && self.Status != StatusLeft && self.Status != StatusRemoved
	if restart {
		m.state = saved
	} else {
		m.state = State{Partitions: cfg.Partitions}
		if haveSaved {
			// Left or removed before: keep what we knew of others (their
			// addresses help a rejoin) but our own entry starts over.
			m.state = saved
		}
	}
	m.queue = &memberlist.TransmitLimitedQueue{
		NumNodes: func() int {
			if ml := m.ml.Load(); ml != nil {
				return ml.NumMembers()
			}
			return 1
		},
		RetransmitMult: memberlist.DefaultLANConfig().RetransmitMult,
	}

	ml, err := memberlist.Create(m.memberlistConfig())
	if err != nil {
		return nil, fmt.Errorf("membership: start gossip on %s: %w", cfg.BindAddr, err)
	}
	m.ml.Store(ml)
	gossipAddr := ml.LocalNode().Address()
	var join []string // the --join addresses that are not this node
	if !restart {
		join = m.others(cfg.Join)
	}

	m.mu.Lock()
	self.ID = cfg.NodeID
	switch {
	case restart:
		if self.GossipAddr != gossipAddr || self.HTTPAddr != cfg.HTTPAddr {
			self.GossipAddr, self.HTTPAddr = gossipAddr, cfg.HTTPAddr
			self.Version++
			m.state = m.state.With(self)
		}
		m.log.Info("restarted with saved ring state", zap.Uint64("epoch", m.state.Committed.Epoch),
			zap.Stringer("status", self.Status))
		err = m.commitLocked(m.state, true)
	case len(join) > 0:
		// Staged as by Join: nothing is saved before the cluster has
		// answered, so a node that cannot reach it exits as it was (no
		// ring.state, or the one it left with) and its next start tries
		// the same join again.
		m.updatePlacement()
		m.stageJoinLocked(markJoining(m.state, self, gossipAddr, cfg.HTTPAddr))
	default:
		// No --join, or a --join that names only this node: the seed of a
		// deployment where every node gets the same seed list (a
		// StatefulSet's pod 0) founds the cluster the others join.
		self = Member{ID: cfg.NodeID, GossipAddr: gossipAddr, HTTPAddr: cfg.HTTPAddr, Status: StatusValid, Version: self.Version + 1}
		m.state = State{Partitions: cfg.Partitions, Members: []Member{self}, Committed: Committed{Epoch: 1, Members: []string{cfg.NodeID}}}
		m.log.Info("founded a one-node cluster")
		err = m.commitLocked(m.state, true)
	}
	m.mu.Unlock()
	if err != nil {
		_ = ml.Shutdown()
		m.closed.Store(true)
		return nil, err
	}

	if restart {
		addrs := append(m.knownGossipAddrs(), cfg.Join...)
		if len(addrs) > 0 {
			// Best effort: after a whole-cluster restart the first node up
			// finds nobody; the others join it, and the run loop retries.
			if n, err := ml.Join(addrs); err != nil && n == 0 {
				m.log.Warn("rejoin after restart found no member yet; will retry", zap.Strings("addrs", addrs), zap.Error(err))
			}
		}
	} else if len(join) > 0 {
		if err := m.finishJoin(join, m.gossipJoin(join)); err != nil {
			_ = ml.Shutdown()
			m.closed.Store(true)
			return nil, err
		}
	}
	m.wg.Add(1)
	go m.run()
	return m, nil
}

// BindAddr, possibly 0.0.0.0, with the port it got) and as advertised.
func (m *Membership) gossipListeners() []string {
	advertised := m.ml.Load().LocalNode().Address()
	out := []string{advertised}
	if host, _, err := net.SplitHostPort(m.cfg.BindAddr); err == nil {
		if _, port, err := net.SplitHostPort(advertised); err == nil {
			out = append(out, net.JoinHostPort(host, port))
		}
	}
	return out
}

// others is addrs without the addresses that reach this node's own gossip
// listener (see IsLocalAddr): joining those would only reach this node. An
// address that does not resolve counts as another node: joining it fails
// with a clear error rather than founding a cluster by mistake.
func (m *Membership) others(addrs []string) []string {
	self := m.gossipListeners()
	var out []string
	for _, a := range addrs {
		if !IsLocalAddr(a, self...) {
			out = append(out, a)
		}
	}
	return out
}

// the cluster's ring wins the first merge.
func markJoining(s State, self Member, gossipAddr, httpAddr string) State {
	self.GossipAddr, self.HTTPAddr = gossipAddr, httpAddr
	self.Status = StatusJoining
	self.Version++
	self.Handoff = Handoff{}
	s = s.With(self)
	s.Committed = Committed{}
	return s
}

// gossipJoin contacts addrs until one answers or JoinTimeout passes: nodes
// of a new cluster are often started together, seed last.
func (m *Membership) gossipJoin(addrs []string) error {
	deadline := time.Now().Add(m.cfg.JoinTimeout)
	backoff := 100 * time.Millisecond
	for {
		n, err := m.ml.Load().Join(addrs)
		if n > 0 {
			m.log.Info("joined gossip", zap.Strings("addrs", addrs), zap.Int("reached", n))
			return nil
		}
		if time.Now().Add(backoff).After(deadline) {
			return fmt.Errorf("membership: join %v: no member reachable within %s: %w", addrs, m.cfg.JoinTimeout, err)
		}
		select {
		case <-time.After(backoff):
		case <-m.stop:
			return fmt.Errorf("membership: join %v: shut down", addrs)
		}
		backoff = min(2*backoff, time.Second)
	}
}

// knownGossipAddrs returns the gossip addresses of the ring members other
// than self that memberlist does not currently see alive.
func (m *Membership) knownGossipAddrs() []string {
	m.mu.Lock()
	members := slices.Clone(m.state.Members)
	m.mu.Unlock()
	var addrs []string
	for _, mb := range members {
		if mb.ID == m.cfg.NodeID || mb.GossipAddr == "" || mb.Status == StatusLeft || mb.Status == StatusRemoved {
			continue
		}
		if m.Liveness(mb.ID) == Dead {
			addrs = append(addrs, mb.GossipAddr)
		}
	}
	return addrs
}

// run owns the background work: telling memberlist we left once the ring
// says so, and re-gossiping with ring members memberlist has lost.
func (m *Membership) run() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.RejoinInterval)
	defer t.Stop()
	var tick int
	for {
		select {
		case <-m.stop:
			return
		case <-m.leaveSignal:
			m.maybeLeaveGossip()
		case <-m.pushSignal:
			m.pushLargeState()
		case <-t.C:
			if m.mlLeft.Load() {
				continue
			}
			// One address per tick: a dial to an unreachable host can block
			// for memberlist's TCPTimeout, and Shutdown waits for this loop.
			if addrs := m.knownGossipAddrs(); len(addrs) > 0 {
				addr := addrs[tick%len(addrs)]
				tick++
				if n, err := m.ml.Load().Join([]string{addr}); n > 0 {
					m.log.Info("rejoined a ring member", zap.String("addr", addr))
				} else {
					m.log.Debug("rejoin failed", zap.String("addr", addr), zap.Error(err))
				}
			}
		}
	}
}

// maxBroadcast is the largest state sent as a memberlist broadcast: they
// travel in UDP packets of at most UDPBufferSize (1400) bytes with other
// messages, and one that never fits would never be sent. From about 15
// members on, the state is larger and goes by pushLargeState instead.
const maxBroadcast = 1100

// pushFanout is how many random peers receive a state too large to
// broadcast; each re-sends what it learns, so it spreads epidemically.
const pushFanout = 3

// pushLargeState sends the current state over TCP (memberlist's reliable
// user message, delivered to the peer's NotifyMsg) to a few random peers.
func (m *Membership) pushLargeState() {
	ml := m.ml.Load()
	if m.mlLeft.Load() {
		return
	}
	var peers []*memberlist.Node
	for _, n := range ml.Members() {
		if n.Name == m.cfg.NodeID {
			continue
		}
		// memberlist rewrites its Node structs (address, port) under a
		// lock Members does not leave to the caller, so read only the
		// name, which never changes, and dial the ring state's address.
		mb, ok := m.Member(n.Name)
		host, port, err := splitHostPort(mb.GossipAddr)
		ip := net.ParseIP(host)
		if !ok || err != nil || ip == nil {
			continue
		}
		peers = append(peers, &memberlist.Node{Name: n.Name, Addr: ip, Port: uint16(port)})
	}
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	msg := m.gossipState()
	for _, p := range peers[:min(pushFanout, len(peers))] {
		if err := ml.SendReliable(p, msg); err != nil {
			m.log.Debug("sending ring state", zap.String("peer", p.Name), zap.Error(err))
		}
	}
}

func (m *Membership) maybeLeaveGossip() {
	if m.mlLeft.Load() {
		return
	}
	self, _ := m.Member(m.cfg.NodeID)
	if self.Status != StatusLeft && self.Status != StatusRemoved {
		return
	}
	m.mlLeft.Store(true)
	// Give peers a moment to learn we are gone before the sockets close;
	// they already hold the ring without us, this only speeds up liveness.
	if err := m.ml.Load().Leave(m.cfg.JoinTimeout); err != nil {
		m.log.Warn("gossip leave not acknowledged", zap.Error(err))
	}
	m.log.Info("left the cluster", zap.Stringer("status", self.Status))
}

// mergeRemote merges a peer's encoded state into ours.
func (m *Membership) mergeRemote(b []byte, via string) {
	remote, err := DecodeState(b)
	if err != nil {
		m.log.Warn("dropping undecodable ring state", zap.String("via", via), zap.Error(err))
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if remote.Partitions != m.state.Partitions {
		m.log.Error("refusing ring state with a different partition count", zap.String("via", via),
			zap.Int("remote_partitions", remote.Partitions), zap.Int("partitions", m.state.Partitions))
		return
	}
	if m.staged != nil {
		// A join attempt: what the cluster says goes to the staged
		// state; the one in force waits for the attempt's outcome.
		if remote.Equal(*m.staged) {
			m.echoed = true // any other node's state has its own entry
			return
		}
		merged := Merge(*m.staged, remote)
		m.staged, m.heard = &merged, true
		return
	}
	if d := m.discarded; d != nil {
		// What a failed join attempt showed may still arrive: gossip
		// with this node itself answers after the attempt has ended,
		// and must not make this node joining. A member that holds the
		// staged entry took the join in after all (its answer was lost):
		// follow it into its cluster, as a join that succeeded would,
		// rather than show it this node's own ring.
		mine, _ := remote.Member(m.cfg.NodeID)
		staged, _ := d.Member(m.cfg.NodeID)
		switch {
		case remote.Equal(*d):
			return
		case mine == staged && remote.Committed.Epoch > 0:
			m.log.Info("a failed join reached the cluster after all; joining it", zap.String("via", via))
			m.discarded = nil
			if err := m.commitLocked(Merge(*d, remote), false); err != nil {
				m.log.Error("saving merged ring state", zap.Error(err))
			}
			return
		}
	}
	// Only what we learned is worth re-broadcasting: if the merge changes
	// our state, peers that gossip with us but not with the sender may not
	// have it yet (epidemic spread rather than sender-only retransmits).
	if err := m.commitLocked(Merge(m.state, remote), false); err != nil {
		m.log.Error("saving merged ring state", zap.Error(err))
	}
}

// commitLocked runs TryCommit on next and, if it differs from the current
// state (or force), makes it current: placement, persist, broadcast,
// subscribers. m.mu must be held.
func (m *Membership) commitLocked(next State, force bool) error {
	if m.stopped {
		return nil
	}
	next, _ = next.TryCommit()
	if !force && next.Equal(m.state) {
		return nil
	}
	prev := m.state
	m.state = next
	m.updatePlacement()
	m.logChanges(prev, next)
	// Saved before anyone hears of it: a peer must never hold a version of
	// our own entry that a crash would make us reissue with other content.
	saveErr := saveState(m.cfg.DataDir, next)
	switch enc := next.Encode(); {
	case m.staged != nil:
		// A join attempt shows peers the staged state only (see Join).
	case len(enc) <= maxBroadcast:
		m.queue.QueueBroadcast(stateBroadcast(enc))
	default:
		select {
		case m.pushSignal <- struct{}{}:
		default:
		}
	}
	for _, ch := range m.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	if self, ok := next.Member(m.cfg.NodeID); ok && (self.Status == StatusLeft || self.Status == StatusRemoved) {
		select {
		case m.leaveSignal <- struct{}{}:
		default:
		}
	}
	return saveErr
}

func (m *Membership) updatePlacement() {
	old := m.placement.Load()
	p := Placement{}
	if old != nil && slices.Equal(old.Committed.Members(), m.state.Committed.Members) {
		p.Committed = old.Committed
	} else {
		p.Committed = NewRing(m.state.Committed.Members, m.state.Partitions)
	}
	if m.state.Pending() {
		target := m.state.Target()
		if old != nil && old.Target != nil && slices.Equal(old.Target.Members(), target) {
			p.Target = old.Target
		} else {
			p.Target = NewRing(target, m.state.Partitions)
		}
	}
	m.placement.Store(&p)
}

// logChanges logs state changes operators care about: ring commits and
// member status changes.
func (m *Membership) logChanges(prev, next State) {
	if prev.Committed.Epoch != next.Committed.Epoch {
		m.log.Info("ring committed", zap.Uint64("epoch", next.Committed.Epoch), zap.Strings("members", next.Committed.Members))
	}
	for _, nm := range next.Members {
		pm, ok := prev.Member(nm.ID)
		if !ok || pm.Status != nm.Status {
			m.log.Info("member status", zap.String("member", nm.ID), zap.Stringer("status", nm.Status))
		}
	}
}

// gossipState is the encoded state peers are shown: the staged one during
// a join attempt, else the one in force.
func (m *Membership) gossipState() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.staged != nil {
		return m.staged.Encode()
	}
	return m.state.Encode()
}

// Placement returns the current placement snapshot.
func (m *Membership) Placement() Placement {
	if p := m.placement.Load(); p != nil {
		return *p
	}
	return Placement{Committed: NewRing(nil, m.cfg.Partitions)}
}

// State returns a copy of the current ring state.
func (m *Membership) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state.clone()
}

// Self returns this node's id.
func (m *Membership) Self() string { return m.cfg.NodeID }

// Member returns id's entry in the ring state.
func (m *Membership) Member(id string) (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state.Member(id)
}

// Subscribe returns a channel that receives a signal after every state
// change; signals coalesce (capacity one), so a slow reader re-reads State
// and misses nothing. The func unsubscribes.
func (m *Membership) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	id := m.nextSub
	m.nextSub++
	m.subs[id] = ch
	m.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			m.mu.Lock()
			delete(m.subs, id)
			m.mu.Unlock()
		})
	}
}

// Ready reports whether this node can serve: it knows a committed ring (a
// joiner once it has heard from its cluster) and has not left or been
// removed.
func (m *Membership) Ready() bool {
	if m.mlLeft.Load() {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	self, ok := m.state.Member(m.cfg.NodeID)
	if !ok || self.Status == StatusLeft || self.Status == StatusRemoved {
		return false
	}
	return m.state.Committed.Epoch > 0
}

// Shutdown stops gossip without announcing a departure: a restart is not a
// leave, peers see the node dead and the ring keeps it.
func (m *Membership) Shutdown() error {
	m.shutdown.Do(func() {
		close(m.stop)
		m.wg.Wait()
		// Taking mu waits for a merge in progress; none commits after.
		m.mu.Lock()
		m.stopped = true
		m.mu.Unlock()
		if err := m.ml.Load().Shutdown(); err != nil {
			m.shutdownErr = fmt.Errorf("membership: shut down gossip: %w", err)
		}
		m.closed.Store(true)
	})
	return m.shutdownErr
}
