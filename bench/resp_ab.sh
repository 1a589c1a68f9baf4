#!/usr/bin/env bash
# resp_ab.sh - A/B benchmark of kioku's RESP (Redis protocol) against
# redis-server, with kioku at two thread counts in the same rounds.
#
#   A = kioku -t 1 --resp-port P     (RESP on its dedicated port)
#   B = redis-server --port P --bind 127.0.0.1 --save '' --appendonly no
#                    --protected-mode no
#   C = kioku -t 2 --resp-port P
#
# All three are pinned to the same core, the load generator to another;
# memtier_benchmark --protocol=redis, set:get 1:10, 32-byte values, keys
# prefilled, pipelines 1 and 16. The summary shows A/B (kioku -t 1 vs redis),
# C/B (kioku -t 2 vs redis) and C/A (-t 2 vs -t 1). redis-server runs its
# commands on one thread; kioku -t 2 on one pinned core measures thread
# overhead, not scaling.
#
# This is a thin wrapper: the work is done by bench/mc_ab.sh (options other
# than the ones below are passed to it, e.g. --memtier PATH --rounds 2
# --time 3). memtier_benchmark is required: redis-benchmark runs SET and GET
# as separate tests and cannot mix them 1:10 in one load.
#
# Usage: bench/resp_ab.sh [--kioku PATH] [--redis PATH] [--threads "1 2"]
#                         [mc_ab.sh options ...]

set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KIOKU=./src/kioku
REDIS=$(command -v redis-server 2>/dev/null || echo /usr/bin/redis-server)
THREADS="1 2"
REST=()

while [ $# -gt 0 ]; do
    case "$1" in
        --kioku) KIOKU=$2; shift 2 ;;
        --redis) REDIS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        -h|--help)
            sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
            echo; echo "mc_ab.sh options:"; "$here/mc_ab.sh" --help | sed -n '/^Load:/,$p'
            exit 0 ;;
        *) REST+=("$1"); shift ;;
    esac
done

set -- $THREADS
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "resp_ab: --threads takes one or two counts, e.g. \"1 2\"" >&2; exit 1; }
ARGS=(--protocol redis --kioku "$KIOKU" --a-threads "$1" --redis "$REDIS")
[ $# -eq 2 ] && ARGS+=(--c-bin "$KIOKU" --c-kind kioku --c-threads "$2")

echo "resp_ab: kioku RESP (A = -t $1$([ $# -eq 2 ] && echo ", C = -t $2")) vs redis-server (B, persistence off)"
[ $# -eq 2 ] && echo "resp_ab: C/A = kioku -t $2 / -t $1 on one pinned core: thread overhead, not scaling"
exec "$here/mc_ab.sh" "${ARGS[@]}" "${REST[@]+"${REST[@]}"}"
