#!/usr/bin/env python3
"""Each eviction policy keeps its promise on a real server under memory
pressure: -m 8 and about 3x that written, 1000-byte values, over the
memcached text protocol (pymemcache) and RESP (redis-py), plus a resident
memory bound under 3x oversubscription with mixed sizes.

- volatile-*: a key without a TTL is never evicted; when only such keys are
  left, a write fails with memcached's and Redis's out-of-memory errors.
- noeviction (and -M): writes fail with those errors, reads and deletes work.
- allkeys-lru keeps keys read recently over keys never read.
- allkeys-lfu and the default (allkeys-s3fifo) keep hot keys through a scan
  of cold keys.
- CONFIG SET maxmemory-policy changes the policy of a running server.
- Pages move to the class that needs them after a size shift, and in a
  full cache toward small items' classes.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import random
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402

redis = kioku_proc.import_redis("eviction_policies")

BIN = os.environ.get("KIOKU_BIN")
VAL = b"v" * 1000
MEM_MB = 8


def start(*args):
    return kioku_proc.start(BIN, ["-t", "2", "-m", str(MEM_MB)] + list(args))


def stop(proc):
    proc.terminate()
    proc.wait(timeout=20)


Text = kioku_proc.McText


def fill(c, prefix, n, ttl=0):
    for i in range(n):
        r = c.set("%s%d" % (prefix, i), VAL, ttl)
        if r != "STORED":
            return i, r
    return n, "STORED"


def present(c, prefix, n):
    return sum(c.get("%s%d" % (prefix, i)) is not None for i in range(n))


# Keys of 1000 bytes that fit in -m 8: about 7000.
FIT = MEM_MB * 1024 * 1024 // 1100


def test_volatile(policy):
    proc, port = start("--maxmemory-policy", policy)
    try:
        c = Text(port)
        keep = FIT // 4
        n, r = fill(c, "perm", keep)
        assert n == keep, (policy, n, r)
        n, r = fill(c, "ttl", 3 * FIT, ttl=3600)
        assert n == 3 * FIT, (policy, "ttl writes failed", n, r)
        assert present(c, "perm", keep) == keep, (policy, "a key without TTL was evicted")
        assert int(c.stats()["evictions"]) > 0
        # Only keys without a TTL left: the write fails, nothing is lost.
        for i in range(3 * FIT):
            c.delete("ttl%d" % i)
        n, r = fill(c, "more", 2 * FIT)
        assert r == "SERVER_ERROR out of memory storing object", (policy, r)
        assert present(c, "perm", keep) == keep
        rc = redis.Redis(port=port)
        try:
            rc.set("resp-more", VAL)
            raise AssertionError("RESP write should fail with OOM")
        except redis.exceptions.ResponseError as e:
            assert str(e) == "OOM command not allowed when used memory > 'maxmemory'.", str(e)
        assert rc.get("perm0") == VAL          # reads work
        assert rc.delete("perm0") == 1         # deletes work
    finally:
        stop(proc)


def test_noeviction(args):
    proc, port = start(*args)
    try:
        c = Text(port)
        n, r = fill(c, "k", 3 * FIT)
        assert n < 3 * FIT and r == "SERVER_ERROR out of memory storing object", (args, n, r)
        assert present(c, "k", n) == n, "noeviction lost a key"
        assert int(c.stats()["evictions"]) == 0
        assert c.delete("k0") == "DELETED"
        assert c.set("after-delete", VAL) == "STORED"
    finally:
        stop(proc)


def test_lru():
    # Sampling approximates LRU; ten samples (Redis's advice for accuracy)
    # make the test's margin wide.
    proc, port = start("--maxmemory-policy", "allkeys-lru", "--maxmemory-samples", "10")
    try:
        c = Text(port)
        n = FIT
        fill(c, "old", n)
        time.sleep(2.1)                 # access times have one-second resolution
        hot = [i for i in range(0, n, 4) if c.get("old%d" % i) is not None]
        time.sleep(1.1)
        fill(c, "new", FIT // 2)        # true LRU would evict only cold keys
        kept_hot = sum(c.get("old%d" % i) is not None for i in hot)
        cold = [i for i in range(n) if i % 4]
        kept_cold = sum(c.get("old%d" % i) is not None for i in cold)
        assert kept_hot >= len(hot) * 0.85, (kept_hot, len(hot))
        assert kept_hot / len(hot) > 2 * max(kept_cold, 1) / len(cold), (kept_hot, kept_cold)
    finally:
        stop(proc)


def test_scan_resistance(args):
    proc, port = start(*args)
    try:
        c = Text(port)
        hot = FIT // 10
        fill(c, "hot", hot)
        for _ in range(20):
            for i in range(hot):
                c.get("hot%d" % i)
        for rnd in range(3):            # a scan of 3x memory in one-time keys
            fill(c, "scan%d-" % rnd, FIT)
            for i in range(hot):
                c.get("hot%d" % i)
        kept = present(c, "hot", hot)
        assert kept >= hot * 0.9, (args, kept, hot)
    finally:
        stop(proc)


def test_config_set_switches_policy():
    proc, port = start()
    try:
        rc = redis.Redis(port=port)
        assert rc.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-s3fifo"
        rc.config_set("maxmemory-policy", "noeviction")
        c = Text(port)
        n, r = fill(c, "k", 3 * FIT)
        assert r == "SERVER_ERROR out of memory storing object", (n, r)
        rc.config_set("maxmemory-policy", "allkeys-lru")
        assert c.set("after-switch", VAL) == "STORED"
        assert int(c.stats()["evictions"]) > 0
    finally:
        stop(proc)


def test_size_shift():
    """A cache full of 100-byte values, then a working set of 10 KB values
    as large as most of memory: with the default automove, pages move to
    the new size's class and its hit ratio recovers (memcached's slabs
    commands answer as memcached's)."""
    proc, port = start("-m", "16")
    try:
        c = Text(port)
        st = c.stats("settings")
        assert st["slab_reassign"] == "yes" and st["slab_automove"] == "1", st
        assert c.line("slabs reassign 1 1") == "SAME src and dst class are identical"
        assert c.line("slabs reassign 1 99") == "BADCLASS invalid src or dst class id"
        assert c.line("slabs automove 3") == "ERROR"
        assert c.line("slabs automove x") == "CLIENT_ERROR bad command line format"
        assert c.line("slabs bogus") == "ERROR"
        small = b"s" * 100
        for i in range(200000):
            c.s.sendall(b"set s%d 0 0 100 noreply\r\n%s\r\n" % (i, small))
        assert c.line("mn") == "MN"
        big = b"b" * 10000
        deadline = time.time() + 90
        ratio = 0.0
        while time.time() < deadline:
            hits = 0
            for i in range(1000):
                if c.get("b%d" % i) is not None:
                    hits += 1
                else:
                    c.s.sendall(b"set b%d 0 0 10000 noreply\r\n%s\r\n" % (i, big))
            ratio = hits / 1000
            if ratio >= 0.75:
                break
        st = c.stats()
        assert ratio >= 0.75, "hit ratio stayed at %.2f, %s pages moved" % (ratio, st["slabs_moved"])
        assert int(st["slabs_moved"]) > 0
        # A move by hand from the 100-byte class, as memcached's command.
        slabs = c.stats("slabs")
        pages = {k.split(":")[0]: int(v) for k, v in slabs.items() if k.endswith(":total_pages")}
        src = max(pages, key=lambda k: pages[k])
        dst = "1" if src != "1" else "2"
        assert c.line("slabs reassign %s %s" % (src, dst)) in (
            "OK", "BUSY currently processing reassign request"), (src, pages)
    finally:
        stop(proc)


def class_pages(c):
    """{chunk_size: total_pages} of the classes holding pages."""
    slabs = c.stats("slabs")
    size = {k.split(":")[0]: int(v) for k, v in slabs.items() if k.endswith(":chunk_size")}
    return {size[k.split(":")[0]]: int(v) for k, v in slabs.items()
            if k.endswith(":total_pages") and int(v) > 0}


def test_balance_favours_small_items():
    """A full cache of 200-byte and 4000-byte values read equally often, every
    class evicting: the default automove moves pages from the large values'
    class to the small ones', where a page keeps 16 times the keys (it
    balances T x chunk size^1.5, T = items / evictions a second). With
    automove off, no page moves."""
    small, big = b"s" * 200, b"b" * 4000
    rng = random.Random(7)

    def load(c, seconds):
        end = time.time() + seconds
        while time.time() < end:
            for _ in range(200):
                if rng.random() < 0.5:
                    k, v = "s%d" % rng.randrange(100000), small
                else:
                    k, v = "b%d" % rng.randrange(20000), big
                if c.get(k) is None:
                    c.s.sendall(b"set %s 0 0 %d noreply\r\n%s\r\n" % (k.encode(), len(v), v))
            assert c.line("mn") == "MN"
            yield

    for automove in ("1", "0"):
        proc, port = start("-m", "16", "-o", "slab_automove=" + automove)
        try:
            c = Text(port)
            for _ in load(c, 4):
                pass
            before = class_pages(c)
            lo, hi = min(before), max(before)
            moved0 = int(c.stats()["slabs_moved"])
            after = before
            for _ in load(c, 30 if automove == "1" else 4):
                after = class_pages(c)
                if automove == "1" and after.get(lo, 0) >= before[lo] + 3:
                    break
            moved = int(c.stats()["slabs_moved"]) - moved0
            if automove == "1":
                assert after.get(lo, 0) >= before[lo] + 3 and after[hi] < before[hi], \
                    (before, after, moved)
                assert moved >= 3, moved
            else:
                assert moved == 0 and after == before, (before, after, moved)
        finally:
            stop(proc)


def test_crawler_frees_expired_items():
    """Expired items nobody asks for are freed in the background."""
    proc, port = start()
    try:
        c = Text(port)
        n, r = fill(c, "short", 2000, ttl=1)
        assert n == 2000, r
        fill(c, "long", 100)
        deadline = time.time() + 20
        st = c.stats()
        while time.time() < deadline:
            st = c.stats()
            if int(st["curr_items"]) == 100:
                break
            time.sleep(0.2)
        assert int(st["curr_items"]) == 100, st["curr_items"]
        assert int(st["crawler_reclaimed"]) >= 2000, st["crawler_reclaimed"]
        assert int(st["expired_unfetched"]) >= 2000
        assert present(c, "long", 100) == 100
    finally:
        stop(proc)


def sanitized(path):
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "libasan" in out or "libtsan" in out


def test_rss_bound():
    """3x -m written in mixed sizes (100 B to 600 KB, so chunked values too)
    over 20 connections: resident memory stays under -m plus the documented
    overhead (doc/memory.md): one page per slab class beyond -m, the hash
    table, and a few MiB of buffers and thread stacks."""
    if sanitized(BIN):
        return
    mem = 32
    proc, port = kioku_proc.start(BIN, ["-t", "2", "-m", str(mem), "-I", "1m"])
    try:
        base = kioku_proc.proc_kb(proc.pid, "VmRSS")
        conns = [Text(port) for _ in range(20)]
        rnd = random.Random(7)
        written = 0
        i = 0
        while written < 3 * mem * 1024 * 1024:
            size = rnd.choice([100, 500, 2000, 20000, 200000, 600000])
            conns[i % 20].set("k%d" % i, b"x" * size)
            written += size
            i += 1
        st = conns[0].stats()
        classes = int(len([k for k in conns[0].stats("slabs") if k.endswith(":chunk_size")]))
        grown = kioku_proc.proc_kb(proc.pid, "VmRSS") - base
        bound = (mem + classes + 8) * 1024 + int(st["hash_bytes"]) // 1024
        assert int(st["evictions"]) > 0
        assert grown <= bound, "RSS grew %d KiB, bound %d KiB" % (grown, bound)
    finally:
        stop(proc)


def main():
    if not BIN:
        return 77
    for p in ("volatile-lru", "volatile-lfu", "volatile-ttl", "volatile-random"):
        test_volatile(p)
    test_noeviction(["--maxmemory-policy", "noeviction"])
    test_noeviction(["-M"])
    test_lru()
    test_scan_resistance(["--maxmemory-policy", "allkeys-lfu"])
    test_scan_resistance([])
    test_config_set_switches_policy()
    test_size_shift()
    test_balance_favours_small_items()
    test_crawler_frees_expired_items()
    test_rss_bound()
    print("eviction_policies: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
