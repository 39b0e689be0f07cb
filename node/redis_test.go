package node

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dynkv/dynkv/coordinator"
	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/node/resp/resptest"
	"github.com/dynkv/dynkv/vclock"
	"github.com/redis/go-redis/v9"
)

// startRESPNode starts a node with the Redis protocol on a free port; edit,
// when given, changes its config first.
func startRESPNode(t *testing.T, edit func(*Config)) *testNode {
	t.Helper()
	cfg := testConfig(t)
	cfg.RESPAddr = "127.0.0.1:0"
	if edit != nil {
		edit(&cfg)
	}
	tn := startNode(t, &cfg, nil)
	if tn.RESPAddr() == "" || strings.HasSuffix(tn.RESPAddr(), ":0") {
		t.Fatalf("RESPAddr after Start = %q, want the bound address", tn.RESPAddr())
	}
	return tn
}

// redisClient is a go-redis client of tn, closed when the test ends.
func redisClient(t *testing.T, tn *testNode, opts *redis.Options) *redis.Client {
	t.Helper()
	return resptest.Client(t, tn.RESPAddr(), opts)
}

// dialRaw is a raw connection to tn's Redis-protocol port.
func dialRaw(t *testing.T, tn *testNode) *resptest.Conn {
	t.Helper()
	return resptest.Dial(t, tn.RESPAddr())
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantRedisErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil || err.Error() != want {
		t.Fatalf("%s: error %v, want %q", what, err, want)
	}
}

func TestRESPBasicCommandsThroughGoRedis(t *testing.T) {
	tn := startRESPNode(t, nil)
	rc := redisClient(t, tn, nil)
	ctx := ctxT(t)

	if v, err := rc.Ping(ctx).Result(); err != nil || v != "PONG" {
		t.Fatalf("PING = %q, %v; want PONG", v, err)
	}
	if v, err := rc.Do(ctx, "PING", "hi").Text(); err != nil || v != "hi" {
		t.Fatalf("PING hi = %q, %v; want hi", v, err)
	}
	if v, err := rc.Echo(ctx, "a\r\nb").Result(); err != nil || v != "a\r\nb" {
		t.Fatalf("ECHO = %q, %v", v, err)
	}
	if _, err := rc.Get(ctx, "missing").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET of an absent key: err %v, want redis.Nil", err)
	}
	if err := rc.Set(ctx, "k", "v1", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if v, err := rc.Get(ctx, "k").Result(); err != nil || v != "v1" {
		t.Fatalf("GET after SET = %q, %v; want v1", v, err)
	}
	// SET is a blind overwrite.
	if err := rc.Set(ctx, "k", "v2", 0).Err(); err != nil {
		t.Fatalf("second SET: %v", err)
	}
	if v, _ := rc.Get(ctx, "k").Result(); v != "v2" {
		t.Fatalf("GET after overwrite = %q, want v2", v)
	}
	// The same key over HTTP: one store, one coordinator.
	tn.mustGet("/kv/k", "v2")

	if n, err := rc.Exists(ctx, "k", "missing", "k").Result(); err != nil || n != 2 {
		t.Fatalf("EXISTS k missing k = %d, %v; want 2", n, err)
	}
	if err := rc.MSet(ctx, "a", "1", "b", "2").Err(); err != nil {
		t.Fatalf("MSET: %v", err)
	}
	vals, err := rc.MGet(ctx, "a", "missing", "b").Result()
	if err != nil || fmt.Sprint(vals) != "[1 <nil> 2]" {
		t.Fatalf("MGET = %v, %v; want [1 <nil> 2]", vals, err)
	}
	if n, err := rc.Del(ctx, "a", "missing", "b", "a").Result(); err != nil || n != 2 {
		t.Fatalf("DEL a missing b a = %d, %v; want 2", n, err)
	}
	if n, _ := rc.Exists(ctx, "a", "b").Result(); n != 0 {
		t.Fatalf("EXISTS after DEL = %d, want 0", n)
	}
	if r := tn.get("/kv/a", nil); r.status != http.StatusNotFound {
		t.Fatalf("HTTP GET of a key deleted over RESP = %d, want 404", r.status)
	}

	// Binary-safe keys and values, and the empty value.
	bin := "\x00\xff\r\n"
	if err := rc.Set(ctx, bin, bin, 0).Err(); err != nil {
		t.Fatalf("SET binary: %v", err)
	}
	if v, _ := rc.Get(ctx, bin).Result(); v != bin {
		t.Fatalf("GET binary = %q, want %q", v, bin)
	}
	if err := rc.Set(ctx, "empty", "", 0).Err(); err != nil {
		t.Fatalf("SET empty value: %v", err)
	}
	if v, err := rc.Get(ctx, "empty").Result(); err != nil || v != "" {
		t.Fatalf("GET empty value = %q, %v; want \"\", nil", v, err)
	}
}

func TestRESPSetOptionsAndErrors(t *testing.T) {
	tn := startRESPNode(t, func(c *Config) { c.MaxValueBytes = 16 })
	rc := redisClient(t, tn, nil)
	ctx := ctxT(t)

	if ok, err := rc.SetNX(ctx, "nx", "first", 0).Result(); err != nil || !ok {
		t.Fatalf("SET NX on an absent key = %v, %v; want true", ok, err)
	}
	if ok, err := rc.SetNX(ctx, "nx", "second", 0).Result(); err != nil || ok {
		t.Fatalf("SET NX on a present key = %v, %v; want false", ok, err)
	}
	if ok, err := rc.SetXX(ctx, "xx", "v", 0).Result(); err != nil || ok {
		t.Fatalf("SET XX on an absent key = %v, %v; want false", ok, err)
	}
	if ok, err := rc.SetXX(ctx, "nx", "third", 0).Result(); err != nil || !ok {
		t.Fatalf("SET XX on a present key = %v, %v; want true", ok, err)
	}
	if v, _ := rc.Get(ctx, "nx").Result(); v != "third" {
		t.Fatalf("GET after NX/XX = %q, want third", v)
	}

	for _, c := range []struct {
		args []any
		want string
	}{
		{[]any{"SET", "k", "v", "EX", "0"}, "ERR invalid expire time in 'set' command"},
		{[]any{"SET", "k", "v", "PX", "-5"}, "ERR invalid expire time in 'set' command"},
		{[]any{"SET", "k", "v", "EX", "ten"}, "ERR value is not an integer or out of range"},
		{[]any{"SET", "k", "v", "EX"}, "ERR syntax error"},
		{[]any{"SET", "k", "v", "EX", "1", "PX", "1"}, "ERR syntax error"},
		{[]any{"SET", "k", "v", "NX", "XX"}, "ERR syntax error"},
		{[]any{"SET", "k", "v", "KEEPTTL"}, "ERR syntax error"},
		{[]any{"SET", "k"}, "ERR wrong number of arguments for 'set' command"},
		{[]any{"GET"}, "ERR wrong number of arguments for 'get' command"},
		{[]any{"MSET", "a", "1", "b"}, "ERR wrong number of arguments for 'mset' command"},
		{[]any{"SET", "k", strings.Repeat("v", 17)}, "ERR value too large: 17 bytes (at most 16)"},
		{[]any{"MSET", "a", "1", "b", strings.Repeat("v", 17)}, "ERR value too large: 17 bytes (at most 16)"},
		{[]any{"SET", strings.Repeat("k", MaxKeyBytes+1), "v"}, "ERR key too long: 1025 bytes (at most 1024)"},
		{[]any{"GET", ""}, "ERR empty keys are not supported"},
		{[]any{"EXPIRE", "k", "soon"}, "ERR value is not an integer or out of range"},
		{[]any{"FLUSHALL"}, "ERR unknown command 'FLUSHALL', with args beginning with: "},
		{[]any{"foo", "a", "b\r\nc"}, "ERR unknown command 'foo', with args beginning with: 'a' 'b  c' "},
		{[]any{"AUTH", "secret"}, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
		{[]any{"CONFIG", "SET", "save", ""}, "ERR CONFIG SET is not supported: dynkv is configured by flags at start"},
		{[]any{"CLIENT", "KILL", "x"}, "ERR unknown subcommand 'KILL'. Try CLIENT HELP."},
	} {
		wantRedisErr(t, fmt.Sprint(c.args), rc.Do(ctx, c.args...).Err(), c.want)
	}
	// A key of exactly 1024 bytes is fine.
	long := strings.Repeat("k", MaxKeyBytes)
	if err := rc.Set(ctx, long, "v", 0).Err(); err != nil {
		t.Fatalf("SET with a %d-byte key: %v", MaxKeyBytes, err)
	}
	// The connection is still usable after every error.
	if v, err := rc.Get(ctx, long).Result(); err != nil || v != "v" {
		t.Fatalf("GET after errors = %q, %v", v, err)
	}
}

func TestRESPTTLAndExpireFollowTheInjectedClock(t *testing.T) {
	clock := testutil.NewFakeClock()
	tn := startRESPNode(t, func(c *Config) { c.Now = clock.Now })
	rc := redisClient(t, tn, nil)
	ctx := ctxT(t)

	if d, err := rc.TTL(ctx, "absent").Result(); err != nil || d != -2 {
		t.Fatalf("TTL of an absent key = %v, %v; want -2 (go-redis reports it as -2ns)", d, err)
	}
	if err := rc.Set(ctx, "forever", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if d, _ := rc.TTL(ctx, "forever").Result(); d != -1 {
		t.Fatalf("TTL without expiry = %v, want -1", d)
	}
	if err := rc.Set(ctx, "short", "v", 10*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if d, _ := rc.TTL(ctx, "short").Result(); d != 10*time.Second {
		t.Fatalf("TTL right after SET EX 10 = %v, want 10s", d)
	}
	if err := rc.Do(ctx, "SET", "ms", "v", "PX", "1500").Err(); err != nil {
		t.Fatal(err)
	}
	if d, _ := rc.PTTL(ctx, "ms").Result(); d != 1500*time.Millisecond {
		t.Fatalf("PTTL after SET PX 1500 = %v, want 1.5s", d)
	}
	clock.Advance(4 * time.Second)
	if d, _ := rc.TTL(ctx, "short").Result(); d != 6*time.Second {
		t.Fatalf("TTL 4s later = %v, want 6s", d)
	}
	if v, err := rc.Get(ctx, "ms").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET of an expired key = %q, %v; want nil", v, err)
	}

	// EXPIRE rewrites the value with a new expiry.
	if ok, err := rc.Expire(ctx, "forever", 30*time.Second).Result(); err != nil || !ok {
		t.Fatalf("EXPIRE on a present key = %v, %v; want 1", ok, err)
	}
	if d, _ := rc.TTL(ctx, "forever").Result(); d != 30*time.Second {
		t.Fatalf("TTL after EXPIRE 30 = %v, want 30s", d)
	}
	if v, _ := rc.Get(ctx, "forever").Result(); v != "v" {
		t.Fatalf("GET after EXPIRE = %q, want the unchanged value", v)
	}
	if ok, err := rc.Expire(ctx, "absent", time.Minute).Result(); err != nil || ok {
		t.Fatalf("EXPIRE on an absent key = %v, %v; want 0", ok, err)
	}
	clock.Advance(31 * time.Second)
	if n, _ := rc.Exists(ctx, "forever", "short").Result(); n != 0 {
		t.Fatalf("EXISTS after both expired = %d, want 0", n)
	}
	// EXPIRE with a time that is not positive deletes, as in Redis.
	if err := rc.Set(ctx, "gone", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Do(ctx, "EXPIRE", "gone", "0").Int(); err != nil || n != 1 {
		t.Fatalf("EXPIRE gone 0 = %d, %v; want 1", n, err)
	}
	if d, _ := rc.TTL(ctx, "gone").Result(); d != -2 {
		t.Fatalf("TTL after EXPIRE 0 = %v, want -2", d)
	}
}

func TestRESPGetOfSiblingsReturnsTheMostRecentlyWritten(t *testing.T) {
	clock := testutil.NewFakeClock()
	tn := startRESPNode(t, func(c *Config) { c.Now = clock.Now })
	rc := redisClient(t, tn, nil)
	ctx := ctxT(t)

	base := tn.mustPut("/kv/cart", "empty", "")
	clock.Advance(10 * time.Second)
	tn.mustPut("/kv/cart", "newest", base)
	// Written later, but stamped earlier: the clock decides, not the
	// order of arrival.
	clock.Advance(-5 * time.Second)
	tn.mustPut("/kv/cart", "older", base)
	if r := tn.get("/kv/cart", nil); r.status != http.StatusMultipleChoices {
		t.Fatalf("HTTP GET = %d, want 300: the test needs siblings", r.status)
	}
	if v, err := rc.Get(ctx, "cart").Result(); err != nil || v != "newest" {
		t.Fatalf("RESP GET of siblings = %q, %v; want newest", v, err)
	}
	if vals, _ := rc.MGet(ctx, "cart").Result(); fmt.Sprint(vals) != "[newest]" {
		t.Fatalf("MGET of siblings = %v, want [newest]", vals)
	}
	// EXPIRE resolves the siblings into the value GET returned.
	if err := rc.Expire(ctx, "cart", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	tn.mustGet("/kv/cart", "newest")
}

func TestRESPSelectIsolatesDatabasesPerConnection(t *testing.T) {
	tn := startRESPNode(t, func(c *Config) { c.Databases = 4 })
	ctx := ctxT(t)
	db0 := redisClient(t, tn, nil)
	db3 := redisClient(t, tn, &redis.Options{DB: 3})

	if err := db3.Set(ctx, "k", "three", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := db0.Set(ctx, "k", "zero", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, _ := db3.Get(ctx, "k").Result(); v != "three" {
		t.Fatalf("GET in db 3 = %q, want three", v)
	}
	tn.mustGet("/db/3/kv/k", "three")
	tn.mustGet("/kv/k", "zero")
	wantRedisErr(t, "SELECT 4", db0.Do(ctx, "SELECT", "4").Err(), "ERR DB index is out of range")
	wantRedisErr(t, "SELECT -1", db0.Do(ctx, "SELECT", "-1").Err(), "ERR DB index is out of range")
	wantRedisErr(t, "SELECT x", db0.Do(ctx, "SELECT", "x").Err(), "ERR value is not an integer or out of range")
	// A failed SELECT leaves the connection where it was.
	if v, _ := db0.Get(ctx, "k").Result(); v != "zero" {
		t.Fatalf("GET after a failed SELECT = %q, want zero", v)
	}
	// go-redis reconnects with DB 3 itself, through the pool.
	r := dialRaw(t, tn)
	r.Send("SELECT 3\r\nGET k\r\nSELECT 0\r\nGET k\r\n")
	for _, want := range []string{"+OK", "$5", "three", "+OK", "$4", "zero"} {
		if got := r.Line(); got != want {
			t.Fatalf("pipelined SELECT/GET: got %q, want %q", got, want)
		}
	}
}

func TestRESPCommandsAreCountedInTheRequestMetrics(t *testing.T) {
	tn := startRESPNode(t, nil)
	rc := redisClient(t, tn, nil)
	ctx := ctxT(t)
	if err := rc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_ = rc.Get(ctx, "k").Err()
	_ = rc.Do(ctx, "SELECT", "99").Err()
	_ = rc.Do(ctx, "NO-SUCH-COMMAND").Err()
	m := tn.get("/metrics", nil)
	for _, want := range []string{
		`dynkv_requests_total{code="ok",op="set",protocol="resp"} 1`,
		`dynkv_requests_total{code="ok",op="get",protocol="resp"} 1`,
		`dynkv_requests_total{code="error",op="select",protocol="resp"} 1`,
		`dynkv_requests_total{code="error",op="other",protocol="resp"} 1`,
	} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestRESPPipelineOfAThousandCommands(t *testing.T) {
	tn := startRESPNode(t, func(c *Config) { c.Fsync = "10ms" })
	rc := redisClient(t, tn, nil)
	ctx := ctxT(t)

	const n = 1000
	_, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			p.Set(ctx, fmt.Sprintf("p%d", i), fmt.Sprintf("v%d", i), 0)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("pipelined SETs: %v", err)
	}
	cmds, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			p.Get(ctx, fmt.Sprintf("p%d", i))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("pipelined GETs: %v", err)
	}
	for i, c := range cmds {
		if v := c.(*redis.StringCmd).Val(); v != fmt.Sprintf("v%d", i) {
			t.Fatalf("pipelined GET p%d = %q, want v%d", i, v, i)
		}
	}

	// Many commands in one write, inline and RESP mixed, answered in
	// order.
	r := dialRaw(t, tn)
	var b strings.Builder
	for i := range 100 {
		if i%2 == 0 {
			fmt.Fprintf(&b, "GET p%d\r\n", i)
		} else {
			k := fmt.Sprintf("p%d", i)
			fmt.Fprintf(&b, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(k), k)
		}
	}
	r.Send(b.String())
	for i := range 100 {
		want := fmt.Sprintf("v%d", i)
		if l, v := r.Line(), r.Line(); l != fmt.Sprintf("$%d", len(want)) || v != want {
			t.Fatalf("reply %d of one write = %q %q, want %q", i, l, v, want)
		}
	}
}

func TestRESPOverTLS(t *testing.T) {
	pki := newTestPKI(t)
	tn := startRESPNode(t, func(c *Config) { c.TLSCert, c.TLSKey = pki.certFile, pki.keyFile })
	rc := redisClient(t, tn, &redis.Options{TLSConfig: &tls.Config{RootCAs: pki.pool}})
	ctx := ctxT(t)
	if err := rc.Set(ctx, "k", "secure", 0).Err(); err != nil {
		t.Fatalf("SET over TLS: %v", err)
	}
	if v, err := rc.Get(ctx, "k").Result(); err != nil || v != "secure" {
		t.Fatalf("GET over TLS = %q, %v", v, err)
	}
	// Plain RESP to the TLS port is not served.
	plain := redisClient(t, tn, nil)
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Fatal("plain PING to the TLS port succeeded")
	}
}

func TestRESPShutdownAnswersWhatItReadThenCloses(t *testing.T) {
	cfg := testConfig(t)
	cfg.RESPAddr = "127.0.0.1:0"
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", n.RESPAddr())
	if err != nil {
		_ = n.Shutdown(context.Background())
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	rd := bufio.NewReader(c)
	_, _ = io.WriteString(c, "SET k v\r\n")
	if l, _ := rd.ReadString('\n'); l != "+OK\r\n" {
		t.Fatalf("SET = %q", l)
	}
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown with an idle Redis connection: %v", err)
	}
	if l, err := rd.ReadString('\n'); err == nil {
		t.Fatalf("after Shutdown the connection answered %q", l)
	}
	if _, err := net.Dial("tcp", n.RESPAddr()); err == nil {
		t.Fatal("the RESP port still accepts after Shutdown")
	}
}

func TestRESPOnAClusterReplicatesAndReportsQuorumFailures(t *testing.T) {
	t.Parallel() // gossip waits, not CPU
	var nodes []*testNode
	for i := 1; i <= 3; i++ {
		var join []string
		if i > 1 {
			join = []string{nodes[0].GossipAddr()}
		}
		cfg := clusterConfig(t, fmt.Sprintf("n%d", i), join...)
		cfg.RESPAddr = "127.0.0.1:0"
		nodes = append(nodes, startNode(t, &cfg, nil))
	}
	waitConverged(t, nodes, ids(nodes))
	ctx := ctxT(t)
	first, last := redisClient(t, nodes[0], nil), redisClient(t, nodes[2], nil)

	if info, _ := first.Info(ctx).Result(); !strings.Contains(info, "cluster_size:3\r\n") {
		t.Fatalf("INFO on a three-node cluster:\n%s", info)
	}
	// W=2 of N=3: written through n1, readable through n3 at once (R=2).
	if err := first.Set(ctx, "shared", "v1", 0).Err(); err != nil {
		t.Fatalf("SET through n1: %v", err)
	}
	if v, err := last.Get(ctx, "shared").Result(); err != nil || v != "v1" {
		t.Fatalf("GET through n3 = %q, %v; want v1", v, err)
	}
	eventually(t, func() string {
		if h := holders(nodes, "shared", "v1"); len(h) != 3 {
			return fmt.Sprintf("shared held by %v, want all three", h)
		}
		return ""
	})

	// With both other replicas down, no write can gather W=2 acks.
	for _, n := range nodes[1:] {
		if err := n.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	err := first.Set(ctx, "shared", "v2", 0).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "ERR quorum not reached (needed 2, acked 1)") {
		t.Fatalf("SET with two of three replicas down: %v, want ERR quorum not reached (needed 2, acked 1)", err)
	}
}

func TestRESPFullDiskAndOverloadAnswerWithRedisErrors(t *testing.T) {
	tn := startRESPNode(t, func(c *Config) {
		c.MinFreeBytes = 1 << 62
		c.MaxInflight = 1
	})
	rc := redisClient(t, tn, nil)
	ctx := ctxT(t)
	wantRedisErr(t, "SET on a full disk", rc.Set(ctx, "k", "v", 0).Err(), "ERR disk full")
	if _, err := rc.Get(ctx, "k").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET on a full disk: %v, want nil (reads still work)", err)
	}
	// The one in-flight slot, shared with HTTP, is taken.
	tn.inflight <- struct{}{}
	defer func() { <-tn.inflight }()
	wantRedisErr(t, "GET with no in-flight slot", rc.Get(ctx, "k").Err(),
		"TRYAGAIN node is overloaded: too many requests in flight")
	// Commands that need no replica still answer.
	if v, err := rc.Ping(ctx).Result(); err != nil || v != "PONG" {
		t.Fatalf("PING while overloaded = %q, %v", v, err)
	}
}

func TestRESPInfoDescribesThisNode(t *testing.T) {
	tn := startRESPNode(t, nil)
	info, err := redisClient(t, tn, nil).Info(ctxT(t)).Result()
	if err != nil {
		t.Fatalf("INFO: %v", err)
	}
	_, port, _ := net.SplitHostPort(tn.RESPAddr())
	for _, want := range []string{"node_id:n1\r\n", "cluster_size:1\r\n", "replicas:3\r\n",
		"read_quorum:2\r\n", "write_quorum:2\r\n", "dynkv_version:" + tn.version() + "\r\n",
		"databases:16\r\n", "maxclients:10000\r\n", "tcp_port:" + port + "\r\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO lacks %q:\n%s", want, info)
		}
	}
}

func TestRedisBackendBeforeStartIsNotYetInARing(t *testing.T) {
	n, err := New(testConfig(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	b := redisBackend{n}
	if _, _, err := b.Get(context.Background(), 0, []byte("k")); !errors.Is(err, coordinator.ErrNoRing) {
		t.Fatalf("Get before Start: %v, want coordinator.ErrNoRing (TRYAGAIN)", err)
	}
	if err := b.Put(context.Background(), 0, []byte("k"), vclock.Context{}, true, vclock.Sibling{Value: []byte("v")}); !errors.Is(err, coordinator.ErrNoRing) {
		t.Fatalf("Put before Start: %v, want coordinator.ErrNoRing (TRYAGAIN)", err)
	}
	if s := b.ClusterSize(); s != 0 {
		t.Fatalf("ClusterSize before Start = %d, want 0", s)
	}
	release, ok := b.Acquire()
	if !ok {
		t.Fatal("Acquire on an idle node found no slot")
	}
	release()
}
