package waltest

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

func write(t *testing.T, m *MemFS, name string, data []byte, sync bool) {
	t.Helper()
	f, err := m.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	size, _ := f.Size()
	if _, err := f.WriteAt(data, size); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCrashKeepsOnlyWhatWasSynced(t *testing.T) {
	m := NewMemFS()
	write(t, m, "/d/a", []byte("synced"), true)
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	write(t, m, "/d/a", []byte("+lost"), false)
	write(t, m, "/d/b", []byte("file never made durable"), true) // no SyncDir after its creation

	c := m.Crash()
	if got := c.Bytes("/d/a"); !bytes.Equal(got, []byte("synced")) {
		t.Fatalf("after a crash /d/a holds %q, want only the synced %q", got, "synced")
	}
	if names := c.Names("/d"); len(names) != 1 || names[0] != "a" {
		t.Fatalf("after a crash /d lists %v, want [a]: b's entry was never synced", names)
	}
	if got := m.Clone().Bytes("/d/a"); !bytes.Equal(got, []byte("synced+lost")) {
		t.Fatalf("a clone holds %q, want the unsynced data too", got)
	}
	if m.Syncs() != 2 {
		t.Fatalf("Syncs %d, want 2", m.Syncs())
	}
}

func TestWriteBudgetFailsWithENOSPCAndCountsOnlyGrowth(t *testing.T) {
	m := NewMemFS()
	write(t, m, "/d/a", make([]byte, 8), true)
	m.SetWriteBudget(4)
	f, err := m.OpenFile("/d/a", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("overwrite"[:8]), 0); err != nil {
		t.Fatalf("overwriting allocated bytes with no growth: %v, want success", err)
	}
	n, err := f.WriteAt([]byte("123456"), 8)
	if n != 4 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a write growing the file by 6 with 4 bytes left: %d, %v; want 4 and ENOSPC", n, err)
	}
}

func TestSyncErrAndHeldSyncs(t *testing.T) {
	m := NewMemFS()
	boom := errors.New("boom")
	m.SetSyncErr(boom)
	f, err := m.OpenFile("/d/a", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); !errors.Is(err, boom) {
		t.Fatalf("Sync with SetSyncErr: %v, want %v", err, boom)
	}
	m.SetSyncErr(nil)
	release := m.HoldSyncs()
	done := make(chan error)
	go func() { done <- f.Sync() }()
	deadline := time.Now().Add(10 * time.Second)
	for m.HeldSyncs() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("Sync did not reach the gate in 10s")
		}
		select {
		case err := <-done:
			t.Fatalf("Sync returned %v while held", err)
		default:
		}
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("released Sync: %v", err)
	}
}

// Sync copies only what changed since the last one; a file shrunk and grown
// again before a Sync must still read back as zeros where it grew.
func TestSyncAfterShrinkAndRegrowKeepsZeros(t *testing.T) {
	m := NewMemFS()
	write(t, m, "/d/a", []byte("abcdef"), true)
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	f, err := m.OpenFile("/d/a", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(2); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("Z"), 5); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Crash().Bytes("/d/a"), []byte("ab\x00\x00\x00Z"); !bytes.Equal(got, want) {
		t.Fatalf("after shrink, regrow, write and Sync, a crash reads %q, want %q", got, want)
	}
}
