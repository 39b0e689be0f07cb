package membership

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// delegate is memberlist's view of a Membership: node meta, the ring state
// for push/pull, broadcasts of local changes, and admission checks. It is a
// separate type so Membership's exported method set stays the contract.
type delegate struct{ m *Membership }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.AliveDelegate = delegate{}
	_ memberlist.MergeDelegate = delegate{}
)

func (d delegate) NodeMeta(limit int) []byte {
	b := d.m.meta
	if len(b) > limit {
		// memberlist panics on oversized meta; an id or address this long is
		// a misconfiguration New already rejected.
		return nil
	}
	return b
}

// NotifyMsg receives a broadcast ring state.
func (d delegate) NotifyMsg(b []byte) { d.m.mergeRemote(b, "broadcast") }

func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.m.queue.GetBroadcasts(overhead, limit)
}

// LocalState is our half of a push/pull: the whole ring state.
func (d delegate) LocalState(join bool) []byte {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	return d.m.state.Encode()
}

func (d delegate) MergeRemoteState(b []byte, join bool) { d.m.mergeRemote(b, "push-pull") }

// NotifyAlive refuses a peer whose partition count differs from ours: the
// same key would map to different partitions on the two nodes.
func (d delegate) NotifyAlive(peer *memberlist.Node) error {
	return d.m.checkPeer(peer)
}

// NotifyMerge refuses a push/pull with a cluster that has a member we would
// refuse, so joining a cluster with another partition count fails at Join.
func (d delegate) NotifyMerge(peers []*memberlist.Node) error {
	var errs []error
	for _, p := range peers {
		if err := d.m.checkPeer(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *Membership) checkPeer(peer *memberlist.Node) error {
	meta, err := DecodeMeta(peer.Meta)
	if err != nil {
		return fmt.Errorf("membership: peer %s at %s: %w", peer.Name, peer.Address(), err)
	}
	if meta.Partitions != m.cfg.Partitions {
		m.log.Error("refusing peer with a different partition count",
			zap.String("peer", peer.Name), zap.String("addr", peer.Address()),
			zap.Int("peer_partitions", meta.Partitions), zap.Int("partitions", m.cfg.Partitions))
		return fmt.Errorf("membership: peer %s at %s has %d partitions, this node %d",
			peer.Name, peer.Address(), meta.Partitions, m.cfg.Partitions)
	}
	return nil
}

// stateBroadcast carries a full ring state; a newer one makes any queued
// older one pointless, so it invalidates every other stateBroadcast.
type stateBroadcast []byte

func (b stateBroadcast) Invalidates(other memberlist.Broadcast) bool {
	_, ok := other.(stateBroadcast)
	return ok
}
func (b stateBroadcast) Message() []byte { return b }
func (b stateBroadcast) Finished()       {}

// zapWriter routes memberlist's standard-library logger to zap at debug
// level: memberlist logs every failed probe of a dead peer, which is
// routine in a cluster with a member down; what operators need (state
// changes) Membership logs itself at info.
type zapWriter struct{ log *zap.Logger }

func (w zapWriter) Write(p []byte) (int, error) {
	w.log.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}
