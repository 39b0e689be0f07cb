package membership

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	_ memberlist.PingDelegate  = delegate{}
	_ memberlist.EventDelegate = delegate{}
)

// memberlist keeps a suspect state internally but its API (Members) shows
// only "not dead", so suspicion is tracked here from what this node itself
// observes: its probe of a peer failed (memberlist logs that line, see
// zapWriter) and no direct ack, join or leave has come since. Suspicion
// raised by other nodes' probes is not visible to this node.

func (d delegate) AckPayload() []byte { return nil }

func (d delegate) NotifyPingComplete(other *memberlist.Node, _ time.Duration, _ []byte) {
	d.m.clearSuspect(other.Name)
}

func (d delegate) NotifyJoin(n *memberlist.Node)   { d.m.clearSuspect(n.Name) }
func (d delegate) NotifyLeave(n *memberlist.Node)  { d.m.clearSuspect(n.Name) }
func (d delegate) NotifyUpdate(n *memberlist.Node) {}

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

// LocalState is our half of a push/pull: the whole ring state (the staged
// one during a join attempt).
func (d delegate) LocalState(join bool) []byte { return d.m.gossipState() }

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
//
// It also watches for the one line that reveals a failed probe of ours,
// since memberlist has no hook for it (pinned by TestStoppedNodeIsSuspectBeforeDead).
//
// Gossip that none of the node's --gossip-key keys decrypts (a node with
// another key, or a stranger) is the exception: the operator should learn
// why a node is not admitted, so it is a warning, at most one per
// refusedLogEvery (with the count since the last) so that a flood of junk
// cannot fill the log.
//
// Some memberlist goroutines (indirect pings) outlive Shutdown by up to a
// probe timeout; once closed is set the writer drops their lines, so no log
// is written on behalf of a stopped Membership.
type zapWriter struct {
	log       *zap.Logger
	onSuspect func(name string)
	closed    *atomic.Bool
	refused   *logLimiter
}

// refusedLogEvery spaces the warnings about undecryptable gossip.
const refusedLogEvery = 10 * time.Second

// Lines memberlist writes for gossip its keyring cannot decrypt: a stream
// (push-pull, join) under another key or none, and a packet.
var undecryptable = []string{"no installed keys could decrypt", "remote state is not encrypted", "Decrypt packet failed"}

// logLimiter lets one line through per interval and counts the rest.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many were held back since the
// last line that was.
func (l *logLimiter) allow(now time.Time, every time.Duration) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}

const suspectPrefix, suspectSuffix = "memberlist: Suspect ", " has failed, no acks received"

func (w zapWriter) Write(p []byte) (int, error) {
	if w.closed != nil && w.closed.Load() {
		return len(p), nil
	}
	line := strings.TrimSpace(string(p))
	if i := strings.Index(line, suspectPrefix); i >= 0 && strings.HasSuffix(line, suspectSuffix) && w.onSuspect != nil {
		w.onSuspect(line[i+len(suspectPrefix) : len(line)-len(suspectSuffix)])
	}
	if w.refused != nil {
		for _, u := range undecryptable {
			if !strings.Contains(line, u) {
				continue
			}
			if ok, held := w.refused.allow(time.Now(), refusedLogEvery); ok {
				w.log.Warn("refused gossip that no --gossip-key decrypts: a node with other keys or none, or not a member",
					zap.String("memberlist", line), zap.Int("refused_since_last_warning", held))
				return len(p), nil
			}
		}
	}
	w.log.Debug(line)
	return len(p), nil
}
