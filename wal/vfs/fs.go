package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// FS is the file system under the log. OSFS is the real one; tests inject
// faults (ENOSPC, failed fsyncs, crashes that drop unsynced data), for
// example with waltest.MemFS.
type FS interface {
	// OpenFile opens name with os.OpenFile semantics.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	// ReadDir returns the names of the entries of dir.
	ReadDir(dir string) ([]string, error)
	MkdirAll(dir string, perm os.FileMode) error
	// SyncDir makes the creation and removal of entries in dir durable.
	SyncDir(dir string) error
}

// File is an open segment. Writes use explicit offsets so that a truncate
// after a failed write needs no seek to keep the file position right.
type File interface {
	WriteAt(p []byte, off int64) (int, error)
	ReadAt(p []byte, off int64) (int, error)
	Sync() error
	Truncate(size int64) error
	Size() (int64, error)
	Close() error
}

// OSFS is the operating system's file system.
type OSFS struct{}

var _ FS = OSFS{}

// OpenFile opens a file with os.OpenFile.
func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// Remove removes a file.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// ReadDir lists the names in dir.
func (OSFS) ReadDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

// MkdirAll creates dir and its parents.
func (OSFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

// SyncDir fsyncs the directory itself: without it a crash can forget that a
// new segment exists even though its contents were fsynced.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return d.Close()
}

type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Locker is implemented by file systems that can keep two WALs, in this
// process or another, from appending to the same directory: two writers
// would interleave records and the second's recovery could cut the
// first's in-flight batch as a torn tail. Open takes the lock when FS
// implements it and Close releases it.
type Locker interface {
	Lock(dir string) (io.Closer, error)
}

// ErrLocked is returned by Lock (and so by wal.Open) when another WAL
// holds the directory.
var ErrLocked = errors.New("wal: directory in use by another open log")
