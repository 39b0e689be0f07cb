package reptest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"go.uber.org/goleak"

	"github.com/dynkv/dynkv/internal/testutil/storetest"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// CheckLeaks fails t if a goroutine started during the test outlives it.
// Call it first, so that its cleanup runs after every other one.
func CheckLeaks(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{
		goleak.IgnoreCurrent(),
		// goleveldb's memdb pool drainer outlives Close by up to a second
		// by design, then exits.
		goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"),
	}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// OpenStore opens a store in a temporary directory, closed when the test
// ends (storetest.OpenTemp: durability is not under test here).
func OpenStore(t testing.TB) *store.Store {
	t.Helper()
	return storetest.OpenTemp(t)
}

// SampleSet is a set of two siblings, a value and a tombstone.
func SampleSet(value string) vclock.Set {
	a, _ := vclock.Set{}.Update("node-a", vclock.Context{}, vclock.Sibling{
		Value: []byte(value), ContentType: "text/plain", LastModified: 1_700_000_000_000_000_000,
	})
	b, _ := vclock.Set{}.Update("node-b", vclock.Context{}, vclock.Sibling{
		Tombstone: true, LastModified: 1_700_000_000_000_000_001, Expires: -5,
	})
	return vclock.Merge(a, b)
}

// Ctx is a context that ends after 10 seconds or with the test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// StoredKey names a key of a store.
type StoredKey struct {
	DB  int
	Key string
}

// Contents is every key st holds, with its set.
func Contents(t testing.TB, st *store.Store) map[StoredKey]vclock.Set {
	t.Helper()
	out := map[StoredKey]vclock.Set{}
	if err := st.Scan(func(db int, key []byte, set vclock.Set) error {
		out[StoredKey{db, string(key)}] = set
		return nil
	}); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return out
}

// Undecodable is a stored value no Set decoder accepts (an unknown format
// version), as a damaged disk or an encoder writing what the decoder
// refuses leaves it.
var Undecodable = []byte{0xee, 'd', 'a', 'm', 'a', 'g', 'e', 'd'}

// DataRecordKey and HintRecordKey are the store's LevelDB layout
// (store/doc.go): a data record under 'd' | db | key, a hint under
// 'h' | len(owner) | owner | db | key.
func DataRecordKey(db int, key string) []byte {
	return append([]byte{'d', byte(db)}, key...)
}

// HintRecordKey: see DataRecordKey.
func HintRecordKey(owner string, db int, key string) []byte {
	k := append([]byte{'h', byte(len(owner))}, owner...)
	return append(append(k, byte(db)), key...)
}

// DamageStored overwrites records in the LevelDB of the closed store at
// dir with Undecodable.
func DamageStored(t testing.TB, dir string, lkeys ...[]byte) {
	t.Helper()
	ldb, err := leveldb.OpenFile(filepath.Join(dir, "leveldb"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range lkeys {
		if err := ldb.Put(k, Undecodable, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := ldb.Close(); err != nil {
		t.Fatal(err)
	}
}

// OpenStoreAt opens the store at dir, closed (errors ignored) when the
// test ends.
func OpenStoreAt(t testing.TB, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(storetest.Options(dir))
	if err != nil {
		t.Fatalf("store.Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// CloseOrFail closes s and fails t on an error.
func CloseOrFail(t testing.TB, s *store.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("store.Close: %v", err)
	}
}
