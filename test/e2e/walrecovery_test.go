package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

// walSegments lists the WAL segment files under a data directory, oldest first
// (segment names are zero-padded first LSNs).
func walSegments(t *testing.T, dataDir string) []string {
	t.Helper()
	var segs []string
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".wal") {
			segs = append(segs, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing WAL segments under %s: %v", dataDir, err)
	}
	slices.SortFunc(segs, func(a, b string) int { return strings.Compare(filepath.Base(a), filepath.Base(b)) })
	if len(segs) == 0 {
		t.Fatalf("no *.wal segment under %s, want at least one after writes", dataDir)
	}
	return segs
}

// writeSequence writes count keys one after another and returns their values.
func writeSequence(t *testing.T, n *node, prefix string, count int) (keys []string, values [][]byte) {
	t.Helper()
	for i := range count {
		k := fmt.Sprintf("%s/%04d", prefix, i)
		v := []byte(fmt.Sprintf("value of %s: %s", k, strings.Repeat("x", i%97)))
		n.put(t, -1, k, v, "")
		keys, values = append(keys, k), append(values, v)
	}
	return keys, values
}

// killedAfterSequence starts a node, writes count keys under prefix, kills
// it and returns the newest WAL segment, the one a test then damages.
func killedAfterSequence(t *testing.T, prefix string, count int) (n *node, keys []string, values [][]byte, lastSegment string) {
	t.Helper()
	n = startNode(t, testnode.NodeOptions{})
	keys, values = writeSequence(t, n, prefix, count)
	n.MustKill()
	segs := walSegments(t, n.DataDir())
	return n, keys, values, segs[len(segs)-1]
}

// recordsEnd is where a segment's records end: the log fills the active
// segment with zeros ahead of them (wal.WAL.preallocate). A record whose
// last bytes are zero loses them here, which is still inside it.
func recordsEnd(b []byte) int { return len(bytes.TrimRight(b, "\x00")) }

// expectExactOrAbsent requires each key to read either its value or 404 and
// returns how many were present.
func expectExactOrAbsent(t *testing.T, n *node, keys []string, values [][]byte) int {
	t.Helper()
	present := 0
	for i, k := range keys {
		r := n.must(t, request{method: http.MethodGet, path: kvPath(-1, k)})
		switch {
		case r.Status == http.StatusOK && string(r.Body) == string(values[i]):
			present++
		case r.Status == http.StatusNotFound:
		default:
			t.Errorf("GET %s: got %s, want 200 %q or 404", k, r, clip(values[i]))
		}
	}
	return present
}

// TestCorruptWALStopsTheNodeUnlessRepaired is SPEC section 6: a checksum
// failure inside the log stops the node with a message naming the file and
// offset, unless the operator asks for repair.
func TestCorruptWALStopsTheNodeUnlessRepaired(t *testing.T) {
	t.Parallel()
	n, keys, values, seg := killedAfterSequence(t, "corrupt", 300)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// The middle of the segment's records: damage with valid records
	// after it, which a crash cannot explain.
	pos := recordsEnd(b) / 2
	b[pos] ^= 0x5a
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("flipped bits of byte %d of %s (%d bytes)", pos, seg, len(b))

	code, out := n.StartExpectingExit()
	if code == 0 {
		t.Fatalf("start on a WAL corrupted at %s offset %d: exit status 0, want non-zero; output:\n%s", filepath.Base(seg), pos, out)
	}
	line := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, filepath.Base(seg)) && strings.Contains(l, "offset") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("start on a corrupt WAL: exit %d, output names no file %q and offset; got:\n%s", code, filepath.Base(seg), out)
	}
	t.Logf("exit %d: %s", code, strings.TrimSpace(line))
	if !strings.Contains(line, "--wal-repair") {
		t.Errorf("the corruption message does not name --wal-repair, the way to start anyway: %s", line)
	}
	if m := regexp.MustCompile(`offset (\d+)`).FindStringSubmatch(line); m != nil {
		off, _ := strconv.Atoi(m[1])
		if off > pos || pos-off > 4096 {
			t.Errorf("corruption reported at offset %d, want the record holding byte %d (at most 4 KiB before it)", off, pos)
		}
	}

	n.SetArgs(append(n.Args(), "--wal-repair"))
	n.Restart()
	n.expectHealthy(t)
	n.expectValue(t, -1, keys[0], values[0]) // long before the damage
	present := expectExactOrAbsent(t, n, keys, values)
	t.Logf("after repair %d of %d keys read back exactly, the rest 404", present, len(keys))

	// The repaired log takes writes and opens again without --wal-repair.
	n.put(t, -1, "after-repair", []byte("fine"), "")
	n.Stop()
	n.SetArgs(slices.DeleteFunc(n.Args(), func(a string) bool { return a == "--wal-repair" }))
	n.Restart()
	n.expectValue(t, -1, "after-repair", []byte("fine"))
	n.expectValue(t, -1, keys[0], values[0])
}

// TestTornWALTailIsCutAndEverythingElseServes is SPEC section 6: a torn
// record at the tail (a crash in the middle of a write) is cut off and the
// node starts with everything before it.
func TestTornWALTailIsCutAndEverythingElseServes(t *testing.T) {
	t.Parallel()
	n, keys, values, seg := killedAfterSequence(t, "torn", 100)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// Cut into the last record, as a crash during its write would.
	if err := os.Truncate(seg, int64(recordsEnd(b))-7); err != nil {
		t.Fatal(err)
	}

	n.Restart()
	n.expectHealthy(t)
	last := len(keys) - 1
	for i := range last {
		n.expectValue(t, -1, keys[i], values[i])
	}
	// The torn record's write may survive elsewhere (LevelDB) or be gone.
	expectExactOrAbsent(t, n, keys[last:], values[last:])
	n.put(t, -1, "after-torn", []byte("fine"), "")
	n.MustKill()
	n.Restart()
	n.expectValue(t, -1, "after-torn", []byte("fine"))
}

// TestSecondNodeOnOneDataDirRefusesToStart: two processes appending to one
// WAL would corrupt it; the second must refuse with a message and the first
// must go on serving.
func TestSecondNodeOnOneDataDirRefusesToStart(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{})
	n.put(t, -1, "owner", []byte("first process"), "")
	intruder := newNode(t, 2, testnode.NodeOptions{ID: "n2", DataDir: n.DataDir()})
	code, out := intruder.StartExpectingExit()
	if code == 0 {
		t.Errorf("second server on data dir %s: exit status 0, want non-zero; output:\n%s", n.DataDir(), out)
	}
	t.Logf("second server on the same data dir: exit %d: %s", code, strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]))
	n.expectHealthy(t)
	n.put(t, -1, "owner2", []byte("still writable"), "")
	n.MustKill()
	n.Restart()
	n.expectValue(t, -1, "owner", []byte("first process"))
	n.expectValue(t, -1, "owner2", []byte("still writable"))
}

// TestWALSegmentsAreReleasedAfterCheckpoints is SPEC section 6 read from the
// other side: once LevelDB has absorbed them, old WAL segments go, so the
// log does not grow without bound; and what they held still reads back
// after a kill.
func TestWALSegmentsAreReleasedAfterCheckpoints(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{Args: []string{"--segment-size=65536", "--checkpoint-interval=100ms"}})
	want := map[string][]byte{}
	for i := range 300 {
		k := fmt.Sprintf("release/%03d", i)
		want[k] = []byte(strings.Repeat(fmt.Sprintf("%03d", i), 1365)) // 4 KiB
		n.put(t, -1, k, want[k], "")
	}
	written := len(walSegments(t, n.DataDir()))
	deadline := time.Now().Add(10 * time.Second)
	for {
		segs := walSegments(t, n.DataDir())
		if len(segs) <= 3 {
			t.Logf("WAL segments: %d right after 1.2 MB of writes with 64 KiB segments, %d after checkpoints", written, len(segs))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("WAL segments under %s: still %d 10s after the last write (checkpoints every 100ms), want at most 3", n.DataDir(), len(segs))
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.MustKill()
	n.Restart()
	for k, v := range want {
		n.expectValue(t, -1, k, v)
	}
}
