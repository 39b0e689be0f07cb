package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynkv/dynkv/client"
)

// syncBuffer is an io.Writer the node's goroutines and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer runs `dynkv server` in-process on free ports and returns its
// HTTP URL and a stop function that returns the exit status.
func startServer(t *testing.T, dataDir string, extra ...string) (addr string, logs *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	started := make(chan string, 1)
	exited := make(chan int, 1)
	args := append([]string{"--id", "t1", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0",
		"--gossip-addr", "127.0.0.1:0", "--resp-addr", "", "--log-format", "json"}, extra...)
	go func() {
		exited <- runServer(ctx, args, envOf(nil), &bytes.Buffer{}, logs, func(a string) { started <- a })
	}()
	select {
	case a := <-started:
		addr = "http://" + a
	case code := <-exited:
		cancel()
		t.Fatalf("server exited with %d before starting; log:\n%s", code, logs.String())
	}
	var once sync.Once
	var code int
	stop = func() int {
		once.Do(func() {
			cancel()
			code = <-exited
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return addr, logs, stop
}

func TestServerServesClientCommandsAndStopsCleanly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	addr, logs, stop := startServer(t, dir, "--auth-token", "secret")
	env := envOf(map[string]string{"DYNKV_ADDR": addr, "DYNKV_AUTH_TOKEN": "secret"})
	var out, errOut bytes.Buffer
	if code := run([]string{"put", "greeting", "hello, world", "--content-type", "text/plain"}, env, nil, &out, &errOut); code != exitOK {
		t.Fatalf("put: exit %d stderr %q", code, errOut.String())
	}
	putCtx := strings.TrimSpace(out.String())
	out.Reset()
	if code := run([]string{"get", "greeting"}, env, nil, &out, &errOut); code != exitOK || out.String() != "hello, world" {
		t.Fatalf("get: exit %d stdout %q stderr %q", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run([]string{"delete", "greeting", "--context", putCtx}, env, nil, &out, &errOut); code != exitOK {
		t.Fatalf("delete: exit %d stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"get", "greeting"}, env, nil, &out, &errOut); code != exitNotFound {
		t.Fatalf("get after delete: exit %d stderr %q, want %d", code, errOut.String(), exitNotFound)
	}
	noToken := envOf(map[string]string{"DYNKV_ADDR": addr})
	errOut.Reset()
	if code := run([]string{"get", "greeting"}, noToken, nil, &out, &errOut); code != exitFailure {
		t.Fatalf("get without the token: exit %d stderr %q, want %d", code, errOut.String(), exitFailure)
	}

	if code := stop(); code != exitOK {
		t.Fatalf("server exit %d after cancel, want 0; log:\n%s", code, logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Fatalf("no info \"stopped\" line in the log:\n%s", logs.String())
	}

	// The data survives a restart in the same directory.
	addr, _, stop = startServer(t, dir)
	out.Reset()
	if code := run([]string{"put", "again", "v"}, envOf(map[string]string{"DYNKV_ADDR": addr}), nil, &out, &errOut); code != exitOK {
		t.Fatalf("put after restart: exit %d stderr %q", code, errOut.String())
	}
	if code := stop(); code != exitOK {
		t.Fatalf("second server exit %d", code)
	}
}

func TestServerThatCannotListenExitsThree(t *testing.T) {
	addr, _, _ := startServer(t, filepath.Join(t.TempDir(), "a"))
	hostPort := strings.TrimPrefix(addr, "http://")
	var stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := runServer(ctx, []string{"--data-dir", filepath.Join(t.TempDir(), "b"), "--http-addr", hostPort, "--resp-addr", ""},
		envOf(nil), &bytes.Buffer{}, &stderr, nil)
	if code != exitFailure {
		t.Fatalf("second server on a busy port: exit %d, want %d; stderr:\n%s", code, exitFailure, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "dynkv: ") || !strings.Contains(last, hostPort) {
		t.Fatalf("last stderr line %q, want the one-line failure naming the address", last)
	}
}

func TestClusterCommandsAgainstAOneNodeServer(t *testing.T) {
	addr, _, _ := startServer(t, filepath.Join(t.TempDir(), "data"))
	env := envOf(map[string]string{"DYNKV_ADDR": addr})
	var out, errOut bytes.Buffer
	if code := run([]string{"cluster", "status"}, env, nil, &out, &errOut); code != exitOK {
		t.Fatalf("cluster status: exit %d stderr %q", code, errOut.String())
	}
	table := out.String()
	for _, want := range []string{"ID", "STATE", "GOSSIP", "HTTP", "RING%", "TARGET%", "HINTS", "HANDOFF", "t1", "alive", "100.0", "N=1 R=1 W=1"} {
		if !strings.Contains(table, want) {
			t.Errorf("cluster status output lacks %q:\n%s", want, table)
		}
	}

	out.Reset()
	if code := run([]string{"cluster", "status", "--output", "json"}, env, nil, &out, &errOut); code != exitOK {
		t.Fatalf("cluster status --output json: exit %d stderr %q", code, errOut.String())
	}
	var st client.ClusterStatus
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.Node != "t1" || len(st.Members) != 1 || st.Members[0].RingShare != 1 {
		t.Fatalf("cluster status JSON = %+v, %v; want node t1 owning the whole ring\n%s", st, err, out.String())
	}

	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"cluster", "leave", "--node", "t1"}, exitUsage},      // 400: that is this node
		{[]string{"cluster", "leave", "--node", "ghost"}, exitFailure}, // 404: no such member
		{[]string{"cluster", "join"}, exitUsage},
	} {
		errOut.Reset()
		if code := run(c.args, env, nil, &out, &errOut); code != c.code {
			t.Errorf("%v: exit %d stderr %q, want %d", c.args, code, errOut.String(), c.code)
		}
	}
}

func TestPrintStatusShowsATransitionAndHandoffProgress(t *testing.T) {
	var st client.ClusterStatus
	raw := `{"node":"a","n":3,"r":2,"w":2,"partitions":256,"epoch":4,"ring_fingerprint":"00ff","coordinator":{"in_flight":7},
		"quarantine":{"total":3,"data":2,"hints":1,"held":5,"dir":"d/quarantine"},
		"transition":{"target":["a","b","c"],"fingerprint":"0abc","members_done":1,"members_total":3},
		"members":[{"id":"a","state":"alive","gossip_addr":"h:1","http_addr":"h:2","ring_share":0.5,"target_share":0.33,
		  "handoff":{"sent":10,"total":40,"done":false}},
		  {"id":"c","state":"joining","gossip_addr":"h:5","http_addr":"h:6","target_share":0.33,"handoff":{"done":true}}]}`
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printStatus(&out, st)
	for _, want := range []string{"epoch 4", "transition to [a b c]", "1 of 3 members done", "10/40", "joining", "done", "50.0", "33.0",
		"in flight 7", "quarantined 3 since start (data 2, hints 1, WAL records 0, checkpoints 0; 0 failed), 5 held in d/quarantine"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestPrintStatusOmitsAnEmptyQuarantine(t *testing.T) {
	var out bytes.Buffer
	printStatus(&out, client.ClusterStatus{Node: "a", N: 1, R: 1, W: 1})
	if strings.Contains(out.String(), "quarantined") || strings.Contains(out.String(), "unreachable") ||
		!strings.Contains(out.String(), "in flight 0") {
		t.Fatalf("status of a node with nothing quarantined and no peer unreachable:\n%s", out.String())
	}
}

func TestPrintStatusListsUnreachablePeersOnly(t *testing.T) {
	var st client.ClusterStatus
	raw := `{"node":"a","n":3,"r":2,"w":2,"partitions":256,"epoch":4,"ring_fingerprint":"00ff",
		"coordinator":{"in_flight":0,"hedges":12,"peers":[
		  {"id":"b","unreachable":false,"misses":1,"trips":2,"p99_ms":1.5,"hedge_after_ms":50},
		  {"id":"n2","unreachable":true,"since":"2024-05-06T12:01:02Z","misses":3,"trips":1,"p99_ms":2,"hedge_after_ms":0},
		  {"id":"n3","unreachable":true,"since":"2024-05-06T14:01:02+02:00","misses":7,"trips":4,"p99_ms":0,"hedge_after_ms":0}]},
		"members":[{"id":"a","state":"alive","gossip_addr":"h:1","http_addr":"h:2","ring_share":1,"target_share":1}]}`
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printStatus(&out, st)
	want := "unreachable peers (calls failing, routed around): n2 since 12:01:02 (3 misses, 1 trips), n3 since 12:01:02 (7 misses, 4 trips)\n"
	if !strings.Contains(out.String(), want) || strings.Contains(out.String(), " b ") {
		t.Errorf("status output lacks %q, or lists reachable b:\n%s", want, out.String())
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[1], "unreachable peers") || !strings.HasPrefix(lines[2], "ID") {
		t.Errorf("the unreachable line should follow the header, before the member table:\n%s", out.String())
	}

	// An unreachable peer without a since is listed without one.
	if got := unreachablePeers([]client.PeerHealth{{ID: "x", Unreachable: true, Misses: 3}}); got != "x (3 misses, 0 trips)" {
		t.Errorf("unreachablePeers without since = %q", got)
	}
	if got := unreachablePeers([]client.PeerHealth{{ID: "x", Misses: 2}}); got != "" {
		t.Errorf("unreachablePeers of reachable peers = %q, want empty", got)
	}
}
