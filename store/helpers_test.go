package store

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/vclock"
)

func TestMain(m *testing.M) {
	// goleveldb's memdb pool drainer outlives Close by up to a second by
	// design (it waits for a last pooled buffer), then exits.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"))
}

// testClock is the injected clock: tests move time, nothing else does.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) Now() time.Time              { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration)     { c.ns.Add(int64(d)) }
func (c *testClock) After(d time.Duration) int64 { return c.ns.Load() + int64(d) }

// testOptions keeps background work out of the way: tests call Checkpoint
// and reclaimPass themselves. MinFreeBytes 1 makes the free-space guard
// independent of the machine's disk.
func testOptions(dir string, clk *testClock) Options {
	return Options{
		Dir:                dir,
		Now:                clk.Now,
		MinFreeBytes:       1,
		CheckpointInterval: time.Hour,
		ReclaimInterval:    time.Hour,
	}
}

func mustOpen(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", opts.Dir, err)
	}
	return s
}

func closeStore(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func value(v string) vclock.Sibling {
	return vclock.Sibling{Value: []byte(v), ContentType: "text/plain"}
}

func mustPut(t testing.TB, s *Store, db int, key, actor string, ctx vclock.Context, sib vclock.Sibling) (vclock.Set, vclock.Context) {
	t.Helper()
	set, cctx, err := s.Put(db, []byte(key), actor, ctx, sib)
	if err != nil {
		t.Fatalf("Put(db %d, %q): %v", db, key, err)
	}
	return set, cctx
}

func mustGet(t testing.TB, s *Store, db int, key string) vclock.Set {
	t.Helper()
	set, err := s.Get(db, []byte(key))
	if err != nil {
		t.Fatalf("Get(db %d, %q): %v", db, key, err)
	}
	return set
}

// values lists the sibling values of a set in its (dot) order.
func values(sibs []vclock.Sibling) []string {
	out := make([]string, 0, len(sibs))
	for _, s := range sibs {
		out = append(out, string(s.Value))
	}
	return out
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// copyDir copies a store directory while the store may still be open: the
// copy is what a crash at this moment would leave for the next Open (the
// page cache survives a process crash).
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if info.Name() == "LOCK" {
			return nil // goleveldb recreates it; the original is flocked
		}
		in, err := os.Open(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // removed while we walked (a released segment)
			}
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// reclaimIndex returns the store's reclaim index entries.
func reclaimIndex(t testing.TB, s *Store) []reclaimEntry {
	t.Helper()
	due, err := s.dueEntries(1<<63 - 1)
	if err != nil {
		t.Fatalf("scan reclaim index: %v", err)
	}
	return due
}

// waitFor polls cond; the deadline only bounds a broken test, it asserts
// nothing about speed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, 5*time.Millisecond, what, cond)
}
