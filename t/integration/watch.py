#!/usr/bin/env python3
"""memcached's `watch` log streaming (issue 13) against a real $KIOKU_BIN:

- `watch fetchers` answers OK and streams a get's hit and miss as
  memcached's item_get lines (key, status, clsid, size, and cfd: the
  client's fd as `stats conns` names it); a set shows the lookup before it
  (status=not_found) then item_store (mutations) with cmd, ttl and size; a
  key with a comma is URI-encoded (n%2Cfoo).
- The binary protocol's Set and Get show item_store and item_get too.
- deletions: `delete` and `md` show type=deleted with cmd= and size=; a
  miss and `md I` (only marks stale) show nothing.
- evictions: filling a small -m shows type=eviction lines.
- connevents: conn_new and conn_close with the peer's port, transport=tcp,
  reason=normal for quit and reason=error for an HTTP request line, cfd the
  fd `stats conns` showed.
- A watcher sends nothing back to commands written after `watch`; closing
  it ends the watch (log_watchers back to 0).
- A watcher that never reads does not hold up other clients: 20000
  multi-gets finish in bounded time while its socket is full; the lines
  that did not fit are counted (log_watcher_skipped), and when it reads
  again a "skipped=N" line comes before the next real line.
- Under -o idle_timeout a silent watcher stays (memcached never kicks one)
  while an idle client is closed with reason=idle_timeout.
- `watch foo` answers ERROR and the connection goes on, as does a watch
  behind another request of the same batch (memcached's "ERROR cannot
  pipeline other commands before watch"); -W answers
  "CLIENT_ERROR watch commands not allowed"; verbosity still answers OK
  while a watcher is attached.

Every server is stopped by PID; every socket read is bounded by a timeout.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402
from kioku_proc import connect, recv_until  # noqa: E402

BIN = os.environ.get("KIOKU_BIN")
failures = []
HEAD = r"ts=\d+\.\d+ gid=\d+ "


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def talk(s, req, end):
    s.sendall(req)
    return recv_until(s, end)


def stats(s, arg=b""):
    out = talk(s, b"stats" + (b" " + arg if arg else b"") + b"\r\n", b"END\r\n").decode()
    res = {}
    for line in out.split("\r\n"):
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            res[parts[1]] = parts[2]
    return res


def conn_fd(s, probe):
    """The fd `stats conns` (asked on probe) shows for client socket s."""
    port = s.getsockname()[1]
    for name, val in stats(probe, b"conns").items():
        if name.endswith(":addr") and val.endswith(":%d" % port):
            return int(name.split(":")[0])
    return None


class Watcher:
    """A `watch` connection read line by line, each wait bounded."""

    def __init__(self, port, streams, rcvbuf=None):
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(10)
        self.s.connect(("127.0.0.1", port))
        self.buf = b""
        self.s.sendall(b"watch " + streams + b"\r\n")

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def until(self, pattern, limit=100000):
        """The first line matching pattern (None after limit lines or a timeout)."""
        try:
            for _ in range(limit):
                ln = self.line()
                if ln is None:
                    return None
                if re.search(pattern, ln):
                    return ln
        except socket.timeout:
            return None
        return None

    def quiet(self, secs=0.3):
        """True when nothing arrives for secs."""
        if self.buf:
            return False
        self.s.settimeout(secs)
        try:
            return not self.s.recv(1, socket.MSG_PEEK)
        except socket.timeout:
            return True
        finally:
            self.s.settimeout(10)


def test_fetchers_and_mutations(port):
    c = connect(port)
    w = Watcher(port, b"fetchers mutations")
    check(w.line() == "OK\r", "watch fetchers mutations answers OK")
    cfd = conn_fd(c, c)
    check(cfd is not None, "the client is in stats conns (fd %s)" % cfd)
    check(talk(c, b"set wkey 0 100 5\r\nhello\r\n", b"\r\n") == b"STORED\r\n", "set")
    ln = w.line()
    check(re.fullmatch(HEAD + r"type=item_get key=wkey status=not_found clsid=0 cfd=%d size=0"
                       % cfd, ln or "") is not None, "a set first shows its lookup: %s" % ln)
    ln = w.line()
    check(re.fullmatch(HEAD + r"type=item_store key=wkey status=stored cmd=set ttl=100 "
                       r"clsid=\d+ cfd=%d size=5" % cfd, ln or "") is not None,
          "then item_store with cmd, ttl and size: %s" % ln)
    talk(c, b"get wkey nokey\r\n", b"END\r\n")
    ln = w.line()
    check(re.fullmatch(HEAD + r"type=item_get key=wkey status=found clsid=[1-9]\d* cfd=%d "
                       r"size=5" % cfd, ln or "") is not None, "a hit: %s" % ln)
    ln = w.line()
    check(re.fullmatch(HEAD + r"type=item_get key=nokey status=not_found clsid=0 cfd=%d "
                       r"size=0" % cfd, ln or "") is not None, "a miss: %s" % ln)
    talk(c, b"add wkey 0 0 1\r\nx\r\n", b"\r\n")
    ln = w.until(r"type=item_store")
    check(ln is not None and "key=wkey status=not_stored cmd=add" in ln,
          "a failed add is logged not_stored: %s" % ln)
    talk(c, b"set n,foo 0 0 1\r\nx\r\n", b"\r\n")
    ln = w.until(r"type=item_store")
    check(ln is not None and "key=n%2Cfoo " in ln, "keys are URI-encoded: %s" % ln)
    check(talk(c, b"mg wkey v\r\n", b"hello\r\n") == b"VA 5\r\nhello\r\n", "mg")
    ln = w.until(r"type=item_get")
    check(ln is not None and "key=wkey status=found" in ln, "mg is a fetch: %s" % ln)
    # A watcher runs no commands: this gets no VERSION back.
    w.s.sendall(b"version\r\n")
    check(w.quiet(), "a watcher answers no commands")
    wfd = conn_fd(w.s, c)
    state = stats(c, b"conns").get("%s:state" % wfd)
    check(state == "conn_watch", "stats conns shows the watcher as conn_watch (%s)" % state)
    st = stats(c)
    check(int(st["log_watchers"]) == 1, "log_watchers 1 (%s)" % st["log_watchers"])
    check(int(st["log_watcher_sent"]) >= 6 and int(st["log_worker_written"]) >= 6,
          "log_watcher_sent / log_worker_written count the lines")
    check(talk(c, b"verbosity 1\r\n", b"\r\n") == b"OK\r\n", "verbosity answers OK beside a watcher")
    talk(c, b"verbosity 0\r\n", b"\r\n")
    w.s.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and int(stats(c)["log_watchers"]) != 0:
        time.sleep(0.05)
    check(int(stats(c)["log_watchers"]) == 0, "closing the watcher ends it (log_watchers 0)")
    c.close()


def bin_req(opcode, key=b"", extras=b"", value=b""):
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0,
                       len(body), 0, 0) + body


def test_binary(port):
    c = connect(port)
    w = Watcher(port, b"mutations fetchers")
    check(w.line() == "OK\r", "watch mutations fetchers answers OK")
    probe = connect(port)
    cfd = conn_fd(c, probe)
    probe.close()
    c.sendall(bin_req(0x01, b"bkey", struct.pack(">II", 0, 0), b"xyz"))   # Set
    c.sendall(bin_req(0x00, b"bkey"))                                      # Get
    c.sendall(bin_req(0x0A))                                               # Noop
    got = b""
    while len(got) < 24 + (24 + 4 + 3) + 24:   # Set's, Get's (flags, value), Noop's
        chunk = c.recv(4096)
        if not chunk:
            break
        got += chunk
    check(len(got) == 79 and got[24:26] == b"\x81\x00", "binary Set, Get, Noop answered")
    ln = w.until(r"type=item_store")
    check(ln is not None and re.fullmatch(HEAD + r"type=item_store key=bkey status=stored cmd=set "
                                          r"ttl=0 clsid=\d+ cfd=%d size=3" % cfd, ln) is not None,
          "binary Set shows item_store: %s" % ln)
    ln = w.until(r"type=item_get key=bkey status=found")
    check(ln is not None and ln.endswith("cfd=%d size=3" % cfd), "binary Get shows item_get: %s" % ln)
    w.s.close()
    c.close()


def test_deletions(port):
    c = connect(port)
    w = Watcher(port, b"deletions")
    check(w.line() == "OK\r", "watch deletions answers OK")
    talk(c, b"set d1 0 0 4\r\nabcd\r\n", b"\r\n")
    check(talk(c, b"delete nothere\r\n", b"\r\n") == b"NOT_FOUND\r\n", "delete miss")
    check(talk(c, b"delete d1\r\n", b"\r\n") == b"DELETED\r\n", "delete hit")
    ln = w.line()
    check(re.fullmatch(HEAD + r"type=deleted key=d1 cmd=delete clsid=[1-9]\d* size=4", ln or "")
          is not None, "delete is logged with its size (a miss is not): %s" % ln)
    talk(c, b"set d2 0 0 3\r\nabc\r\n", b"\r\n")
    check(talk(c, b"md d2 I\r\n", b"\r\n") == b"HD\r\n", "md I")
    check(talk(c, b"md d2\r\n", b"\r\n") == b"HD\r\n", "md")
    ln = w.line()
    check(re.fullmatch(HEAD + r"type=deleted key=d2 cmd=md clsid=[1-9]\d* size=3", ln or "")
          is not None, "md is logged, md I was not: %s" % ln)
    w.s.close()
    c.close()


def test_connevents(port):
    probe = connect(port)
    w = Watcher(port, b"connevents")
    check(w.line() == "OK\r", "watch connevents answers OK")
    c = connect(port)
    talk(c, b"version\r\n", b"\r\n")
    cfd = conn_fd(c, probe)
    cport = c.getsockname()[1]
    c.sendall(b"quit\r\n")
    ln = w.until(r"type=conn_new rip=127\.0\.0\.1 rport=%d " % cport)
    check(ln is not None and re.fullmatch(HEAD + r"type=conn_new rip=127\.0\.0\.1 rport=%d "
                                          r"transport=tcp cfd=%d" % (cport, cfd), ln)
          is not None, "conn_new with the peer and the stats conns fd: %s" % ln)
    ln = w.until(r"type=conn_close rip=127\.0\.0\.1 rport=%d " % cport)
    check(ln is not None and ln.endswith("transport=tcp reason=normal cfd=%d" % cfd),
          "quit: conn_close reason=normal: %s" % ln)
    c.close()
    h = connect(port)
    hport = h.getsockname()[1]
    h.sendall(b"GET / HTTP/1.1\r\n")
    ln = w.until(r"type=conn_close rip=127\.0\.0\.1 rport=%d " % hport)
    check(ln is not None and "reason=error" in ln, "an HTTP request: reason=error: %s" % ln)
    h.close()
    w.s.close()
    probe.close()


def test_evictions(port):
    c = connect(port)
    w = Watcher(port, b"evictions")
    check(w.line() == "OK\r", "watch evictions answers OK")
    value = b"B" * 11000
    for i in range(3000):   # 33 MB into -m 8
        c.sendall(b"set ev%d 0 0 11000 noreply\r\n%s\r\n" % (i, value))
    talk(c, b"version\r\n", b"\r\n")
    ln = w.until(r"type=eviction")
    check(ln is not None and re.fullmatch(HEAD + r"type=eviction key=ev\d+ fetch=no ttl=-1 "
                                          r"la=\d+ clsid=\d+ size=11000", ln) is not None,
          "filling -m 8 shows evictions: %s" % ln)
    w.s.close()
    c.close()


def run_gets(c, prefix):
    """20000 gets of three 240-byte keys, pipelined 100 at a time, at most
    60 s: (gets answered, seconds)."""
    keys = [prefix + b"%04d" % i + b"x" * 232 for i in range(3)]
    req = b"get " + b" ".join(keys) + b"\r\n"
    t0 = time.monotonic()
    done = 0
    for _ in range(200):
        c.sendall(req * 100)
        n, tail = 0, b""
        while n < 100:
            more = c.recv(65536)
            if not more:
                break
            buf = tail + more   # an END may straddle two reads
            n += buf.count(b"END\r\n")
            tail = buf[-4:] if not buf.endswith(b"END\r\n") else b""
        done += n
        if time.monotonic() - t0 > 60:
            break
    return done, time.monotonic() - t0


def test_slow_watcher(port):
    c = connect(port)
    base_done, base_took = run_gets(c, b"base")
    w = Watcher(port, b"fetchers", rcvbuf=4096)
    check(w.line() == "OK\r", "a watcher that will not read answers OK")
    done, took = run_gets(c, b"slow")
    print("measure: 20000 3-key gets %.2f s with no watcher, %.2f s beside a stuck one"
          % (base_took, took), flush=True)
    check(done == 20000, "20000 gets answered while the watcher reads nothing (%.2f s)" % took)
    check(took < 60, "and in bounded time")
    st = stats(c)
    skipped = int(st["log_watcher_skipped"])
    check(skipped > 0, "lines that did not fit were skipped (log_watcher_skipped %d)" % skipped)
    # Read again: the buffered lines come, then "skipped=N" before the next line.
    w.s.settimeout(10)
    ln = None
    for _ in range(100):
        talk(c, b"get after\r\n", b"END\r\n")
        ln = w.until(r"^skipped=\d+$|key=after ", limit=200000)
        if ln is not None and ln.startswith("skipped="):
            break
    check(ln is not None and re.fullmatch(r"skipped=\d+", ln) is not None,
          "reading again shows skipped=N: %s" % ln)
    nxt = w.line()
    check(re.fullmatch(HEAD + r"type=item_get .*", nxt or "") is not None,
          "then real lines again: %s" % (nxt or "")[:80])
    w.s.close()
    c.close()


def test_refusals(port):
    s = connect(port)
    check(talk(s, b"watch foo\r\n", b"\r\n") == b"ERROR\r\n", "watch foo: ERROR")
    check(talk(s, b"version\r\n", b"\r\n").startswith(b"VERSION "),
          "the connection goes on after a refused watch")
    out = talk(s, b"version\r\nwatch\r\n", b"before watch\r\n")
    check(re.fullmatch(rb"VERSION \S+\r\nERROR cannot pipeline other commands before watch\r\n",
                       out) is not None,
          "watch after a pipelined request: memcached's pipeline error (%r)" % out)
    check(talk(s, b"version\r\n", b"\r\n").startswith(b"VERSION "), "and the connection goes on")
    s.close()
    proc, p2 = kioku_proc.start(BIN, ["-W"])
    try:
        s = connect(p2)
        check(talk(s, b"watch mutations\r\n", b"\r\n") ==
              b"CLIENT_ERROR watch commands not allowed\r\n", "-W: watch refused")
        check(talk(s, b"version\r\n", b"\r\n").startswith(b"VERSION "), "-W: connection goes on")
        s.close()
    finally:
        kioku_proc.stop(proc)


def test_watcher_is_never_idle():
    proc, p2 = kioku_proc.start(BIN, ["-o", "idle_timeout=1"])
    try:
        w = Watcher(p2, b"connevents")
        check(w.line() == "OK\r", "idle_timeout=1: watch answers OK")
        time.sleep(2.5)   # the sweep runs every second
        c = connect(p2)
        ln = w.until(r"type=conn_new ")
        check(ln is not None, "a silent watcher outlives -o idle_timeout: %s" % ln)
        ln = w.until(r"type=conn_close .* reason=idle_timeout")
        check(ln is not None, "while an idle client is kicked (reason=idle_timeout): %s" % ln)
        c.close()
        w.s.close()
    finally:
        kioku_proc.stop(proc)


def main():
    if not BIN:
        print("skip: KIOKU_BIN not set")
        return 77
    proc, port = kioku_proc.start(BIN, ["-t", "2", "-m", "8", "-o", "watcher_logbuf_size=8"])
    try:
        test_fetchers_and_mutations(port)
        test_deletions(port)
        test_binary(port)
        test_connevents(port)
        test_evictions(port)
        test_slow_watcher(port)
        test_refusals(port)
        check(proc.poll() is None, "server still running")
    finally:
        kioku_proc.stop(proc)
    test_watcher_is_never_idle()
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
