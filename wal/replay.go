package wal

import (
	"fmt"
	"io"
	"os"
)

// Replay calls fn for every record with an LSN above after, in LSN order,
// reading one record at a time. fn may keep payload. An error from fn stops
// the replay and is returned. Rotation and Release wait while Replay runs,
// so it is meant for recovery, before appends start, and fn must not call
// Append or Release.
func (w *WAL) Replay(after uint64, fn func(lsn uint64, payload []byte) error) error {
	w.segMu.RLock()
	defer w.segMu.RUnlock()
	if w.isClosed() {
		return ErrClosed
	}
	var prev uint64
	for i, seg := range w.segs {
		last := i == len(w.segs)-1
		if !last && w.segs[i+1].base-1 <= after {
			continue // every record in it is below the next base
		}
		f, err := w.opts.FS.OpenFile(seg.path, os.O_RDONLY, 0)
		if err != nil {
			return fmt.Errorf("wal: replay: open segment %s: %w", seg.path, err)
		}
		var size int64
		if last {
			size = w.written.Load()
		} else if size, err = f.Size(); err != nil {
			f.Close()
			return fmt.Errorf("wal: replay: size of segment %s: %w", seg.path, err)
		}
		err = replaySegment(f, seg, size, prev, after, fn, &prev)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func replaySegment(f File, seg segment, size int64, prev, after uint64, fn func(uint64, []byte) error, lastLSN *uint64) error {
	rr := newRecordReader(f, size, seg.base, prev)
	reason, err := rr.skipHeader()
	if err != nil {
		return fmt.Errorf("wal: replay: read segment %s: %w", seg.path, err)
	}
	if reason != "" {
		return &CorruptionError{File: seg.path, Offset: 0, Reason: reason}
	}
	for {
		lsn, payload, reason, err := rr.next()
		if err == io.EOF {
			*lastLSN = rr.prevLSN
			return nil
		}
		if err != nil {
			return fmt.Errorf("wal: replay: read segment %s offset %d: %w", seg.path, rr.off, err)
		}
		if reason != "" {
			// Open validated this; the disk changed under us since.
			return &CorruptionError{File: seg.path, Offset: rr.off, Reason: reason}
		}
		if lsn <= after {
			continue
		}
		if err := fn(lsn, append([]byte(nil), payload...)); err != nil {
			return err
		}
	}
}
