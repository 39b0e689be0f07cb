package node

import "github.com/prometheus/client_golang/prometheus"

// limitMetrics count what the Redis-protocol memory bounds (resp_budget.go,
// resp_reader.go) and the failed-authentication guard (authfail.go) did.
type limitMetrics struct {
	// respBufferBytes is the memory the Redis-protocol commands being
	// read or executed hold (at most --resp-max-buffer-bytes).
	respBufferBytes prometheus.Gauge
	// respRefused counts commands refused by a bound, by reason.
	respRefused *prometheus.CounterVec

	authFailures     *prometheus.CounterVec
	authDelayed      *prometheus.CounterVec
	authDelaySeconds *prometheus.CounterVec
	authThrottled    *prometheus.CounterVec
	authPending      prometheus.Gauge
}

// Reasons of dynkv_resp_refused_commands_total.
const (
	refusedUnauthenticated = "unauthenticated" // over the bounds before AUTH; closed
	refusedTooLarge        = "too_large"       // over the per-command bound; closed
	refusedBuffer          = "buffer"          // --resp-max-buffer-bytes full; -TRYAGAIN
)

func newLimitMetrics() limitMetrics {
	protocol := []string{"protocol"}
	return limitMetrics{
		respBufferBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dynkv_resp_buffer_bytes",
			Help: "Memory held by the Redis-protocol commands being read or executed (arguments, MGET values), at most --resp-max-buffer-bytes.",
		}),
		respRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynkv_resp_refused_commands_total",
			Help: "Redis-protocol commands refused by a memory bound, by reason: unauthenticated (too large before AUTH; closed), too_large (over the per-command bound; closed), buffer (--resp-max-buffer-bytes in use; -TRYAGAIN).",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynkv_auth_failures_total",
			Help: "Client authentications that failed (HTTP 401 for a missing or wrong token; Redis AUTH or HELLO AUTH with a wrong password), by protocol.",
		}, protocol),
		authDelayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynkv_auth_delayed_total",
			Help: "Failed authentications with a wrong token that were answered after a delay, by protocol.",
		}, protocol),
		authDelaySeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynkv_auth_delay_seconds_total",
			Help: "Time failed authentications were held before their answer, by protocol.",
		}, protocol),
		authThrottled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynkv_auth_throttled_total",
			Help: "Authentications refused without an answer on the token (HTTP 429; Redis closes) because their source address had too many delayed answers pending, by protocol.",
		}, protocol),
		authPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dynkv_auth_delayed_pending",
			Help: "Failed authentications being delayed now.",
		}),
	}
}

func (m limitMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.respBufferBytes, m.respRefused, m.authFailures, m.authDelayed,
		m.authDelaySeconds, m.authThrottled, m.authPending}
}
