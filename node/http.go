package node

import (
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

// defaultContentType is stored for a PUT without a Content-Type.
const defaultContentType = "application/octet-stream"

func (n *Node) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(n.observe, n.metrics.Measure)
	if len(n.tokens) > 0 {
		r.Use(n.authenticate)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { n.writeError(w, r, errNoRoute) })
	r.MethodNotAllowed(n.methodNotAllowed)

	r.Get("/health", n.handleHealth)
	r.Head("/health", n.handleHealth)
	r.Get("/ready", n.handleReady)
	r.Head("/ready", n.handleReady)
	r.Method(http.MethodGet, "/metrics", n.metrics)

	if n.cfg.Pprof {
		// The mutex and block profiles stay empty unless sampling is on;
		// --pprof is how an operator asks where requests wait, so turn
		// it on here, sampled coarsely enough to leave throughput alone.
		runtime.SetMutexProfileFraction(pprofMutexFraction)
		runtime.SetBlockProfileRate(pprofBlockRate)
		r.Mount("/debug", middleware.Profiler())
	}

	r.Get("/cluster/status", n.handleClusterStatus)
	r.Post("/cluster/join", n.handleClusterJoin)
	r.Post("/cluster/leave", n.handleClusterLeave)

	// Node-to-node RPC stays outside the client in-flight limit: shedding
	// a peer's replica write would turn one overloaded node into failed
	// quorums everywhere. Peers bound their own concurrency.
	r.Get("/internal/v1/debug/local/*", n.handleDebugLocal)
	r.HandleFunc("/internal/v1/debug/hints", n.handleWipeHints) // DELETE only; 405 otherwise
	r.Handle("/internal/v1/*", http.HandlerFunc(n.handleInternal))

	r.Group(func(r chi.Router) {
		r.Use(n.limitInflight)
		for _, pattern := range []string{"/kv/*", "/db/{n}/kv/*"} {
			r.Put(pattern, n.handlePut)
			r.Get(pattern, n.handleGet)
			r.Head(pattern, n.handleGet)
			r.Delete(pattern, n.handleDelete)
		}
	})
	return r
}

// observe recovers panics, so that no request can take the node down, and
// logs every request at debug level.
func (n *Node) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				n.log.Error("panic in HTTP handler", zap.Any("panic", p), zap.Stack("stack"),
					zap.String("method", r.Method), zap.String("path", r.URL.EscapedPath()))
				if ww.Status() != 0 {
					// The status line is gone; aborting the
					// connection is the only way to tell the
					// client the response is incomplete.
					panic(http.ErrAbortHandler)
				}
				writeJSON(ww, http.StatusInternalServerError, errorBody{Error: "internal error"})
			}
			if ce := n.log.Check(zap.DebugLevel, "request"); ce != nil {
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
func (n *Node) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" || r.URL.Path == "/ready" || isRPCPath(r.URL.Path) || n.admitHTTP(w, r) {
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
func (n *Node) admitHTTP(w http.ResponseWriter, r *http.Request) bool {
	header := r.Header.Get("Authorization")
	guess := authguard.PresentsBearer(header)
	src := authguard.SourceOf(r.RemoteAddr)
	if guess && n.auth.Throttled("http", src) {
		w.Header().Set("Retry-After", "1")
		n.writeError(w, r, errAuthThrottled)
		return false
	}
	if n.tokens.ValidBearer(header) {
		return true
	}
	if !n.auth.Fail(r.Context(), "http", src, 0, guess) {
		w.Header().Set("Retry-After", "1")
		n.writeError(w, r, errAuthThrottled)
		return false
	}
	n.writeError(w, r, errUnauthorized)
	return false
}

// acquire takes one of the in-flight slots, which HTTP and the Redis
// protocol share, so that one of them cannot starve the other; ok is false
// when every slot is taken.
func (n *Node) acquire() (release func(), ok bool) {
	select {
	case n.inflight <- struct{}{}:
		return n.releaseSlot, true
	default:
		return nil, false
	}
}

func (n *Node) releaseSlot() { <-n.inflight }

// limitInflight sheds load: a request that finds every slot taken gets 429
// at once instead of queueing behind requests that are already late.
func (n *Node) limitInflight(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, ok := n.acquire()
		if !ok {
			w.Header().Set("Retry-After", "1")
			n.writeError(w, r, errOverloaded)
			return
		}
		defer release()
		if n.testHook != nil {
			n.testHook(r)
		}
		next.ServeHTTP(w, r)
	})
}

func (n *Node) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
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
	n.writeError(w, r, errBadMethod)
}

func (n *Node) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (n *Node) handleReady(w http.ResponseWriter, r *http.Request) {
	switch n.state.Load() {
	case stateReady:
		// The store recovered in New; the node serves once it has a
		// ring to route by.
		if c := n.cluster.Load(); c != nil && !c.members.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": notReadyReason(c)})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	case stateStopping:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
	default:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
	}
}

// target is the database and key a key request addresses.
func (n *Node) target(r *http.Request) (db int, key []byte, err error) {
	p, ok := splitKVPath(r.URL.EscapedPath())
	if !ok {
		// The router matched a key route, so this cannot happen
		// unless the routes and splitKVPath disagree.
		return 0, nil, errNoRoute
	}
	if p.hasDB {
		if db, err = parseDatabase(p.db, n.cfg.Databases); err != nil {
			return 0, nil, err
		}
	}
	key, err = parseKey(p.rawKey)
	return db, key, err
}

// query parses the query string. A malformed one is rejected whole, even if
// the damage is in a parameter the node ignores: its meaning is unknowable.
// So is a parameter given twice (?w=1&w=3): which one the client meant
// cannot be told, and silently taking the first could weaken a quorum.
func query(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequestf("malformed query: %v", err)
	}
	for name, vals := range q {
		if len(vals) > 1 {
			return nil, badRequestf("malformed query: %q given %d times, want at most once", name, len(vals))
		}
	}
	return q, nil
}

// quorumParam validates the r or w query of a request. 0 means the query
// is absent and the coordinator applies --read-quorum or --write-quorum; a
// given value is capped at N here and at the member count by the
// coordinator, which alone knows it.
func (n *Node) quorumParam(q url.Values, name string) (int, error) {
	if !q.Has(name) {
		return 0, nil
	}
	return parseQuorum(name, q.Get(name), n.cfg.Replicas, n.cfg.Replicas)
}

func (n *Node) handlePut(w http.ResponseWriter, r *http.Request) {
	if err := n.put(w, r); err != nil {
		n.writeError(w, r, err)
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

func (n *Node) parseWrite(r *http.Request) (writeRequest, error) {
	var wr writeRequest
	var err error
	if wr.db, wr.key, err = n.target(r); err != nil {
		return wr, err
	}
	if wr.q, err = query(r); err != nil {
		return wr, err
	}
	if wr.w, err = n.quorumParam(wr.q, "w"); err != nil {
		return wr, err
	}
	var present bool
	wr.ctx, present, err = parseContext(r.Header)
	wr.blind = !present
	return wr, err
}

// coordinateWrite writes sib through the coordinator and answers 204 with
// the context the write returned.
func (n *Node) coordinateWrite(w http.ResponseWriter, r *http.Request, wr writeRequest, sib vclock.Sibling) error {
	out, err := n.coordinatedPut(r.Context(), wr.db, wr.key, wr.ctx, wr.blind, sib, wr.w)
	if err != nil {
		return err
	}
	w.Header().Set(ContextHeader, encodeContext(out))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (n *Node) put(w http.ResponseWriter, r *http.Request) error {
	wr, err := n.parseWrite(r)
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
		contentType = defaultContentType
	}
	if len(contentType) > maxContentTypeBytes {
		return badRequestf("Content-Type is %d bytes long (at most %d)", len(contentType), maxContentTypeBytes)
	}

	// An oversized body gets its 413 with a lingering close
	// (lingering.go), so that a client still sending it reads the answer.
	limit := n.cfg.MaxValueBytes
	if r.ContentLength > limit {
		n.refuseBody(w, r, limit)
		return nil
	}
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			n.refuseBody(w, r, limit)
			return nil
		}
		return badRequestf("reading the value: %v", err)
	}

	// The coordinator fixes the clock readings so that every replica
	// stores the same absolute expiry (SPEC section 5).
	now := n.cfg.now()
	sib := vclock.Sibling{Value: value, ContentType: contentType, LastModified: now.UnixNano()}
	if ttl > 0 {
		sib.Expires = now.Add(ttl).UnixNano()
	}
	return n.coordinateWrite(w, r, wr, sib)
}

func (n *Node) handleDelete(w http.ResponseWriter, r *http.Request) {
	if err := n.delete(w, r); err != nil {
		n.writeError(w, r, err)
	}
}

func (n *Node) delete(w http.ResponseWriter, r *http.Request) error {
	wr, err := n.parseWrite(r)
	if err != nil {
		return err
	}
	// A delete is a write of a tombstone sibling, so it is versioned like
	// any write: concurrent updates survive it as siblings.
	return n.coordinateWrite(w, r, wr, vclock.Sibling{Tombstone: true, LastModified: n.cfg.now().UnixNano()})
}

// siblingsBody is the JSON of a 300 response.
type siblingsBody struct {
	Siblings []siblingJSON `json:"siblings"`
}

type siblingJSON struct {
	Value        []byte `json:"value"` // encoding/json writes standard base64
	ContentType  string `json:"content_type"`
	LastModified string `json:"last_modified"`
}

func (n *Node) handleGet(w http.ResponseWriter, r *http.Request) {
	if err := n.get(w, r); err != nil {
		n.writeError(w, r, err)
	}
}

func (n *Node) get(w http.ResponseWriter, r *http.Request) error {
	db, key, err := n.target(r)
	if err != nil {
		return err
	}
	q, err := query(r)
	if err != nil {
		return err
	}
	rq, err := n.quorumParam(q, "r")
	if err != nil {
		return err
	}
	set, _, err := n.coordinatedGet(r.Context(), db, key, rq)
	if err != nil {
		return err
	}
	// Every answer carries a context, a 404 included (SPEC section 3): for
	// a key never written it is the empty context, so that a client's
	// write back supersedes nothing rather than being blind and
	// overwriting a concurrent create. It covers tombstones and expired
	// values too, so a write with it supersedes them rather than living
	// beside them.
	w.Header().Set(ContextHeader, encodeContext(set.Context))
	live := set.Live(n.cfg.now().UnixNano())
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
		body := siblingsBody{Siblings: make([]siblingJSON, len(live))}
		for i, s := range live {
			body.Siblings[i] = siblingJSON{
				// An empty value is "" in JSON, not null.
				Value:        append([]byte{}, s.Value...),
				ContentType:  s.ContentType,
				LastModified: time.Unix(0, s.LastModified).UTC().Format(time.RFC3339Nano),
			}
		}
		writeJSON(w, http.StatusMultipleChoices, body)
		return nil
	}
}
