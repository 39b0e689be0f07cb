package client

import (
	"encoding/json"
	"testing"
	"time"
)

func TestClusterStatusDecodesTheCoordinatorsPeers(t *testing.T) {
	raw := `{"node":"a","coordinator":{"in_flight":2,"hedges":9,"peers":[
		{"id":"b","unreachable":true,"since":"2024-05-06T12:01:02Z","misses":3,"trips":1,"p99_ms":0,"hedge_after_ms":0},
		{"id":"c","unreachable":false,"misses":0,"trips":1,"p99_ms":1.25,"hedge_after_ms":50}]}}`
	var st ClusterStatus
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatal(err)
	}
	c := st.Coordinator
	if c.InFlight != 2 || c.Hedges != 9 || len(c.Peers) != 2 {
		t.Fatalf("coordinator = %+v, want in_flight 2, hedges 9, two peers", c)
	}
	b, cp := c.Peers[0], c.Peers[1]
	if b.ID != "b" || !b.Unreachable || !b.Since.Equal(time.Date(2024, 5, 6, 12, 1, 2, 0, time.UTC)) || b.Misses != 3 || b.Trips != 1 {
		t.Errorf("peer b = %+v", b)
	}
	if cp.ID != "c" || cp.Unreachable || !cp.Since.IsZero() || cp.P99Ms != 1.25 || cp.HedgeAfterMs != 50 {
		t.Errorf("peer c = %+v, want reachable with no since, p99 1.25ms, hedge after 50ms", cp)
	}
	// Encoded again, a reachable peer has no since, as the node sends it.
	out, err := json.Marshal(cp)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"c","unreachable":false,"misses":0,"trips":1,"p99_ms":1.25,"hedge_after_ms":50}`; string(out) != want {
		t.Errorf("peer c encodes as %s, want %s", out, want)
	}
}
