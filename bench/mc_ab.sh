#!/usr/bin/env bash
# mc_ab.sh - A/B benchmark of two (optionally three) cache servers on one
# machine (default: kioku vs memcached; also kioku vs redis-server over RESP).
#
# The servers are started by this script, listen on 127.0.0.1 only (free
# ports), are pinned to one core (taskset), and are stopped by PID on exit.
# The load generator (memtier_benchmark, else memcaslap; for the meta protocol
# our own bench/metaload.c) is pinned to another core. Rounds alternate (odd
# rounds A B [C], even rounds [C] B A) so slow drift hits every side equally.
# Per round we record ops/s, p50/p99 latency and the server's CPU seconds
# (utime+stime delta from /proc/PID/stat), and print, per setting, the median
# of each metric per server and the median of the per-round ratios A/B (and
# C/B, C/A with a third server).
#
# Nothing here downloads or builds third-party code; see bench/README.md for
# the tools. The only thing compiled is our own bench/metaload.c (into the
# output directory) when --loadgen metaload is used without --metaload PATH.
#
# Usage: bench/mc_ab.sh --memcached PATH [options]   (-h for all options)

set -uo pipefail

# ---------------------------------------------------------------- defaults --
A_KIND=kioku;     A_BIN=./src/kioku; A_EXTRA=""
B_KIND=memcached; B_BIN="";          B_EXTRA=""
C_KIND="";        C_BIN="";          C_EXTRA=""   # optional third server
PROTOCOL=memcache_text
THREADS=1            # server worker threads (-t); 1 when the box has 2 cores
A_THREADS=""; B_THREADS=""; C_THREADS=""          # per-side -t (default THREADS)
MEM_MB=1024          # server item memory (-m)
ROUNDS=5             # recorded rounds per server per setting
ROUND_TIME=10        # seconds per round
WARMUP=2             # unrecorded seconds per server per setting (0 = none)
PIPELINES="1 16"     # one setting per pipeline depth
RATIO=1:10           # set:get
CMDS=()              # memtier --command mode: "RATIO:COMMAND" per command (replaces set/get)
PREFILL_CMD=""       # ... and the command that prefills every key (memtier --command)
KEY_PREFIX=memtier-
LABEL=""             # names the settings (default: the protocol)
DATA_SIZE=32
KEYS=100000          # key range 1..KEYS, prefilled so gets hit
LG_THREADS=1
LG_CLIENTS=25        # connections per load-generator thread
SERVER_CPU=0
LG_CPU=1
LOADGEN=auto         # auto | memtier | memcaslap | metaload
MEMTIER=""
MEMCASLAP=""
METALOAD=""          # prebuilt bench/metaload.c; default: compiled into OUT_DIR
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
  --a-kind KIND        server A kind: kioku | memcached | redis (default: $A_KIND)
  --a-args "ARGS"      extra arguments for server A (word-split)
  --a-threads N        server A -t (default: --threads)
  --b-bin PATH         server B binary (required)
  --b-kind KIND        server B kind (default: $B_KIND)
  --b-args "ARGS"      extra arguments for server B
  --b-threads N        server B -t (default: --threads)
  --c-bin PATH         optional third server C (e.g. kioku at another -t);
  --c-kind KIND        the summary then also shows C/B and C/A
  --c-args "ARGS"      (default kind: kioku)
  --c-threads N
  --kioku PATH         same as --a-bin PATH --a-kind kioku
  --memcached PATH     same as --b-bin PATH --b-kind memcached
  --redis PATH         same as --b-bin PATH --b-kind redis (redis-server, no persistence)
  --protocol P         memcache_text (default) | memcache_binary | meta | redis
                       (a KIND/protocol pair must have a case in server_cmd;
                       meta is driven by metaload; kioku serves redis on --resp-port)
  --threads N          server -t (default: $THREADS; redis-server has no -t)
  --memory MB          server -m (default: $MEM_MB)
  --run-as USER        server -u USER (default: nobody when run as root)

Load:
  --rounds N           recorded rounds per server per setting (default: $ROUNDS)
  --time S             seconds per round (default: $ROUND_TIME)
  --warmup S           unrecorded warm-up per server per setting (default: $WARMUP)
  --pipelines "1 16"   pipeline depths, one setting each (default: "$PIPELINES")
  --ratio S:G          set:get ratio (default: $RATIO)
  --cmd "N:COMMAND"    memtier command mode instead of set/get (repeatable): send
                       COMMAND N times in turn with the others, e.g.
                       --cmd "10:HGETALL __key__" (keys at random from the range)
  --prefill-cmd CMD    with --cmd: the command that prefills each key of the range
                       (default: no prefill)
  --label L            name the settings L_p1, L_p16... (default: the protocol)
  --key-prefix P       key prefix (default: $KEY_PREFIX; "" makes __key__ a number)
  --data-size N        value bytes (default: $DATA_SIZE)
  --keys N             key range 1..N, prefilled (default: $KEYS)
  --lg-threads N       load generator threads (default: $LG_THREADS)
  --clients N          connections per load generator thread (default: $LG_CLIENTS)
  --server-cpu N       core for the servers (default: $SERVER_CPU)
  --lg-cpu LIST        core(s) for the load generator (default: $LG_CPU)
  --loadgen L          auto | memtier | memcaslap | metaload (default: auto =
                       metaload for --protocol meta, else memtier if found)
                       metaload = bench/metaload.c, mg/ms pipelined; implies --protocol meta
  --memtier PATH       memtier_benchmark binary (default: \$MEMTIER or on PATH)
  --memcaslap PATH     memcaslap binary (default: on PATH)
  --metaload PATH      prebuilt metaload (default: cc -O2 bench/metaload.c into the out dir)

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

# summary SETTING: medians per side and the median per-round ratios A/B (and
# C/B, C/A when a third server ran). SIDE_LABELS: "A=kioku B=memcached ...".
summary() {
    local setting=$1
    awk -F'\t' -v st="$setting" -v labels="$SIDE_LABELS" -v qp="$QUIET_PCT" '
    function med(arr, n,   i, j, t) {
        if (n == 0) return "NA"
        for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j+1] = arr[j]; arr[j+1] = t }
        return (n % 2) ? arr[(n+1)/2] : (arr[n/2] + arr[n/2+1]) / 2
    }
    function fmt(x, f) { return (x == "NA") ? x : sprintf(f, x) }
    function ok(x) { return x != "" && x != "NA" }
    NR > 1 && $1 == st { for (c = 4; c <= 12; c++) v[$3, $2, c] = $c; rounds[$2] = 1; present[$3] = 1 }
    END {
        split("ops/s,p50 (us),p99 (us),server CPU s,ops/server-CPU-s,get hit %,lg core busy %,server core busy %,other load on srv core %", name, ",")
        ns = 0; nl = split(labels, lab, " ")
        for (i = 1; i <= nl; i++) { s = substr(lab[i], 1, 1); if (s in present) { side[++ns] = s; title[s] = lab[i] } }
        for (s in present) { f = 0; for (i = 1; i <= ns; i++) if (side[i] == s) f = 1; if (!f) { side[++ns] = s; title[s] = s } }
        # ratio pairs: A/B, then C/B and C/A
        np = 0
        if (("A" in present) && ("B" in present)) { pn[++np] = "A"; pd[np] = "B" }
        if (("C" in present) && ("B" in present)) { pn[++np] = "C"; pd[np] = "B" }
        if (("C" in present) && ("A" in present)) { pn[++np] = "C"; pd[np] = "A" }
        printf "  %-26s", "metric (median)"
        for (i = 1; i <= ns; i++) printf " %15s", title[side[i]]
        for (p = 1; p <= np; p++) printf " %8s", pn[p] "/" pd[p]
        printf "\n"
        for (c = 4; c <= 12; c++) {
            printf "  %-26s", name[c-3]
            for (i = 1; i <= ns; i++) {
                s = side[i]; n = 0; delete x
                for (r in rounds) if (ok(v[s, r, c])) x[++n] = v[s, r, c] + 0
                m = med(x, n)
                if (c == 8) cnt[s] = n
                if (c == 12 && m != "NA" && m > 10) warn = 1
                printf " %15s", fmt(m, "%.2f")
            }
            for (p = 1; p <= np; p++) {
                n = 0; delete x
                for (r in rounds) {
                    a = v[pn[p], r, c]; b = v[pd[p], r, c]
                    if (ok(a) && ok(b) && b + 0 > 0) x[++n] = a / b
                }
                printf " %8s", fmt(med(x, n), "%.3f")
            }
            printf "\n"
        }
        printf "  (rounds:"; for (i = 1; i <= ns; i++) printf " %s=%d", side[i], cnt[side[i]]
        printf "; X/Y = median of per-round ratios; ops/server-CPU-s decides)\n"
        # per pair: rounds where neither side had other load on the server core
        for (p = 1; p <= np; p++) {
            nq = 0; delete qo; delete qc
            for (r in rounds) {
                oa = v[pn[p], r, 12]; ob = v[pd[p], r, 12]
                if (!ok(oa) || !ok(ob) || oa + 0 > qp || ob + 0 > qp) continue
                if (v[pd[p], r, 4] + 0 > 0 && v[pd[p], r, 8] + 0 > 0) {
                    nq++; qo[nq] = v[pn[p], r, 4] / v[pd[p], r, 4]; qc[nq] = v[pn[p], r, 8] / v[pd[p], r, 8]
                }
            }
            if (nq > 0) printf "  quiet pairs %s/%s (other load <= %d%% on both sides): %d; their median %s/%s: ops/s %.3f, ops/server-CPU-s %.3f\n", pn[p], pd[p], qp, nq, pn[p], pd[p], med(qo, nq), med(qc, nq)
            else printf "  quiet pairs %s/%s (other load <= %d%% on both sides): 0\n", pn[p], pd[p], qp
        }
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
        --c-bin) C_BIN=$val; shift ;;
        --c-kind) C_KIND=$val; shift ;;
        --c-args) C_EXTRA=$val; shift ;;
        --a-threads) A_THREADS=$val; shift ;;
        --b-threads) B_THREADS=$val; shift ;;
        --c-threads) C_THREADS=$val; shift ;;
        --kioku) A_BIN=$val; A_KIND=kioku; shift ;;
        --memcached) B_BIN=$val; B_KIND=memcached; shift ;;
        --redis) B_BIN=$val; B_KIND=redis; shift ;;
        --protocol) PROTOCOL=$val; shift ;;
        --threads) THREADS=$val; shift ;;
        --memory) MEM_MB=$val; shift ;;
        --run-as) RUN_AS=$val; shift ;;
        --rounds) ROUNDS=$val; shift ;;
        --time) ROUND_TIME=$val; shift ;;
        --warmup) WARMUP=$val; shift ;;
        --pipelines) PIPELINES=$val; shift ;;
        --ratio) RATIO=$val; shift ;;
        --cmd) CMDS+=("$val"); shift ;;
        --prefill-cmd) PREFILL_CMD=$val; shift ;;
        --key-prefix) KEY_PREFIX=$val; shift ;;
        --label) LABEL=$val; shift ;;
        --data-size) DATA_SIZE=$val; shift ;;
        --keys) KEYS=$val; shift ;;
        --lg-threads) LG_THREADS=$val; shift ;;
        --clients) LG_CLIENTS=$val; shift ;;
        --server-cpu) SERVER_CPU=$val; shift ;;
        --lg-cpu) LG_CPU=$val; shift ;;
        --loadgen) LOADGEN=$val; shift ;;
        --memtier) MEMTIER=$val; shift ;;
        --memcaslap) MEMCASLAP=$val; shift ;;
        --metaload) METALOAD=$val; shift ;;
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
    SIDE_LABELS=$(cat "$SUMMARIZE/sides.txt" 2>/dev/null || echo "A B C")
    for setting in $(awk -F'\t' 'NR > 1 && !seen[$1]++ { print $1 }' "$RESULTS"); do
        echo "$setting:"; summary "$setting"
    done
    exit 0
fi

isnum() { [[ $1 =~ ^[0-9]+$ ]]; }
[ -n "$C_BIN" ] && [ -z "$C_KIND" ] && C_KIND=kioku
: "${A_THREADS:=$THREADS}" "${B_THREADS:=$THREADS}" "${C_THREADS:=$THREADS}"
for v in A_THREADS B_THREADS C_THREADS THREADS MEM_MB ROUNDS ROUND_TIME WARMUP DATA_SIZE KEYS LG_THREADS LG_CLIENTS SERVER_CPU MAX_TOTAL QUIET_PCT QUIET_WAIT; do
    isnum "${!v}" || die "$v must be a whole number: '${!v}'"
done
[ "$ROUNDS" -ge 1 ] && [ "$ROUND_TIME" -ge 1 ] || die "--rounds and --time must be >= 1"
[[ $RATIO =~ ^[0-9]+:[0-9]+$ ]] || die "--ratio must look like 1:10"
for c in "${CMDS[@]+"${CMDS[@]}"}"; do
    [[ $c =~ ^[0-9]+:.+ ]] || die "--cmd must look like \"10:HGETALL __key__\""
done
for p in $PIPELINES; do isnum "$p" && [ "$p" -ge 1 ] || die "bad pipeline depth: $p"; done
[ -n "$B_BIN" ] || die "server B is required: --memcached PATH (or --b-bin PATH --b-kind KIND)"
SIDES="A B"; [ -n "$C_BIN" ] && SIDES="A B C"
for side in $SIDES; do bv=${side}_BIN; [ -x "${!bv}" ] || die "not an executable: ${!bv}"; done
for t in taskset timeout getconf awk sort ss; do command -v "$t" >/dev/null || die "missing tool: $t"; done
[ -z "$RUN_AS" ] && [ "$(id -u)" -eq 0 ] && RUN_AS=nobody
NCPU=$(getconf _NPROCESSORS_ONLN)
[ "$SERVER_CPU" -lt "$NCPU" ] || die "--server-cpu $SERVER_CPU: only $NCPU cores"
CLK_TCK=$(getconf CLK_TCK)

# --------------------------------------------------------- load generator --
[ -z "$MEMTIER" ] && MEMTIER=$(command -v memtier_benchmark 2>/dev/null || true)
[ -z "$MEMCASLAP" ] && MEMCASLAP=$(command -v memcaslap 2>/dev/null || command -v memaslap 2>/dev/null || true)
if [ "$LOADGEN" = metaload ]; then
    case "$PROTOCOL" in memcache_text|meta) PROTOCOL=meta ;; *) die "--loadgen metaload speaks only the meta protocol" ;; esac
fi
if [ "$LOADGEN" = auto ]; then
    if [ "$PROTOCOL" = meta ]; then LOADGEN=metaload
    elif [ -n "$MEMTIER" ] && [ -x "$MEMTIER" ]; then LOADGEN=memtier
    elif [ -n "$MEMCASLAP" ] && [ -x "$MEMCASLAP" ]; then LOADGEN=memcaslap
    else die "no load generator: install memtier_benchmark (see bench/README.md) or pass --memtier PATH"
    fi
fi
[ ${#CMDS[@]} -gt 0 ] && [ "$LOADGEN" != memtier ] && die "--cmd needs memtier_benchmark (--memtier PATH)"
case "$LOADGEN" in
    memtier) [ -x "$MEMTIER" ] || die "memtier_benchmark not found: --memtier PATH"
             [ "$PROTOCOL" = meta ] && die "memtier has no meta protocol: use --loadgen metaload"
             command -v jq >/dev/null || die "memtier results are read with jq: apt-get install jq" ;;
    metaload) [ "$PROTOCOL" = meta ] || die "metaload speaks only --protocol meta"
              [ -z "$METALOAD" ] || [ -x "$METALOAD" ] || die "not an executable: $METALOAD" ;;
    memcaslap) [ -x "$MEMCASLAP" ] || die "memcaslap not found (apt-get install libmemcached-tools)"
               case "$PROTOCOL" in memcache_text|memcache_binary) ;; *) die "memcaslap cannot speak $PROTOCOL" ;; esac
               note "memcaslap does not pipeline and reports no percentiles: one setting, p50/p99 shown as NA"
               PIPELINES=1 ;;
    *) die "--loadgen must be auto, memtier, memcaslap or metaload" ;;
esac

# ------------------------------------------------------------ time budget --
NSET=$(echo $PIPELINES | wc -w)
Q=0; [ "$QUIET_WAIT" -gt 0 ] && Q=1
NSIDE=$(echo $SIDES | wc -w)
EST=$(( 30 + NSET * NSIDE * (WARMUP + 3 + ROUNDS * (ROUND_TIME + 3 + Q)) ))
[ "$EST" -le "$MAX_TOTAL" ] || die "estimated ${EST}s exceeds --max-total ${MAX_TOTAL}s: fewer --rounds, shorter --time, or raise --max-total"

if [ -z "$OUT_DIR" ]; then OUT_DIR=$(mktemp -d /tmp/mc_ab.XXXXXX) || die "mktemp failed"
else mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"; fi
RESULTS=$OUT_DIR/results.tsv
# column titles: kind, plus -t for servers that take one
side_label() {
    local kv=${1}_KIND tv=${1}_THREADS
    case "${!kv}" in redis) echo "$1=${!kv}" ;; *) echo "$1=${!kv}-t${!tv}" ;; esac
}
SIDE_LABELS=$(for side in $SIDES; do side_label "$side"; done | tr '\n' ' ')
echo "$SIDE_LABELS" > "$OUT_DIR/sides.txt"
if [ "$LOADGEN" = metaload ] && [ -z "$METALOAD" ]; then
    # our own code: compile it next to the results (never into the checkout)
    src=$(dirname "$0")/metaload.c
    [ -r "$src" ] || die "no $src"
    command -v cc >/dev/null || die "no C compiler (cc) to build $src"
    cc -O2 -o "$OUT_DIR/metaload" "$src" || die "cannot compile $src"
    METALOAD=$OUT_DIR/metaload
fi
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
# server_cmd KIND BIN PROTO PORT EXTRA THREADS: sets SRV_CMD (the full command
# line, taskset included) for a server that serves PROTO on 127.0.0.1:PORT.
# To add a protocol or a server kind, add a case here (and, if the protocol
# needs it, in probe and loadgen_args). Unsupported pairs return 1.
server_cmd() {
    local kind=$1 bin=$2 proto=$3 port=$4 extra=$5 threads=$6 mport
    local common=(-l 127.0.0.1 -p "$port" -U 0 -t "$threads" -m "$MEM_MB")
    [ -n "$RUN_AS" ] && common+=(-u "$RUN_AS")
    SRV_CMD=(taskset -c "$SERVER_CPU" "$bin")
    case "$kind:$proto" in
        memcached:memcache_text|memcached:memcache_binary|memcached:meta)
            SRV_CMD+=("${common[@]}") ;;            # memcached auto-negotiates
        kioku:memcache_text|kioku:memcache_binary|kioku:meta)
            SRV_CMD+=("${common[@]}") ;;            # kioku too (first byte 0x80 = binary)
        kioku:redis)                                # RESP on its dedicated port
            mport=$(free_port) || return 1
            SRV_CMD+=(-l 127.0.0.1 -p "$mport" --resp-port "$port" -U 0 -t "$threads" -m "$MEM_MB")
            [ -n "$RUN_AS" ] && SRV_CMD+=(-u "$RUN_AS") ;;
        redis:redis)                                # persistence off, like a cache
            SRV_CMD+=(--port "$port" --bind 127.0.0.1 --save "" --appendonly no
                      --protected-mode no --daemonize no --maxmemory "${MEM_MB}mb") ;;
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
        memcache_binary)    # binary VERSION request; the reply starts with magic 0x81
            reply=$(timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1; printf "\x80\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" >&3; head -c 2 <&3 | od -An -tx1' "$port" 2>/dev/null)
            [ "$(echo $reply)" = "81 0b" ] ;;
        meta)
            reply=$(timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1; printf "mn\r\n" >&3; head -c 2 <&3' "$port" 2>/dev/null)
            [ "$reply" = MN ] ;;
        redis)
            reply=$(timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1; printf "PING\r\n" >&3; head -c 5 <&3' "$port" 2>/dev/null)
            [ "$reply" = +PONG ] ;;
        *)  timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0' "$port" 2>/dev/null ;;
    esac
}

# curr_items over the text protocol, DBSIZE over RESP (informational; empty
# if unavailable). Every memcache port here also speaks text.
curr_items() {
    case "$PROTOCOL" in
    redis)
        timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1; printf "DBSIZE\r\n" >&3; head -1 <&3' "$1" 2>/dev/null \
            | tr -d '\r:' ;;
    *)
        timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1; printf "stats\r\nquit\r\n" >&3; cat <&3' "$1" 2>/dev/null \
            | tr -d '\r' | awk '$2 == "curr_items" { print $3 }' ;;
    esac
}

# start_server SIDE KIND BIN EXTRA: starts it, sets <SIDE>_PID and <SIDE>_PORT.
start_server() {
    local side=$1 kind=$2 bin=$3 extra=$4 port pid try log tv=${1}_THREADS
    for try in 1 2 3 4 5; do
        port=$(free_port) || die "no free port"
        server_cmd "$kind" "$bin" "$PROTOCOL" "$port" "$extra" "${!tv}" \
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
                --key-prefix="$KEY_PREFIX" --key-minimum=1 --key-maximum="$KEYS" --hide-histogram)
        if [ ${#CMDS[@]} -gt 0 ]; then
            local c
            if [ "$what" = prefill ]; then
                LG_CMD+=(--command="$PREFILL_CMD" --command-key-pattern=P --requests=allkeys --pipeline=16)
            else
                for c in "${CMDS[@]}"; do
                    LG_CMD+=(--command="${c#*:}" --command-ratio="${c%%:*}" --command-key-pattern=R)
                done
                LG_CMD+=(--distinct-client-seed --pipeline="$pl" --test-time="$secs" --json-out-file="$json")
            fi
        elif [ "$what" = prefill ]; then
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
    metaload)
        LG_CMD=(taskset -c "$LG_CPU" "$METALOAD" -s 127.0.0.1 -p "$port"
                --conns=$((LG_THREADS * LG_CLIENTS)) --data-size="$DATA_SIZE"
                --key-prefix=memtier- --keys="$KEYS")
        if [ "$what" = prefill ]; then
            LG_CMD+=(--prefill-only --pipeline=16)
        else
            LG_CMD+=(--ratio="$RATIO" --pipeline="$pl" --time="$secs")
        fi ;;
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
    metaload)
        awk '$1 == "RESULT" { for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
                              if (r["ops"] + 0 > 0 && r["errors"] + 0 == 0) {
                                  g = r["hits"] + r["misses"]
                                  printf "%s %.0f %.0f %s %s\n", r["ops_s"], r["p50_us"], r["p99_us"], r["ops"], (g > 0 ? 100 * r["hits"] / g : "NA"); ok = 1 } }
             END { exit !ok }' "$base.txt" ;;
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
for side in $SIDES; do
    kv=${side}_KIND; bv=${side}_BIN; vflag=-V; [ "${!kv}" = redis ] && vflag=--version
    echo "$(side_label $side)  ${!bv}  ($(timeout 2 "${!bv}" $vflag 2>&1 | head -1); sha256 $(sha256sum < "${!bv}" | cut -c1-16); $(date -u -r "${!bv}" +%Y-%m-%dT%H:%M:%SZ))"
done
[ "$LOADGEN" = memtier ] && echo "load generator: $MEMTIER ($("$MEMTIER" --version 2>&1 | head -1))"
[ "$LOADGEN" = memcaslap ] && echo "load generator: $MEMCASLAP"
[ "$LOADGEN" = metaload ] && echo "load generator: $METALOAD (bench/metaload.c: mg/ms pipelined)"
echo "protocol=$PROTOCOL threads=A:$A_THREADS B:$B_THREADS$([ -n "$C_BIN" ] && echo " C:$C_THREADS") memory=${MEM_MB}MB server-cpu=$SERVER_CPU lg-cpu=$LG_CPU loadgen=$LOADGEN"
echo "rounds=$ROUNDS x ${ROUND_TIME}s  warmup=${WARMUP}s  pipelines=\"$PIPELINES\"  ratio=$RATIO  data-size=$DATA_SIZE  keys=1..$KEYS  clients=$LG_THREADS x $LG_CLIENTS"
echo "quiet gate: cores $SERVER_CPU,$LG_CPU under ${QUIET_PCT}% busy, waiting at most ${QUIET_WAIT}s per round"
echo "estimated time ${EST}s plus quiet waits (bound ${MAX_TOTAL}s)"
for side in $SIDES; do
    kv=${side}_KIND; tv=${side}_THREADS
    [ "${!kv}" != redis ] && [ "${!tv}" -gt 1 ] &&
        echo "note: $side runs -t ${!tv} on the one pinned server core $SERVER_CPU: it measures thread overhead (wake-ups, hand-offs), not scaling"
done
[ "$PROTOCOL" = redis ] && echo "note: redis-server executes commands on one thread"

for side in $SIDES; do
    kv=${side}_KIND; bv=${side}_BIN; xv=${side}_EXTRA
    start_server "$side" "${!kv}" "${!bv}" "${!xv}"
done

for side in $SIDES; do
    [ "$LOADGEN" = memcaslap ] && break   # memcaslap sets the keys it gets itself
    [ ${#CMDS[@]} -gt 0 ] && [ -z "$PREFILL_CMD" ] && break
    portv=${side}_PORT
    loadgen_args prefill "${!portv}" 16 0 ""
    echo "prefill $side:"; show_cmd "${LG_CMD[@]}"
    run_lg "$OUT_DIR/prefill_$side.txt" 60 || note "prefill $side exit status $?"
    items=$(curr_items "${!portv}")
    [ -n "$items" ] && echo "  $side curr_items=$items"
done

declare -a SETTINGS
for pl in $PIPELINES; do
    setting="${LABEL:-$PROTOCOL}_p$pl"
    SETTINGS+=("$setting")
    echo
    echo "=== setting $setting: pipeline=$pl ==="
    if [ "$WARMUP" -gt 0 ]; then
        echo "warm-up (not recorded):"
        for side in $SIDES; do one_round "$setting" 0 "$side" "$pl" "$WARMUP" 0; done
    fi
    for r in $(seq 1 "$ROUNDS"); do
        if [ $((SECONDS + NSIDE * (ROUND_TIME + 4))) -gt "$MAX_TOTAL" ]; then
            note "time bound reached: stopping before round $r"; break 2
        fi
        if [ $((r % 2)) -eq 1 ]; then order=$SIDES; else order=$(echo $SIDES | rev); fi
        for side in $order; do one_round "$setting" "$r" "$side" "$pl" "$ROUND_TIME" 1; done
    done
done

echo
echo "=== results ($(for side in $SIDES; do bv=${side}_BIN; printf '%s %s; ' "$(side_label $side)" "${!bv}"; done)protocol $PROTOCOL, loadgen $LOADGEN, -m $MEM_MB) ==="
for setting in "${SETTINGS[@]}"; do
    echo "$setting:"
    summary "$setting"
done
echo "raw per-round results: $RESULTS   (total ${SECONDS}s)"
