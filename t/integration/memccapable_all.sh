#!/bin/sh
# memccapable (libmemcached's protocol conformance tool) against a fresh
# server, binary and ASCII tests together. Passes only if memccapable says
# "All tests passed". Skips (77) when memccapable is not installed.
#
# The server comes from $KIOKU_BIN (default: src/kioku next to this tree);
# it is started on a free loopback port and stopped by its PID, whatever
# happens. Every wait is bounded.

BIN=${KIOKU_BIN:-$(dirname "$0")/../../src/kioku}
MEMCCAPABLE=${MEMCCAPABLE:-memccapable}
TIMEOUT_S=${MEMCCAPABLE_TIMEOUT:-300}

command -v "$MEMCCAPABLE" >/dev/null 2>&1 || { echo "SKIP: $MEMCCAPABLE not found"; exit 77; }
[ -x "$BIN" ] || { echo "FAIL: server binary $BIN not executable"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kioku-memccapable.XXXXXX") || exit 1
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
            sleep 0.1; i=$((i + 1))
        done
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# Does a memcached-compatible server answer "version" on 127.0.0.1:$1?
# (python3 if present, else libmemcached's memcstat.)
port_answers() {
    if ! command -v python3 >/dev/null 2>&1; then
        memcstat --servers="127.0.0.1:$1" >/dev/null 2>&1
        return
    fi
    python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    s.sendall(b"version\r\n")
    sys.exit(0 if s.recv(64).startswith(b"VERSION ") else 1)
except OSError:
    sys.exit(1)
EOF
}

user_args=
[ "$(id -u)" = 0 ] && user_args="-u nobody"

# Pick a port, start, wait until it answers; retry on another port if the
# server exits (port taken). Bounded: 10 ports, 5 s each.
started=0
tries=0
while [ $tries -lt 10 ] && [ $started = 0 ]; do
    tries=$((tries + 1))
    rnd=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    port=$(( 20000 + ($$ + tries * 7919 + rnd) % 40000 ))
    port_answers "$port" && continue   # someone else is there
    # shellcheck disable=SC2086
    "$BIN" -p "$port" -l 127.0.0.1 -U 0 $user_args >"$tmp/server.log" 2>&1 &
    pid=$!
    i=0
    while [ $i -lt 50 ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null; pid=; break
        fi
        if port_answers "$port"; then started=1; break; fi
        sleep 0.1; i=$((i + 1))
    done
    if [ $started = 0 ] && [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
    fi
done
if [ $started = 0 ]; then
    echo "FAIL: could not start $BIN"; cat "$tmp/server.log"; exit 1
fi

# memccapable runs the ASCII and the binary tests unless told -a or -b.
timeout "$TIMEOUT_S" "$MEMCCAPABLE" -h 127.0.0.1 -p "$port" -t 10 >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
if ! kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: the server died during memccapable"; cat "$tmp/server.log"; exit 1
fi
if [ $rc -ne 0 ] || ! grep -q "All tests passed" "$tmp/out"; then
    echo "FAIL: memccapable (exit $rc) did not report all tests passed"
    exit 1
fi
grep -q "binary" "$tmp/out" && grep -q "ascii" "$tmp/out" || {
    echo "FAIL: memccapable did not run both the binary and the ASCII tests"; exit 1; }
echo "PASS: memccapable, binary and ASCII"
exit 0
