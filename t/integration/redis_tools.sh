#!/bin/sh
# redis-cli and redis-benchmark against kioku (issue 4).
#
# Starts $KIOKU_BIN (else ../../src/kioku next to this script) on free-ish
# loopback ports with --resp-port, then checks:
#   - redis-cli on the RESP port and on the main port (first byte '*');
#   - an inline command ("PING\r\n", as telnet sends it) on the RESP port;
#   - values cross ports, redis-cli --scan, INFO keyspace, DBSIZE;
#   - redis-benchmark -t ping,set,get,incr,mset -q -n 2000 on both ports
#     completes and every test reports a rate.
# Exit: 0 pass, 1 fail, 77 skip when redis-cli or redis-benchmark is absent.
# Every wait is bounded; the server is stopped by its PID on exit.

set -u

for tool in redis-cli redis-benchmark timeout; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "redis_tools: $tool not installed; skipped"
        exit 77
    fi
done

here=$(cd "$(dirname "$0")" && pwd)
bin=${KIOKU_BIN:-$here/../../src/kioku}
if [ ! -x "$bin" ]; then
    echo "redis_tools: no server binary at $bin"
    exit 1
fi

pid=
fails=0
out=$(mktemp)
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$out"
}
trap cleanup EXIT INT TERM

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

cli() { timeout 20 redis-cli -p "$@" 2>&1; }

# kioku, like memcached, refuses to run as root without -u.
user_args=
[ "$(id -u)" -eq 0 ] && user_args="-u root"

# Start on random ports; retry if they were taken.
started=no
for attempt in 1 2 3 4 5; do
    seed=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    port=$((20000 + seed % 20000))
    rport=$((port + 1))
    "$bin" -p "$port" -l 127.0.0.1 -U 0 $user_args --resp-port "$rport" &
    pid=$!
    i=0
    while [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do
        if [ "$(cli "$rport" ping)" = "PONG" ]; then started=yes; break; fi
        sleep 0.1
        i=$((i + 1))
    done
    [ $started = yes ] && break
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
done
if [ $started != yes ]; then
    echo "redis_tools: the server did not start"
    exit 1
fi

expect() {   # expect WANT PORT ARGS...
    want=$1
    shift
    got=$(cli "$@")
    [ "$got" = "$want" ] || fail "redis-cli -p $*: want '$want', got '$got'"
}

expect PONG "$rport" ping
expect PONG "$port" ping
expect OK "$rport" set tool:a 1
expect 1 "$port" get tool:a
expect 2 "$port" incr tool:a
expect OK "$port" set tool:b x ex 100
expect 100 "$rport" ttl tool:b
expect "ERR unknown command 'nosuchcmd', with args beginning with: 'x' " "$rport" nosuchcmd x
expect "ERR wrong number of arguments for 'get' command" "$port" get
got=$(cli "$rport" --scan --pattern 'tool:*' | sort | tr '\n' ' ')
[ "$got" = "tool:a tool:b " ] || fail "redis-cli --scan: got '$got'"
expect 2 "$rport" dbsize
cli "$port" info keyspace | tr -d '\r' | grep -qx "db0:keys=2,expires=1,avg_ttl=0" ||
    fail "INFO keyspace: $(cli "$port" info keyspace)"

# Inline, as telnet sends it, on the RESP port (redis-cli always sends
# multibulk, so this needs nc).
if command -v nc >/dev/null 2>&1; then
    got=$( (printf 'PING\r\nSET tool:c "a b"\r\nGET tool:c\r\n'; sleep 0.5) |
           timeout 5 nc -q 1 127.0.0.1 "$rport" 2>/dev/null | tr -d '\r' | tr '\n' '|')
    [ "$got" = "+PONG|+OK|\$3|a b|" ] || fail "inline on the RESP port: got '$got'"
fi

# redis-benchmark, on the RESP port and on the main port (where its inline
# PING_INLINE is recognised by the capital letter): every test reports a rate.
for bport in "$rport" "$port"; do
    if ! timeout 300 redis-benchmark -h 127.0.0.1 -p "$bport" -t ping,set,get,incr,mset -q -n 2000 \
            >"$out" 2>&1; then
        fail "redis-benchmark on port $bport exited with an error: $(tr '\r' '\n' <"$out" | tail -3)"
    fi
    for t in PING_INLINE PING_MBULK SET GET INCR 'MSET \(10 keys\)'; do
        tr '\r' '\n' <"$out" | grep -Eq "^ *$t: [0-9.]+ requests per second" ||
            fail "redis-benchmark on port $bport: no rate for $t: $(tr '\r' '\n' <"$out" | grep -v 'rps=' | tr '\n' '|')"
    done
done

expect PONG "$rport" ping
kill -0 "$pid" 2>/dev/null || fail "the server died"

if [ $fails -ne 0 ]; then
    echo "redis_tools: $fails failure(s)"
    exit 1
fi
echo "redis_tools: all checks pass"
exit 0
