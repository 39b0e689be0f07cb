package testnode

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// WipeHints drops every hint the node holds, through DELETE
// /internal/v1/debug/hints, so that a chaos test can force replicas to
// converge through anti-entropy alone.
func (n *Node) WipeHints() error {
	_, err := n.WipeHintsCount()
	return err
}

// WipeHintsCount is WipeHints, returning how many hints it dropped. A
// coordinator stores a hint for a dead replica after the write's
// acknowledgement, once the merge to it has failed, so a test that must
// see no hint wipes until a wipe finds none.
func (n *Node) WipeHintsCount() (int, error) {
	const path = "/internal/v1/debug/hints"
	r, err := n.Do(Request{Method: http.MethodDelete, Path: path})
	if err != nil {
		return 0, err
	}
	if r.Status != http.StatusOK && r.Status != http.StatusNoContent {
		return 0, fmt.Errorf("node %s: DELETE %s: %s, want 200 or 204", n.id, path, r)
	}
	var b struct {
		Wiped int `json:"wiped"`
	}
	if r.Status == http.StatusOK {
		if err := json.Unmarshal(r.Body, &b); err != nil {
			return 0, fmt.Errorf("node %s: DELETE %s: body %q: %w", n.id, path, r.Body, err)
		}
	}
	return b.Wiped, nil
}

// WipeAllHints wipes the hints of every node once nothing can add one: a
// coordinator stores a hint after a write's acknowledgement, when the
// merge beyond W fails, so a pass is only final when every node reported
// no coordinator work in flight (/cluster/status coordinator.in_flight)
// before it and the pass then found no hint. Call it once the clients have
// stopped. It fails tb after within.
func WipeAllHints(tb testing.TB, within time.Duration, nodes ...*Node) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		if time.Now().After(deadline) {
			tb.Fatalf("hints or coordinator work still appearing after %s of wiping", within)
		}
		busy := 0
		for _, nd := range nodes {
			st, err := nd.Status()
			if err != nil {
				tb.Fatalf("reading coordinator work in flight: %v", err)
			}
			busy += int(st.Coordinator.InFlight)
		}
		wiped := 0
		for _, nd := range nodes {
			n, err := nd.WipeHintsCount()
			if err != nil {
				tb.Fatalf("wiping hints: %v", err)
			}
			wiped += n
		}
		if busy == 0 && wiped == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
