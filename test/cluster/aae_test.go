package cluster

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

// aaeStatus is the "aae" object of GET /cluster/status.
type aaeStatus struct {
	TreesReady bool   `json:"trees_ready"`
	Exchanges  uint64 `json:"exchanges"`
	KeysPulled uint64 `json:"keys_pulled"`
	KeysPushed uint64 `json:"keys_pushed"`
	Errors     uint64 `json:"errors"`
	LastError  string `json:"last_error"`
}

func fetchAAEStatus(t *testing.T, nd *testnode.Node) aaeStatus {
	t.Helper()
	r, err := nd.Do(testnode.Request{Method: http.MethodGet, Path: "/cluster/status"})
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("GET /cluster/status on %s: %v %s", nd.ID(), err, r)
	}
	var body struct {
		AAE *aaeStatus `json:"aae"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || body.AAE == nil {
		t.Fatalf("GET /cluster/status on %s: no aae object (%v) in %s", nd.ID(), err, r.Body)
	}
	return *body.AAE
}

// TestReplicaWhoseHintsWereWipedConvergesThroughAntiEntropyAlone: a node
// misses 200 writes while it is down, the hints meant for it are wiped
// before it returns, and no client reads anything; active anti-entropy
// alone must bring every key to it.
func TestReplicaWhoseHintsWereWipedConvergesThroughAntiEntropyAlone(t *testing.T) {
	c := testnode.Start(t, 3, testnode.Options{Args: []string{
		"--replicas", "3", "--write-quorum", "2", "--read-quorum", "2",
		"--aae-interval", "100ms",
	}})
	n0, n1, n2 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	n2.MustKill()
	const keys = 200
	for i := range keys {
		mustPut(t, n0, fmt.Sprintf("aae-%03d", i), []byte(fmt.Sprintf("value-%d", i)), testnode.KV{W: 2})
	}
	// A hint is stored after its write was acknowledged, once the merge to
	// the dead node has failed (with its retries): wipe until a pass a
	// moment after the last finds none.
	testnode.WipeAllHints(t, time.Minute, n0, n1)
	n2.Restart()
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	missing := keys
	for missing > 0 {
		missing = 0
		for i := range keys {
			key := fmt.Sprintf("aae-%03d", i)
			l, err := n2.LocalGet(0, key)
			if err != nil {
				t.Fatalf("local read of %s on %s: %v", key, n2.ID(), err)
			}
			if vals := l.Values(); len(vals) != 1 || string(vals[0]) != fmt.Sprintf("value-%d", i) {
				missing++
			}
		}
		if missing > 0 && time.Now().After(deadline) {
			t.Fatalf("after %v the restarted node still lacks %d of %d keys; its anti-entropy: %+v; a peer's: %+v",
				time.Since(start).Round(time.Millisecond), missing, keys, fetchAAEStatus(t, n2), fetchAAEStatus(t, n0))
		}
		if missing > 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	s2 := fetchAAEStatus(t, n2)
	s0, s1 := fetchAAEStatus(t, n0), fetchAAEStatus(t, n1)
	t.Logf("restarted node held all %d keys %.2fs after its restart, by anti-entropy alone (its pulls %d; peers' pushes %d + %d)",
		keys, time.Since(start).Seconds(), s2.KeysPulled, s0.KeysPushed, s1.KeysPushed)
	if got := s2.KeysPulled + s0.KeysPushed + s1.KeysPushed; got < keys {
		t.Fatalf("anti-entropy moved %d keys, fewer than the %d the node missed: something else repaired them", got, keys)
	}
}
