package store

import (
	"encoding/binary"
	"math"
)

// LevelDB key prefixes (see the package documentation).
const (
	prefixData    = 'd'
	prefixReclaim = 'x'
	prefixMeta    = 'm'
)

var checkpointKey = []byte("mcheckpoint")

func dataKey(db int, key []byte) []byte {
	k := make([]byte, 2+len(key))
	k[0] = prefixData
	k[1] = byte(db)
	copy(k[2:], key)
	return k
}

// reclaimKey orders entries by the time they become reclaimable so the
// reclaimer scans a prefix of the index.
func reclaimKey(at int64, db int, key []byte) []byte {
	k := make([]byte, 10+len(key))
	k[0] = prefixReclaim
	binary.BigEndian.PutUint64(k[1:9], clampNanos(at))
	k[9] = byte(db)
	copy(k[10:], key)
	return k
}

// reclaimBound is the exclusive upper bound of index entries due at or
// before at.
func reclaimBound(at int64) []byte {
	k := make([]byte, 9)
	k[0] = prefixReclaim
	u := clampNanos(at)
	if u == math.MaxUint64 {
		return []byte{prefixReclaim + 1}
	}
	binary.BigEndian.PutUint64(k[1:], u+1)
	return k
}

// parseReclaimKey returns ok=false for keys too short to be index entries.
func parseReclaimKey(k []byte) (at int64, db int, key []byte, ok bool) {
	if len(k) < 11 || k[0] != prefixReclaim {
		return 0, 0, nil, false
	}
	u := binary.BigEndian.Uint64(k[1:9])
	if u > math.MaxInt64 {
		u = math.MaxInt64
	}
	return int64(u), int(k[9]), k[10:], true
}

func clampNanos(at int64) uint64 {
	if at < 0 {
		return 0
	}
	return uint64(at)
}
