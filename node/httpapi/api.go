// Package httpapi is the client HTTP API of SPEC section 3: the key
// routes, health and readiness, /metrics, bearer tokens, the in-flight
// limit, and the one mapping of errors to statuses. It reaches the node
// through a small Backend; the node mounts its own endpoints (cluster,
// node-to-node) with Config.Routes.
package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.uber.org/zap"

	"github.com/dynkv/dynkv/node/internal/authguard"
	"github.com/dynkv/dynkv/node/internal/frontend"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/vclock"
)

// Sampling of the mutex and block profiles under --pprof: one contended
// lock in pprofMutexFraction, and on average one blocking event per
// pprofBlockRate nanoseconds spent blocked.
const (
	pprofMutexFraction = 100
	pprofBlockRate     = int(100 * time.Microsecond)
)

// DefaultContentType is stored for a PUT without a Content-Type.
const DefaultContentType = "application/octet-stream"

// Backend is what the HTTP API needs of a node.
type Backend interface {
	// Get reads key of database db through the coordinator with read
	// quorum r (0: --read-quorum); found is false when no replica
	// holds it.
	Get(ctx context.Context, db int, key []byte, r int) (set vclock.Set, found bool, err error)
	// Put writes sib under key with write quorum w (0: --write-quorum),
	// superseding vc, or with blind what the replicas hold; it returns
	// the context to hand to the client.
	Put(ctx context.Context, db int, key []byte, vc vclock.Context, blind bool, sib vclock.Sibling, w int) (vclock.Context, error)
	// Acquire takes an in-flight slot, which the Redis protocol shares;
	// ok is false when every slot is taken.
	Acquire() (release func(), ok bool)
	// Ready is GET /ready: whether the node serves, and the status to
	// say (ready, starting, shutting down, joining...).
	Ready() (ready bool, status string)
}

// Config is what the API needs of the node's configuration. The zero
// value serves one database without authentication (see withDefaults).
type Config struct {
	Databases     int   // --databases
	Replicas      int   // --replicas: the cap of ?r= and ?w=
	MaxValueBytes int64 // --max-value-bytes
	// LingerTimeout and LingerBytes bound the lingering close after a
	// 413 (lingering.go): --http-linger-timeout, and LingerBytes of the
	// flags (0: LingerBytes(MaxValueBytes, 0)).
	LingerTimeout time.Duration
	LingerBytes   int64
	// Pprof serves /debug/pprof (--pprof).
	Pprof bool

	// Shared: the bearer tokens (--auth-token) and their guard, the
	// metrics, the logger and the clock.
	frontend.Shared

	// Routes, when set, adds the node's own endpoints (the cluster API,
	// node-to-node RPC, debug reads) to the router, behind the same
	// recovery, metrics and authentication but outside the in-flight
	// limit.
	Routes func(chi.Router)
	// TestHook, when set, runs inside every key request while it holds
	// its in-flight slot, so tests can hold requests open.
	TestHook func(*http.Request)
}

func (c Config) withDefaults() Config {
	if c.Databases <= 0 {
		c.Databases = 1
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxValueBytes <= 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.LingerBytes <= 0 {
		c.LingerBytes = LingerBytes(c.MaxValueBytes, 0)
	}
	c.Shared = c.Shared.WithDefaults()
	return c
}

// DefaultMaxValueBytes is the largest value of a zero Config's PUT, as
// the node's --max-value-bytes default.
const DefaultMaxValueBytes = 1 << 20

// API is the HTTP handler of one node.
type API struct {
	cfg     Config
	backend Backend
	log     *zap.Logger
	handler http.Handler
}

// New is the API of b.
func New(b Backend, cfg Config) *API {
	cfg = cfg.withDefaults()
	a := &API{cfg: cfg, backend: b, log: cfg.Logger}
	a.handler = a.routes()
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

func (a *API) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(a.observe, a.cfg.Metrics.Measure)
	if len(a.cfg.Tokens) > 0 {
		r.Use(a.authenticate)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { a.writeError(w, r, errNoRoute) })
	r.MethodNotAllowed(MethodNotAllowed)

	r.Get("/health", a.handleHealth)
	r.Head("/health", a.handleHealth)
	r.Get("/ready", a.handleReady)
	r.Head("/ready", a.handleReady)
	r.Method(http.MethodGet, "/metrics", a.cfg.Metrics)

	if a.cfg.Pprof {
		// The mutex and block profiles stay empty unless sampling is on;
		// --pprof is how an operator asks where requests wait, so turn
		// it on here, sampled coarsely enough to leave throughput alone.
		runtime.SetMutexProfileFraction(pprofMutexFraction)
		runtime.SetBlockProfileRate(pprofBlockRate)
		r.Mount("/debug", middleware.Profiler())
	}

	// The node's own endpoints (the cluster API, node-to-node RPC and
	// its debug reads) stay outside the client in-flight limit: shedding
	// a peer's replica write would turn one overloaded node into failed
	// quorums everywhere. Peers bound their own concurrency.
	if a.cfg.Routes != nil {
		a.cfg.Routes(r)
	}

	r.Group(func(r chi.Router) {
		r.Use(a.limitInflight)
		for _, pattern := range []string{"/kv/*", "/db/{n}/kv/*"} {
			r.Put(pattern, a.handlePut)
			r.Get(pattern, a.handleGet)
			r.Head(pattern, a.handleGet)
			r.Delete(pattern, a.handleDelete)
		}
	})
	return r
}

// observe recovers panics, so that no request can take the node down, and
// logs every request at debug level.
func (a *API) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.log.Error("panic in HTTP handler", zap.Any("panic", p), zap.Stack("stack"),
					zap.String("method", r.Method), zap.String("path", r.URL.EscapedPath()))
				if ww.Status() != 0 {
					// The status line is gone; aborting the
					// connection is the only way to tell the
					// client the response is incomplete.
					panic(http.ErrAbortHandler)
				}
				WriteJSON(ww, http.StatusInternalServerError, errorBody{Error: "internal error"})
			}
			if ce := a.log.Check(zap.DebugLevel, "request"); ce != nil {
				ce.Write(zap.String("method", r.Method), zap.String("path", r.URL.EscapedPath()),
					zap.Int("status", ww.Status()), zap.Int("bytes", ww.BytesWritten()),
					zap.Duration("took", time.Since(start)), zap.String("remote", r.RemoteAddr))
			}
		}()
		next.ServeHTTP(ww, r)
	})
}

// authenticate admits requests bearing one of the configured tokens.
// The health endpoints, /health and /ready, stay open so that liveness and
// readiness probes (Kubernetes sends no secret) work; they tell nothing
// beyond up and ready. /metrics is not one of them: it stays behind the
// token. The RPC calls
// check the token themselves (rpc.Server.Authorize) so that a
// refusal reaches the peer as an RPC error frame rather than JSON. A wrong
// token's 401 is delayed, and failures are logged at most once per source
// per interval (admitHTTP, node/internal/authguard).
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" || r.URL.Path == "/ready" || isRPCPath(r.URL.Path) || a.admitHTTP(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// isRPCPath tells node-to-node calls from the other /internal/v1 paths
// (the debug reads), which the router's authentication guards.
func isRPCPath(p string) bool {
	rest, ok := strings.CutPrefix(p, rpc.PathPrefix)
	return ok && !strings.HasPrefix(rest, "debug/")
}

// admitHTTP is the token check of the authenticate middleware: true lets
// the request through; otherwise it has been answered, 401 after the
// guard's delay, or 429 when its source is throttled.
func (a *API) admitHTTP(w http.ResponseWriter, r *http.Request) bool {
	header := r.Header.Get("Authorization")
	guess := authguard.PresentsBearer(header)
	src := authguard.SourceOf(r.RemoteAddr)
	if guess && a.cfg.Guard.Throttled("http", src) {
		w.Header().Set("Retry-After", "1")
		a.writeError(w, r, errAuthThrottled)
		return false
	}
	if a.cfg.Tokens.ValidBearer(header) {
		return true
	}
	if !a.cfg.Guard.Fail(r.Context(), "http", src, 0, guess) {
		w.Header().Set("Retry-After", "1")
		a.writeError(w, r, errAuthThrottled)
		return false
	}
	a.writeError(w, r, errUnauthorized)
	return false
}

// limitInflight sheds load: a request that finds every slot taken gets 429
// at once instead of queueing behind requests that are already late.
func (a *API) limitInflight(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, ok := a.backend.Acquire()
		if !ok {
			w.Header().Set("Retry-After", "1")
			a.writeError(w, r, errOverloaded)
			return
		}
		defer release()
		if a.cfg.TestHook != nil {
			a.cfg.TestHook(r)
		}
		next.ServeHTTP(w, r)
	})
}

// MethodNotAllowed answers 405 with the methods the path allows.
func MethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	// chi only calls this for paths it knows, but does not pass the
	// allowed methods to a custom handler, so they are listed here.
	allow := "DELETE, GET, HEAD, PUT"
	switch {
	case r.URL.Path == "/health" || r.URL.Path == "/ready":
		allow = "GET, HEAD"
	case r.URL.Path == "/internal/v1/debug/hints":
		allow = "DELETE"
	case r.URL.Path == "/cluster/status" || r.URL.Path == "/metrics" || strings.HasPrefix(r.URL.Path, "/internal/v1/debug/"):
		allow = "GET"
	case strings.HasPrefix(r.URL.Path, "/cluster/"):
		allow = "POST"
	}
	w.Header().Set("Allow", allow)
	WriteError(nil, w, r, errBadMethod) // a status error: never logged
}

func (a *API) handleHealth(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) handleReady(w http.ResponseWriter, r *http.Request) {
	ready, status := a.backend.Ready()
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
	}
	WriteJSON(w, code, map[string]string{"status": status})
}

// target is the database and key a key request addresses.
func (a *API) target(r *http.Request) (db int, key []byte, err error) {
	p, ok := splitKVPath(r.URL.EscapedPath())
	if !ok {
		// The router matched a key route, so this cannot happen
		// unless the routes and splitKVPath disagree.
		return 0, nil, errNoRoute
	}
	if p.hasDB {
		if db, err = ParseDatabase(p.db, a.cfg.Databases); err != nil {
			return 0, nil, err
		}
	}
	key, err = ParseKey(p.rawKey)
	return db, key, err
}

// Query parses the query string. A malformed one is rejected whole, even if
// the damage is in a parameter the node ignores: its meaning is unknowable.
// So is a parameter given twice (?w=1&w=3): which one the client meant
// cannot be told, and silently taking the first could weaken a quorum.
func Query(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, BadRequestf("malformed query: %v", err)
	}
	for name, vals := range q {
		if len(vals) > 1 {
			return nil, BadRequestf("malformed query: %q given %d times, want at most once", name, len(vals))
		}
	}
	return q, nil
}

// quorumParam validates the r or w query of a request. 0 means the query
// is absent and the coordinator applies --read-quorum or --write-quorum; a
// given value is capped at N here and at the member count by the
// coordinator, which alone knows it.
func (a *API) quorumParam(q url.Values, name string) (int, error) {
	if !q.Has(name) {
		return 0, nil
	}
	return parseQuorum(name, q.Get(name), a.cfg.Replicas, a.cfg.Replicas)
}

func (a *API) handlePut(w http.ResponseWriter, r *http.Request) {
	if err := a.put(w, r); err != nil {
		a.writeError(w, r, err)
	}
}

// writeRequest is what a PUT and a DELETE both take from the request: the
// key, the query, the w override and the client's context.
type writeRequest struct {
	db  int
	key []byte
	q   url.Values
	w   int
	ctx vclock.Context
	// blind: the request had no X-Context at all (an empty context, from a
	// 404, is a context that covers nothing).
	blind bool
}

func (a *API) parseWrite(r *http.Request) (writeRequest, error) {
	var wr writeRequest
	var err error
	if wr.db, wr.key, err = a.target(r); err != nil {
		return wr, err
	}
	if wr.q, err = Query(r); err != nil {
		return wr, err
	}
	if wr.w, err = a.quorumParam(wr.q, "w"); err != nil {
		return wr, err
	}
	var present bool
	wr.ctx, present, err = parseContext(r.Header)
	wr.blind = !present
	return wr, err
}

// coordinateWrite writes sib through the coordinator and answers 204 with
// the context the write returned.
func (a *API) coordinateWrite(w http.ResponseWriter, r *http.Request, wr writeRequest, sib vclock.Sibling) error {
	out, err := a.backend.Put(r.Context(), wr.db, wr.key, wr.ctx, wr.blind, sib, wr.w)
	if err != nil {
		return err
	}
	w.Header().Set(ContextHeader, EncodeContext(out))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) put(w http.ResponseWriter, r *http.Request) error {
	wr, err := a.parseWrite(r)
	if err != nil {
		return err
	}
	var ttl time.Duration
	if wr.q.Has("ttl") {
		if ttl, err = parseTTL(wr.q.Get("ttl")); err != nil {
			return err
		}
	}
	contentType := r.Header.Get("Content-Type")
	if contentType == "" {
		contentType = DefaultContentType
	}
	if len(contentType) > maxContentTypeBytes {
		return BadRequestf("Content-Type is %d bytes long (at most %d)", len(contentType), maxContentTypeBytes)
	}

	// An oversized body gets its 413 with a lingering close
	// (lingering.go), so that a client still sending it reads the answer.
	limit := a.cfg.MaxValueBytes
	if r.ContentLength > limit {
		a.refuseBody(w, r, limit)
		return nil
	}
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			a.refuseBody(w, r, limit)
			return nil
		}
		return BadRequestf("reading the value: %v", err)
	}

	// The coordinator fixes the clock readings so that every replica
	// stores the same absolute expiry (SPEC section 5).
	now := a.cfg.Now()
	sib := vclock.Sibling{Value: value, ContentType: contentType, LastModified: now.UnixNano()}
	if ttl > 0 {
		sib.Expires = now.Add(ttl).UnixNano()
	}
	return a.coordinateWrite(w, r, wr, sib)
}

func (a *API) handleDelete(w http.ResponseWriter, r *http.Request) {
	if err := a.delete(w, r); err != nil {
		a.writeError(w, r, err)
	}
}

func (a *API) delete(w http.ResponseWriter, r *http.Request) error {
	wr, err := a.parseWrite(r)
	if err != nil {
		return err
	}
	// A delete is a write of a tombstone sibling, so it is versioned like
	// any write: concurrent updates survive it as siblings.
	return a.coordinateWrite(w, r, wr, vclock.Sibling{Tombstone: true, LastModified: a.cfg.Now().UnixNano()})
}

// SiblingsBody is the JSON of a 300 response.
type SiblingsBody struct {
	Siblings []SiblingJSON `json:"siblings"`
}

// SiblingJSON is one sibling of a 300 response.
type SiblingJSON struct {
	Value        []byte `json:"value"` // encoding/json writes standard base64
	ContentType  string `json:"content_type"`
	LastModified string `json:"last_modified"`
}

func (a *API) handleGet(w http.ResponseWriter, r *http.Request) {
	if err := a.get(w, r); err != nil {
		a.writeError(w, r, err)
	}
}

func (a *API) get(w http.ResponseWriter, r *http.Request) error {
	db, key, err := a.target(r)
	if err != nil {
		return err
	}
	q, err := Query(r)
	if err != nil {
		return err
	}
	rq, err := a.quorumParam(q, "r")
	if err != nil {
		return err
	}
	set, _, err := a.backend.Get(r.Context(), db, key, rq)
	if err != nil {
		return err
	}
	// Every answer carries a context, a 404 included (SPEC section 3): for
	// a key never written it is the empty context, so that a client's
	// write back supersedes nothing rather than being blind and
	// overwriting a concurrent create. It covers tombstones and expired
	// values too, so a write with it supersedes them rather than living
	// beside them.
	w.Header().Set(ContextHeader, EncodeContext(set.Context))
	live := set.Live(a.cfg.Now().UnixNano())
	switch len(live) {
	case 0:
		return errKeyNotFound
	case 1:
		s := live[0]
		h := w.Header()
		h.Set("Content-Type", s.ContentType)
		h.Set("Content-Length", strconv.Itoa(len(s.Value)))
		h.Set("Last-Modified", time.Unix(0, s.LastModified).UTC().Format(http.TimeFormat))
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(s.Value)
		}
		return nil
	default:
		body := SiblingsBody{Siblings: make([]SiblingJSON, len(live))}
		for i, s := range live {
			body.Siblings[i] = SiblingJSON{
				// An empty value is "" in JSON, not null.
				Value:        append([]byte{}, s.Value...),
				ContentType:  s.ContentType,
				LastModified: time.Unix(0, s.LastModified).UTC().Format(time.RFC3339Nano),
			}
		}
		WriteJSON(w, http.StatusMultipleChoices, body)
		return nil
	}
}
