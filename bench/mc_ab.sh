#!/usr/bin/env bash
# mc_ab.sh - A/B benchmark of two memcached-compatible servers (default: kioku
# vs memcached) on one machine.
#
# Both servers are started by this script, listen on 127.0.0.1 only (free
# ports), are pinned to one core (taskset), and are stopped by PID on exit.
# The load generator (memtier_benchmark, else memcaslap) is pinned to another
# core. Rounds alternate A/B (odd rounds A then B, even rounds B then A) so
# slow drift hits both sides equally. Per round we record ops/s, p50/p99
# latency and the server's CPU seconds (utime+stime delta from /proc/PID/stat),
# and print, per setting, the median of each metric per server and the median
# of the per-round ratios A/B.
#
# Nothing here builds or downloads anything; see bench/README.md for the tools.
#
# Usage: bench/mc_ab.sh --memcached PATH [options]   (-h for all options)

set -uo pipefail

# ---------------------------------------------------------------- defaults --
A_KIND=kioku;     A_BIN=./src/kioku; A_EXTRA=""
B_KIND=memcached; B_BIN="";          B_EXTRA=""
PROTOCOL=memcache_text
THREADS=1            # server worker threads (-t); 1 when the box has 2 cores
MEM_MB=1024          # server item memory (-m)
ROUNDS=5             # recorded rounds per server per setting
ROUND_TIME=10        # seconds per round
WARMUP=2             # unrecorded seconds per server per setting (0 = none)
PIPELINES="1 16"     # one setting per pipeline depth
RATIO=1:10           # set:get
DATA_SIZE=32
KEYS=100000          # key range 1..KEYS, prefilled so gets hit
LG_THREADS=1
LG_CLIENTS=25        # connections per load-generator thread
SERVER_CPU=0
LG_CPU=1
LOADGEN=auto         # auto | memtier | memcaslap
MEMTIER=""
MEMCASLAP=""
MAX_TOTAL=900        # hard bound on the whole run, seconds
OUT_DIR=""
SUMMARIZE=""
RUN_AS=""            # -u USER for the servers; default nobody when run as root
QUIET_PCT=10         # before each round, wait until both cores are below this busy %
QUIET_WAIT=20        # ... for at most this many seconds (0 = do not wait)

usage() {
    cat <<EOF
Usage: $0 --memcached PATH [options]

Servers (a server is a KIND plus a binary; KIND selects its command line):
  --a-bin PATH         server A binary (default: $A_BIN)
  --a-kind KIND        server A kind: kioku | memcached (default: $A_KIND)
  --a-args "ARGS"      extra arguments for server A (word-split)
  --b-bin PATH         server B binary (required)
  --b-kind KIND        server B kind (default: $B_KIND)
  --b-args "ARGS"      extra arguments for server B
  --kioku PATH         same as --a-bin PATH --a-kind kioku
  --memcached PATH     same as --b-bin PATH --b-kind memcached
  --protocol P         memcache_text (default) | memcache_binary | redis
                       (a KIND/protocol pair must have a case in server_cmd)
  --threads N          server -t (default: $THREADS)
  --memory MB          server -m (default: $MEM_MB)
  --run-as USER        server -u USER (default: nobody when run as root)

Load:
  --rounds N           recorded rounds per server per setting (default: $ROUNDS)
  --time S             seconds per round (default: $ROUND_TIME)
  --warmup S           unrecorded warm-up per server per setting (default: $WARMUP)
  --pipelines "1 16"   pipeline depths, one setting each (default: "$PIPELINES")
  --ratio S:G          set:get ratio (default: $RATIO)
  --data-size N        value bytes (default: $DATA_SIZE)
  --keys N             key range 1..N, prefilled (default: $KEYS)
  --lg-threads N       load generator threads (default: $LG_THREADS)
  --clients N          connections per load generator thread (default: $LG_CLIENTS)
  --server-cpu N       core for the servers (default: $SERVER_CPU)
  --lg-cpu LIST        core(s) for the load generator (default: $LG_CPU)
  --loadgen L          auto | memtier | memcaslap (default: auto = memtier if found)
  --memtier PATH       memtier_benchmark binary (default: \$MEMTIER or on PATH)
  --memcaslap PATH     memcaslap binary (default: on PATH)

Run:
  --quiet-pct P         before each round wait until the server and load generator
                       cores are under P % busy (default: $QUIET_PCT) ...
  --quiet-wait S       ... for at most S seconds, then run anyway (default: $QUIET_WAIT)
  --max-total S        hard bound on total run time (default: $MAX_TOTAL)
  --out DIR            keep raw outputs here (default: a new /tmp/mc_ab.* dir)
  --summarize DIR      only print the summary tables of an earlier run's DIR
  -h, --help
EOF
}

die() { echo "mc_ab: error: $*" >&2; exit 1; }
note() { echo "mc_ab: $*" >&2; }

# summary SETTING: medians per side and the median per-round ratio A/B.
summary() {
    local setting=$1
    awk -F'\t' -v st="$setting" -v an="A=$A_KIND" -v bn="B=$B_KIND" -v qp="$QUIET_PCT" '
    function med(arr, n,   i, j, t) {
        if (n == 0) return "NA"
        for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j+1] = arr[j]; arr[j+1] = t }
        return (n % 2) ? arr[(n+1)/2] : (arr[n/2] + arr[n/2+1]) / 2
    }
    NR > 1 && $1 == st { for (c = 4; c <= 12; c++) v[$3, $2, c] = $c; rounds[$2] = 1 }
    END {
        split("ops/s,p50 (us),p99 (us),server CPU s,ops/server-CPU-s,get hit %,lg core busy %,server core busy %,other load on srv core %", name, ",")
        printf "  %-28s %14s %14s %10s\n", "metric (median)", an, bn, "A/B"
        for (c = 4; c <= 12; c++) {
            na = nb = nr = 0; delete xa; delete xb; delete xr
            for (r in rounds) {
                a = v["A", r, c]; b = v["B", r, c]
                if (a != "" && a != "NA") xa[++na] = a + 0
                if (b != "" && b != "NA") xb[++nb] = b + 0
                if (a != "" && a != "NA" && b != "" && b != "NA" && b + 0 > 0) xr[++nr] = a / b
            }
            ma = med(xa, na); mb = med(xb, nb); mr = med(xr, nr)
            if (c == 9) { ca = na; cb = nb }
            if (c == 12 && ((ma != "NA" && ma > 10) || (mb != "NA" && mb > 10))) warn = 1
            printf "  %-28s %14s %14s %10s\n", name[c-3], \
                (ma == "NA" ? ma : sprintf("%.2f", ma)), (mb == "NA" ? mb : sprintf("%.2f", mb)), \
                (mr == "NA" ? mr : sprintf("%.3f", mr))
        }
        printf "  (rounds: A=%d B=%d; A/B = median of per-round ratios; ops/server-CPU-s decides)\n", ca, cb
        # pairs where neither round had other load on the server core
        nq = 0; delete qo; delete qc
        for (r in rounds) {
            oa = v["A", r, 12]; ob = v["B", r, 12]
            if (oa == "" || ob == "" || oa == "NA" || ob == "NA" || oa + 0 > qp || ob + 0 > qp) continue
            if (v["B", r, 4] + 0 > 0 && v["B", r, 8] + 0 > 0) {
                nq++; qo[nq] = v["A", r, 4] / v["B", r, 4]; qc[nq] = v["A", r, 8] / v["B", r, 8]
            }
        }
        if (nq > 0) printf "  quiet pairs (other load <= %d%% on both sides): %d; their median A/B: ops/s %.3f, ops/server-CPU-s %.3f\n", qp, nq, med(qo, nq), med(qc, nq)
        else printf "  quiet pairs (other load <= %d%% on both sides): 0\n", qp
        if (warn) printf "  WARNING: other processes used >10%% of the server core: numbers are perturbed\n"
    }' "$RESULTS"
}

while [ $# -gt 0 ]; do
    opt=$1; val=${2-}
    case "$opt" in
        --a-bin) A_BIN=$val; shift ;;
        --a-kind) A_KIND=$val; shift ;;
        --a-args) A_EXTRA=$val; shift ;;
        --b-bin) B_BIN=$val; shift ;;
        --b-kind) B_KIND=$val; shift ;;
        --b-args) B_EXTRA=$val; shift ;;
        --kioku) A_BIN=$val; A_KIND=kioku; shift ;;
        --memcached) B_BIN=$val; B_KIND=memcached; shift ;;
        --protocol) PROTOCOL=$val; shift ;;
        --threads) THREADS=$val; shift ;;
        --memory) MEM_MB=$val; shift ;;
        --run-as) RUN_AS=$val; shift ;;
        --rounds) ROUNDS=$val; shift ;;
        --time) ROUND_TIME=$val; shift ;;
        --warmup) WARMUP=$val; shift ;;
        --pipelines) PIPELINES=$val; shift ;;
        --ratio) RATIO=$val; shift ;;
        --data-size) DATA_SIZE=$val; shift ;;
        --keys) KEYS=$val; shift ;;
        --lg-threads) LG_THREADS=$val; shift ;;
        --clients) LG_CLIENTS=$val; shift ;;
        --server-cpu) SERVER_CPU=$val; shift ;;
        --lg-cpu) LG_CPU=$val; shift ;;
        --loadgen) LOADGEN=$val; shift ;;
        --memtier) MEMTIER=$val; shift ;;
        --memcaslap) MEMCASLAP=$val; shift ;;
        --max-total) MAX_TOTAL=$val; shift ;;
        --quiet-pct) QUIET_PCT=$val; shift ;;
        --quiet-wait) QUIET_WAIT=$val; shift ;;
        --out) OUT_DIR=$val; shift ;;
        --summarize) SUMMARIZE=$val; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $opt" ;;
    esac
    shift
done

if [ -n "$SUMMARIZE" ]; then
    RESULTS=$SUMMARIZE/results.tsv
    [ -r "$RESULTS" ] || die "no $RESULTS"
    for setting in $(awk -F'\t' 'NR > 1 && !seen[$1]++ { print $1 }' "$RESULTS"); do
        echo "$setting:"; summary "$setting"
    done
    exit 0
fi

isnum() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in THREADS MEM_MB ROUNDS ROUND_TIME WARMUP DATA_SIZE KEYS LG_THREADS LG_CLIENTS SERVER_CPU MAX_TOTAL QUIET_PCT QUIET_WAIT; do
    isnum "${!v}" || die "$v must be a whole number: '${!v}'"
done
[ "$ROUNDS" -ge 1 ] && [ "$ROUND_TIME" -ge 1 ] || die "--rounds and --time must be >= 1"
[[ $RATIO =~ ^[0-9]+:[0-9]+$ ]] || die "--ratio must look like 1:10"
for p in $PIPELINES; do isnum "$p" && [ "$p" -ge 1 ] || die "bad pipeline depth: $p"; done
[ -n "$B_BIN" ] || die "server B is required: --memcached PATH (or --b-bin PATH --b-kind KIND)"
for b in "$A_BIN" "$B_BIN"; do [ -x "$b" ] || die "not an executable: $b"; done
for t in taskset timeout getconf awk sort ss; do command -v "$t" >/dev/null || die "missing tool: $t"; done
[ -z "$RUN_AS" ] && [ "$(id -u)" -eq 0 ] && RUN_AS=nobody
NCPU=$(getconf _NPROCESSORS_ONLN)
[ "$SERVER_CPU" -lt "$NCPU" ] || die "--server-cpu $SERVER_CPU: only $NCPU cores"
CLK_TCK=$(getconf CLK_TCK)

# --------------------------------------------------------- load generator --
[ -z "$MEMTIER" ] && MEMTIER=$(command -v memtier_benchmark 2>/dev/null || true)
[ -z "$MEMCASLAP" ] && MEMCASLAP=$(command -v memcaslap 2>/dev/null || command -v memaslap 2>/dev/null || true)
if [ "$LOADGEN" = auto ]; then
    if [ -n "$MEMTIER" ] && [ -x "$MEMTIER" ]; then LOADGEN=memtier
    elif [ -n "$MEMCASLAP" ] && [ -x "$MEMCASLAP" ]; then LOADGEN=memcaslap
    else die "no load generator: install memtier_benchmark (see bench/README.md) or pass --memtier PATH"
    fi
fi
case "$LOADGEN" in
    memtier) [ -x "$MEMTIER" ] || die "memtier_benchmark not found: --memtier PATH"
             command -v jq >/dev/null || die "memtier results are read with jq: apt-get install jq" ;;
    memcaslap) [ -x "$MEMCASLAP" ] || die "memcaslap not found (apt-get install libmemcached-tools)"
               case "$PROTOCOL" in memcache_text|memcache_binary) ;; *) die "memcaslap cannot speak $PROTOCOL" ;; esac
               note "memcaslap does not pipeline and reports no percentiles: one setting, p50/p99 shown as NA"
               PIPELINES=1 ;;
    *) die "--loadgen must be auto, memtier or memcaslap" ;;
esac

# ------------------------------------------------------------ time budget --
NSET=$(echo $PIPELINES | wc -w)
Q=0; [ "$QUIET_WAIT" -gt 0 ] && Q=1
EST=$(( 30 + NSET * 2 * (WARMUP + 3 + ROUNDS * (ROUND_TIME + 3 + Q)) ))
[ "$EST" -le "$MAX_TOTAL" ] || die "estimated ${EST}s exceeds --max-total ${MAX_TOTAL}s: fewer --rounds, shorter --time, or raise --max-total"

if [ -z "$OUT_DIR" ]; then OUT_DIR=$(mktemp -d /tmp/mc_ab.XXXXXX) || die "mktemp failed"
else mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"; fi
RESULTS=$OUT_DIR/results.tsv
printf 'setting\tround\tside\tops_s\tp50_us\tp99_us\tcpu_s\tops_per_cpu_s\thit_pct\tlg_core_pct\tsrv_core_pct\tsrv_core_other_pct\twall_s\tops\tlg_ops_s\n' > "$RESULTS"

# -------------------------------------------------------- process control --
STARTED_PIDS=()     # servers we started
LG_PID=""           # running load generator (timeout wrapper)
WATCHDOG=""

stop_pid() {        # stop one process we started, by PID: TERM, then KILL
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}
cleanup() {
    trap - EXIT INT TERM HUP
    [ -n "$LG_PID" ] && stop_pid "$LG_PID"
    local p
    for p in "${STARTED_PIDS[@]}"; do stop_pid "$p"; done
    if [ -n "$WATCHDOG" ]; then    # it stops its own sleep on TERM
        kill -TERM "$WATCHDOG" 2>/dev/null; wait "$WATCHDOG" 2>/dev/null
    fi
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT TERM HUP

# Hard bound: a watchdog TERMs this script a little after --max-total.
bash -c 'sleep "$1" & s=$!; trap "kill $s 2>/dev/null; exit 0" TERM; wait "$s"; kill -TERM "$2"' \
    _ $((MAX_TOTAL + 30)) $$ &
WATCHDOG=$!

show_cmd() { printf '+'; printf ' %q' "$@"; printf '\n'; }

# Pick a loopback TCP port nobody is listening on.
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
    done
    return 1
}

# ------------------------------------------------ server kinds x protocols --
# server_cmd KIND BIN PROTO PORT EXTRA: sets SRV_CMD (the full command line,
# taskset included) for a server that serves PROTO on 127.0.0.1:PORT.
# To add a protocol or a server kind, add a case here (and, if the protocol
# needs it, in probe and loadgen_args). Unsupported pairs return 1.
server_cmd() {
    local kind=$1 bin=$2 proto=$3 port=$4 extra=$5
    local common=(-l 127.0.0.1 -p "$port" -U 0 -t "$THREADS" -m "$MEM_MB")
    [ -n "$RUN_AS" ] && common+=(-u "$RUN_AS")
    SRV_CMD=(taskset -c "$SERVER_CPU" "$bin")
    case "$kind:$proto" in
        memcached:memcache_text|memcached:memcache_binary)
            SRV_CMD+=("${common[@]}") ;;            # memcached auto-negotiates
        kioku:memcache_text)
            SRV_CMD+=("${common[@]}") ;;
        # kioku:memcache_binary) ...  (when kioku serves binary)
        # kioku:redis) SRV_CMD+=(-l 127.0.0.1 -p "$(free_port)" --resp-port "$port" ...) ;;
        *) return 1 ;;
    esac
    # shellcheck disable=SC2206
    [ -n "$extra" ] && SRV_CMD+=($extra)
    return 0
}

# probe PROTO PORT: true once the server answers on 127.0.0.1:PORT.
probe() {
    local proto=$1 port=$2 reply
    case "$proto" in
        memcache_text)
            reply=$(timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1; printf "version\r\n" >&3; head -c 7 <&3' "$port" 2>/dev/null)
            [ "$reply" = VERSION ] ;;
        redis)
            reply=$(timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1; printf "PING\r\n" >&3; head -c 5 <&3' "$port" 2>/dev/null)
            [ "$reply" = +PONG ] ;;
        *)  timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0' "$port" 2>/dev/null ;;
    esac
}

# curr_items over the text protocol (informational; empty if unavailable).
curr_items() {
    [ "$PROTOCOL" = memcache_text ] || return 0
    timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1; printf "stats\r\nquit\r\n" >&3; cat <&3' "$1" 2>/dev/null \
        | tr -d '\r' | awk '$2 == "curr_items" { print $3 }'
}

# start_server SIDE KIND BIN EXTRA: starts it, sets <SIDE>_PID and <SIDE>_PORT.
start_server() {
    local side=$1 kind=$2 bin=$3 extra=$4 port pid try log
    for try in 1 2 3 4 5; do
        port=$(free_port) || die "no free port"
        server_cmd "$kind" "$bin" "$PROTOCOL" "$port" "$extra" \
            || die "server kind '$kind' has no case for protocol '$PROTOCOL' in server_cmd"
        log=$OUT_DIR/server_$side.log
        echo "server $side ($kind):"; show_cmd "${SRV_CMD[@]}"
        "${SRV_CMD[@]}" >"$log" 2>&1 &
        pid=$!
        STARTED_PIDS+=("$pid")
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            probe "$PROTOCOL" "$port" && { eval "${side}_PID=$pid ${side}_PORT=$port"; return 0; }
            sleep 0.1
        done
        note "server $side did not come up on port $port (try $try); log:"; tail -5 "$log" >&2
        stop_pid "$pid"
    done
    die "server $side failed to start"
}

# CPU ticks (utime+stime) of a process, all threads; fields after the ")".
proc_ticks() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    set -- $s
    echo $(( ${12} + ${13} ))
}

# busy and total jiffies of a list of cores ("1" or "1,2") from /proc/stat.
core_jiffies() {
    local cpus=",$1,"
    awk -v cpus="$cpus" '$1 ~ /^cpu[0-9]+$/ { n = substr($1, 4)
        if (index(cpus, "," n ",")) { t = 0; for (i = 2; i <= NF; i++) t += $i
            busy += t - $5 - $6; tot += t } }
        END { print busy + 0, tot + 0 }' /proc/stat
}

# Shared machines: wait (bounded) until the server and load generator cores
# are quiet, so another job's burst does not land inside a round.
wait_quiet() {
    [ "$QUIET_WAIT" -gt 0 ] || return 0
    local deadline=$((SECONDS + QUIET_WAIT)) a at b bt busy
    # never wait into the time the round itself needs
    [ "$deadline" -gt $((MAX_TOTAL - ROUND_TIME - 10)) ] && deadline=$((MAX_TOTAL - ROUND_TIME - 10))
    while :; do
        read -r a at < <(core_jiffies "$SERVER_CPU,$LG_CPU")
        sleep 1
        read -r b bt < <(core_jiffies "$SERVER_CPU,$LG_CPU")
        busy=0; [ "$bt" -gt "$at" ] && busy=$(( 100 * (b - a) / (bt - at) ))
        [ "$busy" -lt "$QUIET_PCT" ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            note "cores $SERVER_CPU,$LG_CPU still ${busy}% busy after ${QUIET_WAIT}s of waiting: running anyway"
            return 0
        fi
    done
}

# ------------------------------------------------------- load generation --
# loadgen_args KIND(prefill|run) PORT PIPELINE SECONDS JSON: sets LG_CMD.
loadgen_args() {
    local what=$1 port=$2 pl=$3 secs=$4 json=$5
    case "$LOADGEN" in
    memtier)
        LG_CMD=(taskset -c "$LG_CPU" "$MEMTIER" -s 127.0.0.1 -p "$port" --protocol="$PROTOCOL"
                --threads="$LG_THREADS" --clients="$LG_CLIENTS" --data-size="$DATA_SIZE"
                --key-prefix=memtier- --key-minimum=1 --key-maximum="$KEYS" --hide-histogram)
        if [ "$what" = prefill ]; then
            LG_CMD+=(--ratio=1:0 --key-pattern=P:P --requests=allkeys --pipeline=16)
        else
            LG_CMD+=(--ratio="$RATIO" --key-pattern=R:R --distinct-client-seed
                     --pipeline="$pl" --test-time="$secs" --json-out-file="$json")
        fi ;;
    memcaslap)
        local s=${RATIO%%:*} g=${RATIO##*:} cfg=$OUT_DIR/memcaslap.cfg
        awk -v s="$s" -v g="$g" -v d="$DATA_SIZE" 'BEGIN { printf "key\n16 16 1\nvalue\n%d %d 1\ncmd\n0 %.4f\n1 %.4f\n", d, d, s/(s+g), g/(s+g) }' > "$cfg"
        LG_CMD=(taskset -c "$LG_CPU" "$MEMCASLAP" -s "127.0.0.1:$port" -T "$LG_THREADS"
                -c $((LG_THREADS * LG_CLIENTS)) -F "$cfg" -X "$DATA_SIZE")
        [ "$PROTOCOL" = memcache_binary ] && LG_CMD+=(-B)
        LG_CMD+=(-t "${secs}s") ;;
    esac
}

run_lg() {   # run LG_CMD bounded in time; output to $1
    local out=$1 secs=$2 rc
    timeout -k 5 $((secs + 30)) "${LG_CMD[@]}" >"$out" 2>&1 &
    LG_PID=$!
    wait "$LG_PID"; rc=$?
    LG_PID=""
    return $rc
}

# parse_result FILE-BASE: prints "ops_s p50_us p99_us count hit_pct" or fails.
parse_result() {
    local base=$1
    case "$LOADGEN" in
    memtier)
        jq -r '."ALL STATS" as $a | $a.Totals as $t |
               ($a.Gets."Hits/sec" + $a.Gets."Misses/sec") as $g |
               if ($t.Count // 0) == 0 or ($t."Connection Errors" // 0) > 0 then "FAIL"
               else "\($t."Ops/sec") \($t."Percentile Latencies"."p50.00" * 1000 | round) \($t."Percentile Latencies"."p99.00" * 1000 | round) \($t.Count) \(if $g > 0 then 100 * $a.Gets."Hits/sec" / $g else "NA" end)" end' \
            "$base.json" 2>/dev/null | grep -v FAIL ;;
    memcaslap)
        awk '/^cmd_get:/ { g = $2 } /^get_misses:/ { m = $2 }
             /TPS:/ { for (i = 1; i <= NF; i++) { if ($i == "TPS:") t = $(i+1); if ($i == "Ops:") o = $(i+1) } }
             END { if (o + 0 > 0) printf "%s NA NA %s %s\n", t, o, (g > 0 ? 100 * (g - m) / g : "NA"); else exit 1 }' "$base.txt" ;;
    esac
}

# one_round SETTING ROUND SIDE PIPELINE SECONDS RECORD(0|1)
one_round() {
    local setting=$1 round=$2 side=$3 pl=$4 secs=$5 record=$6
    local pidv=${side}_PID portv=${side}_PORT
    local pid=${!pidv} port=${!portv} base t0 t1 j0 j1 j0t j1t s0 s1 s0t s1t w0 w1 res cpu
    base=$OUT_DIR/$setting.r$round.$side
    loadgen_args run "$port" "$pl" "$secs" "$base.json"
    show_cmd "${LG_CMD[@]}"
    kill -0 "$pid" 2>/dev/null || die "server $side (pid $pid) is gone; see $OUT_DIR/server_$side.log"
    [ "$record" = 1 ] && wait_quiet
    read -r j0 j0t < <(core_jiffies "$LG_CPU")
    read -r s0 s0t < <(core_jiffies "$SERVER_CPU")
    t0=$(proc_ticks "$pid") || die "cannot read /proc/$pid/stat"
    w0=$(date +%s%N)
    run_lg "$base.txt" "$secs" || note "load generator exit status $? (round $round $side)"
    w1=$(date +%s%N)
    t1=$(proc_ticks "$pid") || die "server $side (pid $pid) died during the round"
    read -r j1 j1t < <(core_jiffies "$LG_CPU")
    read -r s1 s1t < <(core_jiffies "$SERVER_CPU")
    [ "$record" = 1 ] || return 0
    res=$(parse_result "$base") || { note "round $round $side: no usable result (see $base.txt)"; return 0; }
    set -- $res
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d / hz }')
    # ops/s = operations / wall time of the load generator process: memtier's
    # own Ops/sec divides by a duration that can be a whole second short.
    awk -v st="$setting" -v r="$round" -v sd="$side" -v lgops="$1" -v p50="$2" -v p99="$3" \
        -v cnt="$4" -v hit="$5" -v cpu="$cpu" -v lb=$((j1 - j0)) -v lt=$((j1t - j0t)) \
        -v sb=$((s1 - s0)) -v stt=$((s1t - s0t)) -v wns=$((w1 - w0)) -v tk=$((t1 - t0)) 'BEGIN {
        wall = wns / 1e9
        opc = (cpu > 0) ? sprintf("%.0f", cnt / cpu) : "NA"
        lg = (lt > 0) ? sprintf("%.0f", 100 * lb / lt) : "NA"
        sc = (stt > 0) ? sprintf("%.0f", 100 * sb / stt) : "NA"
        # busy time on the server core not spent by this server (other load)
        so = (stt > 0) ? sprintf("%.0f", (sb > tk ? 100 * (sb - tk) / stt : 0)) : "NA"
        printf "%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%s\t%.0f\n", st, r, sd, cnt / wall, p50, p99, cpu, opc, hit, lg, sc, so, wall, cnt, lgops }' >> "$RESULTS"
    tail -1 "$RESULTS" | awk -F'\t' '{ printf "  round %s %s: ops/s %s  p50 %s us  p99 %s us  cpu %s s  ops/cpu-s %s  hit %s%%  core busy: server %s%% (other %s%%) lg %s%%\n", $2, $3, $4, $5, $6, $7, $8, $9, $11, $12, $10 }'
}

# ------------------------------------------------------------------- run --
echo "mc_ab: $(date -u +%Y-%m-%dT%H:%M:%SZ)  cores=$NCPU  CLK_TCK=$CLK_TCK  out=$OUT_DIR"
for side in A B; do
    kv=${side}_KIND; bv=${side}_BIN
    echo "$side: ${!kv}  ${!bv}  ($(timeout 2 "${!bv}" -V 2>&1 | head -1); sha256 $(sha256sum < "${!bv}" | cut -c1-16); $(date -u -r "${!bv}" +%Y-%m-%dT%H:%M:%SZ))"
done
[ "$LOADGEN" = memtier ] && echo "load generator: $MEMTIER ($("$MEMTIER" --version 2>&1 | head -1))"
[ "$LOADGEN" = memcaslap ] && echo "load generator: $MEMCASLAP"
echo "protocol=$PROTOCOL threads=$THREADS memory=${MEM_MB}MB server-cpu=$SERVER_CPU lg-cpu=$LG_CPU loadgen=$LOADGEN"
echo "rounds=$ROUNDS x ${ROUND_TIME}s  warmup=${WARMUP}s  pipelines=\"$PIPELINES\"  ratio=$RATIO  data-size=$DATA_SIZE  keys=1..$KEYS  clients=$LG_THREADS x $LG_CLIENTS"
echo "quiet gate: cores $SERVER_CPU,$LG_CPU under ${QUIET_PCT}% busy, waiting at most ${QUIET_WAIT}s per round"
echo "estimated time ${EST}s plus quiet waits (bound ${MAX_TOTAL}s)"
[ "$NCPU" -le 2 ] && [ "$THREADS" -gt 1 ] && note "warning: $THREADS server threads on a $NCPU-core box share core $SERVER_CPU"

start_server A "$A_KIND" "$A_BIN" "$A_EXTRA"
start_server B "$B_KIND" "$B_BIN" "$B_EXTRA"

for side in A B; do
    [ "$LOADGEN" = memtier ] || break   # memcaslap sets the keys it gets itself
    portv=${side}_PORT
    loadgen_args prefill "${!portv}" 16 0 ""
    echo "prefill $side:"; show_cmd "${LG_CMD[@]}"
    run_lg "$OUT_DIR/prefill_$side.txt" 60 || note "prefill $side exit status $?"
    items=$(curr_items "${!portv}")
    [ -n "$items" ] && echo "  $side curr_items=$items"
done

declare -a SETTINGS
for pl in $PIPELINES; do
    setting="${PROTOCOL}_p$pl"
    SETTINGS+=("$setting")
    echo
    echo "=== setting $setting: pipeline=$pl ==="
    if [ "$WARMUP" -gt 0 ]; then
        echo "warm-up (not recorded):"
        one_round "$setting" 0 A "$pl" "$WARMUP" 0
        one_round "$setting" 0 B "$pl" "$WARMUP" 0
    fi
    for r in $(seq 1 "$ROUNDS"); do
        if [ $((SECONDS + 2 * (ROUND_TIME + 4))) -gt "$MAX_TOTAL" ]; then
            note "time bound reached: stopping before round $r"; break 2
        fi
        if [ $((r % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
        for side in $order; do one_round "$setting" "$r" "$side" "$pl" "$ROUND_TIME" 1; done
    done
done

echo
echo "=== results (A=$A_KIND $A_BIN, B=$B_KIND $B_BIN; protocol $PROTOCOL, -t $THREADS -m $MEM_MB) ==="
for setting in "${SETTINGS[@]}"; do
    echo "$setting:"
    summary "$setting"
done
echo "raw per-round results: $RESULTS   (total ${SECONDS}s)"
