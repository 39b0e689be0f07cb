package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/node/httpapi"
	"github.com/dynkv/dynkv/replication/rpc/transport"
	"github.com/dynkv/dynkv/store"
)

// maxJoinBody bounds the body of POST /cluster/join: a list of addresses.
const maxJoinBody = 64 << 10

// statusBody is the JSON of GET /cluster/status (SPEC section 3).
type statusBody struct {
	Node            string          `json:"node"`
	N               int             `json:"n"`
	R               int             `json:"r"`
	W               int             `json:"w"`
	Partitions      int             `json:"partitions"`
	Epoch           uint64          `json:"epoch"`
	RingFingerprint string          `json:"ring_fingerprint"`
	Transition      *transitionBody `json:"transition"`
	Members         []memberBody    `json:"members"`
	Hints           hintsBody       `json:"hints"`
	AAE             *aaeBody        `json:"aae,omitempty"`
	Quarantine      quarantineBody  `json:"quarantine"`
	Coordinator     coordinatorBody `json:"coordinator"`
}

// coordinatorBody is the coordinator's work in progress: in_flight is the
// reads and writes it serves plus what they left running after their
// answer (merges beyond W, which store a hint if they fail; read repair).
// Zero means nothing this node started can still write to a replica.
// Hedges counts the calls started around a late or unreachable peer;
// peers is every peer the coordinator has called, by id, as its calls see
// it (never null).
type coordinatorBody struct {
	InFlight int64      `json:"in_flight"`
	Hedges   uint64     `json:"hedges"`
	Peers    []peerBody `json:"peers"`
}

// peerBody is one peer's health (coordinator.PeerHealth): unreachable
// while its last calls all failed or ran late, so routing avoids it even
// if gossip says it is alive; since is when it became so (RFC 3339, UTC;
// absent while reachable); misses its failed or late calls since its last
// answer; trips how often it became unreachable since this node started;
// p99_ms the p99 latency of its recent answers (0 until enough) and
// hedge_after_ms the per-call deadline derived from it (0 while
// unreachable).
type peerBody struct {
	ID           string  `json:"id"`
	Unreachable  bool    `json:"unreachable"`
	Since        string  `json:"since,omitempty"`
	Misses       int     `json:"misses"`
	Trips        uint64  `json:"trips"`
	P99Ms        float64 `json:"p99_ms"`
	HedgeAfterMs float64 `json:"hedge_after_ms"`
}

// newCoordinatorBody reports c's coordinator.
func newCoordinatorBody(c *cluster) coordinatorBody {
	cs := c.coord.Stats()
	body := coordinatorBody{InFlight: cs.InFlight, Hedges: cs.Hedges, Peers: []peerBody{}}
	for _, p := range c.coord.Peers() {
		pb := peerBody{ID: p.ID, Unreachable: p.Unreachable, Misses: p.Misses, Trips: p.Trips,
			P99Ms: milliseconds(p.P99), HedgeAfterMs: milliseconds(p.HedgeAfter)}
		if !p.Since.IsZero() {
			pb.Since = p.Since.UTC().Format(time.RFC3339)
		}
		body.Peers = append(body.Peers, pb)
	}
	return body
}

// milliseconds is d in (fractional) milliseconds.
func milliseconds(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// transitionBody describes a pending ring change: the target member set
// and how many members of committed ∪ target report their handoff done.
type transitionBody struct {
	Target       []string `json:"target"`
	Fingerprint  string   `json:"fingerprint"`
	MembersDone  int      `json:"members_done"`
	MembersTotal int      `json:"members_total"`
}

type memberBody struct {
	ID           string      `json:"id"`
	State        string      `json:"state"`
	GossipAddr   string      `json:"gossip_addr"`
	HTTPAddr     string      `json:"http_addr"`
	RingShare    float64     `json:"ring_share"`
	TargetShare  float64     `json:"target_share"`
	HintsPending int         `json:"hints_pending"`
	Handoff      handoffBody `json:"handoff"`
	// HintsOldestAgeSeconds: age of the oldest hint this node holds for
	// the member.
	HintsOldestAgeSeconds float64 `json:"hints_oldest_age_seconds"`
}

type handoffBody struct {
	Sent  uint64 `json:"sent"`
	Total uint64 `json:"total"`
	Done  bool   `json:"done"`
}

// clusterStatus is this node's view of the cluster. N, R and W are the
// effective ones: capped at the committed member count, as the
// coordinator caps them.
func (n *Node) clusterStatus(c *cluster) statusBody {
	st := c.members.State()
	pl := c.members.Placement()
	size := len(st.Committed.Members)
	if pl.Committed != nil {
		size = len(pl.Committed.Members())
	}
	size = max(size, 1)
	body := statusBody{
		Node:            n.cfg.ID,
		N:               min(n.cfg.Replicas, size),
		R:               min(n.cfg.ReadQuorum, size),
		W:               min(n.cfg.WriteQuorum, size),
		Partitions:      n.cfg.Partitions,
		Epoch:           st.Committed.Epoch,
		RingFingerprint: fingerprintString(st.Committed.Fingerprint()),
		Members:         []memberBody{},
		AAE:             n.aae.stats(),
		Quarantine:      newQuarantineBody(n.store.Stats().Quarantine),
		Coordinator:     newCoordinatorBody(c),
	}
	target := st.Target()
	pending := st.Pending()
	var fp membership.Fingerprint
	if pending {
		fp = st.TargetFingerprint()
		tb := &transitionBody{Target: target, Fingerprint: fingerprintString(fp)}
		for _, id := range unionSorted(st.Committed.Members, target) {
			m, ok := st.Member(id)
			if !ok || m.Status == membership.StatusRemoved {
				continue
			}
			tb.MembersTotal++
			if m.Handoff.Done && m.Handoff.Target == fp {
				tb.MembersDone++
			}
		}
		body.Transition = tb
	}
	hints, hintStats, now := n.hintStatus(c)
	body.Hints = hints
	// State.Members is sorted by id.
	for _, m := range st.Members {
		id := m.ID
		mb := memberBody{
			ID:         id,
			State:      m.Status.String(),
			GossipAddr: m.GossipAddr,
			HTTPAddr:   m.HTTPAddr,
		}
		if m.Status == membership.StatusValid {
			mb.State = string(c.members.Liveness(id))
		}
		if pl.Committed != nil {
			mb.RingShare = pl.Committed.Share(id)
		}
		mb.TargetShare = mb.RingShare
		if pl.Target != nil {
			mb.TargetShare = pl.Target.Share(id)
		}
		// Handoff progress only means something towards the pending
		// target; a report for an older one is stale.
		if pending && m.Handoff.Target == fp {
			mb.Handoff = handoffBody{Sent: m.Handoff.Sent, Total: m.Handoff.Total, Done: m.Handoff.Done}
		}
		if hs, ok := hintStats[id]; ok {
			mb.HintsPending, mb.HintsOldestAgeSeconds = hs.Count, ageSeconds(now, hs.Oldest)
		}
		body.Members = append(body.Members, mb)
	}
	return body
}

// fingerprintString shows a fingerprint as hex: in JSON a uint64 would lose
// precision in every client that reads numbers as doubles.
func fingerprintString(fp membership.Fingerprint) string { return fmt.Sprintf("%016x", uint64(fp)) }

// unionSorted is the sorted union of two sorted id lists.
func unionSorted(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

func (n *Node) handleClusterStatus(w http.ResponseWriter, r *http.Request) {
	c, err := n.clusterOrErr()
	if err != nil {
		n.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, n.clusterStatus(c))
}

// joinBody is the JSON of POST /cluster/join.
type joinBody struct {
	Addrs []string `json:"addrs"`
}

func (n *Node) handleClusterJoin(w http.ResponseWriter, r *http.Request) {
	if err := n.clusterJoin(w, r); err != nil {
		n.writeError(w, r, err)
	}
}

func (n *Node) clusterJoin(w http.ResponseWriter, r *http.Request) error {
	c, err := n.clusterOrErr()
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJoinBody))
	if err != nil {
		return httpapi.BadRequestf("reading the join request: %v", err)
	}
	addrs, err := parseJoinBody(raw)
	if err != nil {
		return err
	}
	if err := n.checkNotOwnHTTPAddr(c, addrs); err != nil {
		return err
	}
	// A join that fails leaves the node as it was, serving its own ring
	// (membership.Join stages it).
	switch err := c.members.Join(addrs); {
	case err == nil:
	case errors.Is(err, membership.ErrJoinSelf):
		return httpapi.BadRequestf("joining %v: %v: give the gossip address (--gossip-addr) of a member of the cluster to join", addrs, err)
	case errors.Is(err, membership.ErrJoinInProgress), errors.Is(err, membership.ErrLeft):
		return httpapi.Error(http.StatusConflict, fmt.Sprintf("joining %v: %v", addrs, err))
	default:
		// No address answered, or the cluster refused us (another
		// --partitions, another gossip key): the node could not reach
		// a working cluster, as a gateway that cannot reach upstream.
		return httpapi.Error(http.StatusBadGateway, fmt.Sprintf("joining %v: %v", addrs, err))
	}
	httpapi.WriteJSON(w, http.StatusOK, n.clusterStatus(c))
	return nil
}

// checkNotOwnHTTPAddr refuses a join address that reaches this node's own
// HTTP listener, as bound or as advertised to peers: a join takes gossip
// addresses, and this one is not even another node's.
func (n *Node) checkNotOwnHTTPAddr(c *cluster, addrs []string) error {
	own := []string{n.Addr()}
	if m, ok := c.members.Member(n.cfg.ID); ok && m.HTTPAddr != "" {
		own = append(own, m.HTTPAddr)
	}
	for _, a := range addrs {
		if membership.IsLocalAddr(a, own...) {
			return httpapi.BadRequestf("joining %v: %s is this node's own HTTP address: give the gossip address (--gossip-addr) of a member of the cluster to join", addrs, a)
		}
	}
	return nil
}

// parseJoinBody decodes {"addrs": ["host:port", ...]}: at least one
// address, each a host:port.
func parseJoinBody(raw []byte) ([]string, error) {
	var body joinBody
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, httpapi.BadRequestf(`malformed join request: want {"addrs": ["host:port", ...]}: %v`, err)
	}
	if len(body.Addrs) == 0 {
		return nil, httpapi.BadRequestf(`malformed join request: "addrs" lists no gossip address`)
	}
	for _, a := range body.Addrs {
		if err := checkHostPort(a); err != nil {
			return nil, httpapi.BadRequestf("malformed join address %q: %v", a, err)
		}
	}
	return body.Addrs, nil
}

func (n *Node) handleClusterLeave(w http.ResponseWriter, r *http.Request) {
	if err := n.clusterLeave(w, r); err != nil {
		n.writeError(w, r, err)
	}
}

func (n *Node) clusterLeave(w http.ResponseWriter, r *http.Request) error {
	c, err := n.clusterOrErr()
	if err != nil {
		return err
	}
	q, err := httpapi.Query(r)
	if err != nil {
		return err
	}
	if !q.Has("node") {
		if err := c.members.Leave(); err != nil {
			return httpapi.Error(http.StatusConflict, fmt.Sprintf("leaving: %v", err))
		}
		httpapi.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "leaving", "node": n.cfg.ID})
		return nil
	}
	id := q.Get("node")
	switch {
	case id == "":
		return httpapi.BadRequestf("malformed node: empty (want the id of a member to remove)")
	case id == n.cfg.ID:
		return httpapi.BadRequestf("node %q is this node: to leave, POST /cluster/leave without ?node", id)
	}
	if _, ok := c.members.Member(id); !ok {
		return httpapi.Error(http.StatusNotFound, fmt.Sprintf("node %q is not a member of this cluster", id))
	}
	if err := c.members.Remove(id); err != nil {
		return httpapi.Error(http.StatusConflict, fmt.Sprintf("removing %q: %v", id, err))
	}
	httpapi.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "removing", "node": id})
	return nil
}

// debugSetBody is a replica's local Set, for tests that count replicas.
type debugSetBody struct {
	Found    bool               `json:"found"`
	Siblings []debugSiblingBody `json:"siblings"`
	Context  string             `json:"context"`
}

type debugSiblingBody struct {
	Value        []byte `json:"value"`
	ContentType  string `json:"content_type"`
	Actor        string `json:"actor"`
	Counter      uint64 `json:"counter"`
	LastModified int64  `json:"last_modified"`
	Expires      int64  `json:"expires,omitempty"`
	Tombstone    bool   `json:"tombstone,omitempty"`
}

// handleDebugLocal answers GET /internal/v1/debug/local/{db}/{key}: what
// this node's own store holds for the key, bypassing the coordinator, so
// that tests can see where replicas live.
func (n *Node) handleDebugLocal(w http.ResponseWriter, r *http.Request) {
	if err := n.debugLocal(w, r); err != nil {
		n.writeError(w, r, err)
	}
}

func (n *Node) debugLocal(w http.ResponseWriter, r *http.Request) error {
	const prefix = "/internal/v1/debug/local/"
	rest, _ := strings.CutPrefix(r.URL.EscapedPath(), prefix)
	dbPart, rawKey, ok := strings.Cut(rest, "/")
	if !ok {
		return httpapi.BadRequestf("want %s{db}/{key}", prefix)
	}
	db, err := httpapi.ParseDatabase(dbPart, n.cfg.Databases)
	if err != nil {
		return err
	}
	key, err := httpapi.ParseKey(rawKey)
	if err != nil {
		return err
	}
	set, err := n.store.Get(db, key)
	body := debugSetBody{Siblings: []debugSiblingBody{}}
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		body.Found = true
		body.Context = httpapi.EncodeContext(set.Context)
		for _, s := range set.Siblings {
			body.Siblings = append(body.Siblings, debugSiblingBody{
				Value:        append([]byte{}, s.Value...),
				ContentType:  s.ContentType,
				Actor:        s.Dot.Actor,
				Counter:      s.Dot.Counter,
				LastModified: s.LastModified,
				Expires:      s.Expires,
				Tombstone:    s.Tombstone,
			})
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, body)
	return nil
}

// handleInternal hands node-to-node RPC to replication: the transport's
// upgrade to the transport server, which takes the connection over (the
// observe and measure middlewares' writers pass the hijack through; the
// server clears the deadlines --http-read-timeout and --http-write-timeout
// armed, and the connection keeps its --http-max-conns place until it
// closes), every other call to the HTTP/2 RPC, which peers of older
// versions call. A node playing such a peer (olderRPC) answers the
// upgrade with the HTTP/2 RPC's 404, as they do.
func (n *Node) handleInternal(w http.ResponseWriter, r *http.Request) {
	c, err := n.clusterOrErr()
	if err != nil {
		n.writeError(w, r, err)
		return
	}
	if r.URL.Path == transport.DefaultPath && !n.olderRPC {
		c.transport.ServeHTTP(w, r)
		return
	}
	c.rpcHandler.ServeHTTP(w, r)
}
