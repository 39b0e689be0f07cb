package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dynkv/dynkv/vclock"
)

func TestPutThenGetReturnsTheValue(t *testing.T) {
	clk := newTestClock()
	s := mustOpen(t, testOptions(t.TempDir(), clk))
	defer closeStore(t, s)

	set, cctx := mustPut(t, s, 3, "k", "n1", vclock.Context{}, value("v1"))
	if got := values(set.Siblings); !sameStrings(got, []string{"v1"}) {
		t.Fatalf("Put returned siblings %v, want [v1]", got)
	}
	if cctx.IsZero() {
		t.Fatalf("Put returned a zero client context; it must cover the new write")
	}
	got := mustGet(t, s, 3, "k")
	if !got.Equal(set) {
		t.Fatalf("Get returned %+v, want what Put returned %+v", got, set)
	}
	sib := got.Siblings[0]
	if sib.ContentType != "text/plain" || sib.LastModified != clk.Now().UnixNano() {
		t.Fatalf("stored sibling %+v: want content type text/plain and LastModified from the injected clock %d", sib, clk.Now().UnixNano())
	}
	if _, err := s.Get(4, []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get in another database: err %v, want ErrNotFound (databases are separate)", err)
	}
	if _, err := s.Get(3, []byte("other")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an absent key: err %v, want ErrNotFound", err)
	}
}

func TestBlindWriteSupersedesEverythingTheReplicaHolds(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), newTestClock()))
	defer closeStore(t, s)

	_, c1 := mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("a"))
	// Two writes from the same read context: concurrent siblings.
	mustPut(t, s, 0, "k", "n1", c1, value("b"))
	mustPut(t, s, 0, "k", "n1", c1, value("c"))
	if got := values(mustGet(t, s, 0, "k").Siblings); !sameStrings(got, []string{"b", "c"}) {
		t.Fatalf("before the blind write: siblings %v, want [b c]", got)
	}
	set, _ := mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("d"))
	if got := values(set.Siblings); !sameStrings(got, []string{"d"}) {
		t.Fatalf("blind write left siblings %v, want only [d]", got)
	}
}

func TestStaleContextMakesSiblingsAndReadContextResolvesThem(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), newTestClock()))
	defer closeStore(t, s)

	_, c1 := mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("v1"))
	mustPut(t, s, 0, "k", "n1", c1, value("v2"))
	// c1 does not cover v2: v3 is concurrent with it.
	set, _ := mustPut(t, s, 0, "k", "n1", c1, value("v3"))
	if got := values(set.Siblings); !sameStrings(got, []string{"v2", "v3"}) {
		t.Fatalf("write with a stale context: siblings %v, want [v2 v3]", got)
	}
	read := mustGet(t, s, 0, "k")
	set, _ = mustPut(t, s, 0, "k", "n1", read.Context, value("resolved"))
	if got := values(set.Siblings); !sameStrings(got, []string{"resolved"}) {
		t.Fatalf("write with the read context: siblings %v, want [resolved]", got)
	}
}

func TestTwoClientsWritingWithTheirOwnContextsLeaveTwoSiblings(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), newTestClock()))
	defer closeStore(t, s)

	var ca, cb vclock.Context
	for i := 0; i < 5; i++ {
		_, ca = mustPut(t, s, 0, "k", "n1", ca, value(fmt.Sprintf("a%d", i)))
		_, cb = mustPut(t, s, 0, "k", "n1", cb, value(fmt.Sprintf("b%d", i)))
	}
	if got := values(mustGet(t, s, 0, "k").Siblings); !sameStrings(got, []string{"a4", "b4"}) {
		t.Fatalf("siblings %v, want exactly the two latest [a4 b4]", got)
	}
}

func remoteSet(actor, v string, lm int64) vclock.Set {
	sib := value(v)
	sib.LastModified = lm
	set, _ := vclock.Set{}.Update(actor, vclock.Context{}, sib)
	return set
}

func TestMergeCoveringMergesOnlyASetThatCoversWhatTheReplicaHolds(t *testing.T) {
	clk := newTestClock()
	s := mustOpen(t, testOptions(t.TempDir(), clk))
	defer closeStore(t, s)
	k := []byte("k")

	// An absent key: anything covers it.
	v1 := remoteSet("n2", "v1", clk.After(0))
	if _, covered, err := s.MergeCovering(0, k, v1); err != nil || !covered {
		t.Fatalf("covering merge into an absent key: covered %v, %v", covered, err)
	}
	// A set that has seen v1 covers it, and replaces it.
	v2, _ := v1.Update("n3", v1.Context, value("v2"))
	if _, covered, err := s.MergeCovering(0, k, v2); err != nil || !covered {
		t.Fatalf("covering merge of a successor: covered %v, %v", covered, err)
	}
	if got := values(mustGet(t, s, 0, "k").Siblings); !sameStrings(got, []string{"v2"}) {
		t.Fatalf("after the successor: %v, want [v2]", got)
	}
	// A blind write that never saw v2 does not cover it: nothing written,
	// and the answer is what the replica holds.
	lsn := s.wal.LastLSN()
	other := remoteSet("n4", "unseen", clk.After(2))
	cur, covered, err := s.MergeCovering(0, k, other)
	if err != nil || covered {
		t.Fatalf("covering merge of a set that missed v2: covered %v, %v", covered, err)
	}
	if !cur.Context.Equal(v2.Context) {
		t.Fatalf("refusal answered context %v, want the replica's %v", cur.Context, v2.Context)
	}
	if s.wal.LastLSN() != lsn {
		t.Fatal("a refused covering merge wrote to the WAL")
	}
	if got := values(mustGet(t, s, 0, "k").Siblings); !sameStrings(got, []string{"v2"}) {
		t.Fatalf("after the refusal: %v, want [v2] untouched", got)
	}
	// Delivered twice: the repeat finds its own set and covers it.
	if _, covered, err := s.MergeCovering(0, k, v2); err != nil || !covered {
		t.Fatalf("repeated covering merge: covered %v, %v", covered, err)
	}
}

func TestMergeIsIdempotentAndOrderFree(t *testing.T) {
	clk := newTestClock()
	a := remoteSet("n2", "from-n2", clk.After(0))
	b := remoteSet("n3", "from-n3", clk.After(1))
	// b2 supersedes b (same actor, context covering b).
	b2, _ := b.Update("n3", b.Context, value("from-n3-again"))

	x := mustOpen(t, testOptions(t.TempDir(), clk))
	defer closeStore(t, x)
	y := mustOpen(t, testOptions(t.TempDir(), clk))
	defer closeStore(t, y)

	for _, in := range []vclock.Set{a, b, b2} {
		if _, err := x.Merge(0, []byte("k"), in); err != nil {
			t.Fatalf("x.Merge: %v", err)
		}
	}
	for _, in := range []vclock.Set{b2, a, b} {
		if _, err := y.Merge(0, []byte("k"), in); err != nil {
			t.Fatalf("y.Merge: %v", err)
		}
	}
	gx, gy := mustGet(t, x, 0, "k"), mustGet(t, y, 0, "k")
	if !gx.Equal(gy) {
		t.Fatalf("merging in different orders diverged:\n x: %+v\n y: %+v", gx, gy)
	}
	if got := values(gx.Siblings); !sameStrings(got, []string{"from-n2", "from-n3-again"}) {
		t.Fatalf("merged siblings %v, want [from-n2 from-n3-again]", got)
	}

	lsn, written := x.wal.LastLSN(), x.Stats().KeysWritten
	for _, in := range []vclock.Set{a, b, b2, gx} {
		got, err := x.Merge(0, []byte("k"), in)
		if err != nil {
			t.Fatalf("repeated Merge: %v", err)
		}
		if !got.Equal(gx) {
			t.Fatalf("repeated Merge returned %+v, want the unchanged %+v", got, gx)
		}
	}
	if x.wal.LastLSN() != lsn || x.Stats().KeysWritten != written {
		t.Fatalf("repeating merges wrote: WAL LSN %d -> %d, keys written %d -> %d; want no writes",
			lsn, x.wal.LastLSN(), written, x.Stats().KeysWritten)
	}
}

func TestBadDatabaseAndKeyAreRejected(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), newTestClock()))
	defer closeStore(t, s)

	cases := []struct {
		name string
		db   int
		key  []byte
		want error
	}{
		{"negative db", -1, []byte("k"), ErrBadDatabase},
		{"db past Databases", DefaultDatabases, []byte("k"), ErrBadDatabase},
		{"empty key", 0, nil, ErrBadKey},
		{"key over 1024 bytes", 0, bytes.Repeat([]byte("k"), MaxKeyLen+1), ErrBadKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := s.Put(tc.db, tc.key, "n1", vclock.Context{}, value("v")); !errors.Is(err, tc.want) {
				t.Errorf("Put: err %v, want %v", err, tc.want)
			}
			if _, err := s.Get(tc.db, tc.key); !errors.Is(err, tc.want) {
				t.Errorf("Get: err %v, want %v", err, tc.want)
			}
			if _, err := s.Merge(tc.db, tc.key, remoteSet("n2", "v", 1)); !errors.Is(err, tc.want) {
				t.Errorf("Merge: err %v, want %v", err, tc.want)
			}
		})
	}
	// The boundaries themselves are valid.
	longest := strings.Repeat("k", MaxKeyLen)
	mustPut(t, s, DefaultDatabases-1, longest, "n1", vclock.Context{}, value("v"))
	mustGet(t, s, DefaultDatabases-1, longest)
	mustPut(t, s, 0, "\x00", "n1", vclock.Context{}, value("v"))
}

func TestInvalidOptionsFailOpenWithAMessage(t *testing.T) {
	for _, opts := range []Options{
		{},
		{Dir: t.TempDir(), Databases: 300},
		{Dir: t.TempDir(), SegmentSize: -1},
	} {
		if s, err := Open(opts); err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded, want an error", opts)
		} else if !strings.Contains(err.Error(), "invalid options") {
			t.Errorf("Open(%+v): %v, want an invalid options message", opts, err)
		}
	}
}

func TestClosedStoreRefusesWork(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), newTestClock()))
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("v"))
	closeStore(t, s)
	if _, err := s.Get(0, []byte("k")); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	if _, _, err := s.Put(0, []byte("k"), "n1", vclock.Context{}, value("v")); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close: %v, want ErrClosed", err)
	}
	if err := s.Checkpoint(); !errors.Is(err, ErrClosed) {
		t.Errorf("Checkpoint after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
}

func TestStoreLayoutHasWALAndLevelDBFolders(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, newTestClock()))
	defer closeStore(t, s)
	for _, sub := range []string{"wal", "leveldb"} {
		if m, _ := filepath.Glob(filepath.Join(dir, sub, "*")); len(m) == 0 {
			t.Errorf("%s/ under the store dir is empty or missing", sub)
		}
	}
}
