package node

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/node/httpapi"
	"github.com/dynkv/dynkv/vclock"
)

// convergeWithin bounds every wait for gossip in these tests. It is a
// limit on a poll, not a performance assertion: with the fast gossip
// settings below a three-node cluster settles in about a second.
const convergeWithin = 30 * time.Second

// clusterConfig is a node config with gossip tuned for tests on loopback.
func clusterConfig(t testing.TB, id string, join ...string) Config {
	cfg := testConfig(t)
	cfg.ID = id
	cfg.Join = join
	cfg.Partitions = 64
	cfg.GossipProbeInterval = 100 * time.Millisecond
	cfg.GossipProbeTimeout = 50 * time.Millisecond
	cfg.GossipInterval = 20 * time.Millisecond
	cfg.GossipSuspicionMult = 2
	cfg.RequestTimeout = 3 * time.Second
	cfg.RPCTimeout = time.Second
	// Durability is the store's business, tested there; fsync on every
	// write only slows these tests down.
	cfg.Fsync = "50ms"
	return cfg
}

// startCluster starts size nodes n1..n<size>, the first founding the
// cluster and the others joining it, and waits until all agree on a
// committed ring of every node.
func startCluster(t *testing.T, size int) []*testNode {
	t.Helper()
	first := clusterConfig(t, "n1")
	nodes := []*testNode{startNode(t, &first, nil)}
	seed := nodes[0].GossipAddr()
	for i := 2; i <= size; i++ {
		cfg := clusterConfig(t, fmt.Sprintf("n%d", i), seed)
		nodes = append(nodes, startNode(t, &cfg, nil))
	}
	waitConverged(t, nodes, ids(nodes))
	return nodes
}

func ids(nodes []*testNode) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.cfg.ID)
	}
	return out
}

// status fetches and decodes GET /cluster/status.
func (tn *testNode) status() statusBody {
	tn.t.Helper()
	r := tn.get("/cluster/status", nil)
	if r.status != http.StatusOK {
		tn.t.Fatalf("GET /cluster/status on %s = %d %q", tn.cfg.ID, r.status, r.body)
	}
	var st statusBody
	if err := json.Unmarshal(r.body, &st); err != nil {
		tn.t.Fatalf("status of %s is not JSON: %v: %q", tn.cfg.ID, err, r.body)
	}
	return st
}

// ringOf lists the members a status reports as part of the committed ring
// (a nonzero share).
func ringOf(st statusBody) []string {
	var out []string
	for _, m := range st.Members {
		if m.RingShare > 0 {
			out = append(out, m.ID)
		}
	}
	return out
}

// converged reports why the nodes do not yet agree on a settled ring of
// exactly want, or "" when they do.
func converged(nodes []*testNode, want []string) string {
	var first *statusBody
	for _, n := range nodes {
		st := n.status()
		switch {
		case st.Transition != nil:
			return fmt.Sprintf("%s: transition to %v pending (%d of %d done)", n.cfg.ID, st.Transition.Target,
				st.Transition.MembersDone, st.Transition.MembersTotal)
		case !slices.Equal(ringOf(st), want):
			return fmt.Sprintf("%s: ring %v, want %v", n.cfg.ID, ringOf(st), want)
		}
		for _, m := range st.Members {
			if slices.Contains(want, m.ID) && m.State != "alive" {
				return fmt.Sprintf("%s sees %s %s", n.cfg.ID, m.ID, m.State)
			}
		}
		if first == nil {
			first = &st
		} else if st.Epoch != first.Epoch || st.RingFingerprint != first.RingFingerprint {
			return fmt.Sprintf("%s: epoch %d ring %s, %s: epoch %d ring %s", nodes[0].cfg.ID, first.Epoch,
				first.RingFingerprint, n.cfg.ID, st.Epoch, st.RingFingerprint)
		}
	}
	return ""
}

func waitConverged(t *testing.T, nodes []*testNode, want []string) {
	t.Helper()
	eventually(t, func() string { return converged(nodes, want) })
}

// eventually polls cond until it returns "" or convergeWithin passes, then
// fails with cond's last complaint.
func eventually(t *testing.T, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(convergeWithin)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reached within %s: %s", convergeWithin, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// localCopy is what a node's own store holds for key in database 0.
func (tn *testNode) localCopy(key string) debugSetBody {
	tn.t.Helper()
	r := tn.get("/internal/v1/debug/local/0/"+strings.TrimPrefix(keyPath(key), "/kv/"), nil)
	if r.status != http.StatusOK {
		tn.t.Fatalf("debug read of %q on %s = %d %q", key, tn.cfg.ID, r.status, r.body)
	}
	var b debugSetBody
	if err := json.Unmarshal(r.body, &b); err != nil {
		tn.t.Fatalf("debug read of %q on %s: %v: %q", key, tn.cfg.ID, err, r.body)
	}
	return b
}

// holders lists the nodes whose local store holds value as a live sibling
// of key.
func holders(nodes []*testNode, key, value string) []string {
	var out []string
	for _, n := range nodes {
		for _, s := range n.localCopy(key).Siblings {
			if string(s.Value) == value && !s.Tombstone {
				out = append(out, n.cfg.ID)
				break
			}
		}
	}
	return out
}

func TestThreeNodeClusterServesAWriteThroughAnyNodeOnEveryOther(t *testing.T) {
	t.Parallel() // gossip waits, not CPU: the clusters overlap well
	nodes := startCluster(t, 3)

	for i, writer := range nodes {
		key := fmt.Sprintf("k%d", i)
		writer.mustPut(keyPath(key), "from "+writer.cfg.ID, "")
		for _, reader := range nodes {
			reader.mustGet(keyPath(key), "from "+writer.cfg.ID)
		}
		// N=3 on three nodes: every node holds a replica, the last
		// perhaps only after the write was acknowledged at W=2.
		eventually(t, func() string {
			if h := holders(nodes, key, "from "+writer.cfg.ID); len(h) != 3 {
				return fmt.Sprintf("%s held by %v, want all three", key, h)
			}
			return ""
		})
	}

	st := nodes[1].status()
	if st.Node != "n2" || st.N != 3 || st.R != 2 || st.W != 2 || st.Partitions != 64 {
		t.Errorf("status header = node %q N=%d R=%d W=%d partitions %d, want n2 3/2/2 64", st.Node, st.N, st.R, st.W, st.Partitions)
	}
	var sum float64
	for _, m := range st.Members {
		sum += m.RingShare
		if m.HTTPAddr == "" || m.GossipAddr == "" {
			t.Errorf("member %s has no address in status: %+v", m.ID, m)
		}
		if m.TargetShare != m.RingShare {
			t.Errorf("member %s: target share %v differs from ring share %v with no transition", m.ID, m.TargetShare, m.RingShare)
		}
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("ring shares sum to %v, want 1", sum)
	}

	// n2 coordinated a write to all three: it called both peers, and
	// reports each as its calls saw it (a loaded test machine may have
	// made some late, so only the fields' consistency is checked).
	peers := st.Coordinator.Peers
	if len(peers) != 2 || peers[0].ID != "n1" || peers[1].ID != "n3" {
		t.Fatalf("n2's coordinator peers = %+v, want n1 and n3", peers)
	}
	fams := nodes[1].scrape(nil)
	for _, p := range peers {
		if p.Unreachable != (p.Since != "") || p.Unreachable != (p.HedgeAfterMs == 0) || p.Trips == 0 && p.Unreachable {
			t.Errorf("peer %+v: since, hedge_after_ms and trips disagree with unreachable", p)
		}
		if p.HedgeAfterMs < 0 || p.HedgeAfterMs > 500 || p.P99Ms < 0 {
			t.Errorf("peer %+v: p99 or hedge deadline out of range", p)
		}
		peer := map[string]string{"peer": p.ID}
		if got := value(sample(t, fams, "dynkv_peer_unreachable", peer)); got != 0 && got != 1 {
			t.Errorf("dynkv_peer_unreachable{peer=%s} = %v, want 0 or 1", p.ID, got)
		}
		for _, name := range []string{"dynkv_peer_breaker_trips_total", "dynkv_peer_latency_p99_seconds", "dynkv_peer_hedge_after_seconds"} {
			sample(t, fams, name, peer)
		}
	}
	sample(t, fams, "dynkv_coordinator_hedges_total", nil)
}

func TestSequentialBlindWritesThroughDifferentNodesLeaveTheLast(t *testing.T) {
	t.Parallel() // gossip waits, not CPU: the clusters overlap well
	nodes := startCluster(t, 3)
	for i := range 9 {
		nodes[i%3].mustPut(keyPath("seq"), fmt.Sprintf("v%d", i), "")
	}
	for _, n := range nodes {
		n.mustGet(keyPath("seq"), "v8")
	}
}

func TestABlindWriteSupersedesAWriteItsCoordinatorMissed(t *testing.T) {
	// n2 and n3 hold a version of the key that n1 never received (merged
	// into their stores directly: a write n1 missed). A blind write through
	// n1 skips the context read (coordinator/cover.go), so it is n2's and
	// n3's stores refusing its covering merges that make it supersede the
	// missed version; were they to merge without checking, the key would
	// keep both as siblings.
	t.Parallel() // gossip waits, not CPU: the clusters overlap well
	nodes := startCluster(t, 3)
	missed, _ := vclock.Set{}.Update("n2", vclock.Context{}, vclock.Sibling{Value: []byte("missed"), LastModified: 1})
	for _, n := range nodes[1:] {
		if _, err := n.store.Merge(0, []byte("k"), missed); err != nil {
			t.Fatalf("merging the missed version into %s: %v", n.cfg.ID, err)
		}
	}
	nodes[0].mustPut(keyPath("k"), "last", "")
	eventually(t, func() string {
		for _, n := range nodes {
			var vals []string
			for _, s := range n.localCopy("k").Siblings {
				vals = append(vals, string(s.Value))
			}
			if len(vals) != 1 || vals[0] != "last" {
				return fmt.Sprintf("%s holds %q, want only \"last\"", n.cfg.ID, vals)
			}
		}
		return ""
	})
	for _, n := range nodes {
		n.mustGet(keyPath("k"), "last")
	}
	st := nodes[0].cluster.Load().coord.Stats()
	if st.CoverFallbacks != 1 {
		t.Errorf("n1 counted %d cover fallbacks, want 1 (the refused covering merges)", st.CoverFallbacks)
	}
	// With every replica in step, the next blind write covers at once.
	nodes[0].mustPut(keyPath("k"), "again", "")
	if st := nodes[0].cluster.Load().coord.Stats(); st.CoveredBlindWrites < 1 {
		t.Errorf("n1 counted %d covered blind writes, want at least 1", st.CoveredBlindWrites)
	}
}

func TestLeavingNodeHandsItsDataToTheOthers(t *testing.T) {
	t.Parallel() // gossip waits, not CPU: the clusters overlap well
	nodes := startCluster(t, 3)
	const keys = 40
	for i := range keys {
		nodes[i%3].mustPut(keyPath(fmt.Sprintf("k%d", i)), fmt.Sprintf("v%d", i), "")
	}

	leaver := nodes[2]
	r := leaver.do(http.MethodPost, "/cluster/leave", nil, nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST /cluster/leave = %d %q, want 202", r.status, r.body)
	}
	stay := nodes[:2]
	waitConverged(t, stay, []string{"n1", "n2"})
	for _, m := range stay[0].status().Members {
		if m.ID == "n3" && m.State != "left" {
			t.Errorf("after leaving, n3 is %q in n1's status, want left", m.State)
		}
	}
	eventually(t, func() string {
		if r := leaver.get("/ready", nil); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "left") {
			return fmt.Sprintf("/ready on the departed node = %d %q, want 503 saying it left", r.status, r.body)
		}
		return ""
	})
	for i := range keys {
		key, want := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
		for _, n := range stay {
			n.mustGet(keyPath(key), want)
		}
		// N=3 capped at two members: both remaining nodes hold it.
		if h := holders(stay, key, want); len(h) != 2 {
			t.Errorf("%s held by %v after n3 left, want n1 and n2", key, h)
		}
	}
}

func TestJoinEndpointAddsANodeAndRemoveChecksItsTarget(t *testing.T) {
	t.Parallel() // gossip waits, not CPU: the clusters overlap well
	nodes := startCluster(t, 2)
	nodes[0].mustPut(keyPath("before"), "joined", "")

	cfg := clusterConfig(t, "n3")
	late := startNode(t, &cfg, nil)
	for _, c := range []struct{ body, why string }{
		{`{"addrs": []}`, "empty list"},
		{`not json`, "malformed body"},
		{`{"addrs": ["no-port"]}`, "bad address"},
	} {
		if r := late.do(http.MethodPost, "/cluster/join", strings.NewReader(c.body), nil); r.status != http.StatusBadRequest {
			t.Errorf("join with %s = %d %q, want 400", c.why, r.status, r.body)
		}
	}
	body := fmt.Sprintf(`{"addrs": [%q]}`, nodes[0].GossipAddr())
	r := late.do(http.MethodPost, "/cluster/join", strings.NewReader(body), nil)
	if r.status != http.StatusOK {
		t.Fatalf("POST /cluster/join = %d %q, want 200", r.status, r.body)
	}
	all := append(nodes, late)
	waitConverged(t, all, []string{"n1", "n2", "n3"})
	late.mustGet(keyPath("before"), "joined")

	if r := late.do(http.MethodPost, "/cluster/leave?node=n3", nil, nil); r.status != http.StatusBadRequest {
		t.Errorf("removing self = %d %q, want 400", r.status, r.body)
	}
	if r := late.do(http.MethodPost, "/cluster/leave?node=nobody", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("removing an unknown node = %d %q, want 404", r.status, r.body)
	}
}

func TestAdvertisedHTTPAddr(t *testing.T) {
	cases := []struct{ bound, advertise, want string }{
		{"127.0.0.1:8080", "", "127.0.0.1:8080"},
		{"127.0.0.1:8080", "10.0.0.1", "127.0.0.1:8080"},
		{"0.0.0.0:8080", "10.0.0.1", "10.0.0.1:8080"},
		{"[::]:9000", "db1.example", "db1.example:9000"},
		{":7000", "10.0.0.2", "10.0.0.2:7000"},
	}
	for _, c := range cases {
		got, err := advertisedHTTPAddr(c.bound, c.advertise)
		if err != nil || got != c.want {
			t.Errorf("advertisedHTTPAddr(%q, %q) = %q, %v; want %q", c.bound, c.advertise, got, err, c.want)
		}
	}
}

func TestRemovingADeadNodeRebuildsItsReplicasOnTheOthers(t *testing.T) {
	t.Parallel() // gossip waits, not CPU: the clusters overlap well
	nodes := startCluster(t, 3)
	const keys = 20
	for i := range keys {
		nodes[i%3].mustPut(keyPath(fmt.Sprintf("k%d", i)), fmt.Sprintf("v%d", i), "")
	}
	// Every key has all three replicas before n3 dies, so W=2 acks on
	// n1 and n2 are certain below.
	for i := range keys {
		key, want := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
		eventually(t, func() string {
			if h := holders(nodes, key, want); len(h) != 3 {
				return fmt.Sprintf("%s held by %v", key, h)
			}
			return ""
		})
	}
	if err := nodes[2].Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	stay := nodes[:2]
	// Both survivors must see n3 dead and each other alive before the
	// write below: on a starved machine a survivor can briefly suspect
	// the other, and then it rightly answers 503.
	eventually(t, func() string {
		for i, nd := range stay {
			for _, m := range nd.status().Members {
				want := "alive"
				if m.ID == "n3" {
					want = "dead"
				}
				if m.State != want {
					return fmt.Sprintf("n%d sees %s %s, want %s", i+1, m.ID, m.State, want)
				}
			}
		}
		return ""
	})
	// A crash changes routing, never the ring: n3 still owns a share.
	if ring := ringOf(stay[0].status()); !slices.Equal(ring, []string{"n1", "n2", "n3"}) {
		t.Fatalf("ring after n3 died = %v, want it unchanged", ring)
	}
	stay[1].mustPut(keyPath("during"), "outage", "")

	if r := stay[0].do(http.MethodPost, "/cluster/leave?node=n3", nil, nil); r.status != http.StatusAccepted {
		t.Fatalf("removing dead n3 = %d %q, want 202", r.status, r.body)
	}
	waitConverged(t, stay, []string{"n1", "n2"})
	for _, m := range stay[1].status().Members {
		if m.ID == "n3" && m.State != "removed" {
			t.Errorf("n3 is %q in n2's status after removal, want removed", m.State)
		}
	}
	for i := range keys + 1 {
		key, want := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
		if i == keys {
			key, want = "during", "outage"
		}
		for _, n := range stay {
			n.mustGet(keyPath(key), want)
		}
		if h := holders(stay, key, want); len(h) != 2 {
			t.Errorf("%s held by %v after n3's removal, want n1 and n2", key, h)
		}
	}
}

func TestConcurrentWritesThroughTwoNodesBecomeSiblingsAndAContextResolvesThem(t *testing.T) {
	t.Parallel() // gossip waits, not CPU: the clusters overlap well
	nodes := startCluster(t, 3)
	base := nodes[0].mustPut(keyPath("c"), "base", "")
	nodes[0].mustGet(keyPath("c"), "base")
	nodes[1].mustPut(keyPath("c"), "left", base)
	nodes[2].mustPut(keyPath("c"), "right", base)

	r := nodes[0].get(keyPath("c"), nil)
	if r.status != http.StatusMultipleChoices {
		t.Fatalf("GET after two concurrent writes = %d %q, want 300", r.status, r.body)
	}
	var body httpapi.SiblingsBody
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range body.Siblings {
		got = append(got, string(s.Value))
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"left", "right"}) {
		t.Fatalf("siblings = %q, want exactly left and right", got)
	}
	nodes[2].mustPut(keyPath("c"), "merged", r.context())
	for _, n := range nodes {
		n.mustGet(keyPath("c"), "merged")
	}
}

func TestClusterWithBearerTokensReplicatesAndGuardsDebugReads(t *testing.T) {
	t.Parallel() // gossip waits, not CPU: the clusters overlap well
	auth := map[string]string{"Authorization": "Bearer s3cret"}
	first := clusterConfig(t, "n1")
	first.AuthTokens = []string{"s3cret"}
	a := startNode(t, &first, nil)
	second := clusterConfig(t, "n2", a.GossipAddr())
	second.AuthTokens = []string{"s3cret"}
	b := startNode(t, &second, nil)
	eventually(t, func() string {
		r := a.get("/cluster/status", auth)
		var st statusBody
		if err := json.Unmarshal(r.body, &st); err != nil {
			return err.Error()
		}
		if ring := ringOf(st); !slices.Equal(ring, []string{"n1", "n2"}) || st.Transition != nil {
			return fmt.Sprintf("ring %v, transition %v", ring, st.Transition)
		}
		return ""
	})
	if r := a.put(keyPath("k"), "v", auth); r.status != http.StatusNoContent {
		t.Fatalf("PUT with token = %d %q", r.status, r.body)
	}
	// W=2 of two nodes: the write reached n2 over RPC, which took the
	// peer token.
	if r := b.get("/internal/v1/debug/local/0/k", auth); r.status != http.StatusOK || !strings.Contains(string(r.body), `"found":true`) {
		t.Fatalf("n2's local copy = %d %q, want found", r.status, r.body)
	}
	if r := b.get("/internal/v1/debug/local/0/k", nil); r.status != http.StatusUnauthorized {
		t.Errorf("debug read without a token = %d, want 401", r.status)
	}
	if r := b.do(http.MethodPost, "/internal/v1/merge", strings.NewReader("x"), nil); r.status != http.StatusUnauthorized {
		t.Errorf("RPC without a token = %d, want 401", r.status)
	}
}

func TestDoneClosesWithoutAnErrorAfterShutdown(t *testing.T) {
	cfg := testConfig(t)
	n := startNode(t, &cfg, nil)
	select {
	case err := <-n.Done():
		t.Fatalf("Done yielded %v while the node serves", err)
	default:
	}
	if err := n.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err, ok := <-n.Done(); ok || err != nil {
		t.Fatalf("Done after Shutdown = %v, %v; want closed without an error", err, ok)
	}
}

func FuzzParseJoinBody(f *testing.F) {
	for _, s := range []string{`{"addrs":["127.0.0.1:7946"]}`, `{"addrs":[]}`, `{}`, `null`, `{"addrs":["a:1","b"]}`, `{"addrs":"x"}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		addrs, err := parseJoinBody(raw)
		if err != nil {
			if status := httpStatusOf(err); status != http.StatusBadRequest {
				t.Fatalf("parseJoinBody(%q) error %v is not a 400", raw, err)
			}
			return
		}
		if len(addrs) == 0 {
			t.Fatalf("parseJoinBody(%q) accepted no address", raw)
		}
		for _, a := range addrs {
			if checkHostPort(a) != nil {
				t.Fatalf("parseJoinBody(%q) accepted %q", raw, a)
			}
		}
	})
}

func TestClusterOverTLSReplicatesWithMutualCertificates(t *testing.T) {
	t.Parallel() // gossip waits, not CPU: the clusters overlap well
	pki := newTestPKI(t)
	withTLS := func(c Config) Config {
		c.TLSCert, c.TLSKey, c.TLSCA = pki.certFile, pki.keyFile, pki.caFile
		return c
	}
	first := withTLS(clusterConfig(t, "n1"))
	a := startNode(t, &first, nil)
	second := withTLS(clusterConfig(t, "n2", a.GossipAddr()))
	b := startNode(t, &second, nil)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool}}
	t.Cleanup(tr.CloseIdleConnections)
	for _, tn := range []*testNode{a, b} {
		tn.base = "https://" + tn.Addr()
		tn.client = &http.Client{Transport: tr}
	}
	waitConverged(t, []*testNode{a, b}, []string{"n1", "n2"})
	a.mustPut(keyPath("k"), "secure", "")
	b.mustGet(keyPath("k"), "secure")
	// W=2 of two nodes: n2 took the replica over h2 with n1's certificate.
	if h := holders([]*testNode{a, b}, "k", "secure"); len(h) != 2 {
		t.Fatalf("k held by %v, want both nodes", h)
	}
	// A client without a node certificate is served, but not as a peer.
	if r := b.do(http.MethodPost, "/internal/v1/merge", strings.NewReader("x"), nil); r.status != http.StatusUnauthorized {
		t.Errorf("RPC without a client certificate = %d %q, want 401", r.status, r.body)
	}
}

func TestStatusReportsCoordinatorWorkInFlight(t *testing.T) {
	tn := startNode(t, nil, nil)
	tn.mustPut(keyPath("k"), "v", "")
	// A one-node write leaves nothing running after its answer.
	testutil.Eventually(t, hangBound, 10*time.Millisecond, "coordinator work to finish", func() bool {
		return tn.status().Coordinator.InFlight == 0
	})
	// A lone node calls no peer: hedges 0 and peers an empty array.
	r := tn.get("/cluster/status", nil)
	if !strings.Contains(string(r.body), `"coordinator":{"in_flight":0,"hedges":0,"peers":[]}`) {
		t.Fatalf("status lacks the coordinator's in_flight, hedges and peers: %s", r.body)
	}
	m := tn.get("/metrics", nil)
	for _, want := range []string{"dynkv_coordinator_in_flight 0", "dynkv_coordinator_hedges_total 0"} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(string(m.body), "dynkv_peer_") {
		t.Errorf("/metrics of a lone node has per-peer series:\n%s", m.body)
	}
}
