#!/usr/bin/env python3
"""Sorted sets over RESP (issue 11), against a kioku this script starts.

  differential  every ZSET command with its options and errors, sent as raw
                RESP to kioku and to redis-server 7 (when installed, on its
                own free port): the reply bytes must be equal, in RESP2 and
                RESP3; a few of them are also checked against bytes recorded
                from redis-server 7.0.15, so the test means something
                without it
  leaderboard   the redis-py lines of the issue, verbatim, and a 2000-member
                board (skiplist) whose ranks and ranges match a model
  concurrency   16 clients ZINCRBY the same members: the totals are exact;
                8 clients run the set operations (ZUNIONSTORE...) over the
                same keys in every order: no deadlock, no error
  redis-cli     its output for sorted-set replies, as from redis-server
  memory        a small -m: ZADD gets the OOM error, the set stays readable
                and consistent, a ZUNIONSTORE copy of it is whole or an OOM
                error, the server and other keys survive
  eviction      under -m, sets are evicted like strings, each one whole
  restart       a warm restart (-e) keeps both encodings and their TTL

The server binary is $KIOKU_BIN (else ../../src/kioku next to this file);
servers listen on 127.0.0.1 only, on free ports, and are stopped by PID.
Exit status: 0 pass, 1 fail, 77 skip when redis-py is not installed.
Needs (build.sh installs them): python3-redis, redis-tools; redis-server
for the byte-for-byte comparison.
"""
import atexit
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402

redis = kioku_proc.import_redis("resp_zset")

FAILED = []


def check(cond, what):
    if not cond:
        FAILED.append(what)
        print("FAIL: %s" % what)


def run_threads(worker, n, timeout=120):
    """worker(i) on n threads at once; True when all ended in timeout s."""
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout)
    return not any(t.is_alive() for t in ts)


def kioku_bin():
    b = os.environ.get("KIOKU_BIN")
    if not b:
        b = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "kioku")
    if not os.access(b, os.X_OK):
        sys.exit("resp_zset: no server binary at %s" % b)
    return b


def start_kioku(args=()):
    proc, port = kioku_proc.start(kioku_bin(), list(args))
    atexit.register(kioku_proc.stop, proc)
    return proc, port


def start_redis():
    """The port of a redis-server 7 started here, or None when it is not installed."""
    proc, port = kioku_proc.start_redis(["--protected-mode", "no"])
    if proc is not None:
        atexit.register(kioku_proc.stop, proc)
    return port


Raw = kioku_proc.RespRaw


# Each scenario starts from no keys; every reply is compared. A line is
# split on blanks; a list gives arguments that hold blanks or are empty.
SCENARIOS = [
    # ZADD options, reply counts, errors in Redis's order.
    ["ZADD z 1 a 2 b 3 c", "ZADD z 1 a", "ZADD z CH 5 a 2 b 9 new", "ZADD z NX 100 a 7 x",
     "ZADD z XX 100 a 7 y", "ZADD z XX CH 101 a", "ZADD z GT 50 a", "ZADD z GT CH 200 a",
     "ZADD z LT CH 1 a", "ZADD z LT 500 a", "ZADD z GT 1 brandnew", "ZADD z INCR 5 a",
     "ZADD z INCR NX 5 a", "ZADD z INCR XX 5 nope", "ZADD z INCR GT -1 a", "ZADD z INCR LT -1 a",
     "ZADD z NX XX 1 a", "ZADD z GT LT 1 a", "ZADD z GT NX 1 a", "ZADD z LT NX 1 a",
     "ZADD z INCR 1 a 2 b", "ZADD z 1", "ZADD z 1 a 2", "ZADD z", "ZADD z abc a", "ZADD z nan a",
     "ZADD z 1 a x b", "ZADD z inf a -inf b +inf c", "ZADD z 1e400 a", ["ZADD", "z", " 1", "a"], ["ZADD", "z", "", "a"],
     "ZADD z 0x10 hex", "ZADD z 1.5e3 e", "ZADD z -0 negzero", "ZADD z 1. dot", "ZADD z .5 half",
     "ZRANGE z 0 -1 WITHSCORES", "ZCARD z", "ZADD nokey XX 1 a", "EXISTS nokey",
     "ZADD nokey XX INCR 1 a", "ZINCRBY z 1 a", "ZINCRBY z abc a", "ZINCRBY newz 2.5 m",
     "ZINCRBY z nx a", "ZADD i 1 m", "ZADD i inf m", "ZADD i INCR -inf m", "ZINCRBY i -inf m",
     "ZSCORE i m", "ZINCRBY i +inf m"],
    # Lookups.
    ["ZADD z 1 a 2 b 3 c 1.5 d 0.1 e -2 f", "ZSCORE z a", "ZSCORE z e", "ZSCORE z none",
     "ZSCORE nokey a", "ZMSCORE z a none e", "ZMSCORE nokey a b", "ZCARD z", "ZCARD nokey",
     "ZRANK z a", "ZRANK z f", "ZRANK z none", "ZREVRANK z a", "ZREVRANK z c", "ZRANK nokey a",
     "ZCOUNT z -inf +inf", "ZCOUNT z 1 2", "ZCOUNT z (1 2", "ZCOUNT z (1 (2", "ZCOUNT z 2 1",
     "ZCOUNT z (1.5 1.5", "ZCOUNT z x 1", "ZCOUNT z 1 (x", "ZCOUNT z ( 1", "ZCOUNT nokey 0 1",
     "ZCOUNT z -inf (0.1", "ZCOUNT z 0.1 0.1"],
    # Ranges by rank.
    ["ZADD z 1 a 2 b 3 c 4 d 5 e", "ZRANGE z 0 -1", "ZRANGE z 1 2 WITHSCORES", "ZRANGE z -2 -1",
     "ZRANGE z -100 100", "ZRANGE z 3 1", "ZRANGE z 5 10", "ZRANGE z 0 0 REV", "ZRANGE z 0 1 REV WITHSCORES",
     "ZREVRANGE z 0 1", "ZREVRANGE z 0 -1 WITHSCORES", "ZREVRANGE z -1 -1", "ZRANGE z a b",
     "ZRANGE z 0 1 LIMIT 0 1", "ZRANGE z 0 1 LIMIT 0 -1", "ZRANGE z 0 1 WITHSCORES foo",
     "ZRANGE z 0 1 LIMIT 0", "ZREVRANGE z 0 1 REV", "ZREVRANGE z 0 1 BYSCORE", "ZRANGE nokey 0 -1",
     "ZRANGE z 0 1 withscores WITHSCORES", "ZRANGE z 9223372036854775807 -9223372036854775808",
     "ZRANGE z 0 99999999999999999999"],
    # Ranges by score.
    ["ZADD z 1 a 2 b 3 c 4 d 5 e 5 f 5 g", "ZRANGEBYSCORE z -inf +inf", "ZRANGEBYSCORE z 2 4 WITHSCORES",
     "ZRANGEBYSCORE z (2 (4", "ZRANGEBYSCORE z (1 5 LIMIT 1 2", "ZRANGEBYSCORE z (1 5 LIMIT 1 -1",
     "ZRANGEBYSCORE z (1 5 LIMIT -1 2", "ZRANGEBYSCORE z -inf +inf LIMIT 10 2",
     "ZRANGEBYSCORE z -inf +inf LIMIT 0 0", "ZRANGEBYSCORE z 5 5", "ZRANGEBYSCORE z 5 (5",
     "ZRANGEBYSCORE z 6 1", "ZREVRANGEBYSCORE z +inf -inf", "ZREVRANGEBYSCORE z 4 2 WITHSCORES",
     "ZREVRANGEBYSCORE z (5 (1 LIMIT 1 1", "ZREVRANGEBYSCORE z 2 4", "ZRANGE z 2 4 BYSCORE",
     "ZRANGE z 4 2 BYSCORE REV WITHSCORES", "ZRANGE z (1 +inf BYSCORE LIMIT 2 3",
     "ZRANGE z +inf (1 BYSCORE REV LIMIT 0 2 WITHSCORES", "ZRANGEBYSCORE z a b",
     "ZRANGEBYSCORE z 1 2 LIMIT a 1", "ZRANGEBYSCORE z 1 2 LIMIT", "ZRANGEBYSCORE z 1 2 BYSCORE",
     "ZRANGEBYSCORE z 1 2 REV", "ZRANGEBYSCORE nokey 1 2", "ZRANGE z 1 2 BYSCORE BYLEX",
     "ZRANGEBYSCORE z 1 2 LIMIT 0 1 WITHSCORES extra"],
    # Lex ranges (scores tie).
    ["ZADD z 0 a 0 b 0 c 0 d 0 e 0 alpha 0 bar 0 foo 0 zap", "ZRANGEBYLEX z - +", "ZRANGEBYLEX z [b (foo",
     "ZRANGEBYLEX z (a [c", "ZRANGEBYLEX z - [c LIMIT 1 2", "ZRANGEBYLEX z + -", "ZRANGEBYLEX z [z [a",
     "ZREVRANGEBYLEX z + -", "ZREVRANGEBYLEX z [foo (b", "ZREVRANGEBYLEX z + - LIMIT 2 3",
     "ZRANGE z [b [e BYLEX", "ZRANGE z [e [b BYLEX REV", "ZRANGE z - + BYLEX LIMIT 1 1",
     "ZRANGE z - + BYLEX WITHSCORES", "ZRANGEBYLEX z a b", "ZRANGEBYLEX z [a", "ZRANGEBYLEX z [a +x",
     "ZRANGEBYLEX z - + WITHSCORES", "ZLEXCOUNT z - +", "ZLEXCOUNT z [b [d", "ZLEXCOUNT z (b (d",
     "ZLEXCOUNT z [d [b", "ZLEXCOUNT z x y", "ZLEXCOUNT nokey - +", "ZRANGEBYLEX z [ [b",
     "ZREMRANGEBYLEX z [b (d", "ZRANGE z 0 -1", "ZREMRANGEBYLEX z x +", "ZREMRANGEBYLEX nokey - +"],
    # Removals.
    ["ZADD z 1 a 2 b 3 c 4 d 5 e 6 f", "ZREM z a", "ZREM z a", "ZREM z b c nope", "ZREM nokey a",
     "ZREMRANGEBYRANK z 0 0", "ZRANGE z 0 -1", "ZREMRANGEBYRANK z -1 -1", "ZREMRANGEBYRANK z 5 9",
     "ZREMRANGEBYRANK z a 1", "ZREMRANGEBYRANK nokey 0 -1", "ZADD y 1 a 2 b 3 c 4 d",
     "ZREMRANGEBYSCORE y (1 3", "ZRANGE y 0 -1 WITHSCORES", "ZREMRANGEBYSCORE y x 1",
     "ZREMRANGEBYSCORE y -inf +inf", "EXISTS y", "ZREM z e", "EXISTS z", "ZREM z d",
     "EXISTS z", "ZCARD z"],
    # Pops.
    ["ZADD z 1 a 2 b 3 c 4 d 5 e", "ZPOPMIN z", "ZPOPMAX z", "ZPOPMIN z 2", "ZPOPMAX z 0",
     "ZPOPMIN z -1", "ZPOPMIN z x", "ZPOPMIN z 1 2", "ZPOPMAX z 10", "EXISTS z", "ZPOPMIN z",
     "ZPOPMIN nokey 3", "ZPOPMAX nokey"],
    # Wrong types and arity.
    ["SET s v", "ZADD s 1 a", "ZINCRBY s 1 a", "ZSCORE s a", "ZMSCORE s a", "ZCARD s", "ZRANK s a",
     "ZCOUNT s 0 1", "ZRANGE s 0 1", "ZRANGEBYSCORE s 0 1", "ZREM s a", "ZREMRANGEBYRANK s 0 1",
     "ZPOPMIN s", "ZSCAN s 0", "ZLEXCOUNT s - +", "ZADD s XX 1 a", "ZRANGE s x 1",
     "ZCOUNT s x 1", "GET s", "ZADD", "ZCARD", "ZSCORE z", "ZRANGE z 0", "ZREM z", "ZPOPMIN",
     "ZREMRANGEBYSCORE z 1", "ZMSCORE z", "ZCOUNT z 1", "ZSCAN z"],
    # ZSCAN of a small set (the whole set, cursor 0) and its errors.
    ["ZADD z 1 a 2 b 1.5 c 1e18 big -0 nz 0.1 tenth inf i", "ZSCAN z 0", "ZSCAN z 0 MATCH b*",
     "ZSCAN z 0 COUNT 1", "ZSCAN z 0 COUNT 0", "ZSCAN z 0 COUNT x", "ZSCAN z 0 MATCH", "ZSCAN z 0 TYPE zset",
     "ZSCAN z x", "ZSCAN z -1", "ZSCAN nokey 0", "ZSCAN nokey 0 COUNT 0", "ZSCAN z 0 MATCH * COUNT 100",
     "ZRANGE z 0 -1 WITHSCORES"],
    # The generic key commands on a sorted set.
    ["ZADD z 1 a 2 b", "TYPE z", "OBJECT ENCODING z", "EXISTS z", "EXPIRE z 100", "TTL z",
     "PERSIST z", "TTL z", "RENAME z z2", "EXISTS z", "ZRANGE z2 0 -1 WITHSCORES", "SCAN 0 TYPE zset",
     "GET z2", "APPEND z2 x", "INCR z2", "STRLEN z2", "MGET z2 nokey", "ZADD q 1 a", "SET z2 x",
     "TYPE z2", "GET z2", "DEL q", "EXISTS q", "DBSIZE"],
    # COPY of a sorted set (either encoding), with its TTL, REPLACE, a string.
    ["ZADD z 1 a 2 b 3 c", "COPY z z2", "ZRANGE z2 0 -1 WITHSCORES", "OBJECT ENCODING z2", "TTL z2",
     "ZADD z2 9 a", "ZSCORE z a", "COPY z z2", "COPY z z2 REPLACE", "ZSCORE z2 a", "EXPIRE z 100",
     "COPY z z3", "TTL z3", "DEL z", "ZCARD z3", "CONFIG SET zset-max-listpack-entries 2",
     "ZADD big 1 a 2 b 3 c 4 d", "COPY big big2", "OBJECT ENCODING big2", "ZRANGE big2 0 -1 WITHSCORES",
     "ZRANK big2 c", "CONFIG SET zset-max-listpack-entries 128", "SET s v", "COPY s z3",
     "COPY s z3 REPLACE", "TYPE z3", "GET z3", "COPY big s REPLACE", "TYPE s", "ZCARD s",
     "COPY big big", "COPY nokey x", "EXISTS x", "COPY big x DB 0", "COPY big y DB x", "COPY big y REPLACE x",
     "DBSIZE"],
    # The compact encoding's limits, and no way back.
    ["CONFIG SET zset-max-listpack-entries 4", "ZADD z 1 a 2 b 3 c 4 d", "OBJECT ENCODING z",
     "ZADD z 5 e", "OBJECT ENCODING z", "ZREM z a b c d", "OBJECT ENCODING z",
     "CONFIG SET zset-max-ziplist-value 3", "ZADD y 1 abc", "OBJECT ENCODING y", "ZADD y 2 abcd",
     "OBJECT ENCODING y", "ZADD x 1 abcdefgh", "OBJECT ENCODING x", "CONFIG GET zset-max-ziplist-entries",
     "CONFIG GET zset-max-listpack-value",
     "CONFIG SET zset-max-listpack-entries 0", "ZADD w 1 a", "OBJECT ENCODING w",
     "CONFIG SET zset-max-listpack-entries 128", "CONFIG SET zset-max-listpack-value 64",
     "ZRANGE z 0 -1 WITHSCORES", "ZRANGE y 0 -1 WITHSCORES"],
    # ZRANDMEMBER's deterministic answers (a whole set comes highest first).
    ["ZADD z 1 a 2 b 3 c", "ZRANDMEMBER nokey", "ZRANDMEMBER nokey 3", "ZRANDMEMBER nokey 3 WITHSCORES",
     "ZRANDMEMBER z 0", "ZRANDMEMBER z 0 WITHSCORES", "ZRANDMEMBER z 3 WITHSCORES", "ZRANDMEMBER z 10",
     "ZRANDMEMBER z x", "ZRANDMEMBER z 1 x", "ZRANDMEMBER z 1 WITHSCORES x",
     "ZRANDMEMBER z -9223372036854775808", "ZRANDMEMBER z -9223372036854770000 WITHSCORES",
     "ZRANDMEMBER z 9223372036854775807 WITHSCORES", "ZADD one 5 only", "ZRANDMEMBER one",
     "ZRANDMEMBER one -3", "ZRANDMEMBER one -2 WITHSCORES", "ZRANDMEMBER s", "SET s v", "ZRANDMEMBER s 1",
     "CONFIG SET zset-max-listpack-entries 0", "ZADD sl 1 a 2 b 3 c", "ZRANDMEMBER sl 3 WITHSCORES",
     "CONFIG SET zset-max-listpack-entries 128"],
    # Inside MULTI/EXEC, and queued errors.
    ["MULTI", "ZADD m 1 a 2 b", "ZINCRBY m 5 a", "ZRANGE m 0 -1 WITHSCORES", "ZPOPMIN m", "EXEC",
     "MULTI", "ZADD m x a", "ZCARD m", "EXEC", "MULTI", "ZADD", "EXEC", "ZRANGE m 0 -1 WITHSCORES"],
    # Set operations: union, intersection, difference, their options and
    # the checks in Redis's order (numkeys, the keys' types, the options).
    ["ZADD a 1 x 2 y 3 z", "ZADD b 10 y 20 z 30 w", "ZADD c 5 z 6 v",
     "ZUNION 2 a b", "ZUNION 2 a b WITHSCORES", "ZUNION 3 a b c WITHSCORES", "ZUNION 2 a nokey WITHSCORES",
     "ZUNION 2 a b WEIGHTS 2 3 WITHSCORES", "ZUNION 2 a b AGGREGATE MIN WITHSCORES",
     "ZUNION 2 a b AGGREGATE max WITHSCORES", "ZUNION 2 a b aggregate sum weights 1 -1 withscores",
     "ZINTER 2 a b WITHSCORES", "ZINTER 3 a b c WITHSCORES", "ZINTER 2 a nokey", "ZINTER 2 nokey a WITHSCORES",
     "ZINTER 2 a b WEIGHTS 0.5 2 AGGREGATE MAX WITHSCORES", "ZINTER 1 a", "ZINTER 2 a a WEIGHTS 1 2 WITHSCORES",
     "ZDIFF 2 a b WITHSCORES", "ZDIFF 3 b a c WITHSCORES", "ZDIFF 1 a", "ZDIFF 2 nokey a", "ZDIFF 2 a a",
     "ZINTERCARD 2 a b", "ZINTERCARD 3 a b c", "ZINTERCARD 2 a b LIMIT 1", "ZINTERCARD 2 a b LIMIT 0",
     "ZINTERCARD 2 a b LIMIT 10", "ZINTERCARD 1 nokey",
     # errors
     "ZUNION 0 a", "ZINTER 0 a", "ZDIFF 0 a", "ZINTERCARD 0 a", "ZUNION -1 a", "ZUNION x a", "ZUNION 3 a b",
     "ZUNION 9223372036854775807 a", "ZUNION 2 a b WEIGHTS 1", "ZUNION 2 a b WEIGHTS 1 x", "ZUNION 2 a b WEIGHTS 1 nan",
     "ZUNION 2 a b AGGREGATE", "ZUNION 2 a b AGGREGATE avg", "ZUNION 2 a b foo", "ZDIFF 2 a b WEIGHTS 1 2",
     "ZDIFF 2 a b AGGREGATE MIN", "ZINTERCARD 2 a b WITHSCORES", "ZINTERCARD 2 a b LIMIT -1",
     "ZINTERCARD 2 a b LIMIT x", "ZINTERCARD 2 a b LIMIT", "ZINTERCARD 2 a b WEIGHTS 1 1",
     "SET s v", "ZUNION 2 a s", "ZINTER 2 s a WEIGHTS x", "ZDIFF 2 nokey s", "ZINTERCARD 2 a s LIMIT -1",
     "ZUNION", "ZUNION 1", "ZINTERCARD 1"],
    ["ZADD a 1 x 2 y 3 z", "ZADD b 10 y 20 z 30 w", "SET s v", "EXPIRE b 1000",
     "ZUNIONSTORE d 2 a b", "ZRANGE d 0 -1 WITHSCORES", "OBJECT ENCODING d",
     "ZINTERSTORE d 2 a b WEIGHTS 2 3 AGGREGATE MAX", "ZRANGE d 0 -1 WITHSCORES",
     "ZDIFFSTORE d 2 a b", "ZRANGE d 0 -1 WITHSCORES",
     "ZINTERSTORE d 2 a nokey", "EXISTS d", "ZDIFFSTORE d 2 a a", "EXISTS d",
     "ZUNIONSTORE s 2 a b", "TYPE s", "ZRANGE s 0 -1", "ZUNIONSTORE b 1 a", "TTL b", "ZRANGE b 0 -1 WITHSCORES",
     "ZINTERSTORE a 2 a b WEIGHTS 2 1", "ZRANGE a 0 -1 WITHSCORES", "SET t v",
     "ZUNIONSTORE d 2 a t", "ZUNIONSTORE t 1 nokey", "EXISTS t",
     "ZUNIONSTORE d 0 a", "ZINTERSTORE d 0 a", "ZDIFFSTORE d 0 a", "ZUNIONSTORE d 3 a",
     "ZUNIONSTORE d 1 a WITHSCORES", "ZDIFFSTORE d 1 a WEIGHTS 1", "ZUNIONSTORE d 1 a LIMIT 1",
     "ZUNIONSTORE", "ZUNIONSTORE d", "ZUNIONSTORE d 1"],
    # inf and NaN: inf * 0 weights, inf + -inf sums, MIN/MAX against NaN.
    ["ZADD i 1 p 0 q inf r", "ZADD j -1 p inf q -inf r",
     "ZUNION 2 i j WEIGHTS inf inf WITHSCORES", "ZUNION 2 i j WEIGHTS 0 inf WITHSCORES",
     "ZINTER 2 i j WEIGHTS inf 0 WITHSCORES", "ZINTER 2 i j WEIGHTS 0 inf WITHSCORES",
     "ZINTER 2 i j WEIGHTS inf inf WITHSCORES", "ZINTER 2 i j WEIGHTS 0 inf AGGREGATE MIN WITHSCORES",
     "ZINTER 2 i j WEIGHTS 0 inf AGGREGATE MAX WITHSCORES", "ZINTER 2 i j WEIGHTS 1 0 AGGREGATE MAX WITHSCORES",
     "ZUNION 2 i j WEIGHTS -inf inf AGGREGATE MIN WITHSCORES", "ZUNION 2 i i WITHSCORES",
     "ZINTER 3 i j i WEIGHTS 1 1 -1 WITHSCORES", "ZUNIONSTORE d 2 i j WEIGHTS inf -inf", "ZRANGE d 0 -1 WITHSCORES",
     "ZUNION 2 i j WEIGHTS 1e308 1e308 WITHSCORES", "ZUNION 2 i j WEIGHTS -0 1 WITHSCORES"],
    # Encoding of the result, as the listpack limits decide.
    ["CONFIG SET zset-max-listpack-entries 3", "ZADD a 1 x 2 y", "ZADD b 3 z 4 w", "ZUNIONSTORE d 2 a b",
     "OBJECT ENCODING d", "ZINTERSTORE d 2 a a", "OBJECT ENCODING d", "ZRANGESTORE d d 0 0", "OBJECT ENCODING d",
     "ZADD big 1 a 2 b 3 c 4 d 5 e", "ZRANGESTORE d big 0 1", "OBJECT ENCODING d",
     "ZRANGESTORE d big 0 -1", "OBJECT ENCODING d", "CONFIG SET zset-max-listpack-value 2",
     "ZADD long 1 abcdef", "ZUNIONSTORE d 2 a long", "OBJECT ENCODING d",
     "CONFIG SET zset-max-listpack-entries 128", "CONFIG SET zset-max-listpack-value 64"],
    # ZRANGESTORE in all its forms.
    ["ZADD z 1 a 2 b 3 c 4 d 5 e", "ZADD l 0 a 0 b 0 c 0 d", "ZRANGESTORE d z 0 -1", "ZRANGE d 0 -1 WITHSCORES",
     "ZRANGESTORE d z 1 2 REV", "ZRANGE d 0 -1 WITHSCORES", "ZRANGESTORE d z (1 4 BYSCORE",
     "ZRANGE d 0 -1 WITHSCORES", "ZRANGESTORE d z 4 (1 BYSCORE REV LIMIT 1 2", "ZRANGE d 0 -1 WITHSCORES",
     "ZRANGESTORE d l [b + BYLEX", "ZRANGE d 0 -1", "ZRANGESTORE d l + [b BYLEX REV LIMIT 0 2", "ZRANGE d 0 -1",
     "ZRANGESTORE d z 10 20", "EXISTS d", "ZRANGESTORE d z 0 -1", "ZRANGESTORE d nokey 0 -1", "EXISTS d",
     "ZRANGESTORE d z 5 1 BYSCORE", "EXISTS d", "ZRANGESTORE z z 1 2", "ZRANGE z 0 -1 WITHSCORES",
     "SET s v", "ZRANGESTORE d s 0 -1", "ZRANGESTORE s z 0 -1", "TYPE s",
     "ZRANGESTORE d z 0 -1 WITHSCORES", "ZRANGESTORE d z 0 -1 LIMIT 0 1", "ZRANGESTORE d l - + BYLEX WITHSCORES",
     "ZRANGESTORE d z a b", "ZRANGESTORE d z x 1 BYSCORE", "ZRANGESTORE d l a b BYLEX", "ZRANGESTORE d z 0 1 foo",
     "ZRANGESTORE d z 0", "ZRANGESTORE d nokey x 1 BYSCORE", "ZRANGESTORE d s x 1"],
    # ZMPOP: the first key holding a set, its checks in Redis's order.
    ["ZADD a 1 x 2 y 3 z", "ZMPOP 1 a MIN", "ZMPOP 1 a max COUNT 5", "EXISTS a", "ZMPOP 2 nx a MIN",
     "ZADD b 1 x 2 y", "ZMPOP 2 nx b MAX COUNT 1", "SET s v", "ZMPOP 2 nx s MIN", "ZMPOP 2 b s MIN",
     "ZMPOP 0 a MIN", "ZMPOP a a MIN", "ZMPOP -1 a MAX", "ZMPOP 1 a bad", "ZMPOP 1 a MIN bar",
     "ZMPOP 1 a MAX MIN", "ZMPOP 1 a COUNT", "ZMPOP 1 a MAX COUNT 1 COUNT 2", "ZMPOP 2 a b bad",
     "ZMPOP 1 a MIN COUNT 0", "ZMPOP 1 a MAX COUNT a", "ZMPOP 2 a b MAX COUNT -1", "ZMPOP 5 a MIN",
     "ZMPOP 1 nokey MIN", "ZMPOP 1 a", "ZMPOP 1 b MIN COUNT 9223372036854775807", "EXISTS b"],
    # Set operations inside MULTI/EXEC.
    ["ZADD a 1 x", "ZADD b 2 x 3 y", "MULTI", "ZUNIONSTORE d 2 a b", "ZINTER 2 a b WITHSCORES",
     "ZRANGESTORE e d 0 0", "ZDIFF 2 d e", "ZINTERCARD 2 d e", "EXEC",
     # and from Lua
     ["EVAL", "return redis.call('zunionstore', KEYS[1], 2, KEYS[2], KEYS[3], 'weights', 2, 3)", "3", "f", "a", "b"],
     ["EVAL", "return redis.call('zinter', 2, KEYS[1], KEYS[2], 'withscores')", "2", "f", "b"],
     ["EVAL", "return redis.call('zrangestore', KEYS[1], KEYS[2], 0, 0)", "2", "g", "f"],
     ["EVAL", "return redis.pcall('zunion', 0, KEYS[1])", "1", "f"], "ZRANGE g 0 -1 WITHSCORES"],
    # Scores as Redis prints them.
    ["ZADD z 0.1 a 1e18 b 3.0 c -1.5e-7 d 123456789.123 e 1e-300 f", "ZRANGE z 0 -1 WITHSCORES",
     "ZSCORE z b", "ZINCRBY z 0.2 a", "ZMSCORE z a b c d e f"],
]

# Bytes recorded from redis-server 7.0.15: checked even without it.
RECORDED = {
    "ZADD z NX XX 1 a": b"-ERR XX and NX options at the same time are not compatible\r\n",
    "ZADD z GT LT 1 a": b"-ERR GT, LT, and/or NX options at the same time are not compatible\r\n",
    "ZADD z INCR 1 a 2 b": b"-ERR INCR option supports a single increment-element pair\r\n",
    "ZADD z abc a": b"-ERR value is not a valid float\r\n",
    "ZADD i INCR -inf m": b"-ERR resulting score is not a number (NaN)\r\n",
    "ZCOUNT z x 1": b"-ERR min or max is not a float\r\n",
    "ZRANGEBYLEX z a b": b"-ERR min or max not valid string range item\r\n",
    "ZRANGE z 0 1 LIMIT 0 1": b"-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX\r\n",
    "ZRANGE z - + BYLEX WITHSCORES": b"-ERR syntax error, WITHSCORES not supported in combination with BYLEX\r\n",
    "ZADD s 1 a": b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    "ZPOPMIN z -1": b"-ERR value is out of range, must be positive\r\n",
    "ZSCAN nokey 0": b"*2\r\n$1\r\n0\r\n*0\r\n",
    "ZRANGE z 1 2 WITHSCORES": b"*4\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n",
    "ZINCRBY z 0.2 a": b"$19\r\n0.30000000000000004\r\n",
    "ZUNION 0 a": b"-ERR at least 1 input key is needed for 'zunion' command\r\n",
    "ZINTERCARD 0 a": b"-ERR at least 1 input key is needed for 'zintercard' command\r\n",
    "ZUNIONSTORE d 0 a": b"-ERR at least 1 input key is needed for 'zunionstore' command\r\n",
    "ZUNION 2 a b WEIGHTS 1 x": b"-ERR weight value is not a float\r\n",
    "ZINTERCARD 2 a b LIMIT -1": b"-ERR LIMIT can't be negative\r\n",
    "ZINTERCARD 2 a s LIMIT -1": b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    "ZUNION 2 i j WEIGHTS inf inf WITHSCORES": b"*6\r\n$1\r\np\r\n$1\r\n0\r\n$1\r\nr\r\n$1\r\n0\r\n$1\r\nq\r\n$3\r\ninf\r\n",
    "ZSCORE z b": b"$5\r\n1e+18\r\n",
}


def run_scenarios(kport, rport, resp3):
    """Every scenario on kioku (and redis-server); returns the replies seen."""
    k, r = Raw(kport), (Raw(rport) if rport else None)
    if resp3:
        k.cmd("HELLO", "3")
        if r:
            r.cmd("HELLO", "3")
    compared = 0
    for sc in SCENARIOS:
        for conn in ([k, r] if r else [k]):
            conn.cmd("FLUSHALL")
        for line in sc:
            args = line if isinstance(line, list) else line.split(" ")
            line = " ".join(args)
            got = k.cmd(*args)
            if not resp3 and line in RECORDED:
                check(got == RECORDED[line], "%s: kioku %r, redis 7.0.15 %r" % (line, got, RECORDED[line]))
            if r:
                want = r.cmd(*args)
                compared += 1
                check(got == want, "%s%s: kioku %r, redis %r" % ("RESP3 " if resp3 else "", line, got, want))
    # The server survived all of it.
    check(k.cmd("PING") in (b"+PONG\r\n",), "PING after the scenarios")
    return compared


def random_commands(kport, rport, seed, n):
    """n random sorted-set commands (options, bounds, ranks, errors) on a
    few keys that cross the listpack limit: every reply must be
    redis-server's, byte for byte. Lex ranges go to "rl", whose scores are
    all 0: over differing scores their answer is undefined (in a skiplist
    it depends on the random node levels, so two redis-servers differ)."""
    rnd = random.Random(seed)
    k, r = Raw(kport), Raw(rport)
    for conn in (k, r):
        conn.cmd("FLUSHALL")
    keys = ["ra", "rb", "rc", "rl"]
    scores = ["0", "1", "-1", "2.5", "-0.5", "10", "1e3", "inf", "-inf", "3", "0.1", "7"]

    def member():
        if rnd.random() < 0.7:
            return "m%d" % rnd.randrange(180)
        return rnd.choice(["", "a", "ab", "b", "zz", "m", "m1", "x" * 70])

    def bound():
        return rnd.choice(["", "("]) + rnd.choice(scores + ["x", "(", "nan"])

    def lex():
        return rnd.choice(["-", "+", "[a", "(a", "[m5", "(m5", "[m", "(z", "[", "m", "[m17"])

    def idx():
        return str(rnd.choice([0, 1, 2, -1, -2, 5, 50, 150, 200, -200]))

    for _ in range(n):
        key = rnd.choice(keys)
        op = rnd.randrange(17)
        if op < 4:
            opts = [o for o in ("NX", "XX", "GT", "LT", "CH", "INCR") if rnd.random() < 0.12]
            pairs = []
            for _ in range(1 if "INCR" in opts else rnd.randrange(1, 12)):
                pairs += [rnd.choice(scores), member()]
            if key == "rl":
                opts = [o for o in opts if o != "INCR"]
                pairs = [p if i % 2 else "0" for i, p in enumerate(pairs)]
            args = ["ZADD", key] + opts + pairs
        elif op == 4:
            args = ["ZINCRBY", "ra" if key == "rl" else key, rnd.choice(scores), member()]
        elif op == 5:
            args = ["ZREM", key] + [member() for _ in range(rnd.randrange(1, 6))]
        elif op == 6:
            args = [rnd.choice(["ZRANGE", "ZREVRANGE"]), key, idx(), idx()] + (["WITHSCORES"] if rnd.random() < 0.5 else [])
        elif op == 7:
            args = [rnd.choice(["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]), key, bound(), bound()]
            if rnd.random() < 0.4:
                args += ["LIMIT", idx(), idx()]
            if rnd.random() < 0.4:
                args += ["WITHSCORES"]
        elif op == 8:
            args = [rnd.choice(["ZRANGEBYLEX", "ZREVRANGEBYLEX", "ZLEXCOUNT"]), "rl", lex(), lex()]
            if rnd.random() < 0.3 and args[0] != "ZLEXCOUNT":
                args += ["LIMIT", idx(), idx()]
        elif op == 9:
            args = ["ZRANGE", key, rnd.choice([idx(), bound(), lex()]), rnd.choice([idx(), bound(), lex()])]
            args += [o for o in ("BYSCORE", "BYLEX", "REV", "WITHSCORES") if rnd.random() < 0.3]
            if "BYLEX" in args:
                args[1] = "rl"
            if rnd.random() < 0.3:
                args += ["LIMIT", idx(), idx()]
        elif op == 10:
            args = [rnd.choice(["ZCOUNT", "ZREMRANGEBYSCORE"]), key, bound(), bound()]
        elif op == 11:
            args = [rnd.choice(["ZREMRANGEBYRANK", "ZREMRANGEBYLEX"]), key, idx(), idx()]
            if args[0] == "ZREMRANGEBYLEX":
                args[1:] = ["rl", lex(), lex()]
        elif op == 12:
            args = [rnd.choice(["ZSCORE", "ZRANK", "ZREVRANK"]), key, member()]
            if args[0] != "ZSCORE" and rnd.random() < 0.3:
                args.append("WITHSCORE")
        elif op in (14, 15):
            # Set operations over every key; the destination is never "rl",
            # whose scores must stay 0.
            cmd = rnd.choice(["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE", "ZUNION", "ZINTER", "ZDIFF", "ZINTERCARD"])
            srcs = [rnd.choice(keys + ["nokey"]) for _ in range(rnd.randrange(1, 4))]
            num = str(len(srcs)) if rnd.random() < 0.95 else rnd.choice(["0", "-1", "9", "x"])
            args = [cmd] + ([rnd.choice(["ra", "rb", "rc", "rd"])] if cmd.endswith("STORE") else []) + [num] + srcs
            if rnd.random() < 0.4:
                args += ["WEIGHTS"] + [rnd.choice(scores + ["0", "-2", "x"]) for _ in srcs]
            if rnd.random() < 0.4:
                args += ["AGGREGATE", rnd.choice(["SUM", "MIN", "MAX", "min", "avg"])]
            if rnd.random() < 0.4:
                args += ["WITHSCORES"]
            if rnd.random() < 0.2:
                args += ["LIMIT", rnd.choice(["0", "1", "3", "-1"])]
        elif op == 16:
            args = ["ZRANGESTORE", rnd.choice(["ra", "rb", "rc", "rd"]), key,
                    rnd.choice([idx(), bound()]), rnd.choice([idx(), bound()])]
            args += [o for o in ("BYSCORE", "REV") if rnd.random() < 0.4]
            if key == "rl" and rnd.random() < 0.5:
                args[3:] = [lex(), lex(), "BYLEX"] + (["REV"] if rnd.random() < 0.5 else [])
            if rnd.random() < 0.3:
                args += ["LIMIT", idx(), idx()]
        else:
            if rnd.random() < 0.15:
                srcs = rnd.sample(keys + ["nokey"], rnd.randrange(1, 4))
                args = ["ZMPOP", str(len(srcs))] + srcs + [rnd.choice(["MIN", "MAX"])]
                if rnd.random() < 0.5:
                    args += ["COUNT", rnd.choice(["1", "3", "0", "50"])]
                got, want = k.cmd(*args), r.cmd(*args)
                if got != want:
                    check(False, "random (seed %d) %r: kioku %r, redis %r" % (seed, args, got[:300], want[:300]))
                    return
                continue
            args = [rnd.choice(["ZPOPMIN", "ZPOPMAX", "ZCARD", "ZMSCORE"]), key]
            if args[0] in ("ZPOPMIN", "ZPOPMAX") and rnd.random() < 0.6:
                args.append(rnd.choice(["1", "3", "0", "-1", "x", "100"]))
            elif args[0] == "ZMSCORE":
                args += [member() for _ in range(rnd.randrange(1, 4))]
        got, want = k.cmd(*args), r.cmd(*args)
        if args[0] in ("ZRANK", "ZREVRANK") and len(args) == 4:
            want = got if want.startswith(b"-ERR wrong number") else want   # 7.2's WITHSCORE
        if got != want:
            check(False, "random (seed %d) %r: kioku %r, redis %r; the set in redis: %r" % (
                seed, args, got[:300], want[:300], r.cmd("ZRANGE", key, "0", "-1", "WITHSCORES")[:3000]))
            return
    for key in keys:
        check(k.cmd("ZRANGE", key, "0", "-1", "WITHSCORES") == r.cmd("ZRANGE", key, "0", "-1", "WITHSCORES"),
              "random: final contents of %s" % key)


def leaderboard(kport, rport):
    r = redis.Redis(host="127.0.0.1", port=kport, decode_responses=True)
    r.flushall()
    # The lines, verbatim.
    board, n = "weekly", 3
    for user_id, score in [("alice", 310), ("bob", 120), ("carol", 450), ("dave", 310), ("erin", 5)]:
        r.zadd(f"lb:{board}", {user_id: score})
    top = r.zrevrange(f"lb:{board}", 0, n - 1, withscores=True)
    check(top == [("carol", 450.0), ("dave", 310.0), ("alice", 310.0)], "top 3: %r" % (top,))
    user_id = "bob"
    check(r.zrevrank(f"lb:{board}", user_id) == 3, "zrevrank bob")
    check(r.zrevrank(f"lb:{board}", "nobody") is None, "zrevrank of a stranger is None")
    check(r.zscore(f"lb:{board}", "erin") == 5.0, "zscore erin")
    check(r.zincrby(f"lb:{board}", 1000, "erin") == 1005.0, "zincrby erin")
    check(r.zrevrank(f"lb:{board}", "erin") == 0, "erin on top")
    # WITHSCORE is Redis 7.2's (7.0 has no such option): [rank, score].
    raw = Raw(kport)
    got = raw.cmd("ZRANK", f"lb:{board}", "erin", "WITHSCORE")
    check(got == b"*2\r\n:4\r\n$4\r\n1005\r\n", "zrank withscore: %r" % (got,))
    got = raw.cmd("ZREVRANK", f"lb:{board}", "nobody", "WITHSCORE")
    check(got == b"*-1\r\n", "zrevrank withscore of a stranger: %r" % (got,))
    got = raw.cmd("ZRANK", f"lb:{board}", "erin", "WITHSCORES")
    check(got == b"-ERR syntax error\r\n", "zrank withscores: %r" % (got,))

    # A board past the listpack limit: ranks and ranges against a model.
    rnd = random.Random(11)
    model = {}
    key = "lb:big"
    pipe = r.pipeline(transaction=False)
    for i in range(2000):
        u, s = "u%d" % rnd.randrange(3000), rnd.randrange(100000) / 10
        model[u] = s
        pipe.zadd(key, {u: s})
    pipe.execute()
    order = sorted(model.items(), key=lambda kv: (kv[1], kv[0].encode()))
    check(r.zcard(key) == len(model), "big board zcard")
    check(r.object("encoding", key) == "skiplist", "big board is a skiplist")
    check(r.type(key) == "zset", "TYPE of the big board")
    for u in rnd.sample(list(model), 200):
        want = order.index((u, model[u]))
        check(r.zrank(key, u) == want, "rank of %s" % u)
        check(r.zrevrank(key, u) == len(order) - 1 - want, "revrank of %s" % u)
    got = r.zrevrange(key, 0, 9, withscores=True)
    check(got == [(m, s) for m, s in reversed(order[-10:])], "big board top 10")
    got = r.zrangebyscore(key, 100, 2000, withscores=True)
    check(got == [(m, s) for m, s in order if 100 <= s <= 2000], "big board score range")
    check(r.zcount(key, "(100", 5000) == sum(1 for _, s in order if 100 < s <= 5000), "big board zcount")
    # A full ZSCAN returns every member with its score.
    seen, cur, rounds = {}, 0, 0
    while True:
        cur, part = r.zscan(key, cur, count=50)
        seen.update(part)
        rounds += 1
        if cur == 0 or rounds > 10000:
            break
    check(seen == {m: s for m, s in model.items()}, "zscan of the big board")
    # Popping from the top takes the highest scores in order.
    popped = r.zpopmax(key, 5)
    check(popped == [(m, s) for m, s in reversed(order[-5:])], "zpopmax 5")
    removed = r.zremrangebyrank(key, 0, 99)
    check(removed == 100 and r.zcard(key) == len(order) - 105, "zremrangebyrank 0 99")
    if rport:
        # The same big board in redis-server replies the same bytes.
        rr = redis.Redis(host="127.0.0.1", port=rport)
        rr.flushall()
        kk = Raw(kport)
        raw_r = Raw(rport)
        kk.cmd("DEL", "cmp")
        for i in range(300):
            args = ["ZADD", "cmp", str(rnd.randrange(50) / 4), "m%d" % rnd.randrange(400)]
            check(kk.cmd(*args) == raw_r.cmd(*args), "big zadd %r" % args)
        for args in (["ZRANGE", "cmp", "0", "-1", "WITHSCORES"], ["ZREVRANGE", "cmp", "10", "40"],
                     ["ZRANGEBYSCORE", "cmp", "(3", "9", "LIMIT", "5", "20", "WITHSCORES"],
                     ["ZREVRANGEBYSCORE", "cmp", "+inf", "-inf", "LIMIT", "1", "7"],
                     ["ZCOUNT", "cmp", "2", "(10"], ["ZRANK", "cmp", "m7"], ["ZREVRANK", "cmp", "m8"],
                     ["ZREMRANGEBYSCORE", "cmp", "1", "2"], ["ZREMRANGEBYRANK", "cmp", "-5", "-1"],
                     ["ZPOPMIN", "cmp", "3"], ["ZCARD", "cmp"], ["ZRANGE", "cmp", "0", "-1", "WITHSCORES"]):
            check(kk.cmd(*args) == raw_r.cmd(*args), "big board %r" % args)


def concurrency(kport):
    clients, rounds, members = 16, 300, ["m0", "m1", "m2"]
    r = redis.Redis(host="127.0.0.1", port=kport)
    r.delete("hot")
    errors = []

    def worker(i):
        c = redis.Redis(host="127.0.0.1", port=kport, socket_timeout=30)
        try:
            for j in range(rounds):
                c.zincrby("hot", 1 if j % 2 else 2, members[(i + j) % 3])
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    t0 = time.monotonic()
    run_threads(worker, clients)
    check(not errors, "concurrent ZINCRBY errors: %r" % errors[:3])
    total = sum(s for _, s in r.zrange("hot", 0, -1, withscores=True))
    check(total == clients * (rounds // 2) * 3, "total of all increments: %r" % total)
    for m in members:
        want = 0
        for i in range(clients):
            for j in range(rounds):
                if members[(i + j) % 3] == m:
                    want += 1 if j % 2 else 2
        check(r.zscore("hot", m) == want, "total of %s: %r, want %d" % (m, r.zscore("hot", m), want))
    print("resp_zset: %d clients x %d ZINCRBY in %.2fs" % (clients, rounds, time.monotonic() - t0))


def setop_concurrency(kport):
    """8 clients run set operations over the same 4 keys in every order
    (each command holds all its keys' stripes), with ZINCRBY and RENAME
    between them: no deadlock (bounded by socket timeouts), no error, and
    each ZINTERSTORE of a key with itself gives back that key's members."""
    clients, rounds, keys = 8, 200, ["c0", "c1", "c2", "c3"]
    r = redis.Redis(host="127.0.0.1", port=kport)
    for i, k in enumerate(keys):
        r.delete(k)
        r.zadd(k, {"m%d" % j: j + i for j in range(10 + 60 * i)})
    errors = []

    def worker(i):
        rnd = random.Random(i)
        c = redis.Redis(host="127.0.0.1", port=kport, socket_timeout=30)
        try:
            for _ in range(rounds):
                ks = rnd.sample(keys, 3)
                op = rnd.randrange(6)
                if op == 0:
                    c.zunionstore(ks[0], ks[1:])
                elif op == 1:
                    c.execute_command("ZINTER", 2, ks[0], ks[1], "WITHSCORES")
                elif op == 2:
                    c.execute_command("ZDIFFSTORE", ks[2], 2, ks[0], ks[1])
                elif op == 3:
                    c.execute_command("ZRANGESTORE", ks[0], ks[1], 0, 20)
                elif op == 4:
                    c.zincrby(ks[0], 1, "m%d" % rnd.randrange(50))
                else:
                    mine = "own%d" % i
                    c.zadd(mine, {"a": 1, "b": 2})
                    c.execute_command("ZINTERSTORE", mine, 2, mine, mine)
                    got = c.zrange(mine, 0, -1, withscores=True)
                    if got != [(b"a", 2.0), (b"b", 4.0)]:
                        errors.append("ZINTERSTORE of %s with itself: %r" % (mine, got))
                    c.delete(mine)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    t0 = time.monotonic()
    check(run_threads(worker, clients), "concurrent set operations finished (no deadlock)")
    check(not errors, "concurrent set operation errors: %r" % errors[:3])
    check(r.ping(), "PING after the concurrent set operations")
    print("resp_zset: %d clients x %d set operations in %.2fs" % (clients, rounds, time.monotonic() - t0))


def memory_bound():
    proc, port = start_kioku(["-m", "2"])
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=30)
    r.set("other", "still here")
    oom, added = None, 0
    pad = "x" * 40
    for i in range(200000):
        try:
            r.zadd("big", {"%s%07d" % (pad, i): i})
            added += 1
        except redis.exceptions.ResponseError as e:
            oom = str(e)
            break
    if oom is None:
        # Eviction made room all along (it may take the set itself): fine,
        # but then the set must still be sound.
        print("resp_zset: no OOM within 200000 members (evicted instead)")
    else:
        check(oom.startswith("OOM command not allowed"), "OOM error text: %r" % oom)
    n = r.zcard("big")
    check(n <= added, "zcard %d <= added %d" % (n, added))
    if n:
        members = r.zrange("big", 0, -1, withscores=True)
        check(len(members) == n, "zrange returns zcard members")
        check(all(members[i][1] < members[i + 1][1] for i in range(len(members) - 1)), "scores in order")
        check(r.zrank("big", members[-1][0]) == n - 1, "rank of the last")
        # A copy needs as much memory again: an OOM error and no copy, or
        # (when eviction made room) a whole one.
        try:
            got = r.zunionstore("copy", ["big"])
            check(got == r.zcard("copy"), "ZUNIONSTORE copy: reply %r, zcard %r" % (got, r.zcard("copy")))
        except redis.exceptions.ResponseError as e:
            check(str(e).startswith("OOM command not allowed"), "ZUNIONSTORE OOM text: %r" % str(e))
            check(r.exists("copy") == 0, "no partial copy after OOM")
    check(r.ping(), "server alive after OOM")
    kioku_proc.stop(proc)


def randmember(kport):
    """ZRANDMEMBER's random answers: members of the set, distinct with a
    positive count, repeats with a negative one, right scores, and every
    member drawn sooner or later (both encodings)."""
    r = redis.Redis(host="127.0.0.1", port=kport, decode_responses=True)
    for n in (50, 1000):
        key = "rand%d" % n
        r.delete(key)
        r.zadd(key, {"m%d" % i: i for i in range(n)})
        members = {"m%d" % i for i in range(n)}
        seen = set()
        for count in (1, 5, 64, 65, n // 2, n - 1):
            got = r.zrandmember(key, count)
            want = min(count, n)
            check(len(got) == want and len(set(got)) == want and set(got) <= members,
                  "ZRANDMEMBER %s %d: distinct members of the set" % (key, count))
            seen.update(got)
        got = r.execute_command("ZRANDMEMBER", key, -3 * n)
        check(len(got) == 3 * n and set(got) <= members and len(set(got)) < 3 * n,
              "ZRANDMEMBER %s -%d: repeats allowed" % (key, 3 * n))
        seen.update(got)
        # A member missed by all of the draws above is no fault (about one
        # run in 40 for 1000 members): draw more, a bounded number of times.
        for _ in range(10):
            if seen == members:
                break
            seen.update(r.execute_command("ZRANDMEMBER", key, -3 * n))
        check(seen == members, "every member of %s was drawn" % key)
        pairs = r.zrandmember(key, 20, withscores=True)
        check(len(pairs) == 40 and all(float(pairs[i + 1]) == int(pairs[i][1:]) for i in range(0, 40, 2)),
              "ZRANDMEMBER WITHSCORES pairs each member with its score")
        one = r.zrandmember(key)
        check(one in members, "ZRANDMEMBER without count: one member")


def redis_cli(kport, rport):
    """redis-cli's view of a sorted set (its own formatting of the
    replies) is the same from kioku as from redis-server."""
    cli = shutil.which("redis-cli")
    if cli is None:
        print("resp_zset: redis-cli not installed; its check skipped")
        return
    script = ["DEL cli", "ZADD cli 1 one 2 two 2.5 two-and-a-half", "ZRANGE cli 0 -1 WITHSCORES",
              "ZREVRANGEBYSCORE cli +inf 2 WITHSCORES LIMIT 0 2", "ZSCORE cli two-and-a-half",
              "ZRANK cli two", "ZINCRBY cli -0.5 two-and-a-half", "ZPOPMAX cli", "ZCARD cli",
              "ZADD cli NX XX 1 a", "ZSCAN cli 0"]
    want = {
        "ZRANGE cli 0 -1 WITHSCORES": "one\n1\ntwo\n2\ntwo-and-a-half\n2.5\n",
        "ZINCRBY cli -0.5 two-and-a-half": "2\n",
    }
    for line in script:
        got = subprocess.run([cli, "-p", str(kport)] + line.split(), capture_output=True, text=True,
                             timeout=30).stdout
        if line in want:
            check(got == want[line], "redis-cli %s: %r" % (line, got))
        if rport:
            ref = subprocess.run([cli, "-p", str(rport)] + line.split(), capture_output=True, text=True,
                                 timeout=30).stdout
            check(got == ref, "redis-cli %s: kioku %r, redis %r" % (line, got, ref))
    # Interactive-style (tty) formatting, as a person sees it.
    got = subprocess.run([cli, "-p", str(kport), "--no-raw", "ZRANGE", "cli", "0", "-1", "WITHSCORES"],
                         capture_output=True, text=True, timeout=30).stdout
    check(got == '1) "one"\n2) "1"\n3) "two"\n4) "2"\n', "redis-cli --no-raw: %r" % got)


def eviction():
    """Under -m, sorted sets are evicted like strings, each one whole."""
    proc, port = start_kioku(["-m", "4"])
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=30)
    made, oom = 0, 0
    t0 = time.monotonic()
    while made < 3000 and time.monotonic() - t0 < 120:
        pipe = r.pipeline(transaction=False)
        for j in range(200):
            pipe.zadd("ev:%d" % made, {"member-%03d" % j: j})
        try:
            pipe.execute()
        except redis.exceptions.ResponseError:
            oom += 1
        made += 1
    sizes = [r.zcard("ev:%d" % k) for k in range(made)]
    gone = sum(1 for n in sizes if n == 0)
    check(gone > 0, "sorted sets were evicted (%d of %d gone)" % (gone, made))
    check(all(n in (0, 200) for n in sizes[:made - 1]), "each sorted set is evicted whole or intact")
    recent = [k for k in range(max(0, made - 20), made) if sizes[k]]
    check(recent, "some of the last 20 sets are still there")
    if recent:
        last = r.zrange("ev:%d" % recent[-1], 0, -1, withscores=True)
        check(len(last) == 200 and last[0] == (b"member-000", 0.0) and last[-1] == (b"member-199", 199.0),
              "a recent set is whole")
    check(r.ping(), "server alive")
    kioku_proc.stop(proc)


def warm_restart():
    """A warm restart (-e) keeps sorted sets of both encodings, TTL too."""
    import signal
    import tempfile
    d = tempfile.mkdtemp(prefix="kioku-zset-")
    path = os.path.join(d, "mem")
    try:
        proc, port = kioku_proc.start(kioku_bin(), ["-m", "64", "-e", path], stderr=subprocess.DEVNULL)
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=30, decode_responses=True)
        r.zadd("small", {"a": 1, "b": 2.5})
        r.expire("small", 1000)
        t0 = time.monotonic()
        big = {"m%d" % i: i / 3 for i in range(3000)}
        pipe = r.pipeline(transaction=False)
        for m, sc in big.items():
            pipe.zadd("big", {m: sc})
        pipe.execute()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        proc, port = kioku_proc.start(kioku_bin(), ["-m", "64", "-e", path], stderr=subprocess.DEVNULL)
        try:
            r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=30, decode_responses=True)
            # The TTL ran on by about the time the restart took (a fixed
            # 10 s was short for a sanitizer build on a busy machine).
            ttl, took = r.ttl("small"), time.monotonic() - t0
            check(r.zrange("small", 0, -1, withscores=True) == [("a", 1.0), ("b", 2.5)] and
                  1000 - took - 2 <= ttl <= 1000,
                  "warm restart keeps a listpack sorted set and its TTL (%r after %.1f s)" % (ttl, took))
            got = r.zrange("big", 0, -1, withscores=True)
            check(got == sorted(big.items(), key=lambda kv: (kv[1], kv[0])),
                  "warm restart keeps a 3000-member skiplist")
            check(r.zrank("big", "m2999") == 2999 and r.zscore("big", "m1500") == 500.0,
                  "rank and score after a warm restart")
            r.zadd("big", {"new": -1})
            r.zrem("big", "m0")
            check(r.zcard("big") == 3000 and r.zrank("big", "new") == 0 and
                  r.object("encoding", "big") == "skiplist", "a restored sorted set can change")
        finally:
            kioku_proc.stop(proc)
    finally:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


def main():
    _, kport = start_kioku()
    rport = start_redis()
    if rport is None:
        print("resp_zset: redis-server not installed: recorded replies only")
    n2 = run_scenarios(kport, rport, False)
    n3 = run_scenarios(kport, rport, True)
    print("resp_zset: %d replies compared with redis-server" % (n2 + n3))
    if rport:
        for seed in (1, 2, 3):
            random_commands(kport, rport, seed, 1500)
        print("resp_zset: 4500 random commands compared with redis-server")
    leaderboard(kport, rport)
    randmember(kport)
    redis_cli(kport, rport)
    concurrency(kport)
    setop_concurrency(kport)
    memory_bound()
    eviction()
    warm_restart()
    if FAILED:
        print("resp_zset: %d failures" % len(FAILED))
        sys.exit(1)
    print("resp_zset: all passed")


if __name__ == "__main__":
    main()
