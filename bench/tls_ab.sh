#!/usr/bin/env bash
# tls_ab.sh - what TLS costs kioku: its throughput over TLS against its own
# plain throughput, same process, same data, same load.
#
# One kioku is started with a plain port, a TLS port (--tls-port) and a
# plain RESP port, on 127.0.0.1 only (free ports), pinned to one core; it is
# stopped by PID on exit. Certificates (a CA and an ECDSA P-256 server
# certificate) are made for the run with the openssl command line in the
# output directory. memtier_benchmark, pinned to another core, drives each
# setting (protocol x pipeline depth) in rounds that alternate plain/TLS
# (odd rounds plain first, even rounds TLS first), so drift hits both sides.
# Per round: ops/s and p99 latency from memtier's JSON output, and the
# server's CPU seconds (utime+stime from /proc/PID/stat), hence ops per
# server CPU-second: on a busy machine, or when the load generator's own TLS
# work is the bottleneck, that is the steadier measure of what TLS costs the
# server. The summary gives, per setting, the median of each side and the
# median of the per-round ratios TLS/plain. Connections are made once per round, so the
# numbers are of steady-state record encryption, not of handshakes.
#
# Usage: bench/tls_ab.sh [--kioku PATH] [--memtier PATH] [--rounds N]
#        [--time S] [--pipelines "1 16"] [--protocols "memcache_text redis"]
#        [--threads N] [--clients N] [--data-size N] [--max-total S] [--out DIR]
set -uo pipefail

KIOKU=./src/kioku
MEMTIER=${MEMTIER:-/work/tools/memtier/memtier_benchmark}
ROUNDS=3
ROUND_TIME=5
PIPELINES="1 16"
PROTOCOLS="memcache_text redis"
THREADS=1
CLIENTS=25
DATA_SIZE=32
KEYS=100000
SERVER_CPU=0
LG_CPU=1
MAX_TOTAL=300
OUT_DIR=""

while [ $# -gt 0 ]; do
    case $1 in
    --kioku) KIOKU=$2; shift 2 ;;
    --memtier) MEMTIER=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --time) ROUND_TIME=$2; shift 2 ;;
    --pipelines) PIPELINES=$2; shift 2 ;;
    --protocols) PROTOCOLS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --data-size) DATA_SIZE=$2; shift 2 ;;
    --max-total) MAX_TOTAL=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "tls_ab: unknown option $1 (try --help)" >&2; exit 64 ;;
    esac
done

die() { echo "tls_ab: error: $*" >&2; exit 1; }
[ -x "$KIOKU" ] || die "no kioku at $KIOKU (--kioku PATH)"
[ -x "$MEMTIER" ] || die "no memtier_benchmark at $MEMTIER (--memtier PATH)"
case $("$KIOKU" --help) in *--enable-ssl*) ;; *) die "$KIOKU was built without TLS" ;; esac
command -v openssl >/dev/null || die "no openssl command"
[ -n "$OUT_DIR" ] || OUT_DIR=$(mktemp -d /tmp/tls_ab.XXXXXX)
mkdir -p "$OUT_DIR"
deadline=$(( $(date +%s) + MAX_TOTAL ))

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- certificates ----
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout "$OUT_DIR/ca.key" -out "$OUT_DIR/ca.crt" -days 2 \
    -subj "/CN=tls_ab CA" 2>/dev/null || die "openssl req (CA) failed"
openssl req $ec -keyout "$OUT_DIR/server.key" -out "$OUT_DIR/server.csr" -subj /CN=127.0.0.1 \
    2>/dev/null || die "openssl req (server) failed"
printf 'subjectAltName=IP:127.0.0.1\n' >"$OUT_DIR/san.ext"
openssl x509 -req -in "$OUT_DIR/server.csr" -CA "$OUT_DIR/ca.crt" -CAkey "$OUT_DIR/ca.key" \
    -CAcreateserial -out "$OUT_DIR/server.crt" -days 2 -extfile "$OUT_DIR/san.ext" 2>/dev/null ||
    die "openssl x509 failed"

# ---- the server ----
PORT=$(free_port); TLS_PORT=$(free_port); RESP_PORT=$(free_port)
run_as=""
[ "$(id -u)" -eq 0 ] && run_as="-u nobody" && chmod 644 "$OUT_DIR"/server.* && chmod 755 "$OUT_DIR"
taskset -c "$SERVER_CPU" "$KIOKU" -l 127.0.0.1 -p "$PORT" --tls-port "$TLS_PORT" \
    --resp-port "$RESP_PORT" -t "$THREADS" -m 1024 $run_as \
    -o "ssl_chain_cert=$OUT_DIR/server.crt,ssl_key=$OUT_DIR/server.key" \
    >"$OUT_DIR/kioku.log" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$TLS_PORT") 2>/dev/null && break
    sleep 0.1
done
kill -0 "$SERVER_PID" 2>/dev/null || die "kioku did not start: $(cat "$OUT_DIR/kioku.log")"

# memtier SIDE PROTOCOL PIPELINE SECONDS JSON [extra]
memtier() {
    local side=$1 proto=$2 pipe=$3 secs=$4 json=$5; shift 5
    local port=$PORT tls=()
    [ "$proto" = redis ] && port=$RESP_PORT
    if [ "$side" = tls ]; then
        port=$TLS_PORT
        tls=(--tls --cacert "$OUT_DIR/ca.crt" --sni 127.0.0.1)
    fi
    timeout $(( secs + 30 )) taskset -c "$LG_CPU" "$MEMTIER" -s 127.0.0.1 -p "$port" \
        -P "$proto" "${tls[@]}" -t 1 -c "$CLIENTS" --pipeline "$pipe" \
        --data-size "$DATA_SIZE" --key-maximum "$KEYS" --hide-histogram \
        --json-out-file "$json" "$@" >/dev/null 2>>"$OUT_DIR/memtier.err"
}

# ops/s, p99 (ms) of the Totals line of a memtier JSON file, and ops per
# server CPU-second given the round's CPU seconds ($2) and length ($3).
parse() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["ALL STATS"]["Totals"]
p99 = t.get("Percentile Latencies", {}).get("p99.00", float("nan"))
cpu, secs = float(sys.argv[2]), float(sys.argv[3])
per_cpu = t["Ops/sec"] * secs / cpu if cpu > 0 else float("nan")
print(f'{t["Ops/sec"]:.0f}\t{p99:.3f}\t{per_cpu:.0f}')
EOF
}

# The server's user+system CPU time so far, in seconds.
server_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$SERVER_PID/stat"
}

printf 'setting\tround\tside\tops\tp99_ms\tops_per_cpu_s\n' >"$OUT_DIR/results.tsv"
for proto in $PROTOCOLS; do
    # Prefill so gets hit, over the plain port.
    memtier plain "$proto" 16 0 "$OUT_DIR/prefill.json" --ratio 1:0 \
        --key-pattern P:P --requests "$(( KEYS / CLIENTS + 1 ))" ||
        echo "tls_ab: prefill of $proto failed" >&2
    for pipe in $PIPELINES; do
        setting="$proto/pipeline=$pipe"
        for r in $(seq "$ROUNDS"); do
            [ "$(date +%s)" -lt "$deadline" ] || { echo "tls_ab: --max-total reached" >&2; break 3; }
            order="plain tls"
            [ $(( r % 2 )) -eq 0 ] && order="tls plain"
            for side in $order; do
                json="$OUT_DIR/$proto-p$pipe-r$r-$side.json"
                cpu0=$(server_cpu)
                if memtier "$side" "$proto" "$pipe" "$ROUND_TIME" "$json" --ratio 1:10 \
                        --test-time "$ROUND_TIME" && [ -s "$json" ]; then
                    cpu=$(awk -v a="$cpu0" -v b="$(server_cpu)" 'BEGIN { print b - a }')
                    printf '%s\t%s\t%s\t%s\n' "$setting" "$r" "$side" \
                        "$(parse "$json" "$cpu" "$ROUND_TIME")" >>"$OUT_DIR/results.tsv"
                else
                    echo "tls_ab: memtier failed: $setting round $r $side" >&2
                fi
            done
        done
    done
done

# Medians per side and of the per-round ratios TLS/plain.
python3 - "$OUT_DIR/results.tsv" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = {}
for setting, rnd, side, ops, p99, per_cpu in rows:
    by.setdefault(setting, {}).setdefault(rnd, {})[side] = (float(ops), float(p99), float(per_cpu))
print("| setting | plain ops/s | TLS ops/s | TLS/plain ops/s | plain ops/CPU-s | TLS ops/CPU-s "
      "| TLS/plain ops/CPU-s | plain p99 ms | TLS p99 ms | rounds |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for setting, rounds in by.items():
    both = [v for v in rounds.values() if "plain" in v and "tls" in v]
    if not both:
        continue
    med = lambda side, i: statistics.median(v[side][i] for v in both)
    ratio = lambda i: statistics.median(v["tls"][i] / v["plain"][i] for v in both)
    print(f"| {setting} | {med('plain', 0):.0f} | {med('tls', 0):.0f} | {ratio(0):.3f} | "
          f"{med('plain', 2):.0f} | {med('tls', 2):.0f} | {ratio(2):.3f} | "
          f"{med('plain', 1):.3f} | {med('tls', 1):.3f} | {len(both)} |")
EOF
echo "tls_ab: raw results in $OUT_DIR" >&2
