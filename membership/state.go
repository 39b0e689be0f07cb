package membership

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Status is a member's place in the ring's life cycle.
type Status uint8

// The order matters: on a version tie the later status wins a merge, so a
// transition any node may write (to left, to removed) beats a concurrent
// write of the same version by the member itself.
const (
	StatusJoining Status = iota + 1 // wants in; in the target ring, not yet committed
	StatusValid                     // a ring member
	StatusLeaving                   // handing its data off; committed but not in the target
	StatusLeft                      // gone after a graceful leave
	StatusRemoved                   // removed by an operator (dead for good)
)

func (s Status) String() string {
	switch s {
	case StatusJoining:
		return "joining"
	case StatusValid:
		return "valid"
	case StatusLeaving:
		return "leaving"
	case StatusLeft:
		return "left"
	case StatusRemoved:
		return "removed"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Fingerprint names a ring transition: Fingerprint(committed epoch, target
// members). Handoff progress is reported against it so a report for an older
// transition never counts towards a newer one.
type Fingerprint uint64

// FingerprintOf hashes an epoch and a member list (sorted by the caller).
func FingerprintOf(epoch uint64, members []string) Fingerprint {
	buf := binary.BigEndian.AppendUint64(nil, epoch)
	for _, m := range members {
		buf = binary.AppendUvarint(buf, uint64(len(m)))
		buf = append(buf, m...)
	}
	return Fingerprint(xxhash.Sum64(buf))
}

// Handoff is a member's progress moving data towards the target ring.
type Handoff struct {
	Target Fingerprint // the transition this report is about
	Done   bool        // every key this member must send has been sent
	Sent   uint64      // bytes (or keys, as the handoff worker counts) sent so far
	Total  uint64      // estimate of the whole
}

// Member is one node's entry in the ring state.
type Member struct {
	ID         string
	GossipAddr string // host:port of memberlist, for rejoining after a restart
	HTTPAddr   string // host:port peers use for RPC
	Status     Status
	Version    uint64 // the entry with the higher version wins a merge
	Handoff    Handoff
}

// Committed is the ring in force.
type Committed struct {
	Epoch   uint64
	Members []string // sorted, distinct
}

// Fingerprint of the committed ring itself.
func (c Committed) Fingerprint() Fingerprint { return FingerprintOf(c.Epoch, c.Members) }

// State is the gossiped ring state, a state-based CRDT (see Merge).
type State struct {
	Partitions int
	Members    []Member // sorted by ID, distinct
	Committed  Committed
}

// Member returns id's entry.
func (s State) Member(id string) (Member, bool) {
	i, ok := slices.BinarySearchFunc(s.Members, id, func(m Member, id string) int {
		return cmpString(m.ID, id)
	})
	if !ok {
		return Member{}, false
	}
	return s.Members[i], true
}

// With returns a copy of s with m's entry set (added or replaced).
func (s State) With(m Member) State {
	out := s.clone()
	i, ok := slices.BinarySearchFunc(out.Members, m.ID, func(x Member, id string) int {
		return cmpString(x.ID, id)
	})
	if ok {
		out.Members[i] = m
	} else {
		out.Members = slices.Insert(out.Members, i, m)
	}
	return out
}

func (s State) clone() State {
	return State{
		Partitions: s.Partitions,
		Members:    slices.Clone(s.Members),
		Committed:  Committed{Epoch: s.Committed.Epoch, Members: slices.Clone(s.Committed.Members)},
	}
}

// Target returns the target member set: members joining or valid, sorted.
// A leaving member is still in the committed ring but not in the target.
func (s State) Target() []string {
	var out []string
	for _, m := range s.Members {
		if m.Status == StatusJoining || m.Status == StatusValid {
			out = append(out, m.ID)
		}
	}
	return out
}

// Pending reports whether the target differs from the committed ring.
func (s State) Pending() bool { return !slices.Equal(s.Target(), s.Committed.Members) }

// TargetFingerprint is the fingerprint handoff reports must carry for the
// pending transition: FingerprintOf(committed epoch, target).
func (s State) TargetFingerprint() Fingerprint {
	return FingerprintOf(s.Committed.Epoch, s.Target())
}

// Equal reports whether two states are identical.
func (s State) Equal(o State) bool { return bytes.Equal(s.Encode(), o.Encode()) }

// Merge returns the least upper bound of a and b: per member the entry with
// the higher Version (ties: the later Status, then the greater encoding);
// the committed ring with the higher epoch (ties: the lower fingerprint,
// then the smaller member list). Each rule is a total order on its part, so
// Merge is commutative, associative and idempotent. Partitions takes the
// maximum; callers refuse to merge states whose counts differ.
func Merge(a, b State) State {
	out := State{Partitions: max(a.Partitions, b.Partitions)}
	out.Members = make([]Member, 0, max(len(a.Members), len(b.Members)))
	i, j := 0, 0
	for i < len(a.Members) || j < len(b.Members) {
		switch {
		case j == len(b.Members) || (i < len(a.Members) && a.Members[i].ID < b.Members[j].ID):
			out.Members = append(out.Members, a.Members[i])
			i++
		case i == len(a.Members) || b.Members[j].ID < a.Members[i].ID:
			out.Members = append(out.Members, b.Members[j])
			j++
		default:
			if memberBeats(b.Members[j], a.Members[i]) {
				out.Members = append(out.Members, b.Members[j])
			} else {
				out.Members = append(out.Members, a.Members[i])
			}
			i++
			j++
		}
	}
	c := a.Committed
	if committedBeats(b.Committed, a.Committed) {
		c = b.Committed
	}
	out.Committed = Committed{Epoch: c.Epoch, Members: slices.Clone(c.Members)}
	return out
}

// memberBeats reports whether x wins over y (same ID) in a merge.
func memberBeats(x, y Member) bool {
	if x.Version != y.Version {
		return x.Version > y.Version
	}
	if x.Status != y.Status {
		return x.Status > y.Status
	}
	return bytes.Compare(appendMember(nil, x), appendMember(nil, y)) > 0
}

func committedBeats(x, y Committed) bool {
	if x.Epoch != y.Epoch {
		return x.Epoch > y.Epoch
	}
	fx, fy := x.Fingerprint(), y.Fingerprint()
	if fx != fy {
		return fx < fy
	}
	return slices.Compare(x.Members, y.Members) < 0
}

// TryCommit advances the committed ring when a transition is pending and
// every member of committed ∪ target that is still part of the cluster
// (not removed, not left) reports Done for the current TargetFingerprint:
// Committed becomes {Epoch+1, target}, leaving members become left and
// joining members valid (each entry's Version+1). It is pure, so every node
// running it on the same merged state reaches the same result; it never
// commits from epoch 0 (a joiner that has not yet heard from its cluster).
//
// It also repairs the two status races a concurrent own-entry update can
// cause (a member bumping its entry while another node commits): a joining
// member already in the committed ring becomes valid, and a leaving member
// no longer in it becomes left.
func (s State) TryCommit() (State, bool) {
	out := s
	changed := false
	if s.Committed.Epoch > 0 && s.Pending() && s.handoffsDone() {
		target := s.Target()
		out = s.clone()
		out.Committed = Committed{Epoch: s.Committed.Epoch + 1, Members: target}
		changed = true
	}
	for i, m := range out.Members {
		in := slices.Contains(out.Committed.Members, m.ID)
		var next Status
		switch {
		case m.Status == StatusJoining && in && out.Committed.Epoch > 0:
			next = StatusValid
		case m.Status == StatusLeaving && !in && out.Committed.Epoch > 0:
			next = StatusLeft
		default:
			continue
		}
		if !changed {
			out = s.clone()
			changed = true
		}
		m.Status = next
		m.Version++
		out.Members[i] = m
	}
	return out, changed
}

func (s State) handoffsDone() bool {
	fp := s.TargetFingerprint()
	check := func(id string) bool {
		m, ok := s.Member(id)
		if !ok || m.Status == StatusRemoved || m.Status == StatusLeft {
			return true
		}
		return m.Handoff.Done && m.Handoff.Target == fp
	}
	for _, id := range s.Committed.Members {
		if !check(id) {
			return false
		}
	}
	for _, id := range s.Target() {
		if !check(id) {
			return false
		}
	}
	return true
}

// Encoding: version byte | uvarint partitions | uvarint epoch | uvarint n |
// n strings | uvarint m | m members, each: id, gossip addr, http addr
// (strings), status byte, uvarint version, 8-byte target fingerprint, done
// byte, uvarint sent, uvarint total. A string is uvarint length | bytes.
// Lists are sorted and distinct and varints minimal, so the encoding of a
// state is canonical: Encode(Decode(b)) == b for every b Decode accepts.
const stateVersion = 1

// ErrMalformed is wrapped by every decoding error of this package.
var ErrMalformed = errors.New("membership: malformed encoding")

// Encode returns the compact binary form of s.
func (s State) Encode() []byte {
	b := make([]byte, 0, 32+len(s.Members)*64)
	b = append(b, stateVersion)
	b = binary.AppendUvarint(b, uint64(s.Partitions))
	b = binary.AppendUvarint(b, s.Committed.Epoch)
	b = binary.AppendUvarint(b, uint64(len(s.Committed.Members)))
	for _, m := range s.Committed.Members {
		b = appendString(b, m)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Members)))
	for _, m := range s.Members {
		b = appendMember(b, m)
	}
	return b
}

func appendMember(b []byte, m Member) []byte {
	b = appendString(b, m.ID)
	b = appendString(b, m.GossipAddr)
	b = appendString(b, m.HTTPAddr)
	b = append(b, byte(m.Status))
	b = binary.AppendUvarint(b, m.Version)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Handoff.Target))
	done := byte(0)
	if m.Handoff.Done {
		done = 1
	}
	b = append(b, done)
	b = binary.AppendUvarint(b, m.Handoff.Sent)
	b = binary.AppendUvarint(b, m.Handoff.Total)
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// DecodeState parses an Encode'd state. It never panics, allocates at most
// in proportion to len(b), and rejects anything Encode would not produce.
func DecodeState(b []byte) (State, error) {
	d := decoder{b: b}
	v := d.byte()
	if d.err == nil && v != stateVersion {
		return State{}, fmt.Errorf("%w: state version %d, want %d", ErrMalformed, v, stateVersion)
	}
	var s State
	p := d.uvarint()
	if d.err == nil && (p == 0 || p > MaxPartitions) {
		d.fail("partition count %d out of range", p)
	}
	s.Partitions = int(p)
	s.Committed.Epoch = d.uvarint()
	n := d.count()
	if n > 0 {
		s.Committed.Members = make([]string, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		id := d.string()
		if d.err == nil && id == "" {
			// No node has an empty --id; a state naming one is damaged
			// and would route keys to nobody.
			d.fail("committed member %d has an empty id", i)
		}
		if d.err == nil && i > 0 && id <= s.Committed.Members[i-1] {
			d.fail("committed members not sorted and distinct at %d", i)
		}
		s.Committed.Members = append(s.Committed.Members, id)
	}
	n = d.count()
	if n > 0 {
		s.Members = make([]Member, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		var m Member
		m.ID = d.string()
		m.GossipAddr = d.string()
		m.HTTPAddr = d.string()
		m.Status = Status(d.byte())
		if d.err == nil && m.ID == "" {
			d.fail("member %d has an empty id", i)
		}
		if d.err == nil && (m.Status < StatusJoining || m.Status > StatusRemoved) {
			d.fail("member %q: unknown status %d", m.ID, m.Status)
		}
		m.Version = d.uvarint()
		m.Handoff.Target = Fingerprint(d.uint64())
		switch d.byte() {
		case 0:
		case 1:
			m.Handoff.Done = true
		default:
			d.fail("member %q: done flag not 0 or 1", m.ID)
		}
		m.Handoff.Sent = d.uvarint()
		m.Handoff.Total = d.uvarint()
		if d.err == nil && i > 0 && m.ID <= s.Members[i-1].ID {
			d.fail("members not sorted and distinct at %d", i)
		}
		s.Members = append(s.Members, m)
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return State{}, d.err
	}
	return s, nil
}

// decoder reads a buffer front to back; the first error sticks and turns
// every later read into a zero value, so callers check once at the end.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: offset %d: %s", ErrMalformed, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("short buffer")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	d.off++
	return v
}

func (d *decoder) uint64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("short buffer")
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	d.off += 8
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	if n != uvarintLen(v) {
		d.fail("non-minimal uvarint")
		return 0
	}
	d.b = d.b[n:]
	d.off += n
	return v
}

// count reads a list length, bounded by the bytes left (every element takes
// at least one byte), so a hostile length cannot force a large allocation.
func (d *decoder) count() int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail("list length %d exceeds the %d bytes left", n, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("string length %d exceeds the %d bytes left", n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	d.off += int(n)
	return s
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
