package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/replication/rpc/transport"
	"github.com/dynkv/dynkv/test/testnode"
	"github.com/dynkv/dynkv/vclock"
)

// TestGossipKeyAdmitsOnlyMembers runs three nodes with --gossip-key and
// nothing else (no TLS, no tokens), so that the gossip keyring and the
// HMAC over node-to-node calls are all that keeps strangers out:
//   - a fourth node with another key is never admitted (it cannot read
//     the gossip);
//   - a stranger that reaches the HTTP port cannot write through the RPC:
//     not over the HTTP/2 RPC (kept for nodes of older versions), over
//     HTTP/2 or HTTP/1.1, unsigned, signed with another key or with a
//     stale time; nor over the transport, without the keyed handshake or
//     with another key;
//   - replication (W=3), hinted handoff and anti-entropy work with the
//     signatures on.
func TestGossipKeyAdmitsOnlyMembers(t *testing.T) {
	key, otherKey := randomSecret(t, 32), randomSecret(t, 32)
	c := testnode.Start(t, 3, testnode.Options{
		Args: []string{
			"--replicas", "3", "--write-quorum", "2", "--read-quorum", "2",
			"--hint-interval", "200ms", "--aae-interval", "300ms",
		},
		NodeArgs: func(i int, _ string) []string {
			if i >= 3 {
				return []string{"--gossip-key", otherKey}
			}
			return []string{"--gossip-key", key}
		},
	})
	t.Run("replication at W=3", func(t *testing.T) { checkW3(t, c) })
	t.Run("stranger with another key is not admitted", func(t *testing.T) { checkStrangerNotAdmitted(t, c) })
	t.Run("forged RPC is refused", func(t *testing.T) { checkForgedRPC(t, c.Nodes[1], key, otherKey) })
	t.Run("stranger on the transport is refused", func(t *testing.T) {
		checkTransportStranger(t, c.Nodes[1], "", "hmac/transport/unkeyed")
		checkTransportStranger(t, c.Nodes[1], otherKey, "hmac/transport/another-key")
	})
	t.Run("hints and anti-entropy", func(t *testing.T) { checkHintsAndAAE(t, c) })
}

func checkW3(t *testing.T, c *testnode.Cluster) {
	mustPut(t, c.Nodes[0], "hmac/w3", []byte("signed"), testnode.KV{W: 3})
	for _, nd := range c.Nodes[:3] {
		if l, err := nd.LocalGet(0, "hmac/w3"); err != nil || !l.Found {
			t.Errorf("local copy on %s after a W=3 write: %+v, %v; want found", nd.ID(), l, err)
		}
	}
}

// checkStrangerNotAdmitted starts a fourth node with another gossip key
// and has it ask to join node 0 (POST /cluster/join, as an operator
// would): the join fails saying why, and for several gossip rounds no
// member lists it and it lists no member.
func checkStrangerNotAdmitted(t *testing.T, c *testnode.Cluster) {
	loner := c.NewDetachedNode()
	// Its join is bound to fail; do not wait the default 10s for it.
	loner.SetArgs(append(loner.Args(), "--join-timeout", "3s"))
	loner.Start()
	defer loner.Stop()
	r, err := loner.Join(c.Nodes[0].GossipAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("POST /cluster/join from a node with another key: %s", r)
	if r.Status < 400 || !strings.Contains(string(r.Body), "no installed keys could decrypt") {
		t.Errorf("POST /cluster/join from a node with another key = %s, want an error saying the keys differ", r)
	}
	if !strings.Contains(string(r.Body), "within 3s") {
		t.Errorf("POST /cluster/join from a node run with --join-timeout 3s = %s, want it to give up within 3s", r)
	}
	members := c.Nodes[:3]
	for round := range 5 { // 5 x the 300ms probe interval
		time.Sleep(300 * time.Millisecond)
		st, err := testnode.Statuses(append(slices.Clone(members), loner))
		if err != nil {
			t.Fatal(err)
		}
		for _, nd := range members {
			if _, ok := st[nd.ID()].Member(loner.ID()); ok {
				t.Fatalf("round %d: %s lists the stranger %s: %s", round, nd.ID(), loner.ID(), st[nd.ID()].Raw)
			}
			if _, ok := st[loner.ID()].Member(nd.ID()); ok {
				t.Fatalf("round %d: the stranger lists member %s: %s", round, nd.ID(), st[loner.ID()].Raw)
			}
		}
	}
}

// capturedCall is a node-to-node request as rpc.Client sends it.
type capturedCall struct {
	path string
	body []byte
}

// captureMerge has a rpc.Client send a merge of key over the
// HTTP/2 RPC to a server that only records it, so the test holds a
// well-formed frame to forge with.
func captureMerge(t *testing.T, key string) capturedCall {
	t.Helper()
	var (
		mu  sync.Mutex
		got capturedCall
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = capturedCall{path: r.URL.Path, body: b}
		mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	set, _ := vclock.Set{}.Update("intruder", vclock.Context{}, vclock.Sibling{
		Value: []byte("forged"), ContentType: "text/plain", LastModified: time.Now().UnixNano(),
	})
	rc := rpc.NewClient(rpc.ClientConfig{Retries: -1, Timeout: 10 * time.Second, HTTP2Only: true})
	defer rc.Close()
	_ = rc.Merge(context.Background(), ln.Addr().String(), 0, []byte(key), set)
	mu.Lock()
	defer mu.Unlock()
	if got.body == nil {
		t.Fatal("the capture server saw no merge")
	}
	return got
}

// checkForgedRPC posts well-formed merge frames straight to nd's RPC, as a
// stranger on the network would, over h2c and HTTP/1.1: unsigned, signed
// with another key and signed with the cluster's key but ten minutes old
// are refused with 401 and not written; the same frame signed properly is
// written, which shows the frames themselves were good.
func checkForgedRPC(t *testing.T, nd *testnode.Node, key, otherKey string) {
	keys := func(b64 string) *rpc.PeerKeys {
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		k, err := rpc.NewPeerKeys([][]byte{raw})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	member, stranger := keys(key), keys(otherKey)
	var h2c, h1 http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	h1.SetHTTP1(true)
	for _, proto := range []struct {
		name string
		p    *http.Protocols
	}{{"h2c", &h2c}, {"HTTP/1.1", &h1}} {
		tr := &http.Transport{Protocols: proto.p}
		hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for _, tc := range []struct {
			name       string
			sign       func(*http.Request, []byte) error
			wantStatus int
			wantSaying string
		}{
			{"unsigned", func(*http.Request, []byte) error { return nil }, http.StatusUnauthorized, "no X-Dynkv-Auth header"},
			{"another key", func(r *http.Request, b []byte) error { return stranger.Sign(r, b, time.Now()) }, http.StatusUnauthorized, "none of this node's keys"},
			{"stale", func(r *http.Request, b []byte) error { return member.Sign(r, b, time.Now().Add(-10*time.Minute)) }, http.StatusUnauthorized, "check NTP"},
			{"garbage header", func(r *http.Request, b []byte) error {
				r.Header.Set(rpc.PeerAuthHeader, "v1 t=0 n=00 h=00 b=00")
				return nil
			}, http.StatusUnauthorized, "hex digits"},
			{"genuine", func(r *http.Request, b []byte) error { return member.Sign(r, b, time.Now()) }, http.StatusOK, ""},
		} {
			k := fmt.Sprintf("hmac/%s/%s", proto.name, strings.ReplaceAll(tc.name, " ", "-"))
			call := captureMerge(t, k)
			req, err := http.NewRequest(http.MethodPost, nd.URL()+call.path, bytes.NewReader(call.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-dynkv-rpc")
			if err := tc.sign(req, call.body); err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%s %s merge: %v", proto.name, tc.name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || !bytes.Contains(body, []byte(tc.wantSaying)) {
				t.Errorf("%s %s merge: %d %q, want %d saying %q", proto.name, tc.name, resp.StatusCode, body, tc.wantStatus, tc.wantSaying)
			}
			l, err := nd.LocalGet(0, k)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.wantStatus == http.StatusOK; l.Found != want {
				t.Errorf("%s %s merge: local copy found=%v on %s, want %v", proto.name, tc.name, l.Found, nd.ID(), want)
			}
		}
		tr.CloseIdleConnections()
	}
}

// checkTransportStranger has a rpc.Client call nd's transport as
// a stranger: keyed with the gossip key b64 (none when empty), which is
// not the cluster's. The merge of key must be refused as unauthorized,
// saying why, and not written.
func checkTransportStranger(t *testing.T, nd *testnode.Node, b64, key string) {
	t.Helper()
	var ring *transport.Keyring
	if b64 != "" {
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		if ring, err = transport.NewKeyring([][]byte{raw}); err != nil {
			t.Fatal(err)
		}
	}
	set, _ := vclock.Set{}.Update("intruder", vclock.Context{}, vclock.Sibling{
		Value: []byte("forged"), ContentType: "text/plain", LastModified: time.Now().UnixNano(),
	})
	rc := rpc.NewClient(rpc.ClientConfig{Keys: ring, Retries: -1, Timeout: 10 * time.Second})
	err := rc.Merge(context.Background(), nd.Addr(), 0, []byte(key), set)
	rc.Close()
	if !errors.Is(err, rpc.ErrUnauthorized) || !strings.Contains(err.Error(), "--gossip-key") {
		t.Errorf("transport merge of %q by a stranger (key %q): %v, want ErrUnauthorized naming --gossip-key", key, b64, err)
	}
	if l, err := nd.LocalGet(0, key); err != nil || l.Found {
		t.Errorf("local copy of %q on %s after a stranger's transport merge: %+v, %v; want none", key, nd.ID(), l, err)
	}
}

// checkHintsAndAAE kills node 2 and writes 20 keys at W=2: the hints for
// the first 10 are wiped, so only anti-entropy can bring those; the last
// 10 go by hinted handoff. Both run over signed RPC only.
func checkHintsAndAAE(t *testing.T, c *testnode.Cluster) {
	n0, n1, n2 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	n2.MustKill()
	const keys = 20
	for i := range keys {
		if i == keys/2 {
			// Each of these writes leaves one hint for n2 on its
			// coordinator, stored once the merge to n2 has failed, after
			// the write's acknowledgement: wait for all of them, so that
			// none is stored after the wipe.
			testutil.Eventually(t, time.Minute, 50*time.Millisecond, "a hint for each of the first writes", func() bool {
				held := 0
				for _, nd := range []*testnode.Node{n0, n1} {
					n, _ := hintsFor(t, nd, n2.ID())
					held += n
				}
				return held >= keys/2
			})
			testnode.WipeAllHints(t, time.Minute, n0, n1)
		}
		mustPut(t, []*testnode.Node{n0, n1}[i%2], fmt.Sprintf("hmac/miss-%02d", i), []byte(fmt.Sprintf("v%d", i)), testnode.KV{W: 2})
	}
	n2.Restart()
	start := time.Now()
	for {
		missing, held := 0, 0
		for i := range keys {
			k := fmt.Sprintf("hmac/miss-%02d", i)
			l, err := n2.LocalGet(0, k)
			if err != nil {
				t.Fatal(err)
			}
			if !l.Found {
				missing++
			}
		}
		for _, nd := range []*testnode.Node{n0, n1} {
			n, _ := hintsFor(t, nd, n2.ID())
			held += n
		}
		if missing == 0 && held == 0 {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("a minute after its restart %s lacks %d of %d keys and %d hints for it are held; aae %+v, hints %+v",
				n2.ID(), missing, keys, held, fetchAAEStatus(t, n2), fetchHintStatus(t, n0))
		}
		time.Sleep(100 * time.Millisecond)
	}
	delivered := fetchHintStatus(t, n0).Hints.Delivered + fetchHintStatus(t, n1).Hints.Delivered
	moved := fetchAAEStatus(t, n2).KeysPulled + fetchAAEStatus(t, n0).KeysPushed + fetchAAEStatus(t, n1).KeysPushed
	t.Logf("%s caught up %.2fs after its restart: %d hints delivered, %d keys moved by anti-entropy",
		n2.ID(), time.Since(start).Seconds(), delivered, moved)
	if delivered == 0 {
		t.Errorf("no hint delivered, want the ones for the last %d writes", keys/2)
	}
	if moved < keys/2 {
		t.Errorf("anti-entropy moved %d keys, want at least the %d whose hints were wiped", moved, keys/2)
	}
}

// TestGossipKeyRotatesAcrossARunningCluster rotates the gossip key of a
// running three-node cluster from A to B by the three rolling restarts of
// docs/operations.md ("A,B", "B,A", "B" on every node in turn). After each
// restart every node sees every other alive on one ring, and a write at
// W=3 coordinated by the next node succeeds, so the keyed transport
// crosses the mixed keys too. At the end a call signed with A alone is
// refused, over the HTTP/2 RPC and over the transport.
func TestGossipKeyRotatesAcrossARunningCluster(t *testing.T) {
	keyA, keyB := randomSecret(t, 32), randomSecret(t, 32)
	c := testnode.Start(t, 3, testnode.Options{Args: []string{
		"--replicas", "3", "--write-quorum", "3", "--read-quorum", "2", "--gossip-key", keyA,
	}})
	allAlive := func(s map[string]testnode.Status) error {
		if err := testnode.Agreed(s, c.IDs()); err != nil {
			return err
		}
		for id, st := range s {
			for _, m := range st.Members {
				if m.State != testnode.StateAlive {
					return fmt.Errorf("node %s sees %s %s", id, m.ID, m.State)
				}
			}
		}
		return nil
	}
	start := time.Now()
	writes := 0
	for _, step := range []string{keyA + "," + keyB, keyB + "," + keyA, keyB} {
		for i, nd := range c.Nodes {
			nd.Stop()
			nd.SetArgs(withFlag(nd.Args(), "--gossip-key", step))
			nd.Restart()
			c.WaitStatus(30*time.Second, nil, allAlive)
			// The restarted node's peers may take a probe to mark it
			// alive again; a W=3 write needs all three.
			next := c.Nodes[(i+1)%len(c.Nodes)]
			key := fmt.Sprintf("rotate/%d", writes)
			writes++
			putW3(t, next, key, 10*time.Second)
		}
	}
	t.Logf("rotated A -> B in 9 restarts, %.1fs, %d writes at W=3 in between", time.Since(start).Seconds(), writes)

	call := captureMerge(t, "rotate/old-key")
	raw, _ := base64.StdEncoding.DecodeString(keyA)
	old, err := rpc.NewPeerKeys([][]byte{raw})
	if err != nil {
		t.Fatal(err)
	}
	nd := c.Nodes[0]
	req, _ := http.NewRequest(http.MethodPost, nd.URL()+call.path, bytes.NewReader(call.body))
	if err := old.Sign(req, call.body, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := nd.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a merge signed with the rotated-out key = %d %q, want 401", resp.StatusCode, body)
	}
	checkTransportStranger(t, nd, keyA, "rotate/old-key-transport")
}

// withFlag returns args with flag's value set to value (appended when
// absent).
func withFlag(args []string, flag, value string) []string {
	out := slices.Clone(args)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == flag {
			out[i+1] = value
			return out
		}
	}
	return append(out, flag, value)
}

// putW3 writes key at W=3 through nd, retrying a 503 until within passes:
// right after a restart a peer may not yet have seen the node alive.
func putW3(t *testing.T, nd *testnode.Node, key string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := nd.Put(key, []byte("v"), testnode.KV{W: 3})
		if err == nil && r.Status == http.StatusNoContent {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PUT %s at W=3 via %s: %v %s", key, nd.ID(), err, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
