package store

import (
	"time"

	"github.com/dynkv/dynkv/vclock"
)

// reclaimStep is what the reclaimer does with a key that is due.
type reclaimStep int

const (
	// reclaimNothing: the key is not due (yet, or ever); only the index
	// entry may need fixing.
	reclaimNothing reclaimStep = iota
	// reclaimBury: every value sibling has expired; replace each with its
	// tombstone twin (buryExpired).
	reclaimBury
	// reclaimDrop: only tombstones older than the grace remain; the key may
	// go once CanDropTombstone agrees.
	reclaimDrop
)

// reclaimAt is when the reclaimer next has work on s: while s holds values
// (all of them expiring), the latest expiry, when all of them are buried at
// once; once s holds only tombstones, the newest LastModified plus grace.
// ok=false when some value never expires (or s is empty), so the key needs
// no reclaim index entry: an expired sibling beside an everlasting one stays
// until a write supersedes it (reads already skip it).
func reclaimAt(s vclock.Set, grace time.Duration) (at int64, ok bool) {
	if len(s.Siblings) == 0 {
		// Nothing to reclaim by time; keep the causal context.
		return 0, false
	}
	var expires, tombstones int64
	values := false
	for _, sib := range s.Siblings {
		switch {
		case sib.Tombstone:
			tombstones = max(tombstones, sib.LastModified+int64(grace))
		case sib.Expires != 0:
			values = true
			expires = max(expires, sib.Expires)
		default:
			return 0, false
		}
	}
	if values {
		return expires, true
	}
	return tombstones, true
}

// reclaimStepAt says what the reclaimer does with s at now.
func reclaimStepAt(s vclock.Set, now int64, grace time.Duration) reclaimStep {
	at, ok := reclaimAt(s, grace)
	if !ok || at > now {
		return reclaimNothing
	}
	for _, sib := range s.Siblings {
		if !sib.Tombstone {
			return reclaimBury
		}
	}
	return reclaimDrop
}

// buryExpired replaces every expired value sibling of s with its tombstone
// twin: the same dot (so the context is unchanged and the tombstone still
// covers whatever the value superseded), no value, and a LastModified of its
// expiry, or one nanosecond after the value's own LastModified if the value
// was written already expired. The strictly later LastModified makes
// vclock.Merge pick the tombstone over a replica's not yet buried value of
// the same dot, whichever side it is on, so replicas converge on the
// tombstone.
func buryExpired(s vclock.Set, now int64) vclock.Set {
	out := vclock.Set{Context: s.Context, Siblings: make([]vclock.Sibling, len(s.Siblings))}
	for i, sib := range s.Siblings {
		if !sib.Tombstone && sib.Expires != 0 && sib.Expires <= now {
			sib = tombstoneTwin(sib)
		}
		out.Siblings[i] = sib
	}
	return out
}

func tombstoneTwin(v vclock.Sibling) vclock.Sibling {
	return vclock.Sibling{
		Dot:          v.Dot,
		LastModified: max(v.Expires, v.LastModified+1),
		Tombstone:    true,
	}
}
