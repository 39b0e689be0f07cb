package store

import (
	"errors"
	"sync"
	"testing"

	"github.com/dynkv/dynkv/vclock"
)

// Concurrent increments of one actor on one store all count (the key's
// lock serialises them), they survive a reopen (WAL replay), and a value
// write to the counter, or an increment of a value, is the wrong type.
func TestIncrementIsSerialisedDurableAndTyped(t *testing.T) {
	dir := t.TempDir()
	clk := newTestClock()
	s := mustOpen(t, testOptions(dir, clk))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if _, err := s.Increment(0, []byte("c"), "n1", vclock.Set{}, 2); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if _, err := s.Increment(0, []byte("c"), "n1", vclock.Set{}, -1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Write(0, []byte("c"), "n1", Supersede{Blind: true}, value("x")); !errors.Is(err, ErrWrongType) {
		t.Fatalf("value write to a counter: %v, want ErrWrongType", err)
	}
	mustPut(t, s, 0, "v", "n1", vclock.Context{}, value("x"))
	if _, err := s.Increment(0, []byte("v"), "n1", vclock.Set{}, 1); !errors.Is(err, ErrWrongType) {
		t.Fatalf("increment of a value: %v, want ErrWrongType", err)
	}
	closeStore(t, s)

	s = mustOpen(t, testOptions(dir, clk))
	defer closeStore(t, s)
	got := mustGet(t, s, 0, "c")
	if v, ok, err := got.CounterValue(); v != 399 || !ok || err != nil {
		t.Fatalf("after reopen: %d %v %v, want 399", v, ok, err)
	}
	if len(got.Siblings) != 1 {
		t.Fatalf("one actor left %d shares", len(got.Siblings))
	}
	// A delete (a tombstone) is allowed on a counter, and afterwards the
	// key takes a value.
	set := mustGet(t, s, 0, "c")
	if _, _, err := s.Write(0, []byte("c"), "n1", Supersede{Context: set.Context}, vclock.Sibling{Tombstone: true}); err != nil {
		t.Fatalf("delete of a counter: %v", err)
	}
	mustPut(t, s, 0, "c", "n1", mustGet(t, s, 0, "c").Context, value("now a value"))
}
