package node

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/node/httpapi"
	"github.com/dynkv/dynkv/replication/hints"
	"github.com/dynkv/dynkv/store"
)

// Hinted handoff wiring: the coordinator stores hints through hints.Replicas.Hint,
// the delivery worker (hints.Delivery) hands them to their owners,
// /cluster/status shows what this node holds, and DELETE
// /internal/v1/debug/hints wipes them (the chaos suite uses it to force
// convergence through anti-entropy alone).

// startHints starts the delivery worker; cluster.stop closes it.
func (n *Node) startHints(c *cluster) (*hints.Delivery, error) {
	d := hints.New(hints.Config{
		Store:  n.store,
		Send:   c.replicas.MergeBatch,
		Alive:  c.alive,
		InRing: func(id string) bool { return inRing(c.members.Placement(), id) },
		PreferenceList: func(db int, key []byte) []string {
			p := c.members.Placement()
			if p.Committed == nil {
				return nil
			}
			return p.Committed.PreferenceList(p.Partition(db, key), n.cfg.Replicas)
		},
		Interval:  n.cfg.HintInterval,
		Timeout:   n.cfg.RPCTimeout,
		MaxAge:    n.cfg.TombstoneGrace,
		HintClock: n.cfg.now,
		Logger:    n.log.Named("hints"),
	})
	if err := d.Start(context.Background()); err != nil {
		return nil, err
	}
	return d, nil
}

// inRing reports whether id owns partitions in the committed or the
// target ring: hints for anyone else go to the keys' current replicas.
func inRing(p membership.Placement, id string) bool {
	if p.Committed != nil && slices.Contains(p.Committed.Members(), id) {
		return true
	}
	return p.Target != nil && slices.Contains(p.Target.Members(), id)
}

// hintsBody is the "hints" object of /cluster/status: what this node holds
// for others and what it delivered since it started.
type hintsBody struct {
	Pending          int     `json:"pending"`
	Delivered        uint64  `json:"delivered"`
	Failed           uint64  `json:"failed"`
	Expired          uint64  `json:"expired"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
}

// hintStatus summarises the store's hints: the top-level object and the
// per-owner count and oldest age for the member list.
func (n *Node) hintStatus(c *cluster) (hintsBody, map[string]store.HintStat, time.Time) {
	stats := n.store.HintStats()
	now := n.cfg.now()
	var body hintsBody
	if c != nil && c.hints != nil {
		ds := c.hints.Stats()
		body.Delivered, body.Failed, body.Expired = ds.Delivered, ds.Failed, ds.Expired
	}
	for _, st := range stats {
		body.Pending += st.Count
		body.OldestAgeSeconds = max(body.OldestAgeSeconds, ageSeconds(now, st.Oldest))
	}
	return body, stats, now
}

func ageSeconds(now, t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return max(0, now.Sub(t).Seconds())
}

// handleWipeHints answers DELETE /internal/v1/debug/hints: every hint this
// node holds is deleted durably; {"wiped": n}.
func (n *Node) handleWipeHints(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodDelete {
		// Registered for every method so that chi does not fall through
		// to the RPC route's 404.
		httpapi.MethodNotAllowed(w, r)
		return
	}
	wiped, err := n.store.WipeHints()
	if err != nil {
		n.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]int{"wiped": wiped})
}
