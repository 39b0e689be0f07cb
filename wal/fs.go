package wal

import "github.com/dynkv/dynkv/wal/vfs"

// FS is the file system under the log (vfs.FS); OSFS is the real one.
type FS = vfs.FS

// File is an open segment (vfs.File).
type File = vfs.File

// OSFS is the operating system's file system (vfs.OSFS).
type OSFS = vfs.OSFS

// Locker is implemented by file systems that can keep two WALs from
// appending to the same directory (vfs.Locker).
type Locker = vfs.Locker

// ErrLocked is returned by Open when another WAL holds the directory.
var ErrLocked = vfs.ErrLocked
