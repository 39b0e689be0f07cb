// Package store is the local storage engine of a dynkv node: a write-ahead
// log (package wal) in front of LevelDB, holding one vclock.Set per key.
//
// # Write path
//
// A write takes the key's striped lock, reads the current Set, computes the
// new one (vclock Update for a coordinated Put, vclock Merge for a replica
// sync), appends the full new state to the WAL and, once the WAL reports it
// durable, applies it to LevelDB with Sync off. The WAL is the durability
// point; LevelDB only materialises state. Because every WAL record carries the
// key's complete new state, replaying a record twice is harmless.
//
// # Checkpoints
//
// An apply gate (a RWMutex) is held shared from before the WAL append until
// after the LevelDB apply. A checkpoint takes it exclusively, so no write is
// between the two steps, reads the WAL's last LSN, writes it under the
// metadata key "mcheckpoint" with Sync on (which makes every earlier LevelDB
// journal write durable) and only then lets the WAL delete the segments it
// covers. Open replays the WAL after the checkpoint.
//
// # Failed LevelDB applies
//
// If LevelDB rejects a write after the WAL accepted it (for example ENOSPC on
// the LevelDB journal) the record is already durable and will be replayed on
// the next Open, so it cannot be dropped. The store keeps it in an in-memory
// pending queue, fails the request (ErrDiskFull when the cause is ENOSPC, an
// indeterminate outcome for the caller), serves reads with the pending state
// overlaid, refuses every further write until a background retry has applied
// the whole queue, and never checkpoints past the oldest pending record.
// goleveldb stays broken after a journal write error, so while applies keep
// failing and the disk has room again the retry reopens LevelDB (at most once
// a second), which recovers its own journal.
//
// # TTL and tombstones
//
// Keys whose siblings all eventually become reclaimable (values with an
// expiry, tombstones past TombstoneGrace) get an entry in a reclaim index
// ordered by the time they become reclaimable. A background reclaimer walks
// that index up to now and drops such keys with a "drop" WAL record. In a
// cluster a tombstone may only go once every replica holds it; the
// CanDropTombstone hook lets the replication layer say so.
//
// # LevelDB layout
//
//	d | db byte | user key                          -> vclock.Set encoding
//	x | reclaim-at (8-byte big-endian unix ns) | db | key -> empty
//	m | name                                      -> metadata ("mcheckpoint": 8-byte LSN)
package store
