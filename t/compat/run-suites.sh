#!/bin/bash
# Run memcached's and Redis's own test suites against kioku.
#
#   MEMCACHED_SRC=/path/to/memcached-1.6.45 REDIS_SRC=/path/to/redis-7.0.15 \
#   KIOKU_BIN=build/src/kioku t/compat/run-suites.sh [mc|redis|all] [files...]
#
# The suites are not part of kioku and are never copied into it: point the
# variables at unpacked release trees (memcached needs no build; Redis's
# runner needs only tclsh). A suite whose variable is unset or whose tree is
# missing is skipped with a message and exit 0, so this is safe to call
# anywhere; it is not part of `make check`.
#
# memcached: its t/lib/MemcachedTest.pm runs "$builddir/memcached-debug"
# (through "$builddir/timedrun") with each test's own arguments, and asks
# `memcached-debug -h` which optional features exist. We give it a scratch
# builddir whose memcached-debug runs kioku, so every test file gets fresh
# kioku servers started with that file's arguments, and files for features
# kioku's help does not name (extstore, proxy, TLS, SASL) skip themselves.
# Arguments with no meaning in kioku are rewritten: "-l 0.0.0.0" becomes
# "-l 127.0.0.1" (test servers stay on loopback; -U, the UDP port, is
# kioku's too since issue 13), -o no_modern becomes kioku's no_lru_crawler,no_slab_reassign
# (the two of memcached's older defaults that kioku has), and -o
# suboptions that only tune memcached's own machinery and that kioku does
# not take (seccomp, the segmented LRU and its maintainer, the automover's
# window, chunk sizes; see drop_o below) are
# dropped, so a test that merely asks for them still runs. Any other
# option goes to kioku as given, and kioku refuses what it does not know:
# that file then fails.
#
# Redis: ./runtest in external mode against one kioku per test file,
# started with --resp-port. The runner itself skips tests tagged
# external:skip; t/compat/redis-skip.txt names the tests that need what
# kioku does not have (lists, hashes, DEBUG, OBJECT, scripting...), and
# --ignore-encoding / --ignore-digest drop the OBJECT ENCODING and DEBUG
# DIGEST checks. An exception in one test ends its whole file, hence the
# list.
#
# Output: one line per file, "<suite> <file> PASS|FAIL|SKIP <detail>", and
# the logs under $OUT (default: a new directory in $TMPDIR). Every run is
# bounded by FILE_TIMEOUT seconds (default 300).
set -u

what=${1:-all}
[ $# -gt 0 ] && shift
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${KIOKU_BIN:-$top/build/src/kioku}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
tmo=${FILE_TIMEOUT:-300}
out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/kioku-compat.XXXXXX")}
mkdir -p "$out"

if [ ! -x "$bin" ]; then
    echo "kioku binary $bin not found: build first (or set KIOKU_BIN); skipping"
    exit 0
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ---- memcached ----

# The scratch builddir: t/ from MEMCACHED_SRC, and two small scripts.
mc_prepare() {
    mcdir=$out/mc-builddir
    drop_o='^(relaxed_privileges|no_slab_automove|slab_automove_window=[0-9]+|slab_chunk_max=[0-9]+|lru_maintainer|no_lru_maintainer|hot_lru_pct=[0-9]+|warm_lru_pct=[0-9]+|temporary_ttl=[0-9]+)$'
    mkdir -p "$mcdir"
    ln -sfn "$MEMCACHED_SRC/t" "$mcdir/t"
    cat >"$mcdir/memcached-debug" <<WRAP
#!/bin/bash
# Written by kioku's t/compat/run-suites.sh: memcached's tests call this.
args=()
while [ \$# -gt 0 ]; do
    case \$1 in
    -l) # never listen beyond loopback (stats-conns.t asks for 0.0.0.0)
        args+=(-l "\$(printf '%s' "\$2" | sed 's/0\.0\.0\.0/127.0.0.1/g')"); shift ;;
    -o) # no_modern: memcached's older defaults, of which kioku has two
        o=\$(printf '%s' "\$2" | tr ',' '\n' | grep -Ev '$drop_o' |
            sed 's/^no_modern\$/no_lru_crawler\nno_slab_reassign/' | paste -sd, -)
        [ -n "\$o" ] && args+=(-o "\$o"); shift ;;
    *) args+=("\$1") ;;
    esac
    shift
done
# record our PID so the runner can stop a server the test file left behind;
# the mark in the environment tells it the PID still names that server,
# even when KIOKU_BIN is itself a wrapper that execs kioku
echo \$\$ >>"$mcdir/server-pids"
export KIOKU_COMPAT_RUN="$mcdir"
exec "$bin" "\${args[@]}"
WRAP
    cat >"$mcdir/timedrun" <<'WRAP'
#!/bin/sh
# Written by kioku's t/compat/run-suites.sh: "timedrun <secs> cmd..." as
# memcached's tests call it; the runner bounds the whole file instead.
shift
exec "$@"
WRAP
    chmod +x "$mcdir/memcached-debug" "$mcdir/timedrun"
}

mc_run_file() {
    f=$1
    name=$(basename "$f")
    log=$out/mc-$name.log
    # setsid: the file and every server it starts form one process group,
    # which we end if the file overruns its time.
    : >"$mcdir/server-pids"
    # The ssl_*.t files run over TLS when SSL_TEST is set (memcached's
    # "make test_tls"); they need perl's IO::Socket::SSL (Debian:
    # libio-socket-ssl-perl), else they skip themselves.
    tls=
    case $name in
    ssl_*) perl -MIO::Socket::SSL -e 1 2>/dev/null && tls=1 ;;
    esac
    (cd "$mcdir" && SSL_TEST=$tls timeout -k 5 "$tmo" setsid perl -I t/lib "t/$name") >"$log" 2>&1
    rc=$?
    # A file that died or ran out of time may leave its servers running:
    # stop each one it started, by the PID the wrapper recorded.
    while read -r spid; do
        if { tr '\0' '\n' <"/proc/$spid/environ"; } 2>/dev/null | grep -qxF "KIOKU_COMPAT_RUN=$mcdir"; then
            kill -TERM "$spid" 2>/dev/null
            for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$spid" 2>/dev/null || break; sleep 0.2; done
            kill -KILL "$spid" 2>/dev/null
        fi
    done <"$mcdir/server-pids"
    planned=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
    skipall=$(grep -m1 -i '^1\.\.0 # skip' "$log")
    nok=$(grep -c '^ok ' "$log")
    nnot=$(grep -c '^not ok ' "$log")
    if [ -n "$skipall" ]; then
        echo "mc $name SKIP ${skipall#1..0 # }"
    elif [ $rc -eq 0 ] && [ "$nnot" -eq 0 ]; then
        echo "mc $name PASS $nok/${planned:-?}"
    else
        echo "mc $name FAIL ok=$nok not_ok=$nnot planned=${planned:-?} rc=$rc"
    fi
}

run_mc() {
    if [ -z "${MEMCACHED_SRC:-}" ] || [ ! -f "$MEMCACHED_SRC/t/lib/MemcachedTest.pm" ]; then
        echo "MEMCACHED_SRC is not a memcached source tree: skipping memcached's suite"
        return 0
    fi
    command -v perl >/dev/null || { echo "perl not found: skipping memcached's suite"; return 0; }
    mc_prepare
    if [ $# -gt 0 ]; then files=("$@"); else files=("$MEMCACHED_SRC"/t/*.t); fi
    for f in "${files[@]}"; do
        mc_run_file "$f"
    done
}

# ---- Redis ----

redis_run_unit() {
    unit=$1
    log=$out/redis-$(echo "$unit" | tr / _).log
    port=$(free_port)
    user_args=
    [ "$(id -u)" -eq 0 ] && user_args="-u root"   # kioku refuses root without -u
    "$bin" -p 0 -l 127.0.0.1 --resp-port "$port" -m 256 $user_args >"$log.server" 2>&1 &
    spid=$!
    for _ in $(seq 50); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    (cd "$REDIS_SRC" && timeout -k 5 "$tmo" ./runtest --host 127.0.0.1 --port "$port" \
        --singledb --single "$unit" --clients 1 --timeout 60 --ignore-encoding \
        --tags "-needs:repl -needs:debug" \
        --ignore-digest --skipfile "$skipfile") >"$log" 2>&1
    rc=$?
    kill -TERM "$spid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
    sed -i 's/\x1b\[[0-9;]*m//g' "$log"
    nok=$(grep -c '^\[ok\]' "$log")
    nerr=$(grep -c '^\[err\]\|^\[exception\]' "$log")
    nskip=$(grep -c '^\[skip\]\|^\[ignore\]' "$log")
    if [ $rc -eq 0 ] && [ "$nerr" -eq 0 ]; then
        echo "redis $unit PASS ok=$nok skipped=$nskip"
    else
        echo "redis $unit FAIL ok=$nok err=$nerr skipped=$nskip rc=$rc"
    fi
}

run_redis() {
    if [ -z "${REDIS_SRC:-}" ] || [ ! -x "$REDIS_SRC/runtest" ]; then
        echo "REDIS_SRC is not a Redis source tree: skipping Redis's suite"
        return 0
    fi
    command -v tclsh >/dev/null || { echo "tclsh not found: skipping Redis's suite"; return 0; }
    command -v redis-cli >/dev/null || { echo "redis-cli not found: skipping Redis's suite"; return 0; }
    skipfile=${REDIS_SKIPFILE:-$top/t/compat/redis-skip.txt}
    if [ $# -gt 0 ]; then units=("$@"); else
        units=(unit/type/string unit/type/incr unit/type/hash unit/keyspace unit/expire unit/info-command
               unit/introspection-2)
    fi
    for u in "${units[@]}"; do
        redis_run_unit "$u"
    done
}

echo "logs in $out"
case $what in
mc) run_mc "$@" ;;
redis) run_redis "$@" ;;
all) run_mc; run_redis ;;
*) echo "usage: $0 [mc|redis|all] [files...]" >&2; exit 64 ;;
esac
exit 0
