package handoff

import "github.com/dynkv/dynkv/replication/internal/reptest"

// checkLeaks is the shared leak check (replication/internal/reptest).
var checkLeaks = reptest.CheckLeaks

// The damaged-record helpers (replication/internal/reptest).
var (
	undecodable   = reptest.Undecodable
	dataRecordKey = reptest.DataRecordKey
	hintRecordKey = reptest.HintRecordKey
	damageStored  = reptest.DamageStored
	openStoreAt   = reptest.OpenStoreAt
	closeOrFail   = reptest.CloseOrFail
)
