package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynkv/dynkv/client"
	"github.com/dynkv/dynkv/internal/defaults"
)

// benchConfig is what `dynkv bench` was asked to do.
type benchConfig struct {
	clientFlags
	conns     int
	duration  time.Duration
	requests  int64
	keys      int
	valueSize int
	readRatio float64
	prefill   bool
	seed      uint64
	progress  bool
}

func benchCommand(bc *benchConfig) *command {
	c := newCommand("bench", "bench [flags]", `Sends a mix of reads and blind writes of uniformly random keys from
--connections concurrent workers, prints a progress line on stderr every
second and a summary on stdout. Requests are not retried: every failure
is counted by status.`)
	bc.clientFlags.register(c)
	c.fs.IntVar(&bc.conns, "connections", 64, "concurrent workers, each with its own keep-alive connection")
	c.fs.DurationVar(&bc.duration, "duration", 10*time.Second, "how long to run (ignored when --requests is set)")
	c.fs.Int64Var(&bc.requests, "requests", 0, "stop after this many requests instead of after --duration")
	c.fs.IntVar(&bc.keys, "keys", 100000, "size of the key space")
	c.fs.IntVar(&bc.valueSize, "value-size", 100, "bytes per written value")
	c.fs.Float64Var(&bc.readRatio, "read-ratio", 0.5, "fraction of requests that are reads, 0 to 1")
	c.fs.BoolVar(&bc.prefill, "prefill", false, "write every key once before measuring, so reads hit")
	c.fs.Uint64Var(&bc.seed, "seed", 0, "random seed for the key and operation sequence (0: from the clock)")
	c.fs.BoolVar(&bc.progress, "progress", true, "print a progress line on stderr every second")
	c.readsEnv(clientEnv...)
	return c
}

func (bc *benchConfig) check() error {
	if err := bc.clientFlags.check(); err != nil {
		return err
	}
	switch {
	case bc.conns < 1 || bc.conns > 10000:
		return usagef("bench: --connections %d: want 1 to 10000", bc.conns)
	case bc.requests < 0:
		return usagef("bench: --requests %d: want 0 (use --duration) or more", bc.requests)
	case bc.requests == 0 && bc.duration <= 0:
		return usagef("bench: --duration %s: want a positive duration", bc.duration)
	case bc.keys < 1:
		return usagef("bench: --keys %d: want at least 1", bc.keys)
	case bc.valueSize < 0:
		return usagef("bench: --value-size %d: want 0 or more", bc.valueSize)
	case !(bc.readRatio >= 0 && bc.readRatio <= 1):
		return usagef("bench: --read-ratio %v: want 0 to 1", bc.readRatio)
	}
	return nil
}

// opKind indexes the per-operation statistics.
type opKind int

const (
	opRead opKind = iota
	opWrite
	opKinds
)

var opNames = [opKinds]string{"read", "write"}

// workerStats is one worker's tally. The worker locks it per sample (never
// contended but by the once-a-second reporter), which keeps samples off
// shared cache lines.
type workerStats struct {
	mu       sync.Mutex
	hist     [opKinds]histogram
	statuses map[string]uint64 // "200", "404", "503", "conn", ...
	errors   uint64
}

func (w *workerStats) add(op opKind, status string, failed bool, d time.Duration) {
	w.mu.Lock()
	w.hist[op].record(d)
	w.statuses[status]++
	if failed {
		w.errors++
	}
	w.mu.Unlock()
}

// benchTotals is a merged snapshot of every worker.
type benchTotals struct {
	hist     [opKinds]histogram
	all      histogram
	statuses map[string]uint64
	errors   uint64
}

func snapshot(workers []*workerStats) *benchTotals {
	t := &benchTotals{statuses: map[string]uint64{}}
	for _, w := range workers {
		w.mu.Lock()
		for op := range opKinds {
			t.hist[op].merge(&w.hist[op])
		}
		for s, n := range w.statuses {
			t.statuses[s] += n
		}
		t.errors += w.errors
		w.mu.Unlock()
	}
	for op := range opKinds {
		t.all.merge(&t.hist[op])
	}
	return t
}

// classify names the outcome of a request. A 404 on a read is an answer,
// not an error: without --prefill most reads miss.
func classify(op opKind, err error) (status string, failed bool) {
	var apiErr *client.APIError
	switch {
	case err == nil && op == opRead:
		return "200", false
	case err == nil:
		return "204", false
	case errors.Is(err, client.ErrNotFound):
		return "404", false
	case errors.As(err, &apiErr):
		return strconv.Itoa(apiErr.Status), true
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout", true
	default:
		return "conn", true
	}
}

func runBench(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	bc := &benchConfig{}
	c := benchCommand(bc)
	pos, err := c.parse(args, env, stdout)
	if err == nil {
		err = bc.check()
	}
	if err == nil && len(pos) > 0 {
		err = usagef("bench: unexpected argument %q", pos[0])
	}
	if err != nil {
		return report(stderr, err)
	}
	defaults.Set(&bc.seed, uint64(time.Now().UnixNano()))
	hc, err := bc.httpClient(bc.conns)
	if err != nil {
		return report(stderr, err)
	}
	defer hc.CloseIdleConnections()
	// One client per node, no retries, no failover: the bench measures each
	// request as the server answered it.
	var clients []*client.Client
	token, _, _ := strings.Cut(bc.token, ",")
	for _, a := range strings.Split(bc.addr, ",") {
		if strings.TrimSpace(a) == "" {
			continue
		}
		cl, err := client.New([]string{a}, client.WithHTTPClient(hc), client.WithRetries(0), client.WithToken(strings.TrimSpace(token)))
		if err != nil {
			return report(stderr, usagef("bench: --addr: %v", err))
		}
		clients = append(clients, cl)
	}
	if len(clients) == 0 {
		return report(stderr, usagef("bench: --addr: no address given"))
	}
	b := &bench{cfg: bc, clients: clients, value: make([]byte, bc.valueSize)}
	rng := rand.New(rand.NewPCG(bc.seed, 0x64796e6b76))
	for i := range b.value {
		b.value[i] = 'a' + byte(rng.IntN(26))
	}
	fmt.Fprintf(stderr, "bench: %d node(s), %d connections, %d keys, %d-byte values, read ratio %.2f, seed %d\n",
		len(clients), bc.conns, bc.keys, bc.valueSize, bc.readRatio, bc.seed)

	if bc.prefill {
		start := time.Now()
		written, failed := b.prefill(ctx)
		fmt.Fprintf(stderr, "bench: prefilled %d keys in %s (%d failed)\n", written, time.Since(start).Round(time.Millisecond), failed)
		if ctx.Err() != nil {
			return report(stderr, errors.New("bench: interrupted during prefill"))
		}
		if written == 0 {
			return report(stderr, fmt.Errorf("bench: prefill: every write failed; is a node listening at %s?", bc.addr))
		}
	}

	res := b.run(ctx, stderr)
	if bc.output == "json" {
		writeJSON(stdout, res.jsonSummary(bc))
	} else {
		res.writeText(stdout, bc)
	}
	ops := res.totals.all.n
	if ops > 0 && res.totals.errors == ops {
		return report(stderr, fmt.Errorf("bench: all %d requests failed (%s)", ops, statusList(res.totals.statuses)))
	}
	return exitOK
}

type bench struct {
	cfg     *benchConfig
	clients []*client.Client
	value   []byte // shared and never written after setup
}

func (b *bench) key(i int) string { return "bench:" + strconv.Itoa(i) }

// requestContext bounds one request by --timeout and by ctx (an interrupt).
func (b *bench) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.cfg.timeout)
}

// prefill writes every key once, the key space split across the workers.
func (b *bench) prefill(ctx context.Context) (written, failed int64) {
	var ok, bad atomic.Int64
	var wg sync.WaitGroup
	for w := range b.cfg.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := b.clients[w%len(b.clients)]
			for k := w; k < b.cfg.keys && ctx.Err() == nil; k += b.cfg.conns {
				rctx, cancel := b.requestContext(ctx)
				_, err := cl.Put(rctx, b.key(k), b.value, client.PutOptions{DB: b.cfg.db})
				cancel()
				if err != nil {
					bad.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return ok.Load(), bad.Load()
}

type benchResult struct {
	elapsed time.Duration
	totals  *benchTotals
}

// run drives the workers until --duration has passed or --requests were
// sent, or ctx ends. Requests in flight at the deadline finish and count;
// only an interrupt (ctx) cuts them off.
func (b *bench) run(ctx context.Context, stderr io.Writer) *benchResult {
	workers := make([]*workerStats, b.cfg.conns)
	for i := range workers {
		workers[i] = &workerStats{statuses: map[string]uint64{}}
	}
	var stop atomic.Bool
	var issued atomic.Int64
	start := time.Now()
	var deadline <-chan time.Time
	if b.cfg.requests == 0 {
		t := time.NewTimer(b.cfg.duration)
		defer t.Stop()
		deadline = t.C
	}

	var wg sync.WaitGroup
	for w := range b.cfg.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.work(ctx, w, workers[w], &stop, &issued)
		}()
	}
	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(allDone)
	}()

	interrupted := ctx.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastOps uint64
	lastTick := start
	for {
		select {
		case <-allDone:
			elapsed := time.Since(start)
			if b.cfg.progress && isTerminal(stderr) {
				fmt.Fprintln(stderr) // end the rewritten line
			}
			return &benchResult{elapsed: elapsed, totals: snapshot(workers)}
		case <-deadline:
			stop.Store(true)
			deadline = nil
		case <-interrupted:
			stop.Store(true)
			interrupted = nil // a closed channel would make this loop spin
		case now := <-tick.C:
			if !b.cfg.progress {
				continue
			}
			t := snapshot(workers)
			rate := float64(t.all.n-lastOps) / now.Sub(lastTick).Seconds()
			lastOps, lastTick = t.all.n, now
			line := fmt.Sprintf("[%4ds] %9.0f ops/s  %10d ops  %6d errors  p99 %-9s",
				int(now.Sub(start).Round(time.Second)/time.Second), rate, t.all.n, t.errors, fmtDur(t.all.quantile(0.99)))
			if isTerminal(stderr) {
				fmt.Fprint(stderr, "\r"+line)
			} else {
				fmt.Fprintln(stderr, strings.TrimRight(line, " "))
			}
		}
	}
}

// work is one worker's loop: bounded by stop (the deadline or an interrupt)
// and by the shared request budget.
func (b *bench) work(ctx context.Context, w int, stats *workerStats, stop *atomic.Bool, issued *atomic.Int64) {
	cl := b.clients[w%len(b.clients)]
	rng := rand.New(rand.NewPCG(b.cfg.seed, uint64(w)))
	for !stop.Load() && ctx.Err() == nil {
		if b.cfg.requests > 0 && issued.Add(1) > b.cfg.requests {
			return
		}
		key := b.key(rng.IntN(b.cfg.keys))
		op := opWrite
		if rng.Float64() < b.cfg.readRatio {
			op = opRead
		}
		rctx, cancel := b.requestContext(ctx)
		begin := time.Now()
		var err error
		conflict := false
		if op == opRead {
			var res *client.Result
			res, err = cl.Get(rctx, key, client.GetOptions{DB: b.cfg.db})
			conflict = err == nil && res.Conflict()
		} else {
			_, err = cl.Put(rctx, key, b.value, client.PutOptions{DB: b.cfg.db})
		}
		d := time.Since(begin)
		cancel()
		if ctx.Err() != nil {
			// Cut off by an interrupt: neither a latency nor a failure.
			return
		}
		status, failed := classify(op, err)
		if conflict {
			status = "300"
		}
		stats.add(op, status, failed, d)
	}
}

// isTerminal reports whether w is a character device, where the progress
// line rewrites itself instead of scrolling.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
}

func statusList(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

var quantiles = []struct {
	name string
	q    float64
}{{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}, {"p999", 0.999}}

func latencyLine(h *histogram) string {
	if h.n == 0 {
		return "-"
	}
	var sb strings.Builder
	for _, q := range quantiles {
		fmt.Fprintf(&sb, "%s %-9s ", q.name, fmtDur(h.quantile(q.q)))
	}
	fmt.Fprintf(&sb, "max %-9s mean %s", fmtDur(time.Duration(h.max)), fmtDur(h.mean()))
	return sb.String()
}

func (r *benchResult) opsPerSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.totals.all.n) / r.elapsed.Seconds()
}

func (r *benchResult) writeText(w io.Writer, bc *benchConfig) {
	t := r.totals
	fmt.Fprintf(w, "duration    %s\n", r.elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "ops         %d (%d reads, %d writes)\n", t.all.n, t.hist[opRead].n, t.hist[opWrite].n)
	fmt.Fprintf(w, "throughput  %.0f ops/s\n", r.opsPerSec())
	fmt.Fprintf(w, "errors      %d\n", t.errors)
	fmt.Fprintf(w, "statuses    %s\n", statusList(t.statuses))
	fmt.Fprintf(w, "latency     %s\n", latencyLine(&t.all))
	for op := range opKinds {
		fmt.Fprintf(w, "  %-9s %s\n", opNames[op], latencyLine(&t.hist[op]))
	}
}

type jsonLatency struct {
	Count  uint64             `json:"count"`
	Millis map[string]float64 `json:"ms"`
}

func latencyJSON(h *histogram) jsonLatency {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	out := jsonLatency{Count: h.n, Millis: map[string]float64{}}
	if h.n == 0 {
		return out
	}
	for _, q := range quantiles {
		out.Millis[q.name] = ms(h.quantile(q.q))
	}
	out.Millis["max"] = ms(time.Duration(h.max))
	out.Millis["mean"] = ms(h.mean())
	return out
}

func (r *benchResult) jsonSummary(bc *benchConfig) map[string]any {
	t := r.totals
	return map[string]any{
		"addrs":       strings.Split(bc.addr, ","),
		"connections": bc.conns,
		"keys":        bc.keys,
		"value_size":  bc.valueSize,
		"read_ratio":  bc.readRatio,
		"seed":        bc.seed,
		"duration_s":  r.elapsed.Seconds(),
		"ops":         t.all.n,
		"reads":       t.hist[opRead].n,
		"writes":      t.hist[opWrite].n,
		"ops_per_sec": r.opsPerSec(),
		"errors":      t.errors,
		"statuses":    t.statuses,
		"latency":     latencyJSON(&t.all),
		"read":        latencyJSON(&t.hist[opRead]),
		"write":       latencyJSON(&t.hist[opWrite]),
	}
}
