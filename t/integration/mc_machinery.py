#!/usr/bin/env python3
"""memcached's memory and connection machinery, as its t/ files see it.

The kioku-side proof of memcached 1.6.45's t/ files on that machinery (see
doc/compatibility.md), so that a change that breaks one fails here too,
without memcached's sources:
  - `reclaimed` (issue_163.t, issue_183.t): a new item takes the chunk of an
    expired or flushed one in its class before free memory, found at the
    class's tail at allocation time or freed earlier by the crawler, and
    counts it per class and in total; live items are never counted;
  - the global page pool (slabs-reassign2.t): at the limit the automover
    parks the pages of a class with spare chunks there, still held
    (total_malloced stays exactly -m), any class takes them first,
    `slabs reassign <id> 0` parks one and `slabs reassign 0 <id>` hands
    one out; a lower cache_memlimit gives the parked pages back first;
  - -o read_buf_mem_limit (conn-limits.t's option): connection buffers
    past the ones each connection starts with stay within the limit; a
    request that needs more read buffer gets memcached's "SERVER_ERROR out
    of memory reading request" and is closed (read_buf_oom), while replies
    wait for the write buffer to drain instead of growing it;
  - class ids (slabs-cas.t, slabs_reassign.t): memcached's table in every
    stat, a class summing the two halves kioku splits it into.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402

BIN = os.environ.get("KIOKU_BIN")
FAILS = kioku_proc.Failures()
check = FAILS.check


def start(args):
    return kioku_proc.start(BIN, ["-t", "2"] + args)


connect = kioku_proc.connect
ask = kioku_proc.mc_ask
stats = kioku_proc.mc_stats


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
        while stats(s).get("crawler_reclaimed") != "1" and time.time() - t0 < 30:
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


def fill(s, prefix, count, size):
    """count noreply sets of size-byte values, then a round trip."""
    val = b"B" * size
    for lo in range(0, count, 100):
        s.sendall(b"".join(b"set %s%d 0 0 %d noreply\r\n%s\r\n" % (prefix, k, size, val)
                           for k in range(lo, min(lo + 100, count))))
    check(ask(s, b"version\r\n", b"\r\n").startswith(b"VERSION"), "round trip after the sets")


def wait_stat(s, name, pred, secs):
    t0 = time.time()
    while True:
        v = int(stats(s).get(name, "-1"))
        if pred(v) or time.time() - t0 > secs:
            return v
        time.sleep(0.25)


def test_automove_parks_pages_at_the_limit():
    """slabs-reassign2.t at a small scale: pages parked at the limit stay
    held and serve a new class; reassign to 0 parks; a lower limit frees."""
    proc, port = start(["-m", "16", "-o", "slab_reassign,slab_automove"])
    mib16 = 16 * 1024 * 1024
    try:
        s = connect(port)
        check(ask(s, b"slabs reassign 0 1\r\n", b"\r\n") ==
              b"NOSPARE source class has no spare pages\r\n", "an empty pool has no page to give")
        fill(s, b"n", 2000, 11000)
        st = stats(s)
        check(int(st.get("evictions", "0")) > 0, "the cache is full: %s" % st.get("evictions"))
        check(st.get("slab_global_page_pool") == "0", "no page parked while full: %s"
              % st.get("slab_global_page_pool"))
        check(stats(s, b"slabs").get("total_malloced") == str(mib16), "total_malloced is -m")
        # Half the items go: every page of the class is half free.
        s.sendall(b"".join(b"delete n%d noreply\r\n" % k for k in range(0, 2000, 2)))
        pool = wait_stat(s, "slab_global_page_pool", lambda v: v >= 5, 20)
        check(pool >= 5, "the automover parked pages: %d" % pool)
        check(stats(s, b"slabs").get("total_malloced") == str(mib16),
              "parked pages are still held: %s" % stats(s, b"slabs").get("total_malloced"))
        # A new class takes the parked pages, not memory past -m.
        ev0 = int(stats(s).get("evictions", "0"))
        fill(s, b"i", 300, 6000)
        st = stats(s)
        check(int(st["slab_global_page_pool"]) < pool, "a new class took parked pages: %s -> %s"
              % (pool, st["slab_global_page_pool"]))
        check(int(st["evictions"]) == ev0, "without evicting: %d -> %s" % (ev0, st["evictions"]))
        check(stats(s, b"slabs").get("total_malloced") == str(mib16), "still exactly -m")
        hits = ask(s, b"get i0 i299\r\n", b"END\r\n").count(b"VALUE ")
        check(hits == 2, "the new items read back: %d" % hits)
        # slabs reassign to 0 parks a page by hand.
        sl = stats(s, b"slabs")
        big = max((k.split(":")[0] for k in sl if k.endswith(":total_pages")),
                  key=lambda c: int(sl[c + ":total_pages"]))
        before = int(stats(s)["slab_global_page_pool"])
        check(ask(s, b"slabs reassign %s 0\r\n" % big.encode(), b"\r\n") == b"OK\r\n",
              "slabs reassign %s 0" % big)
        after = wait_stat(s, "slab_global_page_pool", lambda v: v > before, 5)
        check(after > before, "the page was parked: %d -> %d" % (before, after))
        check(stats(s, b"slabs").get("total_malloced") == str(mib16), "and still held")
        # slabs reassign 0 <id> gives a parked page to a class, at once.
        pages = int(stats(s, b"slabs").get("1:total_pages", "0"))
        check(ask(s, b"slabs reassign 0 1\r\n", b"\r\n") == b"OK\r\n", "slabs reassign 0 1")
        check(int(stats(s)["slab_global_page_pool"]) == after - 1, "one page left the pool")
        check(int(stats(s, b"slabs").get("1:total_pages", "0")) == pages + 1, "class 1 has it")
        # A lower limit gives parked pages back first.
        check(ask(s, b"cache_memlimit 12\r\n", b"\r\n") == b"OK\r\n", "cache_memlimit 12")
        tm = int(stats(s, b"slabs")["total_malloced"])
        check(tm < mib16, "parked pages went back to the system: %d" % tm)
        s.close()
    finally:
        kioku_proc.stop(proc)


def test_reassign_to_pool_shrinks_the_class():
    """slabs-mover.t's empty_class: each `slabs reassign <id> 0` takes a
    page from the class, its items moving to the class's free chunks or
    going; a move never takes a new page to hold them, so the loop ends in
    NOSPARE with one page left."""
    proc, port = start(["-m", "12", "-o", "no_lru_crawler,slab_reassign,slab_automove=0"])
    try:
        s = connect(port)
        fill(s, b"r", 400, 20000)
        sl = stats(s, b"slabs")
        cls = max((k.split(":")[0] for k in sl if k.endswith(":total_pages")),
                  key=lambda c: int(sl[c + ":total_pages"]))
        pages = int(sl[cls + ":total_pages"])
        check(pages >= 4, "the class holds pages: %d" % pages)
        for n in range(1, pages):
            moved = int(stats(s)["slabs_moved"])
            check(ask(s, b"slabs reassign %s 0\r\n" % cls.encode(), b"\r\n") == b"OK\r\n",
                  "slabs reassign %s 0 (%d)" % (cls, n))
            wait_stat(s, "slabs_moved", lambda v: v > moved, 5)
            left = int(stats(s, b"slabs").get(cls + ":total_pages", "0"))
            check(left == pages - n, "the class gave a page: %d pages, %d moves" % (left, n))
        check(ask(s, b"slabs reassign %s 0\r\n" % cls.encode(), b"\r\n") ==
              b"NOSPARE source class has no spare pages\r\n", "its last page stays")
        check(int(stats(s)["slab_global_page_pool"]) == pages - 1, "the pages are in the pool")
        s.close()
    finally:
        kioku_proc.stop(proc)


def test_classes_are_memcacheds_and_a_class_sums_its_halves():
    """memcached's class ids in every stat (slabs-cas.t and slabs_reassign.t
    name them), while with -m 63 or more kioku splits the smaller classes
    in two (doc/memory.md): an item just above the class below and one that
    fills its chunk both count in that class, which then holds a page per
    half; with -m 32 there is no split and they share one page."""
    for mem, pages_want in (("64", 2), ("32", 1)):
        proc, port = start(["-m", mem, "-o", "slab_reassign,slab_automove=0"])
        try:
            s = connect(port)
            check(setkey(s, b"probe0", 500) == b"STORED\r\n", "set probe0")
            cls = class_of(s, {})
            size = int(stats(s, b"slabs")[cls + ":chunk_size"])
            below = int(size / 1.25)
            # An item is 40 bytes of header, the 6-byte key, the value, CRLF.
            check(ask(s, b"delete probe0\r\n", b"\r\n") == b"DELETED\r\n", "delete probe0")
            for i, item in enumerate((below + 8, size)):
                key = b"half%02d" % i
                check(setkey(s, key[:6], item - 48) == b"STORED\r\n", "set %r" % key)
            items = stats(s, b"items")
            check(items.get("items:%s:number" % cls) == "2",
                  "-m %s: both halves counted in class %s: %r" %
                  (mem, cls, {k: v for k, v in items.items() if k.endswith(":number")}))
            sl = stats(s, b"slabs")
            check(int(sl[cls + ":total_pages"]) == pages_want,
                  "-m %s: class %s holds %s pages, want %d" %
                  (mem, cls, sl[cls + ":total_pages"], pages_want))
            check(int(sl[cls + ":chunk_size"]) == size, "the reported chunk size is the class's")
            dump = ask(s, b"stats cachedump %s 0\r\n" % cls.encode(), b"END\r\n")
            check(b"ITEM half00 " in dump and b"ITEM half01 " in dump,
                  "cachedump lists both halves: %r" % dump)
            s.close()
        finally:
            kioku_proc.stop(proc)


def bufs(s):
    st = stats(s)
    return {k: int(st[k]) for k in st if k.startswith(("read_buf", "response_obj"))}


def reader_conns(port, n):
    cs = []
    for _ in range(n):
        # A small receive window, so replies pile up in the server.
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.settimeout(10)
        c.connect(("127.0.0.1", port))
        cs.append(c)
    return cs


REPLIES = 8     # multi-gets of 2000 400-byte values each client sends


def queued_reply_memory(limit_args):
    """Growth of the worker's buffers while 6 clients that do not read have
    each asked for about 7 MB of copied 400-byte values (more than the
    kernel holds for a socket: tcp_wmem's 4 MiB, which a slow server, as
    under ASan, lets it reach); then every reply
    is read back whole."""
    proc, port = start(["-t", "1"] + limit_args)
    try:
        s = connect(port)
        fill(s, b"k", 2000, 400)
        line = b"get " + b" ".join(b"k%d" % i for i in range(2000)) + b"\r\n"
        cs = reader_conns(port, 6)
        t0 = time.time()
        while bufs(s)["read_buf_count"] < 2 * 7 and time.time() - t0 < 5:
            time.sleep(0.05)    # the worker has taken them all
        base = bufs(s)["read_buf_bytes"]
        for c in cs:
            c.sendall(line * REPLIES)
        peak = 0
        for _ in range(10):
            time.sleep(0.2)
            peak = max(peak, bufs(s)["read_buf_bytes"] - base)
        want = b"".join(b"VALUE k%d 0 400\r\n%s\r\n" % (i, b"B" * 400) for i in range(2000)) + b"END\r\n"
        for c in cs:
            c.settimeout(20)
            got = bytearray(REPLIES * len(want))
            view, n = memoryview(got), 0
            while n < len(got):
                k = c.recv_into(view[n:])
                if k == 0:
                    break
                n += k
            check(n == len(got) and got == want * REPLIES,
                  "a client's replies came whole (%d of %d bytes)" % (n, len(got)))
            c.close()
        oom = bufs(s)["response_obj_oom"]
        s.close()
        return peak, oom
    finally:
        kioku_proc.stop(proc)


def test_read_buf_mem_limit_bounds_reply_buffers():
    """Without a limit the six write buffers grow towards 512 KiB each; with
    read_buf_mem_limit=1 (one worker) they stay within 1 MiB past their
    first 2 KiB, and no client is dropped for it."""
    free_peak, _ = queued_reply_memory([])
    peak, oom = queued_reply_memory(["-o", "read_buf_mem_limit=1"])
    print("   buffer growth: %d bytes without a limit, %d with 1 MiB" % (free_peak, peak))
    check(free_peak > 1024 * 1024, "without a limit they grow: %d" % free_peak)
    check(peak <= 1024 * 1024, "with it, within the limit: %d" % peak)
    check(oom == 0, "no client dropped: response_obj_oom %d" % oom)


def test_read_buf_mem_limit_refuses_long_requests():
    """30 clients each send 40 KB of a 60 KB get line, which needs a 64 KiB
    read buffer (48 KiB past the first one): 1 MiB holds at most 21 of
    those, the others are told memcached's error and closed; the ones kept
    are answered."""
    proc, port = start(["-t", "1", "-o", "read_buf_mem_limit=1"])
    try:
        s = connect(port)
        st = stats(s, b"settings")
        check(st.get("read_buf_mem_limit") == str(1 << 20), "stats settings: %s"
              % st.get("read_buf_mem_limit"))
        keys = b" ".join(b"key%06d" % i for i in range(6000))
        line = b"get " + keys + b"\r\n"
        half = 40000
        cs = [connect(port) for _ in range(30)]
        for c in cs:
            c.sendall(line[:half])
        # Until the worker has taken all 30 and decided on each: refused
        # (counted, closed) or kept with its 64 KiB read buffer (and 2 KiB
        # write buffer). A fixed 0.5 s let a slow sanitizer run count a
        # client not yet read as kept.
        t0 = time.time()
        while time.time() - t0 < 30:
            b = bufs(s)
            held = b["read_buf_count"] // 2 - 1     # not counting s
            if b["read_buf_oom"] + held == 30 and b["read_buf_bytes"] >= held * (65536 + 2048):
                break
            time.sleep(0.05)
        refused, kept = 0, []
        for c in cs:
            c.settimeout(0.5)
            try:
                out = c.recv(4096)
            except socket.timeout:
                kept.append(c)
                continue
            check(out == b"SERVER_ERROR out of memory reading request\r\n",
                  "memcached's error: %r" % out[:80])
            c.settimeout(5)
            try:
                end = c.recv(4096)
            except ConnectionResetError:    # closed with our bytes unread
                end = b""
            check(end == b"", "then closed")
            refused += 1
        # 21 when the clients are served one after another; fewer if some
        # grew part way at the same time. More would break the bound.
        check(15 <= len(kept) <= 21 and refused == 30 - len(kept),
              "at most 21 kept (%d), the rest refused (%d)" % (len(kept), refused))
        check(bufs(s)["read_buf_oom"] == refused, "read_buf_oom counts them: %d"
              % bufs(s)["read_buf_oom"])
        for c in kept:
            c.settimeout(10)
            check(ask(c, line[half:], b"END\r\n") == b"END\r\n", "a kept client is answered")
            c.close()
        check(ask(s, b"version\r\n", b"\r\n").startswith(b"VERSION"), "the server serves on")
        s.close()
    finally:
        kioku_proc.stop(proc)
    r = subprocess.run([BIN, "-p", "0", "-U", "0", "-o", "read_buf_mem_limit=x"] +
                       kioku_proc.ROOT_ARGS, capture_output=True, text=True, timeout=10)
    check(r.returncode != 0 and "read_buf_mem_limit must be 0 (no limit) to 4095 megabytes"
          in r.stderr, "a bad value is refused: %d %r" % (r.returncode, r.stderr))


def main():
    if not BIN:
        print("mc_machinery: KIOKU_BIN not set; skipped")
        return 77
    for t in (test_flushed_item_at_tail_is_reclaimed, test_expired_item_at_tail_is_reclaimed,
              test_chunk_freed_by_crawler_counts_when_reused,
              test_automove_parks_pages_at_the_limit, test_reassign_to_pool_shrinks_the_class,
              test_classes_are_memcacheds_and_a_class_sums_its_halves,
              test_read_buf_mem_limit_bounds_reply_buffers,
              test_read_buf_mem_limit_refuses_long_requests):
        print("--", t.__name__)
        t()
    print("mc_machinery: %s" % ("FAIL" if FAILS else "PASS"))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
