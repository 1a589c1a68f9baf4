#!/usr/bin/env python3
"""Connections go to no more workers than there are CPUs to run them.

With -t 4 started under `taskset -c 0` (one CPU), 16 busy connections must
all be served by one worker thread: spreading them over four threads that
take turns on one core would make each connection wait out the others'
scheduler time slices. Without the pin on a machine with two or more CPUs,
more than one worker must be busy. Worker threads are named kioku-wN; their
CPU time is read from /proc.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN, taskset or /proc.
"""
import os
import shutil
import socket
import subprocess
import sys
import time

# kioku, like memcached, refuses to run as root without -u.
ROOT_ARGS = ["-u", "root"] if os.geteuid() == 0 else []

BIN = os.environ.get("KIOKU_BIN")


def worker_ticks(pid):
    ticks = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if name.startswith("kioku-w"):
            ticks[name] = int(fields[11]) + int(fields[12])   # utime + stime
    return ticks


def run(prefix, threads):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen(prefix + [BIN, "-p", str(port), "-l", "127.0.0.1", "-U", "0"] + ROOT_ARGS + [
                                      "-t", str(threads)])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(16)]
        for c in conns:
            c.sendall(b"set k 0 0 1\r\nx\r\n")
            assert c.recv(100) == b"STORED\r\n"
        batch = b"get k\r\n" * 50
        reply = b"VALUE k 0 1\r\nx\r\nEND\r\n" * 50
        # CPU time is sampled in ticks: work until the workers have a
        # clearly measurable amount (bounded in rounds and seconds).
        deadline = time.monotonic() + 25
        for rnd in range(5000):
            for c in conns:
                c.sendall(batch)
            for c in conns:
                got = b""
                while len(got) < len(reply):
                    got += c.recv(65536)
            if rnd % 20 == 19 and sum(worker_ticks(proc.pid).values()) >= 60:
                break
            if time.monotonic() > deadline:
                break
        ticks = worker_ticks(proc.pid)
        for c in conns:
            c.close()
        return ticks
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main():
    if not BIN or not shutil.which("taskset") or not os.path.isdir("/proc/self/task"):
        print("worker_affinity: needs KIOKU_BIN, taskset and /proc; skipped")
        return 77
    pinned = run(["taskset", "-c", "0"], 4)
    busy = [n for n, t in pinned.items() if t > 0]
    if len(pinned) != 4 or len(busy) != 1:
        print("pinned to one CPU with -t 4: worker CPU ticks %s, want exactly one busy" % pinned)
        return 1
    if len(os.sched_getaffinity(0)) >= 2:
        free = run([], 4)
        total = sum(free.values())
        busy = [n for n, t in free.items() if t >= max(2, total // 10)]
        if len(busy) < 2:
            print("on %d CPUs with -t 4: worker CPU ticks %s, want several busy"
                  % (len(os.sched_getaffinity(0)), free))
            return 1
    print("worker_affinity: one CPU -> one busy worker; more CPUs -> several")
    return 0


if __name__ == "__main__":
    sys.exit(main())
