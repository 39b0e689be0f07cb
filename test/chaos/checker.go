package chaos

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dynkv/dynkv/test/testnode"
)

// History records what the clients were told. Only acknowledged (2xx)
// writes create obligations; a failed or timed-out write is indeterminate
// and may or may not be visible later.
type History struct {
	Ops        atomic.Int64 // requests sent by workload clients
	Acked      atomic.Int64 // writes (PUT, DELETE) answered 2xx
	Failed     atomic.Int64 // requests answered with an error status or no answer
	Reads      atomic.Int64 // reads during the run answered 2xx or 404 (not 5xx, not timed out)
	StaleReads atomic.Int64 // those that missed an acknowledged write or the set key

	mu       sync.Mutex
	distinct map[string]*distinctKey
	order    []string // distinct keys in first-attempt order
	elements map[string]map[string]bool
	obs      []Observation // every client request (availability.go)
}

// distinctKey is the fate of one key of the distinct-writes workload:
// written once, perhaps deleted once.
type distinctKey struct {
	value       string
	context     string // X-Context of the acknowledged write
	putAcked    bool
	delAttempt  bool
	deleteAcked bool
}

// NewHistory returns an empty history.
func NewHistory() *History {
	return &History{distinct: map[string]*distinctKey{}, elements: map[string]map[string]bool{}}
}

func (h *History) key(k string) *distinctKey {
	d, ok := h.distinct[k]
	if !ok {
		d = &distinctKey{}
		h.distinct[k] = d
		h.order = append(h.order, k)
	}
	return d
}

// PutAttempt records that a client is about to write value to k.
func (h *History) PutAttempt(k, value string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.key(k).value = value
}

// PutAcked records a 204 for the write of k, which returned context.
func (h *History) PutAcked(k, context string) {
	h.Acked.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.key(k)
	d.putAcked = true
	d.context = context
}

// DeleteAttempt records that a client is about to delete k.
func (h *History) DeleteAttempt(k string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.key(k).delAttempt = true
}

// DeleteAcked records a 204 for the delete of k.
func (h *History) DeleteAcked(k string) {
	h.Acked.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.key(k).deleteAcked = true
}

// ElementAcked records a 204 for a set-append write that added elem to
// set key k.
func (h *History) ElementAcked(k, elem string) {
	h.Acked.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.elements[k] == nil {
		h.elements[k] = map[string]bool{}
	}
	h.elements[k][elem] = true
}

// Readable returns an acknowledged, never-deleted distinct key with its
// value, chosen by pick (an index into the candidates), for reads during
// the run; ok is false when there is none.
func (h *History) Readable(pick func(n int) int) (key, value string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.order) == 0 {
		return "", "", false
	}
	for range 4 {
		k := h.order[pick(len(h.order))]
		if d := h.distinct[k]; d.putAcked && !d.delAttempt {
			return k, d.value, true
		}
	}
	return "", "", false
}

// Expectation is what a final read of a distinct key must return.
type Expectation struct {
	Key     string
	Value   string // when !Absent
	Context string // the X-Context the write returned, when !Absent
	Absent  bool   // an acknowledged delete: 404
}

// Expectations lists the obligations of the distinct-writes workload: an
// acknowledged write never followed by a delete attempt must read as its
// value; an acknowledged delete must read as absent. Keys whose fate is
// indeterminate (a delete that failed) carry none.
func (h *History) Expectations() []Expectation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Expectation
	for _, k := range h.order {
		d := h.distinct[k]
		switch {
		case d.deleteAcked:
			out = append(out, Expectation{Key: k, Absent: true})
		case d.putAcked && !d.delAttempt:
			out = append(out, Expectation{Key: k, Value: d.value, Context: d.context})
		}
	}
	return out
}

// DistinctKeys lists every key a distinct writer attempted.
func (h *History) DistinctKeys() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.order)
}

// AckedElements returns a copy of the acknowledged elements of set key k.
func (h *History) AckedElements(k string) map[string]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]bool, len(h.elements[k]))
	for e := range h.elements[k] {
		out[e] = true
	}
	return out
}

// CheckRead judges a final read of a distinct key: nil when the response
// is what e requires. A transport error or a 5xx is not a verdict and is
// returned as retryable.
func (e Expectation) CheckRead(r testnode.Response) (verdict error, retryable bool) {
	switch {
	case r.Status >= 500:
		return fmt.Errorf("key %q: %s", e.Key, r), true
	case e.Absent && r.Status == 404:
		return nil, false
	case e.Absent:
		return fmt.Errorf("key %q: acknowledged delete came back: got %s, want 404", e.Key, r), false
	case r.Status == 200 && string(r.Body) == e.Value:
		return nil, false
	}
	return fmt.Errorf("key %q: acknowledged write lost: got %s, want 200 %q", e.Key, r, e.Value), false
}

// elemSep separates the elements of a set value; elements never hold it.
const elemSep = ","

// Elements is the union of the elements of every value (sibling) read.
func Elements(values [][]byte) map[string]bool {
	out := map[string]bool{}
	for _, v := range values {
		for _, e := range strings.Split(string(v), elemSep) {
			if e != "" {
				out[e] = true
			}
		}
	}
	return out
}

// EncodeElements is the value holding the set, sorted so equal sets are
// equal bytes.
func EncodeElements(set map[string]bool) []byte {
	es := make([]string, 0, len(set))
	for e := range set {
		es = append(es, e)
	}
	slices.Sort(es)
	return []byte(strings.Join(es, elemSep))
}

// Missing lists, sorted, the acknowledged elements absent from got.
func Missing(acked, got map[string]bool) []string {
	var out []string
	for e := range acked {
		if !got[e] {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out
}

// SameReplica reports whether two replicas' local copies of a key hold the
// same version set: both absent, or the same siblings (dot, value,
// tombstone) and the same causal context.
func SameReplica(a, b testnode.LocalSet) bool {
	if a.Found != b.Found {
		return false
	}
	if !a.Found {
		return true
	}
	if a.Context != b.Context || len(a.Siblings) != len(b.Siblings) {
		return false
	}
	for i := range a.Siblings {
		x, y := a.Siblings[i], b.Siblings[i]
		if x.Actor != y.Actor || x.Counter != y.Counter || x.Tombstone != y.Tombstone || string(x.Value) != string(y.Value) {
			return false
		}
	}
	return true
}

// DescribeReplica is a short form of a local copy for failure messages.
func DescribeReplica(l testnode.LocalSet) string {
	if !l.Found {
		return "absent"
	}
	var b strings.Builder
	b.WriteString("{")
	for i, s := range l.Siblings {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%d", s.Actor, s.Counter)
		if s.Tombstone {
			b.WriteString(":tomb")
		} else {
			v := string(s.Value)
			if len(v) > 24 {
				v = v[:24] + "..."
			}
			fmt.Fprintf(&b, "=%q", v)
		}
	}
	fmt.Fprintf(&b, "} ctx=%s", l.Context)
	return b.String()
}
