package replication

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
	"time"

	"github.com/dynkv/dynkv/vclock"
)

// Defaults applied by NewClient to zero ClientConfig fields.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultRetries     = 2
	DefaultBackoff     = 20 * time.Millisecond
	DefaultMaxBackoff  = 500 * time.Millisecond
	DefaultDialTimeout = time.Second
	// DefaultMaxCallsPerPeer stays below the 250 streams a Go HTTP/2
	// server allows a connection by default.
	DefaultMaxCallsPerPeer = 200
)

// ClientConfig configures a Client. The zero value works: h2c, no token,
// the defaults above.
type ClientConfig struct {
	// Timeout bounds each call, retries included (--rpc-timeout); default 2s.
	// The caller's context may cut it shorter. A merge batch must transfer
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
	// DialTimeout bounds opening a connection; default 1s.
	DialTimeout time.Duration
	// TLS, when set, makes calls HTTP/2 over TLS (https) with this
	// configuration, which carries the node's client certificate for mutual
	// TLS. Nil means h2c with prior knowledge.
	TLS *tls.Config
	// AuthToken, when set, is sent as "Authorization: Bearer <token>".
	AuthToken string
	// PeerKeys, when set, signs every request with its first key
	// (peerauth.go).
	PeerKeys *PeerKeys
	// MaxResponseBytes bounds a response body; default MaxFrameBytes.
	MaxResponseBytes int64
	// MaxCallsPerPeer bounds the calls in flight to one peer; more wait
	// for a slot (within their deadline). Keep it below the peers' HTTP/2
	// stream limit (node: --http2-max-streams): Go's HTTP/2 client in
	// strict mode stalls calls that wait for a stream slot of the shared
	// connection (measured with Go 1.26.8: 300 callers against a 20-stream
	// server, 6,566 of 9,000 calls ran into their deadline), so they wait
	// here instead. Default DefaultMaxCallsPerPeer.
	MaxCallsPerPeer int
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
	return c
}

// Client makes node-to-node calls. It keeps one HTTP/2 connection per peer
// and multiplexes every concurrent call over it. Safe for concurrent use.
type Client struct {
	cfg       ClientConfig
	transport *http.Transport
	http      *http.Client
	scheme    string
	auth      string

	peersMu sync.RWMutex
	peers   map[string]*peerState // by address, built once per peer
}

// peerState is what a Client keeps per peer address.
type peerState struct {
	urls  [4]string     // URL per call of callNames
	slots chan struct{} // a token per call in flight (MaxCallsPerPeer)
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
		cfg:       cfg,
		transport: t,
		http:      &http.Client{Transport: t},
		scheme:    scheme,
		peers:     make(map[string]*peerState),
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
		for j, name := range callNames {
			p.urls[j] = c.scheme + "://" + addr + PathPrefix + name
		}
		c.peers[addr] = p
	}
	return p
}

// Close closes the idle connections; calls in flight finish.
func (c *Client) Close() {
	c.transport.CloseIdleConnections()
}

// Get reads a replica's state of a key; found is false when it holds no
// record.
func (c *Client) Get(ctx context.Context, addr string, db int, key []byte) (vclock.Set, bool, error) {
	resp, err := c.call(ctx, addr, 0, encodeGetRequest(getRequest{DB: db, Key: key}), true)
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
	resp, err := c.call(ctx, addr, 1, encodeMergeRequest(mergeRequest{DB: db, Key: key, Set: s}), true)
	if err != nil {
		return err
	}
	if err := decodeAck(resp); err != nil {
		return fmt.Errorf("replication: merge at %s: response: %w", addr, err)
	}
	return nil
}

// MergeBatch merges items into a replica, in order. On failure at the peer
// the *RemoteError's Index names the first item that failed; every item
// before it is applied. At most MaxBatchItems items and MaxFrameBytes.
func (c *Client) MergeBatch(ctx context.Context, addr string, items []Item) error {
	body, err := encodeMergeBatchRequest(items)
	if err != nil {
		return err
	}
	resp, err := c.call(ctx, addr, 2, body, true)
	if err != nil {
		return err
	}
	if err := decodeAck(resp); err != nil {
		return fmt.Errorf("replication: merge-batch at %s: response: %w", addr, err)
	}
	return nil
}

// Coordinate hands a write to the replica at addr, which coordinates it.
// Never retried: a second delivery would mint a second version. An error
// wrapping ErrUnreachable means the write was not delivered; any other
// transport error leaves it indeterminate.
func (c *Client) Coordinate(ctx context.Context, addr string, req WriteRequest) (WriteResult, error) {
	resp, err := c.call(ctx, addr, 3, encodeCoordinateRequest(req), false)
	if err != nil {
		return WriteResult{}, err
	}
	res, err := decodeCoordinateResult(resp)
	if err != nil {
		return WriteResult{}, fmt.Errorf("replication: coordinate at %s: response: %w", addr, err)
	}
	return res, nil
}

var callNames = [4]string{callGet, callMerge, callMergeBatch, callCoordinate}

// url returns the URL of call i at addr.
func (c *Client) url(addr string, i int) string { return c.peer(addr).urls[i] }

// call posts body to call i at addr and returns the response body of a 200.
func (c *Client) call(ctx context.Context, addr string, i int, body []byte, idempotent bool) ([]byte, error) {
	name := callNames[i]
	url := c.url(addr, i)
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	retries := 0
	if idempotent {
		retries = c.cfg.Retries
	}
	for attempt := 0; ; attempt++ {
		resp, retry, err := c.attempt(ctx, addr, name, url, body)
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

// attempt makes one request; retry says whether the failure is worth
// another attempt of an idempotent call.
func (c *Client) attempt(ctx context.Context, addr, name, url string, body []byte) ([]byte, bool, error) {
	slots := c.peer(addr).slots
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
