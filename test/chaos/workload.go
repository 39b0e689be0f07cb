package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

// RequestTimeout bounds one client request: above the server's 5s
// --request-timeout so quorum failures come back as 503, short enough that a
// paused node (which accepts and never answers) does not stall a client.
const RequestTimeout = 8 * time.Second

// opPause spaces a client's requests, so that five nodes (perhaps built
// with -race) on two shared cores keep up and faults, not overload, decide
// what fails.
const opPause = 10 * time.Millisecond

// Workloads runs the clients of the distinct-writes and set-append
// workloads until Stop.
type Workloads struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// WorkloadOptions configure the clients.
type WorkloadOptions struct {
	Nodes       []*testnode.Node
	History     *History
	Seed        uint64
	Writers     int      // distinct-writes clients
	Appenders   int      // set-append clients
	SetKeys     []string // keys of the set-append workload, which start absent
	KeyPrefix   string   // prefix of distinct keys, so phases do not collide
	DeleteRatio float64  // share of acknowledged writes a writer then deletes
	ReadRatio   float64  // share of operations that read back an earlier write
	// PinWriters binds distinct-writes client i to Nodes[i%len(Nodes)],
	// as an application server talks to its nearest node: while a fault
	// holds, the clients of the nodes it leaves alone keep going, so the
	// availability figures measure what they see (a client of a paused
	// node waits out its timeout whichever node it would try next).
	PinWriters bool
}

// StartWorkloads starts the clients; each has its own random source
// derived from the seed, so a replay makes the same choices (timing
// differs, and with it what faults hit).
func StartWorkloads(o WorkloadOptions) *Workloads {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Workloads{cancel: cancel}
	for i := range o.Writers {
		rng := rand.New(rand.NewPCG(o.Seed, uint64(1000+i)))
		w.wg.Go(func() { distinctWriter(ctx, o, i, rng) })
	}
	for i := range o.Appenders {
		rng := rand.New(rand.NewPCG(o.Seed, uint64(2000+i)))
		w.wg.Go(func() { setAppender(ctx, o, i, rng) })
	}
	return w
}

// Stop ends the clients and waits for them; a request in flight runs to
// its answer or its timeout, so its outcome is recorded.
func (w *Workloads) Stop() {
	w.cancel()
	w.wg.Wait()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// request runs one bounded request to nd and records its outcome in h
// (ok judges the answer); it is not tied to the workload's context, so
// Stop does not turn an acknowledged write into an unknown.
func request(h *History, nd *testnode.Node, write bool, ok func(testnode.Response) bool,
	f func(ctx context.Context) (testnode.Response, error)) (testnode.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), RequestTimeout)
	defer cancel()
	start := time.Now()
	r, err := f(ctx)
	h.Observe(Observation{Node: nd.Index(), Write: write, OK: err == nil && ok(r), Start: start, Took: time.Since(start)})
	return r, err
}

// Judges of an answer, for request.
func answered(r testnode.Response) bool { return r.Status < 500 }
func written(r testnode.Response) bool  { return r.Status == http.StatusNoContent }

// distinctWriter writes new keys with unique values through random nodes,
// deletes some of those it got acknowledged, and reads back earlier ones.
func distinctWriter(ctx context.Context, o WorkloadOptions, id int, rng *rand.Rand) {
	h := o.History
	pick := func() *testnode.Node {
		if o.PinWriters {
			return o.Nodes[id%len(o.Nodes)]
		}
		return o.Nodes[rng.IntN(len(o.Nodes))]
	}
	for seq := 0; sleepCtx(ctx, opPause); seq++ {
		nd := pick()
		if rng.Float64() < o.ReadRatio {
			key, value, ok := h.Readable(rng.IntN)
			if !ok {
				continue
			}
			h.Ops.Add(1)
			r, err := request(h, nd, false, answered, func(c context.Context) (testnode.Response, error) {
				return nd.GetContext(c, key, testnode.KV{})
			})
			if err != nil || r.Status >= 500 {
				h.Failed.Add(1)
				continue
			}
			h.Reads.Add(1)
			if r.Status != http.StatusOK || string(r.Body) != value {
				h.StaleReads.Add(1)
			}
			continue
		}
		key := fmt.Sprintf("%sw%d/%d", o.KeyPrefix, id, seq)
		value := fmt.Sprintf("v%d-%d-%x", id, seq, rng.Uint32())
		h.PutAttempt(key, value)
		h.Ops.Add(1)
		r, err := request(h, nd, true, written, func(c context.Context) (testnode.Response, error) {
			return nd.PutContext(c, key, []byte(value), testnode.KV{})
		})
		if err != nil || r.Status != http.StatusNoContent {
			h.Failed.Add(1)
			continue
		}
		h.PutAcked(key, r.Context)
		if rng.Float64() >= o.DeleteRatio {
			continue
		}
		// The delete carries the write's context, as a client that read
		// or wrote the key must: a blind delete supersedes only what its
		// coordinating replica holds, and during a fault that replica may
		// not hold the write yet, leaving the value as a sibling of the
		// tombstone (SPEC section 5).
		putCtx := r.Context
		nd = pick()
		h.DeleteAttempt(key)
		h.Ops.Add(1)
		r, err = request(h, nd, true, written, func(c context.Context) (testnode.Response, error) {
			return nd.DeleteContext(c, key, testnode.KV{Context: putCtx})
		})
		if err != nil || r.Status != http.StatusNoContent {
			h.Failed.Add(1)
			continue
		}
		h.DeleteAcked(key)
	}
}

// setAppender adds unique elements to the set keys the way a client must:
// read (siblings and context), union, add, write back with the context.
// The keys do not exist when the run starts, so the first writes of
// racing appenders are creates with a 404's context (issue 10: a create
// must supersede nothing, or a concurrent create's element is lost).
func setAppender(ctx context.Context, o WorkloadOptions, id int, rng *rand.Rand) {
	h := o.History
	for seq := 0; sleepCtx(ctx, opPause); seq++ {
		key := o.SetKeys[rng.IntN(len(o.SetKeys))]
		nd := o.Nodes[rng.IntN(len(o.Nodes))]
		existed := len(h.AckedElements(key)) > 0
		h.Ops.Add(1)
		r, err := request(h, nd, false, answered, func(c context.Context) (testnode.Response, error) {
			return nd.GetContext(c, key, testnode.KV{})
		})
		if err != nil || r.Status >= 500 {
			h.Failed.Add(1)
			continue
		}
		h.Reads.Add(1)
		if r.Context == "" {
			// Every GET answers with a context, a 404 included (SPEC
			// section 3); without one the write back would be blind.
			h.Failed.Add(1)
			continue
		}
		if r.Status == http.StatusNotFound && existed {
			// A 404 missed an acknowledged element. The write back is
			// still safe: the 404's context supersedes only what it
			// covers, so it becomes a sibling of what it missed.
			h.StaleReads.Add(1)
		}
		vals, err := r.Values()
		if err != nil {
			h.Failed.Add(1)
			continue
		}
		set := Elements(vals)
		elem := fmt.Sprintf("a%d-%d", id, seq)
		set[elem] = true
		readCtx := r.Context
		nd = o.Nodes[rng.IntN(len(o.Nodes))]
		h.Ops.Add(1)
		r, err = request(h, nd, true, written, func(c context.Context) (testnode.Response, error) {
			return nd.PutContext(c, key, EncodeElements(set), testnode.KV{Context: readCtx})
		})
		if err != nil || r.Status != http.StatusNoContent {
			h.Failed.Add(1)
			continue
		}
		h.ElementAcked(key, elem)
	}
}
