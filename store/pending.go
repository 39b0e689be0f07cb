package store

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/dynkv/dynkv/vclock"
	"github.com/syndtr/goleveldb/leveldb"
	"go.uber.org/zap"
)

// pendingApply is a durable WAL record whose LevelDB apply failed, kept
// until a retry applies it, and what commit needs to know about a record.
type pendingApply struct {
	lsn uint64
	db  int
	key []byte
	// hint marks a hint record (hints.go), whose key is a hint's LevelDB
	// key: hints share the WAL and LevelDB with data but are not data,
	// so the change hook does not see them and a pending hint never
	// shadows a data key of the same name.
	hint    bool
	set     vclock.Set
	dropped bool
	batch   *leveldb.Batch
	// before and after are the encoded states replaced and written (nil:
	// absent), for Options.OnChange and the state cache; before is left
	// nil when no hook is set.
	before, after []byte
}

// subject names what the record changes, for errors.
func (p pendingApply) subject(db int) string {
	if p.hint {
		return fmt.Sprintf("hint for db %d", db)
	}
	return fmt.Sprintf("db %d", db)
}

func classifyApplyError(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return err
}

func (s *Store) refuseWhilePending() error {
	if s.pendingN.Load() == 0 {
		return nil
	}
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	if len(s.pending) == 0 {
		return nil
	}
	return fmt.Errorf("store: write refused: %d WAL records await LevelDB apply: %w", len(s.pending), s.pendingErr)
}

func (s *Store) pendingState(db int, key []byte) (pendingApply, bool) {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	for i := len(s.pending) - 1; i >= 0; i-- {
		p := s.pending[i]
		if !p.hint && p.db == db && string(p.key) == string(key) {
			return p, true
		}
	}
	return pendingApply{}, false
}

// retryPending re-applies the pending queue in order; records carry full
// states and no write to their keys happened since, so order within the
// queue is all that matters. goleveldb keeps failing after a journal write
// error (its journal writer's error is sticky until the next memtable
// rotation, which never comes), so once the disk has room again the retry
// reopens LevelDB, which recovers its journal, and tries again.
func (s *Store) retryPending() {
	if s.pendingN.Load() == 0 || s.applyPending() {
		return
	}
	if time.Since(s.lastReopen) < levelDBReopenInterval {
		return
	}
	s.space.invalidate()
	if err := s.space.check(); err != nil {
		return
	}
	s.lastReopen = time.Now()
	if err := s.reopenLevelDB(); err != nil {
		s.log.Error("reopen LevelDB to apply pending WAL records", zap.Error(err))
		return
	}
	s.applyPending()
}

// applyPending reports whether the queue is now empty.
func (s *Store) applyPending() bool {
	s.gate.RLock()
	defer s.gate.RUnlock()
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	n := len(s.pending)
	for len(s.pending) > 0 {
		if err := s.apply(s.pending[0].batch); err != nil {
			s.pendingErr = classifyApplyError(err)
			s.log.Debug("pending LevelDB apply still failing", zap.Int("pending", len(s.pending)), zap.Error(err))
			return false
		}
		s.pending = s.pending[1:]
		s.pendingN.Add(-1)
	}
	s.pending, s.pendingErr = nil, nil
	if n > 0 {
		s.log.Info("pending WAL records applied to LevelDB; accepting writes again", zap.Int("records", n))
	}
	return true
}
