package client

// ClusterStatus is the JSON document of GET /cluster/status (SPEC section
// 3): this node, N/R/W, the committed ring, a pending transition and every
// member as this node sees it.
type ClusterStatus struct {
	Node       string `json:"node"`
	N          int    `json:"n"`
	R          int    `json:"r"`
	W          int    `json:"w"`
	Partitions int    `json:"partitions"`
	Epoch      uint64 `json:"epoch"`
	// RingFingerprint identifies the committed ring (epoch and members).
	RingFingerprint string         `json:"ring_fingerprint"`
	Transition      *Transition    `json:"transition"`
	Members         []MemberStatus `json:"members"`
	// Quarantine counts the damaged stored records this node moved aside.
	Quarantine QuarantineStatus `json:"quarantine"`
	// Coordinator is the coordinator's work in progress.
	Coordinator CoordinatorStatus `json:"coordinator"`
}

// CoordinatorStatus is the "coordinator" object of the status document.
// InFlight counts the reads and writes the node is coordinating plus the
// work they left running after their answer (merges beyond W, which store
// a hint when they fail; answers beyond R; read repair): zero means nothing
// this node started can still write to a replica or store a hint.
type CoordinatorStatus struct {
	InFlight int64 `json:"in_flight"`
}

// QuarantineStatus is the "quarantine" object of the status document:
// stored records the node could not decode and moved aside into Dir,
// counted by kind since the node started; Held counts the records kept in
// Dir from every run (docs/operations.md, "Quarantined records").
type QuarantineStatus struct {
	Total       uint64 `json:"total"`
	Data        uint64 `json:"data"`
	Hints       uint64 `json:"hints"`
	WALRecords  uint64 `json:"wal_records"`
	Checkpoints uint64 `json:"checkpoints"`
	Failures    uint64 `json:"failures"`
	Held        int    `json:"held"`
	Dir         string `json:"dir"`
}

// Transition is a pending ring change: the target members and how many
// members have finished handing their data off towards it.
type Transition struct {
	Target       []string `json:"target"`
	Fingerprint  string   `json:"fingerprint"`
	MembersDone  int      `json:"members_done"`
	MembersTotal int      `json:"members_total"`
}

// MemberStatus is one member as a node sees it.
type MemberStatus struct {
	ID string `json:"id"`
	// State is alive, suspect or dead for a member of the ring, or
	// joining, leaving, left or removed.
	State        string  `json:"state"`
	GossipAddr   string  `json:"gossip_addr"`
	HTTPAddr     string  `json:"http_addr"`
	RingShare    float64 `json:"ring_share"`
	TargetShare  float64 `json:"target_share"`
	HintsPending int     `json:"hints_pending"`
	Handoff      struct {
		Sent  uint64 `json:"sent"`
		Total uint64 `json:"total"`
		Done  bool   `json:"done"`
	} `json:"handoff"`
}
