package membership

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dynkv/dynkv/internal/testutil"
)

// randomState draws a state from a small universe of ids, versions and
// statuses so that random pairs collide often (ties exercise the tie-breaks).
func randomState(r *rand.Rand) State {
	s := State{Partitions: 64}
	ids := []string{"a", "b", "c", "d", "e"}
	for _, id := range ids {
		if r.IntN(3) == 0 {
			continue
		}
		s.Members = append(s.Members, Member{
			ID:         id,
			GossipAddr: fmt.Sprintf("10.0.0.%d:7946", r.IntN(2)),
			HTTPAddr:   "h:" + id,
			Status:     Status(1 + r.IntN(5)),
			Version:    uint64(r.IntN(3)),
			Handoff:    Handoff{Target: Fingerprint(r.IntN(2)), Done: r.IntN(2) == 0, Sent: uint64(r.IntN(3)), Total: 2},
		})
	}
	s.Committed.Epoch = uint64(r.IntN(3))
	for _, id := range ids {
		if r.IntN(2) == 0 {
			s.Committed.Members = append(s.Committed.Members, id)
		}
	}
	return s
}

func TestMergeIsCommutativeAssociativeIdempotent(t *testing.T) {
	seed := testutil.Seed(t, testutil.SeedEnv)
	r := rand.New(rand.NewPCG(seed, seed>>1))
	for i := 0; i < 5000; i++ {
		a, b, c := randomState(r), randomState(r), randomState(r)
		if ab, ba := Merge(a, b), Merge(b, a); !ab.Equal(ba) {
			t.Fatalf("seed %d round %d: not commutative\na=%+v\nb=%+v\nab=%+v\nba=%+v", seed, i, a, b, ab, ba)
		}
		if x, y := Merge(Merge(a, b), c), Merge(a, Merge(b, c)); !x.Equal(y) {
			t.Fatalf("seed %d round %d: not associative\n(ab)c=%+v\na(bc)=%+v", seed, i, x, y)
		}
		if aa := Merge(a, a); !aa.Equal(a) {
			t.Fatalf("seed %d round %d: not idempotent\na=%+v\naa=%+v", seed, i, a, aa)
		}
		// TryCommit after merge converges too: two nodes merging the same
		// states in different orders compute the same committed ring.
		x, _ := Merge(a, b).TryCommit()
		y, _ := Merge(b, a).TryCommit()
		if !x.Equal(y) {
			t.Fatalf("seed %d round %d: TryCommit diverged", seed, i)
		}
	}
}

func TestMergeHigherVersionWinsThenLaterStatus(t *testing.T) {
	a := State{Partitions: 8, Members: []Member{{ID: "x", Status: StatusValid, Version: 3}}}
	b := State{Partitions: 8, Members: []Member{{ID: "x", Status: StatusRemoved, Version: 2}}}
	if m, _ := Merge(a, b).Member("x"); m.Status != StatusValid {
		t.Fatalf("version 3 valid vs version 2 removed: got %v, want valid", m.Status)
	}
	b.Members[0].Version = 3
	if m, _ := Merge(a, b).Member("x"); m.Status != StatusRemoved {
		t.Fatalf("same version valid vs removed: got %v, want removed", m.Status)
	}
	c1 := State{Partitions: 8, Committed: Committed{Epoch: 2, Members: []string{"x"}}}
	c2 := State{Partitions: 8, Committed: Committed{Epoch: 5, Members: []string{"y"}}}
	if got := Merge(c1, c2).Committed.Epoch; got != 5 {
		t.Fatalf("committed epoch %d, want the higher 5", got)
	}
}

// threeNodeJoin is a cluster {a, b} valid at epoch 1 with c joining.
func threeNodeJoin() State {
	return State{
		Partitions: 16,
		Members: []Member{
			{ID: "a", Status: StatusValid, Version: 1},
			{ID: "b", Status: StatusValid, Version: 1},
			{ID: "c", Status: StatusJoining, Version: 1},
		},
		Committed: Committed{Epoch: 1, Members: []string{"a", "b"}},
	}
}

func reportDone(s State, id string) State {
	m, _ := s.Member(id)
	m.Handoff = Handoff{Target: s.TargetFingerprint(), Done: true}
	m.Version++
	return s.With(m)
}

func TestJoiningMemberIsCommittedOnlyWhenEveryMemberIsDone(t *testing.T) {
	s := threeNodeJoin()
	if !s.Pending() || !slices.Equal(s.Target(), []string{"a", "b", "c"}) {
		t.Fatalf("pending %v target %v, want pending with target [a b c]", s.Pending(), s.Target())
	}
	for _, id := range []string{"a", "c"} {
		s = reportDone(s, id)
		if _, changed := s.TryCommit(); changed {
			t.Fatalf("committed after only some members reported done (last %s)", id)
		}
	}
	// A report for another transition does not count.
	b, _ := s.Member("b")
	b.Handoff = Handoff{Target: s.TargetFingerprint() + 1, Done: true}
	b.Version++
	if _, changed := s.With(b).TryCommit(); changed {
		t.Fatal("committed with b done for a different fingerprint")
	}
	s = reportDone(s, "b")
	next, changed := s.TryCommit()
	if !changed {
		t.Fatal("no commit after every member reported done")
	}
	if next.Committed.Epoch != 2 || !slices.Equal(next.Committed.Members, []string{"a", "b", "c"}) {
		t.Fatalf("committed %+v, want epoch 2 [a b c]", next.Committed)
	}
	if c, _ := next.Member("c"); c.Status != StatusValid {
		t.Fatalf("c is %v after commit, want valid", c.Status)
	}
	if next.Pending() {
		t.Fatal("still pending after commit")
	}
	if again, changed := next.TryCommit(); changed || !again.Equal(next) {
		t.Fatal("TryCommit on a settled state changed it")
	}
}

func TestLeavingMemberBecomesLeftAfterDone(t *testing.T) {
	s := State{
		Partitions: 16,
		Members: []Member{
			{ID: "a", Status: StatusValid, Version: 1},
			{ID: "b", Status: StatusLeaving, Version: 2},
		},
		Committed: Committed{Epoch: 4, Members: []string{"a", "b"}},
	}
	s = reportDone(s, "a")
	if _, changed := s.TryCommit(); changed {
		t.Fatal("committed before the leaving member handed off")
	}
	s = reportDone(s, "b")
	next, _ := s.TryCommit()
	if b, _ := next.Member("b"); b.Status != StatusLeft || next.Committed.Epoch != 5 || !slices.Equal(next.Committed.Members, []string{"a"}) {
		t.Fatalf("b %v, committed %+v; want b left, epoch 5 [a]", b.Status, next.Committed)
	}
}

func TestRemovedMemberNeedNotReport(t *testing.T) {
	s := State{
		Partitions: 16,
		Members: []Member{
			{ID: "a", Status: StatusValid, Version: 1},
			{ID: "b", Status: StatusValid, Version: 1},
			{ID: "dead", Status: StatusRemoved, Version: 2},
		},
		Committed: Committed{Epoch: 3, Members: []string{"a", "b", "dead"}},
	}
	s = reportDone(reportDone(s, "a"), "b")
	next, changed := s.TryCommit()
	if !changed || !slices.Equal(next.Committed.Members, []string{"a", "b"}) {
		t.Fatalf("committed %+v, want [a b] without the removed member", next.Committed)
	}
}

func TestJoinerAloneNeverCommitsFromEpochZero(t *testing.T) {
	s := State{Partitions: 16, Members: []Member{{ID: "new", Status: StatusJoining, Version: 1}}}
	s = reportDone(s, "new")
	if _, changed := s.TryCommit(); changed {
		t.Fatal("a joiner that has not heard from its cluster founded a ring of its own")
	}
}

func TestStateEncodingRoundTrips(t *testing.T) {
	seed := testutil.Seed(t, testutil.SeedEnv)
	r := rand.New(rand.NewPCG(seed, 7))
	for i := 0; i < 1000; i++ {
		s := randomState(r)
		b := s.Encode()
		got, err := DecodeState(b)
		if err != nil {
			t.Fatalf("seed %d: decode of %+v: %v", seed, s, err)
		}
		if !bytes.Equal(got.Encode(), b) {
			t.Fatalf("seed %d: round trip changed %+v into %+v", seed, s, got)
		}
	}
}

func TestDecodeStateRejectsMalformed(t *testing.T) {
	good := threeNodeJoin().Encode()
	cases := map[string][]byte{
		"empty":              nil,
		"bad version":        append([]byte{9}, good[1:]...),
		"truncated":          good[:len(good)-1],
		"trailing":           append(slices.Clone(good), 0),
		"zero parts":         {stateVersion, 0, 0, 0, 0},
		"huge list":          {stateVersion, 8, 0, 0xff, 0xff, 0x03},
		"non-minimal":        {stateVersion, 0x88, 0x00, 0, 0, 0},
		"unsorted":           State{Partitions: 8, Committed: Committed{Epoch: 1, Members: []string{"b", "a"}}}.Encode(),
		"unknown state":      State{Partitions: 8, Members: []Member{{ID: "a", Status: 9}}}.Encode(),
		"empty committed id": State{Partitions: 8, Committed: Committed{Epoch: 1, Members: []string{""}}}.Encode(),
		"empty member id":    State{Partitions: 8, Members: []Member{{ID: "", Status: StatusValid}}}.Encode(),
	}
	for name, b := range cases {
		if _, err := DecodeState(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add(threeNodeJoin().Encode())
	f.Add(State{Partitions: 256, Committed: Committed{Epoch: 1, Members: []string{"n1"}},
		Members: []Member{{ID: "n1", GossipAddr: "127.0.0.1:7946", HTTPAddr: "127.0.0.1:8080", Status: StatusValid, Version: 7,
			Handoff: Handoff{Target: 0xdeadbeef, Done: true, Sent: 1 << 40, Total: 1 << 41}}}}.Encode())
	f.Add([]byte{stateVersion, 8, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeState(b)
		if err != nil {
			return
		}
		// Bounded allocation: nothing decoded can hold more elements than
		// the input had bytes.
		if len(s.Members)+len(s.Committed.Members) > len(b) {
			t.Fatalf("%d bytes decoded into %d members", len(b), len(s.Members)+len(s.Committed.Members))
		}
		if re := s.Encode(); !bytes.Equal(re, b) {
			t.Fatalf("re-encode differs:\n in %x\nout %x", b, re)
		}
		// Whatever decodes must merge with itself to itself.
		if !Merge(s, s).Equal(s) {
			t.Fatal("decoded state not idempotent under Merge")
		}
	})
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(Meta{ID: "n1", HTTPAddr: "127.0.0.1:8080", Partitions: 256}.Encode())
	f.Add([]byte{metaVersion, 0, 0, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		if re := m.Encode(); !bytes.Equal(re, b) {
			t.Fatalf("re-encode differs:\n in %x\nout %x", b, re)
		}
	})
}
