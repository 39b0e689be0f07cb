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
