package cluster

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dynkv/dynkv/client"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/test/testnode"
	"github.com/dynkv/dynkv/vclock"
)

// secureCluster is a three-node cluster run as an operator would secure
// one: TLS with node certificates from one CA (--tls-cert, --tls-key,
// --tls-ca, so node-to-node calls are mutual TLS), a client bearer token
// (--auth-token, also the Redis AUTH password) and an encrypted gossip
// (--gossip-key). Node 0 also serves the Redis protocol, over TLS.
type secureCluster struct {
	*testnode.Cluster
	pki      *testnode.PKI
	token    string
	respAddr string // node 0's --resp-addr
}

// startSecureCluster starts it with N=3 R=2 W=2, hints offered every 200ms
// and anti-entropy turned down, so that only hinted handoff can bring a
// restarted node up to date.
func startSecureCluster(t *testing.T) *secureCluster {
	t.Helper()
	pki := testnode.NewPKI(t)
	token := randomSecret(t, 24)
	gossipKey := randomSecret(t, 32)
	respAddr, err := testnode.FreePort(testnode.Loopback{}.Host(0))
	if err != nil {
		t.Fatal(err)
	}
	c := testnode.Start(t, 3, testnode.Options{
		Args: []string{
			"--replicas", "3", "--read-quorum", "2", "--write-quorum", "2",
			"--hint-interval", "200ms", "--aae-interval", "1h",
			"--auth-token", token, "--gossip-key", gossipKey,
		},
		NodeArgs: func(i int, host string) []string {
			args := pki.ServerFlags(host)
			if i == 0 {
				args = append(args, "--resp-addr", respAddr)
			}
			return args
		},
		Token: token,
		TLS:   pki.ClientTLS(),
	})
	return &secureCluster{Cluster: c, pki: pki, token: token, respAddr: respAddr}
}

// randomSecret is n random bytes in standard base64 (what --gossip-key
// takes for n = 16, 24 or 32).
func randomSecret(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// httpsClient is an HTTP client with cfg; its connections are closed when
// the test ends, so no goroutine outlives it.
func httpsClient(t *testing.T, cfg *tls.Config) *http.Client {
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testnode.HTTPTimeout}
}

// TestSecureClusterServesOnlyItsOwnClientsAndMembers runs one secured
// cluster (see secureCluster) through everything its security promises:
// data round-trips over https (Go client and CLI) and reaches every replica
// over mutual TLS; clients without the token get 401 everywhere but /health;
// plain HTTP and clients that do not trust the CA get no data; strangers
// cannot call node-to-node RPC; Redis works over TLS with AUTH only; and a
// node restarted under TLS receives its hints over mutual TLS.
func TestSecureClusterServesOnlyItsOwnClientsAndMembers(t *testing.T) {
	sc := startSecureCluster(t)
	t.Run("HTTPSRoundTripReachesEveryReplica", sc.testRoundTrip)
	t.Run("CLIOverHTTPS", sc.testCLI)
	t.Run("UnauthenticatedClientGets401", sc.testClientAuth)
	t.Run("PlainHTTPAndUntrustedClientsGetNoData", sc.testTransportRefusals)
	t.Run("StrangerRPCIsRefused", sc.testStrangerRPC)
	t.Run("RedisOverTLSNeedsAUTH", sc.testRedis)
	// Last: it kills and restarts a node.
	t.Run("RestartedNodeReceivesHintsOverMutualTLS", sc.testHints)
}

// testRoundTrip: the Go client writes through one node and reads through
// another; a W=3 write succeeds, which needs both peers to have accepted
// the coordinator's merge over mutual TLS; every node's local store holds
// the value.
func (sc *secureCluster) testRoundTrip(t *testing.T) {
	n0, n1, n2 := sc.Nodes[0], sc.Nodes[1], sc.Nodes[2]
	hc := httpsClient(t, sc.pki.ClientTLS())
	newClient := func(nd *testnode.Node) *client.Client {
		cl, err := client.New([]string{nd.URL()}, client.WithHTTPClient(hc), client.WithToken(sc.token), client.WithRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	writes := []write{{"tls/w2", []byte("over https at w=2")}, {"tls/w3", []byte("over https at w=3")}}
	if _, err := newClient(n0).Put(ctx, writes[0].key, writes[0].value, client.PutOptions{W: 2}); err != nil {
		t.Fatalf("client PUT %q via %s over https: %v", writes[0].key, n0.ID(), err)
	}
	if _, err := newClient(n1).Put(ctx, writes[1].key, writes[1].value, client.PutOptions{W: 3}); err != nil {
		t.Fatalf("client PUT %q at W=3 via %s over https: %v (want success: every peer accepts the coordinator's mutual TLS)", writes[1].key, n1.ID(), err)
	}
	for _, w := range writes {
		res, err := newClient(n2).Get(ctx, w.key, client.GetOptions{R: 2})
		if err != nil {
			t.Fatalf("client GET %q via %s over https: %v", w.key, n2.ID(), err)
		}
		if len(res.Values) != 1 || string(res.Values[0].Value) != string(w.value) {
			t.Fatalf("client GET %q via %s: %d values %+v, want exactly %q", w.key, n2.ID(), len(res.Values), res.Values, w.value)
		}
	}
	// A client certificate from the cluster CA is accepted, not required.
	withCert, err := client.New([]string{n0.URL()}, client.WithHTTPClient(httpsClient(t, sc.pki.TLSWith(sc.pki.Client))),
		client.WithToken(sc.token), client.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := withCert.Get(ctx, writes[1].key, client.GetOptions{}); err != nil || len(res.Values) != 1 || string(res.Values[0].Value) != string(writes[1].value) {
		t.Fatalf("client GET %q via %s presenting a client certificate: %+v, %v; want %q", writes[1].key, n0.ID(), res, err, writes[1].value)
	}
	// The W=2 write's third copy may still be on its way.
	if hist, took, err := waitReplicas(sc.Nodes, writes, 3, 30*time.Second); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("every write on all 3 local stores after %v: %s", took.Round(time.Millisecond), fmtHist(hist))
	}
	// Every node-to-node call took the transport (mutual TLS and the
	// keyed handshake), none the HTTP/2 RPC kept for older nodes.
	for _, nd := range sc.Nodes {
		served := rpcServedByWay(t, nd)
		if served["transport"] == 0 || served["http2"] != 0 {
			t.Errorf("%s served node-to-node calls by way %v, want all over the transport", nd.ID(), served)
		}
	}
}

// rpcServedByWay sums a node's dynkv_rpc_calls_total{side="served"} by
// its via label.
func rpcServedByWay(t *testing.T, nd *testnode.Node) map[string]float64 {
	t.Helper()
	r, err := nd.Do(testnode.Request{Method: http.MethodGet, Path: "/metrics"})
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("GET /metrics on %s: %v %s", nd.ID(), err, r)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(r.Body), "\n") {
		if !strings.HasPrefix(line, "dynkv_rpc_calls_total{") || !strings.Contains(line, `side="served"`) {
			continue
		}
		_, via, _ := strings.Cut(line, `via="`)
		via, _, _ = strings.Cut(via, `"`)
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			out[via] += v
		}
	}
	return out
}

// testCLI: `dynkv put` and `get` reach an https node with --tls-ca and
// --auth-token as flags, and with the same settings from DYNKV_*; without
// the CA the handshake fails and without the token the node refuses.
func (sc *secureCluster) testCLI(t *testing.T) {
	n0, n2 := sc.Nodes[0], sc.Nodes[2]
	flags := []string{"--addr", n0.URL(), "--tls-ca", sc.pki.CA, "--auth-token", sc.token}
	if code, out, errOut := testnode.RunCLI(t, nil, "", append([]string{"put", "tls/cli", "from the cli"}, flags...)...); code != 0 {
		t.Fatalf("dynkv put over https: exit %d, stdout %q, stderr %q, want 0", code, out, errOut)
	}
	if code, out, errOut := testnode.RunCLI(t, nil, "", append([]string{"get", "tls/cli"}, flags...)...); code != 0 || strings.TrimRight(out, "\n") != "from the cli" {
		t.Fatalf("dynkv get over https: exit %d, stdout %q, stderr %q, want 0 and the value", code, out, errOut)
	}
	env := []string{"DYNKV_ADDR=" + n2.URL(), "DYNKV_TLS_CA=" + sc.pki.CA, "DYNKV_AUTH_TOKEN=" + sc.token}
	if code, out, errOut := testnode.RunCLI(t, env, "", "get", "tls/cli"); code != 0 || strings.TrimRight(out, "\n") != "from the cli" {
		t.Fatalf("dynkv get with DYNKV_ADDR, DYNKV_TLS_CA, DYNKV_AUTH_TOKEN: exit %d, stdout %q, stderr %q, want 0 and the value", code, out, errOut)
	}
	noCA := []string{"get", "tls/cli", "--addr", n0.URL(), "--auth-token", sc.token}
	if code, out, errOut := testnode.RunCLI(t, nil, "", noCA...); code != 3 || !strings.Contains(errOut, "certificate") || strings.Contains(out, "from the cli") {
		t.Errorf("dynkv get over https without --tls-ca: exit %d, stdout %q, stderr %q; want exit 3 and a certificate error", code, out, errOut)
	}
	noToken := []string{"get", "tls/cli", "--addr", n0.URL(), "--tls-ca", sc.pki.CA}
	if code, out, errOut := testnode.RunCLI(t, nil, "", noToken...); code != 3 || !strings.Contains(errOut, "401") || strings.Contains(out, "from the cli") {
		t.Errorf("dynkv get without --auth-token: exit %d, stdout %q, stderr %q; want exit 3 and the 401", code, out, errOut)
	}
}

// testClientAuth: over a trusted TLS connection, a request without a token
// or with a wrong one gets 401, a JSON error and a Bearer challenge on every
// data and cluster endpoint; /health and /ready answer without one.
func (sc *secureCluster) testClientAuth(t *testing.T) {
	nd := sc.Nodes[1]
	hc := nd.HTTPClient() // trusts the CA, adds no token
	joinBody := `{"addrs":["` + sc.Nodes[0].GossipAddr() + `"]}`
	guarded := []struct{ method, path, body string }{
		{http.MethodGet, "/kv/tls/w2", ""},
		{http.MethodPut, "/kv/tls/unauth", "x"},
		{http.MethodDelete, "/kv/tls/w2", ""},
		{http.MethodGet, "/db/1/kv/tls/w2", ""},
		{http.MethodPut, "/db/1/kv/tls/unauth", "x"},
		{http.MethodGet, "/cluster/status", ""},
		{http.MethodPost, "/cluster/join", joinBody},
		{http.MethodPost, "/cluster/leave", ""},
		{http.MethodPost, "/cluster/leave?node=" + sc.Nodes[2].ID(), ""},
		{http.MethodGet, "/metrics", ""},
		{http.MethodGet, "/internal/v1/debug/local/0/tls/w2", ""},
		{http.MethodDelete, "/internal/v1/debug/hints", ""},
	}
	for _, auth := range []string{"", "Bearer wrong-" + sc.token, "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+sc.token))} {
		for _, g := range guarded {
			st, h, body := send(t, hc, g.method, nd.URL()+g.path, g.body, auth)
			var doc struct {
				Error string `json:"error"`
			}
			if st != http.StatusUnauthorized {
				t.Errorf("%s %s with Authorization %q: got %d %q, want 401", g.method, g.path, auth, st, body)
				continue
			}
			if err := json.Unmarshal(body, &doc); err != nil || doc.Error == "" {
				t.Errorf("%s %s with Authorization %q: 401 body %q, want JSON {\"error\": ...}", g.method, g.path, auth, body)
			}
			if c := h.Get("WWW-Authenticate"); !strings.HasPrefix(c, "Bearer") {
				t.Errorf("%s %s with Authorization %q: WWW-Authenticate %q, want a Bearer challenge", g.method, g.path, auth, c)
			}
		}
	}
	// Nothing the refused requests asked for happened.
	if l, err := nd.LocalGet(0, "tls/unauth"); err != nil || l.Found {
		t.Errorf("local copy of tls/unauth on %s after refused PUTs: %+v, %v; want none", nd.ID(), l, err)
	}
	if err := checkExact(nd, "tls/w2", []byte("over https at w=2"), testnode.KV{}); err != nil {
		t.Errorf("after a refused DELETE: %v", err)
	}
	s, err := nd.Status()
	if err != nil {
		t.Fatal(err)
	}
	if err := testnode.Agreed(map[string]testnode.Status{nd.ID(): s}, sc.IDs()); err != nil {
		t.Errorf("after refused joins and leaves, want the ring unchanged: %v", err)
	}

	if st, _, body := send(t, hc, http.MethodGet, nd.URL()+"/health", "", ""); st != http.StatusOK {
		t.Errorf("GET /health without a token: got %d %q, want 200", st, body)
	}
	// Readiness probes need no secret either (SPEC section 3 lists /ready
	// with /health).
	if st, _, body := send(t, hc, http.MethodGet, nd.URL()+"/ready", "", ""); st != http.StatusOK {
		t.Errorf("GET /ready without a token: got %d %q, want 200", st, body)
	}
}

// send makes one request and returns its status, header and body.
func send(t *testing.T, hc *http.Client, method, url, body, auth string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body of a %d: %v", method, url, resp.StatusCode, err)
	}
	return resp.StatusCode, resp.Header, b
}

// testTransportRefusals: plain HTTP to the TLS port gets no data even with
// a valid token, and a client that does not trust the cluster CA fails the
// handshake before it sends anything.
func (sc *secureCluster) testTransportRefusals(t *testing.T) {
	nd := sc.Nodes[0]
	const key, value = "tls/w2", "over https at w=2"
	plainURL := "http://" + nd.Addr() + "/kv/" + key
	plain := httpsClient(t, nil)
	req, _ := http.NewRequest(http.MethodGet, plainURL, nil)
	req.Header.Set("Authorization", "Bearer "+sc.token)
	resp, err := plain.Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(b), value) {
			t.Errorf("plain GET %s with the token: got %d %q, want no data", plainURL, resp.StatusCode, b)
		} else {
			t.Logf("plain HTTP to the TLS port: %d %q", resp.StatusCode, strings.TrimSpace(string(b)))
		}
	} else {
		t.Logf("plain HTTP to the TLS port: %v", err)
	}

	untrusting := httpsClient(t, sc.pki.StrangerTrust())
	req, _ = http.NewRequest(http.MethodGet, nd.URL()+"/kv/"+key, nil)
	req.Header.Set("Authorization", "Bearer "+sc.token)
	resp, err = untrusting.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("GET over https from a client that does not trust the cluster CA: got %d, want a failed handshake", resp.StatusCode)
	}
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Errorf("GET from a client that does not trust the cluster CA: %v, want a certificate verification error", err)
	}
}

// testStrangerRPC: a valid merge frame, sent over TLS by the replication
// client exactly as a member sends it (the transport), is refused when it
// comes with a certificate from another CA or with no client certificate
// but a valid client token; the node does not store it.
func (sc *secureCluster) testStrangerRPC(t *testing.T) {
	nd := sc.Nodes[0]
	cases := []struct {
		name      string
		tls       *tls.Config
		handshake bool // the node may refuse it in the TLS handshake
	}{
		{"with a certificate from a stranger CA", sc.pki.TLSWith(sc.pki.Stranger), true},
		{"without a client certificate", sc.pki.ClientTLS(), false},
	}
	// One handshake by hand shows the node's own refusal (a TLS alert) of
	// the stranger's certificate, which the HTTP/2 transport may report
	// in other words.
	if err := tlsRefusal(nd.Addr(), cases[0].tls); err != nil {
		t.Errorf("handshake %s: %v", cases[0].name, err)
	}
	for i, tc := range cases {
		key := fmt.Sprintf("tls/forged-%d", i)
		set, _ := vclock.Set{}.Update("intruder", vclock.Context{}, vclock.Sibling{
			Value: []byte("forged"), ContentType: "text/plain", LastModified: time.Now().UnixNano(),
		})
		rc := rpc.NewClient(rpc.ClientConfig{TLS: tc.tls, AuthToken: sc.token, Retries: -1, Timeout: 10 * time.Second})
		err := rc.Merge(context.Background(), nd.Addr(), 0, []byte(key), set)
		rc.Close()
		switch {
		case err == nil:
			t.Errorf("merge of %q %s and with a valid token: accepted, want refused", key, tc.name)
		case errors.Is(err, rpc.ErrUnauthorized):
			t.Logf("%s: refused with 401: %v", tc.name, err)
		case tc.handshake:
			// The transport's words for a refused handshake vary with
			// timing (the alert, "client conn could not be established",
			// a broken pipe); tlsRefusal above checked the refusal itself.
			t.Logf("%s: refused in the handshake: %v", tc.name, err)
		default:
			t.Errorf("merge of %q %s: %v, want 401 (ErrUnauthorized)", key, tc.name, err)
		}
		if l, err := nd.LocalGet(0, key); err != nil || l.Found {
			t.Errorf("local copy of %q on %s after the merge %s: %+v, %v; want none", key, nd.ID(), tc.name, l, err)
		}
	}
}

// tlsRefusal shakes hands with addr using cfg and reads: nil when the node
// refused the client's certificate with a TLS alert (in TLS 1.3 the client
// learns it on its first read), an error saying what happened otherwise.
func tlsRefusal(addr string, cfg *tls.Config) error {
	cfg = cfg.Clone()
	cfg.ServerName, _, _ = net.SplitHostPort(addr)
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err == nil {
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1))
	}
	switch {
	case err == nil:
		return errors.New("the node sent data, want a TLS alert")
	case strings.Contains(err.Error(), "remote error: tls: "):
		return nil
	default:
		return fmt.Errorf("%w, want a TLS alert from the node", err)
	}
}

// testRedis: the Redis port of node 0 speaks TLS; with AUTH (the token)
// SET and GET work, without it commands get NOAUTH, and plain TCP gets no
// Redis reply.
func (sc *secureCluster) testRedis(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host, _, _ := net.SplitHostPort(sc.respAddr)
	tc := sc.pki.ClientTLS()
	tc.ServerName = host
	newRedis := func(password string) *redis.Client {
		rc := redis.NewClient(&redis.Options{Addr: sc.respAddr, Password: password, TLSConfig: tc.Clone(),
			DialTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, MaxRetries: -1})
		t.Cleanup(func() { rc.Close() })
		return rc
	}
	authed := newRedis(sc.token)
	if err := authed.Set(ctx, "tls/redis", "over resp tls", 0).Err(); err != nil {
		t.Fatalf("SET over TLS after AUTH: %v", err)
	}
	if v, err := authed.Get(ctx, "tls/redis").Result(); err != nil || v != "over resp tls" {
		t.Fatalf("GET over TLS after AUTH: %q, %v; want %q", v, err, "over resp tls")
	}
	// What Redis wrote is what HTTP reads.
	if err := checkExact(sc.Nodes[1], "tls/redis", []byte("over resp tls"), testnode.KV{}); err != nil {
		t.Errorf("the Redis SET through HTTP: %v", err)
	}
	if err := newRedis("").Get(ctx, "tls/redis").Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("GET over TLS without AUTH: %v, want NOAUTH", err)
	}
	if err := newRedis("wrong-"+sc.token).Get(ctx, "tls/redis").Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("GET over TLS with a wrong password: %v, want WRONGPASS", err)
	}

	conn, err := net.DialTimeout("tcp", sc.respAddr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(conn, "AUTH "+sc.token+"\r\nGET tls/redis\r\nPING\r\n")
	got, rerr := io.ReadAll(bufio.NewReader(conn))
	if len(got) > 0 && strings.ContainsAny(string(got[:1]), "+-:$*_") || strings.Contains(string(got), "over resp tls") {
		t.Errorf("plain RESP to the TLS Redis port: got %q, want no Redis reply", got)
	}
	t.Logf("plain RESP to the TLS Redis port: %d bytes %q, then %v", len(got), got, rerr)
}

// testHints: with node 2 killed, W=2 writes succeed and the others hold
// hints for it; once it is back under TLS, the hints drain to it over
// mutual TLS (anti-entropy is turned down) and it holds every write.
func (sc *secureCluster) testHints(t *testing.T) {
	n0, n1, n2 := sc.Nodes[0], sc.Nodes[1], sc.Nodes[2]
	n2.MustKill()
	const keys = 20
	var writes []write
	for i := range keys {
		w := write{fmt.Sprintf("tls/hint-%02d", i), []byte(fmt.Sprintf("written while %s was down %d", n2.ID(), i))}
		mustPut(t, []*testnode.Node{n0, n1}[i%2], w.key, w.value, testnode.KV{W: 2})
		writes = append(writes, w)
	}
	// A write returns at W=2 and its hint is stored by the merge that goes
	// on behind it: wait for every hint, so that none of the writes can
	// reach the restarted node as a late merge instead.
	held, deadline := 0, time.Now().Add(30*time.Second)
	for held < keys && time.Now().Before(deadline) {
		a, _ := hintsFor(t, n0, n2.ID())
		b, _ := hintsFor(t, n1, n2.ID())
		held = a + b
		time.Sleep(50 * time.Millisecond)
	}
	if held < keys {
		t.Fatalf("%s and %s hold %d hints for %s, want one per write (%d)", n0.ID(), n1.ID(), held, n2.ID(), keys)
	}
	n2.Restart()
	if hist, took, err := waitReplicas([]*testnode.Node{n2}, writes, 1, 60*time.Second); err != nil {
		t.Fatalf("on the restarted %s: %v", n2.ID(), err)
	} else {
		t.Logf("every write on the restarted %s %v after its restart: %s", n2.ID(), took.Round(time.Millisecond), fmtHist(hist))
	}
	// The data can land before the sender counts the delivery (it counts
	// once the call returns): poll the counters for a while.
	var delivered uint64
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		delivered = fetchHintStatus(t, n0).Hints.Delivered + fetchHintStatus(t, n1).Hints.Delivered
		if delivered >= uint64(keys) || time.Now().After(deadline) {
			break
		}
	}
	if delivered < uint64(keys) {
		t.Errorf("hints delivered by %s and %s: %d, want at least %d (one per write)", n0.ID(), n1.ID(), delivered, keys)
	}
}
