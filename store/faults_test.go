package store

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/syndtr/goleveldb/leveldb"

	"github.com/dynkv/dynkv/vclock"
	"github.com/dynkv/dynkv/wal"
)

// fullFS is a wal.FS whose writes fail with ENOSPC while full is set.
type fullFS struct {
	wal.OSFS
	full atomic.Bool
}

func (f *fullFS) OpenFile(name string, flag int, perm os.FileMode) (wal.File, error) {
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &fullFile{File: file, fs: f}, nil
}

type fullFile struct {
	wal.File
	fs *fullFS
}

func (f *fullFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fs.full.Load() {
		return 0, &os.PathError{Op: "write", Path: "segment", Err: syscall.ENOSPC}
	}
	return f.File.WriteAt(p, off)
}

func TestWALOutOfSpaceFailsWritesWithErrDiskFullAndRecovers(t *testing.T) {
	clk := newTestClock()
	fsys := &fullFS{}
	opts := testOptions(t.TempDir(), clk)
	opts.FS = fsys
	s := mustOpen(t, opts)
	defer closeStore(t, s)

	mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("before"))
	fsys.full.Store(true)
	_, _, err := s.Put(0, []byte("k"), "n1", vclock.Context{}, value("during"))
	if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put on a full disk: %v, want ErrDiskFull wrapping ENOSPC", err)
	}
	if got := values(mustGet(t, s, 0, "k").Siblings); len(got) != 1 || got[0] != "before" {
		t.Fatalf("read on a full disk: %v, want [before]", got)
	}
	fsys.full.Store(false)
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("after"))
	if got := values(mustGet(t, s, 0, "k").Siblings); len(got) != 1 || got[0] != "after" {
		t.Fatalf("after the disk recovered: %v, want [after]", got)
	}
}

func TestFreeSpaceGuardRefusesWritesBeforeTheWAL(t *testing.T) {
	t.Run("real statfs", func(t *testing.T) {
		opts := testOptions(t.TempDir(), newTestClock())
		opts.MinFreeBytes = math.MaxUint64
		s := mustOpen(t, opts)
		defer closeStore(t, s)
		lsn := s.wal.LastLSN()
		if _, _, err := s.Put(0, []byte("k"), "n1", vclock.Context{}, value("v")); !errors.Is(err, ErrDiskFull) {
			t.Fatalf("Put below MinFreeBytes: %v, want ErrDiskFull", err)
		}
		if _, err := s.Merge(0, []byte("k"), remoteSet("n2", "v", 1)); !errors.Is(err, ErrDiskFull) {
			t.Fatalf("Merge below MinFreeBytes: %v, want ErrDiskFull", err)
		}
		if s.wal.LastLSN() != lsn {
			t.Fatalf("refused writes reached the WAL: LSN %d -> %d", lsn, s.wal.LastLSN())
		}
	})
	t.Run("space comes back", func(t *testing.T) {
		var free atomic.Uint64
		free.Store(1 << 40)
		opts := testOptions(t.TempDir(), newTestClock())
		opts.MinFreeBytes = 1 << 30
		opts.freeSpace = func(string) (uint64, error) { return free.Load(), nil }
		s := mustOpen(t, opts)
		defer closeStore(t, s)

		mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("before"))
		free.Store(1 << 20)
		s.space.invalidate() // skip the 100ms cache instead of sleeping
		if _, _, err := s.Put(0, []byte("k"), "n1", vclock.Context{}, value("during")); !errors.Is(err, ErrDiskFull) {
			t.Fatalf("Put with 1 MiB free and a 1 GiB minimum: %v, want ErrDiskFull", err)
		}
		if got := values(mustGet(t, s, 0, "k").Siblings); len(got) != 1 || got[0] != "before" {
			t.Fatalf("read while disk is low: %v, want [before]", got)
		}
		free.Store(1 << 40)
		s.space.invalidate()
		mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("after"))
	})
}

// failingApply makes LevelDB applies fail with err while it is set.
type failingApply struct{ err atomic.Pointer[error] }

func (f *failingApply) wrap(apply func(*leveldb.Batch) error) func(*leveldb.Batch) error {
	return func(b *leveldb.Batch) error {
		if e := f.err.Load(); e != nil {
			return *e
		}
		return apply(b)
	}
}

func (f *failingApply) set(err error) {
	if err == nil {
		f.err.Store(nil)
		return
	}
	f.err.Store(&err)
}

func TestFailedLevelDBApplyIsKeptPendingUntilARetryAppliesIt(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	fault := &failingApply{}
	opts := testOptions(dir, clk)
	opts.wrapApply = fault.wrap
	s := mustOpen(t, opts)
	defer closeStore(t, s)

	mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("v1"))
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	// Hold the retry off until the assertions below are done.
	fault.set(fmt.Errorf("write journal: %w", syscall.ENOSPC))
	_, _, err := s.Put(0, []byte("k"), "n1", vclock.Context{}, value("v2"))
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Put whose LevelDB apply hit ENOSPC: %v, want ErrDiskFull", err)
	}
	pendingLSN := s.wal.LastLSN()
	if got := s.Stats().PendingRecords; got != 1 {
		t.Fatalf("pending records %d, want 1", got)
	}
	// The record is durable, so reads already reflect it.
	if got := values(mustGet(t, s, 0, "k").Siblings); len(got) != 1 || got[0] != "v2" {
		t.Fatalf("read with a pending record: %v, want [v2]", got)
	}
	if _, _, err := s.Put(0, []byte("other"), "n1", vclock.Context{}, value("x")); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Put while a record is pending: %v, want a refusal wrapping ErrDiskFull", err)
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().CheckpointLSN; got >= pendingLSN {
		t.Fatalf("checkpoint LSN %d covers the pending record %d", got, pendingLSN)
	}

	// A crash now must still have v2: the copy replays it.
	crashed := t.TempDir()
	copyDir(t, dir, crashed)

	fault.set(nil)
	waitFor(t, "the background retry to apply the pending record", func() bool {
		return s.Stats().PendingRecords == 0
	})
	mustPut(t, s, 0, "other", "n1", vclock.Context{}, value("x"))
	if v, _, err := s.readLevelDB(0, []byte("k")); err != nil || !sameStrings(values(v.Siblings), []string{"v2"}) {
		t.Fatalf("LevelDB after the retry: %v %v, want [v2]", values(v.Siblings), err)
	}

	c := mustOpen(t, testOptions(crashed, clk))
	defer closeStore(t, c)
	if got := values(mustGet(t, c, 0, "k").Siblings); len(got) != 1 || got[0] != "v2" {
		t.Fatalf("after a crash with a pending record: %v, want [v2]", got)
	}
}

// stickyApply fails every LevelDB apply until the store has reopened
// LevelDB, like goleveldb after a journal write error.
type stickyApply struct{ s atomic.Pointer[Store] }

func (f *stickyApply) wrap(apply func(*leveldb.Batch) error) func(*leveldb.Batch) error {
	return func(b *leveldb.Batch) error {
		if s := f.s.Load(); s != nil && s.reopens.Load() == 0 {
			return fmt.Errorf("leveldb/journal: %w", syscall.ENOSPC)
		}
		return apply(b)
	}
}

func TestStuckLevelDBIsReopenedAndPendingRecordsApplied(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	fault := &stickyApply{}
	opts := testOptions(dir, clk)
	opts.wrapApply = fault.wrap
	s := mustOpen(t, opts)
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("v1"))
	fault.s.Store(s)
	if _, _, err := s.Put(0, []byte("k"), "n1", vclock.Context{}, value("v2")); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Put with a stuck LevelDB: %v, want ErrDiskFull", err)
	}
	// Readers keep going while the store reopens LevelDB under them.
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			set, err := s.Get(0, []byte("k"))
			if err != nil || !sameStrings(values(set.Siblings), []string{"v2"}) {
				done <- fmt.Errorf("read during reopen: %v %v, want [v2]", values(set.Siblings), err)
				return
			}
		}
	}()
	waitFor(t, "the retry to reopen LevelDB and apply the pending record", func() bool {
		return s.Stats().PendingRecords == 0
	})
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := s.Stats().LevelDBReopens; n != 1 {
		t.Errorf("LevelDB reopened %d times, want 1", n)
	}
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("v3"))
	closeStore(t, s)

	s = mustOpen(t, testOptions(dir, clk))
	defer closeStore(t, s)
	if got := values(mustGet(t, s, 0, "k").Siblings); len(got) != 1 || got[0] != "v3" {
		t.Fatalf("after reopen and restart: %v, want [v3]", got)
	}
}

// A hint's LevelDB key is made of bytes a client may also use as a key.
// While the hint waits in the pending queue, reads of that data key must
// not see it: the queue tells hints and data apart.
func TestPendingHintDoesNotShadowADataKeyOfTheSameBytes(t *testing.T) {
	clk := newTestClock()
	fault := &failingApply{}
	opts := testOptions(t.TempDir(), clk)
	opts.wrapApply = fault.wrap
	s := mustOpen(t, opts)
	defer closeStore(t, s)

	hinted, _ := mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("hinted"))
	fault.set(fmt.Errorf("write journal: %w", syscall.ENOSPC))
	if err := s.PutHint("n2", 0, []byte("k"), hinted); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("PutHint whose LevelDB apply hit ENOSPC: %v, want ErrDiskFull", err)
	}
	if got := s.Stats().PendingRecords; got != 1 {
		t.Fatalf("pending records %d, want 1 (the hint)", got)
	}
	lookalike := string(hintKey("n2", 0, []byte("k")))
	if set, err := s.Get(0, []byte(lookalike)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("data key with the pending hint's bytes: %v %v, want absent", values(set.Siblings), err)
	}
	fault.set(nil)
	waitFor(t, "the background retry to apply the pending hint", func() bool {
		return s.Stats().PendingRecords == 0
	})
}
