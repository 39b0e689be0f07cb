package wal

import "testing"

// FuzzParseSegmentName: a file name in the log directory (the disk decides
// what is there) is a segment exactly when segmentName produces it, so a
// stray file is never taken for part of the log; and every base LSN's name
// parses back to it.
func FuzzParseSegmentName(f *testing.F) {
	for _, s := range []string{segmentName(1), segmentName(1 << 40), segmentName(^uint64(0)), "1.wal",
		"00000000000000000000.wal", "0000000000000000001a.wal", "00000000000000000001.wal~", "+0000000000000000001.wal",
		"99999999999999999999.wal", "LOCK", ""} {
		f.Add(s, uint64(len(s)))
	}
	f.Fuzz(func(t *testing.T, name string, base uint64) {
		got, ok := parseSegmentName(name)
		switch {
		case !ok && got != 0:
			t.Fatalf("parseSegmentName(%q) refused the name but returned base %d", name, got)
		case ok && (got == 0 || segmentName(got) != name):
			t.Fatalf("parseSegmentName(%q) = %d, which segmentName writes as %q", name, got, segmentName(got))
		}
		got, ok = parseSegmentName(segmentName(base))
		if ok != (base != 0) || (ok && got != base) {
			t.Fatalf("segmentName(%d) = %q parses as %d, %v", base, segmentName(base), got, ok)
		}
	})
}
