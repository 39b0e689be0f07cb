package resp

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// respBudget bounds the memory that every Redis-protocol connection
// together holds in the commands it is reading or executing: their
// arguments (counted as respReader charges them) and the values an MGET
// gathers for its reply (--resp-max-buffer-bytes). A reservation that does
// not fit is refused, never waited for: the command gets -TRYAGAIN and its
// remaining bytes are read and dropped.
type respBudget struct {
	limit int64
	used  atomic.Int64
	// inUse mirrors used (dynkv_resp_buffer_bytes).
	inUse prometheus.Gauge
}

func newRESPBudget(limit int64, inUse prometheus.Gauge) *respBudget {
	return &respBudget{limit: limit, inUse: inUse}
}

// reserve takes n bytes, or nothing and false when they do not fit.
func (b *respBudget) reserve(n int64) bool {
	for {
		u := b.used.Load()
		if n > b.limit-u {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			b.inUse.Add(float64(n))
			return true
		}
	}
}

// release returns n reserved bytes.
func (b *respBudget) release(n int64) {
	b.used.Add(-n)
	b.inUse.Sub(float64(n))
}

// respErrBufferFull answers a command refused by the budget. TRYAGAIN,
// because it is transient (go-redis retries it by itself).
const respErrBufferFull = "TRYAGAIN node is overloaded: Redis-protocol commands in progress hold --resp-max-buffer-bytes; retry later"
