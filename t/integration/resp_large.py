#!/usr/bin/env python3
"""Large RESP values (issue 11): values of 1 to 64 MiB over redis-py,
read straight into their items, up to proto-max-bulk-len.

- SET/GET of 1 MiB+7, 4 MiB+1, 16 MiB and 64 MiB (-m 512) come back byte
  for byte (a pattern, not one repeated byte), and so do SETEX, PSETEX,
  SETNX, GETSET, SET ... GET, SET ... EX, with their TTLs and conditions;
- APPEND, GETRANGE, SETRANGE and STRLEN on large values;
- two clients pipelining large SETs and GETs while a third runs small
  requests: nothing mixed up;
- CONFIG SET proto-max-bulk-len: a bulk just over it gets redis-server
  7's "-ERR Protocol error: invalid bulk length" and that connection
  closes, others are served; just at it is stored; APPEND and SETRANGE
  past it get "string exceeds maximum allowed size"; bad values get
  Redis's CONFIG SET errors; -o proto_max_bulk_len sets it at start;
- a value over half of -m gets Redis's OOM error, the connection goes on
  and the cache is not emptied for it; a refused value (syntax, arity)
  is skipped and the connection goes on;
- GET of a 64 MiB value passes the default 64 MiB output limit, and a
  GETRANGE of 2 MiB a 1 MiB one; a large SET inside MULTI, ECHO of 512
  KiB and MSET of a 1 MiB value (buffered: they are not streamed), MSET
  of 5 MiB "too big request"; a client that leaves mid-value;
- before AUTH (--requirepass) Redis 7's limits: 10 arguments, 16 KiB
  bulks, with its "unauthenticated" errors;
- memcached `get` returns a value set over RESP (one item store).

Every server is started here on free loopback ports and stopped by PID;
every loop is bounded in count and time.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN or redis-py.
"""
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402

redis = kioku_proc.import_redis("resp_large")

BIN = os.environ.get("KIOKU_BIN")
MiB = 1024 * 1024
FAILS = []
BULK_ERR = b"-ERR Protocol error: invalid bulk length\r\n"
TOO_BIG = "string exceeds maximum allowed size (proto-max-bulk-len)"
OOM = "command not allowed when used memory > 'maxmemory'."


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


def pattern(n, seed=0):
    """n bytes that differ at every offset mod 251 and per seed."""
    block = bytes((i * 7 + seed * 13 + 1) % 251 for i in range(251 * 64))
    reps = n // len(block) + 1
    return (block * reps)[:n]


class Server:
    def __init__(self, args):
        self.resp_port = kioku_proc.free_port()
        self.proc, self.port = kioku_proc.start(
            BIN, ["-t", "2", "--resp-port", str(self.resp_port)] + args)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.resp_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)

    def redis(self, timeout=60):
        return redis.Redis(port=self.resp_port, socket_timeout=timeout)

    def raw(self, timeout=10):
        return socket.create_connection(("127.0.0.1", self.resp_port), timeout=timeout)

    def stop(self):
        kioku_proc.stop(self.proc)
        return self.proc.returncode


def recv_exactly(s, n, wait=30):
    out = b""
    deadline = time.monotonic() + wait
    while len(out) < n and time.monotonic() < deadline:
        chunk = s.recv(min(n - len(out), 1 << 20))
        if not chunk:
            break
        out += chunk
    return out


def read_to_eof(s, wait=10):
    """(bytes, closed) within wait seconds."""
    out = b""
    deadline = time.monotonic() + wait
    s.settimeout(1)
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return out, True
        if not chunk:
            return out, True
        out += chunk
    return out, False


def resp_cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def test_round_trips_and_set_family(srv):
    r = srv.redis()
    for i, n in enumerate([MiB + 7, 4 * MiB + 1, 16 * MiB, 64 * MiB]):
        v = pattern(n, i)
        t0 = time.monotonic()
        check(r.set("big%d" % n, v) is True, "SET of %d bytes: OK" % n)
        got = r.get("big%d" % n)
        print("resp_large: SET+GET of %d bytes in %.2f s" % (n, time.monotonic() - t0))
        check(got == v, "GET of %d bytes comes back byte for byte" % n)
        check(r.strlen("big%d" % n) == n, "STRLEN of %d bytes" % n)
    r.delete("big%d" % (64 * MiB))

    v = pattern(3 * MiB, 5)
    check(r.setex("sx", 100, v) is True and r.get("sx") == v, "SETEX of 3 MiB")
    check(90 <= r.ttl("sx") <= 100, "SETEX's TTL: %r" % r.ttl("sx"))
    check(r.psetex("psx", 100000, v) is True and r.get("psx") == v, "PSETEX of 3 MiB")
    check(90000 <= r.pttl("psx") <= 100000, "PSETEX's TTL")
    check(r.set("ex", v, ex=50) is True and 40 <= r.ttl("ex") <= 50, "SET EX of 3 MiB")
    check(r.setnx("nx", v) is True and r.get("nx") == v, "SETNX of a new key stores it")
    w = pattern(2 * MiB, 6)
    check(r.setnx("nx", w) is False and r.get("nx") == v, "SETNX of an existing key: 0, kept")
    check(r.set("nx", w, nx=True) is None and r.get("nx") == v, "SET NX: nil, kept")
    check(r.set("nx", w, xx=True) is True and r.get("nx") == w, "SET XX replaces")
    check(r.set("absent", w, xx=True) is None and r.exists("absent") == 0,
          "SET XX of an absent key: nil, not created")
    check(r.getset("nx", v) == w and r.get("nx") == v, "GETSET returns the old large value")
    check(r.set("nx", w, get=True) == v and r.get("nx") == w, "SET ... GET")
    r.set("keep", "small", ex=100)
    check(r.set("keep", v, keepttl=True) is True and r.get("keep") == v and
          90 <= r.ttl("keep") <= 100, "SET KEEPTTL keeps the old TTL")
    check(r.set("gone", v, px=1) is True, "SET PX 1 of 3 MiB")
    time.sleep(0.05)
    check(r.get("gone") is None, "the large value expires")


def test_append_getrange_setrange(srv):
    r = srv.redis()
    a, b = pattern(3 * MiB, 1), pattern(2 * MiB + 3, 2)
    r.set("ap", a)
    check(r.append("ap", b) == len(a) + len(b), "APPEND of 2 MiB to 3 MiB: the new length")
    whole = a + b
    check(r.get("ap") == whole, "APPEND: the bytes")
    check(r.append("ap_new", b) == len(b) and r.get("ap_new") == b, "APPEND to an absent key")
    check(r.strlen("ap") == len(whole), "STRLEN after APPEND")
    lo, hi = len(a) - 1000, len(a) + MiB
    check(r.getrange("ap", lo, hi) == whole[lo:hi + 1], "GETRANGE across the join")
    check(r.getrange("ap", -10, -1) == whole[-10:], "GETRANGE of the tail")
    c = pattern(MiB + 100, 3)
    off = 4 * MiB
    n = r.setrange("ap", off, c)
    whole = whole[:off] + c + whole[off + len(c):]
    check(n == len(whole) and r.get("ap") == whole, "SETRANGE of 1 MiB inside a large value")
    n = r.setrange("sr", 2 * MiB, c)
    check(n == 2 * MiB + len(c) and r.get("sr") == b"\0" * (2 * MiB) + c,
          "SETRANGE of 1 MiB past the end of an absent key pads with zeros")


def test_concurrent_pipelines(srv):
    errors = []
    stop = threading.Event()

    def bulk(seed):
        try:
            r = srv.redis()
            vals = {}
            for i in range(6):
                k = "pipe%d_%d" % (seed, i)
                vals[k] = pattern(MiB * (1 + i % 3) + seed * 11 + i, seed * 10 + i)
            # SETs in one pipeline, then GETs in another: a client that
            # writes megabytes of requests while not reading megabytes of
            # replies waits for a server that stops reading it (memcached's
            # backpressure, not Redis's unbounded output buffers).
            p = r.pipeline(transaction=False)
            for k, v in vals.items():
                p.set(k, v)
            if p.execute() != [True] * len(vals):
                errors.append("client %d: a SET in the pipeline failed" % seed)
            p = r.pipeline(transaction=False)
            for k in vals:
                p.get(k)
            res = p.execute()
            for i, k in enumerate(vals):
                if res[i] != vals[k]:
                    errors.append("client %d: %s differs" % (seed, k))
        except Exception as e:  # noqa: BLE001 - any failure is a test failure
            errors.append("client %d: %r" % (seed, e))

    small_done = [0]

    def small():
        try:
            r = srv.redis(timeout=10)
            deadline = time.monotonic() + 60
            i = 0
            while not stop.is_set() and time.monotonic() < deadline and i < 100000:
                k = "small%d" % (i % 50)
                r.set(k, "v%d" % i)
                if r.get(k) != b"v%d" % i:
                    errors.append("small client: %s differs" % k)
                    return
                i += 1
            small_done[0] = i
        except Exception as e:  # noqa: BLE001
            errors.append("small client: %r" % e)

    ts = [threading.Thread(target=bulk, args=(s,)) for s in (1, 2)]
    tsmall = threading.Thread(target=small)
    tsmall.start()
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    stop.set()
    tsmall.join(70)
    check(not errors, "concurrent pipelines: %s" % errors[:3])
    check(small_done[0] > 10, "the small client ran %d requests meanwhile" % small_done[0])


def test_proto_max_bulk_len(srv):
    r = srv.redis()
    check(r.config_get("proto-max-bulk-len") == {"proto-max-bulk-len": str(512 * MiB)},
          "CONFIG GET proto-max-bulk-len: 512 MiB by default")
    check(r.config_set("proto-max-bulk-len", "1mb") is True, "CONFIG SET proto-max-bulk-len 1mb")
    check(r.config_get("proto-max-bulk-len") == {"proto-max-bulk-len": str(MiB)},
          "CONFIG GET shows 1048576")
    other = srv.redis()
    other.set("bystander", "still here")
    s = srv.raw()
    s.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nover\r\n$1048577\r\n" + b"x" * 1000)
    out, closed = read_to_eof(s)
    s.close()
    check(out == BULK_ERR and closed, "a bulk 1 byte over: Redis's error, then closed: %r" % out)
    check(other.get("bystander") == b"still here" and r.exists("over") == 0,
          "another client is served, nothing stored")
    v = pattern(MiB, 9)
    check(r.set("at", v) is True and r.get("at") == v, "a bulk of exactly proto-max-bulk-len")
    try:
        r.append("at", "y")
        check(False, "APPEND past proto-max-bulk-len refused")
    except redis.ResponseError as e:
        check(str(e) == TOO_BIG, "APPEND past proto-max-bulk-len: %s" % e)
    try:
        r.setrange("at", MiB, "y")
        check(False, "SETRANGE past proto-max-bulk-len refused")
    except redis.ResponseError as e:
        check(str(e) == TOO_BIG, "SETRANGE past proto-max-bulk-len: %s" % e)
    check(r.setrange("at", MiB - 1, "y") == MiB, "SETRANGE up to the limit")
    s = srv.raw()
    for val, want in [("100", b"-ERR CONFIG SET failed (possibly related to argument "
                               b"'proto-max-bulk-len') - argument must be between 1048576 "
                               b"and 9223372036854775807 inclusive\r\n"),
                      ("abc", b"-ERR CONFIG SET failed (possibly related to argument "
                              b"'proto-max-bulk-len') - argument must be a memory value\r\n"),
                      ("-5", b"-ERR CONFIG SET failed (possibly related to argument "
                             b"'proto-max-bulk-len') - argument must be a memory value\r\n")]:
        s.sendall(resp_cmd("CONFIG", "SET", "proto-max-bulk-len", val))
        got = recv_exactly(s, len(want), 5)
        check(got == want, "CONFIG SET proto-max-bulk-len %s: %r" % (val, got))
    s.close()
    check(r.config_set("proto-max-bulk-len", "2097152") is True and
          r.set("two", pattern(2 * MiB)) is True, "raised again to 2 MiB: a 2 MiB value fits")
    check(r.config_set("proto-max-bulk-len", "512mb") is True, "back to 512mb")


def test_start_option():
    srv = Server(["-o", "proto_max_bulk_len=2mb"])
    try:
        r = srv.redis()
        check(r.config_get("proto-max-bulk-len") == {"proto-max-bulk-len": str(2 * MiB)},
              "-o proto_max_bulk_len=2mb")
        s = srv.raw()
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2097153\r\n")
        out, closed = read_to_eof(s)
        s.close()
        check(out == BULK_ERR and closed, "-o proto_max_bulk_len bounds the bulk: %r" % out)
    finally:
        check(srv.stop() == 0, "server exits 0")
    bad = subprocess.run([BIN, "-o", "proto_max_bulk_len=1000"] + kioku_proc.ROOT_ARGS,
                         capture_output=True, text=True, timeout=10)
    check(bad.returncode != 0 and "proto_max_bulk_len" in bad.stderr,
          "-o proto_max_bulk_len under 1mb refused: %r" % bad.stderr)


def test_oom_and_refusals():
    srv = Server(["-m", "64"])
    try:
        r = srv.redis()
        small = {"keep%d" % i: "v%d" % i for i in range(200)}
        p = r.pipeline(transaction=False)
        for k, v in small.items():
            p.set(k, v)
        p.execute()
        for n in (40 * MiB, 100 * MiB):
            s = srv.raw(30)
            s.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nhog\r\n$%d\r\n" % n)
            want = b"-OOM " + OOM.encode() + b"\r\n"
            got = recv_exactly(s, len(want), 10)
            check(got == want, "SET of %d MiB at -m 64: Redis's OOM error at once: %r" %
                  (n // MiB, got))
            # The value still arrives; it is skipped and the connection goes on.
            chunk = b"h" * MiB
            for _ in range(n // MiB):
                s.sendall(chunk)
            s.sendall(b"\r\n" + resp_cmd("PING"))
            check(recv_exactly(s, 7, 30) == b"+PONG\r\n", "after the refused value: PONG")
            s.close()
        check(r.exists("hog") == 0, "nothing stored")
        check(all(r.get(k) == v.encode() for k, v in small.items()),
              "the cache was not emptied for the refused value")
        v = pattern(20 * MiB)
        check(r.set("fits", v) is True and r.get("fits") == v, "20 MiB at -m 64 fits")

        s = srv.raw(30)
        v = pattern(2 * MiB, 4)
        s.sendall(resp_cmd("SET", "syn", v, "NX", "XX") + resp_cmd("SETNX", "ar", v, "x") +
                  resp_cmd("SET", "x" * 300, v) + resp_cmd("PING"))
        want = (b"-ERR syntax error\r\n"
                b"-ERR wrong number of arguments for 'setnx' command\r\n")
        got = recv_exactly(s, len(want), 20)
        check(got == want, "syntax and arity errors for large values: %r" % got)
        line = b""
        while not line.endswith(b"\r\n") and len(line) < 200:
            line += s.recv(1)
        check(line.startswith(b"-ERR key too long"), "a too long key: %r" % line)
        check(recv_exactly(s, 7, 20) == b"+PONG\r\n", "and the connection goes on")
        s.close()
        check(r.exists("syn", "ar") == 0, "nothing stored by refused requests")

        # A client that leaves in the middle of a value.
        s = srv.raw()
        s.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$%d\r\n" % (8 * MiB) + b"h" * (3 * MiB))
        s.close()
        time.sleep(0.2)
        check(r.ping() is True and r.exists("half") == 0, "a client leaving mid-value")
    finally:
        check(srv.stop() == 0, "server exits 0")


def test_output_limits_multi_and_buffered():
    srv = Server(["-m", "128", "-o", "max_output_buffer=1m"])
    try:
        r = srv.redis()
        v = pattern(3 * MiB, 8)
        r.set("v", v)
        check(r.get("v") == v, "GET of 3 MiB with max_output_buffer=1m")
        check(r.getrange("v", 1, 2 * MiB) == v[1:2 * MiB + 1],
              "GETRANGE of 2 MiB with max_output_buffer=1m")
        p = r.pipeline(transaction=True)
        p.set("m", v)
        p.get("m")
        check(p.execute() == [True, v], "SET of 3 MiB inside MULTI/EXEC")
        w = pattern(MiB, 2)
        h = w[:512 * 1024]   # ECHO copies its reply: within the 1 MiB output limit
        check(r.echo(h) == h, "ECHO of 512 KiB (buffered)")
        check(r.mset({"ms1": w, "ms2": "x"}) is True and r.get("ms1") == w,
              "MSET with a 1 MiB value (buffered)")
        s = srv.raw()
        s.sendall(b"*3\r\n$4\r\nMSET\r\n$1\r\nk\r\n$%d\r\n" % (5 * MiB))
        out, closed = read_to_eof(s)
        s.close()
        check(out == b"-ERR Protocol error: too big request\r\n" and closed,
              "MSET with a 5 MiB value: too big request: %r" % out)
        check(r.ping() is True, "the server goes on")
    finally:
        check(srv.stop() == 0, "server exits 0")


def test_unauthenticated_limits():
    srv = Server(["--requirepass", "sesame"])
    try:
        for data, want in [
                (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$16385\r\n",
                 b"-ERR Protocol error: unauthenticated bulk length\r\n"),
                (b"*11\r\n", b"-ERR Protocol error: unauthenticated multibulk length\r\n")]:
            s = srv.raw()
            s.sendall(data)
            out, closed = read_to_eof(s)
            s.close()
            check(out == want and closed, "before AUTH, as Redis 7: %r" % out)
        r = redis.Redis(port=srv.resp_port, password="sesame", socket_timeout=30)
        v = pattern(2 * MiB, 3)
        check(r.set("k", v) is True and r.get("k") == v, "after AUTH a 2 MiB value")
    finally:
        check(srv.stop() == 0, "server exits 0")


def test_memcached_reads_it(srv):
    r = srv.redis()
    v = pattern(5 * MiB + 3, 7)
    r.set("shared", v)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(b"get shared\r\n")
    hdr = b"VALUE shared 0 %d\r\n" % len(v)
    want = hdr + v + b"\r\nEND\r\n"
    got = recv_exactly(s, len(want), 30)
    s.close()
    check(got == want, "memcached get of a 5 MiB RESP value (%d of %d bytes)" %
          (len(got), len(want)))


def main():
    if not BIN:
        print("resp_large: KIOKU_BIN not set; skipped")
        return 77
    srv = Server(["-m", "512"])
    try:
        test_round_trips_and_set_family(srv)
        test_append_getrange_setrange(srv)
        test_concurrent_pipelines(srv)
        test_proto_max_bulk_len(srv)
        test_memcached_reads_it(srv)
    finally:
        check(srv.stop() == 0, "server exits 0")
    test_start_option()
    test_unauthenticated_limits()
    test_oom_and_refusals()
    test_output_limits_multi_and_buffered()
    if FAILS:
        print("resp_large: %d check(s) failed" % len(FAILS))
        return 1
    print("resp_large: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
