#!/usr/bin/env bash
# types_ab.sh - kioku's Redis hashes and sorted sets against redis-server,
# side by side in the same rounds (bench/mc_ab.sh does the work: pinned
# cores, alternating rounds, medians of per-round ratios).
#
#   hash: sessions. Each key of 1..KEYS is prefilled with a 4-field HSET;
#         the load is HSET of one field : HGETALL = 1:10 at random keys.
#   zset: one leaderboard of KEYS members (ZADD lb <n> <n>, prefilled);
#         the load is ZADD : ZREVRANGE lb 0 9 WITHSCORES : ZREVRANK = 2:5:5.
#
#   A = kioku -t 1 --resp-port P,  B = redis-server (persistence off).
# The deciding figure is ops per server CPU-second (A/B); throughput and
# p99 are beside it.
#
# Usage: bench/types_ab.sh [--kioku PATH] [--redis PATH] [--workloads "hash zset"]
#                          [mc_ab.sh options, e.g. --memtier PATH --rounds 3 --time 5]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KIOKU=./src/kioku
REDIS=$(command -v redis-server 2>/dev/null || echo /usr/bin/redis-server)
WORKLOADS="hash zset"
KEYS=100000
REST=()
while [ $# -gt 0 ]; do
    case "$1" in
        --kioku) KIOKU=$2; shift 2 ;;
        --redis) REDIS=$2; shift 2 ;;
        --workloads) WORKLOADS=$2; shift 2 ;;
        --keys) KEYS=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) REST+=("$1"); shift ;;
    esac
done

status=0
for w in $WORKLOADS; do
    case "$w" in
    hash)
        ARGS=(--label hash --key-prefix "session:" --data-size 32
              --prefill-cmd "HSET __key__ user __data__ email __data__ seen __data__ cart __data__"
              --cmd "1:HSET __key__ seen __data__" --cmd "10:HGETALL __key__") ;;
    zset)
        ARGS=(--label zset --key-prefix ""
              --prefill-cmd "ZADD lb __key__ __key__"
              --cmd "2:ZADD lb __key__ __key__" --cmd "5:ZREVRANGE lb 0 9 WITHSCORES"
              --cmd "5:ZREVRANK lb __key__") ;;
    *) echo "types_ab: unknown workload $w (hash, zset)" >&2; exit 1 ;;
    esac
    echo "== types_ab: $w"
    "$here/mc_ab.sh" --protocol redis --kioku "$KIOKU" --redis "$REDIS" --keys "$KEYS" \
        "${ARGS[@]}" "${REST[@]+"${REST[@]}"}" || status=$?
done
exit $status
