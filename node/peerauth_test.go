package node

import (
	"context"
	"testing"

	"github.com/dynkv/dynkv/node/internal/authguard"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const testGossipKey = "MDEyMzQ1Njc4OWFiY2RlZg=="

func TestPeerPolicyFollowsTheFlags(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		tlsCA, gossipKey      string
		tokens                []string
		mutualTLS, signed, bt bool
	}{
		{name: "nothing"},
		{name: "tokens only: bearer fallback", tokens: []string{"t"}, bt: true},
		{name: "gossip key", gossipKey: testGossipKey, signed: true},
		{name: "gossip key and tokens: no bearer", gossipKey: testGossipKey, tokens: []string{"t"}, signed: true},
		{name: "tls ca", tlsCA: "ca.pem", mutualTLS: true},
		{name: "tls ca and tokens: no bearer", tlsCA: "ca.pem", tokens: []string{"t"}, mutualTLS: true},
		{name: "both", tlsCA: "ca.pem", gossipKey: testGossipKey, tokens: []string{"t"}, mutualTLS: true, signed: true},
	} {
		n := &Node{cfg: Config{TLSCA: tc.tlsCA, GossipKey: tc.gossipKey, AuthTokens: tc.tokens}, tokens: authguard.HashTokens(tc.tokens)}
		got := n.peerPolicy()
		want := peerPolicy{mutualTLS: tc.mutualTLS, signed: tc.signed, bearer: tc.bt}
		if got != want {
			t.Errorf("%s: policy %+v, want %+v", tc.name, got, want)
		}
		if tok := n.peerToken(); (tok != "") != tc.bt {
			t.Errorf("%s: peer token %q sent, want one only under the bearer policy", tc.name, tok)
		}
	}
}

func TestOpenRPCOffLoopbackIsWarnedAboutOnce(t *testing.T) {
	for _, tc := range []struct {
		name, httpAddr, gossipKey string
		warn                      bool
	}{
		{"loopback", "127.0.0.1:0", "", false},
		{"all interfaces", "0.0.0.0:0", "", true},
		{"all interfaces, signed", "0.0.0.0:0", testGossipKey, false},
	} {
		core, logs := observer.New(zapcore.WarnLevel)
		cfg := testConfig(t)
		cfg.HTTPAddr, cfg.GossipKey = tc.httpAddr, tc.gossipKey
		n, err := New(cfg, zap.New(core))
		if err != nil {
			t.Fatalf("%s: New: %v", tc.name, err)
		}
		if err := n.Start(); err != nil {
			t.Fatalf("%s: Start: %v", tc.name, err)
		}
		_ = n.Shutdown(context.Background())
		warned := logs.FilterMessageSnippet("node-to-node RPC is unauthenticated").Len()
		if want := map[bool]int{true: 1, false: 0}[tc.warn]; warned != want {
			t.Errorf("%s: %d warnings about open RPC, want %d", tc.name, warned, want)
		}
	}
}

func TestLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:80": true, "localhost:1": true, "127.9.9.9:1": true,
		":8080": false, "0.0.0.0:1": false, "10.0.0.1:1": false, "example.com:1": false, "nonsense": false,
	} {
		if got := loopbackAddr(addr); got != want {
			t.Errorf("loopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}
