package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// ErrNotFound is returned by Get when the key is absent, deleted or expired.
// The Result returned beside it carries the tombstone's context when the
// server knows one, so a later Put can supersede the delete explicitly.
var ErrNotFound = errors.New("client: key not found")

// ErrEmptyKey is returned before any request is sent: keys are 1 to 1024
// bytes (SPEC section 3), and an empty one would address another route.
var ErrEmptyKey = errors.New("client: empty key")

// maxErrorBody bounds how much of an error response is read, so a
// misbehaving server cannot make the client buffer without limit.
const maxErrorBody = 64 << 10

// maxValueBody bounds a value read: SPEC caps values at --max-value-bytes
// (default 1 MiB); 300 responses are base64 JSON of several siblings.
const maxValueBody = 256 << 20

// SiblingResolver picks or builds one value out of concurrent siblings. It is
// called with at least two siblings.
type SiblingResolver func([]Sibling) []byte

// Option configures a Client.
type Option func(*Client)

// WithToken sends "Authorization: Bearer token" on every request.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient replaces the default http.Client, for example to set TLS
// or a transport sized for many connections.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithRetries sets how many times a request is retried after a retryable
// failure (503, 429, connection error); 0 sends each request once. Default 3.
func WithRetries(n int) Option {
	return func(c *Client) {
		if n < 0 {
			n = 0
		}
		c.retries = n
	}
}

// WithBackoff sets the delay before the first retry and the cap on later
// ones; delays double per attempt with jitter. Defaults 50ms and 1s.
func WithBackoff(base, max time.Duration) Option {
	return func(c *Client) { c.backoffBase, c.backoffMax = base, max }
}

// WithResolver sets the hook GetResolved applies to siblings. Without one,
// GetResolved picks the most recently modified sibling, as SPEC section 4
// does for Redis GET.
func WithResolver(r SiblingResolver) Option { return func(c *Client) { c.resolver = r } }

// Client is safe for concurrent use.
type Client struct {
	addrs       []string // base URLs without trailing slash
	http        *http.Client
	token       string
	retries     int
	backoffBase time.Duration
	backoffMax  time.Duration
	resolver    SiblingResolver
	// preferred is the index of the address that answered last; requests
	// start there so a dead node costs one failed attempt, not one per call.
	preferred atomic.Int64
}

// New returns a client for the nodes at addrs ("http://host:port", or
// "host:port", which means http). At least one address is required.
func New(addrs []string, opts ...Option) (*Client, error) {
	c := &Client{
		http:        &http.Client{Timeout: 30 * time.Second},
		retries:     3,
		backoffBase: 50 * time.Millisecond,
		backoffMax:  time.Second,
	}
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		u, err := url.Parse(a)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("client: address %q: want http://host:port", a)
		}
		c.addrs = append(c.addrs, strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"))
	}
	if len(c.addrs) == 0 {
		return nil, errors.New("client: no address given")
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Addrs returns the normalised base URLs the client uses.
func (c *Client) Addrs() []string { return append([]string(nil), c.addrs...) }

// Sibling is one of the values a key holds.
type Sibling struct {
	Value        []byte
	ContentType  string
	LastModified time.Time // zero when the server did not say
}

// Result is a successful read: one value, or several concurrent siblings,
// and the context that covers all of them.
type Result struct {
	Values  []Sibling
	Context string
}

// Conflict reports whether the key holds concurrent siblings.
func (r *Result) Conflict() bool { return len(r.Values) > 1 }

// PutOptions are the optional parts of a write.
type PutOptions struct {
	Context     string        // from an earlier Get (a 404's too) or Put; empty: a blind write
	TTL         time.Duration // 0: never expires
	W           int           // write quorum; 0: the server's default
	ContentType string        // stored and returned by Get
	DB          int           // database 0 to 15
}

// GetOptions are the optional parts of a read.
type GetOptions struct {
	R  int // read quorum; 0: the server's default
	DB int
}

// DeleteOptions are the optional parts of a delete.
type DeleteOptions struct {
	Context string
	W       int
	DB      int
}

// Put stores value under key and returns the context of the new version.
func (c *Client) Put(ctx context.Context, key string, value []byte, o PutOptions) (string, error) {
	p, err := kvPath(key, o.DB)
	if err != nil {
		return "", err
	}
	q := url.Values{}
	if o.W > 0 {
		q.Set("w", strconv.Itoa(o.W))
	}
	if o.TTL > 0 {
		q.Set("ttl", o.TTL.String())
	}
	h := http.Header{}
	if o.Context != "" {
		h.Set("X-Context", o.Context)
	}
	if o.ContentType != "" {
		h.Set("Content-Type", o.ContentType)
	}
	resp, err := c.do(ctx, request{method: http.MethodPut, path: p, query: q, header: h, body: value, failover: true})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return "", apiError(resp)
	}
	return resp.Header.Get("X-Context"), nil
}

// Get reads key. When the key is absent it returns ErrNotFound and a Result
// with no values whose Context is the tombstone's, if the server sent one.
func (c *Client) Get(ctx context.Context, key string, o GetOptions) (*Result, error) {
	p, err := kvPath(key, o.DB)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if o.R > 0 {
		q.Set("r", strconv.Itoa(o.R))
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: p, query: q, failover: true})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	res := &Result{Context: resp.Header.Get("X-Context")}
	switch resp.StatusCode {
	case http.StatusOK:
		body, err := readBody(resp.Body, maxValueBody)
		if err != nil {
			return nil, fmt.Errorf("client: GET %s: %w", p, err)
		}
		s := Sibling{Value: body, ContentType: resp.Header.Get("Content-Type")}
		if lm := resp.Header.Get("Last-Modified"); lm != "" {
			if t, err := http.ParseTime(lm); err == nil {
				s.LastModified = t
			}
		}
		res.Values = []Sibling{s}
		return res, nil
	case http.StatusMultipleChoices:
		body, err := readBody(resp.Body, maxValueBody)
		if err != nil {
			return nil, fmt.Errorf("client: GET %s: %w", p, err)
		}
		sibs, err := decodeSiblings(body)
		if err != nil {
			return nil, fmt.Errorf("client: GET %s: 300 response: %w", p, err)
		}
		res.Values = sibs
		return res, nil
	case http.StatusNotFound:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return res, ErrNotFound
	default:
		return nil, apiError(resp)
	}
}

// GetResolved reads key and reduces siblings to one value with the client's
// SiblingResolver. The returned context covers every sibling, so a Put of
// the resolved value with it replaces them all.
func (c *Client) GetResolved(ctx context.Context, key string, o GetOptions) ([]byte, string, error) {
	res, err := c.Get(ctx, key, o)
	if err != nil {
		ctxStr := ""
		if res != nil {
			ctxStr = res.Context
		}
		return nil, ctxStr, err
	}
	if len(res.Values) == 1 {
		return res.Values[0].Value, res.Context, nil
	}
	resolve := c.resolver
	if resolve == nil {
		resolve = LatestWins
	}
	return resolve(res.Values), res.Context, nil
}

// Update is a read-modify-write of key: it reads the key, hands fn the
// resolved value (found is false when the key is absent, deleted or
// expired), and writes what fn returns with the read's context, so the
// write supersedes exactly what was read. A read that found nothing still
// carries a context, the empty one for a key never written: two clients
// that both create a key with Update leave two siblings rather than one
// overwriting the other (SPEC section 5). It returns the new context.
// An error from fn is returned as it is, and nothing is written.
func (c *Client) Update(ctx context.Context, key string, fn func(cur []byte, found bool) ([]byte, error), o PutOptions) (string, error) {
	cur, rctx, err := c.GetResolved(ctx, key, GetOptions{DB: o.DB})
	found := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", err
	}
	if rctx == "" {
		// Every GET answers with a context; a node that sent none
		// cannot be trusted to keep the write from being blind.
		return "", fmt.Errorf("client: GET %q answered without an X-Context", key)
	}
	next, err := fn(cur, found)
	if err != nil {
		return "", err
	}
	o.Context = rctx
	return c.Put(ctx, key, next, o)
}

// LatestWins is the default SiblingResolver: the most recently modified
// sibling, the first one on a tie.
func LatestWins(s []Sibling) []byte {
	if len(s) == 0 {
		return nil
	}
	best := s[0]
	for _, x := range s[1:] {
		if x.LastModified.After(best.LastModified) {
			best = x
		}
	}
	return best.Value
}

// Delete removes key by writing a tombstone.
func (c *Client) Delete(ctx context.Context, key string, o DeleteOptions) error {
	p, err := kvPath(key, o.DB)
	if err != nil {
		return err
	}
	q := url.Values{}
	if o.W > 0 {
		q.Set("w", strconv.Itoa(o.W))
	}
	h := http.Header{}
	if o.Context != "" {
		h.Set("X-Context", o.Context)
	}
	resp, err := c.do(ctx, request{method: http.MethodDelete, path: p, query: q, header: h, failover: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusNotFound:
		return ErrNotFound
	default:
		return apiError(resp)
	}
}

// ClusterStatus returns the JSON document of GET /cluster/status of the
// first address. Its shape belongs to the server, so it is returned as is.
func (c *Client) ClusterStatus(ctx context.Context) (json.RawMessage, error) {
	return c.clusterCall(ctx, http.MethodGet, "/cluster/status", nil, nil)
}

// ClusterJoin asks the first address to join the cluster that the gossip
// addresses belong to.
func (c *Client) ClusterJoin(ctx context.Context, gossipAddrs []string) (json.RawMessage, error) {
	body, err := json.Marshal(struct {
		Addrs []string `json:"addrs"`
	}{gossipAddrs})
	if err != nil {
		return nil, fmt.Errorf("client: encode join: %w", err)
	}
	return c.clusterCall(ctx, http.MethodPost, "/cluster/join", nil, body)
}

// ClusterLeave asks the first address to hand off its data and leave, or,
// with a node id, to remove that dead member for good.
func (c *Client) ClusterLeave(ctx context.Context, node string) (json.RawMessage, error) {
	q := url.Values{}
	if node != "" {
		q.Set("node", node)
	}
	return c.clusterCall(ctx, http.MethodPost, "/cluster/leave", q, nil)
}

// clusterCall never fails over: join and leave are about the node addressed.
func (c *Client) clusterCall(ctx context.Context, method, path string, q url.Values, body []byte) (json.RawMessage, error) {
	h := http.Header{}
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	resp, err := c.do(ctx, request{method: method, path: path, query: q, header: h, body: body})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, apiError(resp)
	}
	b, err := readBody(resp.Body, maxErrorBody*16)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	return json.RawMessage(b), nil
}

// kvPath is the route of key; url.PathEscape makes any byte string,
// including "/" and invalid UTF-8, one path segment.
func kvPath(key string, db int) (string, error) {
	if key == "" {
		return "", ErrEmptyKey
	}
	if db < 0 {
		return "", fmt.Errorf("client: database %d: must not be negative", db)
	}
	if db == 0 {
		return "/kv/" + url.PathEscape(key), nil
	}
	return "/db/" + strconv.Itoa(db) + "/kv/" + url.PathEscape(key), nil
}

type request struct {
	method   string
	path     string // already escaped
	query    url.Values
	header   http.Header
	body     []byte
	failover bool // try the other addresses too
}

// do sends r, moving to the next address and backing off after retryable
// failures. It returns the first non-retryable answer, or the last failure
// once the retries are spent. The caller closes the body.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	start, n := 0, 1
	if r.failover {
		start, n = int(c.preferred.Load())%len(c.addrs), len(c.addrs)
	}
	var lastErr error
	var retryAfter time.Duration // the last node's own hint
	for attempt := 0; attempt <= c.retries; attempt++ {
		idx := (start + attempt) % n
		// Another node is tried at once; only when every node has failed
		// in this round does the client back off, honouring Retry-After
		// when it would ask the same node again.
		if attempt > 0 && attempt%n == 0 {
			floor := time.Duration(0)
			if n == 1 {
				floor = retryAfter
			}
			if err := c.sleep(ctx, attempt/n, floor); err != nil {
				return nil, fmt.Errorf("%w (last failure: %w)", err, lastErr)
			}
		}
		retryAfter = 0
		resp, err := c.send(ctx, c.addrs[idx], r)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			lastErr = err
			continue
		}
		if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
			apiErr := apiError(resp)
			resp.Body.Close()
			lastErr, retryAfter = apiErr, apiErr.RetryAfter
			continue
		}
		if r.failover {
			c.preferred.Store(int64(idx))
		}
		return resp, nil
	}
	return nil, lastErr
}

func (c *Client) send(ctx context.Context, base string, r request) (*http.Response, error) {
	u := base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", r.method, u, err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &ConnError{Addr: base, Err: err}
	}
	return resp, nil
}

// sleep waits the backoff before the given attempt (1-based): jitter over
// the upper half of an exponentially growing window, so clients that failed
// together do not retry together; at least floor (a Retry-After), and never
// more than the backoff cap.
func (c *Client) sleep(ctx context.Context, attempt int, floor time.Duration) error {
	d := c.backoffBase
	for i := 1; i < attempt && d < c.backoffMax; i++ {
		d *= 2
	}
	if d > c.backoffMax {
		d = c.backoffMax
	}
	if d > 0 {
		d = d/2 + rand.N(d/2+1)
	}
	d = min(max(d, floor), c.backoffMax)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
