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
// expiry, tombstones) get an entry in a reclaim index ordered by the time
// the reclaimer next has work on them. A background reclaimer walks that
// index up to now, in two steps.
//
// Burying: an expired value cannot simply be dropped, because in a cluster
// an older version on a stale replica would then come back through
// anti-entropy, read repair or a hint: nothing would cover it any more. So
// once every value of a key has expired the reclaimer replaces each with
// its tombstone twin: the same dot, no value, a LastModified of the expiry
// (strictly after the value's own), written through the normal path as a
// "put" WAL record. The key's context is unchanged, so the tombstone still
// covers everything the value superseded, and vclock.Merge picks the twin
// over the value it replaces (the later LastModified wins a same-dot
// merge), so a replica that has not buried its copy yet converges on the
// tombstone. Reads do not change: expired values already read as absent.
// An expired value beside a value that never expires is left alone (reads
// skip it) until a write supersedes it.
//
// Reaping: a key holding only tombstones, the newest older than
// TombstoneGrace, is dropped with a "drop" WAL record once the
// CanDropTombstone hook agrees. In a cluster the replication layer answers
// it by asking every replica of the key whether it holds the tombstone
// (or nothing): dropping earlier would let a replica that missed the delete
// resurrect the value. The hook is asked without the key's lock (it does
// network calls); the key is dropped only if it did not change meanwhile.
// A refused key is asked about again after a delay (a minute, or the grace
// if shorter), so it does not hold up the index. A nil hook, as on one
// node, always agrees. The node installs the hook with SetCanDropTombstone
// once its cluster is up.
//
// # LevelDB layout
//
//	d | db byte | user key                          -> vclock.Set encoding
//	x | reclaim-at (8-byte big-endian unix ns) | db | key -> empty
//	m | name                                      -> metadata ("mcheckpoint": 8-byte LSN)
//
// # Hints
//
// Hinted handoff keeps writes meant for an unreachable node in their own
// namespace (hints.go): written through the WAL (ops "hint", carrying the
// hint's full new state, and "hint-drop"), so they survive a crash and are
// replayed like data, but invisible to Get, Scan, the reclaimer and
// OnChange (and so to anti-entropy). PutHint merges into a hint already
// held for the same owner and key and keeps its creation time; DropHint
// removes one only if it is unchanged; HintStats reads an in-memory
// summary that Open rebuilds by scanning the namespace.
//
//	h | len(owner) byte | owner | db byte | key -> created (8-byte big-endian unix ns) | Set encoding
//
// # Damaged records
//
// A stored record that does not decode never stops Open, a scan, a hint
// delivery or the reclaimer (quarantine.go): its bytes are copied to
// Dir/quarantine/ (a .bin and a .json describing it), then it is removed
// (a "drop" or "hint-drop" WAL record), counted in Stats().Quarantine,
// logged once, and the key reads as absent on this replica until a merge
// brings it back. A WAL record whose checksums pass but whose Set does not
// decode is copied aside and skipped by replay; a damaged checkpoint record
// makes Open replay the whole WAL. WAL checksum and framing failures still
// fail Open.
package store
