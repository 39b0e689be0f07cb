package node_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

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
func TestDefaultConfigIsTheZeroConfigWithDefaults(t *testing.T) {
	d := node.DefaultConfig()
	z := node.Config{RESPAddr: node.DefaultRESPAddr}.WithDefaults()
	d.Now, z.Now = nil, nil
	if d.ID != z.ID || d.DataDir != z.DataDir || d.BlindWriteHedge != z.BlindWriteHedge || d.RequestTimeout != z.RequestTimeout {
		t.Fatalf("DefaultConfig() = %+v, want %+v", d, z)
	}
}
