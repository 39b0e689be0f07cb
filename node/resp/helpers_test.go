package resp

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dynkv/dynkv/node/resp/resptest"
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

// dialRaw is a raw connection to s.
func dialRaw(t testing.TB, s interface{ Addr() string }) *resptest.Conn {
	t.Helper()
	return resptest.Dial(t, s.Addr())
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
const hangBound = resptest.HangBound

// redisClient is a go-redis client of s, closed when the test ends.
func redisClient(t testing.TB, s interface{ Addr() string }, opts *redis.Options) *redis.Client {
	t.Helper()
	return resptest.Client(t, s.Addr(), opts)
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
