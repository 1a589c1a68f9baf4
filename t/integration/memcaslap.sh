#!/bin/bash
# Load a fresh server from $KIOKU_BIN with memcaslap (libmemcached-tools) for
# two seconds, verifying a fifth of the values it reads back.
#
# memcaslap's generated keys contain control bytes (0x10). memcached accepts
# them (its text protocol splits on spaces only and checks a key's length);
# a server that refuses them answers every set with CLIENT_ERROR and
# memcaslap then reports "cmd_get: 0". So this passes only when memcaslap
# exits 0 and reports sets and gets, and no get, verify or error misses.
# Exit 77 (automake SKIP) only when memcaslap is not installed. The server is
# stopped by PID on every exit path; every wait is bounded.

set -u

if ! command -v memcaslap >/dev/null 2>&1; then
    echo "memcaslap not found (apt-get install libmemcached-tools): skipping"
    exit 77
fi

bin=${KIOKU_BIN:-}
# kioku, like memcached, refuses to run as root without -u.
user_args=
[ "$(id -u)" -eq 0 ] && user_args="-u root"
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "KIOKU_BIN is not set to an executable server binary" >&2
    exit 99
fi

scale=${CK_TIMEOUT_MULTIPLIER:-1}
case $scale in *[!0-9]*|'') scale=1 ;; esac
[ "$scale" -ge 1 ] || scale=1

pid=
log=$(mktemp "${TMPDIR:-/tmp}/memcaslap.XXXXXX") || exit 99

# shellcheck disable=SC2317  # called from the EXIT trap
stop_server() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null
        i=0
        while kill -0 "$pid" 2>/dev/null && [ "$i" -lt $((50 * scale)) ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        pid=
    fi
}
trap 'stop_server; rm -f "$log"' EXIT
trap 'exit 1' INT TERM HUP

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

answers_version() {
    # shellcheck disable=SC2016  # $1 expands in the inner shell
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "version\r\n" >&3
        IFS= read -r line <&3 || exit 1
        case $line in VERSION\ *) exit 0 ;; *) exit 1 ;; esac' _ "$1" 2>/dev/null
}

started=
attempt=0
while [ $attempt -lt 8 ] && [ -z "$started" ]; do
    attempt=$((attempt + 1))
    port=$(free_port)
    "$bin" -p "$port" -l 127.0.0.1 -U 0 $user_args &
    pid=$!
    i=0
    while [ $i -lt $((100 * scale)) ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null
            pid=
            break
        fi
        if answers_version "$port"; then
            started=yes
            break
        fi
        sleep 0.1
        i=$((i + 1))
    done
done
if [ -z "$started" ]; then
    echo "could not start $bin" >&2
    exit 99
fi

# -T 1 -c 8: small enough for a shared 2-core machine, still concurrent.
timeout $((60 * scale)) memcaslap -s "127.0.0.1:$port" -t 2s -T 1 -c 8 -v 0.2 >"$log" 2>&1
rc=$?
cat "$log"

field() {
    sed -n "s/^$1: *\([0-9][0-9]*\).*/\1/p" "$log" | head -n 1
}

fail=
if ! kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: the server died under memcaslap" >&2
    fail=yes
fi
[ $rc -eq 0 ] || { echo "FAIL: memcaslap exited with status $rc" >&2; fail=yes; }
for f in cmd_get cmd_set; do
    v=$(field $f)
    [ -n "$v" ] && [ "$v" -gt 0 ] || { echo "FAIL: $f is '${v}', want > 0" >&2; fail=yes; }
done
for f in get_misses verify_misses verify_failed; do
    v=$(field $f)
    [ "$v" = 0 ] || { echo "FAIL: $f is '${v}', want 0" >&2; fail=yes; }
done
if grep -qi "error" "$log"; then
    echo "FAIL: memcaslap reported an error" >&2
    fail=yes
fi
[ -z "$fail" ]
