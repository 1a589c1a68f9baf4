#!/usr/bin/env python3
"""Hashes and typed keys (issue 11) against a real $KIOKU_BIN, with redis-py
and raw RESP:

- the session idiom verbatim: r.hset(key, mapping=...), r.expire(key, 1800),
  r.hgetall(key);
- every hash command with its options and errors, byte for byte as
  redis-server 7 answers them (when /usr/bin/redis-server is installed: both
  servers get the same requests, in RESP2 and RESP3), including OBJECT
  ENCODING across the listpack thresholds and CONFIG SET of them;
- what cannot be compared byte for byte (HRANDFIELD, HSCAN order) by its
  properties: distinct picks, pairs that belong together, a full HSCAN
  returns every field exactly as stored, also while the hash grows;
- typed keys with the generic commands (TYPE, SCAN TYPE, RENAME with TTL,
  DEL, EXISTS, EXPIRE/PERSIST, DBSIZE, INFO keyspace) and WRONGTYPE in the
  string commands;
- over the memcached protocols a hash is a miss, set overwrites it, and
  nothing else changes or corrupts it;
- 16 clients doing HINCRBY / HINCRBYFLOAT on the same fields get the exact
  totals;
- under a small -m, hashes are evicted like strings and the server keeps
  answering; with -M a full cache answers OOM and the hash stays consistent;
- a warm restart (-e) keeps hashes of both encodings, with their TTL.

Every server listens on 127.0.0.1, on free ports, and is stopped by PID;
every loop is bounded. Exit: 0 pass, 1 fail, 77 skip without redis-py.
"""
import os
import random
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402

redis = kioku_proc.import_redis("resp_hash")

BIN = os.environ.get("KIOKU_BIN") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "..", "src", "kioku")
REDIS = "/usr/bin/redis-server"
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


# ---- a raw RESP client: the reply's exact bytes ----

Raw = kioku_proc.RespRaw


# Requests whose replies must match redis-server 7 byte for byte. Run in
# order on a flushed server, in RESP2 and again after HELLO 3.
SCRIPT = [
    ["hset", "h", "a", "1", "b", "2", "c", "3"],
    ["hset", "h", "a", "10", "d", "4"],
    ["hset", "h", "a"],
    ["hset", "h"],
    ["hmset", "h", "e", "5"],
    ["hmset", "h", "e"],
    ["hsetnx", "h", "a", "x"], ["hsetnx", "h", "z", "26"],
    ["hget", "h", "a"], ["hget", "h", "nope"], ["hget", "nokey", "a"],
    ["hmget", "h", "a", "nope", "b"], ["hmget", "nokey", "a", "b"],
    ["hgetall", "h"], ["hgetall", "nokey"],
    ["hkeys", "h"], ["hvals", "h"], ["hkeys", "nokey"], ["hvals", "nokey"],
    ["hlen", "h"], ["hlen", "nokey"],
    ["hexists", "h", "a"], ["hexists", "h", "nope"], ["hexists", "nokey", "a"],
    ["hstrlen", "h", "a"], ["hstrlen", "h", "nope"], ["hstrlen", "nokey", "a"],
    ["hincrby", "h", "a", "5"], ["hincrby", "h", "new", "-7"], ["hincrby", "h", "a", "x"],
    ["hincrby", "h", "a", "1.5"], ["hincrby", "h", "a", "9223372036854775807"],
    ["hset", "h", "big", "9223372036854775807"], ["hincrby", "h", "big", "1"],
    ["hset", "h", "neg", "-9223372036854775808"], ["hincrby", "h", "neg", "-1"],
    ["hset", "h", "txt", "abc"], ["hincrby", "h", "txt", "1"], ["hincrbyfloat", "h", "txt", "1"],
    ["hset", "h", "sp", " 1"], ["hincrby", "h", "sp", "1"],
    ["hincrbyfloat", "h", "f", "1.5"], ["hincrbyfloat", "h", "f", "0.1"],
    ["hincrbyfloat", "h", "f", "-1.6"], ["hincrbyfloat", "h", "f", "1e3"],
    ["hincrbyfloat", "h", "f", "abc"], ["hincrbyfloat", "h", "f", "inf"],
    ["hincrbyfloat", "h", "f", "nan"], ["hincrbyfloat", "h", "a", "1.5"],
    # A result longer than hash-max-listpack-value converts, as in Redis
    # (kept apart: a hashtable's order is the hash function's).
    ["hset", "hf", "huge", "1e308"], ["hincrbyfloat", "hf", "huge", "1e308"], ["hlen", "hf"],
    ["object", "encoding", "hf"], ["hget", "hf", "huge"], ["hincrbyfloat", "hf", "huge", "1e308"],
    ["hincrbyfloat", "hf", "huge", "-1e308"],
    ["hincrbyfloat", "h", "g", "5.0e3"], ["hincrbyfloat", "h", "g", "-5000"],
    ["hdel", "h", "a", "nope", "b"], ["hdel", "nokey", "a"],
    ["hgetall", "h"],
    ["hrandfield", "nokey"], ["hrandfield", "nokey", "5"], ["hrandfield", "nokey", "-5", "withvalues"],
    ["hrandfield", "h", "0"], ["hrandfield", "h", "x"], ["hrandfield", "h", "1", "withvalue"],
    ["hrandfield", "h", "1", "withvalues", "x"],
    ["hrandfield", "h", "-9223372036854775808"],
    ["hrandfield", "h", "-9223372036854775807", "withvalues"],
    ["hrandfield", "h", "4611686018427387904", "withvalues"],
    ["hscan", "nokey", "0"], ["hscan", "nokey", "x"], ["hscan", "h", "x"],
    ["hscan", "h", "0", "count", "0"], ["hscan", "h", "0", "count", "x"],
    ["hscan", "h", "0", "match"], ["hscan", "h", "0", "type", "hash"],
    ["hscan", "h", "0", "match", "n*"], ["hscan", "h", "0", "count", "100", "match", "*e*"],
    ["hrandfield", "h", "100"], ["hrandfield", "h", "100", "withvalues"],
    ["type", "h"], ["type", "nokey"], ["object", "encoding", "h"],
    ["set", "s", "v"],
    ["hset", "s", "a", "1"], ["hget", "s", "a"], ["hgetall", "s"], ["hlen", "s"], ["hdel", "s", "a"],
    ["hincrby", "s", "a", "1"], ["hincrbyfloat", "s", "a", "1"], ["hscan", "s", "0"],
    ["hrandfield", "s"], ["hmget", "s", "a"], ["hexists", "s", "a"], ["hstrlen", "s", "a"],
    ["hkeys", "s"], ["hvals", "s"], ["hsetnx", "s", "a", "b"],
    ["get", "h"], ["mget", "h", "s", "nokey"], ["append", "h", "x"], ["strlen", "h"],
    ["getrange", "h", "0", "1"], ["setrange", "h", "0", "x"], ["setrange", "h", "-1", "x"],
    ["incr", "h"], ["decrby", "h", "2"], ["incrbyfloat", "h", "1"], ["getdel", "h"],
    ["getex", "h", "px", "100"], ["set", "h", "x", "get"], ["getset", "h", "x"], ["setnx", "h", "x"],
    ["type", "h"], ["hlen", "h"],
    ["set", "h", "x", "nx"], ["type", "h"],
    ["set", "h", "x"], ["type", "h"], ["get", "h"],
    ["hset", "e", "f", "v"], ["hdel", "e", "f"], ["exists", "e"], ["type", "e"],
    ["hset", "r", "f", "v"], ["expire", "r", "100"], ["rename", "r", "r2"], ["exists", "r"],
    ["hgetall", "r2"], ["persist", "r2"], ["ttl", "r2"], ["renamenx", "r2", "s"], ["rename", "r2", "s"],
    ["type", "s"], ["hgetall", "s"], ["del", "s"], ["exists", "s"], ["dbsize"],
    ["object", "encoding", "nokey"], ["object", "freq", "h"], ["object", "nope", "h"],
    ["object", "encoding"],
    # Encodings and the thresholds.
    ["hset", "lp", "f", "x" * 64], ["object", "encoding", "lp"],
    ["hset", "lp", "g", "x" * 65], ["object", "encoding", "lp"],
    ["hdel", "lp", "g"], ["object", "encoding", "lp"],
    ["hset", "lf", "x" * 65, "v"], ["object", "encoding", "lf"],
    ["config", "set", "hash-max-listpack-entries", "3"],
    ["config", "get", "hash-max-listpack-entries"], ["config", "get", "hash-max-ziplist-entries"],
    ["hset", "c", "1", "1", "2", "2", "3", "3"], ["object", "encoding", "c"],
    ["hset", "c", "4", "4"], ["object", "encoding", "c"],
    ["hdel", "c", "1", "2"], ["object", "encoding", "c"],
    ["config", "set", "hash-max-ziplist-entries", "512"],
    ["config", "set", "hash-max-listpack-value", "1kb"], ["config", "get", "hash-max-listpack-value"],
    ["hset", "k", "f", "x" * 1000], ["object", "encoding", "k"],
    ["config", "set", "hash-max-listpack-value", "64"],
    ["config", "set", "hash-max-listpack-entries", "-1"],
    ["config", "set", "hash-max-listpack-entries", "x"],
    ["config", "set", "hash-max-listpack-entries", "0"],
    ["hset", "z0", "a", "b"], ["object", "encoding", "z0"],
    ["config", "set", "hash-max-listpack-entries", "512"],
    ["config", "get", "zset-max-listpack-entries"], ["config", "get", "zset-max-ziplist-value"],
    ["hset", "", "", ""], ["hgetall", ""], ["hstrlen", "", ""], ["del", ""],
    ["hset", "bin", "\x00\xff", "\r\n"], ["hget", "bin", "\x00\xff"], ["hgetall", "bin"],
    # COPY: a hash is copied field by field, in either encoding, with its TTL;
    # the copy is independent of the original.
    ["del", "cp", "cp2", "cp3"], ["hset", "cp", "a", "1", "b", "2", "c", "3"],
    ["copy", "cp", "cp2"], ["hgetall", "cp2"], ["object", "encoding", "cp2"], ["ttl", "cp2"],
    ["hset", "cp2", "a", "changed"], ["hget", "cp", "a"], ["copy", "cp", "cp2"],
    ["copy", "cp", "cp2", "replace"], ["hget", "cp2", "a"], ["expire", "cp", "100"],
    ["copy", "cp", "cp3"], ["ttl", "cp3"], ["del", "cp"], ["hgetall", "cp3"],
    ["config", "set", "hash-max-listpack-entries", "2"],
    ["hset", "cpd", "1", "x", "2", "y", "3", "z"], ["copy", "cpd", "cpd2"],
    ["object", "encoding", "cpd2"], ["hlen", "cpd2"], ["hget", "cpd2", "3"],
    ["config", "set", "hash-max-listpack-entries", "512"],
    ["set", "cps", "str"], ["copy", "cpd", "cps"], ["type", "cps"], ["copy", "cpd", "cps", "replace"],
    ["type", "cps"], ["hlen", "cps"], ["copy", "cps", "cps"], ["copy", "nokey", "cpx"],
    ["exists", "cpx"], ["copy", "cpd", "cpx", "db", "0"], ["copy", "cpd", "cpx", "db", "x"],
    ["copy", "cpd", "cpx", "nope"], ["copy", "cpd"],
]


def compare_with_redis(kport):
    rproc, rport = kioku_proc.start_redis()
    if rproc is None:
        print("skip: no %s to compare with" % REDIS)
        return
    try:
        for proto in (2, 3):
            k, r = Raw(kport), Raw(rport)
            k.cmd("flushall")
            r.cmd("flushall")
            if proto == 3:
                k.cmd("hello", "3")
                r.cmd("hello", "3")
            diffs = 0
            for req in SCRIPT:
                a, b = k.cmd(*req), r.cmd(*req)
                if a != b:
                    diffs += 1
                    print("  RESP%d %r\n    kioku %r\n    redis %r" % (proto, req, a[:300], b[:300]))
            check(diffs == 0, "RESP%d: %d requests answered as redis-server 7 answers them" %
                  (proto, len(SCRIPT)))
            # A hash past 512 fields: the same encoding change, lengths, values.
            for srv in (k, r):
                for i in range(0, 600, 100):
                    args = ["hset", "many"]
                    for j in range(i, i + 100):
                        args += ["f%d" % j, "v%d" % j]
                    srv.cmd(*args)
            same = all(k.cmd(*q) == r.cmd(*q) for q in (
                ["object", "encoding", "many"], ["hlen", "many"], ["hget", "many", "f599"],
                ["hmget", "many", "f0", "f300", "nope"], ["hstrlen", "many", "f123"]))
            check(same, "RESP%d: a 600-field hash is a hashtable with the same answers" % proto)
            k.close()
            r.close()
    finally:
        kioku_proc.stop(rproc)


def test_session_idiom(r):
    sid, user_data = "s1d", {"user": "ann", "role": "admin", "visits": "3", "empty": ""}
    r.hset(f"session:{sid}", mapping=user_data)
    r.expire(f"session:{sid}", 1800)
    got = r.hgetall(f"session:{sid}")
    check(got == {k.encode(): v.encode() for k, v in user_data.items()},
          "session idiom: hgetall returns the mapping hset stored")
    check(1790 <= r.ttl(f"session:{sid}") <= 1800, "session idiom: expire 1800 sets the TTL")
    check(r.type(f"session:{sid}") == b"hash", "session idiom: TYPE is hash")


def test_large_hash_and_scan(r):
    r.delete("big")
    n = 5000
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.hset("big", "field:%d" % i, "value:%d" % (i * 3))
    pipe.execute()
    check(r.hlen("big") == n and r.object("encoding", "big") == b"hashtable",
          "5000 fields: HLEN and the hashtable encoding")
    allf = r.hgetall("big")
    check(len(allf) == n and all(allf[b"field:%d" % i] == b"value:%d" % (i * 3) for i in range(n)),
          "HGETALL returns every field with its value")
    seen, cursor, calls = {}, 0, 0
    while True:
        cursor, page = r.hscan("big", cursor, count=50)
        seen.update(page)
        calls += 1
        if cursor == 0 or calls > 10000:
            break
    check(seen == allf and calls > 10, "HSCAN COUNT 50 returns every field in %d calls" % calls)
    # Growing during the scan: every field present throughout is returned.
    seen, cursor, calls, extra = {}, 0, 0, 0
    while True:
        cursor, page = r.hscan("big", cursor, count=20)
        seen.update(page)
        for _ in range(20):
            r.hset("big", "extra:%d" % extra, "x")
            extra += 1
        calls += 1
        if cursor == 0 or calls > 10000:
            break
    check(all(seen.get(k) == v for k, v in allf.items()),
          "HSCAN while the hash doubles returns every original field")
    m = dict(r.hscan_iter("big", match="field:1?"))
    check(m == {b"field:%d" % i: b"value:%d" % (i * 3) for i in range(10, 20)}, "HSCAN MATCH filters fields")
    # HRANDFIELD: distinct, belonging, repeats with a negative count.
    pick = r.hrandfield("big", 100, withvalues=True)
    pairs = dict(zip(pick[0::2], pick[1::2]))
    check(len(pairs) == 100 and all(r.hget("big", f) == v for f, v in pairs.items()),
          "HRANDFIELD 100 WITHVALUES: 100 distinct fields with their values")
    rep = r.hrandfield("big", -20000)
    check(len(rep) == 20000 and len(set(rep)) < 20000, "HRANDFIELD -20000 repeats fields")
    small = {"a": "1", "b": "2", "c": "3"}
    r.delete("small")
    r.hset("small", mapping=small)
    check(sorted(r.hrandfield("small", 10)) == [b"a", b"b", b"c"], "HRANDFIELD past the size returns all")
    got = {r.hrandfield("small").decode() for _ in range(200)}
    check(got == set(small), "HRANDFIELD without count picks every field over 200 calls")
    fields = list(allf)
    for f in fields:
        r.hdel("big", f)
    r.delete("big")
    check(r.exists("big") == 0, "a hash whose fields are all deleted is gone")


def test_generic_commands(r):
    r.flushall()
    r.hset("h1", "a", "1")
    r.hset("h2", "a", "1")
    r.set("s1", "x")
    keys = set()
    cursor = 0
    for _ in range(100):
        cursor, page = r.scan(cursor, _type="hash")
        keys.update(page)
        if cursor == 0:
            break
    check(keys == {b"h1", b"h2"}, "SCAN TYPE hash returns the hashes only")
    check(set(r.scan_iter(_type="string")) == {b"s1"}, "SCAN TYPE string returns the strings only")
    check(r.dbsize() == 3, "DBSIZE counts hashes")
    info = r.info("keyspace")
    check(info.get("db0", {}).get("keys") == 3, "INFO keyspace counts hashes")
    # 1 s: a stall of a sanitizer build between two requests (150 ms were
    # too few) does not end the hash before EXISTS sees it.
    r.pexpire("h1", 1000)
    check(r.exists("h1") == 1, "a hash with a TTL exists before it passes")
    time.sleep(1.2)
    check(r.exists("h1") == 0 and r.hgetall("h1") == {}, "a hash expires")
    r.expire("h2", 100)
    r.rename("h2", "h3")
    check(r.hgetall("h3") == {b"a": b"1"} and 90 <= r.ttl("h3") <= 100,
          "RENAME keeps a hash's fields and TTL")
    r.hset("h3", "b", "2")
    check(r.hgetall("h3") == {b"a": b"1", b"b": b"2"}, "a renamed hash can grow")
    check(r.delete("h3") == 1 and r.exists("h3") == 0, "DEL removes a hash")


def mc(port, data, expect_end=b"\r\n"):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(data)
    out = b""
    deadline = time.monotonic() + 5
    while not out.endswith(expect_end) and time.monotonic() < deadline:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    return out


def test_memcached_sees_no_hash(r, port):
    r.delete("mh")
    r.hset("mh", mapping={"a": "1", "b": "2"})
    check(mc(port, b"get mh\r\n", b"END\r\n") == b"END\r\n", "memcached get: a hash is a miss")
    check(mc(port, b"append mh 0 0 1\r\nx\r\n") == b"NOT_STORED\r\n", "append to a hash: NOT_STORED")
    check(mc(port, b"incr mh 1\r\n") == b"NOT_FOUND\r\n", "incr on a hash: NOT_FOUND")
    check(mc(port, b"touch mh 10\r\n") == b"NOT_FOUND\r\n", "touch on a hash: NOT_FOUND")
    check(mc(port, b"cas mh 0 0 1 1\r\nx\r\n") == b"NOT_FOUND\r\n", "cas on a hash: NOT_FOUND")
    check(mc(port, b"add mh 0 0 1\r\nx\r\n") == b"NOT_STORED\r\n", "add over a hash: NOT_STORED")
    check(mc(port, b"mg mh v N30\r\n") == b"EN\r\n", "mg N on a hash: a miss, nothing created")
    check(mc(port, b"ma mh N30\r\n") == b"NF\r\n", "ma N on a hash: NF, nothing created")
    check(mc(port, b"ms mh 1 MA N30\r\nx\r\n") == b"NS\r\n", "ms append N on a hash: NS")
    check(r.hgetall("mh") == {b"a": b"1", b"b": b"2"} and r.type("mh") == b"hash",
          "the hash is unchanged after every memcached command")
    check(mc(port, b"set mh 0 0 1\r\ny\r\n") == b"STORED\r\n" and r.get("mh") == b"y",
          "memcached set overwrites a hash with a string")
    r.hset("mh2", "a", "1")
    check(mc(port, b"delete mh2\r\n") == b"DELETED\r\n" and r.exists("mh2") == 0, "memcached delete removes a hash")


def test_concurrent_increments(port):
    clients, per = 16, 300
    r = redis.Redis(port=port, socket_timeout=30)
    r.delete("ctr")
    errors = []

    def work(i):
        c = redis.Redis(port=port, socket_timeout=30)
        try:
            for n in range(per):
                c.hincrby("ctr", "shared", 1)
                c.hincrby("ctr", "mine:%d" % i, 2)
                c.hincrbyfloat("ctr", "half", 0.5)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    h = r.hgetall("ctr")
    check(not errors, "16 clients: no errors %s" % errors[:2])
    check(h.get(b"shared") == str(clients * per).encode(), "16 clients x 300 HINCRBY: exact total %r" %
          h.get(b"shared"))
    check(all(h.get(b"mine:%d" % i) == str(2 * per).encode() for i in range(clients)),
          "each client's own field has its exact total")
    check(float(h.get(b"half", b"0")) == clients * per * 0.5, "HINCRBYFLOAT 0.5 sums exactly")


def test_eviction(args_extra, noevict):
    proc, port = kioku_proc.start(BIN, ["-m", "8"] + args_extra)
    try:
        r = redis.Redis(port=port, socket_timeout=30)
        value = "v" * 200
        made, ooms = 0, 0
        for k in range(3000):
            try:
                r.hset("ev:%d" % k, mapping={"f%d" % j: value for j in range(20)})
                made += 1
            except redis.exceptions.ResponseError as e:
                ooms += 1
                check(str(e).startswith("OOM command not allowed"), "OOM error text: %s" % e)
                break
        alive = r.ping()
        n = r.dbsize()
        if noevict:
            check(ooms == 1 and alive, "-M: HSET answers OOM when -m is full (%d hashes stored)" % made)
            # The hash that was being written is consistent: all or some fields, each whole.
            last = r.hgetall("ev:%d" % made)
            check(all(v == value.encode() for v in last.values()), "the refused hash holds only whole fields")
            check(r.hgetall("ev:0") == {b"f%d" % j: value.encode() for j in range(20)},
                  "-M: the first hash is intact")
            r.delete(*["ev:%d" % k for k in range(made + 1)])
            check(r.dbsize() == 0, "after deleting them all the cache is empty")
            r.hset("again", mapping={"f%d" % j: value for j in range(20)})
            check(r.hlen("again") == 20, "memory freed by DEL is usable again")
        else:
            check(ooms == 0 and alive and n < made, "-m 8: 3000 hashes of 4 KiB stored, older ones evicted "
                  "(%d left)" % n)
            last = r.hgetall("ev:%d" % (made - 1))
            check(len(last) == 20, "the newest hash is whole")
            whole = all(len(r.hgetall("ev:%d" % k)) in (0, 20) for k in range(made - 200, made))
            check(whole, "every hash is either evicted whole or intact")
    finally:
        kioku_proc.stop(proc)


def test_warm_restart():
    import signal
    import tempfile
    d = tempfile.mkdtemp(prefix="kioku-hash-")
    path = os.path.join(d, "mem")
    try:
        proc, port = kioku_proc.start(BIN, ["-m", "64", "-e", path], stderr=subprocess.DEVNULL)
        r = redis.Redis(port=port, socket_timeout=30)
        big = {"f%d" % i: "v%d" % i for i in range(3000)}
        r.hset("small", mapping={"a": "1", "b": "2"})
        r.expire("small", 1000)
        t0 = time.monotonic()
        pipe = r.pipeline(transaction=False)
        for i in range(0, 3000, 300):
            pipe.hset("big", mapping={k: big[k] for k in list(big)[i:i + 300]})
        pipe.execute()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        proc, port = kioku_proc.start(BIN, ["-m", "64", "-e", path], stderr=subprocess.DEVNULL)
        try:
            r = redis.Redis(port=port, socket_timeout=30)
            # The TTL ran on by about the time the restart took (a fixed
            # 10 s was short for a sanitizer build on a busy machine).
            ttl, took = r.ttl("small"), time.monotonic() - t0
            check(r.hgetall("small") == {b"a": b"1", b"b": b"2"} and 1000 - took - 2 <= ttl <= 1000,
                  "warm restart keeps a listpack hash and its TTL (%r after %.1f s)" % (ttl, took))
            got = r.hgetall("big")
            check(len(got) == 3000 and all(got[k.encode()] == v.encode() for k, v in big.items()),
                  "warm restart keeps a 3000-field hashtable hash")
            r.hset("big", "new", "1")
            r.hdel("big", "f0")
            check(r.hlen("big") == 3000 and r.object("encoding", "big") == b"hashtable",
                  "a restored hash can change")
        finally:
            kioku_proc.stop(proc)
    finally:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


def main():
    if not os.access(BIN, os.X_OK):
        print("resp_hash: no server binary at %s" % BIN)
        return 77
    proc, port = kioku_proc.start(BIN, [])
    try:
        r = redis.Redis(port=port, socket_timeout=30)
        test_session_idiom(r)
        compare_with_redis(port)
        r.flushall()
        test_large_hash_and_scan(r)
        test_generic_commands(r)
        test_memcached_sees_no_hash(r, port)
        test_concurrent_increments(port)
        check(r.ping(), "the server answers after all of it")
    finally:
        kioku_proc.stop(proc)
    test_eviction([], False)
    test_eviction(["-M"], True)
    test_warm_restart()
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
