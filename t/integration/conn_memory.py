#!/usr/bin/env python3
"""Idle connections give back the memory a large request needed.

Starts $KIOKU_BIN, then opens connections one after another that each send
one large request (a RESP command with 500,000 arguments, about 3.5 MB, or a
memcached get naming 100,000 keys), read the reply and stay open, idle. The
server's resident memory must stay near its start-up size instead of growing
by the request size per idle connection. Sanitizer builds keep freed memory
in quarantine, so there only the replies are checked.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kioku_proc import recv_until  # noqa: E402

# kioku, like memcached, refuses to run as root without -u.
ROOT_ARGS = ["-u", "root"] if os.geteuid() == 0 else []

BIN = os.environ.get("KIOKU_BIN")


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def sanitized(path):
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "libasan" in out or "libtsan" in out


def start():
    for _ in range(5):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        proc = subprocess.Popen([BIN, "-p", str(port), "-l", "127.0.0.1", "-U", "0"] + ROOT_ARGS + ["-t", "2"])
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


def main():
    if not BIN:
        print("KIOKU_BIN is not set")
        return 77
    proc, port = start()
    socks = []
    try:
        base = rss_mb(proc.pid)
        n = 500000
        resp = b"*%d\r\n$6\r\nEXISTS\r\n" % n + b"$1\r\na\r\n" * (n - 1)
        mget = b"get" + b" a" * 100000 + b"\r\n"
        for i in range(40):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            if i % 4 == 3:
                s.sendall(mget)
                want = b"END\r\n"
            else:
                s.sendall(resp)
                want = b":0\r\n"
            got = recv_until(s, want, 1 << 20)
            if got != want:
                print("connection %d: reply %r" % (i, got[:40]))
                return 1
            socks.append(s)
        grown = rss_mb(proc.pid) - base
        if sanitized(BIN):
            print("conn_memory: replies right; RSS not checked in a sanitizer build (+%d MB)" % grown)
            return 0
        # 40 idle connections that each once held ~3.5 MB: far below 40 x 3.5.
        if grown > 48:
            print("conn_memory: resident memory grew %d MB for 40 idle connections" % grown)
            return 1
        print("conn_memory: 40 idle connections after large requests, RSS +%d MB" % grown)
        return 0
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
