#!/usr/bin/env python3
"""-o io_uring (issue 12): the workers' io_uring loop serves every protocol
as libevent does, and a kernel that refuses io_uring leaves kioku on
libevent.

  - memcached text, meta, binary and RESP on one port, each checked
    byte for byte, one request at a time and pipelined
  - a 2 MB value in and out (several receives, several sends)
  - watch and MONITOR stream from ring workers (lines from both workers,
    3000 in order; an unread watcher stops no one)
  - 40 clients at once, each with its own keys
  - a client that asks for 512 MB of replies and reads none costs the
    server bounded memory while another client is served; then it gets
    every byte
  - a client that reads no replies and never stops sending requests can
    push only a bounded amount: the server stops receiving from it
  - 60 such clients on one worker, together sending more input than the
    worker's shared receive buffers hold: the last of them, which found the
    buffers taken, still get every reply, and another client is served
  - replies queued just before a close (quit, RESP QUIT, a client that
    shuts down its side) still arrive
  - a busy Lua script on the only worker: a client that sends QUIT is
    answered +OK and closed while the script still runs
  - SIGTERM with clients connected: exit 0
  - -o idle_timeout closes an idle client (the ring's once-a-second tick)
  - fallback: with io_uring_setup refused by a seccomp filter (EPERM), one
    line is logged and the same requests are served through libevent

Skips (77) when the kernel or the build gives kioku no ring: it says so on
stderr.
"""
import ctypes
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402

BIN = os.environ.get("KIOKU_BIN", "src/kioku")
REFUSED = b"-o io_uring:"


def rings(pid):
    """How many io_uring instances process pid holds."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:[io_uring]"
        except OSError:
            pass
    return n


# A seccomp filter that fails io_uring_setup (425 on every architecture)
# with EPERM, as a container runtime's default profile may.
def _bpf(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


_FILTER = b"".join([
    _bpf(0x20, 0, 0, 0),                 # ld [0]: the syscall number
    _bpf(0x15, 0, 1, 425),               # jeq io_uring_setup
    _bpf(0x06, 0, 0, 0x00050000 | 1),    # ret ERRNO(EPERM)
    _bpf(0x06, 0, 0, 0x7fff0000),        # ret ALLOW
])
_filter_buf = ctypes.create_string_buffer(_FILTER, len(_FILTER))


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_prog = _Fprog(len(_FILTER) // 8, ctypes.addressof(_filter_buf))


def refuse_io_uring():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:            # PR_SET_NO_NEW_PRIVS
        os._exit(90)
    if libc.prctl(22, 2, ctypes.byref(_prog), 0, 0) != 0:   # PR_SET_SECCOMP, FILTER
        os._exit(91)


def start(extra, preexec=None):
    """(proc, port, stderr file) of kioku -o io_uring with extra args."""
    err = tempfile.TemporaryFile()
    for _ in range(5):
        port = kioku_proc.free_port()
        proc = subprocess.Popen([BIN, "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-t", "2",
                                 "-o", "io_uring", "-I", "4m"] + kioku_proc.ROOT_ARGS + extra,
                                stderr=err, preexec_fn=preexec)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc, port, err
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        kioku_proc.stop(proc)
    sys.exit("io_uring.py: could not start the server")


def stderr_of(err):
    err.seek(0)
    return err.read()


def settle(proc, err, want_rings):
    """Wait (10 s at most) until the workers have made their rings or said
    why not: the port accepts before the worker threads try."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if REFUSED in stderr_of(err) or rings(proc.pid) >= want_rings:
            return
        time.sleep(0.05)


def ask(s, req, end):
    s.sendall(req)
    return kioku_proc.recv_until(s, end)


def check(cond, what):
    if not cond:
        sys.exit("io_uring.py: FAIL: " + what)


def bin_get(key):
    return struct.pack(">BBHBBHIIQ", 0x80, 0x00, len(key), 0, 0, 0, len(key), 0, 0) + key


def protocol_mix(port):
    s = kioku_proc.connect(port)
    check(ask(s, b"set a 0 0 5\r\nhello\r\n", b"\r\n") == b"STORED\r\n", "text set")
    check(ask(s, b"get a\r\n", b"END\r\n") == b"VALUE a 0 5\r\nhello\r\nEND\r\n", "text get")
    check(ask(s, b"bogus\r\n", b"\r\n") == b"ERROR\r\n", "unknown command answered")
    check(ask(s, b"mg a v f\r\n", b"hello\r\n") == b"VA 5 f0\r\nhello\r\n", "meta get")
    # 200 pipelined requests, one write: every reply, in order.
    req = b"".join(b"set p%d 0 0 %d\r\n%d\r\n" % (i, len(str(i)), i) for i in range(200))
    req += b"".join(b"get p%d\r\n" % i for i in range(200))
    want = b"STORED\r\n" * 200 + b"".join(
        b"VALUE p%d 0 %d\r\n%d\r\nEND\r\n" % (i, len(str(i)), i) for i in range(200))
    check(ask(s, req, b"VALUE p199 0 3\r\n199\r\nEND\r\n") == want, "pipelined text")
    s.close()

    b = kioku_proc.connect(port)
    reply = ask(b, bin_get(b"a"), b"hello")
    check(reply[:2] == b"\x81\x00" and reply[-5:] == b"hello", "binary get")
    b.close()

    r = kioku_proc.connect(port)
    check(ask(r, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", b"\r\n") == b"+OK\r\n", "RESP SET")
    check(ask(r, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"v\r\n") == b"$1\r\nv\r\n", "RESP GET")
    check(ask(r, b"PING\r\n", b"\r\n") == b"+PONG\r\n", "inline PING")
    check(ask(r, b"*1\r\n$7\r\nNOTACMD\r\n", b"\r\n").startswith(b"-ERR unknown command"),
          "RESP unknown command")
    check(ask(r, b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n" * 50, b"$2\r\nhi\r\n" * 50) ==
          b"$2\r\nhi\r\n" * 50, "pipelined RESP")
    check(ask(r, b"*1\r\n$4\r\nQUIT\r\n", b"\r\n") == b"+OK\r\n", "RESP QUIT answered")
    check(r.recv(10) == b"", "closed after QUIT")
    r.close()


def large_value(port):
    s = kioku_proc.connect(port)
    val = bytes((i * 7) & 0xff for i in range(2 << 20)).replace(b"\r", b"x")
    check(ask(s, b"set big 0 0 %d\r\n" % len(val) + val + b"\r\n", b"\r\n") == b"STORED\r\n",
          "2 MB set")
    got = ask(s, b"get big\r\n", b"END\r\n")
    check(got == b"VALUE big 0 %d\r\n" % len(val) + val + b"\r\nEND\r\n", "2 MB get")
    s.close()


def many_clients(port):
    errors = []

    def client(n):
        try:
            s = kioku_proc.connect(port)
            for i in range(100):
                key = b"c%d_%d" % (n, i)
                if ask(s, b"set %s 0 0 2\r\nok\r\n" % key, b"\r\n") != b"STORED\r\n":
                    errors.append("set " + key.decode())
                if ask(s, b"get %s\r\n" % key, b"END\r\n") != b"VALUE %s 0 2\r\nok\r\nEND\r\n" % key:
                    errors.append("get " + key.decode())
            s.close()
        except OSError as e:
            errors.append(str(e))
    threads = [threading.Thread(target=client, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(not errors, "40 clients: %s" % errors[:3])


def backpressure(proc, port):
    """A client asks for 512 MB of replies and reads none: the server holds
    a bounded part of them (the ring's send buffers are copies), serves
    others meanwhile, and delivers every byte once the client reads."""
    s = kioku_proc.connect(port)
    val = b"v" * (256 << 10)
    check(ask(s, b"set bp 0 0 %d\r\n" % len(val) + val + b"\r\n", b"\r\n") == b"STORED\r\n",
          "set bp")
    before = kioku_proc.proc_kb(proc.pid, "VmRSS")
    n = 2000
    s.sendall(b"get bp\r\n" * n)
    time.sleep(1)
    o = kioku_proc.connect(port)
    check(ask(o, b"version\r\n", b"\r\n").startswith(b"VERSION"), "another client served")
    o.close()
    grown = kioku_proc.proc_kb(proc.pid, "VmRSS") - before
    check(grown < 64 << 10, "memory bounded for a client that does not read (+%d kB)" % grown)
    s.settimeout(30)
    one = len(b"VALUE bp 0 %d\r\n" % len(val)) + len(val) + len(b"\r\nEND\r\n")
    got, deadline = 0, time.monotonic() + 60
    while got < n * one and time.monotonic() < deadline:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += len(chunk)
    check(got == n * one, "every reply delivered (%d of %d bytes)" % (got, n * one))
    s.close()


def stalled_clients():
    """Clients that send requests but read no replies keep their unread
    input; they must not keep the worker's shared receive buffers (256 of
    16 KiB), or the clients that came after them could not be read."""
    proc, port, err = start(["-t", "1"])
    try:
        settle(proc, err, 1)
        val = b"w" * 4096
        s = kioku_proc.connect(port)
        check(ask(s, b"set st 0 0 %d\r\n" % len(val) + val + b"\r\n", b"\r\n") == b"STORED\r\n",
              "set st")
        s.close()
        n = 16000   # 128 kB of requests each (8 buffers), 66 MB of replies
        req = b"get st\r\n" * n
        hogs = []
        for _ in range(60):
            h = socket.socket()
            h.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            h.connect(("127.0.0.1", port))
            h.sendall(req)
            hogs.append(h)
        time.sleep(1)
        o = kioku_proc.connect(port)
        o.settimeout(10)
        check(ask(o, b"version\r\n", b"\r\n").startswith(b"VERSION"),
              "a new client served beside 60 stalled ones")
        o.close()
        one = len(b"VALUE st 0 %d\r\n" % len(val)) + len(val) + len(b"\r\nEND\r\n")
        for i, h in enumerate(hogs[-3:]):   # every byte, in order, for the last
            h.settimeout(30)
            got, deadline = bytearray(), time.monotonic() + 60
            while len(got) < n * one and time.monotonic() < deadline:
                try:
                    chunk = h.recv(1 << 20)
                except socket.timeout:
                    break
                if not chunk:
                    break
                got += chunk
            check(got == (b"VALUE st 0 %d\r\n" % len(val) + val + b"\r\nEND\r\n") * n,
                  "stalled client %d gets every reply (%d of %d bytes)" % (i, len(got), n * one))
        for h in hogs:
            h.close()
        check(proc.poll() is None, "server alive")
    finally:
        kioku_proc.stop(proc)


def endless_sender(port):
    """A client that reads none of its replies and keeps sending: once it
    has a few buffers' worth unread, the server stops receiving from it,
    so the kernel's socket buffers fill and its sends stop being taken."""
    s = kioku_proc.connect(port)
    val = b"e" * 4096
    check(ask(s, b"set es 0 0 %d\r\n" % len(val) + val + b"\r\n", b"\r\n") == b"STORED\r\n",
          "set es")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    s.setblocking(False)
    # 16 kB every 10 ms, each arriving alone: were only the buffers of one
    # iteration counted, the receive would never stop (3 MB in 2 s). With
    # a small send buffer, what the client gets taken is about what the
    # server holds: its socket's receive buffer and 64 kB.
    chunk = b"get es\r\n" * 2048
    sent, deadline = 0, time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            pass
        time.sleep(0.01)
    check(sent < 1 << 20, "a client that does not read is not read without end (%d bytes taken)" % sent)
    o = kioku_proc.connect(port)
    check(ask(o, b"version\r\n", b"\r\n").startswith(b"VERSION"), "another client served")
    o.close()
    s.close()


def resp(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def busy_script_quit():
    """While a script keeps the only worker busy, the worker still serves
    its other connections from inside the script (-BUSY, QUIT): their
    input arrives through the ring, and a QUIT closes the socket then,
    not after the script."""
    proc, port, err = start(["-t", "1"])
    try:
        settle(proc, err, 1)
        admin = kioku_proc.connect(port)
        if ask(admin, resp(b"EVAL", b"return 1", b"0"), b"\r\n") != b":1\r\n":
            print("io_uring.py: no Lua in this build; busy script skipped")
            return
        check(ask(admin, resp(b"CONFIG", b"SET", b"busy-reply-threshold", b"100"), b"\r\n") ==
              b"+OK\r\n", "CONFIG SET busy-reply-threshold")
        runner = kioku_proc.connect(port)
        runner.sendall(resp(b"EVAL", b"while true do end", b"0"))
        time.sleep(0.3)
        q = kioku_proc.connect(port)
        q.settimeout(10)
        check(ask(q, resp(b"QUIT"), b"\r\n") == b"+OK\r\n", "QUIT during a busy script: +OK")
        try:
            tail = q.recv(10)
        except socket.timeout:
            tail = b"(still open)"
        check(tail == b"", "QUIT during a busy script closes the connection: %r" % tail)
        check(ask(admin, resp(b"SCRIPT", b"KILL"), b"\r\n") == b"+OK\r\n", "SCRIPT KILL")
        runner.settimeout(10)
        check(kioku_proc.recv_until(runner, b"\r\n").startswith(b"-ERR Script killed"),
              "the script's caller is told it was killed")
    finally:
        kioku_proc.stop(proc)


def read_for(s, want, seconds):
    """What s sends until want is in it or seconds pass."""
    s.settimeout(0.2)
    got, deadline = bytearray(), time.monotonic() + seconds
    while want not in got and time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        got += chunk
    return bytes(got)


def streams(port):
    """watch and MONITOR stream from ring workers: lines made on any
    worker reach them, many of them in order, and a watcher that reads
    nothing stops no one."""
    w = kioku_proc.connect(port)
    check(ask(w, b"watch fetchers\r\n", b"\r\n") == b"OK\r\n", "watch on a ring worker: OK")
    m = kioku_proc.connect(port)
    check(ask(m, resp(b"MONITOR"), b"\r\n") == b"+OK\r\n", "MONITOR on a ring worker: +OK")
    others = [kioku_proc.connect(port) for _ in range(4)]   # both workers (-t 2)
    for i, o in enumerate(others):
        check(ask(o, b"get wk%d\r\n" % i, b"END\r\n") == b"END\r\n", "get wk%d" % i)
    got = read_for(w, b"key=wk3 ", 10)
    check(all(b"type=item_get key=wk%d status=not_found" % i in got for i in range(4)),
          "the watcher sees every worker's gets: %r" % got[:300])
    r = kioku_proc.connect(port)
    check(ask(r, resp(b"SET", b"mk", b"v"), b"\r\n") == b"+OK\r\n", "SET mk")
    got = read_for(m, b'"SET" "mk" "v"', 10)
    check(b'"SET" "mk" "v"\r\n' in got, "MONITOR sees the SET: %r" % got[:300])
    # Many lines: the pump runs in rounds and yields between them.
    n = 3000
    others[0].sendall(b"".join(b"get many%d\r\n" % i for i in range(n)))
    check(read_for(others[0], b"END\r\n" * n, 20).count(b"END\r\n") == n, "gets answered")
    got = read_for(w, b"key=many%d " % (n - 1), 20)
    keys = [int(x) for x in re.findall(rb"key=many(\d+) ", got)]
    check(keys == list(range(n)), "the watcher gets all %d lines in order (%d)" % (n, len(keys)))
    # A watcher that reads nothing: lines are dropped for it, others go on.
    lazy = kioku_proc.connect(port)
    check(ask(lazy, b"watch fetchers\r\n", b"\r\n") == b"OK\r\n", "a second watcher")
    others[1].sendall(b"get lazy%d\r\n" % 0 * 20000)
    got = read_for(others[1], b"END\r\n" * 20000, 30)
    check(got.count(b"END\r\n") == 20000, "20000 gets answered beside an unread watcher")
    check(ask(r, resp(b"PING"), b"\r\n") == b"+PONG\r\n", "another client served")
    for x in [w, m, r, lazy] + others:
        x.close()


def close_paths(port):
    s = kioku_proc.connect(port)
    s.sendall(b"set q 0 0 1\r\nx\r\nget q\r\nquit\r\n")
    check(kioku_proc.recv_until(s, b"\0") == b"STORED\r\nVALUE q 0 1\r\nx\r\nEND\r\n",
          "replies before quit, then close")
    s.close()
    s = kioku_proc.connect(port)
    s.sendall(b"get q\r\n")
    s.shutdown(socket.SHUT_WR)
    check(kioku_proc.recv_until(s, b"\0") == b"VALUE q 0 1\r\nx\r\nEND\r\n",
          "replies to a client that shut down its side")
    s.close()


def serve_all(port):
    protocol_mix(port)
    large_value(port)
    many_clients(port)
    close_paths(port)


def main():
    proc, port, err = start([])
    settle(proc, err, 2)
    if REFUSED in stderr_of(err):
        kioku_proc.stop(proc)
        print("io_uring.py: no io_uring here (%s); skipped" %
              stderr_of(err).decode(errors="replace").strip())
        sys.exit(77)
    try:
        n = rings(proc.pid)
        check(n == 2, "one ring per worker (-t 2), found %d" % n)
        serve_all(port)
        streams(port)
        backpressure(proc, port)
        endless_sender(port)
        check(proc.poll() is None, "server alive")
        idle = kioku_proc.connect(port)   # open at the stop
        proc.send_signal(signal.SIGTERM)
        check(proc.wait(timeout=20) == 0, "SIGTERM: exit 0")
        idle.close()
    finally:
        if proc.poll() is None:
            kioku_proc.stop(proc)
    print("io_uring.py: io_uring loop ok")

    stalled_clients()
    print("io_uring.py: stalled clients ok")

    busy_script_quit()
    print("io_uring.py: busy script ok")

    # The idle sweep runs from the ring's tick.
    proc, port, err = start(["-o", "idle_timeout=1"])
    try:
        s = kioku_proc.connect(port)
        check(ask(s, b"version\r\n", b"\r\n").startswith(b"VERSION"), "version")
        t = time.monotonic()
        check(s.recv(10) == b"" and time.monotonic() - t < 5, "idle client closed in about 1 s")
        o = kioku_proc.connect(port)
        check(b"STAT idle_kicks 1\r\n" in ask(o, b"stats\r\n", b"END\r\n"), "idle_kicks 1")
        o.close()
    finally:
        kioku_proc.stop(proc)
    print("io_uring.py: idle_timeout ok")

    # UDP sockets are libevent events: with -U the workers stay on libevent.
    proc, port, err = start(["-U", "-1"])
    try:
        deadline = time.monotonic() + 10
        while b"not with -U" not in stderr_of(err) and time.monotonic() < deadline:
            time.sleep(0.05)
        check(b"-o io_uring: not with -U (UDP); the workers use libevent" in stderr_of(err),
              "-U: one line says the workers use libevent")
        check(rings(proc.pid) == 0, "no ring with -U")
        serve_all(port)
    finally:
        kioku_proc.stop(proc)
    print("io_uring.py: -U keeps libevent ok")

    proc, port, err = start([], preexec=refuse_io_uring)
    try:
        settle(proc, err, 2)
        check(proc.poll() is None, "starts with io_uring refused")
        log = stderr_of(err)
        check(log.count(REFUSED) == 1 and b"libevent" in log,
              "one line says io_uring was refused: %r" % log)
        check(rings(proc.pid) == 0, "no ring under the seccomp filter")
        serve_all(port)
    finally:
        kioku_proc.stop(proc)
    print("io_uring.py: fallback to libevent ok")


if __name__ == "__main__":
    main()
