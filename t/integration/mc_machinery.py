#!/usr/bin/env python3
"""memcached's memory and connection machinery, as its t/ files see it.

The kioku-side proof of memcached 1.6.45's t/ files on that machinery (see
doc/compatibility.md), so that a change that breaks one fails here too,
without memcached's sources:
  - `reclaimed` (issue_163.t, issue_183.t): a new item takes the chunk of an
    expired or flushed one in its class before free memory, found at the
    class's tail at allocation time or freed earlier by the crawler, and
    counts it per class and in total; live items are never counted.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import socket
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


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def ask(s, req, end):
    """Send req, read until the reply ends with end (bounded by the timeout)."""
    s.sendall(req)
    out = b""
    while not out.endswith(end) and len(out) < 1 << 22:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    return out


def stats(s, group=b""):
    out = ask(s, b"stats" + (b" " + group if group else b"") + b"\r\n", b"END\r\n")
    vals = {}
    for line in out.decode().split("\r\n"):
        f = line.split(" ")
        if len(f) == 3 and f[0] == "STAT":
            vals[f[1]] = f[2]
    return vals


def setkey(s, key, size, exptime=0):
    return ask(s, b"set %s 0 %d %d\r\n%s\r\n" % (key, exptime, size, b"v" * size), b"\r\n")


def class_of(s, key_count_before):
    """The class whose items:N:number grew: where the last set went."""
    for k, v in stats(s, b"items").items():
        if k.endswith(":number") and int(v) > key_count_before.get(k, 0):
            return k.split(":")[1]
    return None


def numbers(s):
    return {k: int(v) for k, v in stats(s, b"items").items() if k.endswith(":number")}


def test_flushed_item_at_tail_is_reclaimed():
    """issue_183.t: with no crawler, the set after a flush_all reuses the
    flushed item's chunk at the tail of its class and counts it; the sets
    before it, with nothing dead, count nothing."""
    proc, port = start(["-o", "no_lru_crawler"])
    try:
        s = connect(port)
        before = numbers(s)
        check(setkey(s, b"a", 10) == b"STORED\r\n", "set a")
        cls = class_of(s, before)
        for k in (b"b", b"c"):
            check(setkey(s, k, 10) == b"STORED\r\n", "set " + k.decode())
        st = stats(s)
        check(st.get("reclaimed") == "0", "nothing dead, nothing reclaimed: %s" % st.get("reclaimed"))
        chunks = int(stats(s, b"slabs").get(cls + ":used_chunks", "-1"))
        check(ask(s, b"flush_all\r\n", b"\r\n") == b"OK\r\n", "flush_all")
        check(setkey(s, b"d", 10) == b"STORED\r\n", "set d")
        st = stats(s)
        check(st.get("reclaimed") == "1", "the flushed item at the tail reclaimed: %s"
              % st.get("reclaimed"))
        it = stats(s, b"items")
        check(it.get("items:%s:reclaimed" % cls) == "1", "counted in class %s: %s"
              % (cls, it.get("items:%s:reclaimed" % cls)))
        check(it.get("items:%s:expired_unfetched" % cls) == "1", "never fetched: %s"
              % it.get("items:%s:expired_unfetched" % cls))
        used = int(stats(s, b"slabs").get(cls + ":used_chunks", "-1"))
        check(used == chunks, "its chunk was reused, not a free one: %d -> %d" % (chunks, used))
        check(ask(s, b"get d\r\n", b"END\r\n") == b"VALUE d 0 10\r\n" + b"v" * 10 + b"\r\nEND\r\n",
              "the new item reads back")
        check(ask(s, b"get a\r\n", b"END\r\n") == b"END\r\n", "the flushed one is gone")
        s.close()
    finally:
        kioku_proc.stop(proc)


def test_expired_item_at_tail_is_reclaimed():
    """The same for an item whose TTL ran out, with a one-chunk item of a
    large class (issue_163.t's 66560 bytes)."""
    proc, port = start(["-o", "no_lru_crawler"])
    try:
        s = connect(port)
        before = numbers(s)
        check(setkey(s, b"key", 66560, 1) == b"STORED\r\n", "set key with a TTL")
        cls = class_of(s, before)
        time.sleep(2.1)
        check(setkey(s, b"other", 66570) == b"STORED\r\n", "set another key, same class")
        it = stats(s, b"items")
        check(it.get("items:%s:reclaimed" % cls) == "1", "expired item reclaimed in class %s: %s"
              % (cls, it.get("items:%s:reclaimed" % cls)))
        sl = stats(s, b"slabs")
        check(sl.get(cls + ":used_chunks") == "1", "one chunk in use: %s" % sl.get(cls + ":used_chunks"))
        check(ask(s, b"get other\r\n", b"END\r\n").startswith(b"VALUE other 0 66570\r\n"),
              "the new item reads back")
        s.close()
    finally:
        kioku_proc.stop(proc)


def test_chunk_freed_by_crawler_counts_when_reused():
    """issue_163.t with the crawler on (the default): the crawler frees the
    expired item first (crawler_reclaimed); the next item stored in its
    chunk counts `reclaimed`, once."""
    proc, port = start([])
    try:
        s = connect(port)
        before = numbers(s)
        check(setkey(s, b"key", 66560, 1) == b"STORED\r\n", "set key with a TTL")
        cls = class_of(s, before)
        t0 = time.time()
        while stats(s).get("crawler_reclaimed") != "1" and time.time() - t0 < 5:
            time.sleep(0.1)
        st = stats(s)
        check(st.get("crawler_reclaimed") == "1", "the crawler freed it: %s" % st.get("crawler_reclaimed"))
        check(st.get("reclaimed") == "0", "not yet reused: %s" % st.get("reclaimed"))
        check(setkey(s, b"key", 66570) == b"STORED\r\n", "set key again")
        check(setkey(s, b"key2", 66570) == b"STORED\r\n", "set a second key")
        it = stats(s, b"items")
        check(it.get("items:%s:reclaimed" % cls) == "1", "one reuse counted in class %s: %s"
              % (cls, it.get("items:%s:reclaimed" % cls)))
        check(stats(s).get("reclaimed") == "1", "and in total")
        s.close()
    finally:
        kioku_proc.stop(proc)


def main():
    if not BIN:
        print("mc_machinery: KIOKU_BIN not set; skipped")
        return 77
    for t in (test_flushed_item_at_tail_is_reclaimed, test_expired_item_at_tail_is_reclaimed,
              test_chunk_freed_by_crawler_counts_when_reused):
        print("--", t.__name__)
        t()
    print("mc_machinery: %s" % ("FAIL" if FAILS else "PASS"))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
