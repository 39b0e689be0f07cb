package testnode

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/dynkv/dynkv/client"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestNodeKeepsDataAndAddressesAcrossKillAndRestart checks the harness
// itself on one node: a write survives SIGKILL and SIGTERM restarts on the
// same addresses, and Pause really stops the process until Resume.
func TestNodeKeepsDataAndAddressesAcrossKillAndRestart(t *testing.T) {
	n := NewNode(t, 0, NodeOptions{})
	if want := "127.0.0.10:"; !strings.HasPrefix(n.Addr(), want) {
		t.Fatalf("node 0 HTTP address %q, want it on %s", n.Addr(), want)
	}
	n.Start()
	r, err := n.Put("harness/key", []byte("v1"), KV{})
	if err != nil || r.Status != http.StatusNoContent || r.Context == "" {
		t.Fatalf("PUT: got %v %v, want 204 with X-Context", r, err)
	}
	addr := n.Addr()
	n.MustKill()
	if n.Running() {
		t.Fatal("Running after Kill: got true, want false")
	}
	n.Restart()
	if n.Addr() != addr {
		t.Fatalf("address after restart %q, want %q", n.Addr(), addr)
	}
	r, err = n.Get("harness/key", KV{})
	if vals, verr := r.Values(); err != nil || verr != nil || r.Status != http.StatusOK || len(vals) != 1 || string(vals[0]) != "v1" {
		t.Fatalf("GET after kill and restart: got %v %v %v, want 200 \"v1\"", r, err, verr)
	}

	if err := n.Pause(); err != nil {
		t.Fatal(err)
	}
	if st, err := n.procState(); err != nil || st != 'T' {
		t.Fatalf("process state after Pause: got %q (%v), want T (stopped)", st, err)
	}
	if err := n.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := n.waitReady(ReadyTimeout); err != nil {
		t.Fatalf("after Resume: %v", err)
	}
	n.Stop()
	if !n.LogContains("=== testnode") {
		t.Fatalf("log %s lacks the harness's start lines", n.LogPath())
	}
}

func TestAgreedReportsWhatDiffers(t *testing.T) {
	member := func(id, state string, share float64) MemberStatus {
		return MemberStatus{ID: id, State: state, RingShare: share}
	}
	settled := func(node string, epoch uint64) Status {
		return Status{ClusterStatus: client.ClusterStatus{Node: node, Epoch: epoch, RingFingerprint: "f1", Members: []MemberStatus{
			member("a", StateAlive, 0.5), member("b", StateSuspect, 0.5), member("c", StateLeft, 0),
		}}}
	}
	cases := []struct {
		name string
		in   map[string]Status
		want []string
		ok   bool
	}{
		{"agree", map[string]Status{"a": settled("a", 2), "b": settled("b", 2)}, []string{"b", "a"}, true},
		{"epochs differ", map[string]Status{"a": settled("a", 2), "b": settled("b", 3)}, []string{"a", "b"}, false},
		{"member missing", map[string]Status{"a": settled("a", 2)}, []string{"a", "b", "d"}, false},
		{"transition pending", map[string]Status{"a": func() Status { s := settled("a", 2); s.Transition = &Transition{}; return s }()}, []string{"a", "b"}, false},
		{"no share", map[string]Status{"a": func() Status { s := settled("a", 2); s.Members[1].RingShare = 0; return s }()}, []string{"a", "b"}, false},
	}
	for _, tc := range cases {
		err := Agreed(tc.in, tc.want)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Agreed gave %v, want ok=%t", tc.name, err, tc.ok)
		}
	}
}

func TestLoopbackGivesEachNodeItsOwnAddress(t *testing.T) {
	seen := map[string]bool{}
	for i := range 8 {
		h := Loopback{}.Host(i)
		if seen[h] {
			t.Fatalf("Host(%d) = %s, already given to another node", i, h)
		}
		seen[h] = true
		addr, err := FreePort(h)
		if err != nil {
			t.Fatalf("FreePort(%s): %v", h, err)
		}
		if !strings.HasPrefix(addr, h+":") {
			t.Fatalf("FreePort(%s) = %s, want a port on that host", h, addr)
		}
	}
}

// TestNodeOptionsReachTheServer checks the per-node options on one node:
// the token lets WaitReady and Do through --auth-token, Env reaches the
// process, DataDir is the one used, and StartExpectingExit reports a
// refused start with the process's own output only.
func TestNodeOptionsReachTheServer(t *testing.T) {
	dir := t.TempDir()
	n := NewNode(t, 1, NodeOptions{
		DataDir: dir,
		Args:    []string{"--auth-token=tok"},
		Env:     []string{"DYNKV_MAX_VALUE_BYTES=100"},
		Token:   "tok",
	})
	if n.DataDir() != dir {
		t.Fatalf("DataDir() = %q, want %q", n.DataDir(), dir)
	}
	n.Start() // WaitReady would time out on 401 without the token
	if r, err := n.Put("opt/small", make([]byte, 100), KV{}); err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("PUT of 100 bytes with the token: got %v %v, want 204", r, err)
	}
	if r, err := n.Put("opt/big", make([]byte, 101), KV{}); err != nil || r.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("PUT of 101 bytes under DYNKV_MAX_VALUE_BYTES=100: got %v %v, want 413", r, err)
	}
	resp, err := n.HTTPClient().Get(n.URL() + "/kv/opt/small")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET through HTTPClient without a token: got %d, want 401 (HTTPClient adds no token)", resp.StatusCode)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("data dir %s after a write: %d entries (%v), want the node's files", dir, len(entries), err)
	}

	second := NewNode(t, 2, NodeOptions{DataDir: dir})
	code, out := second.StartExpectingExit()
	if code == 0 {
		t.Fatalf("second server on data dir %s: exit 0, want non-zero; output:\n%s", dir, out)
	}
	if strings.Contains(out, harnessLinePrefix) {
		t.Fatalf("StartExpectingExit output holds the harness's lines:\n%s", out)
	}
	if second.Running() {
		t.Fatal("Running after a refused start: got true, want false")
	}
	n.Stop()
}

func TestSeedReplaysTheEnvironment(t *testing.T) {
	const env = "DYNKV_TESTNODE_TEST_SEED"
	t.Setenv(env, "12345")
	if got := Seed(t, env); got != 12345 {
		t.Fatalf("Seed with %s=12345: got %d, want 12345", env, got)
	}
}
