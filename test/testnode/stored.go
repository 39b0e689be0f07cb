package testnode

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/syndtr/goleveldb/leveldb"
)

// DataRecordKey is where a node's store keeps key's state in db, and
// HintRecordKey where it keeps a hint for owner: the LevelDB layout of
// store/doc.go.
func DataRecordKey(db int, key string) []byte {
	return append([]byte{'d', byte(db)}, key...)
}

// HintRecordKey: see DataRecordKey.
func HintRecordKey(owner string, db int, key string) []byte {
	k := append([]byte{'h', byte(len(owner))}, owner...)
	return append(append(k, byte(db)), key...)
}

// DamageStored replaces the stored record under lkey in the LevelDB of
// the node, which must be stopped, with damage(old), as a damaged disk or
// an encoder bug would leave it. It reports whether a record was there
// (damage then got its bytes; otherwise nothing is written).
func (n *Node) DamageStored(lkey []byte, damage func(old []byte) []byte) (bool, error) {
	if n.Running() {
		return false, fmt.Errorf("node %s: DamageStored while running; Stop or Kill it first", n.id)
	}
	dir := filepath.Join(n.dataDir, "leveldb")
	ldb, err := leveldb.OpenFile(dir, nil)
	if err != nil {
		return false, fmt.Errorf("node %s: opening %s: %w", n.id, dir, err)
	}
	old, err := ldb.Get(lkey, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return false, ldb.Close()
	}
	if err != nil {
		ldb.Close()
		return false, fmt.Errorf("node %s: reading %q: %w", n.id, lkey, err)
	}
	if err := ldb.Put(lkey, damage(old), nil); err != nil {
		ldb.Close()
		return false, fmt.Errorf("node %s: writing %q: %w", n.id, lkey, err)
	}
	if err := ldb.Close(); err != nil {
		return false, fmt.Errorf("node %s: closing %s: %w", n.id, dir, err)
	}
	return true, nil
}
