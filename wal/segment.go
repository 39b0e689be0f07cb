package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const segmentExt = ".wal"

// segment is one file of the log. Records in it have LSNs >= base and below
// the next segment's base.
type segment struct {
	base uint64
	path string
}

func segmentName(base uint64) string { return fmt.Sprintf("%020d%s", base, segmentExt) }

// parseSegmentName accepts exactly the names segmentName produces, so stray
// files (editor backups, a "1.wal" typed by hand) are never mistaken for
// part of the log.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segmentExt)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	base, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || base == 0 {
		return 0, false
	}
	return base, true
}

// listSegments returns the log's segments sorted by base LSN.
func listSegments(fsys FS, dir string) ([]segment, error) {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	var segs []segment
	for _, name := range names {
		if base, ok := parseSegmentName(name); ok {
			segs = append(segs, segment{base: base, path: filepath.Join(dir, name)})
		}
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].base < segs[j].base })
	return segs, nil
}

// createSegment creates the segment named base and makes both its header
// and its directory entry durable before any record goes in: otherwise a
// crash could keep fsynced records in a file the directory forgot.
// A failure before the directory sync removes the file and leaves the log
// as it was; a failed directory sync sets dirUnknown because the
// directory's durable state is then unknown.
func createSegment(fsys FS, dir string, base uint64) (seg segment, f File, dirUnknown bool, err error) {
	path := filepath.Join(dir, segmentName(base))
	f, err = fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return segment{}, nil, false, fmt.Errorf("wal: create segment %s: %w", path, err)
	}
	undo := func(cause error) error {
		f.Close()
		if rerr := fsys.Remove(path); rerr != nil {
			return fmt.Errorf("%w (and removing it: %v)", cause, rerr)
		}
		return cause
	}
	if _, err := f.WriteAt(segmentHeader(), 0); err != nil {
		return segment{}, nil, false, undo(fmt.Errorf("wal: write header of segment %s: %w", path, err))
	}
	if err := f.Sync(); err != nil {
		return segment{}, nil, false, undo(fmt.Errorf("wal: fsync new segment %s: %w", path, err))
	}
	if err := fsys.SyncDir(dir); err != nil {
		f.Close()
		return segment{}, nil, true, fmt.Errorf("wal: fsync directory %s after creating %s: %w", dir, path, err)
	}
	return segment{base: base, path: path}, f, false, nil
}

// resetSegment empties a segment down to a fresh header, for a torn or
// repaired segment whose header itself is damaged.
func resetSegment(f File, path string) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("wal: truncate segment %s: %w", path, err)
	}
	if _, err := f.WriteAt(segmentHeader(), 0); err != nil {
		return fmt.Errorf("wal: rewrite header of segment %s: %w", path, err)
	}
	return nil
}
