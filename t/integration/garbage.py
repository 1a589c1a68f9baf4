#!/usr/bin/env python3
"""Bad input never takes the server down or touches another client's data.

Starts $KIOKU_BIN on a free loopback port, stores canary items through a
first connection, then sends a bounded number of malformed requests over new
connections: random bytes, and mutated requests of each protocol (memcached
text and meta, binary headers with random lengths and opcodes, RESP arrays
with wrong counts and lengths). Each bad connection must get an error or be
closed; afterwards the server must still answer and every canary must read
back unchanged. A fixed seed keeps runs repeatable; KIOKU_GARBAGE_SEED and
KIOKU_GARBAGE_ROUNDS override it.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import random
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kioku_proc import free_port  # noqa: E402

# kioku, like memcached, refuses to run as root without -u.
ROOT_ARGS = ["-u", "root"] if os.geteuid() == 0 else []

BIN = os.environ.get("KIOKU_BIN")
SEED = int(os.environ.get("KIOKU_GARBAGE_SEED", "20261123"))
ROUNDS = int(os.environ.get("KIOKU_GARBAGE_ROUNDS", "4000"))
DEADLINE = time.monotonic() + float(os.environ.get("KIOKU_GARBAGE_SECONDS", "120"))


def start():
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen([BIN, "-p", str(port), "-l", "127.0.0.1", "-U", "0"] + ROOT_ARGS + [
                                 "-m", "64", "-I", "2m"], stdout=subprocess.DEVNULL)
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


def transact(port, data, want_reply=True):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def canaries(port, check):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = s.makefile("rwb")
    for i in range(20):
        key = b"canary:%d" % i
        val = bytes(random.Random(i).getrandbits(8) for _ in range(100 + i))
        if not check:
            f.write(b"set %s %d 0 %d\r\n%s\r\n" % (key, i, len(val), val))
            f.flush()
            assert f.readline() == b"STORED\r\n"
        else:
            f.write(b"get %s\r\n" % key)
            f.flush()
            want = b"VALUE %s %d %d\r\n" % (key, i, len(val))
            line = f.readline()
            if line != want:
                return "canary %d: %r" % (i, line)
            if f.read(len(val) + 2) != val + b"\r\n" or f.readline() != b"END\r\n":
                return "canary %d: value changed" % i
    s.close()
    return None


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        if op == 0 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1:
            data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        elif op == 2 and data:
            del data[rng.randrange(len(data))]
        else:
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(data)


def sample(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
    if kind == 1:
        cmds = [b"set k 0 0 5\r\nhello\r\n", b"get k k2 k3\r\n", b"cas k 0 0 1 99\r\nx\r\n",
                b"incr k 18446744073709551615\r\n", b"gat -1 k\r\n", b"touch k x\r\n",
                b"set k 4294967296 0 1\r\nx\r\n", b"append k 0 0 99999999999\r\n",
                b"delete k 0 noreply\r\n", b"verbosity\r\n", b"stats detail dump\r\n"]
        return mutate(rng, rng.choice(cmds))
    if kind == 2:
        cmds = [b"mg k v t f c s k O123 q\r\n", b"ms k 5 T10 F3 MA I\r\nhello\r\n",
                b"ma k N10 J5 D3 MD v\r\n", b"md k I T30 q\r\n", b"me k\r\n",
                b"mg Zm9v b v\r\n", b"ms k -1\r\n", b"mn\r\n"]
        return mutate(rng, rng.choice(cmds))
    if kind == 3:
        op = rng.choice([0x00, 0x01, 0x04, 0x05, 0x0a, 0x10, 0x1c, 0x1d, rng.randrange(256)])
        klen = rng.choice([0, 1, 3, 250, 251, 65535])
        elen = rng.choice([0, 4, 8, 20, 255])
        blen = rng.choice([0, klen + elen, klen + elen - 1, 2**31, 2**32 - 1,
                           rng.randrange(2**32)])
        hdr = struct.pack(">BBHBBHIIQ", 0x80, op, klen, elen, 0, 0, blen & 0xffffffff,
                          rng.randrange(2**32), 0)
        return hdr + bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    if kind == 4:
        reqs = [b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
                b"*-5\r\n", b"*99999999999\r\n", b"*1\r\n$999999999999\r\n",
                b"*2\r\n$4\r\nINCR\r\n", b"*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n-1\r\n",
                b"*2\r\n$4\r\nSCAN\r\n$20\r\n99999999999999999999\r\n"]
        return mutate(rng, rng.choice(reqs))
    return mutate(rng, b"SET k \"unbalanced\r\nPING\r\nKEYS [a-\r\n")


def main():
    if not BIN:
        print("KIOKU_BIN is not set")
        return 77
    random.seed(SEED)
    rng = random.Random(SEED)
    proc, port = start()
    try:
        canaries(port, check=False)
        done = 0
        while done < ROUNDS and time.monotonic() < DEADLINE:
            data = sample(rng)
            try:
                transact(port, data)
            except OSError as e:
                if proc.poll() is not None:
                    print("server died on input %r: %s" % (data[:80], e))
                    return 1
            if proc.poll() is not None:
                print("server died on input %r" % data[:80])
                return 1
            done += 1
        problem = canaries(port, check=True)
        if problem:
            print("after %d bad inputs: %s" % (done, problem))
            return 1
        out = transact(port, b"version\r\n")
        if not out.startswith(b"VERSION "):
            print("server does not answer after bad input: %r" % out)
            return 1
        proc.terminate()
        rc = proc.wait(timeout=15)
        if rc != 0:
            print("server exit status %d after SIGTERM" % rc)
            return 1
        print("garbage: %d bad inputs survived, canaries intact" % done)
        return 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
