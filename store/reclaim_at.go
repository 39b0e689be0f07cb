package store

import (
	"time"

	"github.com/dynkv/dynkv/vclock"
)

// reclaimAt is when every sibling of s becomes reclaimable: the latest expiry
// among values, and for tombstones the newest LastModified plus grace.
// ok=false when some value never expires (or s is empty), so the key needs
// no reclaim index entry.
func reclaimAt(s vclock.Set, grace time.Duration) (at int64, ok bool) {
	if len(s.Siblings) == 0 {
		// Nothing to reclaim by time; keep the causal context.
		return 0, false
	}
	for _, sib := range s.Siblings {
		var t int64
		switch {
		case sib.Tombstone:
			t = sib.LastModified + int64(grace)
		case sib.Expires != 0:
			t = sib.Expires
		default:
			return 0, false
		}
		if t > at {
			at = t
		}
	}
	return at, true
}

// reclaimable reports whether every sibling of s is gone for good at now:
// an expired value or a tombstone older than grace. hasTombstone tells the
// caller to ask CanDropTombstone.
func reclaimable(s vclock.Set, now int64, grace time.Duration) (ok, hasTombstone bool) {
	at, ok := reclaimAt(s, grace)
	if !ok || at > now {
		return false, false
	}
	for _, sib := range s.Siblings {
		if sib.Tombstone {
			return true, true
		}
	}
	return true, false
}
