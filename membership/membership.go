package membership

import (
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// Liveness is what memberlist's failure detector says about a node.
type Liveness string

const (
	Alive   Liveness = "alive"
	Suspect Liveness = "suspect"
	Dead    Liveness = "dead"
)

// Config configures a Membership. Zero durations and counts take
// memberlist's DefaultLANConfig values: they are conservative but measured
// by hashicorp for LANs; tests on loopback pass faster values instead of
// this package changing the defaults.
//
// GossipKeys encrypt and authenticate gossip (memberlist's keyring): the
// first encrypts, every one decrypts, so keys rotate by a three-step
// rolling restart (docs/operations.md). None: gossip in the clear.
type Config struct {
	NodeID        string   // unique in the cluster; memberlist's node name
	BindAddr      string   // gossip host:port (TCP and UDP); port 0 picks one
	AdvertiseAddr string   // host peers dial, when BindAddr's host is 0.0.0.0; "" = memberlist's choice
	HTTPAddr      string   // HTTP host:port peers use for RPC
	DataDir       string   // holds ring.state; "" keeps the state in memory only (tests)
	Partitions    int      // default DefaultPartitions; must match the cluster
	GossipKeys    [][]byte // AES keys (16, 24 or 32 bytes); members without one are not admitted; see above
	Join          []string // gossip host:port of existing members

	ProbeInterval    time.Duration // LAN default 1s
	ProbeTimeout     time.Duration // LAN default 500ms
	GossipInterval   time.Duration // LAN default 200ms
	SuspicionMult    int           // LAN default 4
	PushPullInterval time.Duration // LAN default 30s: a backstop, changes are broadcast
	JoinTimeout      time.Duration // how long Join keeps retrying; default 10s
	// RejoinInterval is how often a node that cannot see some ring member
	// retries gossip-joining it (after a restart of the whole cluster, or a
	// healed partition memberlist has given up on); default 5s.
	RejoinInterval time.Duration
	Logger         *zap.Logger
}

// Errors callers branch on.
var (
	ErrUnknownMember = errors.New("membership: unknown member")
	ErrSelf          = errors.New("membership: cannot remove this node; use leave")
	ErrLastMember    = errors.New("membership: the last member cannot leave")
	ErrNotMember     = errors.New("membership: this node is not a member")
	ErrLeft          = errors.New("membership: this node has left; restart it to join again")
	// ErrJoinSelf: a join address is this node's own gossip address.
	ErrJoinSelf = errors.New("membership: cannot join this node itself")
	// ErrJoinInProgress: another Join of this node has not returned yet.
	ErrJoinInProgress = errors.New("membership: a join of this node is already in progress")
)

// stateFile is the ring state's name inside DataDir.
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
	mlLeft    atomic.Bool
	closed    atomic.Bool // set by Shutdown: memberlist's stragglers log nothing
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

func (c *Config) fill() error {
	if c.NodeID == "" {
		return errors.New("membership: node id is empty")
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		return fmt.Errorf("membership: partitions %d out of range 1..%d", c.Partitions, MaxPartitions)
	}
	if c.BindAddr == "" {
		c.BindAddr = "127.0.0.1:7946"
	}
	if _, _, err := splitHostPort(c.BindAddr); err != nil {
		return fmt.Errorf("membership: gossip address %q: %w", c.BindAddr, err)
	}
	for i, k := range c.GossipKeys {
		switch len(k) {
		case 16, 24, 32:
		default:
			return fmt.Errorf("membership: gossip key %d of %d is %d bytes, want 16, 24 or 32", i+1, len(c.GossipKeys), len(k))
		}
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		// memberlist advertises an IP only; a host name (a container's or a
		// pod's) is resolved once, here, so --advertise-addr accepts both.
		ips, err := net.LookupIP(c.AdvertiseAddr)
		if err != nil || len(ips) == 0 {
			return fmt.Errorf("membership: advertise address %q is not an IP and does not resolve: %v", c.AdvertiseAddr, err)
		}
		c.AdvertiseAddr = ips[0].String()
		for _, ip := range ips {
			if ip.To4() != nil {
				c.AdvertiseAddr = ip.String()
				break
			}
		}
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = 10 * time.Second
	}
	if c.RejoinInterval <= 0 {
		c.RejoinInterval = 5 * time.Second
	}
	return nil
}

// gossipListeners are this node's gossip address as bound (the host of
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

func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, port, nil
}

func (m *Membership) memberlistConfig() *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.Name = m.cfg.NodeID
	host, port, _ := splitHostPort(m.cfg.BindAddr) // checked by fill
	c.BindAddr, c.BindPort = host, port
	c.AdvertiseAddr, c.AdvertisePort = m.cfg.AdvertiseAddr, port
	if m.cfg.ProbeInterval > 0 {
		c.ProbeInterval = m.cfg.ProbeInterval
	}
	if m.cfg.ProbeTimeout > 0 {
		c.ProbeTimeout = m.cfg.ProbeTimeout
	}
	if m.cfg.GossipInterval > 0 {
		c.GossipInterval = m.cfg.GossipInterval
	}
	if m.cfg.SuspicionMult > 0 {
		c.SuspicionMult = m.cfg.SuspicionMult
	}
	if m.cfg.PushPullInterval > 0 {
		c.PushPullInterval = m.cfg.PushPullInterval
	}
	// A node id keeps its identity across restarts but not necessarily its
	// address (a rescheduled container); without a reclaim time memberlist
	// would refuse the new address until the old entry is reaped (30s).
	c.DeadNodeReclaimTime = 10 * time.Second
	if len(m.cfg.GossipKeys) > 0 {
		// Sizes are checked by fill, the only error NewKeyring has.
		c.Keyring, _ = memberlist.NewKeyring(m.cfg.GossipKeys[1:], m.cfg.GossipKeys[0])
	}
	d := delegate{m}
	c.Delegate, c.Alive, c.Merge, c.Ping, c.Events = d, d, d, d, d
	c.Logger = log.New(zapWriter{log: m.log.Named("memberlist"), onSuspect: m.markSuspect, closed: &m.closed, refused: &m.refusedLog}, "", 0)
	return c
}

// markJoining sets self joining and resets the committed ring to epoch 0, so
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
		if err := m.ml.Load().Shutdown(); err != nil {
			m.shutdownErr = fmt.Errorf("membership: shut down gossip: %w", err)
		}
		m.closed.Store(true)
	})
	return m.shutdownErr
}
