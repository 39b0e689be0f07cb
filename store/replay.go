package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/dynkv/dynkv/vclock"
	"github.com/syndtr/goleveldb/leveldb"
	"go.uber.org/zap"
)

// readCheckpoint returns the LSN the last checkpoint covers. A damaged
// checkpoint record does not stop the store: it is copied aside
// (quarantine.go) and Open replays every WAL record it still has, which
// ends in the same state, since records carry full states and the log kept
// is contiguous from its first record on. The replay is only longer.
func (s *Store) readCheckpoint() (uint64, error) {
	v, err := s.db().Get(checkpointKey, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: read checkpoint: %w", err)
	}
	var reason error
	ckpt := uint64(0)
	if len(v) != 8 {
		reason = fmt.Errorf("checkpoint record is %d bytes, want 8", len(v))
	} else if ckpt = binary.BigEndian.Uint64(v); ckpt == math.MaxUint64 {
		// The WAL would resume at ckpt+1, which wraps to its first LSN:
		// new records would number below the checkpoint and never be
		// replayed. No log reaches this LSN; the record is damaged.
		reason = fmt.Errorf("checkpoint record holds LSN %d, which no WAL reaches", ckpt)
	}
	if reason == nil {
		return ckpt, nil
	}
	d := &damagedError{kind: QuarantineCheckpoint, db: -1, lkey: checkpointKey, raw: v, reason: reason}
	if err := s.preserveAtOpen(d, "replaying every record the WAL holds instead of those after the checkpoint"); err != nil {
		// Eight damaged bytes are not worth refusing to start over; the
		// checkpoint after the replay overwrites them.
		s.log.Warn("could not keep a copy of the damaged checkpoint record", zap.Error(err))
	}
	return 0, nil
}

// replay applies every WAL record after the checkpoint. Records carry full
// states, so records LevelDB already absorbed before a crash apply again
// harmlessly.
func (s *Store) replay(after uint64) error {
	err := s.wal.Replay(after, func(lsn uint64, payload []byte) error {
		r, err := decodeRecord(payload)
		if err != nil && errors.Is(err, errBadRecordBody) && r.db < s.opts.Databases {
			// The record is intact (its checksums passed) and names its
			// key, but the Set it carries does not decode: keep a copy,
			// skip it, and let the key keep the state LevelDB holds.
			d := &damagedError{kind: QuarantineWAL, db: r.db, key: append([]byte(nil), r.key...), owner: r.owner, lsn: lsn,
				raw: append([]byte(nil), payload...), reason: err}
			if r.op == opHint {
				d.lkey = hintKey(r.owner, r.db, r.key)
			}
			if err := s.preserveAtOpen(d, "WAL replay skipped it; the key keeps its earlier state here until repaired from another replica"); err != nil {
				return fmt.Errorf("WAL record %d: %w", lsn, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("WAL record %d: %w", lsn, err)
		}
		if r.db >= s.opts.Databases {
			return fmt.Errorf("WAL record %d: database %d, but the store has %d: %w", lsn, r.db, s.opts.Databases, ErrBadDatabase)
		}
		var old vclock.Set
		found := false
		if r.op == opPut || r.op == opDrop {
			var d *damagedError
			old, found, err = s.readLevelDB(r.db, r.key)
			if errors.As(err, &d) {
				// This record replaces the damaged state: keep a copy
				// first, then apply it as if the key were absent.
				err = s.preserveAtOpen(d, "a WAL record replayed over it")
			}
			if err != nil {
				return fmt.Errorf("WAL record %d: %w", lsn, err)
			}
		}
		var b *leveldb.Batch
		switch r.op {
		case opPut:
			b = s.putBatch(r.db, r.key, old, found, r.set, r.body)
		case opDrop:
			b = s.dropBatch(r.db, r.key, old, found)
		case opHint, opHintDrop:
			b = hintBatch(r)
		}
		if err := s.db().Write(b, writeNoSync); err != nil {
			return fmt.Errorf("WAL record %d: apply to LevelDB: %w", lsn, err)
		}
		if s.opts.OnChange != nil && r.op != opHint && r.op != opHintDrop {
			s.opts.OnChange(r.db, r.key, s.encodeForHook(old, found), r.body)
		}
		s.replayed.Add(1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: replay WAL after checkpoint %d: %w", after, err)
	}
	return nil
}
