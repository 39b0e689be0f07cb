package resp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dynkv/dynkv/vclock"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeBackend is an in-memory Backend: one replica's sets, updated as the
// coordinator updates them (vclock.Set.Update), so that contexts, blind
// writes and tombstones behave as they do on a node.
type fakeBackend struct {
	mu   sync.Mutex
	sets map[string]vclock.Set
	// err, when set, fails every Get and Put.
	err error
	// slots are the in-flight slots Acquire takes.
	slots chan struct{}
	size  int
	gets  int
	puts  int
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{sets: make(map[string]vclock.Set), slots: make(chan struct{}, 64), size: 1}
}

func fakeKey(db int, key []byte) string { return fmt.Sprintf("%d/%s", db, key) }

func (b *fakeBackend) Get(_ context.Context, db int, key []byte) (vclock.Set, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gets++
	if b.err != nil {
		return vclock.Set{}, false, b.err
	}
	set, ok := b.sets[fakeKey(db, key)]
	return set, ok, nil
}

func (b *fakeBackend) Put(_ context.Context, db int, key []byte, vc vclock.Context, blind bool, sib vclock.Sibling) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.puts++
	if b.err != nil {
		return b.err
	}
	k := fakeKey(db, key)
	cur := b.sets[k]
	if blind {
		vc = cur.Context
	}
	b.sets[k], _ = cur.Update("fake", vc, sib)
	return nil
}

func (b *fakeBackend) Acquire() (func(), bool) {
	select {
	case b.slots <- struct{}{}:
		return func() { <-b.slots }, true
	default:
		return nil, false
	}
}

func (b *fakeBackend) ClusterSize() int { return b.size }

// startServer serves cfg over b on a free loopback port until the test
// ends.
func startServer(t testing.TB, b Backend, cfg Config) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(ln, b, cfg)
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return s
}

// rawConn is a plain TCP connection to a server, for what go-redis cannot
// send: garbage, inline commands, several commands in one write.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	rd *bufio.Reader
}

func dialRaw(t testing.TB, s interface{ Addr() string }) *rawConn {
	addr := s.Addr()
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialling %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	// A bound on a hang in a broken server, not a performance limit.
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, c: c, rd: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatalf("writing %q: %v", s, err)
	}
}

// line reads one reply line without its CRLF.
func (r *rawConn) line() string {
	r.t.Helper()
	l, err := r.rd.ReadString('\n')
	if err != nil {
		r.t.Fatalf("reading a reply line: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// reply reads one whole reply and renders it: bulk and simple strings as
// their text, integers as digits, nil as <nil>, arrays in brackets,
// errors with their leading "-".
func (r *rawConn) reply() string {
	r.t.Helper()
	l := r.line()
	if l == "" {
		r.t.Fatal("empty reply line")
	}
	switch l[0] {
	case '+', ':':
		return l[1:]
	case '$':
		if l == "$-1" {
			return "<nil>"
		}
		return r.line()
	case '*':
		var n int
		fmt.Sscan(l[1:], &n)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = r.reply()
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return l
}

// closedByServer waits for the server to close the connection, reading
// and discarding what comes first.
func (r *rawConn) closedByServer() error {
	_, err := io.Copy(io.Discard, r.rd)
	return err
}

// testServer is a started server over a fake backend.
type testServer struct {
	*Server
	b *fakeBackend
}

// startTestServer serves a fake backend on a free port; edit, when given,
// changes the config first.
func startTestServer(t testing.TB, edit func(*Config)) *testServer {
	t.Helper()
	var cfg Config
	if edit != nil {
		edit(&cfg)
	}
	b := newFakeBackend()
	return &testServer{Server: startServer(t, b, cfg), b: b}
}

// hangBound bounds a wait that only a broken server would exceed.
const hangBound = 30 * time.Second

// redisClient is a go-redis client of s, closed when the test ends.
func redisClient(t testing.TB, s interface{ Addr() string }, opts *redis.Options) *redis.Client {
	t.Helper()
	if opts == nil {
		opts = &redis.Options{}
	}
	opts.Addr = s.Addr()
	// One connection, so that SELECT and AUTH state is the test's.
	opts.PoolSize = 1
	// Errors are the test's to see, not go-redis's to retry.
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	t.Cleanup(cancel)
	return ctx
}

func wantRedisErr(t testing.TB, what string, err error, want string) {
	t.Helper()
	if err == nil || err.Error() != want {
		t.Fatalf("%s: error %v, want %q", what, err, want)
	}
}
