package cluster

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

// hintStatus is the hint part of GET /cluster/status.
type hintStatus struct {
	Hints struct {
		Pending          int     `json:"pending"`
		Delivered        uint64  `json:"delivered"`
		Failed           uint64  `json:"failed"`
		OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	} `json:"hints"`
	Members []struct {
		ID                    string  `json:"id"`
		HintsPending          int     `json:"hints_pending"`
		HintsOldestAgeSeconds float64 `json:"hints_oldest_age_seconds"`
	} `json:"members"`
}

func fetchHintStatus(t *testing.T, nd *testnode.Node) hintStatus {
	t.Helper()
	r, err := nd.Do(testnode.Request{Method: http.MethodGet, Path: "/cluster/status"})
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("GET /cluster/status on %s: %v %s", nd.ID(), err, r)
	}
	var s hintStatus
	if err := json.Unmarshal(r.Body, &s); err != nil {
		t.Fatalf("GET /cluster/status on %s: %v in %s", nd.ID(), err, r.Body)
	}
	return s
}

// hintsFor is how many hints nd holds for owner, and the oldest one's age.
func hintsFor(t *testing.T, nd *testnode.Node, owner string) (int, float64) {
	t.Helper()
	for _, m := range fetchHintStatus(t, nd).Members {
		if m.ID == owner {
			return m.HintsPending, m.HintsOldestAgeSeconds
		}
	}
	t.Fatalf("status of %s has no member %s", nd.ID(), owner)
	return 0, 0
}

// TestKilledReplicaReceivesItsHintsAfterARestart: with one of three nodes
// killed, writes at W=2 succeed and the other nodes hold hints for it;
// once it is back the hints drain to zero and it holds every write, with
// anti-entropy turned down so that only hinted handoff can have done it.
func TestKilledReplicaReceivesItsHintsAfterARestart(t *testing.T) {
	c := testnode.Start(t, 3, testnode.Options{Args: []string{
		"--replicas", "3", "--write-quorum", "2", "--read-quorum", "2",
		"--hint-interval", "200ms", "--aae-interval", "1h",
	}})
	n0, n1, n2 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	n2.MustKill()
	const keys = 100
	for i := range keys {
		via := []*testnode.Node{n0, n1}[i%2]
		mustPut(t, via, fmt.Sprintf("hint-%03d", i), []byte(fmt.Sprintf("value-%d", i)), testnode.KV{W: 2})
	}
	// A write returns at W=2; its hint for n2 is stored by the merge that
	// goes on in the background, so the count catches up shortly after.
	held, deadline := 0, time.Now().Add(30*time.Second)
	for {
		held = 0
		for _, nd := range []*testnode.Node{n0, n1} {
			n, _ := hintsFor(t, nd, n2.ID())
			held += n
		}
		if held >= keys || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, nd := range []*testnode.Node{n0, n1} {
		n, age := hintsFor(t, nd, n2.ID())
		t.Logf("%s holds %d hints for %s, oldest %.2fs", nd.ID(), n, n2.ID(), age)
	}
	if held != keys {
		t.Fatalf("the live nodes hold %d hints for %s, want one per write (%d)", held, n2.ID(), keys)
	}

	n2.Restart()
	start := time.Now()
	deadline = start.Add(90 * time.Second)
	for {
		pending := 0
		for _, nd := range []*testnode.Node{n0, n1} {
			n, _ := hintsFor(t, nd, n2.ID())
			pending += n
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d hints for %s still pending %v after its restart; statuses %+v %+v",
				pending, n2.ID(), time.Since(start).Round(time.Millisecond), fetchHintStatus(t, n0), fetchHintStatus(t, n1))
		}
		time.Sleep(50 * time.Millisecond)
	}
	drained := time.Since(start)
	delivered := fetchHintStatus(t, n0).Hints.Delivered + fetchHintStatus(t, n1).Hints.Delivered
	t.Logf("hints for %s drained %.2fs after its restart (%d delivered)", n2.ID(), drained.Seconds(), delivered)
	if delivered < uint64(keys) {
		t.Errorf("%d hints delivered, want at least %d", delivered, keys)
	}
	for i := range keys {
		key := fmt.Sprintf("hint-%03d", i)
		l, err := n2.LocalGet(0, key)
		if err != nil {
			t.Fatalf("local read of %s on %s: %v", key, n2.ID(), err)
		}
		if vals := l.Values(); len(vals) != 1 || string(vals[0]) != fmt.Sprintf("value-%d", i) {
			t.Fatalf("%s on the restarted %s holds %q, want [value-%d]", key, n2.ID(), vals, i)
		}
	}
}

// TestFallbackNodeHoldsTheHintAndCountsTowardW: with N=3 on four nodes and
// two replicas of a key down, a W=2 write still succeeds because the
// fourth node takes a hint for a missing owner; then the owners return and
// receive it.
func TestFallbackNodeHoldsTheHintAndCountsTowardW(t *testing.T) {
	c := testnode.Start(t, 4, testnode.Options{Args: []string{
		"--replicas", "3", "--write-quorum", "2", "--read-quorum", "1",
		"--hint-interval", "200ms", "--aae-interval", "1h",
	}})
	n0 := c.Nodes[0]
	down := c.Nodes[2:]
	for _, nd := range down {
		nd.MustKill()
	}
	// Wait until n0 sees both as dead, so writes route around them.
	c.WaitStatus(testnode.ConvergeTimeout, []*testnode.Node{n0}, func(s map[string]testnode.Status) error {
		for _, nd := range down {
			if m, _ := s[n0.ID()].Member(nd.ID()); m.State != testnode.StateDead {
				return fmt.Errorf("%s is %s", nd.ID(), m.State)
			}
		}
		return nil
	})
	const keys = 60
	for i := range keys {
		// W=2 needs a fallback for every key whose list holds both dead
		// nodes: only the hint on the spare live node can make it.
		mustPut(t, n0, fmt.Sprintf("fb-%03d", i), []byte("v"), testnode.KV{W: 2})
	}
	for _, nd := range down {
		nd.Restart()
	}
	start := time.Now()
	deadline := start.Add(90 * time.Second)
	for {
		pending := 0
		for _, nd := range c.Nodes[:2] {
			pending += fetchHintStatus(t, nd).Hints.Pending
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d hints pending 90s after the restarts", pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("fallback hints drained %.2fs after the restarts", time.Since(start).Seconds())
	// Every key is now on all three of its replicas.
	for i := range keys {
		key := fmt.Sprintf("fb-%03d", i)
		copies := 0
		for _, nd := range c.Nodes {
			l, err := nd.LocalGet(0, key)
			if err != nil {
				t.Fatalf("local read of %s on %s: %v", key, nd.ID(), err)
			}
			if len(l.Values()) == 1 {
				copies++
			}
		}
		if copies < 3 {
			t.Errorf("%s has %d copies after the hints drained, want 3", key, copies)
		}
	}
}
