#!/usr/bin/env bash
# dynkv against its peers, on loopback, with one load generator setting for
# every pair (issue 11's targets; docs/benchmarks.md, "Against etcd and
# Redis"). A benchmark, never a test: it asserts nothing and always exits 0
# once the table is printed.
#
#   scripts/bench-peers.sh                              3 rounds of 10 s
#   ROUNDS=1 DURATION=5 REDIS_N=20000 scripts/bench-peers.sh   a smoke run
#   DYNKV_BIN=/tmp/before/dynkv scripts/bench-peers.sh  a given binary
#   SUITES=cluster scripts/bench-peers.sh               dynkv-3 vs etcd-3 only
#
# Suites, each with its own servers, started fresh and stopped at its end:
#   cluster  dynkv 3 nodes (N=3 R=2 W=2, --fsync always) against etcd 3
#            nodes (Raft, fsync), HTTP: wrk PUTs and GETs of random keys
#            after a prefill of every key; etcd through its HTTP/JSON
#            gateway (POST /v3/kv/put, /v3/kv/range, base64 keys/values).
#   single   dynkv 1 node: the same wrk PUTs and GETs, and the Redis
#            protocol against Redis (appendonly yes, appendfsync always)
#            with redis-benchmark -t set, then -t get, at each -c of
#            REDIS_CLIENTS, -d VALUE_BYTES -r KEYS -n REDIS_N.
# Within a suite every round runs each pair A then B, the next round B then
# A, so that the machine's drift hits both. Per run it reads the servers'
# CPU (utime+stime, and that of reaped children, from /proc/PID/stat) and,
# for dynkv, the node-to-node calls served (RPC_METRIC, summed over the
# nodes' /metrics) before and after, and divides by the operations done.
#
# Knobs (environment): ROUNDS (3), DURATION seconds per wrk run (10),
# CONNECTIONS (64), THREADS wrk threads in all (2), KEYS (10000),
# VALUE_BYTES (100), REDIS_N (100000), REDIS_CLIENTS ("16 64"),
# SUITES ("cluster single"), SPREAD (1: wrk's connections are split over
# the nodes of a 3-node system, one wrk each, histograms merged; 0: all to
# the first node), PAUSE seconds between runs (1), PORT_BASE (21000; ports
# PORT_BASE+1 to +51 on 127.0.0.1), BENCH_TMP (parent of the data
# directories; $TMPDIR or /tmp: it must be a real disk, not tmpfs),
# KEEP=1 keeps data, logs and results.tsv, DYNKV_BIN a dynkv binary to use
# instead of building the working tree, RPC_METRIC
# ('dynkv_rpc_calls_total{side="served"}': name{label="value",...}; the
# node-to-node calls served over the transport and over HTTP/2 alike; for
# a dynkv binary older than the transport, whose calls were all HTTP/2,
# 'dynkv_requests_total{op="internal"}').
#
# As root it installs what is missing from Debian's packages (etcd-server,
# etcd-client, redis-server, redis-tools, wrk). Progress goes to stderr,
# the table to stdout.
#
# The workloads are functions called through pair(), which shellcheck
# cannot follow:
# shellcheck disable=SC2317
set -euo pipefail

caller_dir=$PWD
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
KEYS=${KEYS:-10000}
VALUE_BYTES=${VALUE_BYTES:-100}
REDIS_N=${REDIS_N:-100000}
REDIS_CLIENTS=${REDIS_CLIENTS:-16 64}
SUITES=${SUITES:-cluster single}
SPREAD=${SPREAD:-1}
PAUSE=${PAUSE:-1}
PORT_BASE=${PORT_BASE:-21000}
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
KEEP=${KEEP:-0}
DYNKV_BIN=${DYNKV_BIN:-}
default_rpc_metric='dynkv_rpc_calls_total{side="served"}'
RPC_METRIC=${RPC_METRIC:-$default_rpc_metric}

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "bench-peers: $*"
	exit 1
}

# int NAME MIN MAX: the knob NAME is an integer in [MIN, MAX].
int() {
	local v=${!1}
	if ! [[ $v =~ ^[0-9]+$ ]] || ((v < $2 || v > $3)); then
		die "$1=$v: want an integer from $2 to $3"
	fi
}
int ROUNDS 1 100
int DURATION 1 600
int CONNECTIONS 1 10000
int THREADS 1 64
int KEYS 1 1000000
int VALUE_BYTES 1 1048576
int REDIS_N 1 100000000
int SPREAD 0 1
int PAUSE 0 60
int PORT_BASE 1024 65000
int KEEP 0 1
for c in $REDIS_CLIENTS; do
	if ! [[ $c =~ ^[0-9]+$ ]] || ((c < 1 || c > 10000)); then
		die "REDIS_CLIENTS: $c is not a client count"
	fi
done
want_cluster=0 want_single=0
for s in $SUITES; do
	case $s in
	cluster) want_cluster=1 ;;
	single) want_single=1 ;;
	*) die "SUITES: unknown suite $s (cluster, single)" ;;
	esac
done
((want_cluster + want_single > 0)) || die "SUITES is empty"

# --- tools ---------------------------------------------------------------

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have curl || need+=(curl)
have python3 || need+=(python3)
have wrk || need+=(wrk)
if ((want_cluster)); then
	have etcd || need+=(etcd-server)
	have etcdctl || need+=(etcd-client)
fi
if ((want_single)); then
	have redis-server || need+=(redis-server)
	{ have redis-benchmark && have redis-cli; } || need+=(redis-tools)
fi
if ((${#need[@]} > 0)); then
	[[ $(id -u) -eq 0 ]] || die "missing ${need[*]}: install them (Debian: apt-get install ${need[*]}) or run as root"
	log "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
clk_tck=$(getconf CLK_TCK)

# --- ports -------------------------------------------------------------------

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

p=$PORT_BASE
d3_http=($((p + 1)) $((p + 2)) $((p + 3)))
d3_gossip=($((p + 11)) $((p + 12)) $((p + 13)))
e3_client=($((p + 21)) $((p + 22)) $((p + 23)))
e3_peer=($((p + 31)) $((p + 32)) $((p + 33)))
d1_http=$((p + 41)) d1_gossip=$((p + 42)) d1_resp=$((p + 43))
redis_port=$((p + 51))
for port in "${d3_http[@]}" "${d3_gossip[@]}" "${e3_client[@]}" "${e3_peer[@]}" "$d1_http" "$d1_gossip" "$d1_resp" "$redis_port"; do
	port_busy "$port" && die "127.0.0.1:$port is in use: choose another PORT_BASE"
done

# --- processes and clean-up ----------------------------------------------

tmp=$(mktemp -d "$BENCH_TMP/bench-peers.XXXXXX")
mkdir -p "$tmp/log" "$tmp/data" "$tmp/res"
results=$tmp/results.tsv
: >"$results"
pids=() # every process started in the background, for clean-up

# ppid PID: the parent of a process, empty when it is gone.
ppid() {
	local s f
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	read -r -a f <<<"$s"
	[[ ${f[0]} == Z ]] || echo "${f[1]}"
}

# stop PID...: TERM, up to 10 s for them to go, then KILL. Only processes
# this shell started (their parent is this shell), so a recycled PID is
# never hit.
stop() {
	local pid i alive
	local mine=()
	for pid; do
		[[ $(ppid "$pid") == "$$" ]] && mine+=("$pid")
	done
	((${#mine[@]} > 0)) || return 0
	kill -TERM "${mine[@]}" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		alive=()
		for pid in "${mine[@]}"; do
			[[ $(ppid "$pid") == "$$" ]] && alive+=("$pid")
		done
		((${#alive[@]} > 0)) || break
		sleep 0.1
	done
	for pid in "${mine[@]}"; do
		if [[ $(ppid "$pid") == "$$" ]]; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	for pid in "${mine[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
}

cleanup() {
	local rc=$?
	trap - EXIT
	stop "${pids[@]}"
	if ((rc != 0 || KEEP)); then
		log "data, logs and results kept in $tmp"
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: CMD in the background, its output in log/NAME.log;
# the PID is in $last_pid.
last_pid=
start() {
	local name=$1
	shift
	"$@" >"$tmp/log/$name.log" 2>&1 &
	last_pid=$!
	pids+=("$last_pid")
}


# --- dynkv binary ----------------------------------------------------------

if [[ -n $DYNKV_BIN ]]; then
	[[ $DYNKV_BIN == /* ]] || DYNKV_BIN=$caller_dir/$DYNKV_BIN
	[[ -x $DYNKV_BIN ]] || die "DYNKV_BIN=$DYNKV_BIN is not an executable"
	bin=$DYNKV_BIN
	bin_desc="$bin (DYNKV_BIN)"
else
	log "go build -o $tmp/dynkv ./cmd/dynkv"
	go build -o "$tmp/dynkv" ./cmd/dynkv
	bin=$tmp/dynkv
	bin_desc="working tree at $(git rev-parse --short HEAD 2>/dev/null || echo '?') (uncommitted changes included)"
fi

fstype=$(findmnt -n -o FSTYPE -T "$tmp" 2>/dev/null || stat -f -c %T "$tmp")
[[ $fstype != tmpfs && $fstype != ramfs ]] || log "warning: $tmp is on $fstype: fsync costs nothing there; set BENCH_TMP to a directory on a disk"

# --- helpers ----------------------------------------------------------------

# cpu_ticks PID...: utime+stime+cutime+cstime summed, in clock ticks. A
# server that died ends the run.
cpu_ticks() {
	local pid s total=0 f
	for pid; do
		s=$(cat "/proc/$pid/stat" 2>/dev/null) || die "server process $pid is gone (logs in $tmp/log)"
		s=${s##*) }
		read -r -a f <<<"$s"
		[[ ${f[0]} != Z ]] || die "server process $pid died (logs in $tmp/log)"
		total=$((total + f[11] + f[12] + f[13] + f[14]))
	done
	echo "$total"
}

# metric_sum SELECTOR URL...: the sum over the nodes' /metrics of every
# series matching name{label="value",...} (all series of name without
# braces).
metric_sum() {
	local sel=$1 u
	shift
	for u; do
		curl -sf --max-time 10 "$u/metrics" || die "cannot read $u/metrics"
	done | awk -v sel="$sel" '
		BEGIN {
			name = sel; nl = 0; i = index(sel, "{")
			if (i) { name = substr(sel, 1, i - 1); ls = substr(sel, i + 1); sub(/}$/, "", ls); nl = split(ls, want, ",") }
		}
		/^#/ { next }
		{
			m = $1; n = m; j = index(m, "{"); if (j) n = substr(m, 1, j - 1)
			if (n != name) next
			for (k = 1; k <= nl; k++) if (index(m, want[k]) == 0) next
			s += $NF
		}
		END { printf "%.0f\n", s }'
}

# wait_for WHAT TRIES CMD...: CMD every 0.5 s until it succeeds, at most
# TRIES times.
wait_for() {
	local what=$1 tries=$2 i
	shift 2
	for ((i = 0; i < tries; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	die "$what not ready after $((tries / 2)) s (logs in $tmp/log)"
}

# dynkv_cluster_ready URL...: every node ready, and sees every node alive
# with a share of the ring and no transition under way.
dynkv_cluster_ready() {
	python3 - "$@" <<'PY'
import json, sys, urllib.request
urls = sys.argv[1:]
for u in urls:
    with urllib.request.urlopen(u + "/ready", timeout=2) as r:
        if r.status != 200:
            sys.exit(1)
    if len(urls) == 1:
        continue
    with urllib.request.urlopen(u + "/cluster/status", timeout=2) as r:
        st = json.load(r)
    alive = [m for m in st.get("members", []) if m.get("state") == "alive" and m.get("ring_share", 1) > 0]
    if len(alive) != len(urls) or st.get("transition"):
        sys.exit(1)
PY
}

# prefill_http dynkv|etcd URL...: writes every key once (32 connections
# round-robin over the URLs), then reads one back.
prefill_http() {
	python3 - "$1" "$KEYS" "$VALUE_BYTES" "${@:2}" <<'PY'
import base64, http.client, json, random, sys, threading, time, urllib.parse
kind, keys, vbytes, urls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
value = bytes(random.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(vbytes))
b64 = lambda b: base64.b64encode(b).decode()
W = 32
failures = []

def req(c, key):
    if kind == "dynkv":
        c.request("PUT", "/kv/" + key, body=value, headers={"Content-Type": "application/octet-stream"})
    else:
        c.request("POST", "/v3/kv/put", body=json.dumps({"key": b64(key.encode()), "value": b64(value)}),
                  headers={"Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    return r.status, body

def worker(w):
    u = urllib.parse.urlsplit(urls[w % len(urls)])
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    for i in range(w, keys, W):
        key = "bench-%05d" % i
        for attempt in range(5):
            try:
                st, body = req(c, key)
            except Exception as e:
                st, body = 0, str(e).encode()
                c.close()
                c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            if 200 <= st < 300:
                break
            time.sleep(0.2)
        else:
            failures.append((key, st, body[:200]))
            return

ts = [threading.Thread(target=worker, args=(w,)) for w in range(W)]
for t in ts: t.start()
for t in ts: t.join()
if failures:
    sys.exit("prefill failed: %r" % failures[:3])
u = urllib.parse.urlsplit(urls[-1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
if kind == "dynkv":
    c.request("GET", "/kv/bench-00000")
    r = c.getresponse(); body = r.read()
    ok = r.status in (200, 300)
else:
    c.request("POST", "/v3/kv/range", body=json.dumps({"key": b64(b"bench-00000")}))
    r = c.getresponse(); body = r.read()
    ok = r.status == 200 and json.loads(body).get("count") == "1"
if not ok:
    sys.exit("prefill read-back failed: %d %r" % (r.status, body[:200]))
PY
}

# prefill_resp PORT: SETs every key redis-benchmark -r KEYS names
# (key:%012d), pipelined over 16 connections.
prefill_resp() {
	python3 - "$1" "$KEYS" "$VALUE_BYTES" <<'PY'
import socket, sys, threading
port, keys, vbytes = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
value = b"x" * vbytes
W = 16
failures = []

def worker(w):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    mine = range(w, keys, W)
    out = bytearray()
    for i in mine:
        k = b"key:%012d" % i
        out += b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(value), value)
    s.sendall(out)
    buf, n = b"", 0
    while n < len(mine):
        chunk = s.recv(65536)
        if not chunk:
            failures.append("connection closed")
            return
        buf += chunk
        lines = buf.split(b"\r\n")
        buf = lines.pop()
        for line in lines:
            n += 1
            if line != b"+OK":
                failures.append(line[:200])
    s.close()

ts = [threading.Thread(target=worker, args=(w,)) for w in range(W)]
for t in ts: t.start()
for t in ts: t.join()
if failures:
    sys.exit("prefill failed: %r" % failures[:3])
PY
}

# record ROUND SYSTEM WORKLOAD OPS SECONDS P50_MS P99_MS ERRORS TICKS RPCS
# (RPCS "-" where not counted): one run, a line of results.tsv.
record() {
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"
	local cpu rpc
	cpu=$(awk -v t="$9" -v hz="$clk_tck" -v n="$4" 'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e6 / n; else print "-" }')
	rpc=$(awk -v r="${10}" -v n="$4" 'BEGIN { if (r == "-" || n == 0) print "-"; else printf "%.2f", r / n }')
	log "  round $1 $2 $3: $(awk -v n="$4" -v s="$5" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print 0 }') ops/s, p50 $6 ms, p99 $7 ms, errors $8, CPU $cpu µs/op, RPCs $rpc/op"
}

# run_wrk ROUND SYSTEM WORKLOAD MODE PIDS_ARRAY URLS_ARRAY DYNKV(0|1)
run_wrk() {
	local round=$1 system=$2 workload=$3 mode=$4 dynkv=$7
	local -n _pids=$5 _urls=$6
	local targets=("${_urls[@]}")
	((SPREAD)) || targets=("${_urls[0]}")
	local nt=${#targets[@]} tag
	tag=$(printf '%s-%s-%s' "$round" "$system" "$workload" | tr -c 'A-Za-z0-9_-' '_')
	local tp=$((THREADS / nt))
	((tp >= 1)) || tp=1
	local t0 t1 r0=- r1=- i c files=() lp=()
	t0=$(cpu_ticks "${_pids[@]}")
	((dynkv)) && r0=$(metric_sum "$RPC_METRIC" "${_urls[@]}")
	for ((i = 0; i < nt; i++)); do
		c=$((CONNECTIONS / nt + (i < CONNECTIONS % nt ? 1 : 0)))
		((c >= 1)) || continue
		local t=$tp
		((t <= c)) || t=$c
		files+=("$tmp/res/$tag.$i")
		WRK_RESULT="$tmp/res/$tag.$i" timeout $((DURATION + 60)) \
			wrk -t"$t" -c"$c" -d"${DURATION}s" --timeout 10s \
			-s "$repo/scripts/bench/kv.lua" "${targets[i]}" -- "$mode" "$KEYS" "$VALUE_BYTES" \
			>"$tmp/log/wrk-$tag.$i.log" 2>&1 &
		lp+=($!)
		pids+=($!)
	done
	for i in "${lp[@]}"; do
		wait "$i" || die "wrk failed ($system $workload, log in $tmp/log/wrk-$tag.*)"
	done
	t1=$(cpu_ticks "${_pids[@]}")
	((dynkv)) && r1=$(metric_sum "$RPC_METRIC" "${_urls[@]}")
	local merged
	merged=$(python3 - "${files[@]}" <<'PY'
import sys
tot = {}
hist = {}
dur = 0
for path in sys.argv[1:]:
    for line in open(path):
        f = line.split()
        if f[0] == "h":
            hist[int(f[1])] = hist.get(int(f[1]), 0) + int(f[2])
        elif f[0] == "duration_us":
            dur = max(dur, int(f[1]))
        else:
            tot[f[0]] = tot.get(f[0], 0) + int(f[1])
def pct(p):
    n = sum(hist.values())
    if n == 0:
        return 0.0
    want, seen = p / 100.0 * n, 0
    for us in sorted(hist):
        seen += hist[us]
        if seen >= want:
            return us / 1000.0
    return max(hist) / 1000.0
errors = sum(v for k, v in tot.items() if k.startswith("errors_"))
good = tot.get("requests", 0) - tot.get("errors_status", 0)
print("%d %.6f %.2f %.2f %d" % (good, dur / 1e6, pct(50), pct(99), errors))
PY
	)
	local ops secs p50 p99 errs rpcs=-
	read -r ops secs p50 p99 errs <<<"$merged"
	((dynkv)) && rpcs=$((r1 - r0))
	record "$round" "$system" "$workload" "$ops" "$secs" "$p50" "$p99" "$errs" $((t1 - t0)) "$rpcs"
	sleep "$PAUSE"
}

# run_redis ROUND SYSTEM WORKLOAD PORT TEST CLIENTS PIDS_ARRAY [METRICS_URL]
# (with a METRICS_URL the server is dynkv: its RESP errors and RPCs are
# read from /metrics; without, Redis's total_error_replies).
run_redis() {
	local round=$1 system=$2 workload=$3 port=$4 test=$5 clients=$6 murl=${8:-}
	local -n _rpids=$7
	local t0 t1 e0 e1 r0=- r1=- out start end
	out=$tmp/res/redis-$round-$port-$test-$clients.csv
	t0=$(cpu_ticks "${_rpids[@]}")
	if [[ -n $murl ]]; then
		e0=$(metric_sum 'dynkv_requests_total{protocol="resp",code="error"}' "$murl")
		r0=$(metric_sum "$RPC_METRIC" "$murl")
	else
		e0=$(redis-cli -p "$port" info stats | awk -F: '/^total_error_replies:/ { print $2 + 0 }')
	fi
	start=$(date +%s.%N)
	timeout 900 redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" -n "$REDIS_N" -c "$clients" \
		-d "$VALUE_BYTES" -r "$KEYS" --csv >"$out" 2>"$tmp/log/redis-benchmark.err" ||
		die "redis-benchmark failed against port $port (see $tmp/log/redis-benchmark.err)"
	end=$(date +%s.%N)
	t1=$(cpu_ticks "${_rpids[@]}")
	if [[ -n $murl ]]; then
		e1=$(metric_sum 'dynkv_requests_total{protocol="resp",code="error"}' "$murl")
		r1=$(metric_sum "$RPC_METRIC" "$murl")
	else
		e1=$(redis-cli -p "$port" info stats | awk -F: '/^total_error_replies:/ { print $2 + 0 }')
	fi
	# "SET","rps","avg","min","p50","p95","p99","max" (milliseconds)
	local line rps p50 p99
	line=$(grep -i "^\"$test\"" "$out" | head -n1) || die "no $test line in redis-benchmark's output ($out)"
	IFS=, read -r _ rps _ _ p50 _ p99 _ <<<"${line//\"/}"
	# redis-benchmark times itself; the -n requests over its own rate give
	# its seconds (the wall clock above also counts its connecting).
	local secs
	secs=$(awk -v n="$REDIS_N" -v r="$rps" -v s="$start" -v e="$end" 'BEGIN { if (r > 0) printf "%.6f", n / r; else printf "%.6f", e - s }')
	local rpcs=-
	[[ -n $murl ]] && rpcs=$((r1 - r0))
	record "$round" "$system" "$workload" "$REDIS_N" "$secs" "$p50" "$p99" $((e1 - e0)) $((t1 - t0)) "$rpcs"
	sleep "$PAUSE"
}

# pair ROUND A B ARGS...: A ARGS then B ARGS in odd rounds, B then A in
# even ones.
pair() {
	local round=$1 a=$2 b=$3
	shift 3
	if ((round % 2)); then
		"$a" "$round" "$@"
		"$b" "$round" "$@"
	else
		"$b" "$round" "$@"
		"$a" "$round" "$@"
	fi
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# --- suite: cluster -------------------------------------------------------

if ((want_cluster)); then
	d3_pids=() d3_urls=()
	for i in 0 1 2; do
		args=(server --id "c$((i + 1))" --data-dir "$tmp/data/dynkv3-c$((i + 1))"
			--http-addr "127.0.0.1:${d3_http[i]}" --gossip-addr "127.0.0.1:${d3_gossip[i]}" --resp-addr ""
			--replicas 3 --read-quorum 2 --write-quorum 2 --fsync always)
		((i == 0)) || args+=(--join "127.0.0.1:${d3_gossip[0]}")
		start "dynkv3-c$((i + 1))" "$bin" "${args[@]}"
		d3_pids+=("$last_pid")
		d3_urls+=("http://127.0.0.1:${d3_http[i]}")
		((i > 0)) || wait_for "dynkv-3 c1" 60 curl -sf --max-time 2 "${d3_urls[0]}/health"
	done
	wait_for "dynkv-3 cluster" 120 dynkv_cluster_ready "${d3_urls[@]}"

	e3_pids=() e3_urls=() initial=""
	for i in 0 1 2; do
		initial+="${initial:+,}e$((i + 1))=http://127.0.0.1:${e3_peer[i]}"
	done
	for i in 0 1 2; do
		# fsync on every commit is etcd's default; --unsafe-no-fsync is
		# never given.
		start "etcd3-e$((i + 1))" etcd --name "e$((i + 1))" --data-dir "$tmp/data/etcd3-e$((i + 1))" \
			--listen-client-urls "http://127.0.0.1:${e3_client[i]}" \
			--advertise-client-urls "http://127.0.0.1:${e3_client[i]}" \
			--listen-peer-urls "http://127.0.0.1:${e3_peer[i]}" \
			--initial-advertise-peer-urls "http://127.0.0.1:${e3_peer[i]}" \
			--initial-cluster "$initial" --initial-cluster-token bench-peers \
			--initial-cluster-state new --logger zap --log-level warn
		e3_pids+=("$last_pid")
		e3_urls+=("http://127.0.0.1:${e3_client[i]}")
	done
	e3_endpoints=$(
		IFS=,
		echo "${e3_urls[*]}"
	)
	wait_for "etcd-3 cluster" 120 env ETCDCTL_API=3 etcdctl --endpoints="$e3_endpoints" endpoint health
	log "etcd-3: $(ETCDCTL_API=3 etcdctl --endpoints="$e3_endpoints" endpoint status -w simple 2>/dev/null | awk -F', ' '$5 == "true" { print "leader " $1 }')"

	log "prefill: $KEYS keys of $VALUE_BYTES bytes into dynkv-3 and etcd-3"
	prefill_http dynkv "${d3_urls[@]}" || die "dynkv-3 prefill failed"
	prefill_http etcd "${e3_urls[@]}" || die "etcd-3 prefill failed"

	w_d3_put() { run_wrk "$1" dynkv-3 put dynkv-put d3_pids d3_urls 1; }
	w_e3_put() { run_wrk "$1" etcd-3 put etcd-put e3_pids e3_urls 0; }
	w_d3_get() { run_wrk "$1" dynkv-3 get dynkv-get d3_pids d3_urls 1; }
	w_e3_get() { run_wrk "$1" etcd-3 get etcd-get e3_pids e3_urls 0; }
	for ((r = 1; r <= ROUNDS; r++)); do
		log "cluster round $r of $ROUNDS"
		pair "$r" w_d3_put w_e3_put
		pair "$r" w_d3_get w_e3_get
	done
	stop "${d3_pids[@]}" "${e3_pids[@]}"
fi

# --- suite: single ----------------------------------------------------------

if ((want_single)); then
	start dynkv1 "$bin" server --id s1 --data-dir "$tmp/data/dynkv1" \
		--http-addr "127.0.0.1:$d1_http" --gossip-addr "127.0.0.1:$d1_gossip" \
		--resp-addr "127.0.0.1:$d1_resp" --fsync always
	d1_pids=("$last_pid")
	d1_urls=("http://127.0.0.1:$d1_http")
	wait_for dynkv-1 60 dynkv_cluster_ready "${d1_urls[@]}"

	mkdir -p "$tmp/data/redis"
	# appendonly with appendfsync always: Redis's strongest durability, the
	# peer of --fsync always. RDB snapshots off (--save ''): the AOF is the
	# durability, and a snapshot's fork would be another process's CPU.
	start redis redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$tmp/data/redis" \
		--appendonly yes --appendfsync always --save '' --daemonize no --protected-mode yes
	redis_pids=("$last_pid")
	wait_for redis 60 redis-cli -p "$redis_port" ping
	[[ $(redis-cli -p "$redis_port" config get appendfsync | tail -n1) == always ]] || die "redis: appendfsync is not always"

	log "prefill: $KEYS keys of $VALUE_BYTES bytes into dynkv-1 (HTTP and RESP) and Redis"
	prefill_http dynkv "${d1_urls[@]}" || die "dynkv-1 prefill failed"
	prefill_resp "$d1_resp" || die "dynkv-1 RESP prefill failed"
	prefill_resp "$redis_port" || die "redis prefill failed"

	w_d1_set() { run_redis "$1" dynkv-1 "SET -c$2" "$d1_resp" set "$2" d1_pids "${d1_urls[0]}"; }
	w_rd_set() { run_redis "$1" redis "SET -c$2" "$redis_port" set "$2" redis_pids; }
	w_d1_get() { run_redis "$1" dynkv-1 "GET -c$2" "$d1_resp" get "$2" d1_pids "${d1_urls[0]}"; }
	w_rd_get() { run_redis "$1" redis "GET -c$2" "$redis_port" get "$2" redis_pids; }
	for ((r = 1; r <= ROUNDS; r++)); do
		log "single round $r of $ROUNDS"
		run_wrk "$r" dynkv-1 put dynkv-put d1_pids d1_urls 1
		run_wrk "$r" dynkv-1 get dynkv-get d1_pids d1_urls 1
		for c in $REDIS_CLIENTS; do
			pair "$r" w_d1_set w_rd_set "$c"
			pair "$r" w_d1_get w_rd_get "$c"
		done
	done
	stop "${d1_pids[@]}" "${redis_pids[@]}"
fi

# --- the table ---------------------------------------------------------------

etcd_version=$(etcd --version 2>/dev/null | awk '/^etcd Version/ { print $3 }' || true)
redis_version=$(redis-server --version 2>/dev/null | grep -o 'v=[0-9.]*' | cut -c3- || true)
wrk_version=$(wrk -v 2>&1 | awk '/^wrk/ { print $2; exit }' || true)

echo "bench-peers: dynkv against etcd and Redis on loopback, started $started_at"
echo "dynkv:   $bin_desc"
((want_cluster)) && echo "etcd:    ${etcd_version:-?}, 3 nodes (Raft, fsync per commit), through its HTTP/JSON gateway"
((want_single)) && echo "redis:   ${redis_version:-?}, appendonly yes, appendfsync always, no RDB snapshots"
echo "load:    wrk ${wrk_version:-?} -c$CONNECTIONS ($THREADS threads in all, SPREAD=$SPREAD), ${DURATION}s a run"
((want_single)) && echo "         redis-benchmark -n $REDIS_N -d $VALUE_BYTES -r $KEYS, -c each of: $REDIS_CLIENTS"
echo "data:    $KEYS keys, $VALUE_BYTES-byte values, prefilled; $ROUNDS round(s), pairs alternated; data on $fstype"
echo "machine: $(nproc) CPUs, load average $load_start at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
echo

python3 - "$results" "$clk_tck" "$REDIS_CLIENTS" "$RPC_METRIC" <<'PY'
import sys
from collections import OrderedDict
path, hz, redis_clients, rpc_metric = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4]
rows = OrderedDict()
for ln in open(path):
    rnd, system, workload, ops, secs, p50, p99, errs, ticks, rpcs = ln.rstrip("\n").split("\t")
    rows.setdefault((system, workload), []).append(dict(round=int(rnd), ops=int(ops), secs=float(secs),
        p50=float(p50), p99=float(p99), errs=int(errs), ticks=int(ticks), rpcs=None if rpcs == "-" else int(rpcs)))

def rate(r): return r["ops"] / r["secs"] if r["secs"] > 0 else 0.0
def mean(xs): return sum(xs) / len(xs) if xs else 0.0
def fmt(x): return "{:,.0f}".format(x)

def show(head, table, left):
    w = [max(len(x[i]) for x in table + [head]) for i in range(len(head))]
    def line(cells):
        return "  ".join(c.ljust(w[i]) if i < left else c.rjust(w[i]) for i, c in enumerate(cells)).rstrip()
    print(line(head))
    print(line(["-" * x for x in w]))
    for t in table:
        print(line(t))

table = []
for (system, workload), rs in rows.items():
    rates = [rate(r) for r in rs]
    ops = sum(r["ops"] for r in rs)
    cpu = sum(r["ticks"] for r in rs) / hz * 1e6 / ops if ops else 0
    rp = "-" if rs[0]["rpcs"] is None else "%.2f" % (sum(r["rpcs"] for r in rs) / ops if ops else 0)
    table.append([system, workload, fmt(mean(rates)), "%s-%s" % (fmt(min(rates)), fmt(max(rates))),
        "%.2f" % mean([r["p50"] for r in rs]), "%.2f" % mean([r["p99"] for r in rs]),
        str(sum(r["errs"] for r in rs)), "%.0f" % cpu, rp])
show(["system", "workload", "ops/s", "min-max", "p50 ms", "p99 ms", "errors", "CPU us/op", "RPCs/op"], table, 2)
print()
print("ops/s: mean over rounds (min-max); p50/p99: mean of the rounds' percentiles; errors: failed")
print("requests (HTTP >= 400, socket errors, RESP error replies); CPU: the servers' utime+stime per")
print("op over all rounds; RPCs: node-to-node calls served, %s, per op." % rpc_metric)

ratios = [("dynkv-3 put / etcd-3 put", ("dynkv-3", "put"), ("etcd-3", "put"), 3.0, ">= 3x (stretch 4x)"),
          ("dynkv-3 get / etcd-3 get", ("dynkv-3", "get"), ("etcd-3", "get"), 2.0, ">= 2x")]
for c in redis_clients:
    ratios.append(("dynkv-1 SET / Redis SET -c" + c, ("dynkv-1", "SET -c" + c), ("redis", "SET -c" + c), 1.0, ">= 1.0x"))
for c in redis_clients:
    ratios.append(("dynkv-1 GET / Redis GET -c" + c, ("dynkv-1", "GET -c" + c), ("redis", "GET -c" + c), 0.7, ">= 0.7x"))
out = []
for name, a, b, target, tname in ratios:
    if a not in rows or b not in rows:
        continue
    ra = {r["round"]: rate(r) for r in rows[a]}
    rb = {r["round"]: rate(r) for r in rows[b]}
    den = mean(list(rb.values()))
    m = mean(list(ra.values())) / den if den else 0.0
    per = [ra[k] / rb[k] for k in ra if k in rb and rb[k] > 0]
    out.append([name, "%.2fx" % m, "%.2f-%.2f" % (min(per), max(per)) if per else "-", tname,
                "met" if m >= target else "not met"])
if out:
    print()
    show(["ratio", "of means", "per round", "target", ""], out, 1)
    print()
    print("Targets from issue 11. They count only on a quiet machine, twice in a row.")
rs = rows.get(("dynkv-3", "put"))
if rs and sum(r["rpcs"] or 0 for r in rs) == 0:
    print("note: dynkv-3 served no node-to-node calls by %s: for a DYNKV_BIN older" % rpc_metric)
    print("than the transport, set RPC_METRIC='dynkv_requests_total{op=\"internal\"}'.")
PY
if ((KEEP)); then
	log "results: $results"
fi
exit 0
