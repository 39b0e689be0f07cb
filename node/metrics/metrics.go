// Package metrics is one node's Prometheus registry: the request,
// read and WAL distributions observed as they happen, the connection and
// memory-bound counters of the front ends, and GET /metrics.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/replication/rpc/transport"
	"github.com/dynkv/dynkv/vclock"
)

// Metrics is one node's Prometheus registry. Each node has its own rather
// than the process-global default so that the in-process cluster tests can
// run several nodes side by side. Counters that packages already keep
// (store, WAL, coordinator, handoff, membership) are read at scrape time by
// a collector the node passes to New instead of being duplicated on their
// hot paths; only distributions, which no Stats() can reconstruct, are
// observed as they happen.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	siblings prometheus.Histogram
	walSync  prometheus.Histogram
	walBatch prometheus.Histogram
	// HTTPConnsOpen and HTTPConnsRefused count the HTTP port's
	// connections under --http-max-conns.
	HTTPConnsOpen    prometheus.Gauge
	HTTPConnsRefused prometheus.Counter
	// Limits: the Redis-protocol memory bounds and failed
	// authentications (limits.go).
	Limits  Limits
	handler http.Handler
}

// Request operations, the "op" label: a small fixed set so that paths
// (keys) never become label values.
const (
	OpPut      = "put"
	OpGet      = "get"
	OpDelete   = "delete"
	OpCluster  = "cluster"
	OpInternal = "internal" // node-to-node RPC
	OpOther    = "other"    // health, readiness, metrics, pprof, unknown paths
)

// New makes a registry holding the metrics of this package, the Go and
// process collectors, and extra (the node's scrape-time collector).
func New(extra ...prometheus.Collector) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dynkv_requests_total",
		Help: "Client and peer requests served, by protocol (http, resp), operation and status (HTTP code; ok or error for resp).",
	}, []string{"protocol", "op", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "dynkv_request_duration_seconds",
		Help: "Time from a request's arrival to its response, by protocol, operation and status code.",
		// 250µs (a local read) to ~8s (past the 5s request timeout).
		Buckets: prometheus.ExponentialBuckets(0.00025, 2, 16),
	}, []string{"protocol", "op", "code"})
	m.siblings = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "dynkv_read_siblings",
		Help:    "Live siblings returned per successful read of an existing key; above 1 means concurrent writes.",
		Buckets: []float64{1, 2, 3, 4, 6, 8, 16, 32},
	})
	m.walSync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "dynkv_wal_fsync_duration_seconds",
		Help: "Duration of each WAL fsync.",
		// 50µs (battery-backed cache) to ~1.6s (a disk in trouble).
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
	})
	m.walBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "dynkv_wal_group_commit_records",
		Help:    "WAL records made durable by one fsync (group-commit batch size).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
	})
	m.HTTPConnsOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "dynkv_http_connections_open",
		Help: "Open connections of the HTTP port, clients and peers together (at most --http-max-conns).",
	})
	m.HTTPConnsRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dynkv_http_connections_refused_total",
		Help: "Connections to the HTTP port refused (429, or closed under TLS) because --http-max-conns were open.",
	})
	m.reg.MustRegister(m.requests, m.latency, m.siblings, m.walSync, m.walBatch,
		m.HTTPConnsOpen, m.HTTPConnsRefused,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(extra...)
	m.Limits = newLimits()
	m.reg.MustRegister(m.Limits.collectors()...)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

// ObserveSync implements wal.Observer.
func (m *Metrics) ObserveSync(d time.Duration, records, _ int) {
	m.walSync.Observe(d.Seconds())
	m.walBatch.Observe(float64(records))
}

// ObserveRequest records one served request. The Redis-protocol server
// reports through it too, with protocol "resp", so both front ends show in
// the same series.
// code is the HTTP status, or for the Redis protocol "ok" or "error"; op
// must come from a small fixed set (never a key or an unknown command).
func (m *Metrics) ObserveRequest(protocol, op, code string, d time.Duration) {
	m.requests.WithLabelValues(protocol, op, code).Inc()
	m.latency.WithLabelValues(protocol, op, code).Observe(d.Seconds())
}

// ObserveRead records the sibling count of a read that found the key.
func (m *Metrics) ObserveRead(set vclock.Set, now int64) {
	m.siblings.Observe(float64(len(set.Live(now))))
}

// Measure counts and times every HTTP request by operation and status.
func (m *Metrics) Measure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		defer func() {
			code := ww.Status()
			switch {
			case code == 0 && r.URL.Path == transport.DefaultPath:
				// Nothing written through ww: the transport took the
				// connection over and answered 101 itself (its
				// refusals are written here, so they show).
				code = http.StatusSwitchingProtocols
			case code == 0:
				// The handler wrote nothing: net/http sends 200.
				code = http.StatusOK
			}
			m.ObserveRequest("http", HTTPOp(r), strconv.Itoa(code), time.Since(start))
		}()
		next.ServeHTTP(ww, r)
	})
}

// HTTPOp names a request's operation for the "op" label.
func HTTPOp(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/kv/") || (strings.HasPrefix(p, "/db/") && strings.Contains(p, "/kv/")):
		switch r.Method {
		case http.MethodPut:
			return OpPut
		case http.MethodGet, http.MethodHead:
			return OpGet
		case http.MethodDelete:
			return OpDelete
		}
		return OpOther
	case strings.HasPrefix(p, "/cluster/"):
		return OpCluster
	case strings.HasPrefix(p, rpc.PathPrefix):
		return OpInternal
	}
	return OpOther
}

// ServeHTTP serves GET /metrics in the Prometheus text format. It sits
// behind the bearer tokens like every other path but /health: scrapers
// send one with `authorization: {credentials: ...}`.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.handler.ServeHTTP(w, r)
}

// Gather reads every metric of the registry, as a scrape would.
func (m *Metrics) Gather() ([]*dto.MetricFamily, error) { return m.reg.Gather() }
