#!/usr/bin/env bash
# ipr.sh - user-space instructions per request of a kioku server, counted
# by callgrind (valgrind), for machines whose perf has no hardware counters
# (a VM without a PMU: `perf stat -e instructions:u` says <not supported>).
#
# Starts kioku under callgrind on free loopback ports, prefills KEYS keys
# with memtier_benchmark, zeroes the counts, runs CLIENTS x REQUESTS
# requests (1:10 set:get, 32-byte values, random keys, the given pipeline),
# dumps the counts and prints the total per request and the functions that
# cost most. The server runs some 50x slower under valgrind, so each read
# brings a full pipeline: the count is of the work per request, not of the
# time. Instruction counts are exact and repeat to a few per request, which
# is what a shared, noisy machine cannot give in ops per CPU-second. They
# do not show cache misses (add --cache-sim=yes to VG_ARGS for simulated
# ones).
#
# Usage: bench/ipr.sh --kioku PATH --memtier PATH [--protocol memcache_text|
#        memcache_binary|redis] [--pipeline 16] [--requests 2000] [--clients 25]
#        [--keys 100000] [--args "-o null_storage"] [--top 25] [--out DIR]
# The server and memtier are stopped by PID on exit.

set -uo pipefail
KIOKU=./src/kioku; MEMTIER=""; PROTO=memcache_text; PL=16; REQ=2000; CLIENTS=25
KEYS=100000; EXTRA=""; TOP=25; OUT=""; VG_ARGS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --kioku) KIOKU=$2; shift 2 ;;
        --memtier) MEMTIER=$2; shift 2 ;;
        --protocol) PROTO=$2; shift 2 ;;
        --pipeline) PL=$2; shift 2 ;;
        --requests) REQ=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --keys) KEYS=$2; shift 2 ;;
        --args) EXTRA=$2; shift 2 ;;
        --top) TOP=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "ipr.sh: unknown option $1" >&2; exit 64 ;;
    esac
done
[ -z "$MEMTIER" ] && MEMTIER=$(command -v memtier_benchmark 2>/dev/null || true)
[ -x "$MEMTIER" ] || { echo "ipr.sh: memtier_benchmark not found: --memtier PATH" >&2; exit 1; }
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
    { echo "ipr.sh: needs valgrind: apt-get install valgrind" >&2; exit 1; }
[ -z "$OUT" ] && OUT=$(mktemp -d /tmp/ipr.XXXXXX)
mkdir -p "$OUT"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port); mport=$(free_port)
args=(-l 127.0.0.1 -U 0 -t 1 -m 1024)
[ "$(id -u)" -eq 0 ] && args+=(-u root)
if [ "$PROTO" = redis ]; then args+=(-p "$mport" --resp-port "$port"); else args+=(-p "$port"); fi
# shellcheck disable=SC2206
[ -n "$EXTRA" ] && args+=($EXTRA)

SP=""; MP=""
cleanup() {
    [ -n "$MP" ] && kill "$MP" 2>/dev/null
    [ -n "$SP" ] && { kill "$SP" 2>/dev/null; wait "$SP" 2>/dev/null; }
}
trap cleanup EXIT INT TERM
# shellcheck disable=SC2086
valgrind --tool=callgrind $VG_ARGS --callgrind-out-file="$OUT/callgrind.out.%p" \
    "$KIOKU" "${args[@]}" 2>"$OUT/valgrind.log" &
SP=$!
for _ in $(seq 300); do
    (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$SP" 2>/dev/null || { echo "ipr.sh: the server exited; see $OUT/valgrind.log" >&2; exit 1; }
    sleep 0.1
done
mt=("$MEMTIER" -s 127.0.0.1 -p "$port" --protocol="$PROTO" --threads=1 --clients="$CLIENTS"
    --data-size=32 --key-prefix=memtier- --key-minimum=1 --key-maximum="$KEYS" --hide-histogram)
timeout 600 "${mt[@]}" --ratio=1:0 --key-pattern=P:P --requests=allkeys --pipeline=16 \
    > "$OUT/prefill.txt" 2>&1 & MP=$!
wait "$MP"; MP=""
callgrind_control -z "$SP" > /dev/null 2>&1
timeout 600 "${mt[@]}" --ratio=1:10 --key-pattern=R:R --distinct-client-seed --pipeline="$PL" \
    --requests="$REQ" > "$OUT/memtier.txt" 2>&1 & MP=$!
wait "$MP"; MP=""
callgrind_control -d "$SP" > /dev/null 2>&1
sleep 1
dump=$(ls -t "$OUT"/callgrind.out.*.1 2>/dev/null | head -1)
[ -n "$dump" ] || { echo "ipr.sh: no callgrind dump in $OUT" >&2; exit 1; }
total=$((REQ * CLIENTS))
callgrind_annotate --inclusive=no --threshold=100 "$dump" 2>/dev/null |
awk -v n="$total" -v top="$TOP" -v tag="$PROTO p$PL ${EXTRA:-}" '
    /PROGRAM TOTALS/ { gsub(",", "", $1); printf "%s: %.0f user instructions a request (%d requests)\n", tag, $1 / n, n }
    /file:function/ { f = 1; next }
    f && /^ *[0-9,]+ \(/ && shown < top {
        v = $1; gsub(",", "", v); fn = $NF; if (fn ~ /^\[/) fn = $(NF - 1); sub(/.*:/, "", fn)
        if (fn == "clone" || fn == "start_thread" || fn == "worker_main" || fn == "event_base_dispatch") next
        printf "  %6.0f  %s\n", v / n, fn; shown++
    }'
echo "(callgrind dump: $dump)"
