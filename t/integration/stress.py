#!/usr/bin/env python3
"""Many hostile connections at once never cost a good client its data.

Starts $KIOKU_BIN (4 workers, 512 MiB, -M so that nothing is evicted
silently: a store that does not fit would fail loudly; -F so that no stray
flush_all wipes the store). Then, for KIOKU_STRESS_SECONDS (20):

  - 32 hostile threads open connection after connection and send random
    bytes, requests of every protocol (memcached text, meta, binary, RESP
    multibulk and inline) cut off at a random byte, mutated, dripped a few
    bytes per send, pipelined without ever reading the replies, or a value
    that is announced and never sent; they close politely or with a reset.
    Their keys never start with "good:".
  - 6 good clients, two per protocol (pymemcache over text, raw binary
    frames, redis-py over RESP), each keep a model of their own keys: set,
    overwrite, delete, read back at once and re-read an older key at
    random, with values from 1 byte to 200 KiB (so values arrive in many
    reads and large ones are sent from the items).

Then every good key is read again through a fresh connection of its own
protocol and through the text protocol: every value must be exactly the
last one written, every deleted key absent. The server must still answer,
and exit 0 on SIGTERM (under ASan: with no leak). A fixed seed
(KIOKU_STRESS_SEED) keeps the hostile mix repeatable.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN or the client libraries.
"""
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kioku_proc import free_port  # noqa: E402

try:
    import redis
    from pymemcache.client.base import Client as McClient
except ImportError:
    # pyenv and virtualenvs hide the distribution's packages: try its python.
    if os.path.exists("/usr/bin/python3") and not os.environ.get("KIOKU_STRESS_REEXEC"):
        os.environ["KIOKU_STRESS_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("stress: redis-py or pymemcache is not installed (python3-redis, python3-pymemcache); skipped")
    sys.exit(77)

BIN = os.environ.get("KIOKU_BIN")
SEED = int(os.environ.get("KIOKU_STRESS_SEED", "20261207"))
SECONDS = float(os.environ.get("KIOKU_STRESS_SECONDS", "20"))
HOSTILE = 32
TIMEOUT = 20          # per socket operation of a good client (sanitizer builds are slow)

failures = []
failures_lock = threading.Lock()


def fail(msg):
    with failures_lock:
        failures.append(msg)


def start():
    for _ in range(5):
        port = free_port()
        # kioku, like memcached, refuses to run as root without -u.
        root = ["-u", "root"] if os.geteuid() == 0 else []
        proc = subprocess.Popen([BIN, "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-t", "4",
                                 "-m", "512", "-M", "-F", "-c", "4096"] + root,
                                stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc, port
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        proc.kill()
        proc.wait()
    sys.exit("could not start the server")


# ---- hostile connections ----

def bin_frame(op, key=b"", extras=b"", value=b"", opaque=0):
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0, len(body),
                       opaque, 0) + body


def resp_cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def hostile_request(rng):
    """One well-formed request of a random protocol, on a hostile key."""
    key = b"h:%d" % rng.randrange(64)
    val = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 10, 300, 3000])))
    kind = rng.randrange(4)
    if kind == 0:
        return rng.choice([
            b"set %s 0 0 %d\r\n%s\r\n" % (key, len(val), val),
            b"get %s %s h:1 h:2\r\n" % (key, key),
            b"gets %s\r\n" % key,
            b"append %s 0 0 %d\r\n%s\r\n" % (key, len(val), val),
            b"cas %s 0 0 %d 1\r\n%s\r\n" % (key, len(val), val),
            b"incr %s 1\r\n" % key,
            b"delete %s\r\n" % key,
            b"touch %s 10\r\n" % key,
            b"gat 10 %s\r\n" % key,
            b"stats\r\nstats items\r\nstats slabs\r\nstats conns\r\n",
            b"version\r\n",
        ])
    if kind == 1:
        return rng.choice([
            b"ms %s %d T0 F5 c\r\n%s\r\n" % (key, len(val), val),
            b"mg %s v t f c s k O1 q\r\nmn\r\n" % key,
            b"ma %s N0 J5 D3 v\r\n" % key,
            b"md %s q\r\n" % key,
            b"mg %s N30 v\r\n" % key,
            b"me %s\r\n" % key,
        ])
    if kind == 2:
        return rng.choice([
            bin_frame(0x01, key, struct.pack(">II", 0, 0), val),
            bin_frame(0x00, key),
            bin_frame(0x0c, key) + bin_frame(0x0a),
            bin_frame(0x05, key, struct.pack(">QQI", 1, 0, 0)),
            bin_frame(0x04, key),
            bin_frame(0x10),
        ])
    return rng.choice([
        resp_cmd(b"SET", key, val),
        resp_cmd(b"GET", key),
        resp_cmd(b"MGET", key, b"h:1", b"h:2"),
        resp_cmd(b"INCR", key),
        resp_cmd(b"APPEND", key, val),
        resp_cmd(b"SETRANGE", key, b"100", val),
        resp_cmd(b"EXPIRE", key, b"100"),
        resp_cmd(b"MULTI") + resp_cmd(b"SET", key, val) + resp_cmd(b"EXEC"),
        resp_cmd(b"SCAN", b"0", b"MATCH", b"h:*", b"COUNT", b"100"),
        resp_cmd(b"INFO"),
        b"PING\r\nGET %s\r\n" % key,
    ])


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(5)
        if op == 0 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif op == 1:
            data.insert(rng.randrange(len(data) + 1), rng.choice(b"\r\n *$:0-9 \x00\x80"))
        elif op == 2 and data:
            del data[rng.randrange(len(data))]
        elif op == 3 and data:
            i = rng.randrange(len(data))
            data[i:i] = data[i:i + rng.randint(1, 32)] * rng.randint(1, 4)
        else:
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(data)


def hostile_payload(rng):
    """Bytes to send, and whether to read before closing."""
    mode = rng.randrange(7)
    if mode == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000))), True
    if mode == 1:   # a request cut short
        req = hostile_request(rng)
        return req[:rng.randrange(len(req))], False
    if mode == 2:
        return mutate(rng, hostile_request(rng)), True
    if mode == 3:   # a pipeline the client never reads
        return b"".join(hostile_request(rng) for _ in range(rng.randint(10, 200))), False
    if mode == 4:   # a value announced and not sent
        key = b"h:%d" % rng.randrange(64)
        n = rng.choice([100, 70000, 1000000])
        return rng.choice([
            b"set %s 0 0 %d\r\n" % (key, n),
            b"ms %s %d\r\n" % (key, n),
            struct.pack(">BBHBBHIIQ", 0x80, 0x01, len(key), 8, 0, 0, 8 + len(key) + n, 0, 0) +
            bytes(8) + key,
            b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\nabc" % (len(key), key, n),
        ]) + b"x" * rng.randrange(200), False
    if mode == 5:   # several valid requests, then garbage
        return b"".join(hostile_request(rng) for _ in range(5)) + \
            mutate(rng, hostile_request(rng)), True
    return hostile_request(rng), True


def hostile(idx, port, deadline, counts):
    rng = random.Random(SEED * 1000 + idx)
    while time.monotonic() < deadline:
        data, read = hostile_payload(rng)
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
        except OSError:
            continue
        try:
            s.settimeout(0.5)
            if rng.random() < 0.2:   # drip
                pos = 0
                while pos < len(data) and time.monotonic() < deadline:
                    step = rng.randint(1, 7)
                    s.sendall(data[pos:pos + step])
                    pos += step
                    if rng.random() < 0.05:
                        time.sleep(0.001)
            else:
                s.sendall(data)
            if read:
                try:
                    s.recv(65536)
                except OSError:
                    pass
            if rng.random() < 0.3:   # close with a reset, not a FIN
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        finally:
            s.close()
        counts[idx] += 1


# ---- good clients: each owns its keys and a model of them ----

def value_for(rng):
    n = rng.choice([1, 5, 40, 200, 1000, 3000, 16000, 70000, 200000])
    n = rng.randint(max(1, n // 2), n)
    return rng.randbytes(n) if hasattr(rng, "randbytes") else \
        bytes(rng.getrandbits(8) for _ in range(n))


class BinClient:
    """The binary protocol over raw frames: set, get, delete."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.opaque = 0

    def close(self):
        self.s.close()

    def _recv(self, n):
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise OSError("server closed the binary connection")
            out += chunk
        return out

    def _call(self, op, key, extras=b"", value=b""):
        self.opaque += 1
        self.s.sendall(bin_frame(op, key, extras, value, self.opaque))
        hdr = self._recv(24)
        magic, rop, klen, elen, _, status, blen, opaque, _ = struct.unpack(">BBHBBHIIQ", hdr)
        body = self._recv(blen)
        if magic != 0x81 or rop != op or opaque != self.opaque:
            raise OSError("binary reply out of step: %r" % hdr)
        return status, body[elen + klen:]

    def set(self, key, value):
        status, _ = self._call(0x01, key, struct.pack(">II", 0, 0), value)
        return status == 0

    def get(self, key):
        status, value = self._call(0x00, key)
        return value if status == 0 else None

    def delete(self, key):
        self._call(0x04, key)


class TextClient:
    def __init__(self, port):
        self.c = McClient(("127.0.0.1", port), timeout=TIMEOUT, connect_timeout=TIMEOUT,
                          default_noreply=False)

    def close(self):
        self.c.close()

    def set(self, key, value):
        return self.c.set(key, value, noreply=False)

    def get(self, key):
        return self.c.get(key)

    def delete(self, key):
        self.c.delete(key, noreply=False)


class RespClient:
    def __init__(self, port):
        self.r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=TIMEOUT)

    def close(self):
        self.r.close()

    def set(self, key, value):
        return self.r.set(key, value)

    def get(self, key):
        return self.r.get(key)

    def delete(self, key):
        self.r.delete(key)


CLIENTS = {"text": TextClient, "binary": BinClient, "resp": RespClient}


def good(name, idx, port, deadline, models, ops_done):
    rng = random.Random(SEED + idx)
    model = models[(name, idx)]
    prefix = b"good:%s:%d:" % (name.encode(), idx)
    client = CLIENTS[name](port)
    ops = 0
    try:
        while time.monotonic() < deadline:
            key = prefix + b"%d" % rng.randrange(400)
            r = rng.random()
            if r < 0.6:
                val = value_for(rng)
                if not client.set(key, val):
                    fail("%s %d: set %r refused" % (name, idx, key))
                    return
                model[key] = val
                got = client.get(key)
                if got != val:
                    fail("%s %d: %r read back %s bytes, wrote %d" %
                         (name, idx, key, None if got is None else len(got), len(val)))
                    return
            elif r < 0.7:
                client.delete(key)
                model[key] = None
            else:
                got = client.get(key)
                want = model.get(key)
                if key in model and got != want:
                    fail("%s %d: %r holds %s bytes, model %s" %
                         (name, idx, key, None if got is None else len(got),
                          None if want is None else len(want)))
                    return
            ops += 1
    except Exception as e:   # a timeout, a reset, a protocol error: all failures here
        fail("%s %d: %s: %s after %d operations" % (name, idx, type(e).__name__, e, ops))
    finally:
        ops_done[(name, idx)] = ops
        client.close()


def verify(port, models):
    """Every good key, through its own protocol and through text."""
    bad = 0
    text = TextClient(port)
    try:
        for (name, idx), model in models.items():
            own = CLIENTS[name](port)
            try:
                for key, want in model.items():
                    for via, client in ((name, own), ("text", text)):
                        got = client.get(key)
                        if got != want:
                            bad += 1
                            if bad <= 5:
                                fail("after the storm, %r via %s: %s bytes, expected %s" %
                                     (key, via, None if got is None else len(got),
                                      None if want is None else len(want)))
            finally:
                own.close()
    finally:
        text.close()
    return sum(len(m) for m in models.values())


def main():
    if not BIN:
        print("KIOKU_BIN is not set")
        return 77
    proc, port = start()
    try:
        deadline = time.monotonic() + SECONDS
        counts = [0] * HOSTILE
        models = {(name, i): {} for name in CLIENTS for i in range(2)}
        ops_done = {}
        threads = [threading.Thread(target=hostile, args=(i, port, deadline, counts))
                   for i in range(HOSTILE)]
        threads += [threading.Thread(target=good, args=(name, i, port, deadline, models, ops_done))
                    for (name, i) in models]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if proc.poll() is not None:
            print("stress: the server died (status %s)" % proc.returncode)
            return 1
        nkeys = 0
        if not failures:
            nkeys = verify(port, models)
        if failures:
            for f in failures[:10]:
                print("stress: " + f)
            return 1
        proc.terminate()
        rc = proc.wait(timeout=30)
        if rc != 0:
            print("stress: server exit status %d after SIGTERM" % rc)
            return 1
        print("stress: %d hostile connections in %.0f s; %d good operations, %d good keys intact" %
              (sum(counts), SECONDS, sum(ops_done.values()), nkeys))
        return 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
