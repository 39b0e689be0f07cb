package client

import "time"

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
// Hedges counts the calls started around a peer that ran late or was
// unreachable (hints for a write's share, covering writes sent the gather
// way, reads and context reads completed without it). Peers is every peer
// the coordinator has called, by id.
type CoordinatorStatus struct {
	InFlight int64        `json:"in_flight"`
	Hedges   uint64       `json:"hedges"`
	Peers    []PeerHealth `json:"peers"`
}

// PeerHealth is one peer as the node's coordinator's calls see it, beside
// what gossip says. Unreachable: its last calls all failed or ran late, so
// the node routes around it (a cut link gossip does not see, say) until it
// answers again; Since is when it became so (zero while reachable). Misses
// counts its failed or late calls since its last answer, Trips how often
// it became unreachable since the node started. P99Ms is the p99 latency
// of its recent answers in milliseconds (0 until enough), HedgeAfterMs the
// per-call deadline derived from it (0 while unreachable).
type PeerHealth struct {
	ID           string    `json:"id"`
	Unreachable  bool      `json:"unreachable"`
	Since        time.Time `json:"since,omitzero"`
	Misses       int       `json:"misses"`
	Trips        uint64    `json:"trips"`
	P99Ms        float64   `json:"p99_ms"`
	HedgeAfterMs float64   `json:"hedge_after_ms"`
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
