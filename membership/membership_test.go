package membership

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fastConfig is a loopback configuration: probes and gossip several times
// faster than the LAN defaults so a test cluster settles in well under a
// second, yet slack enough that -race on two busy cores does not make live
// nodes miss probes.
func fastConfig(t *testing.T, id string) Config {
	return Config{
		NodeID:           id,
		BindAddr:         "127.0.0.1:0",
		HTTPAddr:         "127.0.0.1:1" + id[len(id)-1:],
		DataDir:          filepath.Join(t.TempDir(), id),
		Partitions:       64,
		ProbeInterval:    150 * time.Millisecond,
		ProbeTimeout:     100 * time.Millisecond,
		GossipInterval:   20 * time.Millisecond,
		SuspicionMult:    3,
		PushPullInterval: 500 * time.Millisecond,
		JoinTimeout:      3 * time.Second,
		RejoinInterval:   300 * time.Millisecond,
		Logger:           zaptest.NewLogger(t).Named(id),
	}
}

func start(t *testing.T, cfg Config) *Membership {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

func gossipAddr(m *Membership) string {
	self, _ := m.Member(m.Self())
	return self.GossipAddr
}

// eventually polls cond until it holds or the deadline passes; cond returns
// a description of what it saw, printed on failure.
func eventually(t *testing.T, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reached within %s: %s", within, saw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// handOff plays the handoff worker of the given nodes: when a transition
// is pending, report it done.
func handOff(nodes ...*Membership) {
	for _, m := range nodes {
		if s := m.State(); s.Pending() {
			m.ReportHandoff(Handoff{Target: s.TargetFingerprint(), Done: true, Sent: 1, Total: 1})
		}
	}
}

func describe(nodes []*Membership) string {
	var b strings.Builder
	for _, m := range nodes {
		s := m.State()
		fmt.Fprintf(&b, "\n  %s: committed %d %v target %v", m.Self(), s.Committed.Epoch, s.Committed.Members, s.Target())
		for _, mb := range s.Members {
			fmt.Fprintf(&b, " [%s %s v%d done=%v]", mb.ID, mb.Status, mb.Version, mb.Handoff.Done)
		}
	}
	return b.String()
}

// converged: every node holds the same state, with no transition pending
// and the committed ring equal to want.
func converged(nodes []*Membership, want []string) func() (bool, string) {
	return func() (bool, string) {
		handOff(nodes...)
		first := nodes[0].State()
		for _, m := range nodes {
			s := m.State()
			if !s.Equal(first) || s.Pending() || !slices.Equal(s.Committed.Members, want) {
				return false, describe(nodes)
			}
		}
		return true, ""
	}
}

func startCluster(t *testing.T, n int) []*Membership {
	t.Helper()
	nodes := []*Membership{start(t, fastConfig(t, "n1"))}
	var ids = []string{"n1"}
	for i := 2; i <= n; i++ {
		cfg := fastConfig(t, fmt.Sprintf("n%d", i))
		cfg.Join = []string{gossipAddr(nodes[0])}
		nodes = append(nodes, start(t, cfg))
		ids = append(ids, cfg.NodeID)
	}
	eventually(t, 10*time.Second, converged(nodes, ids))
	return nodes
}

func TestClustersConvergeOnOneRing(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			nodes := startCluster(t, n)
			for _, m := range nodes {
				if !m.Ready() {
					t.Errorf("%s not ready after converging", m.Self())
				}
				p := m.Placement()
				if p.Target != nil {
					t.Errorf("%s: target ring %v with nothing pending", m.Self(), p.Target.Members())
				}
				var sum float64
				for _, id := range p.Committed.Members() {
					sum += p.Committed.Share(id)
					// A busy machine may delay a probe ack: eventually alive.
					eventually(t, 5*time.Second, func() (bool, string) {
						l := m.Liveness(id)
						return l == Alive, fmt.Sprintf("%s sees %s %s, want alive", m.Self(), id, l)
					})
					mb, ok := m.Member(id)
					if !ok || mb.Status != StatusValid || mb.HTTPAddr == "" || mb.GossipAddr == "" {
						t.Errorf("%s: member %s = %+v, want valid with addresses", m.Self(), id, mb)
					}
				}
				if math.Abs(sum-1) > 1e-9 {
					t.Errorf("%s: shares sum to %f, want 1", m.Self(), sum)
				}
				if len(p.Committed.PreferenceList(0, 3)) != 3 {
					t.Errorf("%s: preference list %v, want 3 nodes", m.Self(), p.Committed.PreferenceList(0, 3))
				}
			}
		})
	}
}

func TestJoiningNodeBecomesValidOnlyAfterEveryMemberIsDone(t *testing.T) {
	nodes := startCluster(t, 3)
	cfg := fastConfig(t, "n4")
	cfg.Join = []string{gossipAddr(nodes[1])}
	n4 := start(t, cfg)
	all := append(slices.Clone(nodes), n4)

	// Everyone but n2 reports; wait until every node has seen those reports.
	eventually(t, 5*time.Second, func() (bool, string) {
		handOff(nodes[0], nodes[2], n4)
		for _, m := range all {
			s := m.State()
			fp := s.TargetFingerprint()
			if !s.Pending() {
				return false, describe(all)
			}
			for _, id := range []string{"n1", "n3", "n4"} {
				mb, _ := s.Member(id)
				if !mb.Handoff.Done || mb.Handoff.Target != fp {
					return false, describe(all)
				}
			}
		}
		return true, ""
	})
	for _, m := range all {
		s := m.State()
		if slices.Contains(s.Committed.Members, "n4") {
			t.Fatalf("%s committed n4 before n2 reported done:%s", m.Self(), describe(all))
		}
		if mb, _ := s.Member("n4"); mb.Status != StatusJoining {
			t.Fatalf("%s sees n4 %s before n2 reported, want joining", m.Self(), mb.Status)
		}
		if p := m.Placement(); p.Target == nil || !p.Target.Contains("n4") || p.Committed.Contains("n4") {
			t.Fatalf("%s: placement during the join should have n4 in the target only", m.Self())
		}
	}
	if !n4.Ready() {
		t.Error("a joiner that has seen its cluster should be ready to serve (by forwarding)")
	}
	eventually(t, 5*time.Second, converged(all, []string{"n1", "n2", "n3", "n4"}))
	if mb, _ := nodes[0].Member("n4"); mb.Status != StatusValid {
		t.Fatalf("n4 is %s after the commit, want valid", mb.Status)
	}
}

func TestLeaveBecomesLeftAfterHandoff(t *testing.T) {
	nodes := startCluster(t, 3)
	ch, unsubscribe := nodes[0].Subscribe()
	defer unsubscribe()
	if err := nodes[2].Leave(); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if mb, _ := nodes[2].Member("n3"); mb.Status != StatusLeaving {
		t.Fatalf("n3 is %s right after Leave, want leaving", mb.Status)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		handOff(nodes[2]) // the leaving node's own worker
		ok, saw := converged(nodes[:2], []string{"n1", "n2"})()
		if !ok {
			return false, saw
		}
		mb, _ := nodes[0].Member("n3")
		return mb.Status == StatusLeft, describe(nodes)
	})
	select {
	case <-ch:
	default:
		t.Error("subscriber got no signal for the ring change")
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		return !nodes[2].Ready(), "n3 still ready after leaving"
	})
	eventually(t, 5*time.Second, func() (bool, string) {
		l := nodes[0].Liveness("n3")
		return l == Dead, "n1 sees n3 " + string(l)
	})
	if err := nodes[0].Leave(); err != nil {
		t.Fatalf("n1 leaving a two-node ring: %v", err)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		mb, _ := nodes[1].Member("n1")
		return mb.Status == StatusLeaving, "n2 sees n1 " + mb.Status.String()
	})
	if err := nodes[1].Leave(); !errors.Is(err, ErrLastMember) {
		t.Fatalf("the last target member leaving: err %v, want ErrLastMember", err)
	}
}

func TestRemoveDeadMember(t *testing.T) {
	nodes := startCluster(t, 3)
	if err := nodes[0].Remove("n1"); !errors.Is(err, ErrSelf) {
		t.Fatalf("remove self: %v, want ErrSelf", err)
	}
	if err := nodes[0].Remove("nobody"); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("remove unknown: %v, want ErrUnknownMember", err)
	}
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatalf("shutdown n3: %v", err)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		l := nodes[0].Liveness("n3")
		return l == Dead, "n1 sees n3 " + string(l)
	})
	// A crash changes liveness, never the ring.
	if s := nodes[0].State(); !slices.Equal(s.Committed.Members, []string{"n1", "n2", "n3"}) || s.Pending() {
		t.Fatalf("ring changed by a crash: %+v", s.Committed)
	}
	if err := nodes[1].Remove("n3"); err != nil {
		t.Fatalf("remove n3: %v", err)
	}
	eventually(t, 5*time.Second, converged(nodes[:2], []string{"n1", "n2"}))
	if mb, _ := nodes[0].Member("n3"); mb.Status != StatusRemoved {
		t.Fatalf("n3 is %s, want removed", mb.Status)
	}
}

func TestRestartKeepsIdentityAndRing(t *testing.T) {
	nodes := startCluster(t, 3)
	before := nodes[1].State()
	cfg := nodes[1].cfg
	cfg.BindAddr = gossipAddr(nodes[1])
	cfg.Join = nil
	if err := nodes[1].Shutdown(); err != nil {
		t.Fatalf("shutdown n2: %v", err)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		l := nodes[0].Liveness("n2")
		return l != Alive, "n1 still sees n2 alive"
	})
	n2 := start(t, cfg)
	after := n2.State()
	if after.Committed.Epoch != before.Committed.Epoch || !slices.Equal(after.Committed.Members, before.Committed.Members) {
		t.Fatalf("restart changed the committed ring: before %+v after %+v", before.Committed, after.Committed)
	}
	if mb, _ := after.Member("n2"); mb.Status != StatusValid {
		t.Fatalf("restarted n2 is %s, want valid", mb.Status)
	}
	if !n2.Ready() {
		t.Fatal("restarted node not ready")
	}
	all := []*Membership{nodes[0], n2, nodes[2]}
	eventually(t, 10*time.Second, func() (bool, string) {
		ok, saw := converged(all, []string{"n1", "n2", "n3"})()
		return ok && nodes[0].Liveness("n2") == Alive && n2.Liveness("n3") == Alive, saw
	})
	if got := nodes[0].State().Committed.Epoch; got != before.Committed.Epoch {
		t.Fatalf("a restart moved the ring to epoch %d from %d", got, before.Committed.Epoch)
	}
}

func TestMismatchedPartitionCountIsRefused(t *testing.T) {
	n1 := start(t, fastConfig(t, "n1"))
	cfg := fastConfig(t, "n2")
	cfg.Partitions = 128
	cfg.Join = []string{gossipAddr(n1)}
	cfg.JoinTimeout = 500 * time.Millisecond
	if m, err := New(cfg); err == nil {
		_ = m.Shutdown()
		t.Fatal("a node with 128 partitions joined a 64-partition cluster")
	}
	// A state arriving by gossip with another count is not applied.
	before := n1.State()
	foreign := State{Partitions: 128, Members: []Member{{ID: "x", Status: StatusValid, Version: 9}},
		Committed: Committed{Epoch: 99, Members: []string{"x"}}}
	n1.mergeRemote(foreign.Encode(), "test")
	if after := n1.State(); !after.Equal(before) {
		t.Fatalf("merged a 128-partition state into a 64-partition node: %+v", after)
	}
	if _, ok := n1.Member("n2"); ok {
		t.Fatal("the refused node is in the ring state")
	}
	// A saved state with another count refuses to start.
	cfg1 := n1.cfg
	cfg1.Partitions = 32
	cfg1.BindAddr = "127.0.0.1:0"
	if m, err := New(cfg1); err == nil {
		_ = m.Shutdown()
		t.Fatal("started with a saved ring of 64 partitions configured as 32")
	}
}

func TestGossipKeyMismatchIsNotAdmitted(t *testing.T) {
	keyA := []byte("0123456789abcdef")
	keyB := []byte("fedcba9876543210")
	cfg := fastConfig(t, "n1")
	cfg.GossipKeys = [][]byte{keyA}
	core, logs := observer.New(zapcore.WarnLevel)
	cfg.Logger = zap.New(core)
	n1 := start(t, cfg)

	for _, tc := range []struct {
		name string
		keys [][]byte
	}{{"n2", [][]byte{keyB}}, {"n3", nil}} {
		c := fastConfig(t, tc.name)
		c.GossipKeys = tc.keys
		c.Join = []string{gossipAddr(n1)}
		c.JoinTimeout = 500 * time.Millisecond
		if m, err := New(c); err == nil {
			_ = m.Shutdown()
			t.Fatalf("%s with keys %q joined a cluster keyed %q", tc.name, tc.keys, keyA)
		}
		if _, ok := n1.Member(tc.name); ok || n1.Liveness(tc.name) != Dead {
			t.Fatalf("%s with the wrong key is known to n1", tc.name)
		}
	}
	// The member says why it refused them, once per interval however
	// many attempts the joiners made.
	refused := logs.FilterMessageSnippet("no --gossip-key decrypts").All()
	if len(refused) != 1 {
		t.Errorf("n1 logged %d warnings about undecryptable gossip after two refused joiners, want 1 (rate-limited): %v", len(refused), logs.All())
	}
	c := fastConfig(t, "n4")
	c.GossipKeys = [][]byte{keyA}
	c.Join = []string{gossipAddr(n1)}
	n4 := start(t, c)
	eventually(t, 5*time.Second, converged([]*Membership{n1, n4}, []string{"n1", "n4"}))
}

// TestGossipKeyRotatesByRollingRestart rotates a 3-member cluster from key
// A to key B as docs/operations.md says: every node restarted in turn with
// "A,B", then "B,A", then "B". After each restart the cluster is one again
// (everyone alive to everyone, one committed ring); at the end a node that
// only has A cannot join.
func TestGossipKeyRotatesByRollingRestart(t *testing.T) {
	keyA := []byte("0123456789abcdef0123456789abcdef")
	keyB := []byte("fedcba9876543210")
	ids := []string{"n1", "n2", "n3"}
	var nodes []*Membership
	for i, id := range ids {
		c := fastConfig(t, id)
		c.GossipKeys = [][]byte{keyA}
		if i > 0 {
			c.Join = []string{gossipAddr(nodes[0])}
		}
		nodes = append(nodes, start(t, c))
	}
	oneCluster := func() (bool, string) {
		ok, saw := converged(nodes, ids)()
		for _, m := range nodes {
			for _, id := range ids {
				if l := m.Liveness(id); l != Alive {
					return false, fmt.Sprintf("%s sees %s %s%s", m.Self(), id, l, saw)
				}
			}
		}
		return ok, saw
	}
	eventually(t, 5*time.Second, oneCluster)

	for _, step := range []struct {
		name string
		keys [][]byte
	}{{"A,B", [][]byte{keyA, keyB}}, {"B,A", [][]byte{keyB, keyA}}, {"B", [][]byte{keyB}}} {
		for i := range nodes {
			cfg := nodes[i].cfg
			cfg.BindAddr = gossipAddr(nodes[i])
			cfg.Join = []string{gossipAddr(nodes[(i+1)%len(nodes)])}
			cfg.GossipKeys = step.keys
			if err := nodes[i].Shutdown(); err != nil {
				t.Fatalf("step %s: shutdown %s: %v", step.name, ids[i], err)
			}
			m, err := New(cfg)
			if err != nil {
				t.Fatalf("step %s: %s restarted with keys %s: %v", step.name, ids[i], step.name, err)
			}
			t.Cleanup(func() { _ = m.Shutdown() })
			nodes[i] = m
			eventually(t, 10*time.Second, func() (bool, string) {
				ok, saw := oneCluster()
				return ok, fmt.Sprintf("step %s after restarting %s: %s", step.name, ids[i], saw)
			})
		}
	}

	old := fastConfig(t, "n4")
	old.GossipKeys = [][]byte{keyA}
	old.Join = []string{gossipAddr(nodes[0])}
	old.JoinTimeout = 500 * time.Millisecond
	if m, err := New(old); err == nil {
		_ = m.Shutdown()
		t.Fatal("a node with only the rotated-out key joined")
	}
	for _, m := range nodes {
		if _, ok := m.Member("n4"); ok {
			t.Fatalf("%s knows the node with the old key", m.Self())
		}
	}
}

func TestConfigIsValidated(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no id":       {BindAddr: "127.0.0.1:0"},
		"bad addr":    {NodeID: "a", BindAddr: "nowhere"},
		"bad key":     {NodeID: "a", BindAddr: "127.0.0.1:0", GossipKeys: [][]byte{[]byte("short")}},
		"bad 2nd key": {NodeID: "a", BindAddr: "127.0.0.1:0", GossipKeys: [][]byte{make([]byte, 16), make([]byte, 17)}},
		"partitions":  {NodeID: "a", BindAddr: "127.0.0.1:0", Partitions: MaxPartitions + 1},
	} {
		if m, err := New(cfg); err == nil {
			_ = m.Shutdown()
			t.Errorf("%s: accepted %+v", name, cfg)
		}
	}
}

// After the whole cluster restarts, each node may find no peer at start
// (here n2 comes back on a new port while n1 is down, and n1 only knows n2's
// old port); the rejoin loop must still reconnect them.
func TestWholeClusterRestartReconnects(t *testing.T) {
	nodes := startCluster(t, 2)
	cfg1, cfg2 := nodes[0].cfg, nodes[1].cfg
	cfg1.BindAddr, cfg1.Join = gossipAddr(nodes[0]), nil
	cfg2.BindAddr, cfg2.Join = "127.0.0.1:0", nil
	for _, m := range nodes {
		if err := m.Shutdown(); err != nil {
			t.Fatalf("shutdown %s: %v", m.Self(), err)
		}
	}
	n2 := start(t, cfg2)
	n1 := start(t, cfg1)
	eventually(t, 10*time.Second, func() (bool, string) {
		ok, saw := converged([]*Membership{n1, n2}, []string{"n1", "n2"})()
		return ok && n1.Liveness("n2") == Alive && n2.Liveness("n1") == Alive, saw
	})
	if mb, _ := n1.Member("n2"); mb.GossipAddr != gossipAddr(n2) {
		t.Fatalf("n1 has n2 at %s, n2 is at %s", mb.GossipAddr, gossipAddr(n2))
	}
}

func TestStoppedNodeIsSuspectBeforeDead(t *testing.T) {
	nodes := startCluster(t, 3)
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatalf("shutdown n3: %v", err)
	}
	// memberlist holds a suspect for SuspicionMult*log10(n)*ProbeInterval at
	// least (~200ms here), so a 2ms poll cannot miss it; only the survivor
	// whose probe failed knows, so watch both.
	var seen []Liveness
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		a, b := nodes[0].Liveness("n3"), nodes[1].Liveness("n3")
		if a == Suspect || b == Suspect {
			seen = append(seen, Suspect)
		}
		if a == Dead && b == Dead {
			seen = append(seen, Dead)
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if !slices.Contains(seen, Suspect) || seen[len(seen)-1] != Dead {
		t.Fatalf("liveness of a stopped node went through %v, want suspect then dead", slices.Compact(seen))
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		l := nodes[0].Liveness("n2")
		return l == Alive, "n1 sees the live n2 as " + string(l)
	})
}

// A state too large for a UDP broadcast (long ids and addresses here) still
// spreads in about a gossip interval, not a push/pull interval.
func TestLargeStateSpreadsWithoutPushPull(t *testing.T) {
	long := strings.Repeat("x", 230)
	var nodes []*Membership
	var ids []string
	for i := 1; i <= 3; i++ {
		cfg := fastConfig(t, fmt.Sprintf("n%d", i))
		cfg.NodeID = fmt.Sprintf("%s-%d", long, i)
		cfg.HTTPAddr = long + ":1"
		cfg.PushPullInterval = time.Hour
		if i > 1 {
			cfg.Join = []string{gossipAddr(nodes[0])}
		}
		nodes = append(nodes, start(t, cfg))
		ids = append(ids, cfg.NodeID)
	}
	eventually(t, 10*time.Second, converged(nodes, ids))
	if n := len(nodes[0].State().Encode()); n <= maxBroadcast {
		t.Fatalf("state is %d bytes, the test needs more than %d", n, maxBroadcast)
	}
	if err := nodes[2].Leave(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		handOff(nodes[2])
		return converged(nodes[:2], ids[:2])()
	})
}

func TestDamagedRingStateRefusesToStart(t *testing.T) {
	cfg := fastConfig(t, "n1")
	m := start(t, cfg)
	if err := m.Shutdown(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.DataDir, "ring.state")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("ring.state not saved: %v", err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if m, err := New(cfg); err == nil || !strings.Contains(err.Error(), "checksum") {
		if m != nil {
			_ = m.Shutdown()
		}
		t.Fatalf("started from a damaged ring.state: err %v, want a checksum error", err)
	}
}

func TestGossipMergedAfterShutdownWritesNoRingState(t *testing.T) {
	// memberlist's stream handlers outlive its Shutdown: a push/pull in
	// progress may still deliver a peer's state. It must not be saved
	// into a data directory the node has let go of (a restarted node may
	// already own it).
	cfg := fastConfig(t, "n1")
	m := start(t, cfg)
	if err := m.Shutdown(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(statePath(cfg.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	remote := m.State().With(Member{ID: "n9", GossipAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2", Status: StatusJoining, Version: 1})
	m.mergeRemote(remote.Encode(), "a straggling push/pull")
	after, err := os.ReadFile(statePath(cfg.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("a merge after Shutdown rewrote ring.state")
	}
	if _, ok := m.State().Member("n9"); ok {
		t.Fatal("a merge after Shutdown changed the state")
	}
}
