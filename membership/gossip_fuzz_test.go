package membership

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"slices"
	"testing"
)

// FuzzMergeRemoteState follows a gossiped ring state (NotifyMsg and
// MergeRemoteState both hand their bytes to mergeRemote) through what the
// node does with it: decode, refuse another partition count, merge into the
// local state, try to commit, place the partitions. Whatever arrives, none
// of it may panic; an accepted state must merge as a least upper bound
// (commutative, absorbing, idempotent) into a state that still encodes and
// decodes, and the rings built from it must give every partition an owner
// and preference lists of distinct members.
func FuzzMergeRemoteState(f *testing.F) {
	local := threeNodeJoin()
	f.Add(local.Encode())
	f.Add(reportDone(reportDone(threeNodeJoin(), "a"), "b").Encode())
	f.Add(State{Partitions: local.Partitions, Committed: Committed{Epoch: 9, Members: []string{"x"}},
		Members: []Member{{ID: "x", Status: StatusValid, Version: 3}, {ID: "a", Status: StatusLeft, Version: 2}}}.Encode())
	f.Add(State{Partitions: local.Partitions + 1, Committed: Committed{Epoch: 1, Members: []string{"a"}}}.Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		remote, err := DecodeState(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if remote.Partitions != local.Partitions {
			return // mergeRemote refuses it
		}
		merged := Merge(local, remote)
		if !merged.Equal(Merge(remote, local)) {
			t.Fatal("Merge(local, remote) differs from Merge(remote, local)")
		}
		if !Merge(merged, remote).Equal(merged) || !Merge(merged, local).Equal(merged) {
			t.Fatal("merged state does not absorb its inputs")
		}
		next, _ := merged.TryCommit()
		again, err := DecodeState(next.Encode())
		if err != nil || !again.Equal(next) {
			t.Fatalf("merged and committed state does not round-trip: %v", err)
		}
		checkRing(t, next.Committed.Members, next.Partitions)
		if next.Pending() {
			checkRing(t, next.Target(), next.Partitions)
		}
	})
}

func checkRing(t *testing.T, members []string, partitions int) {
	t.Helper()
	r := NewRing(members, partitions)
	for p := range partitions {
		// A gossiped member ID may be empty, so the owner is checked by
		// membership, not by being non-empty.
		owner := r.Owner(p)
		if r.Len() > 0 && !slices.Contains(r.Members(), owner) {
			t.Fatalf("partition %d of a ring of %v has owner %q, not a member", p, r.Members(), owner)
		}
		pl := r.PreferenceList(p, 3)
		if len(pl) != min(3, r.Len()) {
			t.Fatalf("preference list of partition %d: %v, want %d members", p, pl, min(3, r.Len()))
		}
		if len(pl) > 0 && pl[0] != owner {
			t.Fatalf("preference list of partition %d starts with %q, not its owner %q", p, pl[0], owner)
		}
		sorted := slices.Clone(pl)
		slices.Sort(sorted)
		if len(slices.Compact(sorted)) != len(pl) {
			t.Fatalf("preference list of partition %d repeats a member: %v", p, pl)
		}
	}
}

// FuzzLoadState puts arbitrary bytes in ring.state, the file a node reads
// its ring from at start: loadState must not panic, must accept exactly a
// file with the magic, a matching checksum and a decodable state, and a
// state it accepts must survive saveState and loadState unchanged.
func FuzzLoadState(f *testing.F) {
	f.Add(ringStateFileOf(threeNodeJoin().Encode()), false)
	f.Add(ringStateFileOf(State{Partitions: 8}.Encode()), true)
	f.Add(ringStateFileOf(nil), false)
	f.Add([]byte("DYNKVRNG"), false)
	f.Add([]byte("not a ring state"), true)
	dir := f.TempDir()
	path := statePath(dir)
	f.Fuzz(func(t *testing.T, b []byte, fixChecksum bool) {
		if fixChecksum && len(b) >= len(stateMagic)+4 {
			// Let the fuzzer reach the state decoder behind the checksum.
			b = ringStateFileOf(b[len(stateMagic)+4:])
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		s, ok, err := loadState(dir)
		if err != nil {
			if ok {
				t.Fatalf("loadState failed (%v) but reported a state", err)
			}
			return
		}
		if !ok {
			t.Fatal("loadState found no state in an existing file")
		}
		if !bytes.HasPrefix(b, stateMagic) {
			t.Fatalf("accepted a file without the magic: %x", b)
		}
		body := b[len(stateMagic)+4:]
		if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(stateMagic):]) {
			t.Fatalf("accepted a file whose checksum does not match: %x", b)
		}
		if !bytes.Equal(s.Encode(), body) {
			t.Fatal("loaded state re-encodes differently from the file")
		}
		if err := saveState(dir, s); err != nil {
			t.Fatal(err)
		}
		again, ok, err := loadState(dir)
		if err != nil || !ok || !again.Equal(s) {
			t.Fatalf("saved state reloads as %v, %v", ok, err)
		}
	})
}

// ringStateFileOf is a ring.state file holding body.
func ringStateFileOf(body []byte) []byte {
	b := append([]byte(nil), stateMagic...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(body, castagnoli))
	return append(b, body...)
}
