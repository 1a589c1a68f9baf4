#!/usr/bin/env python3
"""-o null_storage, the benchmark mode of bench/ (issue 12), against a real
$KIOKU_BIN:

- memcached text: every key of get/gets/gat/gats is a hit on the 4-byte
  value "null" (flags 0, cas 1 where shown), whatever was set; set/add/cas
  answer STORED and skip their data block, also one of 300 kB that arrives
  in pieces; a block without its CRLF gets "CLIENT_ERROR bad data chunk";
  noreply is honoured; a get of 20,000 keys is answered in full; nothing
  reaches storage (stats: curr_items 0, get_hits and cmd_set counted).
- meta: mg answers a hit on "null" with its flags echoed (c1 f0 t-1 s4 k),
  ms answers HD (q hides it), a 300 kB ms in pieces is skipped, a block
  without its CRLF gets "CLIENT_ERROR bad data chunk".
- binary: Get/GetK answer a hit on "null" (flags 0, CAS 1; GetK with its
  key), Set answers success with CAS 1, SetQ nothing, also for a value that
  arrives in pieces; nothing is stored.
- RESP: GET answers the bulk "null", SET +OK (a 1 MB value too), arity
  errors as usual, DBSIZE 0; other commands (PING) run as usual.
- Without the option the same requests see the real store, and the option
  takes no value (exit 64).

Every server is stopped by PID; every socket read is bounded by a timeout.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402
from kioku_proc import connect, recv_until  # noqa: E402

BIN = os.environ.get("KIOKU_BIN")
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def talk(s, req, end):
    s.sendall(req)
    return recv_until(s, end)


def stat(s, name):
    out = talk(s, b"stats\r\n", b"END\r\n").decode()
    for line in out.split("\r\n"):
        parts = line.split(" ")
        if len(parts) == 3 and parts[1] == name:
            return int(parts[2])
    return None


def test_text(port):
    s = connect(port)
    check(talk(s, b"set k 5 0 5\r\nhello\r\n", b"\r\n") == b"STORED\r\n",
          "text: set answers STORED")
    check(talk(s, b"get k\r\n", b"END\r\n") == b"VALUE k 0 4\r\nnull\r\nEND\r\n",
          "text: get answers the fixed hit, not the value set")
    check(talk(s, b"get never-set other\r\n", b"END\r\n") ==
          b"VALUE never-set 0 4\r\nnull\r\nVALUE other 0 4\r\nnull\r\nEND\r\n",
          "text: every key of a multi-get is a hit")
    check(talk(s, b"gets k\r\n", b"END\r\n") == b"VALUE k 0 4 1\r\nnull\r\nEND\r\n",
          "text: gets shows cas 1")
    check(talk(s, b"gat 100 k\r\n", b"END\r\n") == b"VALUE k 0 4\r\nnull\r\nEND\r\n",
          "text: gat answers the fixed hit")
    check(talk(s, b"add k 0 0 1\r\nx\r\ncas k 0 0 1 99\r\ny\r\n", b"STORED\r\nSTORED\r\n") ==
          b"STORED\r\nSTORED\r\n", "text: add and cas answer STORED")
    check(talk(s, b"set q 0 0 1 noreply\r\nz\r\nversion\r\n", b"\r\n").startswith(b"VERSION "),
          "text: set noreply answers nothing")
    check(talk(s, b"set b 0 0 2\r\nabX\n", b"\r\n") == b"CLIENT_ERROR bad data chunk\r\n",
          "text: a data block without its CRLF is refused")
    s.close()

    s = connect(port)   # a value that arrives in pieces is skipped
    s.sendall(b"set big 0 0 300000\r\n" + b"v" * 1000)
    s.sendall(b"v" * 299000 + b"\r\nget big\r\n")
    check(recv_until(s, b"END\r\n") == b"STORED\r\nVALUE big 0 4\r\nnull\r\nEND\r\n",
          "text: a 300 kB value in pieces is skipped, STORED, next request answered")
    keys = [b"key%05d" % i for i in range(20000)]
    out = talk(s, b"get " + b" ".join(keys) + b"\r\n", b"END\r\n")
    want = b"".join(b"VALUE " + k + b" 0 4\r\nnull\r\n" for k in keys) + b"END\r\n"
    check(out == want, "text: a get of 20000 keys is answered in full (%d bytes)" % len(out))
    check(stat(s, "curr_items") == 0, "text: nothing was stored (curr_items 0)")
    check((stat(s, "get_hits") or 0) >= 20000, "text: get_hits are counted")
    check((stat(s, "cmd_set") or 0) >= 5, "text: cmd_set is counted")
    s.close()


def test_meta(port):
    s = connect(port)
    check(talk(s, b"ms foo 5 T0 c k\r\nhello\r\n", b"\r\n") == b"HD c1 kfoo\r\n",
          "meta: ms answers HD with its flags")
    check(talk(s, b"mg foo v c f t s k\r\n", b"null\r\n") ==
          b"VA 4 c1 f0 t-1 s4 kfoo\r\nnull\r\n", "meta: mg answers the fixed hit")
    check(talk(s, b"mg never\r\n", b"\r\n") == b"HD\r\n", "meta: mg without v answers HD")
    check(talk(s, b"ms q 2 q\r\nab\r\nmn\r\n", b"MN\r\n") == b"MN\r\n",
          "meta: ms q answers nothing")
    check(talk(s, b"ms b 2\r\nabX\n", b"\r\n") == b"CLIENT_ERROR bad data chunk\r\n",
          "meta: a data block without its CRLF is refused")
    s.sendall(b"ms big 300000 T0\r\n" + b"v" * 1000)
    s.sendall(b"v" * 299000 + b"\r\nmn\r\n")
    check(recv_until(s, b"MN\r\n") == b"HD\r\nMN\r\n",
          "meta: a 300 kB ms in pieces is skipped, HD, next request answered")
    check(stat(s, "curr_items") == 0, "meta: nothing was stored (curr_items 0)")
    s.close()


def bin_req(opcode, key=b"", extras=b"", value=b"", opaque=0):
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0,
                       len(body), opaque, 0) + body


def bin_recv(s):
    """One response: (opcode, status, cas, extras, key, value)."""
    hdr = b""
    while len(hdr) < 24:
        chunk = s.recv(24 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    _, op, klen, elen, _, status, blen, _, cas = struct.unpack(">BBHBBHIIQ", hdr)
    body = b""
    while len(body) < blen:
        chunk = s.recv(blen - len(body))
        if not chunk:
            return None
        body += chunk
    return op, status, cas, body[:elen], body[elen:elen + klen], body[elen + klen:]


def test_binary(port):
    s = connect(port)
    set_extras = struct.pack(">II", 7, 0)
    s.sendall(bin_req(0x01, b"k", set_extras, b"hello"))
    check(bin_recv(s) == (0x01, 0, 1, b"", b"", b""), "binary: Set answers success, CAS 1")
    s.sendall(bin_req(0x00, b"k"))
    check(bin_recv(s) == (0x00, 0, 1, struct.pack(">I", 0), b"", b"null"),
          "binary: Get answers the fixed hit, not the value set")
    s.sendall(bin_req(0x0c, b"other"))
    check(bin_recv(s) == (0x0c, 0, 1, struct.pack(">I", 0), b"other", b"null"),
          "binary: GetK names its key")
    big = bin_req(0x11, b"q", set_extras, b"v" * 300000)   # SetQ, then a Noop
    s.sendall(big[:5000])
    s.sendall(big[5000:] + bin_req(0x0a))
    check(bin_recv(s) == (0x0a, 0, 0, b"", b"", b""),
          "binary: a 300 kB SetQ in pieces is skipped silently, Noop answered")
    s.close()
    s = connect(port)
    check(stat(s, "curr_items") == 0, "binary: nothing was stored (curr_items 0)")
    s.close()


def test_resp(port):
    s = connect(port)
    check(talk(s, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n", b"\r\n") == b"+OK\r\n",
          "resp: SET answers +OK")
    check(talk(s, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"null\r\n") == b"$4\r\nnull\r\n",
          "resp: GET answers the bulk null, not the value set")
    check(talk(s, b"*1\r\n$3\r\nGET\r\n", b"\r\n") ==
          b"-ERR wrong number of arguments for 'get' command\r\n",
          "resp: GET arity is checked as usual")
    big = b"x" * (1 << 20)
    check(talk(s, b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % len(big) + big + b"\r\n", b"\r\n") ==
          b"+OK\r\n", "resp: SET of a 1 MB value answers +OK")
    check(talk(s, b"*1\r\n$6\r\nDBSIZE\r\n", b"\r\n") == b":0\r\n",
          "resp: nothing was stored (DBSIZE 0)")
    check(talk(s, b"PING\r\n", b"\r\n") == b"+PONG\r\n", "resp: other commands run as usual")
    s.close()


def test_off(port, rport):
    s = connect(port)
    out = talk(s, b"set k 5 0 5\r\nhello\r\nget k\r\n", b"END\r\n")
    check(out == b"STORED\r\nVALUE k 5 5\r\nhello\r\nEND\r\n", "off: text get sees the store")
    s.close()
    s = connect(rport)
    check(talk(s, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"hello\r\n") == b"$5\r\nhello\r\n",
          "off: RESP GET sees the store")
    s.close()


def main():
    if not BIN:
        print("skip: KIOKU_BIN not set")
        return 77
    for null in (True, False):
        rport = kioku_proc.free_port()
        args = ["-t", "2", "--resp-port", str(rport)] + (["-o", "null_storage"] if null else [])
        proc, port = kioku_proc.start(BIN, args)
        try:
            if null:
                test_text(port)
                test_meta(port)
                test_binary(port)
                test_resp(rport)
            else:
                test_off(port, rport)
            check(proc.poll() is None, "server still running (null=%s)" % null)
        finally:
            kioku_proc.stop(proc)
    r = subprocess.run([BIN, "-o", "null_storage=1"] + kioku_proc.ROOT_ARGS,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=10)
    check(r.returncode == 64 and b"null_storage takes no value" in r.stderr,
          "-o null_storage=1 is refused (64): %r" % r.stderr[:80])
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
