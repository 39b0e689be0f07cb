package coordinator

import (
	"sync"
	"time"
)

// pendingCalls tracks one request's calls to peers that have not answered
// yet, each against its peer's per-call deadline (peerHealth.hedgeAfter),
// so that the request's loop can hedge around a peer that runs late
// instead of waiting out its RPC timeout. It belongs to the loop's
// goroutine; nothing in it is shared.
type pendingCalls struct {
	c     *Coordinator
	calls []pendingCall
	timer *time.Timer
	armed time.Time // when timer fires; zero when stopped
}

type pendingCall struct {
	id       string
	start    time.Time
	deadline time.Time
	late     bool
}

// recheckLate is how often a loop looks again at calls already late,
// waiting for their peers to be found unreachable (allGone).
const recheckLate = 50 * time.Millisecond

func (c *Coordinator) newPendingCalls(n int) *pendingCalls {
	return &pendingCalls{c: c, calls: make([]pendingCall, 0, n)}
}

// add notes a call to id made now; this node's own calls are not tracked.
func (p *pendingCalls) add(id string) {
	if id == p.c.cluster.Self() {
		return
	}
	now := p.c.cfg.Now()
	p.calls = append(p.calls, pendingCall{id: id, start: now, deadline: now.Add(p.c.health.hedgeAfter(id))})
}

// done notes id's answer (the first one, if it was called twice).
func (p *pendingCalls) done(id string) {
	for i, pc := range p.calls {
		if pc.id == id {
			p.calls = append(p.calls[:i], p.calls[i+1:]...)
			return
		}
	}
}

// wait returns a channel that fires at the next deadline of a call not
// late yet, or recheckLate from now when only late calls are left; nil
// when none is pending.
func (p *pendingCalls) wait() <-chan time.Time {
	if len(p.calls) == 0 {
		p.stop()
		return nil
	}
	var next time.Time
	for _, pc := range p.calls {
		if !pc.late && (next.IsZero() || pc.deadline.Before(next)) {
			next = pc.deadline
		}
	}
	now := p.c.cfg.Now()
	if next.IsZero() {
		next = now.Add(recheckLate)
		if !p.armed.IsZero() && p.armed.After(now) {
			next = p.armed // keep the recheck already set
		}
	}
	if p.timer == nil {
		p.timer = timerPool.Get().(*time.Timer)
		p.timer.Reset(next.Sub(now))
	} else if !next.Equal(p.armed) {
		p.timer.Reset(next.Sub(now))
	}
	p.armed = next
	return p.timer.C
}

// fired is called when wait's channel fired: it marks every call past its
// deadline late, counts it against its peer, and returns their ids.
func (p *pendingCalls) fired() []string {
	p.armed = time.Time{}
	now := p.c.cfg.Now()
	var late []string
	for i := range p.calls {
		pc := &p.calls[i]
		if !pc.late && !now.Before(pc.deadline) {
			pc.late = true
			p.c.health.missed(pc.id)
			late = append(late, pc.id)
		}
	}
	return late
}

// allGone reports whether every pending call is given up on: late and
// to a peer the coordinator now treats as unreachable (gossip says it is
// not alive, or its calls keep failing), or, when patience is not 0,
// pending for patience. Waiting longer for them is waiting out their RPC
// timeouts, after which they would count as failed anyway. False when
// nothing is pending.
func (p *pendingCalls) allGone(patience time.Duration) bool {
	if len(p.calls) == 0 {
		return false
	}
	now := p.c.cfg.Now()
	for _, pc := range p.calls {
		waited := patience > 0 && now.Sub(pc.start) >= patience
		if !pc.late || (!waited && p.c.reachable(pc.id)) {
			return false
		}
	}
	return true
}

// giveUpAfter is a context read's patience (allGone) with a peer that
// gossip and its calls still report reachable but that does not answer,
// where an answer only makes the result more complete, and how long a
// forwarded write waits for its coordinator once that one is unreachable
// (forwardTo): twice the longest per-call deadline, and well short of the
// RPC timeout (2s by default) that would otherwise end the wait. A read
// has no patience: a slow peer that is still reachable may yet make its
// quorum.
const giveUpAfter = 2 * maxHedgeAfter

// stop ends the tracking; the pendingCalls is not used after it.
func (p *pendingCalls) stop() {
	if p.timer != nil {
		// Stopped, a timer is safe to Reset again (Go 1.23 timers: no
		// stale tick is delivered after Reset), so the next request
		// reuses it rather than allocating its own.
		p.timer.Stop()
		timerPool.Put(p.timer)
		p.timer = nil
	}
	p.armed = time.Time{}
}

// timerPool holds stopped timers for pendingCalls: one per request
// otherwise.
var timerPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}
