package metrics

import (
	"strconv"
	"strings"
)

// LevelStats is one row of LevelDB's "leveldb.stats" property: a level's
// tables and its cumulative compaction work.
type LevelStats struct {
	Level       int
	Tables      int
	SizeBytes   float64
	CompactSecs float64
	ReadBytes   float64
	WriteBytes  float64
}

// ParseLevelDBStats reads the rows of goleveldb's "leveldb.stats" text
// (a header, then " %3d | %10d | %13.5f | ..." per level, sizes in MiB).
// Lines that are not a well-formed level row are skipped, so a format
// change costs metrics, never a failed scrape.
func ParseLevelDBStats(text string) []LevelStats {
	var out []LevelStats
	for line := range strings.SplitSeq(text, "\n") {
		cols := strings.Split(line, "|")
		if len(cols) != 6 {
			continue
		}
		level, err := strconv.Atoi(strings.TrimSpace(cols[0]))
		if err != nil || level < 0 {
			continue // the header row, or not a level
		}
		tables, err := strconv.Atoi(strings.TrimSpace(cols[1]))
		if err != nil || tables < 0 {
			continue
		}
		var f [4]float64
		ok := true
		for i := range f {
			v, err := strconv.ParseFloat(strings.TrimSpace(cols[2+i]), 64)
			if err != nil || v < 0 || v != v {
				ok = false
				break
			}
			f[i] = v
		}
		if !ok {
			continue
		}
		const mib = 1 << 20
		out = append(out, LevelStats{
			Level: level, Tables: tables,
			SizeBytes: f[0] * mib, CompactSecs: f[1], ReadBytes: f[2] * mib, WriteBytes: f[3] * mib,
		})
	}
	return out
}
