#!/usr/bin/env python3
"""Logs and signals (issue 10), against a real $KIOKU_BIN:

- SIGTERM with clients connected: new connections are refused at once; a
  client in the middle of a 20 MB multi-get reply (memcached get or RESP
  MGET) that goes on reading gets all of it, then EOF; a connected client that sent nothing and one idle
  after a pipeline (in the middle of its next command) are closed at once;
  clients that never read their replies are cut when -o shutdown_timeout
  passes (a warning says how many), and the process exits 0 within that
  bound plus a margin. A second SIGTERM and a SIGHUP during the stop change
  nothing. With shutdown_timeout=0 the same stop is immediate.
- -o logfile=PATH: lines carry a UTC timestamp; -vv command lines go there;
  after the file is renamed, SIGHUP makes new lines land in a new file at
  PATH while the renamed one keeps the old lines; `stats settings` shows
  logfile and shutdown_timeout. An unwritable path refuses to start (73).
- -vvv adds a line for each connection opened and closed; -vv has none.
- SIGUSR1 logs the `stats` counters as name=value pairs, with the values
  `stats` gives (curr_items, get_hits, get_misses, cmd_set, ...), and the
  server keeps serving; without -o logfile they go to stderr, with a
  syslog priority prefix ("<5>") when $JOURNAL_STREAM names stderr.

Every server is stopped by PID; every wait and loop is bounded.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402
from kioku_proc import connect, recv_until  # noqa: E402

BIN = os.environ.get("KIOKU_BIN")
failures = []

NKEYS = 100
VLEN = 200 * 1000          # 100 x 200 kB: a 20 MB multi-get reply


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def stats(port, group=b"", sock=None):
    """`stats [group]` as a dict, on sock or on a connection of its own."""
    if sock is None:
        with connect(port) as s:
            return stats(port, group, s)
    sock.sendall(b"stats" + (b" " + group if group else b"") + b"\r\n")
    out = recv_until(sock, b"END\r\n")
    vals = {}
    for line in out.decode().split("\r\n"):
        f = line.split(" ", 2)
        if len(f) == 3 and f[0] == "STAT":
            vals[f[1]] = f[2]
    return vals


def read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def wait_for(path, pattern, timeout=20.0):
    """The first match of the regex in the file, waiting up to timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(pattern, read_file(path))
        if m:
            return m
        time.sleep(0.05)
    return None


def no_sanitizer_report(path, what):
    text = read_file(path)
    check("Sanitizer" not in text and "runtime error" not in text,
          what + ": no sanitizer report" + ("" if "Sanitizer" not in text else ":\n" + text[-3000:]))


def wait_exit(proc, timeout):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def load(port):
    with connect(port) as s:
        value = b"v" * VLEN
        for i in range(NKEYS):
            s.sendall(b"set big%d 0 0 %d\r\n%s\r\n" % (i, VLEN, value))
            if recv_until(s, b"\r\n") != b"STORED\r\n":
                return False
        s.sendall(b"set small 0 0 2\r\nhi\r\n")
        return recv_until(s, b"\r\n") == b"STORED\r\n"


def multiget_reply_len():
    return sum(len(b"VALUE big%d 0 %d\r\n" % (i, VLEN)) + VLEN + 2 for i in range(NKEYS)) + 5


class Reader(threading.Thread):
    """Reads a socket to EOF (bounded by time); records what and when."""

    def __init__(self, sock, deadline):
        super().__init__(daemon=True)
        self.sock, self.deadline = sock, deadline
        self.data, self.eof_at, self.error = b"", None, None

    def run(self):
        self.sock.settimeout(0.5)
        while time.time() < self.deadline:
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError as e:
                self.error, self.eof_at = e, time.time()
                return
            if not chunk:
                self.eof_at = time.time()
                return
            self.data += chunk


def refused_after(port, t0, bound=2.0):
    """Seconds after t0 at which a new connection was refused, or None."""
    while time.time() - t0 < bound:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return time.time() - t0
        time.sleep(0.05)
    return None


def bounded_stop(tmp):
    grace = 2
    errpath = os.path.join(tmp, "stop.err")
    with open(errpath, "wb") as err:
        proc, port = kioku_proc.start(BIN, ["-t", "2", "-m", "256", "-o",
                                            "shutdown_timeout=%d" % grace], stderr=err)
    try:
        check(load(port), "stop: %d values of %d bytes stored" % (NKEYS, VLEN))
        keys = b" ".join(b"big%d" % i for i in range(NKEYS))

        # A: a 20 MB multi-get, read only in part before the signal.
        a = connect(port)
        a.sendall(b"get " + keys + b"\r\n")
        first = a.recv(65536)
        check(first.startswith(b"VALUE big0 0 %d\r\n" % VLEN), "stop: the multi-get reply began")

        # R: the same as a RESP MGET on the shared port.
        rs = connect(port)
        rs.sendall(b"*%d\r\n$4\r\nMGET\r\n" % (NKEYS + 1) +
                  b"".join(b"$%d\r\nbig%d\r\n" % (len(b"big%d" % i), i) for i in range(NKEYS)))
        rfirst = rs.recv(65536)
        check(rfirst.startswith(b"*%d\r\n$%d\r\n" % (NKEYS, VLEN)), "stop: the MGET reply began")

        # B: a pipeline answered and read, then idle in its next command.
        b = connect(port)
        b.sendall(b"get small\r\nget small\r\n")
        got = b""
        while got.count(b"END\r\n") < 2:
            chunk = b.recv(65536)
            if not chunk:
                break
            got += chunk
        check(got == b"VALUE small 0 2\r\nhi\r\nEND\r\n" * 2, "stop: pipelined replies read")
        b.sendall(b"get sma")

        # C: pipelines gets of big values and never reads a byte.
        c = connect(port)
        c.sendall(b"".join(b"get big%d\r\n" % (i % NKEYS) for i in range(300)))
        # C2: one multi-get, never read.
        c2 = connect(port)
        c2.sendall(b"get " + keys + b"\r\n")

        # D: connected, never sent anything.
        d = connect(port)
        # One connection asks, so that its own closes do not race the count.
        st = connect(port)
        deadline = time.time() + 20
        while stats(port, sock=st).get("curr_connections") != "7" and time.time() < deadline:
            time.sleep(0.05)   # earlier clients' closes may still be on their way
        cc = stats(port, sock=st).get("curr_connections")
        check(cc == "7", "stop: six clients and the stats one are connected (%s)" % cc)
        time.sleep(0.3)   # the server has queued what the non-readers asked for

        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        readers = {name: Reader(sock, t0 + grace + 8) for name, sock in
                   (("A", a), ("R", rs), ("B", b), ("D", d), ("S", st))}
        for r in readers.values():
            r.start()
        refused = refused_after(port, t0)
        check(refused is not None and refused < 1.0,
              "stop: new connections refused at once (%s s)" % refused)
        time.sleep(0.4)
        proc.send_signal(signal.SIGTERM)   # again: no effect
        proc.send_signal(signal.SIGHUP)    # logrotate's: no effect either
        rc = wait_exit(proc, grace + 8)
        elapsed = time.time() - t0
        check(rc == 0, "stop: exit status 0 (got %s)" % rc)
        check(elapsed < grace + 3.0,
              "stop: exit within shutdown_timeout %d s + 3 s (%.2f s)" % (grace, elapsed))
        check(elapsed >= grace - 0.5,
              "stop: clients that read nothing were given shutdown_timeout (%.2f s)" % elapsed)
        for r in readers.values():
            r.join(timeout=grace + 10)
        ra = readers["A"]
        whole = first + ra.data
        check(len(whole) == multiget_reply_len() and whole.endswith(b"\r\nEND\r\n"),
              "stop: the client in the middle of a multi-get got all %d bytes, then EOF "
              "(got %d)" % (multiget_reply_len(), len(whole)))
        check(ra.eof_at is not None, "stop: A saw EOF")
        rwhole = rfirst + readers["R"].data
        rwant = len(b"*%d\r\n" % NKEYS) + NKEYS * (len(b"$%d\r\n" % VLEN) + VLEN + 2)
        check(len(rwhole) == rwant and rwhole.endswith(b"v\r\n") and readers["R"].eof_at is not None,
              "stop: the RESP client in the middle of an MGET got all %d bytes, then EOF (got %d)"
              % (rwant, len(rwhole)))
        for name in ("B", "D", "S"):
            r = readers[name]
            when = None if r.eof_at is None else r.eof_at - t0
            check(when is not None and when < 1.0 and r.data == b"",
                  "stop: idle client %s closed at once (%s s, %r)" % (name, when, r.data[:40]))
        for s in (a, rs, b, c, c2, d, st):
            s.close()
        text = read_file(errpath)
        check(re.search(r"warning: worker \d: shutdown_timeout \(2 s\) passed; closing \d+ "
                        r"connections with replies unsent", text) is not None,
              "stop: a warning says replies were cut: %r" % text[-300:])
        no_sanitizer_report(errpath, "stop")
    finally:
        if proc.poll() is None:
            kioku_proc.stop(proc)


def immediate_stop(tmp):
    with open(os.path.join(tmp, "zero.err"), "wb") as err:
        proc, port = kioku_proc.start(BIN, ["-t", "1", "-o", "shutdown_timeout=0"], stderr=err)
    try:
        check(load(port), "timeout 0: values stored")
        c = connect(port)
        c.sendall(b"".join(b"get big%d\r\n" % i for i in range(NKEYS)))
        time.sleep(0.3)
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        rc = wait_exit(proc, 10)
        elapsed = time.time() - t0
        check(rc == 0 and elapsed < 1.5,
              "timeout 0: a client that never reads does not delay the exit (rc %s, %.2f s)"
              % (rc, elapsed))
        c.close()
    finally:
        if proc.poll() is None:
            kioku_proc.stop(proc)
    no_sanitizer_report(os.path.join(tmp, "zero.err"), "timeout 0")


def snapshot(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


def logfile_and_signals(tmp):
    path = os.path.join(tmp, "kioku.log")
    moved = path + ".1"
    errpath = os.path.join(tmp, "log.err")
    with open(errpath, "wb") as err:
        proc, port = kioku_proc.start(BIN, ["-t", "2", "-vv", "-o", "logfile=" + path], stderr=err)
    try:
        m = wait_for(path, r"(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z kioku \S+ listening")
        check(m is not None, "logfile: the start line, with a UTC timestamp: %r" % read_file(path))
        st = stats(port, b"settings")
        check(st.get("logfile") == path and st.get("shutdown_timeout") == "3",
              "stats settings: logfile %r, shutdown_timeout %r" %
              (st.get("logfile"), st.get("shutdown_timeout")))
        with connect(port) as s:
            s.sendall(b"set k1 0 0 1\r\na\r\nset k2 0 0 1\r\nb\r\nget k1\r\nget nope\r\n")
            recv_until(s, b"END\r\nEND\r\n")
        check(wait_for(path, r"(?m)Z <\d+ get nope$") is not None,
              "logfile: -vv command lines land in the log file")

        # SIGUSR1: the counters, as `stats` has them.
        before = stats(port)
        proc.send_signal(signal.SIGUSR1)
        m = wait_for(path, r"(?m)^\S+Z stats: .*$")
        check(m is not None, "SIGUSR1: a stats line in the log")
        snap = {}
        if m is not None:
            for line in re.findall(r"(?m)^\S+Z stats: .*$", read_file(path)):
                snap.update(snapshot(line.split(" ", 1)[1]))
        for name in ("curr_items", "get_hits", "get_misses", "cmd_set", "total_items",
                     "evictions", "bytes", "limit_maxbytes", "total_connections", "threads"):
            check(name in snap and snap[name] == before.get(name),
                  "SIGUSR1: %s=%s as stats says (%s)" % (name, snap.get(name), before.get(name)))
        check("uptime" in snap and "pid" in snap and snap["pid"] == str(proc.pid),
              "SIGUSR1: uptime and pid are there")
        check(set(before) <= set(snap),
              "SIGUSR1: every general stat is in the snapshot (missing %s)" %
              sorted(set(before) - set(snap)))

        # logrotate: rename, SIGHUP, new lines in a new file at PATH.
        os.rename(path, moved)
        with connect(port) as s:
            s.sendall(b"get after_rename\r\n")
            recv_until(s, b"END\r\n")
        check(wait_for(moved, r"get after_rename") is not None,
              "SIGHUP: before it, lines still go to the renamed file")
        proc.send_signal(signal.SIGHUP)
        check(wait_for(path, r"SIGHUP: log file .* reopened") is not None,
              "SIGHUP: a new file at PATH, which says it was reopened")
        with connect(port) as s:
            s.sendall(b"get after_hup\r\n")
            check(recv_until(s, b"END\r\n") == b"END\r\n", "SIGHUP: the server still serves")
        proc.send_signal(signal.SIGUSR1)
        check(wait_for(path, r"(?m)Z <\d+ get after_hup$") is not None and
              wait_for(path, r"(?m)^\S+Z stats: .*curr_items=2\b") is not None,
              "SIGHUP: new command and stats lines land in the new file")
        old = read_file(moved)
        check("after_hup" not in old and "listening" in old and "get after_rename" in old,
              "SIGHUP: the renamed file keeps the old lines only")
        check("after_rename" not in read_file(path), "SIGHUP: the new file has no old lines")

        # The file gone with its directory: SIGHUP says why, the server goes on.
        os.rename(tmp + "/kioku.log", tmp + "/kioku.log.2")
        os.chmod(tmp, 0o500)
        proc.send_signal(signal.SIGHUP)
        # Its answer, before the directory is writable again (a fixed 0.3 s
        # was too short for a sanitizer build on a busy machine).
        if os.geteuid() != 0:
            wait_for(tmp + "/kioku.log.2", r"cannot reopen the log file")
        else:   # root opens it anyway
            wait_for(tmp + "/kioku.log", r"SIGHUP: log file .* reopened")
        os.chmod(tmp, 0o700)
        with connect(port) as s:
            s.sendall(b"version\r\n")
            check(recv_until(s, b"\r\n").startswith(b"VERSION"),
                  "SIGHUP: a failed reopen leaves the server serving")
        if os.geteuid() != 0:   # root opens it anyway
            check("cannot reopen the log file" in read_file(tmp + "/kioku.log.2"),
                  "SIGHUP: a failed reopen is logged to the old file")
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        rc = wait_exit(proc, 10)
        check(rc == 0 and time.time() - t0 < 5, "logfile: SIGTERM exits 0 (%s)" % rc)
        check(read_file(errpath) == "", "logfile: nothing on stderr: %r" % read_file(errpath)[:300])
    finally:
        if proc.poll() is None:
            kioku_proc.stop(proc)


def stderr_default(tmp):
    errpath = os.path.join(tmp, "plain.err")
    with open(errpath, "wb") as err:
        proc, port = kioku_proc.start(BIN, ["-t", "1"], stderr=err)
    try:
        proc.send_signal(signal.SIGHUP)   # no TLS, no log file: nothing to do
        proc.send_signal(signal.SIGUSR1)
        m = wait_for(errpath, r"(?m)^stats: pid=\d+ uptime=\d+ .*$")
        check(m is not None, "SIGUSR1 without a log file: one plain stats line on stderr: %r"
              % read_file(errpath)[:300])
        with connect(port) as s:
            s.sendall(b"version\r\n")
            check(recv_until(s, b"\r\n").startswith(b"VERSION"), "SIGHUP and SIGUSR1: still serving")
        proc.send_signal(signal.SIGINT)
        rc = wait_exit(proc, 10)
        check(rc == 0, "SIGINT exits 0 (%s)" % rc)
        text = read_file(errpath)
        check("listening" not in text and "stopping" not in text,
              "without -v: no info lines on stderr: %r" % text[:300])
    finally:
        if proc.poll() is None:
            kioku_proc.stop(proc)
    # Under journald ($JOURNAL_STREAM names stderr): syslog priorities.
    jpath = os.path.join(tmp, "journal.err")
    with open(jpath, "wb") as err:
        st = os.fstat(err.fileno())
        os.environ["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        try:
            proc, port = kioku_proc.start(BIN, ["-t", "1", "-v"], stderr=err)
        finally:
            del os.environ["JOURNAL_STREAM"]
    try:
        proc.send_signal(signal.SIGUSR1)
        check(wait_for(jpath, r"(?m)^<5>stats: pid=\d+ ") is not None and
              re.search(r"(?m)^<6>kioku \S+ listening", read_file(jpath)) is not None,
              "journald: notice and info lines carry <5> and <6>: %r" % read_file(jpath)[:200])
    finally:
        kioku_proc.stop(proc)
    check(re.search(r"(?m)^<6>stopped$", read_file(jpath)) is not None,
          "journald: the last line is <6>stopped: %r" % read_file(jpath)[-200:])
    no_sanitizer_report(errpath, "SIGUSR1 on stderr")
    no_sanitizer_report(jpath, "journald")
    r = subprocess.run([BIN, "-p", "0", "-U", "0", "-l", "127.0.0.1", "-o",
                        "logfile=/nonexistent-kioku/dir/log"] + kioku_proc.ROOT_ARGS,
                       capture_output=True, text=True, timeout=10)
    check(r.returncode == 73 and r.stderr ==
          "error: cannot open the log file /nonexistent-kioku/dir/log: No such file or directory\n",
          "an unwritable log file refuses the start: exit 73 and why (%d, %r)"
          % (r.returncode, r.stderr))


def trace_level(tmp):
    errpath = os.path.join(tmp, "trace.err")
    with open(errpath, "wb") as err:
        proc, port = kioku_proc.start(BIN, ["-t", "1", "-vvv"], stderr=err)
    try:
        s = connect(port)
        s.sendall(b"version\r\n")
        recv_until(s, b"\r\n")
        local = s.getsockname()[1]
        s.close()
        m = wait_for(errpath, r"(?m)^<(\d+) new client connection from 127\.0\.0\.1:%d$" % local)
        check(m is not None and
              wait_for(errpath, r"(?m)^<%s connection closed\.$" % (m.group(1) if m else "x"))
              is not None, "-vvv: connections opened and closed are logged: %r"
              % read_file(errpath)[-300:])
        check(re.search(r"(?m)^<\d+ version$", read_file(errpath)) is not None,
              "-vvv: command lines too")
    finally:
        kioku_proc.stop(proc)
    with open(errpath, "wb") as err:
        proc, port = kioku_proc.start(BIN, ["-t", "1", "-vv"], stderr=err)
    try:
        with connect(port) as s:
            s.sendall(b"version\r\n")
            recv_until(s, b"\r\n")
        check(wait_for(errpath, r"(?m)^<\d+ version$") is not None and
              "new client connection" not in read_file(errpath),
              "-vv: command lines without connection lines")
    finally:
        kioku_proc.stop(proc)
    no_sanitizer_report(errpath, "-vv")


def main():
    if not BIN:
        print("KIOKU_BIN not set: skipping")
        return 77
    with tempfile.TemporaryDirectory(prefix="kioku-signals.") as tmp:
        bounded_stop(tmp)
        immediate_stop(tmp)
        logfile_and_signals(tmp)
        stderr_default(tmp)
        trace_level(tmp)
    if failures:
        print("%d failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
