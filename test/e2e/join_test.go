package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

// unansweredGossipAddr is a gossip address nothing listens on: a join of
// it is refused at once, attempt after attempt, until --join-timeout.
const unansweredGossipAddr = "127.0.0.1:1"

// TestFailedJoinLeavesTheNodeServing is issue 16: a one-node cluster
// asked to join an address that never answers gets 502 after
// --join-timeout and keeps serving (HTTP reads and writes, /ready, the
// Redis port) during the attempt and after it, with the same ring and the
// same ring.state, before and after a restart. Joins of its own addresses
// and malformed ones are 400. Afterwards it can still join a real cluster.
func TestFailedJoinLeavesTheNodeServing(t *testing.T) {
	t.Parallel()
	c := testnode.Start(t, 1, testnode.Options{}) // the cluster it finally joins
	respAddr, err := testnode.FreePort(testnode.Loopback{}.Host(1))
	if err != nil {
		t.Fatal(err)
	}
	nd := c.NewDetachedNode()
	nd.SetArgs(append(nd.Args(), "--join-timeout", "2s", "--resp-addr", respAddr))
	nd.Start()
	n := &node{nd}
	values := map[string]string{"before": "written before the join"}
	n.put(t, -1, "before", []byte(values["before"]), "")
	statusBefore, err := nd.Status()
	if err != nil {
		t.Fatal(err)
	}
	ringFile := filepath.Join(nd.DataDir(), "ring.state")
	fileBefore, err := os.ReadFile(ringFile)
	if err != nil {
		t.Fatal(err)
	}

	for _, body := range []string{`{"addrs": []}`, `{}`, `not json`, `{"addrs": ["no-port"]}`} {
		r := n.must(t, request{method: http.MethodPost, path: "/cluster/join", body: []byte(body), contentType: "application/json"})
		expectJSONError(t, "POST /cluster/join "+body, r, http.StatusBadRequest)
	}
	for _, own := range []struct{ addr, want string }{
		{nd.GossipAddr(), "own gossip address"},
		{nd.Addr(), "own HTTP address"},
	} {
		r, err := nd.Join(own.addr)
		if err != nil {
			t.Fatal(err)
		}
		expectJSONError(t, "joining its own address "+own.addr, &r, http.StatusBadRequest)
		if !strings.Contains(string(r.Body), own.want) {
			t.Errorf("joining its own address %s: %s, want an error saying it is this node's %s", own.addr, r, own.want)
		}
	}

	joined := make(chan testnode.Response, 1)
	start := time.Now()
	go func() {
		r, err := nd.Join(unansweredGossipAddr)
		if err != nil {
			r = testnode.Response{Body: []byte(err.Error())}
		}
		joined <- r
	}()
	// While the join is being attempted the node serves as before.
	time.Sleep(200 * time.Millisecond)
	values["during"] = "written during the join"
	n.put(t, -1, "during", []byte(values["during"]), "")
	expectServing(t, n, respAddr, values, "during the join attempt")
	select {
	case r := <-joined:
		t.Errorf("the join of %s ended (%s) before the checks of the node during it, after %v with --join-timeout 2s",
			unansweredGossipAddr, r, time.Since(start))
		joined <- r
	default:
	}
	r := <-joined
	expectJSONError(t, "POST /cluster/join of an address nothing answers", &r, http.StatusBadGateway)
	if !strings.Contains(string(r.Body), unansweredGossipAddr) {
		t.Errorf("failed join: %s, want the error to name %s", r, unansweredGossipAddr)
	}

	sameRing := func(when string) {
		t.Helper()
		st, err := nd.Status()
		if err != nil {
			t.Fatal(err)
		}
		if st.Epoch != statusBefore.Epoch || st.RingFingerprint != statusBefore.RingFingerprint || st.Transition != nil ||
			fmt.Sprint(st.Valid()) != fmt.Sprint([]string{nd.ID()}) {
			t.Errorf("%s: ring %s, want the one from before the join: %s", when, st.Summary(), statusBefore.Summary())
		}
	}
	expectServing(t, n, respAddr, values, "after the failed join")
	sameRing("after the failed join")
	if b, err := os.ReadFile(ringFile); err != nil || !bytes.Equal(b, fileBefore) {
		t.Errorf("ring.state after the failed join: %d bytes (%v), want the %d bytes from before, unchanged", len(b), err, len(fileBefore))
	}

	nd.Stop()
	nd.Start() // waits for /ready
	expectServing(t, n, respAddr, values, "restarted after the failed join")
	sameRing("restarted after the failed join")

	// A join that can succeed still does, and the node's data comes along.
	seed := c.Nodes[0]
	if r, err := nd.Join(seed.GossipAddr()); err != nil || r.Status != http.StatusOK {
		t.Fatalf("POST /cluster/join {addrs: [%s]} after the failed join: %v %v, want 200", seed.GossipAddr(), r, err)
	}
	c.WaitConverged(testnode.ConvergeTimeout, c.IDs()...)
	for k, v := range values {
		(&node{seed}).expectValue(t, -1, k, []byte(v))
	}
}

// expectServing checks that n serves: /ready, reads of values and a write
// over HTTP, and a write and reads on the Redis port.
func expectServing(t *testing.T, n *node, respAddr string, values map[string]string, when string) {
	t.Helper()
	if r := n.must(t, request{method: http.MethodGet, path: "/ready"}); r.Status != http.StatusOK {
		t.Fatalf("%s: GET /ready = %s, want 200", when, r)
	}
	for k, v := range values {
		if r := n.must(t, request{method: http.MethodGet, path: kvPath(-1, k)}); r.Status != http.StatusOK || string(r.Body) != v {
			t.Errorf("%s: GET %s = %s, want 200 %q", when, k, r, v)
		}
	}
	key := "probe/" + strings.ReplaceAll(when, " ", "-")
	n.put(t, -1, key, []byte(when), "")
	if r := n.must(t, request{method: http.MethodGet, path: kvPath(-1, key)}); r.Status != http.StatusOK || string(r.Body) != when {
		t.Errorf("%s: GET %s after its PUT = %s, want 200 %q", when, key, r, when)
	}

	rkey := "redis/" + key
	if got := respCall(t, respAddr, "SET", rkey, when); got != "+OK" {
		t.Errorf("%s: Redis SET = %q, want +OK", when, got)
	}
	if got := respCall(t, respAddr, "GET", rkey); got != when {
		t.Errorf("%s: Redis GET of what it SET = %q, want %q", when, got, when)
	}
	for k, v := range values {
		if got := respCall(t, respAddr, "GET", k); got != v {
			t.Errorf("%s: Redis GET %s = %q, want %q", when, k, got, v)
		}
	}
}

// respCall sends one Redis command on a new connection and returns the
// reply: a bulk string's content, "(nil)" for a null one, else the reply
// line itself ("+OK", "-ERR ...", ":1").
func respCall(t *testing.T, addr string, args ...string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("Redis %v: %v", args, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testnode.HTTPTimeout))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatalf("Redis %v: writing: %v", args, err)
	}
	rd := bufio.NewReader(conn)
	line, err := rd.ReadString('\n')
	if err != nil {
		t.Fatalf("Redis %v: reading the reply: %v", args, err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return line
	}
	size, err := strconv.Atoi(line[1:])
	if err != nil {
		t.Fatalf("Redis %v: bad bulk length %q", args, line)
	}
	if size < 0 {
		return "(nil)"
	}
	buf := make([]byte, size+2)
	if _, err := io.ReadFull(rd, buf); err != nil {
		t.Fatalf("Redis %v: reading a %d-byte bulk reply: %v", args, size, err)
	}
	return string(buf[:size])
}
