#!/usr/bin/env bash
# syscalls.sh - kernel crossings per request, kioku beside memcached and
# redis-server.
#
# Each server is started alone (127.0.0.1, a free port, pinned to one core,
# stopped by PID), its key range is prefilled, and then a fixed number of
# requests (memtier_benchmark --requests per client, set:get 1:10 by default)
# is sent at each pipeline depth while the server's system calls are counted.
# The table gives calls per request, by name, for every server side by side,
# and (with perf) the server's CPU time per request: its threads' task-clock
# over the same requests, which other load on the machine does not add to.
#
# Counting: `perf stat` on the syscalls:sys_enter_* tracepoints of the server
# process (all its threads; cheap, so the server batches as it would unwatched),
# else `strace -c -f` attached to every thread (slow: a slower server finds
# more requests per read, so its per-request numbers come out lower). The
# counter is attached after the prefill, so only the measured requests count.
#
# Usage: bench/syscalls.sh --memtier PATH [options]   (-h for all options)

set -uo pipefail

KIOKU=./src/kioku; KIOKU_ARGS=""
MEMCACHED=""; REDIS=/usr/bin/redis-server
SERVERS="kioku memcached kioku-resp redis"
MC_PROTOCOL=memcache_text   # what memtier speaks to kioku and memcached
MEMTIER=${MEMTIER:-}
TOOL=auto
REQUESTS=100000      # per pipeline depth and server
CLIENTS=25
PIPELINES="1 16"
RATIO=1:10
KEYS=10000
DATA_SIZE=32
THREADS=1
SERVER_CPU=0
LG_CPU=1
RUN_AS=""
MAX_TOTAL=600
OUT_DIR=""

usage() {
    cat <<EOF
Usage: $0 --memtier PATH [options]

  --kioku PATH         kioku binary (default: $KIOKU)
  --kioku-args "ARGS"  extra kioku arguments (e.g. "-o null_storage")
  --memcached PATH     memcached binary (needed for the memcached column)
  --redis PATH         redis-server binary (default: $REDIS)
  --servers "LIST"     columns, from: kioku memcached kioku-resp redis
                       (default: "$SERVERS"; kioku-resp = kioku over RESP)
  --mc-protocol P      memcache_text (default) | memcache_binary: what the
                       kioku and memcached columns are sent
  --memtier PATH       memtier_benchmark (default: \$MEMTIER or on PATH)
  --tool T             auto | perf | strace (default: auto = perf if it can
                       count syscall tracepoints, else strace)
  --requests N         requests per server and pipeline depth (default: $REQUESTS)
  --clients N          memtier connections (default: $CLIENTS)
  --pipelines "1 16"   pipeline depths (default: "$PIPELINES")
  --ratio S:G          set:get ratio (default: $RATIO)
  --keys N             key range, prefilled (default: $KEYS)
  --data-size N        value bytes (default: $DATA_SIZE)
  --threads N          server -t (default: $THREADS)
  --server-cpu N       server core (default: $SERVER_CPU)
  --lg-cpu N           memtier core (default: $LG_CPU)
  --run-as USER        server -u USER (default: nobody when run as root)
  --max-total S        hard bound on the whole run (default: $MAX_TOTAL)
  --out DIR            keep raw outputs here (default: a new /tmp dir)
EOF
}

die() { echo "syscalls: error: $*" >&2; exit 1; }
note() { echo "syscalls: $*" >&2; }

while [ $# -gt 0 ]; do
    opt=$1; val=${2-}
    case "$opt" in
        --kioku) KIOKU=$val; shift ;;
        --kioku-args) KIOKU_ARGS=$val; shift ;;
        --memcached) MEMCACHED=$val; shift ;;
        --redis) REDIS=$val; shift ;;
        --servers) SERVERS=$val; shift ;;
        --memtier) MEMTIER=$val; shift ;;
        --mc-protocol) MC_PROTOCOL=$val; shift ;;
        --tool) TOOL=$val; shift ;;
        --requests) REQUESTS=$val; shift ;;
        --clients) CLIENTS=$val; shift ;;
        --pipelines) PIPELINES=$val; shift ;;
        --ratio) RATIO=$val; shift ;;
        --keys) KEYS=$val; shift ;;
        --data-size) DATA_SIZE=$val; shift ;;
        --threads) THREADS=$val; shift ;;
        --server-cpu) SERVER_CPU=$val; shift ;;
        --lg-cpu) LG_CPU=$val; shift ;;
        --run-as) RUN_AS=$val; shift ;;
        --max-total) MAX_TOTAL=$val; shift ;;
        --out) OUT_DIR=$val; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $opt" ;;
    esac
    shift
done

[ -n "$MEMTIER" ] || MEMTIER=$(command -v memtier_benchmark) || die "no memtier_benchmark: give --memtier PATH"
[ -x "$MEMTIER" ] || die "not executable: $MEMTIER"
for t in taskset timeout ss awk; do command -v "$t" >/dev/null || die "missing tool: $t"; done
[ -z "$RUN_AS" ] && [ "$(id -u)" = 0 ] && RUN_AS=nobody
PER_CLIENT=$(( (REQUESTS + CLIENTS - 1) / CLIENTS ))
TOTAL_REQ=$(( PER_CLIENT * CLIENTS ))
[ -n "$OUT_DIR" ] || OUT_DIR=$(mktemp -d /tmp/syscalls.XXXXXX)
mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"

if [ "$TOOL" = auto ]; then
    if command -v perf >/dev/null && perf stat -e syscalls:sys_enter_getpid -- true >/dev/null 2>&1; then
        TOOL=perf
    else
        TOOL=strace
    fi
fi
case "$TOOL" in
    perf) command -v perf >/dev/null || die "no perf (Debian: linux-perf)" ;;
    strace) command -v strace >/dev/null || die "no strace" ;;
    *) die "--tool: perf or strace" ;;
esac

# The calls an event-driven server makes per request; anything else is
# summed as "other" (perf: raw_syscalls:sys_enter minus these).
NAMES="read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait epoll_ctl
       io_uring_enter futex clock_gettime timerfd_settime nanosleep sched_yield accept4 close"

# ------------------------------------------------------------- processes --
STARTED_PIDS=()
COUNTER_PID=""
stop_pid() {
    local pid=$1 sig=${2:-TERM}
    kill -0 "$pid" 2>/dev/null || return 0
    kill -"$sig" "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}
cleanup() {
    trap - EXIT INT TERM HUP
    [ -n "$COUNTER_PID" ] && stop_pid "$COUNTER_PID" INT
    local p
    for p in "${STARTED_PIDS[@]}"; do stop_pid "$p"; done
    [ -n "${WATCHDOG:-}" ] && { kill -TERM "$WATCHDOG" 2>/dev/null; wait "$WATCHDOG" 2>/dev/null; }
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT TERM HUP
bash -c 'sleep "$1" & s=$!; trap "kill $s 2>/dev/null; exit 0" TERM; wait "$s"; kill -TERM "$2"' \
    _ "$MAX_TOTAL" $$ &
WATCHDOG=$!

free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
    done
    return 1
}
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# start_server NAME PORT: sets SRV_PID and PROTO.
start_server() {
    local name=$1 port=$2 cmd=(taskset -c "$SERVER_CPU") mport
    local as=(); [ -n "$RUN_AS" ] && as=(-u "$RUN_AS")
    case "$name" in
        kioku) cmd+=("$KIOKU" -l 127.0.0.1 -p "$port" -U 0 -t "$THREADS" -m 256 "${as[@]}")
               # shellcheck disable=SC2206
               [ -n "$KIOKU_ARGS" ] && cmd+=($KIOKU_ARGS)
               PROTO=$MC_PROTOCOL ;;
        kioku-resp) mport=$(free_port) || return 1
               cmd+=("$KIOKU" -l 127.0.0.1 -p "$mport" --resp-port "$port" -U 0 -t "$THREADS" -m 256 "${as[@]}")
               # shellcheck disable=SC2206
               [ -n "$KIOKU_ARGS" ] && cmd+=($KIOKU_ARGS)
               PROTO=redis ;;
        memcached) [ -n "$MEMCACHED" ] || die "no --memcached PATH for the memcached column"
               cmd+=("$MEMCACHED" -l 127.0.0.1 -p "$port" -U 0 -t "$THREADS" -m 256 "${as[@]}")
               PROTO=$MC_PROTOCOL ;;
        redis) cmd+=("$REDIS" --port "$port" --bind 127.0.0.1 --save "" --appendonly no
                     --protected-mode no --daemonize no)
               PROTO=redis ;;
        *) die "unknown server: $name" ;;
    esac
    printf '+'; printf ' %q' "${cmd[@]}"; printf '\n'
    "${cmd[@]}" >"$OUT_DIR/server_$name.log" 2>&1 &
    SRV_PID=$!
    STARTED_PIDS+=("$SRV_PID")
    for _ in $(seq 1 50); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        listening "$port" && return 0
        sleep 0.1
    done
    tail -5 "$OUT_DIR/server_$name.log" >&2
    die "$name did not come up on port $port"
}

memtier() {   # memtier PORT PROTO ARGS...
    local port=$1 proto=$2; shift 2
    timeout 120 taskset -c "$LG_CPU" "$MEMTIER" -s 127.0.0.1 -p "$port" --protocol="$proto" \
        --threads=1 --clients="$CLIENTS" --data-size="$DATA_SIZE" --key-prefix=memtier- \
        --key-minimum=1 --key-maximum="$KEYS" --hide-histogram "$@"
}

# count NAME PIPELINE: one measured run; writes "syscall count" lines to
# $OUT_DIR/NAME_pPIPELINE.counts.
count() {
    local name=$1 pl=$2 port raw=$OUT_DIR/$1_p$2.raw out=$OUT_DIR/$1_p$2.counts
    port=$(free_port) || die "no free port"
    start_server "$name" "$port"
    memtier "$port" "$PROTO" --ratio=1:0 --key-pattern=P:P --requests=allkeys --pipeline=16 \
        >"$OUT_DIR/$name.prefill.log" 2>&1 || die "$name: prefill failed"
    case "$TOOL" in
    perf)
        local ev="task-clock,raw_syscalls:sys_enter" n
        for n in $NAMES; do ev="$ev,syscalls:sys_enter_$n"; done
        perf stat -x, -e "$ev" -p "$SRV_PID" -o "$raw" &
        COUNTER_PID=$! ;;
    strace)
        strace -c -f -o "$raw" -p "$SRV_PID" 2>>"$OUT_DIR/strace.log" &   # -p takes every thread
        COUNTER_PID=$! ;;
    esac
    sleep 1   # let the counter attach
    memtier "$port" "$PROTO" --ratio="$RATIO" --key-pattern=R:R --distinct-client-seed \
        --pipeline="$pl" --requests="$PER_CLIENT" >"$OUT_DIR/${name}_p$pl.memtier.log" 2>&1 \
        || note "$name p$pl: memtier failed, see $OUT_DIR/${name}_p$pl.memtier.log"
    stop_pid "$COUNTER_PID" INT
    COUNTER_PID=""
    stop_pid "$SRV_PID"
    case "$TOOL" in
    perf)   # value,unit,event,...
        awk -F, -v names="$NAMES" '
            BEGIN { split(names, a, /[ \n]+/); for (i in a) want[a[i]] = 1 }
            $3 == "raw_syscalls:sys_enter" { total = $1 + 0 }
            $3 == "task-clock" { cpu = $1 * 1000 }   # msec, as microseconds
            $3 ~ /^syscalls:sys_enter_/ { n = substr($3, 20); c[n] = $1 + 0; sum += $1 }
            END { for (n in c) if (c[n] > 0) print n, c[n]
                  print "other", total - sum; print "TOTAL", total; print "cpu_us", cpu }' \
            "$raw" > "$out" ;;
    strace) # strace -c table: % time, seconds, usecs/call, calls, [errors,] syscall
        awk -v names="$NAMES" '
            BEGIN { split(names, a, /[ \n]+/); for (i in a) want[a[i]] = 1 }
            $1 ~ /^[0-9.]+$/ && NF >= 5 { n = $NF; k = $4 + 0
                if (n == "total") next
                if (n in want) c[n] += k; else other += k; total += k }
            END { for (n in c) print n, c[n]; print "other", other + 0; print "TOTAL", total + 0 }' \
            "$raw" > "$out" ;;
    esac
}

echo "syscalls: $TOTAL_REQ requests per run ($CLIENTS clients x $PER_CLIENT), set:get $RATIO, $MC_PROTOCOL," \
     "${DATA_SIZE}-byte values, server -t $THREADS on core $SERVER_CPU, counted with $TOOL; raw: $OUT_DIR"
for pl in $PIPELINES; do
    for s in $SERVERS; do count "$s" "$pl"; done
done

# Table: per pipeline, one row per syscall seen, one column per server.
for pl in $PIPELINES; do
    echo
    echo "pipeline $pl: system calls per request"
    files=()
    for s in $SERVERS; do files+=("$OUT_DIR/${s}_p$pl.counts"); done
    awk -v servers="$SERVERS" -v req="$TOTAL_REQ" '
        FNR == 1 { f++ }
        { v[f, $1] = $2; if (!($1 in seen)) { seen[$1] = 1; if ($1 != "other" && $1 != "TOTAL" && $1 != "cpu_us") order[++n] = $1 } }
        END {
            ns = split(servers, s, " ")
            order[++n] = "other"; order[++n] = "TOTAL"
            printf "  %-16s", "syscall"; for (i = 1; i <= ns; i++) printf " %11s", s[i]; printf "\n"
            for (r = 1; r <= n; r++) {
                nm = order[r]; any = 0
                for (i = 1; i <= ns; i++) if (v[i, nm] + 0 > 0) any = 1
                if (!any && nm != "TOTAL") continue
                printf "  %-16s", nm
                for (i = 1; i <= ns; i++) printf " %11.3f", v[i, nm] / req
                printf "\n"
            }
            if (("cpu_us") in seen) {   # perf: task-clock of the server threads
                printf "  %-16s", "CPU us/req"
                for (i = 1; i <= ns; i++) printf " %11.3f", v[i, "cpu_us"] / req
                printf "\n"
            }
        }' "${files[@]}"
done
