#!/usr/bin/env python3
"""A large value goes into a cache full of small items by evicting them, as
with Redis and with memcached's page mover: -m 64 filled with ~1 KB items
over the memcached text protocol until evictions start, then a 10 MiB value
over RESP (redis-py) and a 2 MiB one over the text protocol (-I 4m) are
stored and read back byte for byte; pages moved and small items evicted.

Also while two clients keep storing small items. Under noeviction (-M)
the same SET still fails with Redis's and memcached's
out-of-memory errors, and under volatile-lru a cache whose small items have
no TTL keeps them all and refuses the large value; with TTLs it is stored.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402

redis = kioku_proc.import_redis("large_values")

BIN = os.environ.get("KIOKU_BIN")
SMALL = b"s" * 1000
FILL_MAX = 200000           # items, far more than -m 64 holds
FILL_SECONDS = 60


class Text(kioku_proc.McText):
    """kioku_proc's text client; stats() also merges `stats kioku`."""

    def __init__(self, port):
        super().__init__(port, timeout=30)

    def stats(self, what=""):
        out = super().stats(what)
        if not what:
            out.update(super().stats("kioku"))
        return out


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


def fill(t, ttl=0):
    """Small items until evictions start (bounded in count and time); the
    number written."""
    deadline = time.time() + FILL_SECONDS
    n = 0
    while n < FILL_MAX and time.time() < deadline:
        replies = t.set_many(["small:%d" % (n + i) for i in range(500)], SMALL, ttl)
        check(all(r == "STORED" for r in replies), "filling: %s" % replies[:3])
        n += 500
        if n % 5000 == 0 and int(t.stats()["evictions"]) > 0:
            break
    st = t.stats()
    check(int(st["evictions"]) > 0, "no eviction after %d small items" % n)
    return n


def blob(n, seed):
    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(4096)) * (n // 4096) + b"x" * (n % 4096)


def test_large_values_evict_small_items():
    proc, port = kioku_proc.start(BIN, ["-t", "2", "-m", "64", "-I", "4m"])
    try:
        t = Text(port)
        n = fill(t)
        before = t.stats()
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=30)
        big = blob(10 << 20, 1)
        check(r.set("big:resp", big) is True, "RESP SET of 10 MiB")
        check(r.get("big:resp") == big, "10 MiB value read back over RESP")
        check(t.get("big:resp") == big, "10 MiB value read back over text")
        mid = blob(2 << 20, 2)
        check(t.set("big:text", mid) == "STORED", "text set of 2 MiB")
        check(t.get("big:text") == mid, "2 MiB value read back over text")
        # Eviction is per class: the 2 MiB value may have evicted the 10 MiB
        # one from the largest class, but never a part of it.
        check(r.get("big:resp") in (big, None), "10 MiB value whole or gone")
        after = t.stats()
        check(int(after["slabs_moved"]) > int(before["slabs_moved"]), "no page moved")
        evicted = int(after["slab_reassign_evictions_nomem"])
        check(evicted > 0, "no small item evicted")
        check(int(after["evictions"]) >= int(before["evictions"]) + evicted,
              "evictions did not count the page moves' evictions")
        check(r.info("stats")["evicted_keys"] == int(after["evictions"]), "INFO evicted_keys")
        check(int(after["curr_items"]) < n, "small items were evicted")
        # The server still serves small items.
        check(t.set("small:after", SMALL) == "STORED", "small set afterwards")
        check(t.get("small:after") == SMALL, "small get afterwards")
        t.close()
        r.close()
    finally:
        kioku_proc.stop(proc)


def test_noeviction_still_refuses():
    proc, port = kioku_proc.start(BIN, ["-t", "2", "-m", "64", "-I", "4m", "-M"])
    try:
        t = Text(port)
        deadline = time.time() + FILL_SECONDS
        n = 0
        while n < FILL_MAX and time.time() < deadline:
            replies = t.set_many(["small:%d" % (n + i) for i in range(500)], SMALL)
            n += 500
            if any(x != "STORED" for x in replies):
                check(all(x in ("STORED", "SERVER_ERROR out of memory storing object")
                          for x in replies), "-M fill: %s" % set(replies))
                break
        items = int(t.stats()["curr_items"])
        check(t.set("big:text", blob(2 << 20, 3)) == "SERVER_ERROR out of memory storing object",
              "-M refuses the 2 MiB value")
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=30)
        try:
            r.set("big:resp", blob(3 << 20, 4))
            check(False, "-M accepted a 3 MiB RESP SET")
        except redis.exceptions.ResponseError as e:
            check(str(e) == "OOM command not allowed when used memory > 'maxmemory'.", str(e))
        st = t.stats()
        check(int(st["curr_items"]) == items, "-M evicted nothing")
        check(int(st["slabs_moved"]) == 0, "-M moved no page")
        t.close()
        r.close()
    finally:
        kioku_proc.stop(proc)


def test_volatile_keeps_keys_without_ttl():
    proc, port = kioku_proc.start(BIN, ["-t", "2", "-m", "64", "-I", "4m"])
    try:
        t = Text(port)
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=30)
        fill(t)                 # allkeys: fill until evictions start
        r.config_set("maxmemory-policy", "volatile-lru")
        items = int(t.stats()["curr_items"])
        check(t.set("big:text", blob(2 << 20, 5)) == "SERVER_ERROR out of memory storing object",
              "volatile-lru with no TTL anywhere refuses the 2 MiB value")
        check(int(t.stats()["curr_items"]) == items, "volatile-lru evicted a key without TTL")
        t.close()
        r.close()
    finally:
        kioku_proc.stop(proc)
    proc, port = kioku_proc.start(BIN, ["-t", "2", "-m", "64", "-I", "4m"])
    try:
        t = Text(port)
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=30)
        fill(t, ttl=3600)
        r.config_set("maxmemory-policy", "volatile-lru")
        mid = blob(2 << 20, 6)
        check(t.set("big:text", mid) == "STORED", "volatile-lru with TTLs stores 2 MiB")
        check(t.get("big:text") == mid, "2 MiB value read back")
        t.close()
        r.close()
    finally:
        kioku_proc.stop(proc)


def test_large_values_while_small_writers_run():
    """Pages move while other clients store, read and evict small items."""
    proc, port = kioku_proc.start(BIN, ["-t", "2", "-m", "64", "-I", "4m"])
    errors = []
    done = threading.Event()

    def writer(w):
        try:
            c = Text(port)
            deadline = time.time() + 60
            i = 0
            while not done.is_set() and i < 100000 and time.time() < deadline:
                keys = ["w%d:%d" % (w, i + k) for k in range(200)]
                if any(x != "STORED" for x in c.set_many(keys, SMALL)):
                    errors.append("writer %d: a small set failed" % w)
                    return
                got = c.get(keys[-1])
                if got not in (SMALL, None):
                    errors.append("writer %d: bad small value" % w)
                    return
                i += 200
            c.close()
        except OSError as e:
            errors.append("writer %d: %s" % (w, e))

    try:
        t = Text(port)
        fill(t)
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
        for th in threads:
            th.start()
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=60)
        for k in range(6):
            v = blob((3 << 20) + k * 65536, 10 + k)
            check(r.set("big:%d" % k, v) is True, "large SET %d among writers" % k)
            got = r.get("big:%d" % k)
            check(got in (v, None), "large value %d whole or gone" % k)
        done.set()
        for th in threads:
            th.join(timeout=90)
        check(not errors, "; ".join(errors))
        check(int(t.stats()["slabs_moved"]) > 0, "no page moved")
        t.close()
        r.close()
    finally:
        done.set()
        kioku_proc.stop(proc)


def main():
    if not BIN:
        print("large_values: KIOKU_BIN is not set; skipped")
        return 77
    for test in (test_large_values_evict_small_items, test_noeviction_still_refuses,
                 test_volatile_keeps_keys_without_ttl, test_large_values_while_small_writers_run):
        t0 = time.time()
        test()
        print("ok %s (%.1f s)" % (test.__name__, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
