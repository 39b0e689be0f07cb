// Package storetest opens stores for the tests of the packages above the
// store (replication, node): one opener, with the options those tests
// share, instead of one per test file. Imported by tests only.
package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/wal"
)

// Options are what a test of a package above the store wants by default:
// durability is not under test there, so the WAL syncs on a 10ms interval;
// the free-space guard ignores the machine's disk (MinFreeBytes 1); and the
// background checkpoint and reclaim passes run once an hour, so that the
// test decides when they happen.
func Options(dir string) store.Options {
	return store.Options{
		Dir:                dir,
		Sync:               wal.SyncPolicy{Interval: 10 * time.Millisecond},
		MinFreeBytes:       1,
		CheckpointInterval: time.Hour,
		ReclaimInterval:    time.Hour,
	}
}

// Open opens a store with opts and closes it when tb ends, failing tb if
// either fails (a store the test closed itself is not an error).
func Open(tb testing.TB, opts store.Options) *store.Store {
	tb.Helper()
	s, err := store.Open(opts)
	if err != nil {
		tb.Fatalf("store.Open(%s): %v", opts.Dir, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			tb.Errorf("store.Close(%s): %v", opts.Dir, err)
		}
	})
	return s
}

// OpenTemp opens a store with Options in a fresh temporary directory.
func OpenTemp(tb testing.TB) *store.Store {
	tb.Helper()
	return Open(tb, Options(tb.TempDir()))
}
