package waltest

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"

	"github.com/dynkv/dynkv/wal/vfs"
)

// MemFS is an in-memory vfs.FS that injects faults and simulates crashes,
// in the spirit of pebble's errorfs and strict MemFS (vfs.NewCrashableMem):
// each file remembers the content it had at its last fsync and the
// directory remembers the entries it had at its last SyncDir, and Crash
// keeps only those. Directories are implicit: MkdirAll does nothing and a
// file's directory is its path's filepath.Dir. It is safe for concurrent
// use.
type MemFS struct {
	mu      sync.Mutex
	files   map[string]*memFile
	durable map[string]*memFile // directory entries as of the last SyncDir

	// writeBudget, when >= 0, is how many more bytes writes may store;
	// the write that crosses it stores what fits and fails with ENOSPC.
	writeBudget int64
	// syncErr, when set, fails every File.Sync.
	syncErr error
	// syncGate, when set, makes File.Sync wait until it is closed, so a
	// test can fill the next batch while the flusher is stuck in a sync.
	syncGate chan struct{}
	// syncsHeld counts Syncs waiting at the gate.
	syncsHeld int
	// syncs counts successful File.Sync calls.
	syncs int
}

type memFile struct {
	data   []byte
	synced []byte
	// dirty are the ranges of data written or grown since the last Sync,
	// which copies only them into synced: a log preallocates megabytes
	// ahead, and copying the whole file on every fsync would make a test
	// of many small commits quadratic.
	dirty [][2]int64
}

// markDirty records that data[from:to] changed; the caller holds the lock.
func (f *memFile) markDirty(from, to int64) {
	if from >= to {
		return
	}
	if n := len(f.dirty); n > 0 && f.dirty[n-1][1] == from {
		f.dirty[n-1][1] = to
		return
	}
	f.dirty = append(f.dirty, [2]int64{from, to})
}

// sync makes synced equal data; the caller holds the lock.
func (f *memFile) sync() {
	size := int64(len(f.data))
	if int64(len(f.synced)) > size {
		f.synced = f.synced[:size]
	} else if grow := size - int64(len(f.synced)); grow > 0 {
		f.synced = append(f.synced, make([]byte, grow)...)
	}
	for _, r := range f.dirty {
		from, to := min(r[0], size), min(r[1], size)
		copy(f.synced[from:to], f.data[from:to])
	}
	f.dirty = f.dirty[:0]
}

var _ vfs.FS = (*MemFS)(nil)

// NewMemFS returns an empty file system with no faults set.
func NewMemFS() *MemFS {
	return &MemFS{files: map[string]*memFile{}, durable: map[string]*memFile{}, writeBudget: -1}
}

func (m *MemFS) OpenFile(name string, flag int, _ os.FileMode) (vfs.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[name]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case !ok && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case !ok:
		f = &memFile{}
		m.files[name] = f
	}
	if flag&os.O_TRUNC != 0 {
		f.data = nil
	}
	return &memHandle{fs: m, f: f, name: name}, nil
}

func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[name]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(m.files, name)
	return nil
}

func (m *MemFS) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for p := range m.files {
		if filepath.Dir(p) == filepath.Clean(dir) {
			names = append(names, filepath.Base(p))
		}
	}
	sort.Strings(names)
	return names, nil
}

func (m *MemFS) MkdirAll(string, os.FileMode) error { return nil }

func (m *MemFS) SyncDir(string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.syncErr != nil {
		return m.syncErr
	}
	m.durable = make(map[string]*memFile, len(m.files))
	for p, f := range m.files {
		m.durable[p] = f
	}
	return nil
}

// Crash returns the file system a machine would find after losing power
// now: entries as of the last SyncDir, contents as of each file's last
// fsync.
func (m *MemFS) Crash() *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := NewMemFS()
	for p, f := range m.durable {
		nf := &memFile{data: append([]byte(nil), f.synced...)}
		nf.synced = append([]byte(nil), nf.data...)
		c.files[p], c.durable[p] = nf, nf
	}
	return c
}

// Clone copies the current state, unsynced data included (a process
// crash, or a copy to damage on purpose).
func (m *MemFS) Clone() *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := NewMemFS()
	for p, f := range m.files {
		nf := &memFile{data: append([]byte(nil), f.data...)}
		nf.synced = append([]byte(nil), nf.data...)
		c.files[p], c.durable[p] = nf, nf
	}
	return c
}

// Bytes returns a copy of a file's current content (nil if it does not
// exist).
func (m *MemFS) Bytes(name string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.files[name].data...)
}

// SetBytes replaces a file's content as if it had been written and synced.
func (m *MemFS) SetBytes(name string, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := &memFile{data: append([]byte(nil), b...)}
	f.synced = append([]byte(nil), f.data...)
	m.files[name], m.durable[name] = f, f
}

// Names lists the files in dir, sorted.
func (m *MemFS) Names(dir string) []string {
	names, _ := m.ReadDir(dir)
	return names
}

// SetWriteBudget lets writes store n more bytes of growth (n < 0: no
// limit); the write that crosses it stores what fits and fails with ENOSPC,
// like a disk filling up.
func (m *MemFS) SetWriteBudget(n int64) { m.mu.Lock(); m.writeBudget = n; m.mu.Unlock() }

// SetSyncErr makes every File.Sync and SyncDir fail with err (nil: succeed).
func (m *MemFS) SetSyncErr(err error) { m.mu.Lock(); m.syncErr = err; m.mu.Unlock() }

// HeldSyncs is how many File.Syncs wait at the gate HoldSyncs set.
func (m *MemFS) HeldSyncs() int { m.mu.Lock(); defer m.mu.Unlock(); return m.syncsHeld }

// Syncs is how many File.Sync calls have succeeded.
func (m *MemFS) Syncs() int { m.mu.Lock(); defer m.mu.Unlock(); return m.syncs }

// HoldSyncs makes every File.Sync wait until the returned func is called.
func (m *MemFS) HoldSyncs() (release func()) {
	gate := make(chan struct{})
	m.mu.Lock()
	m.syncGate = gate
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		m.syncGate = nil
		m.mu.Unlock()
		close(gate)
	}
}

type memHandle struct {
	fs     *MemFS
	f      *memFile
	name   string
	closed bool
}

func (h *memHandle) check(op string) error {
	if h.closed {
		return &fs.PathError{Op: op, Path: h.name, Err: fs.ErrClosed}
	}
	return nil
}

func (h *memHandle) WriteAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("write"); err != nil {
		return 0, err
	}
	n := int64(len(p))
	var err error
	// The budget is free space: only bytes that grow the file take it, as
	// on a disk, where overwriting allocated blocks (the zeros the log
	// preallocates) needs none.
	size := int64(len(h.f.data))
	if grow := off + n - size; h.fs.writeBudget >= 0 && grow > h.fs.writeBudget {
		n = max(0, size+h.fs.writeBudget-off)
		err = &fs.PathError{Op: "write", Path: h.name, Err: syscall.ENOSPC}
	}
	if grow := off + n - size; h.fs.writeBudget >= 0 && grow > 0 {
		h.fs.writeBudget -= grow
	}
	if end := off + n; end > int64(len(h.f.data)) {
		h.f.markDirty(int64(len(h.f.data)), end)
		h.f.data = append(h.f.data, make([]byte, end-int64(len(h.f.data)))...)
	}
	copy(h.f.data[off:], p[:n])
	h.f.markDirty(off, off+n)
	return int(n), err
}

func (h *memHandle) ReadAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("read"); err != nil {
		return 0, err
	}
	if off >= int64(len(h.f.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *memHandle) Sync() error {
	h.fs.mu.Lock()
	if gate := h.fs.syncGate; gate != nil {
		h.fs.syncsHeld++
		h.fs.mu.Unlock()
		<-gate
		h.fs.mu.Lock()
		h.fs.syncsHeld--
	}
	defer h.fs.mu.Unlock()
	if err := h.check("sync"); err != nil {
		return err
	}
	if h.fs.syncErr != nil {
		return &fs.PathError{Op: "sync", Path: h.name, Err: h.fs.syncErr}
	}
	h.f.sync()
	h.fs.syncs++
	return nil
}

func (h *memHandle) Truncate(size int64) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("truncate"); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("truncate %s: negative size", h.name)
	}
	if size <= int64(len(h.f.data)) {
		h.f.data = h.f.data[:size:size]
	} else {
		h.f.markDirty(int64(len(h.f.data)), size)
		h.f.data = append(h.f.data, make([]byte, size-int64(len(h.f.data)))...)
	}
	return nil
}

func (h *memHandle) Size() (int64, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("stat"); err != nil {
		return 0, err
	}
	return int64(len(h.f.data)), nil
}

func (h *memHandle) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("close"); err != nil {
		return err
	}
	h.closed = true
	return nil
}
