package node

import "github.com/dynkv/dynkv/store"

// quarantineBody is the "quarantine" object of GET /cluster/status: the
// damaged stored records this node moved aside (store/quarantine.go,
// docs/operations.md "Quarantined records"). The counts are since the node
// started; held counts the records kept in dir from every run, until an
// operator removes them.
type quarantineBody struct {
	Total       uint64 `json:"total"`
	Data        uint64 `json:"data"`
	Hints       uint64 `json:"hints"`
	WALRecords  uint64 `json:"wal_records"`
	Checkpoints uint64 `json:"checkpoints"`
	Failures    uint64 `json:"failures"`
	Held        int    `json:"held"`
	Dir         string `json:"dir"`
}

func newQuarantineBody(q store.QuarantineStats) quarantineBody {
	return quarantineBody{
		Total:       q.Total(),
		Data:        q.Data,
		Hints:       q.Hints,
		WALRecords:  q.WALRecords,
		Checkpoints: q.Checkpoints,
		Failures:    q.Failures,
		Held:        q.Held,
		Dir:         q.Dir,
	}
}
