package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynkv/dynkv/internal/defaults"
	"go.uber.org/zap"
)

// Client defaults, applied to zero ClientConfig fields.
const (
	DefaultDialTimeout     = 2 * time.Second
	DefaultMaxCallsPerConn = 1024
	DefaultPingInterval    = 10 * time.Second
	DefaultWriteTimeout    = 10 * time.Second
	DefaultRedialBackoff   = 50 * time.Millisecond
	DefaultMaxRedialDelay  = 2 * time.Second
)

// ClientConfig configures a Client. The zero value works: plain TCP, no
// keys, no token, the defaults above.
type ClientConfig struct {
	// TLS, when set, wraps every connection in TLS with this
	// configuration (its certificates make mutual TLS). The client offers
	// only ALPN "http/1.1", which the upgrade needs; ServerName defaults
	// to the host of the address called.
	TLS *tls.Config
	// Keys, when set, runs the keyed handshake and MACs every frame.
	Keys *Keyring
	// AuthToken, when set, is sent as "Authorization: Bearer <token>" with
	// the upgrade request (the peer's Server.Authorize checks it).
	AuthToken string
	// Path is the upgrade request's path; default DefaultPath.
	Path string
	// DialTimeout bounds opening a connection: TCP, TLS, upgrade and
	// handshake. Default 2s.
	DialTimeout time.Duration
	// MaxFrameBytes is the largest response payload accepted, announced
	// to the server; default DefaultMaxFrameBytes. Requests are bounded
	// by the server's own announced limit.
	MaxFrameBytes int
	// MaxCallsPerConn bounds the calls in flight on one connection; more
	// wait for a slot within their context. The server announces its own
	// cap (Server.MaxConcurrentCalls) and the lower of the two applies,
	// so peers need not be configured alike. Default 1024.
	MaxCallsPerConn int
	// ConnsPerPeer is how many connections are kept to each address,
	// calls spread round-robin over them; default 1.
	ConnsPerPeer int
	// PingInterval: a connection sends a ping this often and is closed
	// when the previous one is still unanswered, so a peer that vanished
	// without a FIN is noticed within two intervals. Default 10s;
	// negative disables.
	PingInterval time.Duration
	// WriteTimeout bounds one write of a batch of frames: a peer that
	// stops reading is disconnected. Default 10s.
	WriteTimeout time.Duration
	// RedialBackoff is the delay after a failed dial before the next one,
	// doubled per consecutive failure up to MaxRedialDelay, jittered; calls
	// in between fail at once with the last dial error. Defaults 50ms, 2s.
	RedialBackoff, MaxRedialDelay time.Duration
	// Dial opens the TCP connection; default a net.Dialer with a 15s
	// keep-alive.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives connection events at debug level; nil is a no-op.
	Logger *zap.Logger
}

func (c ClientConfig) withDefaults() ClientConfig {
	defaults.Set(&c.Path, DefaultPath)
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.MaxFrameBytes > maxFrameLimit {
		c.MaxFrameBytes = maxFrameLimit
	}
	if c.MaxCallsPerConn <= 0 {
		c.MaxCallsPerConn = DefaultMaxCallsPerConn
	}
	if c.ConnsPerPeer <= 0 {
		c.ConnsPerPeer = 1
	}
	defaults.Set(&c.PingInterval, DefaultPingInterval)
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.RedialBackoff <= 0 {
		c.RedialBackoff = DefaultRedialBackoff
	}
	if c.MaxRedialDelay <= 0 {
		c.MaxRedialDelay = DefaultMaxRedialDelay
	}
	if c.Dial == nil {
		c.Dial = (&net.Dialer{KeepAlive: 15 * time.Second}).DialContext
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Client makes calls to peers over persistent connections, lazily dialled
// per address, redialled after a failure, multiplexing every concurrent
// call. Safe for concurrent use. Close stops its goroutines.
type Client struct {
	cfg    ClientConfig
	ctx    context.Context // cancelled by Close: aborts dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // dials and connection goroutines
	closed atomic.Bool

	dials, dialFailures atomic.Uint64

	mu    sync.Mutex                       // serialises writers of peers
	peers atomic.Pointer[map[string]*peer] // copy on write: lock-free lookups
}

// NewClient returns a client for cfg.
func NewClient(cfg ClientConfig) *Client {
	c := &Client{cfg: cfg.withDefaults()}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	m := map[string]*peer{}
	c.peers.Store(&m)
	return c
}

// Call sends payload as call to the peer at addr and returns its
// response. payload is not modified and not referenced after Call
// returns. The context's deadline travels with the request, so the peer's
// handler stops when the caller does. Errors: an *Error from the peer's
// handler; otherwise one wrapping ErrNotDelivered (never run: safe to send
// elsewhere) or ErrOutcomeUnknown, together with the reason (a context
// error, ErrUnauthorized, ErrBusy, ...).
func (c *Client) Call(ctx context.Context, addr string, call byte, payload []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("transport: call %d to %s: %w: %w", call, addr, ErrNotDelivered, context.Cause(ctx))
	}
	s := c.peer(addr).pick()
	for attempt := 0; ; attempt++ {
		cn, err := s.get(ctx)
		if err != nil {
			return nil, fmt.Errorf("transport: call %d to %s: %w", call, addr, err)
		}
		resp, err := cn.call(ctx, call, payload)
		if errors.Is(err, errConnGone) && attempt < 2 {
			continue // it closed or drains before the call was queued
		}
		if err != nil {
			var re *Error
			if errors.As(err, &re) {
				return nil, err
			}
			return nil, fmt.Errorf("transport: call %d to %s: %w", call, addr, err)
		}
		return resp, nil
	}
}

// Close closes every connection (calls in flight fail) and waits for the
// client's goroutines.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.cancel()
	c.mu.Lock()
	peers := *c.peers.Load()
	c.mu.Unlock()
	for _, p := range peers {
		for _, s := range p.slots {
			s.mu.Lock()
			cn := s.cur.Load()
			s.mu.Unlock()
			if cn != nil {
				cn.l.close(ErrClosed)
			}
		}
	}
	c.wg.Wait()
	return nil
}

// ClientStats are a Client's counters since it started, for metrics.
type ClientStats struct {
	Conns        int    // connections open
	Dials        uint64 // connections opened (handshake done)
	DialFailures uint64 // dials, upgrades or handshakes that failed
}

// Stats returns the client's counters.
func (c *Client) Stats() ClientStats {
	st := ClientStats{Dials: c.dials.Load(), DialFailures: c.dialFailures.Load()}
	for _, p := range *c.peers.Load() {
		for _, s := range p.slots {
			if cn := s.cur.Load(); cn != nil && cn.open.Load() {
				st.Conns++
			}
		}
	}
	return st
}

// peer is what the client keeps per address.
type peer struct {
	slots []*slot
	next  atomic.Uint32
}

func (c *Client) peer(addr string) *peer {
	if p := (*c.peers.Load())[addr]; p != nil {
		return p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.peers.Load()
	if p := old[addr]; p != nil {
		return p
	}
	p := &peer{slots: make([]*slot, c.cfg.ConnsPerPeer)}
	for i := range p.slots {
		p.slots[i] = &slot{c: c, addr: addr}
	}
	m := make(map[string]*peer, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[addr] = p
	c.peers.Store(&m)
	return p
}

func (p *peer) pick() *slot {
	if len(p.slots) == 1 {
		return p.slots[0]
	}
	return p.slots[int(p.next.Add(1))%len(p.slots)]
}

// slot is one of a peer's connections: the live one, or the dial that
// will replace it, and the backoff after failed dials.
type slot struct {
	c    *Client
	addr string
	cur  atomic.Pointer[clientConn] // the connection in use; read without mu

	mu      sync.Mutex
	dialing chan struct{} // closed when the dial in progress ends
	err     error         // the last dial's failure, until retryAt
	retryAt time.Time
	backoff time.Duration
}

// get returns a usable connection, dialling one if need be; concurrent
// callers share one dial. Errors wrap ErrNotDelivered.
func (s *slot) get(ctx context.Context) (*clientConn, error) {
	if cn := s.cur.Load(); cn != nil && cn.usable.Load() {
		return cn, nil
	}
	for {
		s.mu.Lock()
		if cn := s.cur.Load(); cn != nil && cn.usable.Load() {
			s.mu.Unlock()
			return cn, nil
		}
		if s.c.closed.Load() {
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: %w", ErrNotDelivered, ErrClosed)
		}
		if s.dialing == nil {
			if time.Now().Before(s.retryAt) {
				err := s.err
				s.mu.Unlock()
				return nil, err
			}
			s.dialing = make(chan struct{})
			s.c.wg.Add(1)
			go s.dial(s.dialing)
		}
		ch := s.dialing
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waiting for a connection: %w", ErrNotDelivered, context.Cause(ctx))
		}
		s.mu.Lock()
		err := s.err
		cn := s.cur.Load()
		s.mu.Unlock()
		if cn == nil || !cn.usable.Load() {
			if err == nil {
				err = fmt.Errorf("%w: the new connection closed at once", ErrNotDelivered)
			}
			return nil, err
		}
		return cn, nil
	}
}

// dial is a goroutine owned by the client: it replaces the slot's
// connection, or records the failure and the next time to try.
func (s *slot) dial(done chan struct{}) {
	defer s.c.wg.Done()
	cn, err := s.c.dial(s.c.ctx, s.addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	defer close(done)
	s.dialing = nil
	if err == nil && s.c.closed.Load() {
		cn.l.close(ErrClosed)
		err = fmt.Errorf("%w: %w", ErrNotDelivered, ErrClosed)
	}
	if err != nil {
		s.c.dialFailures.Add(1)
		s.backoff = min(max(2*s.backoff, s.c.cfg.RedialBackoff), s.c.cfg.MaxRedialDelay)
		s.retryAt = time.Now().Add(s.backoff/2 + rand.N(s.backoff/2+1))
		s.err = err
		s.c.cfg.Logger.Debug("rpc dial failed", zap.String("peer", s.addr), zap.Error(err))
		return
	}
	s.c.dials.Add(1)
	s.backoff, s.err, s.retryAt = 0, nil, time.Time{}
	s.cur.Store(cn)
	cn.start()
}
