package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dynkv/dynkv/node"
)

// TestZeroConfigWithDefaultsServesOneNode pins down the config habit: a
// zero Config, given only a data directory and loopback ports, after the
// defaults step validates and starts a one-node server that serves a PUT
// and then a GET.
func TestZeroConfigWithDefaultsServesOneNode(t *testing.T) {
	var c node.Config
	c.DataDir = t.TempDir()
	c.HTTPAddr = "127.0.0.1:0"
	c.GossipAddr = "127.0.0.1:0"
	// Not strictly the config's business: CI disks may hold less than the
	// default free-space floor.
	c.MinFreeBytes = 1 << 20
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("zero Config after WithDefaults: Validate = %v, want nil", err)
	}
	n, err := node.New(c, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := n.Start(); err != nil {
		_ = n.Shutdown(context.Background())
		t.Fatalf("Start: %v", err)
	}
	tr := &http.Transport{}
	t.Cleanup(func() {
		if err := n.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		tr.CloseIdleConnections()
	})
	client := &http.Client{Transport: tr}
	base := "http://" + n.Addr()

	req, err := http.NewRequest(http.MethodPut, base+"/kv/zero", strings.NewReader("value"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT /kv/zero = %d, want 204", resp.StatusCode)
	}
	resp, err = client.Get(base + "/kv/zero")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "value" {
		t.Fatalf("GET /kv/zero = %d %q (%v), want 200 \"value\"", resp.StatusCode, body, err)
	}
}

// TestDefaultConfigIsTheZeroConfigWithDefaults: the defaults are defined
// once, in WithDefaults; DefaultConfig adds only the Redis-protocol address.
// TestDefaultConfigKeepsTheDocumentedDefaults pins the values `dynkv
// server` starts with (SPEC.md's flag table and the docs): most now come
// from a component's constant (coordinator, store, rpc, hints, handoff,
// antientropy), so a change there would otherwise change a flag's default
// unnoticed.
func TestDefaultConfigKeepsTheDocumentedDefaults(t *testing.T) {
	d := node.DefaultConfig()
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"ID", d.ID, host},
		{"DataDir", d.DataDir, "./data"},
		{"HTTPAddr", d.HTTPAddr, "127.0.0.1:8080"},
		{"GossipAddr", d.GossipAddr, "127.0.0.1:7946"},
		{"RESPAddr", d.RESPAddr, "127.0.0.1:6380"},
		{"Replicas", d.Replicas, 3},
		{"ReadQuorum", d.ReadQuorum, 2},
		{"WriteQuorum", d.WriteQuorum, 2},
		{"Fsync", d.Fsync, "always"},
		{"MaxValueBytes", d.MaxValueBytes, 1 << 20},
		{"Databases", d.Databases, 16},
		{"TombstoneGrace", d.TombstoneGrace, 24 * time.Hour},
		{"MinFreeBytes", d.MinFreeBytes, int64(64 << 20)},
		{"RequestTimeout", d.RequestTimeout, 5 * time.Second},
		{"BlindWriteHedge", d.BlindWriteHedge, 50 * time.Millisecond},
		{"RPCTimeout", d.RPCTimeout, 2 * time.Second},
		{"HandoffRate", d.HandoffRate, int64(8 << 20)},
		{"HintInterval", d.HintInterval, time.Second},
		{"AAERate", d.AAERate, int64(4 << 20)},
		{"ReclaimInterval", d.ReclaimInterval, time.Second},
		{"CheckpointInterval", d.CheckpointInterval, 30 * time.Second},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("DefaultConfig().%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if z := (node.Config{RESPAddr: node.DefaultRESPAddr}).WithDefaults(); z.RequestTimeout != d.RequestTimeout || z.HandoffRate != d.HandoffRate {
		t.Errorf("the zero Config with defaults differs from DefaultConfig: %+v", z)
	}
}
