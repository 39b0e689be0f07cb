package metrics

import "github.com/prometheus/client_golang/prometheus"

// Limits count what the Redis-protocol memory bounds (node/resp) and the
// failed-authentication guard did.
type Limits struct {
	// RESPBufferBytes is the memory the Redis-protocol commands being
	// read or executed hold (at most --resp-max-buffer-bytes).
	RESPBufferBytes prometheus.Gauge
	// RESPRefused counts commands refused by a bound, by reason.
	RESPRefused *prometheus.CounterVec

	AuthFailures     *prometheus.CounterVec
	AuthDelayed      *prometheus.CounterVec
	AuthDelaySeconds *prometheus.CounterVec
	AuthThrottled    *prometheus.CounterVec
	AuthPending      prometheus.Gauge
}

// Reasons of dynkv_resp_refused_commands_total.
const (
	RefusedUnauthenticated = "unauthenticated" // over the bounds before AUTH; closed
	RefusedTooLarge        = "too_large"       // over the per-command bound; closed
	RefusedBuffer          = "buffer"          // --resp-max-buffer-bytes full; -TRYAGAIN
)

func newLimits() Limits {
	protocol := []string{"protocol"}
	return Limits{
		RESPBufferBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dynkv_resp_buffer_bytes",
			Help: "Memory held by the Redis-protocol commands being read or executed (arguments, MGET values), at most --resp-max-buffer-bytes.",
		}),
		RESPRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynkv_resp_refused_commands_total",
			Help: "Redis-protocol commands refused by a memory bound, by reason: unauthenticated (too large before AUTH; closed), too_large (over the per-command bound; closed), buffer (--resp-max-buffer-bytes in use; -TRYAGAIN).",
		}, []string{"reason"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynkv_auth_failures_total",
			Help: "Client authentications that failed (HTTP 401 for a missing or wrong token; Redis AUTH or HELLO AUTH with a wrong password), by protocol.",
		}, protocol),
		AuthDelayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynkv_auth_delayed_total",
			Help: "Failed authentications with a wrong token that were answered after a delay, by protocol.",
		}, protocol),
		AuthDelaySeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynkv_auth_delay_seconds_total",
			Help: "Time failed authentications were held before their answer, by protocol.",
		}, protocol),
		AuthThrottled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynkv_auth_throttled_total",
			Help: "Authentications refused without an answer on the token (HTTP 429; Redis closes) because their source address had too many delayed answers pending, by protocol.",
		}, protocol),
		AuthPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dynkv_auth_delayed_pending",
			Help: "Failed authentications being delayed now.",
		}),
	}
}

func (m Limits) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.RESPBufferBytes, m.RESPRefused, m.AuthFailures, m.AuthDelayed,
		m.AuthDelaySeconds, m.AuthThrottled, m.AuthPending}
}
