package resp

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dynkv/dynkv/coordinator"
	"github.com/dynkv/dynkv/node/internal/authguard"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
	"github.com/redis/go-redis/v9"
)

func TestRESPAuthGuardsEveryCommandButAuthHelloAndQuit(t *testing.T) {
	tn := startTestServer(t, func(c *Config) { c.Tokens = authguard.HashTokens([]string{"s3cret", "other"}) })
	ctx := ctxT(t)

	r := dialRaw(t, tn)
	r.Send("GET k\r\nPING\r\n")
	for range 2 {
		if got := r.Line(); got != "-"+respErrNoAuth {
			t.Fatalf("command before AUTH = %q, want -%s", got, respErrNoAuth)
		}
	}
	r.Send("AUTH wrong\r\n")
	if got := r.Line(); got != "-"+respErrWrongPass {
		t.Fatalf("AUTH wrong = %q", got)
	}
	r.Send("AUTH default other\r\nPING\r\n")
	if got := r.Line() + r.Line(); got != "+OK+PONG" {
		t.Fatalf("AUTH user token then PING = %q, want +OK+PONG", got)
	}

	// go-redis authenticates through HELLO's fallback to AUTH.
	good := redisClient(t, tn, &redis.Options{Password: "s3cret"})
	if err := good.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET with the right password: %v", err)
	}
	bad := redisClient(t, tn, &redis.Options{Password: "nope"})
	if err := bad.Get(ctx, "k").Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("GET with a wrong password: %v, want WRONGPASS", err)
	}
	none := redisClient(t, tn, nil)
	if err := none.Get(ctx, "k").Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("GET without a password: %v, want NOAUTH", err)
	}
	// HELLO 2 AUTH authenticates too.
	h := dialRaw(t, tn)
	h.Send("HELLO 2 AUTH default s3cret\r\n")
	if got := h.Line(); got != "*14" {
		t.Fatalf("HELLO 2 AUTH = %q, want a 7-pair map as an array", got)
	}
}

func TestRESPHelloSpeaksRESP2Only(t *testing.T) {
	tn := startTestServer(t, nil)
	r := dialRaw(t, tn)
	r.Send("HELLO 3\r\n")
	if got := r.Line(); !strings.HasPrefix(got, "-NOPROTO") {
		t.Fatalf("HELLO 3 = %q, want -NOPROTO", got)
	}
	r.Send("HELLO 2 SETNAME me\r\nCLIENT GETNAME\r\n")
	want := "[server redis version " + respCompatVersion + " proto 2 id 1 mode standalone role master modules []]"
	if got := r.Reply(); got != want {
		t.Fatalf("HELLO 2 = %s, want %s", got, want)
	}
	if got := r.Reply(); got != "me" {
		t.Fatalf("CLIENT GETNAME after HELLO SETNAME = %s, want me", got)
	}
}

func TestRESPAdministrativeCommandsAnswerAsClientsExpect(t *testing.T) {
	tn := startTestServer(t, func(c *Config) {
		c.Databases = 16
		c.Info = Info{NodeID: "n1", Version: "v9.9.9", Replicas: 3, ReadQuorum: 2, WriteQuorum: 2}
	})
	tn.b.size = 5
	rc := redisClient(t, tn, nil)
	ctx := ctxT(t)

	info, err := rc.Info(ctx).Result()
	if err != nil {
		t.Fatalf("INFO: %v", err)
	}
	for _, want := range []string{"# Server\r\n", "node_id:n1\r\n", "cluster_size:5\r\n", "replicas:3\r\n",
		"read_quorum:2\r\n", "write_quorum:2\r\n", "dynkv_version:v9.9.9\r\n", "tcp_port:" + portOf(tn.Addr()) + "\r\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO lacks %q:\n%s", want, info)
		}
	}
	cfg, err := rc.ConfigGet(ctx, "save").Result()
	if err != nil || len(cfg) != 1 || cfg["save"] != "" {
		t.Fatalf("CONFIG GET save = %v, %v", cfg, err)
	}
	cfg, err = rc.ConfigGet(ctx, "*").Result()
	if err != nil || cfg["appendonly"] != "no" || cfg["databases"] != "16" {
		t.Fatalf("CONFIG GET * = %v, %v", cfg, err)
	}
	if n, err := rc.Do(ctx, "COMMAND", "COUNT").Int(); err != nil || n != len(respCommandTable) {
		t.Fatalf("COMMAND COUNT = %d, %v", n, err)
	}
	if v, err := rc.Do(ctx, "COMMAND", "DOCS").Slice(); err != nil || len(v) != 0 {
		t.Fatalf("COMMAND DOCS = %v, %v; want an empty array", v, err)
	}
	cinfo, err := rc.Do(ctx, "COMMAND", "INFO", "GET", "mset", "nope").Slice()
	if err != nil || len(cinfo) != 3 || cinfo[2] != nil {
		t.Fatalf("COMMAND INFO GET mset nope = %v, %v; want two entries and a nil", cinfo, err)
	}
	for i, want := range []string{"[get 2 [readonly] 1 1 1 [] [] [] []]", "[mset -3 [write] 1 -1 2 [] [] [] []]"} {
		if got := fmt.Sprint(cinfo[i]); got != want {
			t.Errorf("COMMAND INFO entry %d = %s, want %s", i, got, want)
		}
	}
	if all, err := rc.Do(ctx, "COMMAND").Slice(); err != nil || len(all) != len(respCommandTable) {
		t.Fatalf("COMMAND = %d entries, %v; want %d", len(all), err, len(respCommandTable))
	}
	if names, err := rc.Do(ctx, "COMMAND", "LIST").StringSlice(); err != nil || !slices.Contains(names, "set") || len(names) != len(respCommandTable) {
		t.Fatalf("COMMAND LIST = %v, %v", names, err)
	}
	if err := rc.Do(ctx, "CLIENT", "SETNAME", "worker-1").Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := rc.Do(ctx, "CLIENT", "GETNAME").Text(); err != nil || v != "worker-1" {
		t.Fatalf("CLIENT GETNAME = %q, %v", v, err)
	}
	wantRedisErr(t, "CLIENT SETNAME with a space", rc.Do(ctx, "CLIENT", "SETNAME", "a b").Err(),
		"ERR Client names cannot contain spaces, newlines or special characters.")
	if err := rc.Do(ctx, "CLIENT", "SETINFO", "LIB-NAME", "x").Err(); err != nil {
		t.Fatalf("CLIENT SETINFO: %v", err)
	}
	if id, err := rc.Do(ctx, "CLIENT", "ID").Int64(); err != nil || id < 1 {
		t.Fatalf("CLIENT ID = %d, %v", id, err)
	}
}

func TestRESPGarbageClosesOnlyThatConnection(t *testing.T) {
	tn := startTestServer(t, nil)
	for _, c := range []struct{ garbage, want string }{
		{"*1\r\n$9223372036854775807\r\n", "-ERR Protocol error: command too large"},
		{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1073741824\r\n", "-ERR Protocol error: command too large"},
		{"*9223372036854775807\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"*1000000000\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"*2\r\n$3\r\nGET\r\nxx\r\n", "-ERR Protocol error: expected '$', got 'x'"},
		{"*1\r\n$abc\r\n", "-ERR Protocol error: invalid bulk length"},
		{"*1\r\n$4\r\nPINGxx", "-ERR Protocol error: invalid bulk length"},
		{"*1\n", "-ERR Protocol error: invalid header line"},
		{"\"unbalanced\r\n", "-ERR Protocol error: unbalanced quotes"},
		{strings.Repeat("x", 70<<10) + "\r\n", "-ERR Protocol error: too big inline request"},
	} {
		r := dialRaw(t, tn)
		r.Send(c.garbage)
		if got := r.Line(); !strings.HasPrefix(got, c.want) {
			t.Errorf("after %.40q: reply %q, want %s...", c.garbage, got, c.want)
		}
		if _, err := r.R.ReadByte(); err == nil {
			t.Errorf("after %.40q: the connection stayed open", c.garbage)
		}
	}
	// Empty commands are skipped, as Redis skips them.
	r := dialRaw(t, tn)
	r.Send("\r\n*0\r\n*-1\r\n   \r\nPING\r\n")
	if got := r.Line(); got != "+PONG" {
		t.Fatalf("PING after empty commands = %q, want +PONG", got)
	}
	// A value beyond --max-value-bytes is read, refused and the
	// connection goes on.
	big := strings.Repeat("v", 2<<20)
	r.Send(fmt.Sprintf("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\nPING\r\n", len(big), big))
	if got := r.Line(); got != fmt.Sprintf("-ERR value too large: %d bytes (at most %d)", len(big), 1<<20) {
		t.Fatalf("SET of a 2 MiB value = %q", got)
	}
	if got := r.Line(); got != "+PONG" {
		t.Fatalf("PING after a refused value = %q, want +PONG", got)
	}
	// The server still serves.
	rc := redisClient(t, tn, nil)
	if v, err := rc.Ping(ctxT(t)).Result(); err != nil || v != "PONG" {
		t.Fatalf("PING after garbage = %q, %v", v, err)
	}
}

func TestRESPQuitAnswersOKAndCloses(t *testing.T) {
	tn := startTestServer(t, nil)
	r := dialRaw(t, tn)
	r.Send("QUIT\r\nPING\r\n")
	if got := r.Line(); got != "+OK" {
		t.Fatalf("QUIT = %q, want +OK", got)
	}
	if l, err := r.R.ReadString('\n'); err == nil {
		t.Fatalf("after QUIT the connection answered %q", l)
	}
}

func TestRESPRefusesConnectionsBeyondTheLimit(t *testing.T) {
	tn := startTestServer(t, func(c *Config) { c.MaxConns = 1 })
	first := dialRaw(t, tn)
	first.Send("PING\r\n")
	if got := first.Line(); got != "+PONG" {
		t.Fatalf("PING on the first connection = %q", got)
	}
	second := dialRaw(t, tn)
	if got := second.Line(); got != "-ERR max number of clients reached" {
		t.Fatalf("second connection = %q, want -ERR max number of clients reached", got)
	}
}

func TestRESPErrorTextMapsEveryRequestError(t *testing.T) {
	s := New(nil, newFakeBackend(), Config{})
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("coordinator: %w", &rpc.QuorumError{Needed: 2, Acked: 1}), "ERR quorum not reached (needed 2, acked 1)"},
		{fmt.Errorf("put: %w", store.ErrDiskFull), "ERR disk full"},
		{store.ErrBadDatabase, "ERR " + store.ErrBadDatabase.Error()},
		{errOverloaded, "TRYAGAIN node is overloaded: too many requests in flight"},
		{coordinator.ErrNoRing, "TRYAGAIN node has not joined a ring yet"},
		{fmt.Errorf("get: %w", store.ErrClosed), "TRYAGAIN node is shutting down"},
		{errors.New("something internal"), "ERR internal error"},
	} {
		if got := s.respErrorText(c.err); got != c.want {
			t.Errorf("respErrorText(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestRESPCommandLookupIgnoresCaseAndDoesNotAllocate(t *testing.T) {
	for _, name := range []string{"set", "SET", "SeT"} {
		if c := lookupRespCommand([]byte(name)); c == nil || c.name != "set" {
			t.Fatalf("lookup %q = %+v, want set", name, c)
		}
	}
	for _, name := range []string{"", "nope", "setx", "a-command-name-longer-than-sixteen"} {
		if c := lookupRespCommand([]byte(name)); c != nil {
			t.Fatalf("lookup %q = %s, want none", name, c.name)
		}
	}
	name := []byte("GET")
	if n := testing.AllocsPerRun(100, func() { lookupRespCommand(name) }); n != 0 {
		t.Fatalf("a lookup allocates %v times, want 0", n)
	}
	for i, c := range respCommandTable {
		if i > 0 && respCommandTable[i-1].name >= c.name {
			t.Fatalf("respCommandTable is not in name order at %s", c.name)
		}
		if c.arity == 0 || c.run == nil {
			t.Fatalf("command %s: arity %d, run %v", c.name, c.arity, c.run != nil)
		}
	}
}
