#!/usr/bin/env python3
"""Redis's error statistics, keyspace hits, all-or-nothing multi-field
writes and SHUTDOWN (issue 13) against a real $KIOKU_BIN, over raw RESP:

- INFO errorstats / total_error_replies and commandstats' failed_calls and
  rejected_calls after WRONGTYPE, an unknown command, a wrong arity, NOAUTH,
  EXEC (its calls' errors are theirs), and Lua (an error a redis.call met
  counts once; redis.error_reply counts under its own word), byte for byte
  as redis-server 7 answers when /usr/bin/redis-server is installed, and
  CONFIG RESETSTAT empties them;
- INFO keyspace_hits / keyspace_misses move for HGET, ZSCORE and the other
  hash and sorted-set reads, EXISTS, TYPE, TTL, TOUCH, OBJECT, GETEX,
  GETDEL, GETSET and SET GET exactly as in redis-server (a read of a key of
  another type is a hit; writes and key walks count nothing);
- under -m 8 -M (no eviction), an HSET / HMSET / ZADD of many fields that
  runs out of memory answers -OOM and changes nothing, on an existing key
  and on a new one, while memory for a few fields was there;
- RESP SHUTDOWN and memcached's shutdown are refused without -A (the server
  stays up); with -A, SHUTDOWN closes the connection without a reply and
  the server exits 0, SAVE writes the -e warm-restart file, NOSAVE does
  not, SAVE without -e fails unless FORCE; ABORT, bad options, MULTI;
  under a busy script SHUTDOWN is -BUSY and SHUTDOWN NOSAVE still stops it
  (-t 1 and -t 2).

Every server listens on 127.0.0.1, on free ports, and is stopped by PID;
every loop is bounded. Exit: 0 pass, 1 fail.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402

BIN = os.environ.get("KIOKU_BIN") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "..", "src", "kioku")
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


class Raw(kioku_proc.RespRaw):
    """kioku_proc's exact-bytes client, plus INFO and a silent close."""

    def info(self, section):
        body = self.cmd("INFO", section).split(b"\r\n", 1)[1]
        return body.decode()

    def closed_without_reply(self):
        """True when the server closes the connection and sends nothing."""
        self.s.settimeout(10)
        try:
            return self.s.recv(1) == b"" and self.buf == b""
        except (ConnectionResetError, socket.timeout):
            return False


def stat(text, name):
    m = re.search(r"^%s:(\S+)\r?$" % re.escape(name), text, re.M)
    return m.group(1) if m else None


def errorstats(r):
    """The Errorstats lines, in order."""
    return [l for l in r.info("errorstats").splitlines() if l.startswith("errorstat_")]


def cmdstat(r, name):
    """calls, rejected_calls, failed_calls of one command (0s when absent)."""
    line = stat(r.info("commandstats"), "cmdstat_" + name) or ""
    get = lambda k: int((re.search(k + r"=(\d+)", line) or [0, 0])[1])  # noqa: E731
    return get("calls"), get("rejected_calls"), get("failed_calls")


# Requests after which INFO errorstats, total_error_replies and the
# commandstats of the commands named must read as redis-server's.
ERROR_SCRIPT = [
    ["SET", "s", "1"],
    ["HGET", "s", "f"],                    # WRONGTYPE
    ["ZSCORE", "s", "m"],                  # WRONGTYPE
    ["NOSUCH", "a"],                       # unknown command
    ["GET"],                               # arity: rejected
    ["EVALSHA", "f" * 40, "0"],            # NOSCRIPT
    ["EVAL", "return redis.error_reply('MY_ERR_CODE custom msg')", "0"],
    ["EVAL", "return redis.error_reply('')", "0"],
    ["EVAL", "return redis.call('hget', 's', 'f')", "0"],   # counted once, WRONGTYPE
    ["EVAL", "return redis.pcall('hget', 's', 'f')", "0"],  # the same
    ["EVAL", "local t = redis.pcall('select', 99) return 1", "0"],
    ["EVAL", "return redis.call('nosuch')", "0"],            # refused in the script: ERR
    ["EVAL", "return foo", "0"],
    ["EVAL", "return redis.error_reply('A:B#c x')", "0"],   # ':' and '#' read as '_'
    ["MULTI"], ["SET", "a", "b"], ["AUTH", "a"], ["EXEC"],  # AUTH failed, not EXEC
    ["EXEC"],                                               # EXEC failed
    ["MULTI"], ["SET"], ["EXEC"],                           # SET rejected, EXECABORT
]
CMDSTATS = ["get", "set", "hget", "zscore", "evalsha", "eval", "select", "auth", "exec", "multi"]


def run_error_script(port):
    r = Raw(port)
    r.cmd("FLUSHALL")
    r.cmd("CONFIG", "RESETSTAT")
    replies = [r.cmd(*c) for c in ERROR_SCRIPT]
    out = {"replies": replies, "errorstats": errorstats(r),
           "total": stat(r.info("stats"), "total_error_replies"),
           "cmdstats": {n: cmdstat(r, n) for n in CMDSTATS}}
    r.cmd("CONFIG", "RESETSTAT")
    out["after_reset"] = (errorstats(r), stat(r.info("stats"), "total_error_replies"))
    r.close()
    return out


def test_errorstats(port, rport):
    k = run_error_script(port)
    check(k["total"] == "17", "total_error_replies counts every error reply once (%s)" % k["total"])
    check("errorstat_WRONGTYPE:count=4" in k["errorstats"],
          "WRONGTYPE from HGET, ZSCORE and two scripts' redis.call/pcall, counted once each")
    check("errorstat_ERR:count=9" in k["errorstats"], "ERR: unknown command, 2 arities, AUTH, EXEC, "
          "4 script errors (%s)" % k["errorstats"])
    check("errorstat_EXECABORT:count=1" in k["errorstats"], "EXECABORT")
    check("errorstat_MY_ERR_CODE:count=1" in k["errorstats"], "redis.error_reply's own word")
    check("errorstat_A_B_c:count=1" in k["errorstats"], "unsafe characters of a word read as '_'")
    check(k["errorstats"] == sorted(k["errorstats"]), "errorstats in byte order")
    check(k["cmdstats"]["get"] == (0, 1, 0), "GET with a wrong arity: rejected_calls=1, calls=0")
    check(k["cmdstats"]["auth"] == (1, 0, 1), "AUTH inside EXEC: failed_calls=1")
    check(k["cmdstats"]["exec"] == (3, 0, 2), "EXEC: failed only for its own errors "
          "(EXEC without MULTI, EXECABORT): %s" % (k["cmdstats"]["exec"],))
    check(k["cmdstats"]["hget"] == (3, 0, 3), "HGET on a string: failed_calls, from scripts too")
    check(k["cmdstats"]["set"][1] == 1, "SET with no arguments inside MULTI: rejected_calls=1")
    check(k["after_reset"] == ([], "0"), "CONFIG RESETSTAT empties errorstats and the total")
    if rport is None:
        print("skip: redis-server not installed, no byte comparison")
        return
    rd = run_error_script(rport)
    for i, (a, b) in enumerate(zip(k["replies"], rd["replies"])):
        check(a == b, "reply to %s as redis-server's: %r" % (ERROR_SCRIPT[i], a))
    check(k["errorstats"] == rd["errorstats"], "INFO errorstats as redis-server's: %s" % k["errorstats"])
    check(k["total"] == rd["total"], "total_error_replies as redis-server's")
    for n in CMDSTATS:
        check(k["cmdstats"][n] == rd["cmdstats"][n], "cmdstat_%s calls/rejected/failed as "
              "redis-server's: %s" % (n, k["cmdstats"][n]))
    check(k["after_reset"] == rd["after_reset"], "after CONFIG RESETSTAT as redis-server")


def test_noauth_counts(port_args):
    proc, port = kioku_proc.start(BIN, port_args + ["--requirepass", "pw"])
    try:
        r = Raw(port)
        check(r.cmd("GET", "k").startswith(b"-NOAUTH"), "GET before AUTH: NOAUTH")
        r.cmd("AUTH", "pw")
        check("errorstat_NOAUTH:count=1" in errorstats(r), "NOAUTH counted in errorstats")
        check(cmdstat(r, "get") == (0, 1, 0), "GET refused by NOAUTH: rejected_calls=1")
        r.close()
    finally:
        kioku_proc.stop(proc)


# Reads and writes, each followed by INFO keyspace_hits/misses: the
# movements must be redis-server's.
KEYSPACE_SCRIPT = [
    ["HGET", "h", "f"], ["HGET", "nh", "f"], ["HGET", "s", "f"], ["HMGET", "h", "f", "g"],
    ["HGETALL", "h"], ["HKEYS", "nh"], ["HVALS", "h"], ["HEXISTS", "h", "f"],
    ["HSTRLEN", "h", "f"], ["HLEN", "h"], ["HRANDFIELD", "h"], ["HSCAN", "h", "0"],
    ["HINCRBY", "h", "n", "1"], ["HDEL", "h", "zz"], ["HSETNX", "h", "a", "b"],
    ["ZSCORE", "z", "a"], ["ZSCORE", "nz", "a"], ["ZSCORE", "s", "a"], ["ZMSCORE", "z", "a"],
    ["ZCARD", "z"], ["ZRANK", "z", "a"], ["ZREVRANK", "z", "a"], ["ZCOUNT", "z", "0", "1"],
    ["ZLEXCOUNT", "z", "-", "+"], ["ZRANGE", "z", "0", "-1"], ["ZREVRANGE", "z", "0", "-1"],
    ["ZRANGEBYSCORE", "z", "0", "1"], ["ZRANGEBYLEX", "z", "-", "+"], ["ZRANDMEMBER", "z"],
    ["ZSCAN", "z", "0"], ["ZINCRBY", "z", "1", "a"], ["ZREM", "z", "q"], ["ZPOPMIN", "nz"],
    ["GET", "s"], ["GET", "h"],
    ["EXISTS", "s", "nx", "h"], ["TYPE", "s"], ["TYPE", "nx"], ["TTL", "s"], ["PTTL", "nx"],
    ["EXPIRETIME", "s"], ["STRLEN", "s"], ["GETRANGE", "s", "0", "1"], ["MGET", "s", "nx"],
    ["TOUCH", "s", "nx"], ["OBJECT", "ENCODING", "s"], ["GETEX", "s"], ["GETDEL", "nx"],
    ["GETSET", "s", "v"], ["SET", "s", "v", "GET"], ["SET", "n2", "v", "NX", "GET"],
    ["APPEND", "s", "x"], ["INCR", "nx2"], ["EXPIRE", "s", "100"], ["PERSIST", "s"],
    ["DEL", "nx"], ["SCAN", "0"], ["KEYS", "*"], ["RANDOMKEY"], ["MEMORY", "USAGE", "s"],
]


def keyspace_moves(port):
    r = Raw(port)
    r.cmd("FLUSHALL")
    r.cmd("HSET", "h", "f", "v")
    r.cmd("ZADD", "z", "1", "a")
    r.cmd("SET", "s", "v")
    r.cmd("CONFIG", "RESETSTAT")
    moves = []
    for c in KEYSPACE_SCRIPT:
        r.cmd(*c)
        t = r.info("stats")
        moves.append((int(stat(t, "keyspace_hits")), int(stat(t, "keyspace_misses"))))
    r.close()
    return moves


def test_keyspace(port, rport):
    k = keyspace_moves(port)
    check(k[0] == (1, 0) and k[1] == (1, 1), "HGET: a hit, then a miss on an absent key")
    check(k[2] == (2, 1), "HGET on a string key is a hit (then WRONGTYPE), as in Redis")
    i = KEYSPACE_SCRIPT.index(["ZSCORE", "z", "a"])
    check(k[i][0] == k[i - 1][0] + 1, "ZSCORE of an existing set is a hit")
    check(k[i + 1][1] == k[i][1] + 1, "ZSCORE of an absent key is a miss")
    w = KEYSPACE_SCRIPT.index(["HINCRBY", "h", "n", "1"])
    check(k[w] == k[w - 1], "a write (HINCRBY) counts neither")
    if rport is None:
        return
    rd = keyspace_moves(rport)
    for i, c in enumerate(KEYSPACE_SCRIPT):
        check(k[i] == rd[i], "keyspace hits/misses after %s as redis-server's: %s" % (c, k[i]))


def test_oom_atomic():
    proc, port = kioku_proc.start(BIN, ["-m", "8", "-M"])
    try:
        r = Raw(port)
        r.cmd("HSET", "h", "a", "1", "b", "2")
        r.cmd("ZADD", "z", "1", "a", "2", "b")
        before_h, before_z = r.cmd("HGETALL", "h"), r.cmd("ZRANGE", "z", "0", "-1", "WITHSCORES")
        value = b"x" * 1000
        filled = 0
        for k in range(20000):
            if r.cmd("SET", "fill:%d" % k, value) != b"+OK\r\n":
                break
            filled += 1
        check(0 < filled < 20000, "-m 8 -M: SET fills memory, then answers an error (%d)" % filled)
        # Room for a few 900-byte fields, not for 40.
        r.cmd("DEL", "fill:0", "fill:1", "fill:2")
        args = []
        for j in range(40):
            args += ["f%d" % j, b"y" * 900]
        oom = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
        check(r.cmd("HSET", "h", "a", "changed", *args) == oom, "HSET of 41 fields: -OOM")
        check(r.cmd("HLEN", "h") == b":2\r\n" and
              sorted(r.cmd("HGETALL", "h").split(b"\r\n")) == sorted(before_h.split(b"\r\n")),
              "the hash is as before: no field set, 'a' keeps its value")
        check(r.cmd("HMSET", "h", *args) == oom, "HMSET of 40 fields: -OOM")
        check(r.cmd("HLEN", "h") == b":2\r\n", "the hash still has its 2 fields")
        check(r.cmd("HSET", "newh", *args) == oom and r.cmd("EXISTS", "newh") == b":0\r\n",
              "HSET of 40 fields on a new key: -OOM and no key")
        zargs = ["5", "a"]
        for j in range(40):
            zargs += [str(j), b"m%d" % j + b"q" * 900]
        check(r.cmd("ZADD", "z", *zargs) == oom, "ZADD of 41 members: -OOM")
        check(r.cmd("ZRANGE", "z", "0", "-1", "WITHSCORES") == before_z,
              "the sorted set is as before: no member added, 'a' keeps its score")
        check(r.cmd("ZADD", "newz", *zargs) == oom and r.cmd("EXISTS", "newz") == b":0\r\n",
              "ZADD of 41 members on a new key: -OOM and no key")
        # The memory was there for part of the command: one field still fits.
        check(r.cmd("HSET", "h", "f0", b"y" * 900) == b":1\r\n",
              "one 900-byte field fits: the refused command was taken back, not refused whole")
        check(r.cmd("PING") == b"+PONG\r\n", "the server answers after the refusals")
        r.close()
    finally:
        kioku_proc.stop(proc)


def stopped(proc, timeout=10):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def test_shutdown_refused():
    proc, port = kioku_proc.start(BIN, ["-m", "16"])
    try:
        r = Raw(port)
        check(r.cmd("SHUTDOWN") ==
              b"-ERR SHUTDOWN is disabled on this server (kioku -A enables it)\r\n",
              "SHUTDOWN without -A: a clear error")
        check(r.cmd("SHUTDOWN", "NOSAVE", "NOW", "FORCE").startswith(b"-ERR SHUTDOWN is disabled"),
              "SHUTDOWN NOSAVE NOW FORCE without -A: the same error")
        check(r.cmd("PING") == b"+PONG\r\n", "the connection carries on")
        r.close()
        s = kioku_proc.connect(port)
        s.sendall(b"shutdown\r\n")
        check(kioku_proc.recv_until(s, b"\r\n") == b"SERVER_ERROR: shutdown not enabled\r\n",
              "memcached shutdown without -A: memcached's error")
        s.close()
        check(proc.poll() is None, "the server is still running")
    finally:
        kioku_proc.stop(proc)


def test_shutdown_options(rport):
    proc, port = kioku_proc.start(BIN, ["-m", "16", "-A"])
    try:
        r = Raw(port)
        cases = [["SHUTDOWN", "foo"], ["SHUTDOWN", "ABORT"], ["SHUTDOWN", "abort", "now"],
                 ["SHUTDOWN", "SAVE", "NOSAVE"], ["SHUTDOWN", "abort", "abort"]]
        mine = [r.cmd(*c) for c in cases]
        check(mine[0] == b"-ERR syntax error\r\n" and mine[1] == b"-ERR No shutdown in progress.\r\n",
              "SHUTDOWN: bad option, ABORT with nothing to abort")
        check(r.cmd("MULTI") == b"+OK\r\n" and
              r.cmd("SHUTDOWN") == b"-ERR Command not allowed inside a transaction\r\n" and
              r.cmd("EXEC").startswith(b"-EXECABORT"), "SHUTDOWN inside MULTI is refused")
        check(r.cmd("EVAL", "return redis.call('shutdown')", "0").startswith(
              b"-ERR This Redis command is not allowed from script"), "SHUTDOWN from a script refused")
        check(r.cmd("SHUTDOWN", "SAVE") == b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n",
              "SHUTDOWN SAVE without -e: nothing to save to, Redis's failed-save error")
        check(proc.poll() is None, "the server is still running after the refusals")
        if rport is not None:
            rr = Raw(rport)
            theirs = [rr.cmd(*c) for c in cases]
            rr.close()
            check(mine == theirs, "SHUTDOWN's option errors as redis-server's: %s" % mine)
        r.send("SHUTDOWN", "SAVE", "FORCE")
        check(r.closed_without_reply(), "SHUTDOWN SAVE FORCE: connection closed, no reply")
        check(stopped(proc) == 0, "the server exits 0")
    finally:
        if proc.poll() is None:
            kioku_proc.stop(proc)


def test_shutdown_save():
    d = tempfile.mkdtemp(prefix="kioku-shutdown-")
    path = os.path.join(d, "mem")
    try:
        for words, saved in ((["SHUTDOWN", "SAVE"], True), (["SHUTDOWN", "NOSAVE"], False),
                             (["shutdown"], True)):
            for f in os.listdir(d):
                os.unlink(os.path.join(d, f))
            proc, port = kioku_proc.start(BIN, ["-m", "16", "-A", "-e", path],
                                          stderr=subprocess.DEVNULL)
            try:
                r = Raw(port)
                r.cmd("SET", "k", "v")
                r.cmd("HSET", "h", "f", "v")
                r.send(*words)
                check(r.closed_without_reply(), "%s: the connection closes without a reply" % words)
                check(stopped(proc) == 0, "%s: exit status 0" % words)
                check(os.path.exists(path + ".meta") == saved,
                      "%s: the -e warm-restart file %s" % (words, "written" if saved else "not written"))
            finally:
                if proc.poll() is None:
                    kioku_proc.stop(proc)
        # What SHUTDOWN SAVE wrote comes back.
        proc, port = kioku_proc.start(BIN, ["-m", "16", "-A", "-e", path], stderr=subprocess.DEVNULL)
        try:
            r = Raw(port)
            r.cmd("SET", "k", "kept")
            r.send("SHUTDOWN", "SAVE")
            r.closed_without_reply()
            stopped(proc)
        finally:
            if proc.poll() is None:
                kioku_proc.stop(proc)
        proc, port = kioku_proc.start(BIN, ["-m", "16", "-e", path], stderr=subprocess.DEVNULL)
        try:
            r = Raw(port)
            check(r.cmd("GET", "k") == b"$4\r\nkept\r\n", "a warm restart after SHUTDOWN SAVE keeps the key")
            r.close()
        finally:
            kioku_proc.stop(proc)
        # memcached's shutdown with -A.
        proc, port = kioku_proc.start(BIN, ["-m", "16", "-A"])
        try:
            s = kioku_proc.connect(port)
            s.sendall(b"shutdown graceful\r\n")
            check(kioku_proc.recv_until(s, b"\r\n") == b"", "memcached shutdown graceful: closed, no reply")
            check(stopped(proc) == 0, "memcached shutdown graceful: exit status 0")
        finally:
            if proc.poll() is None:
                kioku_proc.stop(proc)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_shutdown_nosave_busy_script(threads):
    proc, port = kioku_proc.start(BIN, ["-m", "16", "-A", "-t", str(threads)], stderr=subprocess.DEVNULL)
    try:
        a, b = Raw(port), Raw(port)
        b.cmd("CONFIG", "SET", "busy-reply-threshold", "100")
        a.send("EVAL", "while true do end", "0")
        busy = b""
        for _ in range(100):   # at most 10 s for the script to turn busy
            busy = b.cmd("PING")
            if busy.startswith(b"-BUSY"):
                break
            time.sleep(0.1)
        check(busy.startswith(b"-BUSY"), "-t %d: a script past the threshold makes PING -BUSY" % threads)
        check(b.cmd("SHUTDOWN").startswith(b"-BUSY"), "-t %d: SHUTDOWN under a busy script: -BUSY" % threads)
        b.send("SHUTDOWN", "NOSAVE")
        check(b.closed_without_reply(), "-t %d: SHUTDOWN NOSAVE closes the connection" % threads)
        check(stopped(proc) == 0, "-t %d: SHUTDOWN NOSAVE stops the server under a busy script, "
              "exit 0" % threads)
    finally:
        if proc.poll() is None:
            kioku_proc.stop(proc)


def parse_reply(data, i=0):
    """(value, next index) of one RESP2/RESP3 reply in data: lists for
    arrays, sets and maps, str for strings, int, None."""
    j = data.index(b"\r\n", i)
    t, body = data[i:i + 1], data[i + 1:j]
    if t in (b"+", b"-"):
        return body.decode(), j + 2
    if t == b":":
        return int(body), j + 2
    if t == b"$":
        n = int(body)
        return (None, j + 2) if n < 0 else (data[j + 2:j + 2 + n].decode(), j + 4 + n)
    n = int(body) * (2 if t == b"%" else 1)
    if n < 0:
        return None, j + 2
    out, k = [], j + 2
    for _ in range(n):
        v, k = parse_reply(data, k)
        out.append(v)
    return out, k


# Redis 7.2 added ZRANK/ZREVRANK's WITHSCORE, which kioku takes: arity -3.
COMMAND_INFO_DIFFERENT = {("zrank", "arity"), ("zrevrank", "arity")}


def test_command_info(port, rport):
    """COMMAND INFO's arity, flags (in Redis's order), key positions and ACL
    categories of every command kioku has, as redis-server 7 gives them.
    Key specs, tips and subcommands are Redis 7's own additions: kioku's
    are empty."""
    r = Raw(port)
    names = sorted(row[0] for row in parse_reply(r.cmd("COMMAND"))[0])
    want = {
        "get": [2, ["readonly", "fast"], 1, 1, 1, ["@read", "@string", "@fast"]],
        "zunionstore": [-4, ["write", "denyoom", "movablekeys"], 1, 1, 1,
                        ["@write", "@sortedset", "@slow"]],
        "zunion": [-3, ["readonly", "movablekeys"], 0, 0, 0, ["@read", "@sortedset", "@slow"]],
        "config": [-2, [], 0, 0, 0, ["@slow"]],
        "flushall": [-1, ["write"], 0, 0, 0, ["@keyspace", "@write", "@slow", "@dangerous"]],
        "auth": [-2, ["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0,
                 ["@fast", "@connection"]],
    }
    for name, row in want.items():
        got = parse_reply(r.cmd("COMMAND", "INFO", name))[0][0]
        check(got[1:7] == row, "COMMAND INFO %s: %r" % (name, got[1:7]))
    if rport is None:
        print("redis-server not installed: COMMAND INFO not compared with it")
        r.close()
        return
    rr = Raw(rport)
    fields = ["arity", "flags", "first key", "last key", "key step", "ACL categories"]
    differ = []
    for name in names:
        got = parse_reply(r.cmd("COMMAND", "INFO", name))[0][0]
        ref = parse_reply(rr.cmd("COMMAND", "INFO", name))[0][0]
        if ref is None:
            differ.append("%s: redis-server has no such command" % name)
            continue
        for k, field in enumerate(fields, 1):
            if got[k] != ref[k] and (name, field.split()[0]) not in COMMAND_INFO_DIFFERENT:
                differ.append("%s %s: kioku %r, redis %r" % (name, field, got[k], ref[k]))
        # A container's subcommands: kioku lists those it runs, each as Redis
        # gives it.
        ref_subs = {row[0]: row for row in ref[9]}
        if ref[9] and not got[9]:
            differ.append("%s: no subcommands listed" % name)
        for sub in got[9]:
            rsub = ref_subs.get(sub[0])
            if rsub is None or sub[1:7] != rsub[1:7]:
                differ.append("%s: kioku %r, redis %r" % (sub[0], sub[1:7], rsub and rsub[1:7]))
    check(not differ, "COMMAND INFO of all %d commands as redis-server's%s" %
          (len(names), "".join("\n    " + d for d in differ)))
    # A subcommand by its full name; COMMAND LIST and its filters.
    for args in (["INFO", "config|get"], ["INFO", "object|freq", "get|key", "config|get|key"],
                 ["LIST", "FILTERBY", "ACLCAT", "nosuch"], ["LIST", "FILTERBY", "PATTERN", "config|*re*"],
                 ["LIST", "FILTERBY", "PATTERN", "set"], ["LIST", "FILTERBY", "MODULE", "x"],
                 ["LIST", "bad"], ["LIST", "FILTERBY", "bad", "x"], ["LIST", "FILTERBY", "PATTERN"]):
        got, ref = parse_reply(r.cmd("COMMAND", *args))[0], parse_reply(rr.cmd("COMMAND", *args))[0]
        if args[0] == "INFO":   # key specs and tips are Redis's own
            got = [x and x[:7] for x in got]
            ref = [x and x[:7] for x in ref]
        elif isinstance(got, list) and isinstance(ref, list):   # Redis's in its dict's order
            got, ref = sorted(got), sorted(ref)
        check(got == ref, "COMMAND %s: %r (redis %r)" % (" ".join(args), got, ref))
    mine = set(parse_reply(r.cmd("COMMAND", "LIST"))[0])
    theirs = set(parse_reply(rr.cmd("COMMAND", "LIST"))[0])
    check("client|list" in mine and "config|get" in mine and not mine - theirs,
          "COMMAND LIST: commands and subcommands, all known to Redis (%r)" % sorted(mine - theirs))
    for cat in ("scripting", "keyspace", "sortedset", "dangerous", "fast"):
        got = set(parse_reply(r.cmd("COMMAND", "LIST", "FILTERBY", "ACLCAT", cat))[0])
        ref = set(parse_reply(rr.cmd("COMMAND", "LIST", "FILTERBY", "ACLCAT", cat))[0]) & mine
        check(got == ref, "COMMAND LIST FILTERBY ACLCAT %s: as redis-server's, for kioku's commands "
              "(only kioku %r, only redis %r)" % (cat, sorted(got - ref), sorted(ref - got)))
    # COMMAND GETKEYS, movable keys found through numkeys as Redis finds them.
    for args in (["zunion", "2", "a", "b", "withscores"], ["zunionstore", "d", "2", "a", "b", "weights", "1", "2"],
                 ["zinterstore", "d", "-1", "a"], ["zdiffstore", "d", "1", "a"], ["zunion", "x", "a"],
                 ["zunion", "3", "a"], ["zunion", "0", "a"], ["zintercard", "2", "a", "b", "limit", "3"],
                 ["zmpop", "2", "a", "b", "min", "count", "1"], ["eval", "x", "2", "k1", "k2", "a1"],
                 ["eval", "x", "0"], ["evalsha_ro", "x", "1", "k"], ["mset", "a", "1", "b", "2"],
                 ["get"], ["ping"], ["object", "encoding", "k"], ["nosuch", "a"]):
        got, ref = r.cmd("COMMAND", "GETKEYS", *args), rr.cmd("COMMAND", "GETKEYS", *args)
        check(got == ref, "COMMAND GETKEYS %s: %r (redis %r)" % (" ".join(args), got, ref))
    r.close()
    rr.close()


def closed_soon(sock, timeout=10):
    """True when the server closes sock (EOF) within timeout seconds."""
    sock.settimeout(timeout)
    try:
        while True:
            if sock.recv(4096) == b"":
                return True
    except (ConnectionResetError, socket.timeout):
        return False


def client_id(r):
    return int(r.cmd("CLIENT", "ID")[1:-2])


def test_client_kill(port):
    """CLIENT KILL: by ID, by address (the old form), LADDR, a memcached
    connection too, SKIPME; the caller itself closes after its reply."""
    a, b, c = Raw(port), Raw(port), Raw(port)
    m = socket.create_connection(("127.0.0.1", port))
    m.sendall(b"version\r\n")
    m.recv(100)
    bid = client_id(b)
    check(a.cmd("CLIENT", "KILL", "ID", str(bid)) == b":1\r\n", "CLIENT KILL ID of another client: 1")
    check(closed_soon(b.s), "the killed client's connection closes")
    check(a.cmd("PING") == b"+PONG\r\n", "the caller goes on")
    line = [l for l in a.cmd("CLIENT", "LIST").decode().split("\n") if ("id=%d " % client_id(c)) in l][0]
    caddr = re.search(r"addr=(\S+)", line).group(1)
    check(a.cmd("CLIENT", "KILL", caddr) == b"+OK\r\n", "CLIENT KILL ip:port (old form): OK")
    check(closed_soon(c.s), "the client at that address closes")
    check(a.cmd("CLIENT", "KILL", caddr) == b"-ERR No such client\r\n", "no client there any more")
    laddr = "127.0.0.1:%d" % port
    n = a.cmd("CLIENT", "KILL", "LADDR", laddr, "SKIPME", "yes")
    check(n == b":1\r\n", "CLIENT KILL LADDR: the memcached connection, not the caller: %r" % n)
    check(closed_soon(m), "a memcached-protocol connection is killed too")
    check(a.cmd("CLIENT", "KILL", "ID", str(client_id(a)), "SKIPME", "no") == b":1\r\n",
          "CLIENT KILL of the caller itself answers first")
    check(closed_soon(a.s), "then the caller's connection closes")
    d = Raw(port)
    check(d.cmd("PING") == b"+PONG\r\n", "the server still serves new clients")
    for x in (a, b, c, d):
        x.close()
    m.close()


MONITOR_SCRIPT = [
    ["SET", "foo", 'bar baz"q'], ["GET", "foo"], ["GET", "a\x01\n\\"], ["AUTH", "secret"],
    ["HELLO", "2", "AUTH", "default", "pw"], ["EVAL", "return redis.call('get', 'foo')", "0"],
    ["CONFIG", "GET", "maxmemory"], ["MULTI"], ["SET", "k", "1"], ["EXEC"], ["NOSUCH"],
    ["GET"], ["PING"],
]


def enc(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


# CLIENT REPLY: what is answered of this, byte for byte as redis-server 7.
REPLY_SCRIPT = [
    enc(b"SET", b"big", b"x" * 100000),
    enc(b"CLIENT", b"REPLY", b"OFF"),
    enc(b"SET", b"a", b"1"), enc(b"GET", b"big"), enc(b"GET", b"a"), enc(b"NOPE"),
    enc(b"MULTI"), enc(b"SET", b"b", b"2"), enc(b"EXEC"),
    enc(b"CLIENT", b"REPLY", b"ON"),
    enc(b"GET", b"b"),
    enc(b"CLIENT", b"REPLY", b"SKIP"),
    enc(b"GET", b"big"),
    enc(b"PING"),
    enc(b"CLIENT", b"REPLY", b"bad"),
    enc(b"CLIENT", b"REPLY"),
    enc(b"ECHO", b"done"),
]
REPLY_WANT = (b"+OK\r\n+OK\r\n$1\r\n2\r\n+PONG\r\n-ERR syntax error\r\n"
              b"-ERR wrong number of arguments for 'client|reply' command\r\n$4\r\ndone\r\n")


def client_reply_bytes(port, gap):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if gap:
        for req in REPLY_SCRIPT:
            s.sendall(req)
            time.sleep(gap)
    else:
        s.sendall(b"".join(REPLY_SCRIPT))
    got = kioku_proc.recv_until(s, b"$4\r\ndone\r\n")
    s.close()
    return got


def test_client_reply(port, rport):
    """OFF drops every reply (a value sent from its item, an error, a
    transaction's), ON is answered, SKIP drops the next one only; sent in
    one piece (parsed ahead) and one request at a time."""
    for gap in (0, 0.02):
        got = client_reply_bytes(port, gap)
        check(got == REPLY_WANT, "CLIENT REPLY (gap %s): %r" % (gap, got[:200]))
    if rport is not None:
        check(client_reply_bytes(rport, 0) == REPLY_WANT, "redis-server answers the script so too")
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(enc(b"GET", b"big"))
    check(kioku_proc.recv_until(s, b"\r\n" + b"x" * 100000 + b"\r\n").endswith(b"x" * 100000 + b"\r\n"),
          "the value dropped under OFF is still served")
    s.close()


def monitor_lines(port):
    """What a MONITOR client sees of MONITOR_SCRIPT, time and port cut."""
    mon = Raw(port)
    first = mon.cmd("MONITOR")
    r = Raw(port)
    for args in MONITOR_SCRIPT:
        r.cmd(*args)
    lines = []
    mon.s.settimeout(10)
    while len(lines) < 11:
        line = mon._line()[:-2]
        line = re.sub(rb"^\+\d+\.\d{6} \[0 127\.0\.0\.1:\d+\]", b"+T [0 client]", line)
        lines.append(re.sub(rb"^\+\d+\.\d{6} \[0 lua\]", b"+T [0 lua]", line))
    r.close()
    mon.close()
    return first, lines


def test_monitor(port, rport):
    """MONITOR: every request once it ran (a script before its calls, which
    show as [0 lua]), quoted and redacted as Redis does; admin commands and
    refused ones are not shown."""
    first, lines = monitor_lines(port)
    check(first == b"+OK\r\n", "MONITOR: +OK")
    check(lines[0] == b'+T [0 client] "SET" "foo" "bar baz\\"q"',
          "MONITOR shows a request, quoted: %r" % lines[0])
    check(any(l == b'+T [0 client] "AUTH" "(redacted)"' for l in lines), "AUTH's password redacted")
    check(any(l.startswith(b"+") and b'[0 lua] "get" "foo"' in l for l in lines), "a script's call as [0 lua]")
    check(not any(b'"CONFIG"' in l or b'"NOSUCH"' in l for l in lines),
          "CONFIG (admin) and unknown commands are not shown")
    if rport is not None:
        _, ref = monitor_lines(rport)
        check(lines == ref, "MONITOR's lines as redis-server's:\n  %r\n  %r" % (lines, ref))


def main():
    proc, port = kioku_proc.start(BIN, ["-m", "64"])
    rproc, rport = kioku_proc.start_redis()
    try:
        test_errorstats(port, rport)
        test_keyspace(port, rport)
        test_command_info(port, rport)
        test_client_kill(port)
        test_client_reply(port, rport)
        test_monitor(port, rport)
        test_shutdown_options(rport)
    finally:
        kioku_proc.stop(proc)
        if rproc is not None:
            kioku_proc.stop(rproc)
    test_noauth_counts(["-m", "16"])
    test_oom_atomic()
    test_shutdown_refused()
    test_shutdown_save()
    test_shutdown_nosave_busy_script(2)
    test_shutdown_nosave_busy_script(1)
    if failures:
        print("%d FAILED:" % len(failures))
        for f in failures:
            print("  " + f)
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
