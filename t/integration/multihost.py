#!/usr/bin/env python3
"""More than one host, on the tools users already run (issue 10): kioku
builds no cluster of its own, so it must work behind twemproxy and under
consistent-hash clients. Each part starts three kioku on free loopback
ports and checks, per key, which server holds it (direct connections):

  1. twemproxy (nutcracker) with doc/nutcracker.yml, its ports replaced:
     a. the memcache pool (ketama, md5, auto_eject_hosts): keys set
        through the proxy spread over all three, every key reads back with
        a multi-key get the proxy splits across servers, the storage and
        arithmetic commands pass through, errors (incr of a non-number, a
        value over -I) reach the client on a connection that goes on; with
        one kioku stopped the proxy ejects it, keys held by the other two
        still hit, only the stopped one's share misses, and new sets of
        that share land on the others.
     b. the redis pool (redis: true) with redis-py: SET/GET/DEL/INCR/
        EXPIRE/TTL/MGET/MSET/EXISTS/PING and an error pass through and keys
        spread over all three; with one stopped, the others' keys still
        read back.
     c. 8 clients of each pool at once, which the proxy interleaves on one
        connection per server, each read back their own values; the
        proxy's stats show no server error, time-out or ejection before the
        stop, and an ejection in each pool after it.
  2. consistent-hash clients, the same checks without a proxy:
     a. libmemcached's ketama (pylibmc, behaviors ketama + remove_failed),
     b. pymemcache's HashClient (ignore_exc, dead_timeout).

doc/operator-guide.md must show doc/nutcracker.yml as it is, so the
documented setup is the tested one. nutcracker runs in the foreground with
its own pid and log files under a temporary directory and is stopped by
PID, like the servers. Every wait is bounded; the whole test takes seconds.
Exit: 0 pass, 1 fail, 77 skip (no KIOKU_BIN, or no nutcracker, pylibmc,
pymemcache or redis-py installed; without nutcracker the clients' parts
still run and can fail).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

try:
    import pylibmc
    import redis
    from pymemcache.client.base import Client
    from pymemcache.client.hash import HashClient
    from pymemcache.exceptions import MemcacheClientError, MemcacheServerError
except ImportError:
    # pyenv and virtualenvs hide the distribution's packages: try its python.
    if os.path.exists("/usr/bin/python3") and not os.environ.get("KIOKU_MULTIHOST_REEXEC"):
        os.environ["KIOKU_MULTIHOST_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("multihost: needs python3-pylibmc, python3-pymemcache and python3-redis; skipped")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402

BIN = os.environ.get("KIOKU_BIN")
SRCDIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
YML = os.path.join(SRCDIR, "doc", "nutcracker.yml")
GUIDE = os.path.join(SRCDIR, "doc", "operator-guide.md")
# The addresses doc/nutcracker.yml uses: two proxy pools, three servers.
DOC_PROXY_PORTS = (22121, 22122)
DOC_SERVER_PORTS = (11211, 11212, 11213)
N = 1500
DEAD = 1  # which of the three is stopped

failures = []
procs = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL: " + what)
    return ok


def start_trio():
    out = []
    for _ in range(3):
        proc, port = kioku_proc.start(BIN, ["-t", "2", "-m", "64"])
        procs.append(proc)
        out.append((proc, port))
    return out


def stop(proc, ok=(0,)):
    """SIGTERM: kioku exits 0, unless a sanitizer reported something."""
    if proc.poll() is None:
        kioku_proc.stop(proc)
        check(proc.returncode in ok, "%s exited %d" % (proc.args[0], proc.returncode))


def direct(port):
    return Client(("127.0.0.1", port), connect_timeout=5, timeout=5, default_noreply=False)


def homes(trio, keys):
    """{key: index of the one server holding it}; a key on two is a failure."""
    where = {}
    for i, (_, port) in enumerate(trio):
        c = direct(port)
        for at in range(0, len(keys), 200):
            for k in c.get_many(keys[at:at + 200]):
                k = k.decode() if isinstance(k, bytes) else k
                check(k not in where, "%s is on server %s and %d" % (k, where.get(k), i))
                where[k] = i
        c.close()
    return where


def check_spread(where, keys, label):
    """Every key on some server, each server a fair share (a third +- half)."""
    check(len(where) == len(keys), "%s: %d of %d keys found on a server" %
          (label, len(where), len(keys)))
    counts = [sum(1 for k in keys if where.get(k) == i) for i in range(3)]
    print("%s: keys per server %s" % (label, counts))
    for i, c in enumerate(counts):
        check(len(keys) / 6 <= c <= len(keys) / 2,
              "%s: server %d holds %d of %d keys, not a fair share" % (label, i, c, len(keys)))
    return counts


def value(k):
    return ("v:" + k + ":" + "x" * (len(k) * 7 % 50)).encode()


def wait_until(pred, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


# ---- 1. twemproxy ----

def render_yml(proxy_ports, server_ports):
    """doc/nutcracker.yml with the documented ports replaced by ours."""
    with open(YML) as f:
        text = f.read()
    ports = dict(zip(DOC_PROXY_PORTS, proxy_ports))
    ports.update(zip(DOC_SERVER_PORTS, server_ports))
    used = set(int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", text))
    if not check(used == set(ports), "doc/nutcracker.yml uses %s, the test knows %s" %
                 (sorted(used), sorted(ports))):
        return None
    return re.sub(r"127\.0\.0\.1:(\d+)", lambda m: "127.0.0.1:%d" % ports[int(m.group(1))], text)


def start_nutcracker(nut, tmp, yml, proxy_ports, last):
    """(process, stats port) of nutcracker listening on proxy_ports, or None.
    A port taken meanwhile is a failure only on the last attempt."""
    conf = os.path.join(tmp, "nutcracker.yml")
    log = os.path.join(tmp, "nutcracker.log")
    with open(conf, "w") as f:
        f.write(yml)
    t = subprocess.run([nut, "-t", "-c", conf], capture_output=True, timeout=10)
    if not check(t.returncode == 0, "nutcracker -t refuses the yml: %s" % (t.stdout + t.stderr)):
        return None
    stats_port = kioku_proc.free_port()
    proc = subprocess.Popen([nut, "-c", conf, "-o", log, "-p", os.path.join(tmp, "nutcracker.pid"),
                             "-a", "127.0.0.1", "-s", str(stats_port), "-i", "100"])
    procs.append(proc)

    def listening():
        for p in proxy_ports:
            try:
                socket.create_connection(("127.0.0.1", p), timeout=1).close()
            except OSError:
                return False
        return True
    if wait_until(lambda: proc.poll() is not None or listening(), 10) and proc.poll() is None:
        return proc, stats_port
    stop(proc, (0, 1, -signal.SIGTERM))
    if last:
        check(False, "nutcracker did not listen on %s" % (proxy_ports,))
        print(open(log).read()[-2000:] if os.path.exists(log) else "(no log)")
    return None


def nut_stats(port):
    """nutcracker's stats: JSON, aggregated every 100 ms (-i 100)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                return json.loads(data)
            data += b


def check_proxy_stats(port, pools, stopped):
    """Before the stop: no server errors, time-outs, ejections or forwarding
    errors in either pool, and every server got requests. After it: each
    pool ejected the stopped server."""
    def settled(st):
        for pool in pools:
            p = st.get(pool, {})
            servers = [v for v in p.values() if isinstance(v, dict)]
            if stopped and p.get("server_ejects", 0) < 1:
                return False
            if not stopped and not all(sv.get("requests", 0) > 0 and sv.get("responses", 0) > 0
                                       for sv in servers):
                return False
        return True
    # Aggregated every 100 ms, if nutcracker gets the CPU: a fixed 0.3 s
    # (two intervals) was not always enough on a busy machine.
    time.sleep(0.3)
    st = nut_stats(port)
    deadline = time.time() + 10
    while not settled(st) and time.time() < deadline:
        time.sleep(0.1)
        st = nut_stats(port)
    for pool in pools:
        p = st.get(pool, {})
        servers = {k: v for k, v in p.items() if isinstance(v, dict)}
        check(len(servers) == 3, "nutcracker stats: pool %s has servers %s" % (pool, list(servers)))
        if stopped:
            check(p.get("server_ejects", 0) >= 1, "pool %s ejected no server: %s" % (pool, p))
            continue
        check(p.get("server_ejects") == 0 and p.get("forward_error") == 0 and
              p.get("client_err") == 0, "pool %s: %s" % (pool, {k: v for k, v in p.items()
                                                                  if not isinstance(v, dict)}))
        for name, sv in servers.items():
            check(sv["server_err"] == 0 and sv["server_timedout"] == 0 and sv["server_eof"] == 0,
                  "pool %s server %s: %s" % (pool, name, sv))
            check(sv["requests"] > 0 and sv["responses"] > 0,
                  "pool %s server %s got no requests: %s" % (pool, name, sv))


def proxy_get(c, k):
    """The value, None on a miss, or "error" when the proxy answers one."""
    try:
        return c.get(k)
    except Exception:  # the proxy's SERVER_ERROR while it ejects a server
        return "error"


def wait_ejected(get, dead_keys, label):
    """Ask for the stopped server's keys until the proxy answers a plain miss:
    it has counted enough failures and rehashed them to the others."""
    i = [0]

    def missed():
        k = dead_keys[i[0] % len(dead_keys)]
        i[0] += 1
        return get(k) is None
    t = time.time()
    ok = check(wait_until(missed, 15), "%s: the stopped server was never ejected" % label)
    print("%s: ejected after %.1f s, %d requests" % (label, time.time() - t, i[0]))
    return ok


def many_clients(mc_port, redis_port):
    """8 clients of each pool at once: nutcracker pipelines their requests
    over one connection per server, so kioku sees them interleaved. Each
    client's values (up to 40 KB, several proxy buffers) read back its own."""
    errors = []

    def memcache(t):
        c = Client(("127.0.0.1", mc_port), connect_timeout=5, timeout=10, default_noreply=False)
        ks = ["mt%d:%d" % (t, i) for i in range(150)]
        vals = {k: (k.encode() + b"." * (i * 271 % 40000)) for i, k in enumerate(ks)}
        for k in ks:
            if c.set(k, vals[k]) is not True:
                errors.append("memcache client %d: set %s" % (t, k))
        got = c.get_many(ks)
        errors.extend("memcache client %d: %s read back wrong" % (t, k)
                      for k in ks if got.get(k) != vals[k])
        c.close()

    def resp(t):
        r = redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=10)
        ks = ["rt%d:%d" % (t, i) for i in range(150)]
        vals = [k.encode() + b"." * (i * 271 % 40000) for i, k in enumerate(ks)]
        p = r.pipeline(transaction=False)
        for k, v in zip(ks, vals):
            p.set(k, v)
            p.incr(k + ":n")
        p.execute()
        if r.mget(ks) != vals:
            errors.append("redis client %d: MGET read back wrong" % t)
        if r.mget([k + ":n" for k in ks]) != [b"1"] * len(ks):
            errors.append("redis client %d: counters wrong" % t)
        r.close()

    def run(f, t):
        try:
            f(t)
        except Exception as e:  # a proxy error or a time-out fails the test
            errors.append("%s client %d: %r" % (f.__name__, t, e))
    threads = [threading.Thread(target=run, args=(f, t))
               for t in range(8) for f in (memcache, resp)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    check(not any(th.is_alive() for th in threads),
          "clients through the proxy still running after 60 s")
    check(not errors, "%d errors with 16 clients through the proxy: %s" % (len(errors), errors[:3]))


def mc_pool(port, trio):
    c = Client(("127.0.0.1", port), connect_timeout=5, timeout=5, default_noreply=False)
    keys = ["mc:%05d" % i for i in range(N)]
    for k in keys:
        if not check(c.set(k, value(k)) is True, "set %s through the proxy" % k):
            return
    got = {}
    for at in range(0, N, 100):  # the proxy splits each get over the servers
        got.update(c.get_many(keys[at:at + 100]))
    bad = [k for k in keys if got.get(k) != value(k)]
    check(not bad, "mc pool: %d keys did not read back, e.g. %s" % (len(bad), bad[:3]))
    where = homes(trio, keys)
    check_spread(where, keys, "nutcracker memcache pool")

    # The rest of what memcached clients send, through the proxy.
    check(c.add("mc:00000", b"no") is False, "add of an existing key is NOT_STORED")
    check(c.add("mc:new", b"1") is True and c.get("mc:new") == b"1", "add of a new key")
    check(c.replace("mc:new", b"10") is True, "replace")
    check(c.append("mc:new", b"0") is True and c.prepend("mc:new", b"2") is True,
          "append, prepend")
    check(c.get("mc:new") == b"2100", "append and prepend read back")
    check(c.incr("mc:new", 5) == 2105 and c.decr("mc:new", 100) == 2005, "incr, decr")
    v, cas = c.gets("mc:new")
    check(v == b"2005" and c.cas("mc:new", b"x", cas) is True and
          c.cas("mc:new", b"y", cas) is False, "gets, cas, a stale cas is EXISTS")
    check(c.touch("mc:new", 100) is True, "touch")
    check(c.delete("mc:new") is True and c.get("mc:new") is None, "delete")
    # pymemcache's default: sets with noreply, which the proxy forwards as is.
    c.set("mc:noreply", b"quiet", noreply=True)
    check(c.get("mc:noreply") == b"quiet", "a noreply set through the proxy")
    big = bytes(range(256)) * 1200  # 300 KB: many proxy buffers, chunked items
    check(c.set("mc:big", big) is True and c.get("mc:big") == big, "a 300 KB value")
    # Errors reach the client through the proxy, and the connection goes on.
    try:
        c.incr("mc:00003", 1)
        check(False, "incr of a non-number through the proxy did not fail")
    except MemcacheClientError as e:
        check("non-numeric" in str(e), "incr of a non-number: %s" % e)
    try:
        c.set("mc:huge", b"x" * (2 << 20))
        check(False, "a 2 MB value (over -I) through the proxy was stored")
    except MemcacheServerError as e:
        check("too large" in str(e), "a 2 MB value: %s" % e)
    check(c.get("mc:00003") == value("mc:00003"), "the connection goes on after errors")
    got = c.get_many(["mc:00001", "mc:absent", "mc:00002"])
    check(got == {"mc:00001": value("mc:00001"), "mc:00002": value("mc:00002")},
          "a multi-get with a miss in the middle: %s" % got)
    return c, keys, where


def mc_after_stop(c, keys, where):
    dead = [k for k in keys if where.get(k) == DEAD]
    if not wait_ejected(lambda k: proxy_get(c, k), dead, "mc pool"):
        return
    hits = misses = 0
    for k in keys:
        v = proxy_get(c, k)
        if where.get(k) == DEAD:
            misses += v != value(k)
            check(v != value(k), "%s was on the stopped server, yet hit" % k)
        else:
            hits += v == value(k)
            check(v == value(k), "%s on a live server: %r after the stop" % (k, v))
    print("nutcracker memcache pool, one stopped: %d hits, %d misses (its share %d)" %
          (hits, misses, len(dead)))
    # The proxy keeps serving: the stopped server's keys now go to the others.
    for k in dead[:100]:
        check(c.set(k, b"again") is True and c.get(k) == b"again",
              "%s set through the proxy after the ejection" % k)
    c.close()


def redis_pool(port, trio):
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    keys = ["rs:%05d" % i for i in range(N)]
    p = r.pipeline(transaction=False)
    for k in keys:
        p.set(k, value(k))
    check(all(x is True for x in p.execute()), "SET of every key through the proxy")
    bad = [k for k in keys if r.get(k) != value(k)]
    check(not bad, "redis pool: %d keys did not read back, e.g. %s" % (len(bad), bad[:3]))
    got = r.mget(keys[:200])
    check(got == [value(k) for k in keys[:200]], "MGET of 200 keys the proxy splits")
    pairs = {"rs:m%d" % i: b"m%d" % i for i in range(50)}
    check(r.mset(pairs) is True and r.mget(list(pairs)) == list(pairs.values()),
          "MSET of 50 keys the proxy splits")
    check(r.delete(*pairs) == 50, "DEL of 50 keys the proxy splits")
    check(r.ping() is True, "PING")
    check(r.incr("rs:ctr") == 1 and r.incr("rs:ctr", 41) == 42 and r.get("rs:ctr") == b"42",
          "INCR")
    check(r.expire("rs:ctr", 100) is True and 0 < r.ttl("rs:ctr") <= 100, "EXPIRE, TTL")
    check(r.exists("rs:ctr") == 1 and r.delete("rs:ctr") == 1 and r.exists("rs:ctr") == 0,
          "EXISTS, DEL")
    check(r.get("rs:ctr") is None, "GET after DEL")
    big = bytes(range(256)) * 1200
    check(r.set("rs:big", big) is True and r.get("rs:big") == big, "a 300 KB value")
    try:
        r.incr("rs:big")
        check(False, "INCR of a non-number through the proxy did not fail")
    except redis.ResponseError as e:
        check(str(e) == "value is not an integer or out of range", "INCR of a non-number: %s" % e)
    check(r.get(keys[0]) == value(keys[0]), "the connection goes on after an error")
    where = {}
    for i, (_, sport) in enumerate(trio):
        d = redis.Redis(host="127.0.0.1", port=sport, socket_timeout=5)
        for k, v in zip(keys, d.mget(keys)):
            if v is not None:
                check(k not in where, "%s on two servers" % k)
                where[k] = i
        d.close()
    check_spread(where, keys, "nutcracker redis pool")
    return r, keys, where


def redis_after_stop(r, keys, where):
    def get(k):
        try:
            return r.get(k)
        except redis.RedisError:
            return "error"
    dead = [k for k in keys if where.get(k) == DEAD]
    if not wait_ejected(get, dead, "redis pool"):
        return
    bad = [k for k in keys if where.get(k) != DEAD and get(k) != value(k)]
    check(not bad, "redis pool: %d live servers' keys lost after the stop, e.g. %s" %
          (len(bad), bad[:3]))
    hit = [k for k in dead if get(k) == value(k)]
    check(not hit, "redis pool: the stopped server's keys hit: %s" % hit[:3])
    check(r.set(dead[0], b"again") is True and r.get(dead[0]) == b"again",
          "SET through the proxy after the ejection")
    r.close()


def twemproxy():
    nut = shutil.which("nutcracker") or shutil.which("nutcracker", path="/usr/sbin:/sbin")
    if not nut:
        print("multihost: nutcracker is not installed (apt-get install nutcracker): "
              "its part is skipped")
        return 77
    with open(YML) as f, open(GUIDE) as g:
        check(f.read() in g.read(),
              "doc/operator-guide.md does not show doc/nutcracker.yml as it is")
    trio = start_trio()
    with tempfile.TemporaryDirectory() as tmp:
        failed = len(failures)
        for attempt in range(3):
            proxy_ports = [kioku_proc.free_port() for _ in DOC_PROXY_PORTS]
            yml = render_yml(proxy_ports, [p for _, p in trio])
            started = yml and start_nutcracker(nut, tmp, yml, proxy_ports, attempt == 2)
            if started or len(failures) > failed:
                break
        if not started:
            for p, _ in trio:
                stop(p)
            return 1
        nproc, stats_port = started
        pools = re.findall(r"^(\w+):$", yml, re.M)
        try:
            mc = mc_pool(proxy_ports[0], trio)
            rs = redis_pool(proxy_ports[1], trio)
            many_clients(proxy_ports[0], proxy_ports[1])
            check_proxy_stats(stats_port, pools, False)
            stop(trio[DEAD][0])
            if mc:
                mc_after_stop(*mc)
            if rs:
                redis_after_stop(*rs)
            check_proxy_stats(stats_port, pools, True)
            check(nproc.poll() is None, "nutcracker exited")
        finally:
            stop(nproc, (0, -signal.SIGTERM))  # nutcracker dies of SIGTERM
            for p, _ in trio:
                stop(p)
    return 0


# ---- 2. consistent-hash clients ----

def client_side(label, make, set_one, get_one, get_many):
    trio = start_trio()
    try:
        c = make(["127.0.0.1:%d" % p for _, p in trio])
        keys = ["%s:%05d" % (label[:2], i) for i in range(N)]
        for k in keys:
            if not check(set_one(c, k, value(k)), "%s: set %s" % (label, k)):
                return
        got = {}
        for at in range(0, N, 100):
            got.update(get_many(c, keys[at:at + 100]))
        bad = [k for k in keys if got.get(k) != value(k)]
        check(not bad, "%s: %d keys did not read back, e.g. %s" % (label, len(bad), bad[:3]))
        where = homes(trio, keys)
        check_spread(where, keys, label)

        stop(trio[DEAD][0])
        dead = [k for k in keys if where.get(k) == DEAD]
        # The client finds the server down on its first requests for that
        # share, then (as configured) leaves it out of the ring.
        wait_ejected(lambda k: get_one(c, k), dead, label)
        hits = misses = 0
        for k in keys:
            v = get_one(c, k)
            if where.get(k) == DEAD:
                misses += v != value(k)
                check(v != value(k), "%s: %s was on the stopped server, yet hit" % (label, k))
            else:
                hits += v == value(k)
                check(v == value(k), "%s: %s on a live server: %r after the stop" % (label, k, v))
        print("%s, one stopped: %d hits, %d misses (its share %d)" %
              (label, hits, misses, len(dead)))
        # The stopped server's keys now live on the others.
        for k in dead[:100]:
            check(set_one(c, k, b"again") and get_one(c, k) == b"again",
                  "%s: %s set after the failover" % (label, k))
    finally:
        for p, _ in trio:
            stop(p)


def libmemcached_ketama():
    def get_one(c, k):
        try:
            return c.get(k)
        except pylibmc.Error:
            return "error"

    def set_one(c, k, v):
        try:
            return c.set(k, v) is True
        except pylibmc.Error:
            return False
    # What a libmemcached user sets for failover: ketama (MD5, consistent
    # distribution); a server that fails twice in a row (failure_limit, its
    # default is 5) leaves the ring for dead_timeout seconds.
    client_side("libmemcached ketama",
                lambda servers: pylibmc.Client(servers, behaviors={
                    "ketama": True, "remove_failed": 1, "failure_limit": 2,
                    "retry_timeout": 1, "dead_timeout": 60, "connect_timeout": 1000}),
                set_one, get_one, lambda c, ks: c.get_multi(ks))


def pymemcache_hash():
    def make(servers):
        hosts = [(s.split(":")[0], int(s.split(":")[1])) for s in servers]
        # ignore_exc: a down server reads as a miss; after retry_attempts
        # failures it is left out of the ring for dead_timeout seconds.
        return HashClient(hosts, ignore_exc=True, retry_attempts=1, retry_timeout=0,
                          dead_timeout=60, connect_timeout=1, timeout=5,
                          default_noreply=False)
    client_side("pymemcache HashClient", make,
                lambda c, k, v: c.set(k, v) is True, lambda c, k: c.get(k),
                lambda c, ks: c.get_many(ks))


def main():
    if not BIN:
        print("multihost: KIOKU_BIN is not set; skipped")
        return 77
    started = time.time()
    try:
        # Without nutcracker the clients' parts still run, and a failure
        # there still fails; all passing is then a skip, not a pass.
        proxy = twemproxy()
        libmemcached_ketama()
        pymemcache_hash()
    finally:
        for p in procs:
            stop(p)
    print("multihost: %.1f s" % (time.time() - started))
    if failures:
        print("multihost: %d failures" % len(failures))
        return 1
    if proxy == 77:
        return 77
    print("multihost: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
