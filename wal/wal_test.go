package wal

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/wal/waltest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const memDir = "/wal"

// pollWithin bounds a test's wait for the WAL to reach a state; it only
// stops a broken test and says nothing about speed.
const pollWithin = 30 * time.Second

type rec struct {
	lsn     uint64
	payload []byte
}

func (r rec) String() string { return fmt.Sprintf("%d:%q", r.lsn, r.payload) }

// payloadFor makes payloads of varied sizes, some empty, so frame
// boundaries fall everywhere.
func payloadFor(i int) []byte {
	if i%11 == 0 {
		return []byte{}
	}
	return append([]byte(fmt.Sprintf("r%d-", i)), bytes.Repeat([]byte{byte('a' + i%26)}, i%37)...)
}

func memOptions(fsys *waltest.MemFS) Options {
	return Options{Dir: memDir, FS: fsys, SegmentSize: 512}
}

func mustOpen(t testing.TB, opts Options) *WAL {
	t.Helper()
	w, err := Open(opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", opts.Dir, err)
	}
	return w
}

func mustAppend(t testing.TB, w *WAL, p []byte) rec {
	t.Helper()
	lsn, err := w.Append(p)
	if err != nil {
		t.Fatalf("Append(%q): %v", p, err)
	}
	return rec{lsn, append([]byte(nil), p...)}
}

// appendOrError is mustAppend for goroutines other than the test's own.
func appendOrError(t testing.TB, w *WAL, p []byte) {
	if _, err := w.Append(p); err != nil {
		t.Errorf("Append(%q): %v", p, err)
	}
}

func mustClose(t testing.TB, w *WAL) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func replayAll(t testing.TB, w *WAL, after uint64) []rec {
	t.Helper()
	var got []rec
	err := w.Replay(after, func(lsn uint64, p []byte) error {
		got = append(got, rec{lsn, p})
		return nil
	})
	if err != nil {
		t.Fatalf("Replay(%d): %v", after, err)
	}
	return got
}

func checkRecords(t testing.TB, what string, got, want []rec) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: replayed %d records, want %d\n got: %v\nwant: %v", what, len(got), len(want), got, want)
	}
	for i := range want {
		if got[i].lsn != want[i].lsn || !bytes.Equal(got[i].payload, want[i].payload) {
			t.Fatalf("%s: record %d is %v, want %v", what, i, got[i], want[i])
		}
	}
}

// writeLog appends n records one at a time and closes the log.
func writeLog(t testing.TB, opts Options, n int) []rec {
	t.Helper()
	w := mustOpen(t, opts)
	var recs []rec
	for i := 1; i <= n; i++ {
		recs = append(recs, mustAppend(t, w, payloadFor(i)))
	}
	mustClose(t, w)
	return recs
}

// buildLog writes a multi-segment log on fsys whose last segment holds at
// least five records (rotation leaves it empty when a batch fills it).
func buildLog(t testing.TB, fsys *waltest.MemFS, segmentSize int64, n int) []rec {
	t.Helper()
	opts := Options{Dir: memDir, FS: fsys, SegmentSize: segmentSize}
	recs := writeLog(t, opts, n)
	paths := segPaths(fsys)
	if len(frames(t, fsys.Bytes(paths[len(paths)-1]))) < 5 {
		w := mustOpen(t, opts)
		for i := n + 1; i <= n+5; i++ {
			recs = append(recs, mustAppend(t, w, payloadFor(i)))
		}
		mustClose(t, w)
		paths = segPaths(fsys)
		if k := len(frames(t, fsys.Bytes(paths[len(paths)-1]))); k < 5 {
			t.Fatalf("last segment holds %d records, want >= 5", k)
		}
	}
	return recs
}

// frame is where a record sits in a segment file.
type frame struct{ start, end int64 }

func frames(t testing.TB, b []byte) []frame {
	t.Helper()
	var fs []frame
	off := segmentHeaderSize
	for off < len(b) {
		if allZero(b[off:]) {
			break // the preallocated tail
		}
		_, _, n, reason := decodeRecord(b[off:])
		if reason != "" {
			t.Fatalf("test log unreadable at offset %d: %s", off, reason)
		}
		fs = append(fs, frame{int64(off), int64(off + n)})
		off += n
	}
	return fs
}

// recordsEnd is where the records of a segment's bytes end: its size but
// for the preallocated zeros.
func recordsEnd(t testing.TB, b []byte) int {
	t.Helper()
	fr := frames(t, b)
	if len(fr) == 0 {
		return segmentHeaderSize
	}
	return int(fr[len(fr)-1].end)
}

// recordsIn returns the records of recs stored in the segment at path.
func recordsIn(t testing.TB, fsys *waltest.MemFS, path string, recs []rec) []rec {
	t.Helper()
	base, ok := parseSegmentName(filepath.Base(path))
	if !ok {
		t.Fatalf("bad segment name %s", path)
	}
	n := len(frames(t, fsys.Bytes(path)))
	for i, r := range recs {
		if r.lsn >= base {
			return recs[i : i+n]
		}
	}
	return nil
}

func segPaths(fsys *waltest.MemFS) []string {
	var ps []string
	for _, n := range fsys.Names(memDir) {
		ps = append(ps, filepath.Join(memDir, n))
	}
	return ps
}

func TestAppendReplayCloseReopenOnDisk(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentSize: 1 << 10}
	want := writeLog(t, opts, 200)
	for i, r := range want {
		if r.lsn != uint64(i+1) {
			t.Fatalf("record %d got lsn %d, want %d", i, r.lsn, i+1)
		}
	}
	w := mustOpen(t, opts)
	defer mustClose(t, w)
	if s := w.Stats(); s.Segments < 3 {
		t.Fatalf("1 KiB segments: %d segments after 200 records, want several", s.Segments)
	}
	checkRecords(t, "replay after reopen", replayAll(t, w, 0), want)
	checkRecords(t, "replay after 150", replayAll(t, w, 150), want[150:])
	if got := w.LastLSN(); got != 200 {
		t.Fatalf("LastLSN after reopen = %d, want 200", got)
	}
	if r := mustAppend(t, w, []byte("next")); r.lsn != 201 {
		t.Fatalf("first append after reopen got lsn %d, want 201", r.lsn)
	}
}

func TestReplayStopsAtCallbackError(t *testing.T) {
	fsys := waltest.NewMemFS()
	writeLog(t, memOptions(fsys), 30)
	w := mustOpen(t, memOptions(fsys))
	defer mustClose(t, w)
	stop := errors.New("stop")
	var n int
	err := w.Replay(0, func(uint64, []byte) error {
		n++
		if n == 7 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 7 {
		t.Fatalf("Replay returned %v after %d records, want the callback's error after 7", err, n)
	}
}

// TestTornTailAtEveryOffsetIsCutAndLogStaysUsable cuts the last segment at
// every byte offset inside its last three records.
func TestTornTailAtEveryOffsetIsCutAndLogStaysUsable(t *testing.T) {
	base := waltest.NewMemFS()
	recs := buildLog(t, base, 2048, 120)
	paths := segPaths(base)
	if len(paths) < 2 {
		t.Fatalf("want several segments, got %v", paths)
	}
	last := paths[len(paths)-1]
	lastBytes := base.Bytes(last)
	fr := frames(t, lastBytes)
	if len(fr) < 3 {
		t.Fatalf("last segment holds %d records, want >= 3", len(fr))
	}
	inLast := recordsIn(t, base, last, recs)
	firstInLast := len(recs) - len(inLast)

	for cut := fr[len(fr)-3].start; cut < int64(len(lastBytes)); cut++ {
		fsys := base.Clone()
		fsys.SetBytes(last, lastBytes[:cut])
		core, logs := observer.New(zapcore.WarnLevel)
		opts := Options{Dir: memDir, FS: fsys, SegmentSize: 2048, Logger: zap.New(core)}
		w, err := Open(opts)
		if err != nil {
			t.Fatalf("cut at %d: Open failed on a torn tail: %v", cut, err)
		}
		intact := 0
		for _, f := range fr {
			if f.end <= cut {
				intact++
			}
		}
		want := append([]rec(nil), recs[:firstInLast+intact]...)
		checkRecords(t, fmt.Sprintf("cut at %d", cut), replayAll(t, w, 0), want)
		if torn := intact < len(fr) && cut != fr[intact].start; torn {
			entries := logs.FilterMessage("wal: cut torn tail").All()
			if len(entries) != 1 {
				t.Fatalf("cut at %d: torn tail not logged at warn: %v", cut, logs.All())
			}
			f := entries[0].ContextMap()
			if f["file"] != last || f["offset"] != fr[intact].start || f["bytes_cut"] != cut-fr[intact].start {
				t.Fatalf("cut at %d: torn tail logged with %v, want file %s offset %d bytes_cut %d", cut, f, last, fr[intact].start, cut-fr[intact].start)
			}
		}
		for i := 0; i < 3; i++ {
			want = append(want, mustAppend(t, w, []byte(fmt.Sprintf("after-cut-%d", i))))
		}
		mustClose(t, w)
		w = mustOpen(t, opts)
		checkRecords(t, fmt.Sprintf("cut at %d, appended, reopened", cut), replayAll(t, w, 0), want)
		mustClose(t, w)
	}
}

// damagedRecord returns the index in fr of the record holding byte off, or
// -1 for the segment header.
func damagedRecord(fr []frame, off int64) int {
	for i, f := range fr {
		if off >= f.start && off < f.end {
			return i
		}
	}
	return -1
}

// TestBitFlipIsCutOrReportedWithFileAndOffset flips one bit at every byte
// of the last segment and of an earlier one.
func TestBitFlipIsCutOrReportedWithFileAndOffset(t *testing.T) {
	base := waltest.NewMemFS()
	recs := buildLog(t, base, 1024, 80)
	paths := segPaths(base)
	if len(paths) < 3 {
		t.Fatalf("want at least 3 segments, got %v", paths)
	}
	for _, target := range []struct {
		name string
		path string
		last bool
	}{
		{"last segment", paths[len(paths)-1], true},
		{"earlier segment", paths[1], false},
	} {
		t.Run(target.name, func(t *testing.T) {
			orig := base.Bytes(target.path)
			fr := frames(t, orig)
			inSeg := recordsIn(t, base, target.path, recs)
			before := 0
			for before < len(recs) && recs[before].lsn < inSeg[0].lsn {
				before++
			}
			for off := int64(0); off < int64(len(orig)); off++ {
				damaged := append([]byte(nil), orig...)
				damaged[off] ^= 1 << (off % 8)
				fsys := base.Clone()
				fsys.SetBytes(target.path, damaged)
				idx := damagedRecord(fr, off)
				wantOff := int64(0)
				if idx >= 0 {
					wantOff = fr[idx].start
				}
				intact := before + max(idx, 0)
				// Only the last record of the last segment may pass for a
				// torn tail; anything else has valid records after it. So
				// may garbage in the last segment's preallocated zeros: a
				// write that never completed.
				torn := target.last && idx == len(fr)-1
				if target.last && off >= fr[len(fr)-1].end {
					torn, intact = true, before+len(fr)
				}

				opts := Options{Dir: memDir, FS: fsys, SegmentSize: 1024}
				w, err := Open(opts)
				if torn {
					if err != nil {
						t.Fatalf("flip at %d (last record): Open: %v, want the torn tail cut", off, err)
					}
					checkRecords(t, fmt.Sprintf("flip at %d", off), replayAll(t, w, 0), recs[:intact])
					mustClose(t, w)
					continue
				}
				var cerr *CorruptionError
				if !errors.As(err, &cerr) || !errors.Is(err, ErrCorrupt) {
					t.Fatalf("flip at %d: Open returned %v, want a *CorruptionError", off, err)
				}
				if cerr.File != target.path || cerr.Offset != wantOff {
					t.Fatalf("flip at %d: corruption reported at %s offset %d, want %s offset %d (%v)",
						off, cerr.File, cerr.Offset, target.path, wantOff, err)
				}

				opts.Repair = true
				core, logs := observer.New(zapcore.ErrorLevel)
				opts.Logger = zap.New(core)
				w, err = Open(opts)
				if err != nil {
					t.Fatalf("flip at %d: Open with Repair: %v", off, err)
				}
				if logs.Len() == 0 {
					t.Fatalf("flip at %d: repair not logged at error level", off)
				}
				checkRecords(t, fmt.Sprintf("flip at %d, repaired", off), replayAll(t, w, 0), recs[:intact])
				r := mustAppend(t, w, []byte("after repair"))
				if r.lsn <= recs[len(recs)-1].lsn {
					t.Fatalf("flip at %d: after repair an append reused lsn %d (log had up to %d)", off, r.lsn, recs[len(recs)-1].lsn)
				}
				mustClose(t, w)
				w = mustOpen(t, Options{Dir: memDir, FS: fsys, SegmentSize: 1024})
				checkRecords(t, fmt.Sprintf("flip at %d, repaired, reopened", off), replayAll(t, w, 0), append(recs[:intact:intact], r))
				mustClose(t, w)
			}
		})
	}
}

func TestDamagedSegmentHeaderVersionIsCorruption(t *testing.T) {
	fsys := waltest.NewMemFS()
	writeLog(t, memOptions(fsys), 3)
	path := segPaths(fsys)[0]
	b := fsys.Bytes(path)
	b[len(segmentMagic)] = segmentVersion + 1
	fsys.SetBytes(path, b)
	_, err := Open(memOptions(fsys))
	var cerr *CorruptionError
	if !errors.As(err, &cerr) || cerr.Offset != 0 {
		t.Fatalf("unknown format version: Open returned %v, want *CorruptionError at offset 0", err)
	}
}

func TestEmptyOrHeaderlessLastSegmentIsTorn(t *testing.T) {
	for _, size := range []int{0, 4, segmentHeaderSize} {
		fsys := waltest.NewMemFS()
		recs := writeLog(t, Options{Dir: memDir, FS: fsys, SegmentSize: 1}, 5)
		paths := segPaths(fsys)
		last := paths[len(paths)-1]
		fsys.SetBytes(last, segmentHeader()[:size])
		w := mustOpen(t, memOptions(fsys))
		checkRecords(t, fmt.Sprintf("last segment %d bytes", size), replayAll(t, w, 0), recs)
		r := mustAppend(t, w, []byte("x"))
		if r.lsn != 6 {
			t.Fatalf("last segment %d bytes: next lsn %d, want 6", size, r.lsn)
		}
		mustClose(t, w)
	}
}

// TestNonIncreasingLSNIsDamage: a record whose checksums hold but whose LSN
// does not increase (a stale or misplaced write) is never replayed.
func TestNonIncreasingLSNIsDamage(t *testing.T) {
	build := func(lsns ...uint64) []byte {
		b := segmentHeader()
		for _, l := range lsns {
			p := []byte(fmt.Sprintf("lsn%d", l))
			b = appendRecord(b, l, payloadChecksum(p), p)
		}
		return b
	}
	path := filepath.Join(memDir, segmentName(1))

	fsys := waltest.NewMemFS()
	fsys.SetBytes(path, build(1, 2, 5, 4))
	w := mustOpen(t, memOptions(fsys))
	want := []rec{{1, []byte("lsn1")}, {2, []byte("lsn2")}, {5, []byte("lsn5")}}
	checkRecords(t, "lsn 4 after 5 at the tail", replayAll(t, w, 0), want)
	mustClose(t, w)

	fsys = waltest.NewMemFS()
	b := build(1, 3, 2, 4)
	fsys.SetBytes(path, b)
	_, err := Open(memOptions(fsys))
	fr := frames(t, b)
	var cerr *CorruptionError
	if !errors.As(err, &cerr) || cerr.Offset != fr[2].start {
		t.Fatalf("lsn 2 after 3, then 4: Open returned %v, want *CorruptionError at offset %d", err, fr[2].start)
	}
}

func TestShortEarlierSegmentIsCorruption(t *testing.T) {
	fsys := waltest.NewMemFS()
	writeLog(t, Options{Dir: memDir, FS: fsys, SegmentSize: 100}, 20)
	p := segPaths(fsys)[1]
	b := fsys.Bytes(p)
	fsys.SetBytes(p, b[:len(b)-3])
	_, err := Open(memOptions(fsys))
	var cerr *CorruptionError
	if !errors.As(err, &cerr) || cerr.File != p {
		t.Fatalf("earlier segment cut short: Open returned %v, want *CorruptionError naming %s", err, p)
	}
}

// TestWriteFailureFailsOnlyThatBatchAndLogStaysUsable fills one batch of 8
// appenders while the flusher is stuck syncing, then lets its write hit a
// full disk after budget bytes.
func TestWriteFailureFailsOnlyThatBatchAndLogStaysUsable(t *testing.T) {
	// Nothing, part of a header, part of a payload, one whole record and more.
	for _, budget := range []int64{0, 7, 25, 70} {
		t.Run(fmt.Sprintf("budget=%d", budget), func(t *testing.T) {
			fsys := waltest.NewMemFS()
			w := mustOpen(t, Options{Dir: memDir, FS: fsys, NoPreallocate: true})
			var acked []rec
			for i := 1; i <= 5; i++ {
				acked = append(acked, mustAppend(t, w, payloadFor(i)))
			}
			active := segPaths(fsys)[0]

			release := fsys.HoldSyncs()
			blocker := make(chan rec)
			go func() {
				lsn, err := w.Append([]byte("synced while the batch fills"))
				if err != nil {
					t.Errorf("append before the fault: %v", err)
				}
				blocker <- rec{lsn, []byte("synced while the batch fills")}
			}()
			// its batch is written, the flusher is in fsync
			testutil.Eventually(t, pollWithin, 100*time.Microsecond, "the flusher to hold an fsync", func() bool { return fsys.HeldSyncs() > 0 })
			var wg sync.WaitGroup
			errs := make([]error, 8)
			for g := range errs {
				wg.Go(func() {
					_, errs[g] = w.Append([]byte(fmt.Sprintf("doomed-%d-%s", g, bytes.Repeat([]byte("z"), 30))))
				})
			}
			testutil.Eventually(t, pollWithin, 100*time.Microsecond, "every doomed append to get an LSN", func() bool { return w.LastLSN() >= 6+uint64(len(errs)) })
			sizeBefore := recordsEnd(t, fsys.Bytes(active)) // the blocker's record is written, only its sync waits
			fsys.SetWriteBudget(budget)
			release()
			acked = append(acked, <-blocker)
			wg.Wait()
			for g, err := range errs {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("appender %d of the failed batch got %v, want an error wrapping ENOSPC", g, err)
				}
			}
			// Whatever part of the batch landed is cut: a crash now must not
			// bring back records nobody was told were written.
			if got := fsys.Bytes(active); recordsEnd(t, got) != sizeBefore || !allZero(got[sizeBefore:]) {
				t.Fatalf("after the failed write the active segment's records end at %d (then %d bytes, zero: %v), want %d as before it",
					recordsEnd(t, got), len(got)-sizeBefore, allZero(got[sizeBefore:]), sizeBefore)
			}
			fsys.SetWriteBudget(-1)
			for i := 6; i <= 10; i++ {
				acked = append(acked, mustAppend(t, w, payloadFor(i)))
			}
			mustClose(t, w)

			core, logs := observer.New(zapcore.WarnLevel)
			opts := memOptions(fsys)
			opts.Logger = zap.New(core)
			w = mustOpen(t, opts)
			defer mustClose(t, w)
			if logs.Len() != 0 {
				t.Fatalf("reopen after a failed write found damage: %v", logs.All())
			}
			checkRecords(t, "replay after ENOSPC", replayAll(t, w, 0), acked)
		})
	}
}

func TestFailedFsyncRefusesEveryLaterAppend(t *testing.T) {
	fsys := waltest.NewMemFS()
	w := mustOpen(t, memOptions(fsys))
	acked := []rec{mustAppend(t, w, []byte("one")), mustAppend(t, w, []byte("two"))}
	fsys.SetSyncErr(syscall.EIO)
	if _, err := w.Append([]byte("three")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append with a failing fsync got %v, want EIO", err)
	}
	fsys.SetSyncErr(nil)
	for i := 0; i < 3; i++ {
		_, err := w.Append([]byte("later"))
		if !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("append after a failed fsync got %v, want ErrFailed wrapping EIO", err)
		}
	}
	if err := w.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Close after a failed fsync returned %v, want ErrFailed", err)
	}
	w = mustOpen(t, memOptions(fsys))
	defer mustClose(t, w)
	got := replayAll(t, w, 0)
	// "three" reached the page cache before its fsync failed; it may or may
	// not be on disk, but it was never acknowledged and nothing acked is lost.
	if len(got) < len(acked) {
		t.Fatalf("reopen lost acknowledged records: got %v, want prefix %v", got, acked)
	}
	checkRecords(t, "acknowledged prefix", got[:len(acked)], acked)
	mustAppend(t, w, []byte("after reopen"))
}

func TestConcurrentAppendersAllReplayed(t *testing.T) {
	const goroutines, each = 64, 40
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentSize: 16 << 10}
	w := mustOpen(t, opts)
	var mu sync.Mutex
	acked := map[uint64][]byte{}
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Go(func() {
			for i := 0; i < each; i++ {
				p := []byte(fmt.Sprintf("g%d-i%d", g, i))
				lsn, err := w.Append(p)
				if err != nil {
					t.Errorf("goroutine %d append %d: %v", g, i, err)
					return
				}
				mu.Lock()
				if _, dup := acked[lsn]; dup {
					t.Errorf("lsn %d returned twice", lsn)
				}
				acked[lsn] = p
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	stats := w.Stats()
	mustClose(t, w)
	if t.Failed() {
		return
	}
	if stats.Appends != goroutines*each || stats.Syncs > stats.Batches+uint64(stats.Segments) {
		t.Fatalf("stats %+v: want %d appends and at most one fsync per batch (plus rotations)", stats, goroutines*each)
	}
	t.Logf("%d appends in %d batches, %d fsyncs, %d segments", stats.Appends, stats.Batches, stats.Syncs, stats.Segments)

	w = mustOpen(t, opts)
	defer mustClose(t, w)
	got := replayAll(t, w, 0)
	if len(got) != len(acked) {
		t.Fatalf("replayed %d records, acknowledged %d", len(got), len(acked))
	}
	for i, r := range got {
		if i > 0 && r.lsn <= got[i-1].lsn {
			t.Fatalf("replay out of order: lsn %d after %d", r.lsn, got[i-1].lsn)
		}
		if !bytes.Equal(acked[r.lsn], r.payload) {
			t.Fatalf("lsn %d replayed %q, acknowledged %q", r.lsn, r.payload, acked[r.lsn])
		}
	}
}

// TestAppendersWaitingTogetherShareOneWriteAndFsync holds the flusher in
// an fsync while 16 appenders queue, then checks they needed one more.
func TestAppendersWaitingTogetherShareOneWriteAndFsync(t *testing.T) {
	fsys := waltest.NewMemFS()
	w := mustOpen(t, Options{Dir: memDir, FS: fsys})
	defer mustClose(t, w)
	release := fsys.HoldSyncs()
	var wg sync.WaitGroup
	wg.Go(func() { appendOrError(t, w, []byte("first")) })
	testutil.Eventually(t, pollWithin, 100*time.Microsecond, "the flusher to hold an fsync", func() bool { return fsys.HeldSyncs() > 0 })
	const n = 16
	for g := 0; g < n; g++ {
		wg.Go(func() { appendOrError(t, w, []byte(fmt.Sprintf("queued-%d", g))) })
	}
	testutil.Eventually(t, pollWithin, 100*time.Microsecond, "every queued append to get an LSN", func() bool { return w.LastLSN() >= 1+n })
	release()
	wg.Wait()
	if s := w.Stats(); s.Appends != 1+n || s.Batches != 2 || s.Syncs != 2 {
		t.Fatalf("stats %+v: want %d appends in 2 batches with 2 fsyncs (the %d queued appenders together)", s, 1+n, n)
	}
}

// TestFullBatchBlocksAppenders: while the flusher is stuck, the pending
// batch stops at maxBatchBytes and further appenders wait for room.
func TestFullBatchBlocksAppenders(t *testing.T) {
	fsys := waltest.NewMemFS()
	w := mustOpen(t, Options{Dir: memDir, FS: fsys})
	defer mustClose(t, w)
	release := fsys.HoldSyncs()
	var wg sync.WaitGroup
	wg.Go(func() { appendOrError(t, w, []byte("first")) })
	testutil.Eventually(t, pollWithin, 100*time.Microsecond, "the flusher to hold an fsync", func() bool { return fsys.HeldSyncs() > 0 })
	const n, size = 10, 1 << 20
	for range n {
		wg.Go(func() { appendOrError(t, w, make([]byte, size)) })
	}
	fit := maxBatchBytes / (size + frameHeaderSize)
	waiting := func() (int, int) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.spaceWaiters, len(w.pending.buf)
	}
	testutil.Eventually(t, pollWithin, 100*time.Microsecond, fmt.Sprintf("%d appenders to wait for room", n-fit), func() bool {
		blocked, pending := waiting()
		if pending > maxBatchBytes {
			t.Fatalf("pending batch grew to %d bytes, bound is %d", pending, maxBatchBytes)
		}
		return blocked == n-fit
	})
	if got := w.LastLSN(); got != uint64(1+fit) {
		t.Fatalf("with the flusher stuck, %d records got an LSN, want %d (1 + %d that fit in a batch)", got, 1+fit, fit)
	}
	release()
	wg.Wait()
	if s := w.Stats(); s.Appends != 1+n {
		t.Fatalf("after the flusher resumed: %d appends, want %d", s.Appends, 1+n)
	}
}

// TestCrashLosesNoAcknowledgedRecord drops everything not fsynced while
// appenders are running.
func TestCrashLosesNoAcknowledgedRecord(t *testing.T) {
	fsys := waltest.NewMemFS()
	w := mustOpen(t, Options{Dir: memDir, FS: fsys, SegmentSize: 4096})
	var mu sync.Mutex
	acked := map[uint64][]byte{}
	sent := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := []byte(fmt.Sprintf("g%d-%d", g, i))
				mu.Lock()
				sent[string(p)] = true
				mu.Unlock()
				lsn, err := w.Append(p)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				acked[lsn] = p
				mu.Unlock()
			}
		})
	}
	testutil.Eventually(t, pollWithin, time.Millisecond, "500 appends", func() bool { return w.Stats().Appends >= 500 })
	mu.Lock()
	ackedBefore := make(map[uint64][]byte, len(acked))
	for k, v := range acked {
		ackedBefore[k] = v
	}
	mu.Unlock()
	crashed := fsys.Crash()
	close(stop)
	wg.Wait()
	mustClose(t, w)

	w = mustOpen(t, Options{Dir: memDir, FS: crashed, SegmentSize: 4096})
	defer mustClose(t, w)
	got := map[uint64][]byte{}
	for _, r := range replayAll(t, w, 0) {
		if !sent[string(r.payload)] {
			t.Fatalf("lsn %d replayed %q, which nobody appended", r.lsn, r.payload)
		}
		got[r.lsn] = r.payload
	}
	for lsn, p := range ackedBefore {
		if !bytes.Equal(got[lsn], p) {
			t.Fatalf("acknowledged lsn %d (%q) lost in the crash: replayed %q", lsn, p, got[lsn])
		}
	}
	t.Logf("%d acknowledged before the crash, %d survived", len(ackedBefore), len(got))
}

func TestReleaseDeletesOnlyFullyCoveredSegments(t *testing.T) {
	fsys := waltest.NewMemFS()
	// SegmentSize 1: every batch fills its segment, so record i lives alone
	// in segment i and segment 11 is the empty active one.
	opts := Options{Dir: memDir, FS: fsys, SegmentSize: 1}
	w := mustOpen(t, opts)
	var recs []rec
	for i := 1; i <= 10; i++ {
		recs = append(recs, mustAppend(t, w, payloadFor(i)))
	}
	if n := len(fsys.Names(memDir)); n != 11 {
		t.Fatalf("after 10 records in 1-byte segments: %d files %v, want 11", n, fsys.Names(memDir))
	}
	if err := w.Release(4); err != nil {
		t.Fatalf("Release(4): %v", err)
	}
	if got, want := fsys.Names(memDir)[0], segmentName(5); got != want || len(fsys.Names(memDir)) != 7 {
		t.Fatalf("after Release(4): files %v, want %s.. (7 files)", fsys.Names(memDir), want)
	}
	checkRecords(t, "replay after Release(4)", replayAll(t, w, 4), recs[4:])
	if err := w.Release(1 << 40); err != nil {
		t.Fatalf("Release(all): %v", err)
	}
	if names := fsys.Names(memDir); len(names) != 1 || names[0] != segmentName(11) {
		t.Fatalf("after releasing everything: files %v, want only the active %s", names, segmentName(11))
	}
	if s := w.Stats(); s.Segments != 1 {
		t.Fatalf("Stats.Segments = %d, want 1", s.Segments)
	}
	mustClose(t, w)

	w = mustOpen(t, opts)
	if got := w.LastLSN(); got != 10 {
		t.Fatalf("reopened with only the empty active segment: LastLSN %d, want 10", got)
	}
	if r := mustAppend(t, w, []byte("continues")); r.lsn != 11 {
		t.Fatalf("append after reopen got lsn %d, want 11", r.lsn)
	}
	mustClose(t, w)
}

func TestReleaseNeverDeletesTheActiveSegment(t *testing.T) {
	fsys := waltest.NewMemFS()
	w := mustOpen(t, Options{Dir: memDir, FS: fsys, SegmentSize: 1 << 20})
	defer mustClose(t, w)
	recs := []rec{mustAppend(t, w, []byte("a")), mustAppend(t, w, []byte("b"))}
	if err := w.Release(1 << 40); err != nil {
		t.Fatalf("Release: %v", err)
	}
	checkRecords(t, "after Release of the active segment's records", replayAll(t, w, 0), recs)
}

func TestStartLSNIsTheFloor(t *testing.T) {
	fsys := waltest.NewMemFS()
	opts := memOptions(fsys)
	opts.StartLSN = 1000
	w := mustOpen(t, opts)
	if r := mustAppend(t, w, []byte("x")); r.lsn != 1000 {
		t.Fatalf("first lsn %d, want StartLSN 1000", r.lsn)
	}
	mustClose(t, w)
	opts.StartLSN = 5000
	w = mustOpen(t, opts)
	defer mustClose(t, w)
	if r := mustAppend(t, w, []byte("y")); r.lsn != 5000 {
		t.Fatalf("lsn after raising StartLSN: %d, want 5000", r.lsn)
	}
}

func TestIntervalSyncAcknowledgesBeforeFsyncAndSyncsOnTick(t *testing.T) {
	fsys := waltest.NewMemFS()
	opts := Options{Dir: memDir, FS: fsys, Sync: SyncPolicy{Interval: time.Hour}}
	w := mustOpen(t, opts)
	var recs []rec
	for i := 1; i <= 20; i++ {
		recs = append(recs, mustAppend(t, w, payloadFor(i)))
	}
	if s := w.Stats(); s.Appends != 20 || s.Syncs != 0 {
		t.Fatalf("interval mode with a 1h interval: stats %+v, want 20 appends and no fsync yet", s)
	}
	// A power loss now loses the unsynced suffix, but never leaves a hole.
	crashed := fsys.Crash()
	mustClose(t, w)
	cw := mustOpen(t, memOptions(crashed))
	got := replayAll(t, cw, 0)
	checkRecords(t, "after power loss in interval mode", got, recs[:len(got)])
	mustClose(t, cw)
	// Close syncs: a crash after it loses nothing.
	w = mustOpen(t, memOptions(fsys.Crash()))
	checkRecords(t, "after Close in interval mode", replayAll(t, w, 0), recs)
	mustClose(t, w)

	opts.Sync = SyncPolicy{Interval: time.Millisecond}
	w = mustOpen(t, opts)
	defer mustClose(t, w)
	recs = append(recs, mustAppend(t, w, []byte("ticked")))
	testutil.Eventually(t, pollWithin, time.Millisecond, "the interval ticker's first fsync", func() bool { return w.Stats().Syncs > 0 })
	w2 := mustOpen(t, memOptions(fsys.Crash()))
	defer mustClose(t, w2)
	checkRecords(t, "after the ticker's fsync", replayAll(t, w2, 0), recs)
}

func TestAppendAfterCloseReturnsErrClosed(t *testing.T) {
	fsys := waltest.NewMemFS()
	w := mustOpen(t, memOptions(fsys))
	mustClose(t, w)
	if _, err := w.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if err := w.Replay(0, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Replay after Close: %v, want ErrClosed", err)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
}

func TestPayloadLimit(t *testing.T) {
	fsys := waltest.NewMemFS()
	w := mustOpen(t, Options{Dir: memDir, FS: fsys})
	defer mustClose(t, w)
	big := make([]byte, MaxPayload+1)
	if _, err := w.Append(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append of %d bytes: %v, want ErrTooLarge", len(big), err)
	}
	want := mustAppend(t, w, big[:MaxPayload])
	got := replayAll(t, w, 0)
	checkRecords(t, "a maximum-size record", got, []rec{want})
}

func TestParseSyncPolicy(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"always", 0, false},
		{"10ms", 10 * time.Millisecond, false},
		{"1s", time.Second, false},
		{"0s", 0, true},
		{"-5ms", 0, true},
		{"sometimes", 0, true},
		{"", 0, true},
	} {
		p, err := ParseSyncPolicy(tc.in)
		if (err != nil) != tc.wantErr || p.Interval != tc.want {
			t.Errorf("ParseSyncPolicy(%q) = %v, %v; want %v, error %v", tc.in, p, err, tc.want, tc.wantErr)
		}
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{Dir: memDir, SegmentSize: -1, FS: waltest.NewMemFS()},
		{Dir: memDir, Sync: SyncPolicy{Interval: -time.Second}, FS: waltest.NewMemFS()},
	} {
		if w, err := Open(o); err == nil {
			w.Close()
			t.Errorf("Open(%+v) succeeded, want an error", o)
		}
	}
}

func TestSegmentNames(t *testing.T) {
	if got := segmentName(42); got != "00000000000000000042.wal" {
		t.Fatalf("segmentName(42) = %s", got)
	}
	for _, bad := range []string{"42.wal", "0000000000000000004x.wal", "00000000000000000042.log", "00000000000000000000.wal", "99999999999999999999.wal"} {
		if _, ok := parseSegmentName(bad); ok {
			t.Errorf("parseSegmentName(%q) accepted a name the log never writes", bad)
		}
	}
}

func TestSecondOpenOfTheSameDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, Options{Dir: dir})
	if w2, err := Open(Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		if err == nil {
			w2.Close()
		}
		t.Fatalf("second Open of %s while the first is open: %v, want ErrLocked", dir, err)
	}
	mustAppend(t, w, []byte("still usable"))
	mustClose(t, w)
	w = mustOpen(t, Options{Dir: dir})
	mustClose(t, w)
}

func TestFailedFsyncInIntervalModeRefusesLaterAppends(t *testing.T) {
	fsys := waltest.NewMemFS()
	w := mustOpen(t, Options{Dir: memDir, FS: fsys, Sync: SyncPolicy{Interval: time.Millisecond}})
	mustAppend(t, w, []byte("preallocates the segment, with its own fsync"))
	fsys.SetSyncErr(syscall.EIO)
	// Appends are acknowledged after their write; the ticker's fsync, every
	// millisecond, fails, and from then on appends are refused. (Which
	// append is the first refused depends on when the ticker runs.)
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for err == nil {
		if time.Now().After(deadline) {
			t.Fatal("appends still acknowledged 20s after fsyncs began to fail")
		}
		_, err = w.Append([]byte("acknowledged until the ticker's fsync fails"))
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("append after the ticker's fsync failed: %v, want ErrFailed wrapping EIO", err)
	}
	if err := w.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Close: %v, want ErrFailed", err)
	}
}

// TestSegmentThatCannotBeCreatedIsRetried: rotation hitting a full disk
// is not fatal; records go on into the full segment until it succeeds.
func TestSegmentThatCannotBeCreatedIsRetried(t *testing.T) {
	fsys := waltest.NewMemFS()
	opts := Options{Dir: memDir, FS: fsys, SegmentSize: 64}
	w := mustOpen(t, opts)
	p := bytes.Repeat([]byte("p"), 50)
	// Room for the record, none for the next segment's header.
	fsys.SetWriteBudget(int64(frameHeaderSize + len(p)))
	recs := []rec{mustAppend(t, w, p)}
	if n := len(fsys.Names(memDir)); n != 1 {
		t.Fatalf("rotation on a full disk left %d files %v, want the 1 full segment", n, fsys.Names(memDir))
	}
	fsys.SetWriteBudget(-1)
	recs = append(recs, mustAppend(t, w, []byte("into the full segment, then rotate")))
	recs = append(recs, mustAppend(t, w, []byte("in the new segment")))
	if n := len(fsys.Names(memDir)); n < 2 {
		t.Fatalf("after the disk has room again: %d files, want rotation to have happened", n)
	}
	mustClose(t, w)
	w = mustOpen(t, opts)
	defer mustClose(t, w)
	checkRecords(t, "after a failed rotation", replayAll(t, w, 0), recs)
}

// TestReplayWhileAppending: a replay sees a gap-free prefix of the log
// while appenders keep rotating segments.
func TestReplayWhileAppending(t *testing.T) {
	fsys := waltest.NewMemFS()
	w := mustOpen(t, Options{Dir: memDir, FS: fsys, SegmentSize: 256})
	defer mustClose(t, w)
	const n = 400
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for i := 0; i < n/4; i++ {
				appendOrError(t, w, payloadFor(i))
			}
		})
	}
	for round := 0; w.Stats().Appends < n; round++ {
		var prev uint64
		err := w.Replay(0, func(lsn uint64, _ []byte) error {
			if lsn != prev+1 {
				return fmt.Errorf("round %d: lsn %d after %d", round, lsn, prev)
			}
			prev = lsn
			return nil
		})
		if err != nil {
			t.Fatalf("Replay during appends: %v", err)
		}
	}
	wg.Wait()
	got := len(replayAll(t, w, 0))
	if got != n {
		t.Fatalf("after the appenders finished: replayed %d, want %d", got, n)
	}
}

// TestPreallocatedZerosAreACleanEndAndAppendsGoOnOverThem: the active
// segment is filled with zeros ahead of its records; a reopen reads them
// as the end, and later records land on them, where the first would go.
func TestPreallocatedZerosAreACleanEndAndAppendsGoOnOverThem(t *testing.T) {
	fsys := waltest.NewMemFS()
	opts := Options{Dir: memDir, FS: fsys, SegmentSize: 1 << 20}
	recs := writeLog(t, opts, 20)
	paths := segPaths(fsys)
	b := fsys.Bytes(paths[len(paths)-1])
	end := recordsEnd(t, b)
	if len(b) <= end || !allZero(b[end:]) {
		t.Fatalf("active segment: %d bytes, records end at %d; want zeros after them", len(b), end)
	}
	w := mustOpen(t, opts)
	checkRecords(t, "after a reopen over the zeros", replayAll(t, w, 0), recs)
	for i := 20; i < 30; i++ {
		recs = append(recs, mustAppend(t, w, payloadFor(i)))
	}
	mustClose(t, w)
	w = mustOpen(t, opts)
	defer mustClose(t, w)
	checkRecords(t, "after appends over the zeros and a second reopen", replayAll(t, w, 0), recs)
	if got := recordsEnd(t, fsys.Bytes(paths[len(paths)-1])); got <= end {
		t.Fatalf("records end at %d after ten more, want past %d", got, end)
	}
}

// TestARecordAfterZerosIsCorruptionNotAnEnd: zeros are an end only when
// nothing but zeros follows them.
func TestARecordAfterZerosIsCorruptionNotAnEnd(t *testing.T) {
	fsys := waltest.NewMemFS()
	opts := Options{Dir: memDir, FS: fsys, SegmentSize: 1 << 20}
	writeLog(t, opts, 5)
	path := segPaths(fsys)[0]
	b := fsys.Bytes(path)
	end := recordsEnd(t, b)
	fr := frames(t, b)
	// A hole of zeros where the last record was, the record itself later.
	last := fr[len(fr)-1]
	damaged := append([]byte(nil), b...)
	rec := append([]byte(nil), b[last.start:last.end]...)
	clear(damaged[last.start:last.end])
	copy(damaged[end+100:], rec)
	fsys.SetBytes(path, damaged)
	_, err := Open(opts)
	var cerr *CorruptionError
	if !errors.As(err, &cerr) || cerr.Offset != last.start {
		t.Fatalf("Open over zeros followed by a record: %v, want a *CorruptionError at offset %d", err, last.start)
	}
}

// TestPreallocationThatHitsAFullDiskFallsBackToGrowing: zeros that do not
// fit are no error; records still go in while there is room.
func TestPreallocationThatHitsAFullDiskFallsBackToGrowing(t *testing.T) {
	fsys := waltest.NewMemFS()
	core, logs := observer.New(zapcore.WarnLevel)
	opts := Options{Dir: memDir, FS: fsys, SegmentSize: 1 << 20, Logger: zap.New(core)}
	w := mustOpen(t, opts)
	fsys.SetWriteBudget(4096) // room for records, not for 1 MiB of zeros
	var recs []rec
	for i := range 10 {
		recs = append(recs, mustAppend(t, w, payloadFor(i)))
	}
	fsys.SetWriteBudget(-1)
	mustClose(t, w)
	if n := logs.FilterMessage("wal: cannot preallocate the active segment; records grow it as they go").Len(); n != 1 {
		t.Fatalf("%d preallocation warnings, want 1 (then no more tries in that segment)", n)
	}
	w = mustOpen(t, opts)
	defer mustClose(t, w)
	checkRecords(t, "after a reopen", replayAll(t, w, 0), recs)
}

// TestAFailedFsyncOfThePreallocatedZerosFailsTheLog: that fsync may drop
// the pages of records written before it, like any other. In interval
// mode no other fsync follows the write to report it.
func TestAFailedFsyncOfThePreallocatedZerosFailsTheLog(t *testing.T) {
	fsys := waltest.NewMemFS()
	w := mustOpen(t, Options{Dir: memDir, FS: fsys, SegmentSize: 1 << 20, Sync: SyncPolicy{Interval: time.Hour}})
	fsys.SetSyncErr(syscall.EIO) // the first append preallocates, then fsyncs
	if _, err := w.Append([]byte("first")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append whose preallocation fsync failed: %v, want an error wrapping EIO", err)
	}
	fsys.SetSyncErr(nil)
	if _, err := w.Append([]byte("second")); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after it: %v, want ErrFailed until reopened", err)
	}
	if err := w.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Close: %v, want ErrFailed", err)
	}
}
