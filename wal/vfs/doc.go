// Package vfs is the file system seam under the write-ahead log (STYLE.md
// habit 3, after pebble's vfs): the FS and File interfaces the log writes
// through, and OSFS, the real file system, whose Sync is fdatasync on
// Linux and whose Lock is an flock that the kernel drops when the process
// dies. It is its own package so that test file systems (wal/waltest) can
// implement it without importing the log.
package vfs
