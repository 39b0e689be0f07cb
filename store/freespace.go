package store

import (
	"fmt"
	"sync"
	"syscall"
	"time"
)

// freeSpaceTTL bounds how stale the free-space figure may be: statfs on every
// write would cost a syscall per request for a number that moves slowly.
const freeSpaceTTL = 100 * time.Millisecond

// freeSpaceGuard refuses writes before they reach the WAL when the file
// system runs low, so a full disk fails requests cleanly (507) instead of
// failing half-way through a WAL append or a LevelDB compaction.
type freeSpaceGuard struct {
	dir  string
	min  uint64
	stat func(dir string) (uint64, error) // replaced in tests

	mu      sync.Mutex
	checked time.Time // monotonic wall time, not the injected clock
	free    uint64
	err     error
}

func newFreeSpaceGuard(dir string, min uint64) *freeSpaceGuard {
	return &freeSpaceGuard{dir: dir, min: min, stat: statfsFree}
}

// check returns nil when there is room, or an error wrapping ErrDiskFull.
func (g *freeSpaceGuard) check() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := time.Now(); g.checked.IsZero() || now.Sub(g.checked) >= freeSpaceTTL {
		g.free, g.err = g.stat(g.dir)
		g.checked = now
	}
	if g.err != nil {
		// Unknown free space must not stop writes; the WAL still reports ENOSPC.
		return nil
	}
	if g.free < g.min {
		return fmt.Errorf("store: %s has %d bytes free, below the %d-byte minimum: %w", g.dir, g.free, g.min, ErrDiskFull)
	}
	return nil
}

func (g *freeSpaceGuard) invalidate() {
	g.mu.Lock()
	g.checked = time.Time{}
	g.mu.Unlock()
}

func statfsFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}
