#!/usr/bin/env bash
# hitratio.sh - hit ratio of cache servers under the same cache-aside load and
# the same memory: kioku with each eviction policy, memcached, redis-server
# with allkeys-lru and allkeys-lfu. One fresh server at a time, one row per
# server and workload variant:
#
#   zipf   reads of Zipf(0.99) keys, set on miss
#   scan   the same, plus one-time keys of a sequential scan (20 % of reads)
#   shift  phase 1: small values (100-300 B); phase 2: new keys with 5-10 KB
#          values; the hit ratio is that of phase 2's last quarter (has the
#          cache moved its memory to the new size?)
#
# The load is bench/cacheload.c (compiled here with cc -O2 unless --cacheload
# is given): memcached text protocol for kioku and memcached, RESP for
# redis-server, identical request sequences for every server. Servers listen
# on 127.0.0.1 only (free ports) and are stopped by PID. Every load run is
# bounded by a request count and a time limit, and the whole run by
# --max-total. Nothing here downloads or builds third-party code; see
# bench/README.md.
#
# Usage: bench/hitratio.sh [--kioku PATH] [--memcached PATH] [--redis PATH] [options]

set -uo pipefail

KIOKU_BIN=${KIOKU:-./src/kioku}
MEMCACHED_BIN=${MEMCACHED:-}
REDIS_BIN=${REDIS:-$(command -v redis-server || true)}
POLICIES="allkeys-s3fifo allkeys-lru allkeys-lfu allkeys-random"
REDIS_POLICIES="allkeys-lru allkeys-lfu"
VARIANTS="zipf scan shift"
MEM_MB=64
KEYS=500000; MIN_SIZE=100; MAX_SIZE=2000
WARMUP=1000000; REQUESTS=2000000
SCAN_PCT=20
SHIFT_KEYS1=1500000; SHIFT_MIN1=100; SHIFT_MAX1=300;   SHIFT_READS1=2000000
SHIFT_KEYS2=60000;  SHIFT_MIN2=5000; SHIFT_MAX2=10000; SHIFT_READS2=2000000
TAIL_PCT=25
CONNS=4; PIPELINE=16; SEED=1
CACHELOAD=""
RUN_LIMIT=120        # seconds per cacheload run
MAX_TOTAL=1200       # seconds for the whole run
OUT_DIR=""
RUN_AS=""
SUMMARIZE=""

usage() {
    cat <<EOF
Usage: $0 [options]

Servers (a missing binary skips its rows):
  --kioku PATH           kioku binary (default: \$KIOKU or $KIOKU_BIN)
  --memcached PATH       memcached binary (default: \$MEMCACHED; none = skipped)
  --redis PATH           redis-server (default: \$REDIS or the one on PATH)
  --policies "P ..."     kioku --maxmemory-policy values (default: "$POLICIES")
  --redis-policies "P .." redis-server maxmemory-policy values (default: "$REDIS_POLICIES")
  --memory MB            memory for every server: -m MB / --maxmemory MBmb (default: $MEM_MB)
  --run-as USER          -u USER for kioku and memcached (default: nobody when root)

Load (bench/cacheload.c):
  --variants "V ..."     zipf scan shift (default: "$VARIANTS")
  --keys N               Zipf key space for zipf and scan (default: $KEYS)
  --sizes MIN-MAX        value sizes for zipf and scan (default: $MIN_SIZE-$MAX_SIZE)
  --warmup N             uncounted reads first (default: $WARMUP)
  --requests N           counted reads (default: $REQUESTS)
  --scan-pct P           scan variant: % of reads that are one-time keys (default: $SCAN_PCT)
  --shift1 K:MIN-MAX:N   shift phase 1: keys, sizes, reads (default: $SHIFT_KEYS1:$SHIFT_MIN1-$SHIFT_MAX1:$SHIFT_READS1)
  --shift2 K:MIN-MAX:N   shift phase 2 (default: $SHIFT_KEYS2:$SHIFT_MIN2-$SHIFT_MAX2:$SHIFT_READS2)
  --tail-pct T           shift: report the last T % of phase 2 (default: $TAIL_PCT)
  --conns N --pipeline N connections, requests in flight each (default: $CONNS, $PIPELINE)
  --seed N               (default: $SEED)
  --cacheload PATH       prebuilt cacheload (default: cc -O2 bench/cacheload.c into the out dir)

Run:
  --run-limit S          time limit per load run (default: $RUN_LIMIT)
  --max-total S          bound on the whole run; later rows are skipped (default: $MAX_TOTAL)
  --out DIR              raw outputs (default: a new /tmp/hitratio.* dir)
  --summarize DIR        only print the table of an earlier run
  -h, --help
EOF
}

die() { echo "hitratio: error: $*" >&2; exit 1; }
note() { echo "hitratio: $*" >&2; }

split_phase() {    # split_phase VAR_PREFIX "K:MIN-MAX:N"
    local k s n
    IFS=: read -r k s n <<<"$2"
    [[ "$k" =~ ^[0-9]+$ && "$s" =~ ^[0-9]+-[0-9]+$ && "$n" =~ ^[0-9]+$ ]] || die "bad phase spec: $2"
    printf -v "${1}_KEYS" %s "$k"
    printf -v "${1}_MIN" %s "${s%-*}"
    printf -v "${1}_MAX" %s "${s#*-}"
    printf -v "${1}_READS" %s "$n"
}

while [ $# -gt 0 ]; do
    opt=$1; val=${2-}
    case "$opt" in
        --kioku) KIOKU_BIN=$val; shift ;;
        --memcached) MEMCACHED_BIN=$val; shift ;;
        --redis) REDIS_BIN=$val; shift ;;
        --policies) POLICIES=$val; shift ;;
        --redis-policies) REDIS_POLICIES=$val; shift ;;
        --memory) MEM_MB=$val; shift ;;
        --run-as) RUN_AS=$val; shift ;;
        --variants) VARIANTS=$val; shift ;;
        --keys) KEYS=$val; shift ;;
        --sizes) MIN_SIZE=${val%-*}; MAX_SIZE=${val#*-}; shift ;;
        --warmup) WARMUP=$val; shift ;;
        --requests) REQUESTS=$val; shift ;;
        --scan-pct) SCAN_PCT=$val; shift ;;
        --shift1) split_phase SP1 "$val"; SHIFT_KEYS1=$SP1_KEYS; SHIFT_MIN1=$SP1_MIN
                  SHIFT_MAX1=$SP1_MAX; SHIFT_READS1=$SP1_READS; shift ;;
        --shift2) split_phase SP2 "$val"; SHIFT_KEYS2=$SP2_KEYS; SHIFT_MIN2=$SP2_MIN
                  SHIFT_MAX2=$SP2_MAX; SHIFT_READS2=$SP2_READS; shift ;;
        --tail-pct) TAIL_PCT=$val; shift ;;
        --conns) CONNS=$val; shift ;;
        --pipeline) PIPELINE=$val; shift ;;
        --seed) SEED=$val; shift ;;
        --cacheload) CACHELOAD=$val; shift ;;
        --run-limit) RUN_LIMIT=$val; shift ;;
        --max-total) MAX_TOTAL=$val; shift ;;
        --out) OUT_DIR=$val; shift ;;
        --summarize) SUMMARIZE=$val; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $opt" ;;
    esac
    shift
done

# table TSV: one markdown row per server and variant, with ratios to the
# memcached row of the same variant (blank when memcached did not run).
table() {
    awk -F'\t' '
    NR == 1 { next }
    {
        n++; v[n] = $1; s[n] = $2; it[n] = $3; hr[n] = $4; rss[n] = $5; st[n] = $6
        if ($2 == "memcached" && $6 == "ok") { mi[$1] = $3; mh[$1] = $4; mr[$1] = $5 }
    }
    function rat(a, b) { return (b == "" || b + 0 == 0 || a == "" || a == "NA") ? "" : sprintf("%.3f", a / b) }
    END {
        print "| variant | server | items at end | hit ratio | RSS MiB | items / mc | hit ratio / mc | RSS / mc | note |"
        print "|---|---|---:|---:|---:|---:|---:|---:|---|"
        for (i = 1; i <= n; i++)
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", v[i], s[i], it[i],
                hr[i], (rss[i] == "NA" ? "NA" : sprintf("%.1f", rss[i] / 1024)),
                rat(it[i], mi[v[i]]), rat(hr[i], mh[v[i]]), rat(rss[i], mr[v[i]]),
                (st[i] == "ok" ? "" : st[i])
    }' "$1"
}

if [ -n "$SUMMARIZE" ]; then
    [ -f "$SUMMARIZE/results.tsv" ] || die "no results.tsv in $SUMMARIZE"
    table "$SUMMARIZE/results.tsv"
    exit 0
fi

[ -z "$RUN_AS" ] && [ "$(id -u)" = 0 ] && RUN_AS=nobody
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/hitratio.XXXXXX)}
mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
RESULTS=$OUT_DIR/results.tsv
printf 'variant\tserver\titems\thit_ratio\trss_kb\tstatus\tzipf_hit_ratio\tphase_hit_ratio\tsecs\twrong\terrors\tset_errors\tphase1_items\n' >"$RESULTS"
START=$(date +%s)
SRV_PID=""; LG_PID=""

cleanup() {
    [ -n "$LG_PID" ] && kill "$LG_PID" 2>/dev/null
    [ -n "$SRV_PID" ] && stop_server
}
trap cleanup EXIT
trap 'note interrupted; exit 130' INT TERM

if [ -z "$CACHELOAD" ]; then
    here=$(cd "$(dirname "$0")" && pwd)
    CACHELOAD=$OUT_DIR/cacheload
    echo "+ cc -O2 -o $CACHELOAD $here/cacheload.c -lm"
    cc -O2 -o "$CACHELOAD" "$here/cacheload.c" -lm || die "cannot compile cacheload.c"
fi
[ -x "$CACHELOAD" ] || die "cacheload not executable: $CACHELOAD"

free_port() {
    local p try
    for try in $(seq 1 50); do
        p=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}

# probe PROTO PORT: true once the server answers.
probe() {
    local reply
    if [ "$1" = resp ]; then
        reply=$(timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1; printf "PING\r\n" >&3; head -c 5 <&3' "$2" 2>/dev/null)
        [ "$reply" = +PONG ]
    else
        reply=$(timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1; printf "version\r\n" >&3; head -c 7 <&3' "$2" 2>/dev/null)
        [ "$reply" = VERSION ]
    fi
}

# items PROTO PORT: memcached stats curr_items, or redis DBSIZE.
items() {
    if [ "$1" = resp ]; then
        timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1; printf "DBSIZE\r\n" >&3; head -1 <&3' "$2" 2>/dev/null | tr -d '\r:'
    else
        timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1; printf "stats\r\nquit\r\n" >&3; cat <&3' "$2" 2>/dev/null \
            | tr -d '\r' | awk '$2 == "curr_items" { print $3 }'
    fi
}

rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null; }

# start_server KIND BIN POLICY LOG: sets SRV_PID, SRV_PORT, SRV_PROTO.
start_server() {
    local kind=$1 bin=$2 policy=$3 log=$4 try cmd
    for try in 1 2 3; do
        SRV_PORT=$(free_port) || die "no free port"
        case "$kind" in
            kioku) SRV_PROTO=mc
                   cmd=("$bin" -l 127.0.0.1 -p "$SRV_PORT" -U 0 -m "$MEM_MB" --maxmemory-policy "$policy") ;;
            memcached) SRV_PROTO=mc
                   cmd=("$bin" -l 127.0.0.1 -p "$SRV_PORT" -U 0 -m "$MEM_MB") ;;
            redis) SRV_PROTO=resp
                   cmd=("$bin" --port "$SRV_PORT" --bind 127.0.0.1 --save "" --appendonly no
                        --protected-mode no --daemonize no --maxmemory "${MEM_MB}mb"
                        --maxmemory-policy "$policy") ;;
        esac
        [ "$kind" != redis ] && [ -n "$RUN_AS" ] && cmd+=(-u "$RUN_AS")
        echo "+ ${cmd[*]}" >>"$log"
        "${cmd[@]}" >>"$log" 2>&1 &
        SRV_PID=$!
        for _ in $(seq 1 50); do
            kill -0 "$SRV_PID" 2>/dev/null || break
            probe "$SRV_PROTO" "$SRV_PORT" && return 0
            sleep 0.1
        done
        stop_server
    done
    return 1
}

stop_server() {
    local i
    kill "$SRV_PID" 2>/dev/null
    for i in $(seq 1 50); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SRV_PID" 2>/dev/null
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=""
}

# load OUT ARGS...: one bounded cacheload run against the current server.
load() {
    local out=$1; shift
    local cmd=("$CACHELOAD" -p "$SRV_PORT" --protocol "$SRV_PROTO" -c "$CONNS" -P "$PIPELINE"
               --seed "$SEED" -t "$RUN_LIMIT" "$@")
    echo "+ ${cmd[*]}" | tee -a "$out"
    timeout -k 5 $((RUN_LIMIT + 15)) "${cmd[@]}" >>"$out" 2>&1 &
    LG_PID=$!
    wait "$LG_PID"
    local rc=$?
    LG_PID=""
    grep -v '^RESULT' "$out" | grep -i 'wrong\|error\|limit' | head -5 >&2
    return $rc
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" "$2" | tail -1; }

# run_one VARIANT LABEL KIND BIN POLICY
run_one() {
    local variant=$1 label=$2 kind=$3 bin=$4 policy=$5 base out status=ok hr zhr phr it it1=NA rss
    base=$OUT_DIR/$variant.$label
    if [ $(( $(date +%s) - START )) -ge "$MAX_TOTAL" ]; then
        note "skipping $variant/$label: --max-total $MAX_TOTAL s reached"
        printf '%s\t%s\tNA\tNA\tNA\tskipped (time)\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n' "$variant" "$label" >>"$RESULTS"
        return
    fi
    if ! start_server "$kind" "$bin" "$policy" "$base.server.log"; then
        note "$label did not start; see $base.server.log"
        printf '%s\t%s\tNA\tNA\tNA\tdid not start\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n' "$variant" "$label" >>"$RESULTS"
        return
    fi
    echo "== $variant / $label (pid $SRV_PID, port $SRV_PORT)"
    case "$variant" in
        zipf|scan)
            out=$base.load
            local scan=0; [ "$variant" = scan ] && scan=$SCAN_PCT
            load "$out" -k "$KEYS" --min-size "$MIN_SIZE" --max-size "$MAX_SIZE" -x k: \
                -w "$WARMUP" -n "$REQUESTS" --scan-pct "$scan" || status="load failed"
            hr=$(field hit_ratio "$out"); phr=$hr ;;
        shift)
            load "$base.load1" -k "$SHIFT_KEYS1" --min-size "$SHIFT_MIN1" --max-size "$SHIFT_MAX1" \
                -x a: -w 0 -n "$SHIFT_READS1" || status="load failed"
            it1=$(items "$SRV_PROTO" "$SRV_PORT")
            echo "   phase 1: items ${it1:-NA}, hit ratio $(field hit_ratio "$base.load1")"
            out=$base.load2
            [ "$status" = ok ] && { load "$out" -k "$SHIFT_KEYS2" --min-size "$SHIFT_MIN2" \
                --max-size "$SHIFT_MAX2" -x b: -w 0 -n "$SHIFT_READS2" --tail-pct "$TAIL_PCT" \
                || status="load failed"; }
            hr=$(field tail_hit_ratio "$out"); phr=$(field hit_ratio "$out") ;;
        *) die "unknown variant $variant" ;;
    esac
    if ! kill -0 "$SRV_PID" 2>/dev/null; then
        status="SERVER DIED"
        note "$label exited during $variant; log: $base.server.log"; tail -5 "$base.server.log" >&2
        wait "$SRV_PID" 2>/dev/null; note "exit status $?"; SRV_PID=""
    fi
    [ "$(field wrong "$out")" != 0 ] && status="WRONG VALUES"
    it=$(items "$SRV_PROTO" "$SRV_PORT"); rss=$(rss_kb "$SRV_PID")
    zhr=$(field zipf_hit_ratio "$out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$variant" "$label" "${it:-NA}" \
        "${hr:-NA}" "${rss:-NA}" "$status" "${zhr:-NA}" "${phr:-NA}" "$(field secs "$out")" \
        "$(field wrong "$out")" "$(field errors "$out")" "$(field set_errors "$out")" "$it1" >>"$RESULTS"
    echo "   items ${it:-NA}  hit ratio ${hr:-NA}  RSS ${rss:-NA} kB  $status"
    [ -n "$SRV_PID" ] && stop_server
}

# The servers, in table order: label kind binary policy.
SERVERS=()
if [ -x "$KIOKU_BIN" ]; then
    for p in $POLICIES; do SERVERS+=("kioku-${p#allkeys-}|kioku|$KIOKU_BIN|$p"); done
else note "kioku not found at '$KIOKU_BIN': skipped"; fi
if [ -n "$MEMCACHED_BIN" ] && [ -x "$MEMCACHED_BIN" ]; then
    SERVERS+=("memcached|memcached|$MEMCACHED_BIN|")
else note "memcached not found at '$MEMCACHED_BIN': skipped (--memcached PATH)"; fi
if [ -n "$REDIS_BIN" ] && [ -x "$REDIS_BIN" ]; then
    for p in $REDIS_POLICIES; do SERVERS+=("redis-${p#allkeys-}|redis|$REDIS_BIN|$p"); done
else note "redis-server not found: skipped"; fi
[ ${#SERVERS[@]} -gt 0 ] || die "no server to run"

{
    echo "out: $OUT_DIR"
    echo "memory: $MEM_MB MiB per server; conns $CONNS x pipeline $PIPELINE; seed $SEED"
    echo "zipf/scan: keys $KEYS, values $MIN_SIZE-$MAX_SIZE B, warm-up $WARMUP reads, counted $REQUESTS reads; scan $SCAN_PCT %"
    echo "shift: phase 1 keys $SHIFT_KEYS1, values $SHIFT_MIN1-$SHIFT_MAX1 B, $SHIFT_READS1 reads;" \
         "phase 2 keys $SHIFT_KEYS2, values $SHIFT_MIN2-$SHIFT_MAX2 B, $SHIFT_READS2 reads, last $TAIL_PCT % reported"
    for s in "${SERVERS[@]}"; do
        IFS='|' read -r label kind bin policy <<<"$s"
        echo "server $label: $bin ($("$bin" --version 2>/dev/null | head -1 || true); sha256 $(sha256sum "$bin" | cut -c1-12))"
    done
} | tee "$OUT_DIR/setup.txt"

for variant in $VARIANTS; do
    for s in "${SERVERS[@]}"; do
        IFS='|' read -r label kind bin policy <<<"$s"
        run_one "$variant" "$label" "$kind" "$bin" "$policy"
    done
done

echo
echo "elapsed $(( $(date +%s) - START )) s; raw results in $RESULTS"
table "$RESULTS"
