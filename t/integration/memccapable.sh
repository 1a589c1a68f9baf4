#!/bin/bash
# Run libmemcached's protocol conformance checker (memccapable, ASCII tests
# only) against a fresh server from $KIOKU_BIN on a free loopback port.
#
# Passes only when memccapable exits 0 AND reports "All tests passed".
# Exit 77 (automake SKIP) only when memccapable is not installed.
# The server is stopped by PID on every exit path (trap), SIGKILL after a
# bounded wait. Every wait below is bounded.

set -u

if ! command -v memccapable >/dev/null 2>&1; then
    echo "memccapable not found (apt-get install libmemcached-tools): skipping"
    exit 77
fi

bin=${KIOKU_BIN:-}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "KIOKU_BIN is not set to an executable server binary" >&2
    exit 99
fi

scale=${CK_TIMEOUT_MULTIPLIER:-1}
case $scale in *[!0-9]*|'') scale=1 ;; esac
[ "$scale" -ge 1 ] || scale=1

pid=
log=$(mktemp "${TMPDIR:-/tmp}/memccapable.XXXXXX") || exit 99

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

# memcached and kioku refuse to run as root without -u.
user_args=
[ "$(id -u)" -eq 0 ] && user_args="-u root"

# A free port: ask the kernel when python3 is around, else pick at random;
# a server that dies at start-up (port taken) is retried on another port.
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
    else
        echo $((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
    fi
}

# Does 127.0.0.1:$1 answer "version"? (bash /dev/tcp, bounded by timeout)
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
    # shellcheck disable=SC2086
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
    if [ -z "$started" ] && [ -n "$pid" ]; then
        echo "server did not come up on port $port" >&2
        exit 99
    fi
done
if [ -z "$started" ]; then
    echo "could not start $bin" >&2
    exit 99
fi

timeout $((120 * scale)) memccapable -a -t $((10 * scale)) -h 127.0.0.1 -p "$port" >"$log" 2>&1
rc=$?
cat "$log"

if ! kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: the server died during memccapable" >&2
    exit 1
fi
if [ $rc -ne 0 ]; then
    echo "FAIL: memccapable exited with status $rc" >&2
    exit 1
fi
if ! grep -q "All tests passed" "$log"; then
    echo "FAIL: memccapable did not report \"All tests passed\"" >&2
    exit 1
fi
exit 0
