#!/usr/bin/env python3
"""Pipelined batches answer exactly as the same requests sent one by one
(issue 12), against a real $KIOKU_BIN, for RESP, the memcached binary
protocol and the text protocol.

The server parses a pipelined batch ahead (to prefetch its keys) and runs
the requests it parsed there without parsing, looking up or hashing them
again. What must not change: each reply, byte for byte, and the counters
(INFO commandstats calls / rejected / failed, keyspace hits and misses,
memcached's get, set, touch and delete stats).

Each case runs twice, on two fresh servers: once as one write holding the
whole batch (parsed ahead), once a request at a time with a pause between
them (one request per read: never parsed ahead). The replies and counters
must be equal, and a few replies are also checked against fixed values.
Batches mix hits, misses, stores then reads of the same key inside one
look, wrong arity, unknown commands, over-long keys, WRONGTYPE, MULTI/EXEC,
commands without keys (which end a look), quiet binary requests, a
request cut in two, and more requests than one look covers (16). Values
either side of the size that is copied into a reply rather than sent from
its item come back exact in every protocol. A binary SASL Auth cut in two
is answered once whole, without stalling the worker.

Every server is stopped by PID; every socket read is bounded by a timeout.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402
from kioku_proc import connect, mc_stats  # noqa: E402

BIN = os.environ.get("KIOKU_BIN")
failures = []
DEADLINE = time.monotonic() + 120


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def recv_end(s, end):
    buf = b""
    while not buf.endswith(end) and time.monotonic() < DEADLINE:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def exchange(s, reqs, end_req, end_reply, batched):
    """Send reqs (a list of bytes) as one write or one by one, then end_req;
    return every byte received up to end_reply."""
    if batched:
        s.sendall(b"".join(reqs) + end_req)
    else:
        for r in reqs:
            s.sendall(r)
            time.sleep(0.004)
        s.sendall(end_req)
    return recv_end(s, end_reply)


# ---- RESP ----

def mb(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def resp_batch():
    long_key = b"k" * 300
    reqs = [mb("SET", "pa", "1"), mb("GET", "pa"), mb("GET"), mb("NOPE", "x"),
            mb("GET", "pa"), mb("SET", "pb", "two", "GET"), mb("GET", "pb"),
            mb("MULTI"), mb("INCR", "pa"), mb("GET", "pa"), mb("EXEC"),
            mb("HSET", "ph", "f", "v"), mb("GET", "ph"), mb("GET", long_key),
            mb("MGET", "pa", "ph", "nokey", "pb"), mb("SET", "ph", "s"), mb("GET", "ph"),
            mb("PING"), mb("GET", "pa"), mb("DEL", "pa", "ph"), mb("GET", "pa")]
    for i in range(40):
        k = "q%d" % (i - i % 3)
        reqs.append(mb("SET", k, "v%d" % i) if i % 3 == 0 else mb("GET", k))
    reqs.append(mb("SETEX", "px", "100", "vx"))
    reqs.append(mb("GET", "px"))
    reqs.append(b"SET inl \"a b\"\r\n")   # inline: never parsed ahead
    reqs.append(mb("GET", "inl"))
    return reqs


def counters_resp(port):
    r = kioku_proc.RespRaw(port)
    cs = r.cmd("INFO", "commandstats").decode()
    st = r.cmd("INFO", "stats").decode()
    r.close()
    rows = sorted(re.sub(r"usec=\d+,usec_per_call=[\d.]+,", "", line)
                  for line in cs.split("\r\n") if line.startswith("cmdstat_"))
    keep = [line for line in st.split("\r\n")
            if line.startswith(("keyspace_hits:", "keyspace_misses:"))]
    return rows + keep


def run_resp(batched):
    rport = kioku_proc.free_port()
    proc, _ = kioku_proc.start(BIN, ["--resp-port", str(rport)])
    try:
        s = connect(rport)
        got = exchange(s, resp_batch(), mb("ECHO", "end-of-batch"), b"$12\r\nend-of-batch\r\n",
                       batched)
        # A request cut in two: the look stops at its first part.
        s.sendall(mb("SET", "cut", "cv") + mb("GET", "cut") + b"*2\r\n$3\r\nGET\r\n$3\r\ncu")
        time.sleep(0.05)
        s.sendall(b"t\r\n" + mb("ECHO", "end-of-cut"))
        got += recv_end(s, b"$10\r\nend-of-cut\r\n")
        s.close()
        alive = proc.poll() is None
        return got, counters_resp(rport), alive
    finally:
        kioku_proc.stop(proc)


def test_resp():
    one, cnt_one, alive_one = run_resp(False)
    many, cnt_many, alive_many = run_resp(True)
    check(alive_one and alive_many, "resp: servers alive")
    check(many == one, "resp: batched replies equal one-by-one (%d bytes)" % len(one))
    if many != one:
        i = next((k for k in range(min(len(one), len(many))) if one[k] != many[k]), 0)
        print("  one-by-one ...%r\n  batched    ...%r" % (one[i - 40:i + 80], many[i - 40:i + 80]))
    check(cnt_many == cnt_one, "resp: commandstats and keyspace counters equal")
    if cnt_many != cnt_one:
        print("  one-by-one %r\n  batched    %r" % (cnt_one, cnt_many))
    want = (b"+OK\r\n$1\r\n1\r\n-ERR wrong number of arguments for 'get' command\r\n"
            b"-ERR unknown command 'NOPE', with args beginning with: 'x' \r\n$1\r\n1\r\n"
            b"$-1\r\n$3\r\ntwo\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:2\r\n$1\r\n2\r\n:1\r\n"
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
    check(many.startswith(want), "resp: the batch's first replies are the expected ones")
    check(many.endswith(b"+OK\r\n$2\r\ncv\r\n$2\r\ncv\r\n$10\r\nend-of-cut\r\n"),
          "resp: a request cut in two is answered")
    check("cmdstat_get:calls=%d,rejected_calls=2,failed_calls=1" % 38 in cnt_many,
          "resp: GET's calls, rejections and failures counted once each: %r"
          % [x for x in cnt_many if x.startswith("cmdstat_get:")])


# ---- memcached binary ----

def bin_req(op, key=b"", extras=b"", value=b"", opaque=0, cas=0):
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0, len(body),
                       opaque, cas) + body


GET, SET, ADD, DELETE, INCR, GETQ, NOOP, GETK, GETKQ, SETQ, TOUCH, GAT = (
    0x00, 0x01, 0x02, 0x04, 0x05, 0x09, 0x0a, 0x0c, 0x0d, 0x11, 0x1c, 0x1d)


def bin_batch():
    fl = struct.pack(">II", 7, 0)
    reqs = [bin_req(SET, b"ba", fl, b"va", 1), bin_req(GET, b"ba", opaque=2),
            bin_req(GETK, b"nokey", opaque=3), bin_req(GETQ, b"nokey", opaque=4),
            bin_req(GETKQ, b"ba", opaque=5), bin_req(ADD, b"ba", fl, b"x", 6),
            bin_req(SETQ, b"bb", fl, b"vb", 7), bin_req(GET, b"bb", opaque=8),
            bin_req(NOOP, opaque=10),
            bin_req(INCR, b"bn", struct.pack(">QQI", 5, 10, 0), opaque=11),
            bin_req(GET, b"bn", opaque=12), bin_req(DELETE, b"ba", opaque=13),
            bin_req(GET, b"ba", opaque=14),
            bin_req(TOUCH, b"bb", struct.pack(">I", 100), opaque=15),
            bin_req(GAT, b"bb", struct.pack(">I", 100), opaque=16),
            bin_req(0x7e, b"", opaque=17)]   # unknown opcode
    for i in range(40):
        k = b"c%d" % (i - i % 4)
        reqs.append(bin_req(SET, k, fl, b"w%d" % i, 100 + i) if i % 4 == 0
                    else bin_req(GETK, k, opaque=100 + i))
    return reqs


def bin_rebase_cas(out):
    """The replies with each CAS as its rank among the CAS values seen, in
    order (a server starts its CAS counter where it likes)."""
    res, off, seen = b"", 0, {}
    while off + 24 <= len(out):
        h = list(struct.unpack(">BBHBBHIIQ", out[off:off + 24]))
        if h[8] != 0:
            h[8] = seen.setdefault(h[8], len(seen) + 1)
        res += struct.pack(">BBHBBHIIQ", *h) + out[off + 24:off + 24 + h[6]]
        off += 24 + h[6]
    return res + out[off:]


def run_bin(batched):
    proc, port = kioku_proc.start(BIN, [])
    try:
        s = connect(port)
        end = bin_req(NOOP, opaque=0xfeedbeef)
        got = exchange(s, bin_batch(), end, struct.pack(">BBHBBHIIQ", 0x81, NOOP, 0, 0, 0, 0, 0,
                                                         0xfeedbeef, 0), batched)
        s.close()
        s = connect(port)
        st = mc_stats(s)
        s.close()
        keep = {k: st.get(k) for k in ("cmd_get", "get_hits", "get_misses", "cmd_set",
                                       "cmd_touch", "touch_hits", "delete_hits",
                                       "delete_misses", "incr_misses", "curr_items")}
        return bin_rebase_cas(got), keep, proc.poll() is None
    finally:
        kioku_proc.stop(proc)


def test_bin():
    one, st_one, alive_one = run_bin(False)
    many, st_many, alive_many = run_bin(True)
    check(alive_one and alive_many, "binary: servers alive")
    check(many == one, "binary: batched replies equal one-by-one (%d bytes)" % len(one))
    check(st_many == st_one, "binary: stats equal: %r" % st_many)
    hdr = struct.unpack(">BBHBBHIIQ", many[:24])
    check(hdr[1] == SET and hdr[5] == 0 and hdr[7] == 1, "binary: first reply is Set's success")
    check(many[24:24 + 24 + 4 + 2][-2:] == b"va", "binary: the Get after it in the batch hits")
    check(st_many["get_hits"] is not None and int(st_many["get_hits"]) >= 20,
          "binary: hits counted: %r" % st_many["get_hits"])


# ---- memcached text ----

def text_batch():
    reqs = [b"set ta 3 0 2\r\nva\r\n", b"get ta\r\n", b"gets ta nokey ta\r\n",
            b"get " + b"k" * 300 + b"\r\n", b"bogus\r\n", b"add ta 0 0 1\r\nx\r\n",
            b"touch ta 100\r\n", b"gat 100 ta tb\r\n", b"set tb 0 0 2 noreply\r\nvb\r\n",
            b"get tb ta\r\n", b"delete ta\r\n", b"get ta\r\n", b"incr tn 1\r\n",
            b"mg tb v\r\n", b"ms tc 2\r\nvc\r\n", b"mg tc v\r\n", b"version\r\n"]
    for i in range(40):
        k = b"d%d" % (i - i % 4)
        reqs.append(b"set %s 0 0 2\r\nw%d\r\n" % (k, i % 10) if i % 4 == 0 else b"get %s\r\n" % k)
    return reqs


def text_rebase_cas(out):
    """As bin_rebase_cas, for the CAS of gets/gats VALUE lines."""
    seen = {}

    def rebase(m):
        return b"%s %d\r\n" % (m.group(1), seen.setdefault(m.group(2), len(seen) + 1))
    return re.sub(rb"(VALUE \S+ \d+ \d+) (\d+)\r\n", rebase, out)


def run_text(batched):
    proc, port = kioku_proc.start(BIN, [])
    try:
        s = connect(port)
        got = text_rebase_cas(exchange(s, text_batch(), b"mn\r\n", b"MN\r\n", batched))
        s.close()
        s = connect(port)
        st = mc_stats(s)
        s.close()
        keep = {k: st.get(k) for k in ("cmd_get", "get_hits", "get_misses", "cmd_set",
                                       "cmd_touch", "touch_hits", "touch_misses", "delete_hits",
                                       "incr_misses", "curr_items")}
        return got, keep, proc.poll() is None
    finally:
        kioku_proc.stop(proc)


def test_text():
    one, st_one, alive_one = run_text(False)
    many, st_many, alive_many = run_text(True)
    check(alive_one and alive_many, "text: servers alive")
    check(many == one, "text: batched replies equal one-by-one (%d bytes)" % len(one))
    check(st_many == st_one, "text: stats equal: %r" % st_many)
    check(many.startswith(b"STORED\r\nVALUE ta 3 2\r\nva\r\nEND\r\nVALUE ta 3 2 1\r\nva\r\n"),
          "text: a set then a get of the same key in one batch hits")


def test_value_sizes():
    """Small values are copied into the reply with their header in one
    step, larger ones are sent from the item: either side of the bound
    (512 bytes with the CRLF) every protocol returns the exact bytes."""
    rport = kioku_proc.free_port()
    proc, port = kioku_proc.start(BIN, ["--resp-port", str(rport)])
    try:
        t, b, r = connect(port), connect(port), kioku_proc.RespRaw(rport)
        for size in (0, 1, 32, 508, 509, 510, 511, 512, 513, 2000, 70000):
            v = bytes((97 + i % 26) for i in range(size))
            k = b"sz%d" % size
            t.sendall(b"set %s 9 0 %d\r\n%s\r\n" % (k, size, v))
            check(recv_end(t, b"\r\n") == b"STORED\r\n", "size %d: stored" % size)
            t.sendall(b"get %s\r\n" % k)
            check(recv_end(t, b"END\r\n") == b"VALUE %s 9 %d\r\n%s\r\nEND\r\n" % (k, size, v),
                  "size %d: text get" % size)
            b.sendall(bin_req(GETK, k, opaque=size))
            want = struct.pack(">II", 9, 0)[:4] + k + v
            got = b""
            while len(got) < 24 + len(want) and time.monotonic() < DEADLINE:
                got += b.recv(65536)
            h = struct.unpack(">BBHBBHIIQ", got[:24])
            check(h[5] == 0 and h[6] == len(want) and got[24:] == want,
                  "size %d: binary getk" % size)
            check(r.cmd("GET", k) == b"$%d\r\n%s\r\n" % (size, v), "size %d: resp get" % size)
            if size > 2:
                check(r.cmd("GETRANGE", k, 1, size - 2) == b"$%d\r\n%s\r\n" % (size - 2, v[1:-1]),
                      "size %d: resp getrange" % size)
        t.close()
        b.close()
        r.close()
        check(proc.poll() is None, "sizes: server alive")
    finally:
        kioku_proc.stop(proc)


def test_sasl_in_pieces():
    """A binary SASL Auth whose data arrives in a second read is answered
    once it is in, and the worker serves its other connections meanwhile
    (it used to go round its loop without reading, for good)."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "auth")
        with open(path, "w") as f:
            f.write("user:pass\n")
        rport = kioku_proc.free_port()
        proc, port = kioku_proc.start(BIN, ["-Y", path, "-t", "1", "--resp-port", str(rport)])
        try:
            s = connect(port)
            mech, data = b"PLAIN", b"\0user\0pass"
            req = bin_req(0x21, mech, b"", data, opaque=7)
            s.sendall(req[:24 + len(mech) + 3])
            time.sleep(0.2)
            other = kioku_proc.RespRaw(rport, timeout=5)
            try:
                pong = other.cmd("PING")
            except OSError as e:
                pong = repr(e).encode()
            other.close()
            # -Y makes RESP ask for a password too: any answer will do.
            check(pong in (b"+PONG\r\n", b"-NOAUTH Authentication required.\r\n"),
                  "sasl in pieces: the worker still serves others: %r" % pong)
            s.sendall(req[24 + len(mech) + 3:])
            got = recv_end(s, b"Authenticated")
            check(len(got) > 24 and got[1] == 0x21 and got[24:] == b"Authenticated",
                  "sasl in pieces: answered once its data is in: %r" % got[:40])
            s.sendall(bin_req(NOOP, opaque=9))
            got = recv_end(s, struct.pack(">I", 9) + b"\0" * 8)
            check(len(got) == 24 and got[1] == NOOP, "sasl in pieces: the next request runs")
            s.close()
        finally:
            kioku_proc.stop(proc)


def main():
    if not BIN:
        print("skip: KIOKU_BIN not set")
        return 77
    test_resp()
    test_bin()
    test_text()
    test_value_sizes()
    test_sasl_in_pieces()
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
