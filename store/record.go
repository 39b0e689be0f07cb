package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dynkv/dynkv/vclock"
)

// WAL payload layout (docs/internals.md):
//
//	version byte | op byte | db byte | uvarint keylen | key | body
//
// op put carries the key's full new vclock.Set encoding as body, so replay is
// idempotent; op drop has no body and means the key was reclaimed.
const recordVersion = 1

type recordOp byte

const (
	opPut  recordOp = 1
	opDrop recordOp = 2
	// opHint and opHintDrop carry a hinted-handoff record (hints.go): the
	// hint's full new state, or its removal.
	opHint     recordOp = 3
	opHintDrop recordOp = 4
)

func (op recordOp) String() string {
	switch op {
	case opPut:
		return "put"
	case opDrop:
		return "drop"
	case opHint:
		return "hint"
	case opHintDrop:
		return "hint-drop"
	}
	return fmt.Sprintf("op(%d)", byte(op))
}

// errBadRecord is wrapped by every decodeRecord failure.
var errBadRecord = errors.New("malformed WAL record")

// errBadRecordBody is wrapped, beside errBadRecord, when only the Set a put
// or hint record carries does not decode: the record's op, db, key (and a
// hint's owner) are then filled in on the returned record, so replay can
// name it and set it aside (quarantine.go) instead of refusing to start.
var errBadRecordBody = errors.New("WAL record carries a Set that does not decode")

type record struct {
	op   recordOp
	db   int
	key  []byte
	set  vclock.Set // op put only
	body []byte     // op put: the Set's encoding, aliasing the payload

	owner   string // hint ops: the node the hint is for
	created int64  // op hint: unix ns the hint was first stored
}

// encodeRecord builds the payload; body is the Set encoding for op put.
func encodeRecord(op recordOp, db int, key, body []byte) []byte {
	b := make([]byte, 0, 3+binary.MaxVarintLen64+len(key)+len(body))
	b = append(b, recordVersion, byte(op), byte(db))
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return append(b, body...)
}

// decodeRecord never trusts a length before checking it against the buffer
// and never panics; the returned key aliases b. On an errBadRecordBody
// failure the record's op, db, key and owner are valid, its set and body
// are not.
func decodeRecord(b []byte) (record, error) {
	if len(b) < 4 {
		return record{}, fmt.Errorf("%w: %d bytes, shorter than a header", errBadRecord, len(b))
	}
	if b[0] != recordVersion {
		return record{}, fmt.Errorf("%w: version %d, want %d", errBadRecord, b[0], recordVersion)
	}
	r := record{op: recordOp(b[1]), db: int(b[2])}
	if r.op != opPut && r.op != opDrop && r.op != opHint && r.op != opHintDrop {
		return record{}, fmt.Errorf("%w: unknown op %d", errBadRecord, b[1])
	}
	klen, n := binary.Uvarint(b[3:])
	if n <= 0 {
		return record{}, fmt.Errorf("%w: bad key length varint", errBadRecord)
	}
	rest := b[3+n:]
	if klen < 1 || klen > MaxKeyLen || klen > uint64(len(rest)) {
		return record{}, fmt.Errorf("%w: key length %d with %d bytes left", errBadRecord, klen, len(rest))
	}
	r.key, rest = rest[:klen], rest[klen:]
	switch r.op {
	case opPut:
		set, err := vclock.DecodeSet(rest)
		if err != nil {
			return r, fmt.Errorf("%w: %w: put body: %w", errBadRecord, errBadRecordBody, err)
		}
		r.set, r.body = set, rest
	case opDrop:
		if len(rest) != 0 {
			return record{}, fmt.Errorf("%w: drop with %d trailing bytes", errBadRecord, len(rest))
		}
	case opHint, opHintDrop:
		if err := decodeHintBody(&r, rest, r.op == opHint); err != nil {
			if errors.Is(err, errBadRecordBody) {
				return r, fmt.Errorf("%w: %s body: %w", errBadRecord, r.op, err)
			}
			return record{}, fmt.Errorf("%w: %s body: %w", errBadRecord, r.op, err)
		}
	}
	return r, nil
}
