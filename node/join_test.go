package node

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// deadGossipAddr is a gossip address nothing listens on.
const deadGossipAddr = "127.0.0.1:1"

func joinRequest(addrs ...string) *strings.Reader {
	quoted := make([]string, len(addrs))
	for i, a := range addrs {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	return strings.NewReader(`{"addrs": [` + strings.Join(quoted, ",") + `]}`)
}

func TestJoinEndpointRefusesThisNodesOwnAddresses(t *testing.T) {
	t.Parallel()
	cfg := clusterConfig(t, "n1")
	tn := startNode(t, &cfg, nil)
	_, gport, _ := net.SplitHostPort(tn.GossipAddr())
	_, hport, _ := net.SplitHostPort(tn.Addr())
	for _, c := range []struct{ addr, want string }{
		{tn.GossipAddr(), "own gossip address"},
		{"localhost:" + gport, "own gossip address"},
		{"0.0.0.0:" + gport, "own gossip address"},
		{tn.Addr(), "own HTTP address"},
		{"localhost:" + hport, "own HTTP address"},
		{"0.0.0.0:" + hport, "own HTTP address"},
	} {
		r := tn.do(http.MethodPost, "/cluster/join", joinRequest(c.addr), nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("join of %s = %d %q, want 400", c.addr, r.status, r.body)
			continue
		}
		if msg := r.jsonError(t); !strings.Contains(msg, c.want) || !strings.Contains(msg, "--gossip-addr") {
			t.Errorf("join of %s: error %q, want it to say %q and what to give instead", c.addr, msg, c.want)
		}
	}
	if r := tn.get("/ready", nil); r.status != http.StatusOK {
		t.Fatalf("GET /ready after refused self-joins = %d %q", r.status, r.body)
	}
}

// TestFailedJoinEndpointLeavesTheNodeServing is issue 16 in process: the
// node answers 502, keeps its ring and serves; a second join while one
// runs is refused with 409.
func TestFailedJoinEndpointLeavesTheNodeServing(t *testing.T) {
	t.Parallel()
	cfg := clusterConfig(t, "n1")
	// Long enough that the second join surely starts while the first
	// still runs.
	cfg.JoinTimeout = 3 * time.Second
	tn := startNode(t, &cfg, nil)
	tn.mustPut(keyPath("before"), "v1", "")
	before := tn.status()

	statuses := make(chan response, 2)
	for range 2 {
		go func() { statuses <- tn.do(http.MethodPost, "/cluster/join", joinRequest(deadGossipAddr), nil) }()
	}
	var got []int
	for range 2 {
		r := <-statuses
		got = append(got, r.status)
		if r.status == http.StatusBadGateway && !strings.Contains(r.jsonError(t), deadGossipAddr) {
			t.Errorf("failed join: error %q does not name the address", r.body)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []int{http.StatusConflict, http.StatusBadGateway}) {
		t.Errorf("two joins at once of an address nothing answers = %v, want one 409 (in progress) and one 502", got)
	}
	if r := tn.get("/ready", nil); r.status != http.StatusOK {
		t.Fatalf("GET /ready after a failed join = %d %q, want 200", r.status, r.body)
	}
	tn.mustGet(keyPath("before"), "v1")
	tn.mustPut(keyPath("after"), "v2", "")
	tn.mustGet(keyPath("after"), "v2")
	after := tn.status()
	if after.Epoch != before.Epoch || after.RingFingerprint != before.RingFingerprint || !slices.Equal(ringOf(after), []string{"n1"}) {
		t.Errorf("ring after a failed join: epoch %d %s %v, want epoch %d %s [n1]", after.Epoch, after.RingFingerprint, ringOf(after),
			before.Epoch, before.RingFingerprint)
	}
}
