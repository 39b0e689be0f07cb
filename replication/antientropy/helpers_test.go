package antientropy

import (
	"testing"

	"github.com/dynkv/dynkv/replication/internal/reptest"
	"github.com/dynkv/dynkv/replication/internal/rpctest"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// Shared test helpers (replication/internal/reptest), by the names the
// tests of this package have always used.
var (
	checkLeaks = reptest.CheckLeaks
	openStore  = reptest.OpenStore
	sampleSet  = reptest.SampleSet
	ctxTimeout = reptest.Ctx
)

// serveTrees serves st's replica RPC and the anti-entropy calls from
// trees, as node does, and returns the address.
func serveTrees(t *testing.T, st *store.Store, trees *HashTrees) string {
	t.Helper()
	srv := &rpc.Server{Store: st}
	Register(srv, st, trees)
	return rpctest.Serve(t, srv)
}

type storedKey = reptest.StoredKey

func storeContents(t *testing.T, s *store.Store) map[storedKey]vclock.Set {
	return reptest.Contents(t, s)
}

// The damaged-record helpers (replication/internal/reptest).
var (
	undecodable   = reptest.Undecodable
	dataRecordKey = reptest.DataRecordKey
	hintRecordKey = reptest.HintRecordKey
	damageStored  = reptest.DamageStored
	openStoreAt   = reptest.OpenStoreAt
	closeOrFail   = reptest.CloseOrFail
)
