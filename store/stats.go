package store

import (
	"github.com/dynkv/dynkv/wal"
)

// Stats is a snapshot of the store's counters for metrics and status pages.
type Stats struct {
	KeysWritten     uint64          // Put and Merge calls that changed a key since Open
	ReplayedRecords uint64          // WAL records applied by the last Open
	ReclaimedKeys   uint64          // keys dropped by the TTL/tombstone reclaimer since Open
	BuriedKeys      uint64          // keys whose expired values the reclaimer turned into tombstones since Open
	PendingRecords  int             // WAL-durable records LevelDB has not absorbed yet
	CheckpointLSN   uint64          // every record up to here is durably in LevelDB
	LevelDBReopens  uint64          // reopens to recover from failed LevelDB applies
	Quarantine      QuarantineStats // damaged records moved aside (quarantine.go)
	WAL             wal.Stats       // the log's own counters
	LevelDB         string          // LevelDB's "leveldb.stats" property text
}

// Stats never blocks writers for long: it reads counters and asks LevelDB
// for its property text.
func (s *Store) Stats() Stats {
	st := Stats{
		KeysWritten:     s.keysWritten.Load(),
		ReplayedRecords: s.replayed.Load(),
		ReclaimedKeys:   s.reclaimed.Load(),
		BuriedKeys:      s.buried.Load(),
		PendingRecords:  int(s.pendingN.Load()),
		CheckpointLSN:   s.checkpointLSN.Load(),
		LevelDBReopens:  s.reopens.Load(),
		Quarantine:      s.quar.stats(),
	}
	if s.closed.Load() {
		return st
	}
	st.WAL = s.wal.Stats()
	if v, err := s.db().GetProperty("leveldb.stats"); err == nil {
		st.LevelDB = v
	}
	return st
}
