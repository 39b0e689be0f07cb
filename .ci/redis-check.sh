#!/usr/bin/env bash
# Drives a real dynkv server with Debian's redis-tools, unchanged: redis-cli
# must get Redis's answers and redis-benchmark must complete SET and GET at
# a non-zero rate (SPEC section 4). Called from .ci/run; runs alone too.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

for tool in redis-cli redis-benchmark; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "redis-check: $tool not found (apt-get install redis-tools)" >&2
		exit 1
	fi
done

work="$(mktemp -d)"
pid=""
cleanup() {
	if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/dynkv" ./cmd/dynkv

# Port 0 everywhere: the node logs the addresses it bound, so no free port
# has to be guessed (and raced for).
"$work/dynkv" server --id redis-check --data-dir "$work/data" \
	--http-addr 127.0.0.1:0 --gossip-addr 127.0.0.1:0 --resp-addr 127.0.0.1:0 \
	--log-format json 2>"$work/server.log" &
pid=$!

port=""
for _ in $(seq 1 300); do
	port="$(grep -o '"resp_addr":"127.0.0.1:[0-9]*"' "$work/server.log" | head -n1 | grep -o '[0-9]*"$' | tr -d '"' || true)"
	[[ -n "$port" ]] && break
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "redis-check: the server exited before it listened:" >&2
		cat "$work/server.log" >&2
		exit 1
	fi
	sleep 0.1
done
if [[ -z "$port" ]]; then
	echo "redis-check: the server did not report its Redis address within 30s:" >&2
	cat "$work/server.log" >&2
	exit 1
fi
echo "=== redis-check: dynkv serves the Redis protocol on 127.0.0.1:$port"

failed=0
expect() {
	local want="$1"
	shift
	local got
	got="$(redis-cli -h 127.0.0.1 -p "$port" "$@" 2>&1)" || true
	if [[ "$got" == "$want" ]]; then
		echo "ok   redis-cli $* -> ${got:-(nil)}"
	else
		echo "FAIL redis-cli $*: got '$got', want '$want'"
		failed=1
	fi
}
expect PONG PING
expect OK SET a b
expect b GET a
expect 1 EXISTS a
expect OK SET t v EX 100
# 100 right after the SET; 99 if more than half a second passed between.
ttl="$(redis-cli -h 127.0.0.1 -p "$port" TTL t 2>&1)" || true
if [[ "$ttl" == 100 || "$ttl" == 99 ]]; then
	echo "ok   redis-cli TTL t -> $ttl"
else
	echo "FAIL redis-cli TTL t: got '$ttl', want 100 or 99"
	failed=1
fi
expect 2 DEL a t
expect "" GET a
expect 0 EXISTS a
expect OK SELECT 15
expect "ERR DB index is out of range" SELECT 16
expect "ERR unknown command 'NOPE', with args beginning with: 'x' " NOPE x
if [[ "$failed" -ne 0 ]]; then
	cat "$work/server.log" >&2
	exit 1
fi

echo "=== redis-check: redis-benchmark -t set,get -n 20000 -q"
bench="$(redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -n 20000 -q 2>&1 | tr '\r' '\n')"
for op in SET GET; do
	line="$(grep "^$op: " <<<"$bench" | tail -n1 || true)"
	rate="$(awk '{print $2}' <<<"$line")"
	if [[ -z "$line" ]] || ! awk -v r="$rate" 'BEGIN { exit !(r + 0 > 0) }'; then
		echo "FAIL redis-benchmark $op: no non-zero rate in its output:"
		echo "$bench"
		exit 1
	fi
	echo "ok   $line"
done

kill -TERM "$pid"
if ! wait "$pid"; then
	echo "redis-check: the server did not stop cleanly:" >&2
	tail -n 20 "$work/server.log" >&2
	pid=""
	exit 1
fi
pid=""
echo "=== redis-check passed"
