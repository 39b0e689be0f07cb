package hints

import "github.com/dynkv/dynkv/replication/internal/reptest"

// Shared test helpers (replication/internal/reptest), by the names the
// tests of this package have always used.
var (
	checkLeaks = reptest.CheckLeaks
	openStore  = reptest.OpenStore
	sampleSet  = reptest.SampleSet
	ctxTimeout = reptest.Ctx
)

// The damaged-record helpers (replication/internal/reptest).
var (
	undecodable   = reptest.Undecodable
	dataRecordKey = reptest.DataRecordKey
	hintRecordKey = reptest.HintRecordKey
	damageStored  = reptest.DamageStored
	openStoreAt   = reptest.OpenStoreAt
	closeOrFail   = reptest.CloseOrFail
)
