package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

func (tn *testNode) hintsFor(owner string) int {
	tn.t.Helper()
	for _, m := range tn.status().Members {
		if m.ID == owner {
			return m.HintsPending
		}
	}
	tn.t.Fatalf("status of %s has no member %s", tn.cfg.ID, owner)
	return 0
}

func (tn *testNode) wipeHints() int {
	tn.t.Helper()
	r := tn.do(http.MethodDelete, "/internal/v1/debug/hints", nil, nil)
	if r.status != http.StatusOK {
		tn.t.Fatalf("DELETE /internal/v1/debug/hints on %s = %d %q", tn.cfg.ID, r.status, r.body)
	}
	var b struct {
		Wiped int `json:"wiped"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		tn.t.Fatalf("wipe answer %q: %v", r.body, err)
	}
	return b.Wiped
}

// TestHintsForADeadNodeShowInStatusCanBeWipedAndFollowItsRemoval: writes
// while n3 is down leave hints for it on their coordinators, visible per
// member and in total; the debug endpoint wipes one node's; once n3 is
// removed from the ring the rest go to the keys' current replicas.
func TestHintsForADeadNodeShowInStatusCanBeWipedAndFollowItsRemoval(t *testing.T) {
	t.Parallel() // gossip waits, not CPU
	nodes := startCluster(t, 3)
	if err := nodes[2].Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	stay := nodes[:2]
	eventually(t, func() string {
		for _, m := range stay[0].status().Members {
			if m.ID == "n3" && m.State != "dead" {
				return "n1 sees n3 " + m.State
			}
		}
		return ""
	})
	const keys = 20
	for i := range keys {
		stay[i%2].mustPut(keyPath(fmt.Sprintf("h%d", i)), fmt.Sprintf("v%d", i), "")
	}
	// A write returns at W=2; the hint for n3 is stored by the fan-out
	// that goes on in the background.
	var held [2]int
	eventually(t, func() string {
		held = [2]int{stay[0].hintsFor("n3"), stay[1].hintsFor("n3")}
		if held[0]+held[1] != keys || held[0] == 0 || held[1] == 0 {
			return fmt.Sprintf("hints for n3 on n1, n2: %v, want %d in all, some on each", held, keys)
		}
		return ""
	})
	if st := stay[0].status(); st.Hints.Pending != held[0] || st.Hints.OldestAgeSeconds < 0 {
		t.Errorf("n1's hints object %+v, want %d pending", st.Hints, held[0])
	}
	if got := stay[0].wipeHints(); got != held[0] {
		t.Errorf("wiped %d hints on n1, want %d", got, held[0])
	}
	if got := stay[0].hintsFor("n3"); got != 0 {
		t.Errorf("n1 still shows %d hints after the wipe", got)
	}

	if r := stay[0].do(http.MethodPost, "/cluster/leave?node=n3", nil, nil); r.status != http.StatusAccepted {
		t.Fatalf("removing dead n3 = %d %q, want 202", r.status, r.body)
	}
	waitConverged(t, stay, []string{"n1", "n2"})
	eventually(t, func() string {
		if n := stay[1].hintsFor("n3"); n != 0 {
			return fmt.Sprintf("n2 holds %d hints for the removed n3", n)
		}
		return ""
	})
	for i := range keys {
		key, want := fmt.Sprintf("h%d", i), fmt.Sprintf("v%d", i)
		if h := holders(stay, key, want); len(h) != 2 {
			t.Errorf("%s held by %v after n3's removal, want n1 and n2", key, h)
		}
	}
}

func TestWipeHintsEndpointIsBehindTheTokensAndDeleteOnly(t *testing.T) {
	cfg := testConfig(t)
	cfg.AuthTokens = []string{"secret"}
	tn := startNode(t, &cfg, nil)
	if r := tn.do(http.MethodDelete, "/internal/v1/debug/hints", nil, nil); r.status != http.StatusUnauthorized {
		t.Errorf("DELETE without a token = %d %q, want 401", r.status, r.body)
	}
	auth := map[string]string{"Authorization": "Bearer secret"}
	r := tn.do(http.MethodDelete, "/internal/v1/debug/hints", nil, auth)
	if r.status != http.StatusOK || string(r.body) != "{\"wiped\":0}\n" && string(r.body) != "{\"wiped\":0}" {
		t.Errorf("DELETE with the token = %d %q, want 200 {\"wiped\":0}", r.status, r.body)
	}
	if r := tn.do(http.MethodGet, "/internal/v1/debug/hints", nil, auth); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "DELETE" {
		t.Errorf("GET = %d Allow %q, want 405 Allow DELETE", r.status, r.header.Get("Allow"))
	}
}
