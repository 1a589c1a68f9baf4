#!/usr/bin/env python3
"""stats detail (per-prefix counts) and -vv command logging, end to end.

Starts $KIOKU_BIN and checks, byte for byte against memcached 1.6.45's
replies:
  - stats detail on|off|dump over the text protocol, counting get/hit/set/del
    per prefix in the order of memcached's t/stats-detail.t, then "stats
    reset" forgetting the prefixes, and "off" stopping the counting;
  - the same dump over the binary protocol: one "detailed" Stat packet whose
    value is the text dump, then the empty terminator;
  - -D <char> choosing the delimiter and turning counting on at start;
  - -vv writing "<fd command" lines to stderr, `verbosity 0` stopping it and
    `verbosity 2` starting it again; without -v nothing is logged.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402

BIN = os.environ.get("KIOKU_BIN")
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


def start(args, stderr):
    return kioku_proc.start(BIN, ["-t", "2"] + args, stderr=stderr)


def stop(proc):
    kioku_proc.stop(proc)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def ask(s, req, end):
    """Send req, read until the reply ends with end (bounded by the timeout)."""
    s.sendall(req)
    out = b""
    while not out.endswith(end) and len(out) < 1 << 20:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    return out


def text_detail(port):
    s = connect(port)
    check(ask(s, b"stats detail dump\r\n", b"END\r\n") == b"END\r\n", "empty dump at start")
    check(ask(s, b"stats detail\r\n", b"\r\n") ==
          b"CLIENT_ERROR usage: stats detail on|off|dump\r\n", "usage line")
    check(ask(s, b"stats detail on\r\n", b"\r\n") == b"OK\r\n", "detail on")
    st = ask(s, b"stats settings\r\n", b"END\r\n")
    check(b"STAT detail_enabled yes\r\n" in st, "settings show detail on")
    check(b"STAT stat_key_prefix :\r\n" in st, "settings show the delimiter")
    ask(s, b"set foo:123 0 0 6\r\nfooval\r\n", b"\r\n")
    check(ask(s, b"stats detail dump\r\n", b"END\r\n") ==
          b"PREFIX foo get 0 hit 0 set 1 del 0\r\nEND\r\n", "after set")
    ask(s, b"get foo:123 foo:124\r\n", b"END\r\n")
    ask(s, b"delete foo:125\r\n", b"\r\n")
    ask(s, b"set nodelim 0 0 1\r\nx\r\n", b"\r\n")
    check(ask(s, b"stats detail dump\r\n", b"END\r\n") ==
          b"PREFIX foo get 2 hit 1 set 1 del 1\r\nEND\r\n", "after get hit, miss, delete")
    check(ask(s, b"stats reset\r\n", b"\r\n") == b"RESET\r\n", "reset")
    check(ask(s, b"stats detail dump\r\n", b"END\r\n") == b"END\r\n", "reset forgets prefixes")
    check(ask(s, b"stats detail off\r\n", b"\r\n") == b"OK\r\n", "detail off")
    ask(s, b"get foo:123\r\n", b"END\r\n")
    check(ask(s, b"stats detail dump\r\n", b"END\r\n") == b"END\r\n", "off counts nothing")
    s.close()


def bin_packet(opcode, key, opaque=7):
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), 0, 0, 0, len(key), opaque, 0) + key


def bin_read(s):
    hdr = b""
    while len(hdr) < 24:
        chunk = s.recv(24 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    magic, op, klen, elen, _, status, blen, opaque, _ = struct.unpack(">BBHBBHIIQ", hdr)
    body = b""
    while len(body) < blen:
        chunk = s.recv(blen - len(body))
        if not chunk:
            return None
        body += chunk
    return op, status, body[elen:elen + klen], body[elen + klen:]


def binary_detail(port):
    s = connect(port)
    s.sendall(bin_packet(0x10, b"detail on"))
    check(bin_read(s) == (0x10, 0, b"", b""), "binary detail on: empty terminator")
    s.sendall(struct.pack(">BBHBBHIIQ", 0x80, 0x01, 6, 8, 0, 0, 8 + 6 + 2, 0, 0)
              + struct.pack(">II", 0, 0) + b"bin:k1" + b"vv")
    check(bin_read(s)[1] == 0, "binary set")
    s.sendall(bin_packet(0x00, b"bin:k1"))
    bin_read(s)
    s.sendall(bin_packet(0x10, b"detail dump"))
    got = bin_read(s)
    check(got is not None and got[2] == b"detailed" and
          got[3] == b"PREFIX bin get 1 hit 1 set 1 del 0\r\nEND\r\n",
          "binary dump is one 'detailed' stat: %r" % (got,))
    check(bin_read(s) == (0x10, 0, b"", b""), "binary dump terminator")
    s.sendall(bin_packet(0x10, b"detail bogus"))
    got = bin_read(s)
    check(got is not None and got[1] == 1, "binary detail bogus is Not found: %r" % (got,))
    s.sendall(bin_packet(0x10, b"detail off"))
    check(bin_read(s) == (0x10, 0, b"", b""), "binary detail off")
    s.close()


def dash_d():
    proc, port = start(["-D", "/"], subprocess.DEVNULL)
    try:
        s = connect(port)
        ask(s, b"set a/1 0 0 1\r\nx\r\n", b"\r\n")
        ask(s, b"set b:1 0 0 1\r\nx\r\n", b"\r\n")
        check(ask(s, b"stats detail dump\r\n", b"END\r\n") ==
              b"PREFIX a get 0 hit 0 set 1 del 0\r\nEND\r\n", "-D / counts from start")
        st = ask(s, b"stats settings\r\n", b"END\r\n")
        check(b"STAT stat_key_prefix /\r\n" in st, "-D in stats settings")
        s.close()
    finally:
        stop(proc)


def logged(path):
    with open(path, "rb") as f:
        return f.read()


def wait_for(path, needle, present=True):
    for _ in range(100):
        if (needle in logged(path)) == present:
            return True
        time.sleep(0.05)
    return False


def verbosity():
    with tempfile.NamedTemporaryFile(prefix="kioku-vv.") as err:
        proc, port = start(["-vv"], err)
        try:
            s = connect(port)
            ask(s, b"get vv_one\r\n", b"END\r\n")
            check(wait_for(err.name, b" get vv_one\n"), "-vv logs the command line")
            line = [ln for ln in logged(err.name).split(b"\n") if ln.endswith(b" get vv_one")]
            check(len(line) == 1 and line[0].startswith(b"<") and
                  line[0][1:line[0].index(b" ")].isdigit(), "log line is '<fd command': %r" % line)
            check(ask(s, b"verbosity 0\r\n", b"\r\n") == b"OK\r\n", "verbosity 0")
            ask(s, b"get vv_two\r\n", b"END\r\n")
            ask(s, b"verbosity 2\r\n", b"\r\n")
            ask(s, b"get vv_three\r\n", b"END\r\n")
            check(wait_for(err.name, b" get vv_three\n"), "verbosity 2 logs again")
            check(b"vv_two" not in logged(err.name), "verbosity 0 stops logging")
            st = ask(s, b"stats settings\r\n", b"END\r\n")
            check(b"STAT verbosity 2\r\n" in st, "stats settings shows the level")
            s.close()
        finally:
            stop(proc)
    with tempfile.NamedTemporaryFile(prefix="kioku-v0.") as err:
        proc, port = start([], err)
        try:
            s = connect(port)
            ask(s, b"get quiet_key\r\n", b"END\r\n")
            s.close()
        finally:
            stop(proc)
        check(b"quiet_key" not in logged(err.name), "no log without -v")


def main():
    if not BIN:
        print("KIOKU_BIN not set: skipping")
        return 77
    proc, port = start([], subprocess.DEVNULL)
    try:
        text_detail(port)
        binary_detail(port)
    finally:
        stop(proc)
    dash_d()
    verbosity()
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
