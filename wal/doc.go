// Package wal is dynkv's write-ahead log: the durability point of every
// write a replica acknowledges (SPEC section 6).
//
// # Layout
//
// The log is a directory of segment files named by the first LSN they may
// hold, zero-padded so that names sort numerically:
// 00000000000000000001.wal. A segment starts with a 9-byte header (magic
// "DYNKVWAL" and a format version byte) followed by records:
//
//	| header crc32c (4) | length (4) | lsn (8) | payload crc32c (4) | payload (length) |
//
// All integers are little-endian and the checksums are CRC-32C (Castagnoli).
// The header checksum covers length and lsn, so a damaged length is never
// trusted to size a read; the payload checksum covers the payload. LSNs
// strictly increase across the whole log; gaps are allowed (a batch that
// failed to reach the disk leaves one).
//
// # Group commit
//
// Appenders encode their record into the pending batch under a mutex and
// wait. One flusher goroutine, owned by the WAL and stopped by Close, takes
// the whole batch, writes it with one write and, under SyncPolicy "always",
// one fsync, then wakes every appender of the batch. While it syncs, the next
// batch fills, so N concurrent appenders share one fsync instead of queueing
// for N. A batch is bounded (4 MiB, or one record when that is larger) and
// appenders block while the pending batch is full, so memory stays bounded
// under any load.
//
// The flusher holds a batch back while appenders of the previous batch are
// still leaving Append (unless the batch is full): a closed loop of N
// appenders then shares each fsync, instead of splitting into two cohorts
// that alternate with half-full batches. An appender that arrives while
// the flusher is idle is written at once.
//
// On Linux OSFS syncs with fdatasync, which makes the data and the file
// size durable without a journal commit for timestamps. OSFS also takes an
// flock on <dir>/LOCK, so two open logs never append to one directory.
//
// # Durability trade-off
//
// With SyncPolicy{Interval: 0} ("always", the default) Append returns only
// after the record's batch has been written and fsynced: an acknowledged
// record survives a process crash, a kernel crash and a power loss.
//
// With SyncPolicy{Interval: d} Append returns as soon as the batch has been
// written to the operating system, and a ticker fsyncs every d. An
// acknowledged record then survives a crash of the process (the page cache
// still holds it) but a kernel crash or power loss can lose every record
// acknowledged in the last d, and the records lost are always a suffix of
// the log. Choose it only when the replicas, not the disk, are what keeps
// data safe.
//
// # Failures
//
// A failed write (ENOSPC, EIO, a short write) truncates the active segment
// back to the end of the last good batch and fails only that batch, with an
// error that wraps the cause (errors.Is(err, syscall.ENOSPC) holds); the log
// stays usable. A failed fsync is different: after it the kernel may have
// dropped the dirty pages and cleared the error, so retrying could report
// success for data that is gone (PostgreSQL's "fsyncgate"). The WAL therefore
// fails that batch and refuses every later Append; the process must reopen
// the log, which re-reads what actually reached the disk.
//
// # Recovery
//
// Open validates every segment. In the last segment a damaged or short
// record with no valid record after it is a torn tail: the write that was in
// flight at a crash. It is cut off (the file truncated) and logged at warn
// level. A damaged record followed by a valid one (any offset whose header
// checksum validates with a higher LSN), or any damage in an earlier segment,
// cannot be explained by a crash: Open fails with a *CorruptionError naming
// the file and offset, which wraps ErrCorrupt. With Options.Repair the log is
// cut at the damage instead, later segments are removed, and the loss is
// logged at error level. LSNs are never reused: after a repair the next LSN
// is above every LSN seen in the discarded data, and Options.StartLSN is a
// floor for every LSN assigned.
package wal
