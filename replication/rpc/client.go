package rpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/replication/rpc/transport"
	"github.com/dynkv/dynkv/vclock"
)

// Defaults applied by NewClient to zero ClientConfig fields.
const (
	DefaultTimeout    = 2 * time.Second
	DefaultRetries    = 2
	DefaultBackoff    = 20 * time.Millisecond
	DefaultMaxBackoff = 500 * time.Millisecond
	// DefaultDialTimeout bounds opening a connection: for the transport
	// that is TCP, TLS, the upgrade and the keyed handshake. It is the
	// transport's own default.
	DefaultDialTimeout = transport.DefaultDialTimeout
	// DefaultMaxCallsPerPeer stays below the 250 streams a Go HTTP/2
	// server allows a connection by default.
	DefaultMaxCallsPerPeer = 200
)

// http2FallbackFor is how long a peer that answered the transport's
// upgrade with "not supported" (a node of an older version, during a
// rolling upgrade) is called over HTTP/2 before the upgrade is tried
// again: long enough that the refused upgrade costs nothing measurable,
// short enough that an upgraded peer is soon reached the new way.
const http2FallbackFor = time.Minute

// ClientConfig configures a Client. The zero value works: the transport
// over plain TCP (h2c for the HTTP/2 fallback), no keys, no token, the
// defaults above.
type ClientConfig struct {
	// Timeout bounds each call, retries included (--rpc-timeout); default 2s.
	// The caller's context may cut it shorter. A coordinate call (a
	// forwarded write) is bounded by the caller's deadline instead, when it
	// has one: the peer coordinates the write within it. A merge batch must transfer
	// within it, so senders size batches for the slowest link.
	Timeout time.Duration
	// Retries is how many times an idempotent call is retried after a
	// transport error or an internal error on the peer; default 2, negative
	// for none. Coordinate is never retried.
	Retries int
	// Backoff is the first retry's delay, doubled per retry up to
	// MaxBackoff, each drawn uniformly from [d/2, d) so that callers who
	// failed together do not retry together.
	Backoff, MaxBackoff time.Duration
	// DialTimeout bounds opening a connection; default DefaultDialTimeout.
	DialTimeout time.Duration
	// TLS, when set, makes calls over TLS with this configuration, which
	// carries the node's client certificate for mutual TLS: the transport
	// (ALPN http/1.1, then the upgrade), or HTTP/2 over TLS (h2) for the
	// fallback. Nil means plain TCP (h2c with prior knowledge for the
	// fallback).
	TLS *tls.Config
	// AuthToken, when set, is sent as "Authorization: Bearer <token>", on
	// the transport's upgrade request and on every HTTP/2 call.
	AuthToken string
	// Keys, when set, runs the transport's keyed handshake and
	// authenticates every frame both ways (transport.Keyring, derived from
	// the gossip keys).
	Keys *transport.Keyring
	// PeerKeys, when set, signs every HTTP/2 request with its first key
	// (peerauth.go): the fallback's counterpart of Keys.
	PeerKeys *PeerKeys
	// MaxResponseBytes bounds a response; default MaxFrameBytes.
	MaxResponseBytes int64
	// MaxCallsPerPeer bounds the calls in flight to one peer over the
	// HTTP/2 fallback; more wait for a slot (within their deadline). Keep
	// it below the older peers' HTTP/2 stream limit (node:
	// --http2-max-streams): Go's HTTP/2 client in strict mode stalls calls
	// that wait for a stream slot of the shared connection (measured with
	// Go 1.26.8: 300 callers against a 20-stream server, 6,566 of 9,000
	// calls ran into their deadline), so they wait here instead. Default
	// DefaultMaxCallsPerPeer. The transport needs no such bound from its
	// caller: the peer announces its cap and the client keeps to it.
	MaxCallsPerPeer int
	// HTTP2Only makes every call over the HTTP/2 RPC, as a node of an
	// older version does: for benchmarks that compare the two and for
	// tests that play such a node.
	HTTP2Only bool
	// Logger receives the transport's connection events at debug level;
	// nil is a no-op.
	Logger *zap.Logger
}

func (c ClientConfig) withDefaults() ClientConfig {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	} else if c.Retries < 0 {
		c.Retries = 0
	}
	if c.Backoff <= 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = MaxFrameBytes
	}
	if c.MaxCallsPerPeer <= 0 {
		c.MaxCallsPerPeer = DefaultMaxCallsPerPeer
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Client makes node-to-node calls over the transport (replication/
// transport): one persistent connection per peer that multiplexes every
// concurrent call. A peer that does not speak it (a node of an older
// version) is called over HTTP/2 instead, one multiplexed connection per
// peer too. Safe for concurrent use.
type Client struct {
	cfg  ClientConfig
	rpc  *transport.Client
	h2   *http.Transport
	http *http.Client
	// scheme and auth are the HTTP/2 fallback's.
	scheme string
	auth   string
	sent   callCounters

	peersMu sync.RWMutex
	peers   map[string]*peerState // by address, built once per peer
}

// peerState is what a Client keeps per peer address.
type peerState struct {
	urls  [maxCall + 1]string // HTTP/2 URL per call
	slots chan struct{}       // HTTP/2: a token per call in flight (MaxCallsPerPeer)
	// http2Until is the time (unix nanoseconds) until which the peer is
	// called over HTTP/2: it answered the upgrade with "not supported".
	http2Until atomic.Int64
}

// http2Now reports whether the peer is to be called over HTTP/2 now.
func (p *peerState) http2Now() bool {
	u := p.http2Until.Load()
	return u != 0 && time.Now().UnixNano() < u
}

// NewClient returns a client for cfg. Close releases its connections.
func NewClient(cfg ClientConfig) *Client {
	cfg = cfg.withDefaults()
	var protocols http.Protocols
	scheme := "http"
	if cfg.TLS != nil {
		protocols.SetHTTP2(true)
		scheme = "https"
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	t := &http.Transport{
		Protocols:       &protocols,
		TLSClientConfig: cfg.TLS,
		DialContext: (&net.Dialer{
			Timeout:   cfg.DialTimeout,
			KeepAlive: 15 * time.Second,
		}).DialContext,
		// One connection per peer: HTTP/2 multiplexes the calls, and a
		// second dial by callers racing on a cold pool would only be
		// thrown away.
		MaxConnsPerHost:        1,
		IdleConnTimeout:        5 * time.Minute,
		MaxResponseHeaderBytes: 64 << 10,
		// Frames are compact already; skip gzip negotiation.
		DisableCompression: true,
		HTTP2: &http.HTTP2Config{
			// Wait for a stream slot rather than open a second connection.
			StrictMaxConcurrentRequests: true,
			// A peer that vanished without a FIN (power loss, partition)
			// is noticed by a ping instead of by every call timing out.
			SendPingTimeout: 10 * time.Second,
			PingTimeout:     5 * time.Second,
		},
	}
	c := &Client{
		cfg:    cfg,
		h2:     t,
		http:   &http.Client{Transport: t},
		scheme: scheme,
		peers:  make(map[string]*peerState),
	}
	if !cfg.HTTP2Only {
		c.rpc = transport.NewClient(transport.ClientConfig{
			TLS:           cfg.TLS,
			Keys:          cfg.Keys,
			AuthToken:     cfg.AuthToken,
			DialTimeout:   cfg.DialTimeout,
			MaxFrameBytes: int(min(cfg.MaxResponseBytes, MaxFrameBytes)),
			// After a failed dial the transport fails a peer's calls at
			// once until its redial backoff ends. It must end within
			// this client's own retries (their waits add up to at least
			// 1.5 x Backoff before the last one), so that a call that
			// finds its peer back (restarted, and already alive to the
			// failure detector) reaches it by its last retry, as the
			// HTTP/2 RPC, which dialled afresh for every call, did. A
			// dead peer still costs at most a dial per Backoff.
			RedialBackoff:  max(cfg.Backoff/4, time.Millisecond),
			MaxRedialDelay: cfg.Backoff,
			Logger:         cfg.Logger,
		})
	}
	if cfg.AuthToken != "" {
		c.auth = "Bearer " + cfg.AuthToken
	}
	return c
}

// peer returns the state of addr, built on its first call.
func (c *Client) peer(addr string) *peerState {
	c.peersMu.RLock()
	p := c.peers[addr]
	c.peersMu.RUnlock()
	if p != nil {
		return p
	}
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	// Another caller may have built it meanwhile: one semaphore per peer.
	if p = c.peers[addr]; p == nil {
		p = &peerState{slots: make(chan struct{}, c.cfg.MaxCallsPerPeer)}
		for id := Call(1); id <= maxCall; id++ {
			p.urls[id] = c.scheme + "://" + addr + PathPrefix + calls[id].name
		}
		c.peers[addr] = p
	}
	return p
}

// Close closes the transport's connections (calls in flight fail) and
// the idle HTTP/2 ones, and waits for the transport's goroutines.
func (c *Client) Close() {
	if c.rpc != nil {
		_ = c.rpc.Close()
	}
	c.h2.CloseIdleConnections()
}

// ClientStats are a Client's counters, for metrics.
type ClientStats struct {
	// Calls counts the calls sent (each attempt, retries included), by
	// call and path.
	Calls []CallCount
	// Transport is the transport's own (connections, dials).
	Transport transport.ClientStats
	// HTTP2Peers is how many peers are called over the HTTP/2 fallback
	// now (they answered the upgrade with "not supported").
	HTTP2Peers int
}

// Stats returns the client's counters.
func (c *Client) Stats() ClientStats {
	st := ClientStats{Calls: c.sent.counts()}
	if c.rpc != nil {
		st.Transport = c.rpc.Stats()
	}
	c.peersMu.RLock()
	for _, p := range c.peers {
		if p.http2Now() {
			st.HTTP2Peers++
		}
	}
	c.peersMu.RUnlock()
	return st
}

// Get reads a replica's state of a key; found is false when it holds no
// record.
func (c *Client) Get(ctx context.Context, addr string, db int, key []byte) (vclock.Set, bool, error) {
	resp, err := c.Invoke(ctx, addr, CallGet, encodeGetRequest(getRequest{DB: db, Key: key}))
	if err != nil {
		return vclock.Set{}, false, err
	}
	r, err := decodeGetResponse(resp)
	if err != nil {
		return vclock.Set{}, false, fmt.Errorf("replication: get at %s: response: %w", addr, err)
	}
	return r.Set, r.Found, nil
}

// Merge merges s into a replica's state of a key, durably (in that replica's
// WAL) before it returns nil.
func (c *Client) Merge(ctx context.Context, addr string, db int, key []byte, s vclock.Set) error {
	resp, err := c.Invoke(ctx, addr, CallMerge, encodeMergeRequest(mergeRequest{DB: db, Key: key, Set: s}))
	if err != nil {
		return err
	}
	if err := DecodeAck(resp); err != nil {
		return fmt.Errorf("replication: merge at %s: response: %w", addr, err)
	}
	return nil
}

// MergeCovering merges s into a replica's state of a key, durably, only if
// s's context covers every write the replica holds for it; covered says
// whether it did. When it did not, nothing was written and held is the
// replica's context for the key.
func (c *Client) MergeCovering(ctx context.Context, addr string, db int, key []byte, s vclock.Set) (covered bool, held vclock.Context, err error) {
	resp, err := c.Invoke(ctx, addr, CallCover, encodeCoverRequest(mergeRequest{DB: db, Key: key, Set: s}))
	if err != nil {
		return false, vclock.Context{}, err
	}
	r, err := decodeCoverResult(resp)
	if err != nil {
		return false, vclock.Context{}, fmt.Errorf("replication: merge-covering at %s: response: %w", addr, err)
	}
	return r.Covered, r.Held, nil
}

// MergeBatch merges items into a replica, in order. On failure at the peer
// the *RemoteError's Index names the first item that failed; every item
// before it is applied. At most MaxBatchItems items and MaxFrameBytes.
func (c *Client) MergeBatch(ctx context.Context, addr string, items []Item) error {
	body, err := encodeMergeBatchRequest(items)
	if err != nil {
		return err
	}
	resp, err := c.Invoke(ctx, addr, CallMergeBatch, body)
	if err != nil {
		return err
	}
	if err := DecodeAck(resp); err != nil {
		return fmt.Errorf("replication: merge-batch at %s: response: %w", addr, err)
	}
	return nil
}

// Coordinate hands a write to the replica at addr, which coordinates it.
// Never retried: a second delivery would mint a second version. An error
// wrapping ErrUnreachable means the write was not delivered; any other
// transport error leaves it indeterminate.
func (c *Client) Coordinate(ctx context.Context, addr string, req WriteRequest) (WriteResult, error) {
	resp, err := c.Invoke(ctx, addr, CallCoordinate, encodeCoordinateRequest(req))
	if err != nil {
		return WriteResult{}, err
	}
	res, err := decodeCoordinateResult(resp)
	if err != nil {
		return WriteResult{}, fmt.Errorf("replication: coordinate at %s: response: %w", addr, err)
	}
	return res, nil
}

// Invoke sends body as call id to addr and returns the response: over the
// transport, or over HTTP/2 to a peer that does not speak it. It retries
// an idempotent call (calls.go) whose failure may pass, with jittered
// exponential backoff, within ClientConfig.Timeout: the one retry loop of
// every node-to-node call, the rooms' (hints, antientropy) included.
func (c *Client) Invoke(ctx context.Context, addr string, id Call, body []byte) ([]byte, error) {
	if _, has := ctx.Deadline(); !has || !calls[id].wholeRequest {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	retries := 0
	if calls[id].idempotent {
		retries = c.cfg.Retries
	}
	p := c.peer(addr)
	for attempt := 0; ; attempt++ {
		resp, retry, err := c.attempt(ctx, p, addr, id, body)
		if err == nil {
			return resp, nil
		}
		if !retry || attempt >= retries {
			return nil, err
		}
		if werr := c.wait(ctx, attempt); werr != nil {
			return nil, err // the last real failure says more than the deadline
		}
	}
}

// attempt makes one call; retry says whether the failure is worth another
// attempt of an idempotent call.
func (c *Client) attempt(ctx context.Context, p *peerState, addr string, id Call, body []byte) ([]byte, bool, error) {
	if c.rpc != nil && !p.http2Now() {
		resp, err := c.rpc.Call(ctx, addr, byte(id), body)
		if err == nil {
			c.sent.add(id, false)
			return resp, false, nil
		}
		retry, older, err := c.transportError(ctx, addr, id, err)
		if !older {
			c.sent.add(id, false)
			return nil, retry, err
		}
		// A node of an older version: HTTP/2 for a while, starting now.
		p.http2Until.Store(time.Now().Add(http2FallbackFor).UnixNano())
		c.cfg.Logger.Debug("peer does not speak the transport: calling it over HTTP/2",
			zap.String("peer", addr), zap.Duration("for", http2FallbackFor))
	}
	c.sent.add(id, true)
	return c.attemptHTTP2(ctx, p, addr, id, body)
}

// transportError maps a failed transport call onto the errors callers
// branch on, as the HTTP/2 path reports them: the error, whether it is
// worth another attempt of an idempotent call, and whether the peer is an
// older node to call over HTTP/2 instead (then the error is nil).
//
// Order matters: a handler's failure first (the peer ran the call), then
// the caller's own deadline (never retried), then the reasons that decide
// more than whether the call was delivered (unauthorized, too large: no
// retry will do; busy or draining: unavailable, certainly not run, so a
// coordinator may try the next replica), then not delivered (unreachable:
// safe to send elsewhere) and last outcome unknown: the peer may have run
// it, so a coordinate must not be sent again (a write delivered twice mints
// two dots), and a coordinator does not move on (tryNext).
func (c *Client) transportError(ctx context.Context, addr string, id Call, err error) (retry, older bool, _ error) {
	name := calls[id].name
	var te *transport.Error
	switch {
	case errors.As(err, &te):
		f, derr := decodeError(te.Detail)
		if derr != nil {
			// Not one of ours: a handler that panicked (the transport
			// reports it in words) or a peer of another version.
			f = errorFrame{Code: CodeInternal, Index: -1,
				Message: fmt.Sprintf("transport error code %d without a readable error frame (%v): %.200q", te.Code, derr, te.Detail)}
		}
		if f.Code == CodeInternal && expired(ctx) {
			// The caller's deadline travels with the request, so the
			// handler ran out of the same time, and its failure races
			// the caller's own timer: report the deadline, as a peer
			// that did not answer in time.
			cause := context.Cause(ctx)
			if cause == nil {
				cause = context.DeadlineExceeded // its timer has not run yet
			}
			return false, false, fmt.Errorf("replication: %s at %s: %w (the peer: %s)", name, addr, cause, f.Message)
		}
		return f.Code.retryable(), false, newRemoteError(addr, name, f)
	case ctx.Err() != nil:
		if cause := context.Cause(ctx); !errors.Is(err, cause) {
			return false, false, fmt.Errorf("replication: %s at %s: %w (%v)", name, addr, cause, err)
		}
		return false, false, fmt.Errorf("replication: %s at %s: %w", name, addr, err)
	case errors.Is(err, transport.ErrUnauthorized):
		return false, false, newRemoteError(addr, name, errorFrame{Code: CodeUnauthorized, Message: err.Error(), Index: -1})
	case errors.Is(err, transport.ErrFrameTooLarge):
		return false, false, fmt.Errorf("replication: %s at %s: %w: %w", name, addr, ErrBadRequest, err)
	case errors.Is(err, transport.ErrNotSupported):
		return false, true, nil
	case errors.Is(err, transport.ErrNotDelivered) &&
		(errors.Is(err, transport.ErrBusy) || errors.Is(err, transport.ErrShuttingDown)):
		return true, false, fmt.Errorf("replication: %s at %s: %w: %w", name, addr, ErrUnavailable, err)
	case errors.Is(err, transport.ErrNotDelivered):
		return true, false, fmt.Errorf("replication: %s at %s: %w: %w", name, addr, ErrUnreachable, err)
	default: // transport.ErrOutcomeUnknown
		return true, false, fmt.Errorf("replication: %s at %s: %w", name, addr, err)
	}
}

// expired reports whether ctx is done or past its deadline (its timer
// may not have run yet).
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// attemptHTTP2 makes one request over the HTTP/2 RPC.
func (c *Client) attemptHTTP2(ctx context.Context, p *peerState, addr string, id Call, body []byte) ([]byte, bool, error) {
	name, url, slots := calls[id].name, p.urls[id], p.slots
	select {
	case slots <- struct{}{}:
		// Released after the response body is read and closed (the
		// deferred Close below runs first), when the stream is done.
		defer func() { <-slots }()
	case <-ctx.Done():
		return nil, false, fmt.Errorf("replication: %s at %s: waiting for one of %d call slots: %w",
			name, addr, cap(slots), context.Cause(ctx))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, false, fmt.Errorf("replication: %s at %s: %w", name, addr, err)
	}
	req.Header["Content-Type"] = []string{contentType}
	if c.auth != "" {
		req.Header["Authorization"] = []string{c.auth}
	}
	if c.cfg.PeerKeys != nil {
		// Signed per attempt: a retry gets a fresh time and nonce.
		if err := c.cfg.PeerKeys.Sign(req, body, time.Now()); err != nil {
			return nil, false, fmt.Errorf("replication: %s at %s: %w", name, addr, err)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("replication: %s at %s: %w", name, addr, context.Cause(ctx))
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, true, fmt.Errorf("replication: %s at %s: %w: %w", name, addr, ErrUnreachable, err)
		}
		return nil, true, fmt.Errorf("replication: %s at %s: %w", name, addr, err)
	}
	defer resp.Body.Close()
	b, err := readBody(resp.Body, resp.ContentLength, c.cfg.MaxResponseBytes)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("replication: %s at %s: reading response: %w", name, addr, context.Cause(ctx))
		}
		return nil, true, fmt.Errorf("replication: %s at %s: reading response (status %d): %w", name, addr, resp.StatusCode, err)
	}
	if resp.StatusCode == http.StatusOK {
		return b, false, nil
	}
	f, derr := decodeError(b)
	if derr != nil {
		// Not one of ours (a proxy, a peer of another version): judge by
		// the status alone.
		f = errorFrame{Code: codeOfStatus(resp.StatusCode), Index: -1,
			Message: "status " + strconv.Itoa(resp.StatusCode) + " without a readable error frame: " + derr.Error()}
	}
	return nil, f.Code.retryable(), newRemoteError(addr, name, f)
}

// codeOfStatus judges a failed response that carries no error frame, such
// as the node's own JSON answer from a middleware in front of the handler
// (auth, load shedding) or a proxy's.
func codeOfStatus(status int) ErrorCode {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return CodeUnauthorized
	case status == http.StatusTooManyRequests || status == http.StatusBadGateway ||
		status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
		return CodeUnavailable
	case status >= 500:
		return CodeInternal
	default:
		return CodeBadRequest
	}
}

// wait sleeps the jittered backoff before retry attempt+1.
func (c *Client) wait(ctx context.Context, attempt int) error {
	d := c.cfg.Backoff << attempt
	if d > c.cfg.MaxBackoff || d <= 0 {
		d = c.cfg.MaxBackoff
	}
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
