#!/usr/bin/env python3
"""Write the seed corpora in fuzz/corpus/<target>/ (run from anywhere).

Each seed is a real request, or a short session, of the protocol the target
reads, taken from what the test suite sends (t/unit, t/integration):
well-formed requests of every command family first, then the edge cases the
tests pin down (limits, bad numbers, truncation). libFuzzer mutates from
these. fuzz_exec seeds start with one mode byte (see fuzz/fuzz_exec.c):
each session is written with a few modes, so reads split values and writes
block, and a few seeds hold two clients (split by SPLIT) on the same keys. Re-running rewrites the same files.
"""
import os
import shutil
import struct

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

TEXT = [
    b"set foo 0 0 3\r\nbar\r\n",
    b"set foo 5 100 3 noreply\r\nbar\r\nget foo\r\n",
    b"add k 0 0 1\r\nx\r\nreplace k 1 0 2\r\nyy\r\n",
    b"append k 0 0 3\r\nabc\r\nprepend k 0 0 3\r\nxyz\r\n",
    b"gets foo bar baz\r\n",
    b"cas foo 0 0 3 12345\r\nbaz\r\n",
    b"get " + b"k" * 250 + b"\r\n",
    b"get " + b"k" * 251 + b"\r\n",
    b"incr n 1\r\ndecr n 18446744073709551615\r\n",
    b"incr n -1\r\n",
    b"touch foo 10\r\ngat 100 foo bar\r\ngats -1 foo\r\n",
    b"delete foo\r\ndelete foo 0\r\ndelete foo noreply\r\ndelete foo 1 2\r\n",
    b"flush_all\r\nflush_all 10 noreply\r\n",
    b"version\r\nverbosity 1\r\nstats\r\nstats settings\r\nstats items\r\nstats slabs\r\n",
    b"stats conns\r\nstats sizes\r\nstats detail dump\r\nstats reset\r\n",
    b"slabs reassign 1 2\r\nslabs automove 1\r\n",
    b"set k 4294967296 0 1\r\nx\r\n",
    b"set k 0 0 -1\r\n",
    b"set k 0 0 99999999999\r\n",
    b"set k 0 0 5\r\nhel",
    b"set k 0 0 2\r\nabcd\r\n",
    b"GET / HTTP/1.1\r\n",
    b"\r\n\n",
    b"quit\r\n",
    b"shutdown\r\n",
    b"get a b c d e f g h i j k l m n o p\n",
]

META = [
    b"mg foo v t f c s k O123 q\r\n",
    b"ms foo 5 T10 F3 MA I\r\nhello\r\n",
    b"ms foo 3 c k b\r\nabc\r\n",
    b"ms Zm9v 3 b T-1 MS\r\nabc\r\n",
    b"ma n N10 J5 D3 MD v\r\n",
    b"ma n MI D18446744073709551615 t c\r\n",
    b"md foo I T30 q\r\n",
    b"md foo x C99\r\n",
    b"me foo\r\n",
    b"mg Zm9v b v\r\n",
    b"mg foo N30 R10 h l u E5\r\n",
    b"ms foo -1\r\n",
    b"ms foo S3 MZ\r\nabc\r\n",
    b"mn\r\n",
    b"mg foo O" + b"o" * 33 + b"\r\n",
    b"mg foo v v\r\n",
    b"mg foo P L k\r\n",
]

RESP = [
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
    b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n$2\r\nEX\r\n$2\r\n60\r\n",
    b"*4\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n",
    b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n",
    b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n*3\r\n$11\r\nINCRBYFLOAT\r\n$1\r\nn\r\n$3\r\n1.5\r\n",
    b"*4\r\n$8\r\nGETRANGE\r\n$1\r\nk\r\n$1\r\n0\r\n$2\r\n-1\r\n",
    b"*4\r\n$8\r\nSETRANGE\r\n$1\r\nk\r\n$2\r\n10\r\n$3\r\nabc\r\n",
    b"*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n-1\r\n",
    b"*2\r\n$3\r\nTTL\r\n$1\r\nk\r\n*2\r\n$7\r\nPERSIST\r\n$1\r\nk\r\n",
    b"*3\r\n$6\r\nRENAME\r\n$1\r\na\r\n$1\r\nb\r\n",
    b"*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n*4\r\n$4\r\nSCAN\r\n$1\r\n0\r\n$5\r\nCOUNT\r\n$2\r\n10\r\n",
    b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*1\r\n$4\r\nEXEC\r\n",
    b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*1\r\n$4\r\nPING\r\n",
    b"*2\r\n$4\r\nINFO\r\n$6\r\nmemory\r\n*1\r\n$6\r\nDBSIZE\r\n",
    b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$1\r\n*\r\n",
    b"*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$16\r\nmaxmemory-policy\r\n$11\r\nallkeys-lru\r\n",
    b"*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$1\r\nx\r\n",
    b"*2\r\n$7\r\nCOMMAND\r\n$5\r\nCOUNT\r\n",
    b"*1\r\n$8\r\nFLUSHALL\r\n*1\r\n$4\r\nTIME\r\n",
    b"*3\r\n$5\r\nGETEX\r\n$1\r\nk\r\n$7\r\nPERSIST\r\n",
    b"*-5\r\n*0\r\n",
    b"*99999999999\r\n",
    b"*1\r\n$999999999999\r\n",
    b"*2\r\n$4\r\nINCR\r\n",
    b"*2\r\n$4\r\nSCAN\r\n$20\r\n99999999999999999999\r\n",
    b"*1\r\nx",
    b"PING\r\nSET k \"a\\x41\\n\" \r\nGET 'k'\r\n",
    b"SET k \"unbalanced\r\n",
    b"KEYS [a-\r\n",
    b"ECHO hello\nQUIT\n",
]


def resp(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def bin_req(op, key=b"", extras=b"", value=b"", opaque=0, cas=0):
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0, len(body),
                       opaque, cas) + body


SETX = struct.pack(">II", 0xdeadbeef, 0)
BIN = [
    bin_req(0x01, b"foo", SETX, b"bar"),
    bin_req(0x01, b"foo", SETX, b"bar") + bin_req(0x00, b"foo"),
    bin_req(0x11, b"q", SETX, b"v", 7) + bin_req(0x0d, b"q") + bin_req(0x0a),
    bin_req(0x02, b"k", SETX, b"1") + bin_req(0x03, b"k", SETX, b"22"),
    bin_req(0x0e, b"k", b"", b"tail") + bin_req(0x0f, b"k", b"", b"head"),
    bin_req(0x05, b"n", struct.pack(">QQI", 1, 10, 0)),
    bin_req(0x06, b"n", struct.pack(">QQI", 5, 0, 0xffffffff)),
    bin_req(0x04, b"k") + bin_req(0x14, b"k"),
    bin_req(0x1c, b"k", struct.pack(">I", 10)) + bin_req(0x1d, b"k", struct.pack(">I", 0)),
    bin_req(0x23, b"k", struct.pack(">I", 5)),
    bin_req(0x08, b"", struct.pack(">I", 0)) + bin_req(0x18),
    bin_req(0x0b) + bin_req(0x10) + bin_req(0x10, b"settings"),
    bin_req(0x1b, b"", struct.pack(">I", 1)),
    bin_req(0x20) + bin_req(0x21, b"PLAIN", b"", b"\0u\0p"),
    bin_req(0x01, b"c", SETX, b"x", 0, 12345),
    bin_req(0x07),
    bin_req(0x00, b"k" * 251),
    bin_req(0x00, b"", SETX),
    bin_req(0x0a, b"", b"", b"v"),
    bin_req(0x7f, b"k"),
    struct.pack(">BBHBBHIIQ", 0x80, 0x00, 10, 4, 0, 0, 5, 0, 0),
    struct.pack(">BBHBBHIIQ", 0x80, 0x01, 1, 8, 0, 0, 0xffffffff, 0, 0),
    struct.pack(">BBHBBHIIQ", 0x81, 0x00, 0, 0, 0, 0, 0, 0, 0),
    bin_req(0x01, b"foo", SETX, b"bar")[:30],
]

SPLIT = b"\n=====\n"   # fuzz_exec: what follows is a second client's
MODES = [0x0e, 0x00, 0x1a, 0x64, 0x8c]   # whole; byte by byte; 100 + gaps; 7-byte writes; -R 1


def write(target, seeds):
    d = os.path.join(TOP, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for i, s in enumerate(seeds):
        with open(os.path.join(d, "seed-%03d" % i), "wb") as f:
            f.write(s)


def main():
    write("fuzz_mc_text", TEXT + META)
    write("fuzz_mc_bin", BIN)
    write("fuzz_resp", RESP)
    sessions = TEXT + META + BIN + RESP
    exec_seeds = []
    for i, s in enumerate(sessions):
        exec_seeds.append(bytes([MODES[i % len(MODES)]]) + s)
    # A --resp-port connection (mode bit 0): inline commands are RESP there.
    exec_seeds.append(bytes([0x0f]) + b"set k v\r\nget k\r\n")
    # Two clients (split by SPLIT) taking turns on the same keys.
    big = b"v" * 3000
    for mode, a, b in [
        # the value being written out slowly is deleted, then overwritten
        (0x6e, b"set big 0 0 3000\r\n" + big + b"\r\nget big big big\r\n",
         b"delete big\r\nset big 0 0 1\r\nx\r\n"),
        (0x64, RESP[0] + b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" * 3, RESP[0] + b"*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n"),
        # a transaction while the other client changes its keys
        (0x8e, b"*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n*1\r\n$4\r\nEXEC\r\n",
         b"set n 0 0 3\r\nabc\r\n"),
        # stampede protection: one client wins the recache, the other sees Z
        (0x0e, b"mg hot N30 v c t\r\nms hot 3 T60\r\nnew\r\n", b"mg hot N30 v c t\r\nmg hot v\r\n"),
        # a binary value split across reads while the other appends
        (0x00, BIN[0] + BIN[1], b"append foo 0 0 3\r\nxyz\r\n"),
        (0x1a, b"gets k\r\ncas k 0 0 1 1\r\nx\r\n", b"set k 0 0 1\r\ny\r\ngets k\r\n"),
    ]:
        exec_seeds.append(bytes([mode]) + a + SPLIT + b)
    # Values over half a page are chunked; SETRANGE makes one from a short
    # request. Read it back over every protocol while the other client
    # appends to it and deletes it.
    chunky = (resp(b"SETRANGE", b"big", b"600000", b"abc") + resp(b"GETRANGE", b"big", b"599990", b"-1") +
              resp(b"APPEND", b"big", b"xyz") + resp(b"STRLEN", b"big") + resp(b"GET", b"big"))
    exec_seeds.append(bytes([0x4e]) + chunky + SPLIT + b"get big\r\nmg big v s\r\nappend big 0 0 2\r\nzz\r\n"
                      b"prepend big 0 0 1\r\np\r\ndelete big\r\n")
    exec_seeds.append(bytes([0x0e]) + chunky + SPLIT + BIN[1].replace(b"foo", b"big"))
    write("fuzz_exec", exec_seeds)


if __name__ == "__main__":
    main()
