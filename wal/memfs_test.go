package wal

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
)

// memFS is an in-memory FS that injects faults and simulates crashes, in
// the spirit of pebble's errorfs and strict MemFS: each file remembers the
// content it had at its last fsync and the directory remembers the entries
// it had at its last SyncDir, and crash() keeps only those.
type memFS struct {
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
}

func newMemFS() *memFS {
	return &memFS{files: map[string]*memFile{}, durable: map[string]*memFile{}, writeBudget: -1}
}

func (m *memFS) OpenFile(name string, flag int, _ os.FileMode) (File, error) {
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

func (m *memFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[name]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(m.files, name)
	return nil
}

func (m *memFS) ReadDir(dir string) ([]string, error) {
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

func (m *memFS) MkdirAll(string, os.FileMode) error { return nil }

func (m *memFS) SyncDir(string) error {
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

// crash returns the file system a machine would find after losing power
// now: entries as of the last SyncDir, contents as of each file's last
// fsync.
func (m *memFS) crash() *memFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := newMemFS()
	for p, f := range m.durable {
		nf := &memFile{data: append([]byte(nil), f.synced...)}
		nf.synced = append([]byte(nil), nf.data...)
		c.files[p], c.durable[p] = nf, nf
	}
	return c
}

// clone copies the current state, unsynced data included (a process
// crash, or a copy to damage on purpose).
func (m *memFS) clone() *memFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := newMemFS()
	for p, f := range m.files {
		nf := &memFile{data: append([]byte(nil), f.data...)}
		nf.synced = append([]byte(nil), nf.data...)
		c.files[p], c.durable[p] = nf, nf
	}
	return c
}

func (m *memFS) bytes(name string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.files[name].data...)
}

// setBytes replaces a file's content as if it had been written and synced.
func (m *memFS) setBytes(name string, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := &memFile{data: append([]byte(nil), b...)}
	f.synced = append([]byte(nil), f.data...)
	m.files[name], m.durable[name] = f, f
}

func (m *memFS) names() []string {
	names, _ := m.ReadDir("/wal")
	return names
}

func (m *memFS) setWriteBudget(n int64) { m.mu.Lock(); m.writeBudget = n; m.mu.Unlock() }
func (m *memFS) setSyncErr(err error)   { m.mu.Lock(); m.syncErr = err; m.mu.Unlock() }

func (m *memFS) heldSyncs() int { m.mu.Lock(); defer m.mu.Unlock(); return m.syncsHeld }

// holdSyncs makes every File.Sync wait until the returned func is called.
func (m *memFS) holdSyncs() (release func()) {
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
	fs     *memFS
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
		h.f.data = append(h.f.data, make([]byte, end-int64(len(h.f.data)))...)
	}
	copy(h.f.data[off:], p[:n])
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
	h.f.synced = append([]byte(nil), h.f.data...)
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
