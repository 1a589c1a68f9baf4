#!/usr/bin/env python3
"""-B auto|ascii|binary: the memcached port speaks the protocol named.

As memcached 1.6.45 (its t/issue_50.t and t/00-startup.t): with -B binary a
client sending text is disconnected (bad magic byte); with -B ascii a binary
request is read as text and "PING" is an unknown command, because RESP is
then offered only on --resp-port; with the default, text, binary and RESP
all work on one port. stats settings names the binding.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402

BIN = os.environ.get("KIOKU_BIN")
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


def start(args):
    return kioku_proc.start(BIN, ["-t", "2"] + args)


def stop(proc):
    kioku_proc.stop(proc)


def talk(port, data, want_len=None, wait=3.0):
    """Send data; return (reply bytes, closed) after the reply or wait s."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    s.sendall(data)
    out, closed = b"", False
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            out += chunk
            if want_len is not None and len(out) >= want_len:
                break
            if want_len is None and out.endswith(b"\r\n"):
                break
    except socket.timeout:
        pass
    s.close()
    return out, closed


def bin_noop():
    return struct.pack(">BBHBBHIIQ", 0x80, 0x0a, 0, 0, 0, 0, 0, 1, 0)


def main():
    if not BIN:
        print("KIOKU_BIN not set: skipping")
        return 77
    proc, port = start(["-B", "binary"])
    try:
        out, closed = talk(port, b"Here's a bunch of garbage that doesn't look like the bin prot.")
        check(closed and out == b"", "-B binary closes on text: %r closed=%s" % (out, closed))
        out, _ = talk(port, bin_noop(), want_len=24)
        check(len(out) == 24 and out[0] == 0x81 and out[1] == 0x0a, "-B binary answers NOOP")
    finally:
        stop(proc)
    proc, port = start(["-B", "ascii"])
    try:
        check(talk(port, b"get nokey\r\n")[0] == b"END\r\n", "-B ascii serves text")
        check(talk(port, b"PING\r\n")[0] == b"ERROR\r\n", "-B ascii: no RESP on the port")
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        s.sendall(b"stats settings\r\n")
        st = b""
        while not st.endswith(b"END\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            st += chunk
        s.close()
        check(b"STAT binding_protocol ascii\r\n" in st, "stats settings binding_protocol ascii")
    finally:
        stop(proc)
    proc, port = start([])
    try:
        check(talk(port, b"get nokey\r\n")[0] == b"END\r\n", "auto: text")
        check(talk(port, b"PING\r\n")[0] == b"+PONG\r\n", "auto: RESP")
        out, _ = talk(port, bin_noop(), want_len=24)
        check(len(out) == 24 and out[0] == 0x81, "auto: binary")
    finally:
        stop(proc)
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
