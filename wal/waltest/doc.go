// Package waltest holds test doubles for the write-ahead log's file system:
// MemFS, an in-memory vfs.FS that injects faults (a full disk, failed or
// stalled fsyncs) and simulates a power loss that drops everything not
// fsynced (MemFS.Crash). The wal and store tests use it; it is for tests
// only.
package waltest
