package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"go.uber.org/zap"
)

func openLevelDB(dir string) (*leveldb.DB, error) {
	ldb, err := leveldb.OpenFile(dir, &opt.Options{
		BlockCacheCapacity: 32 << 20,
		WriteBuffer:        16 << 20,
		Filter:             filter.NewBloomFilter(10),
	})
	if errors.Is(err, syscall.EWOULDBLOCK) {
		// goleveldb's LOCK file is taken: another process serves this data
		// directory. Say so rather than "resource temporarily unavailable".
		return nil, fmt.Errorf("store: data directory %s is in use by another dynkv process (LevelDB LOCK held): %w", filepath.Dir(dir), err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open LevelDB at %s: %w", dir, err)
	}
	return ldb, nil
}

func (s *Store) db() *leveldb.DB { return s.ldb.Load() }

// reopenLevelDB replaces a LevelDB handle stuck on an I/O error. It holds
// ckptMu and the gate so no checkpoint or apply is in flight, and ldbSwap so
// readers that hit the closed handle wait for the new one. If the open
// fails the closed handle stays in place (reads fail with ErrClosed) and the
// next retry tries again.
func (s *Store) reopenLevelDB() error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	s.gate.Lock()
	defer s.gate.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	s.ldbSwap.Lock()
	defer s.ldbSwap.Unlock()
	if err := s.db().Close(); err != nil && !errors.Is(err, leveldb.ErrClosed) {
		s.log.Warn("closing the failed LevelDB handle", zap.Error(err))
	}
	ldb, err := openLevelDB(s.ldbDir)
	if err != nil {
		return err
	}
	s.ldb.Store(ldb)
	s.reopens.Add(1)
	s.log.Info("reopened LevelDB after failed applies", zap.String("dir", s.ldbDir))
	return nil
}
