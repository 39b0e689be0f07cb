package membership

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// deadAddr is a gossip address nothing listens on: a join of it is
// refused at once, attempt after attempt, until JoinTimeout.
const deadAddr = "127.0.0.1:1"

func readRingState(t *testing.T, cfg Config) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, stateFile))
	if err != nil {
		t.Fatalf("reading ring.state: %v", err)
	}
	return b
}

// isSoloRing reports whether s is the one-node ring of id: id valid and
// alone in a committed ring of epoch > 0.
func isSoloRing(s State, id string) bool {
	self, _ := s.Member(id)
	return s.Committed.Epoch > 0 && slices.Equal(s.Committed.Members, []string{id}) && self.Status == StatusValid && !s.Pending()
}

// TestFailedJoinLeavesTheNodeAsItWas is issue 16: a founded one-node
// cluster asked to join an address that never answers keeps serving its
// own ring during the attempt, and afterwards is exactly as it was, in
// memory, in ring.state and after a restart; a later join of a real
// cluster still works.
func TestFailedJoinLeavesTheNodeAsItWas(t *testing.T) {
	cfg := fastConfig(t, "n1")
	cfg.JoinTimeout = time.Second
	m := start(t, cfg)
	before := m.State()
	if !isSoloRing(before, "n1") || !m.Ready() {
		t.Fatalf("a node started without Join: %s, ready %v; want a ready one-node ring", describe([]*Membership{m}), m.Ready())
	}
	file := readRingState(t, cfg)

	done := make(chan error, 1)
	go func() { done <- m.Join([]string{deadAddr}) }()
	var err error
	sawStaged := false
	for waiting := true; waiting; {
		select {
		case err = <-done:
			waiting = false
		case <-time.After(10 * time.Millisecond):
			// During the attempt the node serves its own ring, while
			// peers would be shown it joining with no ring of its own.
			if !m.Ready() || !isSoloRing(m.State(), "n1") {
				t.Errorf("during the join attempt: ready %v, %s; want still serving its ring", m.Ready(), describe([]*Membership{m}))
			}
			shown, derr := DecodeState(delegate{m}.LocalState(false))
			if derr != nil {
				t.Fatalf("LocalState during the join: %v", derr)
			}
			self, _ := shown.Member("n1")
			switch {
			case self.Status == StatusJoining && shown.Committed.Epoch == 0:
				sawStaged = true
			case shown.Equal(before): // the attempt has just ended
			default:
				t.Errorf("during the join attempt peers are shown %+v, want n1 joining at epoch 0", shown)
			}
		}
	}
	if err == nil || errors.Is(err, ErrJoinSelf) {
		t.Fatalf("Join(%s) = %v, want an error saying no member answered", deadAddr, err)
	}
	if !sawStaged {
		t.Errorf("never saw the staged state during a join attempt of %s", cfg.JoinTimeout)
	}
	if after := m.State(); !after.Equal(before) || !m.Ready() {
		t.Fatalf("after a failed join: ready %v, %s; want the state from before", m.Ready(), describe([]*Membership{m}))
	}
	if got := (delegate{m}).LocalState(false); !bytes.Equal(got, before.Encode()) {
		t.Errorf("after a failed join peers are shown another state than the one in force")
	}
	if got := readRingState(t, cfg); !bytes.Equal(got, file) {
		t.Errorf("a failed join rewrote ring.state")
	}

	// A restart finds the same ring.
	cfg.BindAddr = gossipAddr(m)
	if err := m.Shutdown(); err != nil {
		t.Fatal(err)
	}
	m = start(t, cfg)
	if after := m.State(); !after.Equal(before) || !m.Ready() {
		t.Fatalf("restarted after a failed join: ready %v, %s; want the state from before", m.Ready(), describe([]*Membership{m}))
	}

	// Joining a real cluster still works: n1 joins n2's.
	n2 := start(t, fastConfig(t, "n2"))
	if err := m.Join([]string{gossipAddr(n2)}); err != nil {
		t.Fatalf("n1 joining n2 after a failed join: %v", err)
	}
	if self, _ := m.Member("n1"); self.Status != StatusJoining || !m.Ready() {
		t.Fatalf("n1 right after joining n2: status %s, ready %v; want joining and ready (it holds n2's ring)", self.Status, m.Ready())
	}
	eventually(t, 10*time.Second, converged([]*Membership{m, n2}, []string{"n1", "n2"}))
	saved, ok, err := loadState(cfg.DataDir)
	if err != nil || !ok || !slices.Equal(saved.Committed.Members, []string{"n1", "n2"}) {
		t.Fatalf("ring.state after the join: %+v, %v, %v; want the ring [n1 n2]", saved.Committed, ok, err)
	}
}

// TestJoinRefusesItsOwnGossipAddress: gossip with this node itself would
// answer, and the node would wait forever for a ring from itself.
func TestJoinRefusesItsOwnGossipAddress(t *testing.T) {
	cfg := fastConfig(t, "n1")
	m := start(t, cfg)
	before := m.State()
	_, port, err := net.SplitHostPort(gossipAddr(m))
	if err != nil {
		t.Fatal(err)
	}
	for _, addrs := range [][]string{
		{gossipAddr(m)},
		{"localhost:" + port},
		{"0.0.0.0:" + port},
		{"[::]:" + port},
		{deadAddr, "127.0.0.1:" + port}, // one of several
	} {
		err := m.Join(addrs)
		if !errors.Is(err, ErrJoinSelf) {
			t.Errorf("Join(%v) = %v, want ErrJoinSelf", addrs, err)
		}
	}
	if after := m.State(); !after.Equal(before) || !m.Ready() {
		t.Fatalf("after refused self-joins: %s, ready %v; want the state from before", describe([]*Membership{m}), m.Ready())
	}

	// An address IsLocalAddr does not recognise is caught by its answer:
	// gossip with this node itself only sends back the staged state.
	self, _ := m.Member("n1")
	m.mu.Lock()
	m.stageJoinLocked(markJoining(m.state, self, self.GossipAddr, cfg.HTTPAddr))
	m.mu.Unlock()
	err = m.finishJoin([]string{self.GossipAddr}, m.gossipJoin([]string{self.GossipAddr}))
	if !errors.Is(err, ErrJoinSelf) {
		t.Errorf("a join that reached only this node = %v, want ErrJoinSelf", err)
	}
	// Its own gossip answers late too (memberlist merges the pushed
	// state after it has answered): that echo changes nothing either.
	m.mergeRemote(markJoining(before, self, self.GossipAddr, cfg.HTTPAddr).Encode(), "test")
	if after := m.State(); !after.Equal(before) || !m.Ready() {
		t.Fatalf("after a join that reached only itself: %s, ready %v; want the state from before", describe([]*Membership{m}), m.Ready())
	}
}

// TestFailedJoinThatReachedTheClusterAfterAllFollowsIt: a member that took
// the staged join in although its answer never came back later gossips a
// state listing this node joining; the node then joins that cluster, as
// if the join had succeeded, instead of showing it its own ring (which a
// merge could make the cluster's).
func TestFailedJoinThatReachedTheClusterAfterAllFollowsIt(t *testing.T) {
	cfg := fastConfig(t, "n1")
	cfg.JoinTimeout = 300 * time.Millisecond
	m := start(t, cfg)
	before := m.State()
	if err := m.Join([]string{deadAddr}); err == nil {
		t.Fatalf("Join(%s) succeeded", deadAddr)
	}
	self, _ := before.Member("n1")
	staged := markJoining(before, self, self.GossipAddr, cfg.HTTPAddr)
	joiner, _ := staged.Member("n1")

	// A member of cluster [x] that holds n1's staged entry.
	other := State{Partitions: cfg.Partitions, Members: []Member{{ID: "x", GossipAddr: deadAddr, HTTPAddr: deadAddr, Status: StatusValid, Version: 1}},
		Committed: Committed{Epoch: 1, Members: []string{"x"}}}
	took := other.With(joiner)
	m.mergeRemote(took.Encode(), "test")
	s := m.State()
	if me, _ := s.Member("n1"); me.Status != StatusJoining || !slices.Equal(s.Committed.Members, []string{"x"}) || !slices.Equal(s.Target(), []string{"n1", "x"}) {
		t.Fatalf("after the cluster showed it holds n1's staged join: %s; want n1 joining the ring [x]", describe([]*Membership{m}))
	}
}

// TestFailedStartupJoinSavesNothing: a node started with a --join that
// never answers exits without a ring.state, so its next start joins
// afresh instead of waiting, not ready, for a ring it never saw.
func TestFailedStartupJoinSavesNothing(t *testing.T) {
	n1 := start(t, fastConfig(t, "n1"))
	cfg := fastConfig(t, "n2")
	cfg.Join = []string{deadAddr}
	cfg.JoinTimeout = 300 * time.Millisecond
	if m, err := New(cfg); err == nil {
		_ = m.Shutdown()
		t.Fatalf("started with --join %s that nothing answers", deadAddr)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, stateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed startup join left ring.state behind (stat: %v)", err)
	}
	cfg.Join = []string{deadAddr, gossipAddr(n1)}
	n2 := start(t, cfg)
	eventually(t, 10*time.Second, converged([]*Membership{n1, n2}, []string{"n1", "n2"}))
}

func TestIsLocalAddr(t *testing.T) {
	var iface string // an address of a non-loopback interface, if any
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				iface = n.IP.String()
				break
			}
		}
	}
	cases := []struct {
		addr      string
		listeners []string
		want      bool
	}{
		{"127.0.0.1:7946", []string{"127.0.0.1:7946"}, true},
		{"localhost:7946", []string{"127.0.0.1:7946"}, true},
		{"0.0.0.0:7946", []string{"127.0.0.1:7946"}, true},
		{"[::]:7946", []string{"127.0.0.1:7946"}, true},
		{":7946", []string{"127.0.0.1:7946"}, true},
		{"127.0.0.1:7946", []string{"localhost:7946"}, true},
		{"127.0.0.1:7947", []string{"127.0.0.1:7946"}, false},
		{"127.0.0.2:7946", []string{"127.0.0.1:7946"}, false},
		{"192.0.2.1:7946", []string{"127.0.0.1:7946"}, false},
		{"no-such-host.invalid:7946", []string{"127.0.0.1:7946"}, false},
		{"garbage", []string{"127.0.0.1:7946"}, false},
		{"127.0.0.1:7946", []string{"garbage"}, false},
		// Bound to every interface, advertised as 10.1.2.3.
		{"127.0.0.2:8080", []string{"0.0.0.0:8080", "10.1.2.3:8080"}, true},
		{"localhost:8080", []string{"[::]:8080"}, true},
		{"10.1.2.3:8080", []string{"0.0.0.0:8080", "10.1.2.3:8080"}, true},
		{"192.0.2.1:8080", []string{"0.0.0.0:8080", "10.1.2.3:8080"}, false},
		{"127.0.0.1:8081", []string{"0.0.0.0:8080"}, false},
	}
	if iface != "" {
		cases = append(cases, struct {
			addr      string
			listeners []string
			want      bool
		}{net.JoinHostPort(iface, "8080"), []string{":8080"}, true})
	}
	for _, c := range cases {
		if got := IsLocalAddr(c.addr, c.listeners...); got != c.want {
			t.Errorf("IsLocalAddr(%q, %q) = %v, want %v", c.addr, c.listeners, got, c.want)
		}
	}
}
