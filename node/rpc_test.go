package node

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/replication/rpc/transport"
)

// rpcServed sums the node-to-node calls a node's handlers ran, by way in.
func (tn *testNode) rpcServed() map[string]uint64 {
	out := map[string]uint64{}
	for _, cc := range tn.cluster.Load().rpcServer.Stats().Calls {
		out[cc.Via] += cc.Count
	}
	return out
}

// writeEverywhere puts keys through every node at W=3, so that each node
// coordinates writes to both peers, and reads them back at R=3. A test
// that gives the HTTP server tiny timeouts sets retry: a client request
// that takes longer than them (a loaded machine) is cut, which is not what
// such a test checks, and the write is retried (a blind PUT of the same
// value, so a retry changes nothing).
func writeEverywhere(t *testing.T, nodes []*testNode, prefix string, retry bool) {
	t.Helper()
	attempts := 1
	if retry {
		attempts = 5
	}
	call := func(tn *testNode, method, target, body string) response {
		t.Helper()
		var err error
		for range attempts {
			var r response
			if r, err = tn.try(method, target, strings.NewReader(body), nil); err == nil {
				return r
			}
		}
		t.Fatalf("%d attempts: %v", attempts, err)
		return response{}
	}
	for i, tn := range nodes {
		for j := range 5 {
			key := fmt.Sprintf("%s-%d-%d", prefix, i, j)
			if r := call(tn, http.MethodPut, keyPath(key)+"?w=3", "v"); r.status != http.StatusNoContent {
				t.Fatalf("PUT %s at w=3 via %s = %d %q", key, tn.cfg.ID, r.status, r.body)
			}
			other := nodes[(i+1)%len(nodes)]
			if r := call(other, http.MethodGet, keyPath(key)+"?r=3", ""); r.status != http.StatusOK || string(r.body) != "v" {
				t.Fatalf("GET %s at r=3 via %s = %d %q", key, other.cfg.ID, r.status, r.body)
			}
		}
	}
}

// TestNodesCallEachOtherOverTheTransport: between current nodes every
// node-to-node call takes the transport, none HTTP/2; each node keeps one
// connection per peer, and that connection, taken over from net/http,
// outlives the HTTP server's read, write and idle timeouts (a deadline net/http
// armed before the hand-over would cut it and make the node redial). The
// calls show in /metrics.
func TestNodesCallEachOtherOverTheTransport(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	var nodes []*testNode
	for i := 1; i <= 3; i++ {
		var join []string
		if i > 1 {
			join = []string{nodes[0].GossipAddr()}
		}
		cfg := clusterConfig(t, fmt.Sprintf("n%d", i), join...)
		cfg.HTTPReadHeaderTimeout, cfg.HTTPReadTimeout, cfg.HTTPWriteTimeout, cfg.HTTPIdleTimeout = timeout, timeout, timeout, timeout
		tn := startNode(t, &cfg, nil)
		// The test's own client lets go of idle connections well before
		// the server's idle timeout: a PUT sent on a connection the
		// server is closing fails with EOF, and net/http does not retry
		// a PUT.
		tn.client.Transport.(*http.Transport).IdleConnTimeout = timeout / 3
		nodes = append(nodes, tn)
	}
	waitConverged(t, nodes, ids(nodes))
	writeEverywhere(t, nodes, "before", true)
	time.Sleep(4 * timeout) // every HTTP timeout passes on the idle connections
	writeEverywhere(t, nodes, "after", true)

	for _, tn := range nodes {
		served := tn.rpcServed()
		if served[rpc.ViaTransport] == 0 || served[rpc.ViaHTTP2] != 0 {
			t.Errorf("%s served node-to-node calls by way %v, want every one over the transport", tn.cfg.ID, served)
		}
		cs := tn.cluster.Load().rpc.Stats()
		if cs.Transport.Dials > 2 || cs.Transport.DialFailures != 0 || cs.Transport.Conns != 2 || cs.HTTP2Peers != 0 {
			t.Errorf("%s's client: %+v, want one connection to each of its 2 peers, never redialled", tn.cfg.ID, cs.Transport)
		}
	}
	metrics := nodes[0].get("/metrics", nil)
	for _, want := range []string{
		`dynkv_rpc_calls_total{call="merge",side="served",via="transport"}`,
		`dynkv_rpc_calls_total{call="merge",side="sent",via="transport"}`,
		`dynkv_rpc_connections{side="server"} 2`,
		`dynkv_requests_total{code="101",op="internal",protocol="http"}`,
	} {
		if !strings.Contains(string(metrics.body), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}

// TestNodeCallsAPeerOfAnOlderVersionOverHTTP2: during a rolling upgrade a
// peer that speaks only the HTTP/2 RPC (a node of an older version, which
// answers the transport's upgrade with 404) takes part as before: writes
// reach all three replicas and read back, the current nodes call it over
// HTTP/2 and each other over the transport, and it calls everyone over
// HTTP/2.
func TestNodeCallsAPeerOfAnOlderVersionOverHTTP2(t *testing.T) {
	t.Parallel()
	first := clusterConfig(t, "n1")
	nodes := []*testNode{startNode(t, &first, nil)}
	seed := nodes[0].GossipAddr()
	cfg := clusterConfig(t, "n2", seed)
	nodes = append(nodes, startNode(t, &cfg, nil))
	old := clusterConfig(t, "n3", seed)
	nodes = append(nodes, startOlderNode(t, old))
	waitConverged(t, nodes, ids(nodes))
	writeEverywhere(t, nodes, "rolling", false)

	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	if s := n3.rpcServed(); s[rpc.ViaTransport] != 0 || s[rpc.ViaHTTP2] == 0 {
		t.Errorf("the older node served calls by way %v, want every one over HTTP/2", s)
	}
	if c := n3.cluster.Load().transport.Stats().Conns; c != 0 {
		t.Errorf("the older node holds %d transport connections, want none", c)
	}
	for _, tn := range []*testNode{n1, n2} {
		s := tn.rpcServed()
		if s[rpc.ViaTransport] == 0 || s[rpc.ViaHTTP2] == 0 {
			t.Errorf("%s served calls by way %v, want both: the transport from the other current node, HTTP/2 from the older one", tn.cfg.ID, s)
		}
		if p := tn.cluster.Load().rpc.Stats().HTTP2Peers; p != 1 {
			t.Errorf("%s calls %d peers over HTTP/2, want 1 (the older node)", tn.cfg.ID, p)
		}
	}
}

// startOlderNode starts a node on cfg that plays a node of an older version
// (olderRPC) and stops it when the test ends.
func startOlderNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	return startNodeWith(t, cfg, func(n *Node) { n.olderRPC = true })
}

// TestTransportConnectionKeepsItsPlaceUntilItCloses: a connection upgraded
// to the transport, which net/http no longer tracks, still holds its place
// under --http-max-conns (the limiter's connection is what the transport
// takes over) and gives it back once it closes.
func TestTransportConnectionKeepsItsPlaceUntilItCloses(t *testing.T) {
	cfg := testConfig(t)
	const limit = 2
	cfg.HTTPMaxConns = limit
	tn := startNode(t, &cfg, nil)
	var upgraded []*rawHTTP
	for i := range limit {
		r := dialHTTP(t, tn)
		fmt.Fprintf(r.c, "GET %s HTTP/1.1\r\nHost: dynkv\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", transport.DefaultPath, transport.Protocol)
		resp, err := http.ReadResponse(r.rd, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade %d: %v, %v; want 101", i+1, resp, err)
		}
		upgraded = append(upgraded, r)
	}
	if resp, _, err := dialHTTP(t, tn).get("/health"); err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a connection beyond %d upgraded ones: %v, %v; want 429", limit, resp, err)
	}
	if v := value(sample(t, gatherMetrics(t, tn), "dynkv_http_connections_open", nil)); v != limit {
		t.Errorf("dynkv_http_connections_open = %v with %d upgraded connections, want %d", v, limit, limit)
	}
	_ = upgraded[0].c.Close()
	for attempt := 0; ; attempt++ {
		r := dialHTTP(t, tn)
		resp, _, err := r.get("/health")
		if err == nil && resp.StatusCode == http.StatusOK {
			return
		}
		_ = r.c.Close()
		if attempt == 200 {
			t.Fatalf("after an upgraded connection closed, a new one: %v, %v; want 200", resp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
