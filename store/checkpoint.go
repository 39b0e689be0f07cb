package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/syndtr/goleveldb/leveldb/util"
	"go.uber.org/zap"
)

// Checkpoint records that LevelDB has durably absorbed every WAL record up
// to the WAL's last LSN (or up to the oldest pending record) and releases
// the WAL segments that only hold such records.
func (s *Store) Checkpoint() error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	s.gate.Lock()
	if s.closed.Load() {
		s.gate.Unlock()
		return ErrClosed
	}
	lsn, err := s.writeCheckpointLocked()
	s.gate.Unlock()
	if err != nil {
		return err
	}
	if err := s.wal.Release(lsn); err != nil {
		return fmt.Errorf("store: release WAL up to %d: %w", lsn, err)
	}
	return nil
}

// writeCheckpointLocked needs ckptMu and the gate held exclusively, so no
// record sits between WAL append and LevelDB apply. It returns the LSN up to
// which the WAL may be released.
func (s *Store) writeCheckpointLocked() (uint64, error) {
	lsn := s.wal.LastLSN()
	s.pendingMu.Lock()
	if len(s.pending) > 0 {
		lsn = s.pending[0].lsn - 1
	}
	s.pendingMu.Unlock()
	prev := s.checkpointLSN.Load()
	if lsn <= prev {
		return prev, nil
	}
	// goleveldb does not fsync a journal it rotates away from, so a
	// memtable still being flushed may live only in an unsynced journal.
	// Compacting the checkpoint key's range first rotates the memtable and
	// waits for every memtable flush (tables and manifest are fsynced): after
	// it, every apply the checkpoint covers is durable. Only then is the
	// checkpoint key written, with Sync, so a checkpoint never claims more
	// than LevelDB durably holds, even if the flush fails.
	limit := append(append([]byte(nil), checkpointKey...), 0)
	if err := s.db().CompactRange(util.Range{Start: checkpointKey, Limit: limit}); err != nil {
		return 0, fmt.Errorf("store: flush LevelDB memtable for checkpoint %d: %w", lsn, err)
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], lsn)
	if err := s.db().Put(checkpointKey, v[:], writeSync); err != nil {
		return 0, fmt.Errorf("store: write checkpoint %d: %w", lsn, err)
	}
	s.checkpointLSN.Store(lsn)
	s.sinceCheckpoint.Store(0)
	s.log.Debug("checkpoint", zap.Uint64("lsn", lsn))
	return lsn, nil
}

const (
	// checkpointRetryMin and checkpointRetryMax bound the backoff after a
	// failed checkpoint.
	checkpointRetryMin = time.Second
	checkpointRetryMax = 30 * time.Second
)

// maintain owns periodic checkpoints (by time and by appended bytes) and
// the retry of pending LevelDB applies; it stops when Close closes s.stop.
func (s *Store) maintain() {
	defer s.wg.Done()
	ckpt := time.NewTicker(s.opts.CheckpointInterval)
	defer ckpt.Stop()
	retry := time.NewTicker(pendingRetryInterval)
	defer retry.Stop()
	var (
		backoff time.Duration // zero while checkpoints succeed
		retryAt time.Time
	)
	for {
		select {
		case <-s.stop:
			return
		case <-retry.C:
			s.retryPending()
			continue
		case <-ckpt.C:
		case <-s.kick:
		}
		if time.Now().Before(retryAt) {
			continue
		}
		err := s.Checkpoint()
		switch {
		case err == nil:
			if backoff != 0 {
				s.log.Info("checkpoints resumed")
			}
			backoff = 0
		case errors.Is(err, ErrClosed):
		default:
			// A failing checkpoint (typically a full disk) loses nothing:
			// the WAL keeps every record it did not cover. Back off so a
			// write-triggered kick per request does not stall writers on the
			// exclusive gate or flood the log.
			if backoff == 0 {
				s.log.Error("checkpoint failed; the WAL keeps the records, retrying with backoff", zap.Error(err))
				backoff = checkpointRetryMin
			} else {
				s.log.Debug("checkpoint failed again", zap.Error(err))
				backoff = min(2*backoff, checkpointRetryMax)
			}
			retryAt = time.Now().Add(backoff)
		}
	}
}
