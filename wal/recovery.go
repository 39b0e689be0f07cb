package wal

import (
	"errors"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
)

// recovered is what Open learned from the segments on disk.
type recovered struct {
	segs       []segment
	active     File  // the last segment, open for writing
	activeSize int64 // where the next record goes
	lastLSN    uint64
	// seenLSN is the highest LSN that may have been handed out, including
	// records a repair discarded, so that no LSN is ever reused.
	seenLSN uint64
}

// damage is the first bad spot found in a segment.
type damage struct {
	offset int64
	reason string
	// headerDamaged: the segment header itself is bad, so cutting means
	// rewriting it.
	headerDamaged bool
	// maybeTorn: a crash could have produced this. An unknown format
	// version never could: cutting it would destroy a newer log.
	maybeTorn bool
}

// recoverSegments validates segs in order, cutting a torn tail and, with
// Repair, corruption. On success the last segment is left open in the
// result; on failure no file is left open.
func recoverSegments(opts Options, segs []segment) (*recovered, error) {
	rec := &recovered{}
	for i, seg := range segs {
		last := i == len(segs)-1
		f, err := opts.FS.OpenFile(seg.path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("wal: open segment %s: %w", seg.path, err)
		}
		size, err := f.Size()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("wal: size of segment %s: %w", seg.path, err)
		}
		rec.seenLSN = max(rec.seenLSN, seg.base-1)

		end, lastLSN, dmg, err := validateSegment(f, size, seg.base, rec.lastLSN)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("wal: read segment %s: %w", seg.path, err)
		}
		rec.lastLSN = lastLSN
		rec.seenLSN = max(rec.seenLSN, lastLSN)
		if dmg == nil {
			if last {
				rec.segs, rec.active, rec.activeSize = segs, f, end
				return rec, nil
			}
			f.Close()
			continue
		}

		_, laterLSN, followed, err := scanHeaders(f, dmg.offset+1, size, rec.lastLSN)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("wal: read segment %s: %w", seg.path, err)
		}
		cut := size - dmg.offset
		if last && !followed && dmg.maybeTorn {
			// The write in flight at a crash: never acknowledged under
			// SyncPolicy "always", so cutting it loses nothing promised.
			if err := cutSegment(f, seg.path, dmg); err != nil {
				f.Close()
				return nil, err
			}
			opts.Logger.Warn("wal: cut torn tail",
				zap.String("file", seg.path), zap.Int64("offset", dmg.offset),
				zap.Int64("bytes_cut", cut), zap.String("reason", dmg.reason))
			rec.segs, rec.active, rec.activeSize = segs, f, max(dmg.offset, int64(segmentHeaderSize))
			return rec, nil
		}
		cerr := &CorruptionError{File: seg.path, Offset: dmg.offset, Reason: dmg.reason}
		if followed {
			cerr.Reason += " (valid records follow)"
		} else if !last {
			cerr.Reason += " (in a segment before the last)"
		}
		if !opts.Repair {
			f.Close()
			return nil, cerr
		}
		rec.seenLSN = max(rec.seenLSN, laterLSN)
		removed, err := repairAt(opts, f, seg, dmg, segs[i+1:], &rec.seenLSN)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("wal: repair after %w: %w", cerr, err)
		}
		opts.Logger.Error("wal: repaired corrupt log, records discarded",
			zap.String("file", seg.path), zap.Int64("offset", dmg.offset),
			zap.Int64("bytes_cut", cut), zap.Int("later_segments_removed", removed),
			zap.String("reason", cerr.Reason))
		rec.segs, rec.active, rec.activeSize = segs[:i+1], f, max(dmg.offset, int64(segmentHeaderSize))
		return rec, nil
	}
	return rec, nil // no segments
}

// validateSegment reads a segment's records and returns the end of the
// valid prefix, its last LSN and the first damage, if any.
func validateSegment(f File, size int64, base, prevLSN uint64) (end int64, lastLSN uint64, dmg *damage, err error) {
	rr := newRecordReader(f, size, base, prevLSN)
	reason, err := rr.skipHeader()
	if err != nil {
		return 0, prevLSN, nil, err
	}
	if reason != "" {
		h := make([]byte, min(size, int64(segmentHeaderSize)))
		_, _ = f.ReadAt(h, 0)
		torn := len(h) < segmentHeaderSize || string(h[:len(segmentMagic)]) != segmentMagic
		return 0, prevLSN, &damage{offset: 0, reason: reason, headerDamaged: true, maybeTorn: torn}, nil
	}
	for {
		_, _, reason, err := rr.next()
		if err == io.EOF {
			return rr.off, rr.prevLSN, nil, nil
		}
		if err != nil {
			return 0, prevLSN, nil, err
		}
		if reason != "" {
			return rr.off, rr.prevLSN, &damage{offset: rr.off, reason: reason, maybeTorn: true}, nil
		}
	}
}

// cutSegment truncates f at the damage and makes the cut durable, so a
// second crash cannot bring the damaged bytes back under new records.
func cutSegment(f File, path string, dmg *damage) error {
	if dmg.headerDamaged {
		if err := resetSegment(f, path); err != nil {
			return err
		}
	} else if err := f.Truncate(dmg.offset); err != nil {
		return fmt.Errorf("wal: truncate segment %s at offset %d: %w", path, dmg.offset, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("wal: fsync segment %s after cutting at offset %d: %w", path, dmg.offset, err)
	}
	return nil
}

// repairAt cuts seg at the damage and removes every later segment, raising
// *seenLSN above any LSN they held.
func repairAt(opts Options, f File, seg segment, dmg *damage, later []segment, seenLSN *uint64) (int, error) {
	for _, s := range later {
		*seenLSN = max(*seenLSN, s.base)
		lf, err := opts.FS.OpenFile(s.path, os.O_RDONLY, 0)
		if err != nil {
			return 0, fmt.Errorf("open segment %s: %w", s.path, err)
		}
		size, err := lf.Size()
		if err == nil {
			var maxLSN uint64
			_, maxLSN, _, err = scanHeaders(lf, 0, size, 0)
			*seenLSN = max(*seenLSN, maxLSN)
		}
		lf.Close()
		if err != nil {
			return 0, fmt.Errorf("read segment %s: %w", s.path, err)
		}
	}
	// Remove the newest first and cut last: if this stops half-way, what
	// is left is a prefix of the log plus the damage, which the next repair
	// finds again, never a log with a hole in the middle.
	for i := len(later) - 1; i >= 0; i-- {
		if err := opts.FS.Remove(later[i].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return len(later) - 1 - i, fmt.Errorf("remove segment %s: %w", later[i].path, err)
		}
	}
	if len(later) > 0 {
		if err := opts.FS.SyncDir(opts.Dir); err != nil {
			return len(later), fmt.Errorf("fsync directory %s: %w", opts.Dir, err)
		}
	}
	if err := cutSegment(f, seg.path, dmg); err != nil {
		return len(later), err
	}
	return len(later), nil
}
