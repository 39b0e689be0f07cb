// Package authguard is one node's record of failed client authentications
// (HTTP bearer tokens, Redis AUTH), shared by both front ends, and the
// accepted tokens themselves.
package authguard

import (
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynkv/dynkv/node/metrics"

	"go.uber.org/zap"
)

// Failed client authentication (HTTP bearer tokens, Redis AUTH): each wrong
// token is answered after a delay that grows with the failures of its
// source address, so that guessing a token costs time; a Redis connection
// is closed after a few failures; and failures are logged at most once per
// source per interval, with their count.
const (
	// The delay of a wrong token: authDelayBase, doubling every two
	// failures of its source (or of its Redis connection, if more), up to
	// authDelayMax, reached at the 17th failure.
	authDelayBase = 5 * time.Millisecond
	authDelayMax  = time.Second
	// authDecay: a source's failure count halves for every authDecay
	// without a failure.
	authDecay = 10 * time.Second
	// CloseAfter failures close a Redis connection (after the reply to
	// the last).
	CloseAfter = 5
	// authMaxSources bounds the table of sources; beyond it the least
	// recently failing one is forgotten.
	authMaxSources = 10000
	// authMaxPending bounds the answers being delayed at once, and
	// authMaxPendingPerSource those of one source. A source at its
	// bound, or any source with failures while the node is at its, is
	// refused without its token being checked (HTTP 429, Redis closes):
	// the delay cannot pile up goroutines, and parallel guesses from one
	// address cannot outrun it, since a refusal says nothing about the
	// token.
	authMaxPending          = 1024
	authMaxPendingPerSource = 8
	// authLogEvery is the least time between two warnings about one
	// source; authLogMaxPerInterval bounds the warnings of all sources
	// together in one such interval.
	authLogEvery          = 10 * time.Second
	authLogMaxPerInterval = 100
)

// ThrottledMessage answers an authentication refused without its token
// being checked (HTTP 429; Redis "ERR ..." and closes).
const ThrottledMessage = "too many failed authentications from this address: retry later"

// Guard is one node's record of failed authentications, shared by HTTP
// and the Redis protocol.
type Guard struct {
	log *zap.Logger
	m   *metrics.Limits
	now func() time.Time

	// pending is the number of delayed answers; while it is zero,
	// throttled does not take the lock.
	pending atomic.Int64

	mu      sync.Mutex
	sources map[string]*list.Element // of *authSource
	lru     list.List                // most recent failure first
	// The warnings of the current interval, of every source.
	logWindow time.Time
	logged    int
}

// authSource is what the guard knows of one source address.
type authSource struct {
	key       string
	fails     int       // wrong tokens, decayed
	last      time.Time // the last wrong token
	pending   int       // answers being delayed
	unlogged  int       // failures since the last warning
	throttled int       // refusals since the last warning
	loggedAt  time.Time // the last warning
}

// New is a guard that logs to log and counts in m.
func New(log *zap.Logger, m *metrics.Limits) *Guard {
	return &Guard{log: log, m: m, now: time.Now, sources: make(map[string]*list.Element)}
}

// SourceOf is the source key of a remote address: the IP, or for IPv6
// its /64, which one host usually holds whole.
func SourceOf(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.String()
		}
	}
	return a.String()
}

// delayFor is the delay of the nth failure.
func delayFor(n int) time.Duration {
	if n < 1 {
		return 0
	}
	steps := (n - 1) / 2
	if steps >= 8 {
		return authDelayMax
	}
	return min(authDelayBase<<steps, authDelayMax)
}

// entry finds or adds src, most recent first, forgetting the least recent
// beyond authMaxSources. mu is held.
func (g *Guard) entry(src string) *authSource {
	if el, ok := g.sources[src]; ok {
		g.lru.MoveToFront(el)
		return el.Value.(*authSource)
	}
	for g.lru.Len() >= authMaxSources {
		old := g.lru.Back()
		g.lru.Remove(old)
		delete(g.sources, old.Value.(*authSource).key)
	}
	e := &authSource{key: src}
	g.sources[src] = g.lru.PushFront(e)
	return e
}

// Throttled tells whether an attempt from src is refused before its token
// is checked: src has authMaxPendingPerSource answers being delayed, or
// the node has authMaxPending and src has failed before. It counts the
// refusal.
func (g *Guard) Throttled(protocol, src string) bool {
	if g.pending.Load() == 0 {
		return false
	}
	g.mu.Lock()
	el, ok := g.sources[src]
	refuse := false
	if ok {
		e := el.Value.(*authSource)
		refuse = e.pending >= authMaxPendingPerSource || g.pending.Load() >= authMaxPending && e.fails > 0
		if refuse {
			e.throttled++
		}
	}
	g.mu.Unlock()
	if refuse {
		g.m.AuthThrottled.WithLabelValues(protocol).Inc()
	}
	return refuse
}

// Fail records a failed authentication from src and, when guess (a token
// was presented: a missing one guesses nothing), waits before the caller
// answers it, until ctx ends at the latest. connFails is the failures of
// the caller's connection so far, this one included (0 for HTTP). It
// reports false when no delay could be afforded (too many pending): the
// caller then answers as a throttled attempt, which tells nothing about
// the token either.
func (g *Guard) Fail(ctx context.Context, protocol, src string, connFails int, guess bool) bool {
	now := g.now()
	g.m.AuthFailures.WithLabelValues(protocol).Inc()
	g.mu.Lock()
	e := g.entry(src)
	var delay time.Duration
	afforded := true
	if guess {
		if halvings := now.Sub(e.last) / authDecay; halvings > 0 {
			e.fails >>= min(halvings, 62)
		}
		e.fails++
		e.last = now
		delay = delayFor(max(e.fails, connFails))
		if e.pending >= authMaxPendingPerSource || g.pending.Load() >= authMaxPending {
			afforded, delay = false, 0
			e.throttled++
		} else {
			e.pending++
			g.pending.Add(1)
		}
	}
	e.unlogged++
	var warn []zap.Field
	if now.Sub(e.loggedAt) >= authLogEvery && g.mayLog(now) {
		warn = []zap.Field{zap.String("source", src), zap.String("protocol", protocol),
			zap.Int("failures", e.unlogged), zap.Int("throttled", e.throttled),
			zap.Duration("delay", delay), zap.Duration("interval", authLogEvery)}
		e.unlogged, e.throttled, e.loggedAt = 0, 0, now
	}
	g.mu.Unlock()
	if warn != nil {
		g.log.Warn("authentication failures: missing or wrong client token", warn...)
	}
	if !afforded {
		g.m.AuthThrottled.WithLabelValues(protocol).Inc()
		return false
	}
	if delay > 0 {
		g.m.AuthDelayed.WithLabelValues(protocol).Inc()
		g.m.AuthPending.Inc()
		start := time.Now()
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		g.m.AuthDelaySeconds.WithLabelValues(protocol).Add(time.Since(start).Seconds())
		g.m.AuthPending.Dec()
		g.mu.Lock()
		// The entry may have been forgotten meanwhile; it is still
		// the one this attempt counted on.
		e.pending--
		g.mu.Unlock()
		g.pending.Add(-1)
	}
	return true
}

// mayLog takes one of the interval's warnings. mu is held.
func (g *Guard) mayLog(now time.Time) bool {
	if now.Sub(g.logWindow) >= authLogEvery {
		g.logWindow, g.logged = now, 0
	}
	if g.logged >= authLogMaxPerInterval {
		return false
	}
	g.logged++
	return true
}

// PresentsBearer tells whether an Authorization header carries a bearer
// token at all: only such a request can guess one.
func PresentsBearer(header string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	return ok && strings.EqualFold(scheme, "Bearer") && token != ""
}

// Tokens are the sha256 digests of the accepted client tokens
// (--auth-token); none means authentication is off.
type Tokens [][32]byte

// HashTokens digests tokens.
func HashTokens(tokens []string) Tokens {
	var out Tokens
	for _, t := range tokens {
		out = append(out, sha256.Sum256([]byte(t)))
	}
	return out
}

// Valid tells whether secret is one of the tokens. Comparing fixed-size
// digests keeps the comparison constant-time regardless of the secret's
// length, so the time taken says nothing about the tokens.
func (ts Tokens) Valid(secret []byte) bool {
	sum := sha256.Sum256(secret)
	valid := 0
	for _, t := range ts {
		valid |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	return valid == 1
}

// ValidBearer tells whether an Authorization header carries one of the
// tokens as a bearer token.
func (ts Tokens) ValidBearer(header string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return false
	}
	return ts.Valid([]byte(token))
}

// HoldPending makes src look as if as many of its wrong tokens were being
// delayed as a source may have, so that tests can reach the throttle
// without waiting out real delays; release undoes it.
func (g *Guard) HoldPending(src string) (release func()) {
	const n = authMaxPendingPerSource
	g.mu.Lock()
	g.entry(src).pending += n
	g.mu.Unlock()
	g.pending.Add(int64(n))
	return func() {
		g.mu.Lock()
		g.entry(src).pending -= n
		g.mu.Unlock()
		g.pending.Add(int64(-n))
	}
}
