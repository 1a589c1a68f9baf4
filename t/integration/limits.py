#!/usr/bin/env python3
"""Safe defaults and limits (issue 9), each against a real $KIOKU_BIN:

- without -l it listens on 127.0.0.1 only, and it has no UDP socket
  unless -U asks (then on 127.0.0.1 only); a bad -U port is refused;
- as root it refuses to start without -u (memcached's message and exit 64),
  and -u nobody runs it as nobody (skipped when not root);
- over -c a client is refused in its protocol: memcached's line on the
  memcached port, Redis's on the RESP port and for a RESP first byte on the
  shared one, counted in `stats` and INFO rejected_connections;
- a RESP reply past -o max_output_buffer disconnects the client, counted
  (output_limit_disconnects, INFO client_output_buffer_limit_disconnections);
- a client that pipelines gets and never reads costs bounded memory (the
  server stops reading it), is closed by -o idle_timeout like a client that
  stalls in the middle of a request (idle_kicks), and others are served;
- the hash seed differs per process: the same keys come back from SCAN in
  another order from a second server.

Every server is stopped by PID; every wait and loop is bounded.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kioku_proc import free_port  # noqa: E402

BIN = os.environ.get("KIOKU_BIN")
ROOT = os.geteuid() == 0
# kioku, like memcached, refuses to run as root without -u.
ROOT_ARGS = ["-u", "root"] if ROOT else []
TOO_MANY = b"ERROR Too many open connections\r\n"
TOO_MANY_RESP = b"-ERR max number of clients reached\r\n"

failures = []


def sanitized(path):
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "libasan" in out or "libtsan" in out


# Sanitizer builds keep freed memory in quarantine: RSS is not checked there.
SANITIZED = bool(BIN) and sanitized(BIN)


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


class Server:
    """kioku on free loopback ports; args are added to -p (and --resp-port)."""

    def __init__(self, args, resp=False, user_args=None, listen=True):
        for _ in range(5):
            self.port = free_port()
            self.resp_port = free_port() if resp else 0
            argv = [BIN, "-p", str(self.port), "-U", "0"]
            if listen:
                argv += ["-l", "127.0.0.1"]
            argv += ROOT_ARGS if user_args is None else user_args
            if resp:
                argv += ["--resp-port", str(self.resp_port)]
            self.proc = subprocess.Popen(argv + list(args))
            if self._wait_up():
                return
            self.stop()
        sys.exit("could not start %s" % BIN)

    def _wait_up(self):
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"version\r\n")
                    if s.recv(100).startswith(b"VERSION"):
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -9
        return self.proc.returncode

    def connect(self, resp=False):
        s = socket.create_connection(("127.0.0.1", self.resp_port if resp else self.port), timeout=10)
        return s

    def stats(self):
        """`stats` and kioku's own `stats kioku` (output_limit_disconnects)."""
        with self.connect() as s:
            s.sendall(b"stats\r\n")
            out = recv_until(s, b"END\r\n")
            s.sendall(b"stats kioku\r\n")
            out += recv_until(s, b"END\r\n")
        vals = {}
        for line in out.decode().split("\r\n"):
            f = line.split(" ")
            if len(f) == 3 and f[0] == "STAT":
                vals[f[1]] = f[2]
        return vals

    def info(self, section="stats"):
        with self.connect(resp=True) as s:
            s.sendall(b"INFO %s\r\n" % section.encode())
            head = recv_until(s, b"\r\n")
            n = int(head[1:head.index(b"\r\n")])
            body = head[head.index(b"\r\n") + 2:]
            while len(body) < n + 2:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        return dict(l.split(":", 1) for l in body.decode().split("\r\n") if ":" in l)

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def recv_until(s, end, limit=1 << 24, timeout=10):
    out = b""
    deadline = time.time() + timeout
    while end not in out and len(out) < limit and time.time() < deadline:
        s.settimeout(max(0.01, deadline - time.time()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    return out


def read_to_eof(s, timeout=10):
    """(bytes read, True if the peer closed) within timeout."""
    out = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        s.settimeout(max(0.01, deadline - time.time()))
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, True
        if not chunk:
            return out, True
        out += chunk
    return out, False


def socket_inodes(pid):
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


def proc_net(kind, inodes):
    """(local address hex, port, state) of the process's sockets of a kind."""
    rows = []
    path = "/proc/net/" + kind
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        next(f)
        for line in f:
            f_ = line.split()
            if f_[9] in inodes:
                addr, port = f_[1].split(":")
                rows.append((addr, int(port, 16), f_[3]))
    return rows


def test_defaults_loopback_only_and_no_udp():
    srv = Server([], listen=False)   # no -l at all
    try:
        inodes = socket_inodes(srv.proc.pid)
        tcp = [r for r in proc_net("tcp", inodes) + proc_net("tcp6", inodes) if r[2] == "0A"]
        check(len(tcp) >= 1, "without -l kioku listens on TCP (%s)" % tcp)
        check(all(r[0] == "0100007F" for r in tcp),
              "without -l every listening socket is 127.0.0.1: %s" % tcp)
        udp = proc_net("udp", inodes) + proc_net("udp6", inodes)
        check(udp == [], "kioku has no UDP socket: %s" % udp)
    finally:
        srv.stop()
    # -U (issue 13) binds UDP where -l says: without -l, loopback only
    srv = Server(["-U", "-1"], listen=False)
    try:
        udp = proc_net("udp", socket_inodes(srv.proc.pid)) + proc_net("udp6", socket_inodes(srv.proc.pid))
        check(len(udp) == 1 and udp[0][0] == "0100007F",
              "-U without -l: one UDP socket, on 127.0.0.1: %s" % udp)
    finally:
        srv.stop()
    r = subprocess.run([BIN, "-p", str(free_port()), "-U", "65536"] + ROOT_ARGS,
                       capture_output=True, text=True, timeout=10)
    check(r.returncode == 64 and "UDP" in r.stderr,
          "-U 65536 is refused with exit 64 (%d, %r)" % (r.returncode, r.stderr))


def test_root_needs_u_and_u_nobody_drops_root():
    if not ROOT:
        print("skip: not root, the -u rule does not apply")
        return
    r = subprocess.run([BIN, "-p", str(free_port()), "-l", "127.0.0.1"],
                       capture_output=True, text=True, timeout=10)
    check(r.returncode == 64 and r.stderr == "must add '-u root' to start as root\n",
          "as root without -u: exit 64 with memcached's message (%d, %r)" % (r.returncode, r.stderr))
    nobody = pwd.getpwnam("nobody")
    srv = Server([], user_args=["-u", "nobody"])
    try:
        with open("/proc/%d/status" % srv.proc.pid) as f:
            ids = {l.split(":")[0]: l.split()[1:] for l in f if l.startswith(("Uid:", "Gid:"))}
        check(ids["Uid"] == [str(nobody.pw_uid)] * 4, "-u nobody: every uid is nobody's %s" % ids["Uid"])
        check(ids["Gid"] == [str(nobody.pw_gid)] * 4, "-u nobody: every gid is nobody's %s" % ids["Gid"])
        with srv.connect() as s:
            s.sendall(b"set a 0 0 1\r\nx\r\nget a\r\n")
            check(recv_until(s, b"END\r\n") == b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
                  "-u nobody: the server serves")
    finally:
        check(srv.stop() == 0, "-u nobody: SIGTERM exits 0")


def refused_with(srv, resp_port, first=None):
    """Connect while the server is stopped (so what the client sends is
    there when the acceptor sees it), then let it run; the reply and EOF."""
    os.kill(srv.proc.pid, signal.SIGSTOP)
    try:
        s = srv.connect(resp=resp_port)
        if first:
            s.sendall(first)
    finally:
        os.kill(srv.proc.pid, signal.SIGCONT)
    out, closed = read_to_eof(s)
    s.close()
    return out, closed


def test_max_clients_refused_in_the_clients_protocol():
    srv = Server(["-c", "4", "-t", "2"], resp=True)
    held = []
    try:
        r = srv.connect(resp=True)   # one RESP client among those held
        r.sendall(b"PING\r\n")
        check(recv_until(r, b"\r\n") == b"+PONG\r\n", "a RESP client is served")
        held.append(r)
        refused = 0
        for _ in range(10):
            s = srv.connect()
            s.sendall(b"version\r\n")
            line = recv_until(s, b"\r\n")
            if not line.startswith(b"VERSION"):
                refused += 1
                s.close()
                break
            held.append(s)
        check(len(held) == 4 and refused == 1, "-c 4: four clients served, the fifth refused "
              "(%d served)" % len(held))
        out, closed = refused_with(srv, False)
        check(out == TOO_MANY and closed, "memcached port, silent client: %r then EOF" % out)
        out, closed = refused_with(srv, False, b"get a\r\n")
        check(out == TOO_MANY and closed, "memcached port, text first byte: %r then EOF" % out)
        out, closed = refused_with(srv, True)
        check(out == TOO_MANY_RESP and closed, "RESP port: %r then EOF" % out)
        out, closed = refused_with(srv, False, b"*1\r\n$4\r\nPING\r\n")
        check(out == TOO_MANY_RESP and closed, "memcached port, RESP first byte: %r then EOF" % out)
        out, closed = refused_with(srv, False, b"PING\r\n")
        check(out == TOO_MANY_RESP and closed, "memcached port, inline RESP: %r then EOF" % out)
        # All five refusals counted, read through clients already in.
        r.sendall(b"INFO stats\r\n")
        info = recv_until(r, b"\r\n\r\n").decode()
        check("rejected_connections:6\r\n" in info, "INFO rejected_connections:6 (%s)" %
              [l for l in info.split("\r\n") if l.startswith("rejected")])
        held[1].sendall(b"stats\r\n")
        st = recv_until(held[1], b"END\r\n").decode()
        check("STAT rejected_connections 6\r\n" in st, "stats rejected_connections 6")
        held[2].sendall(b"set k 0 0 1\r\nv\r\nget k\r\n")
        check(recv_until(held[2], b"END\r\n") == b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n",
              "clients already in are served")
    finally:
        for s in held:
            s.close()
        check(srv.stop() == 0, "maxclients: SIGTERM exits 0")


def test_output_limit_idle_timeout_and_bounded_memory():
    srv = Server(["-t", "2", "-m", "64", "-o", "max_output_buffer=1m,idle_timeout=2"], resp=True)
    try:
        st = srv.stats()
        check(st.get("idle_kicks") == "0" and st.get("output_limit_disconnects") == "0",
              "idle_kicks and output_limit_disconnects start at 0")
        with srv.connect() as s:
            s.sendall(b"stats settings\r\n")
            sets = recv_until(s, b"END\r\n").decode()
        check("STAT idle_timeout 2\r\n" in sets and "STAT max_output_buffer 1048576\r\n" in sets,
              "stats settings shows idle_timeout and max_output_buffer")
        with srv.connect(resp=True) as s:
            s.sendall(b"CONFIG GET client-output-buffer-limit\r\nCONFIG GET timeout\r\n")
            want = (b"*2\r\n$26\r\nclient-output-buffer-limit\r\n"
                    b"$43\r\nnormal 1048576 0 0 slave 0 0 0 pubsub 0 0 0\r\n"
                    b"*2\r\n$7\r\ntimeout\r\n$1\r\n2\r\n")
            got = recv_until(s, b"timeout\r\n$1\r\n2\r\n")
            check(got == want, "CONFIG GET client-output-buffer-limit and timeout: %r" % got)
        # 20 values of 100 KB, 2000 of 500 bytes.
        with srv.connect() as s:
            big = b"".join(b"set big%d 0 0 100000 noreply\r\n%s\r\n" % (i, b"b" * 100000)
                           for i in range(20))
            small = b"".join(b"set s%d 0 0 500 noreply\r\n%s\r\n" % (i, b"s" * 500)
                             for i in range(2000))
            s.sendall(big + small + b"version\r\n")
            check(recv_until(s, b"\r\n").startswith(b"VERSION"), "values stored")

        # A 2 MB MGET reply with a 1 MB limit: disconnected, counted.
        other = srv.connect()
        r = srv.connect(resp=True)
        keys = [b"big%d" % i for i in range(20)]
        r.sendall(b"*%d\r\n$4\r\nMGET\r\n" % (len(keys) + 1) +
                  b"".join(b"$%d\r\n%s\r\n" % (len(k), k) for k in keys))
        out, closed = read_to_eof(r)
        r.close()
        check(closed and len(out) < 1 << 20,
              "MGET past max_output_buffer: closed after %d bytes" % len(out))
        check(srv.stats().get("output_limit_disconnects") == "1", "stats output_limit_disconnects 1")
        check(srv.info().get("client_output_buffer_limit_disconnections") == "1",
              "INFO client_output_buffer_limit_disconnections:1")
        other.sendall(b"get big0\r\n")
        check(len(recv_until(other, b"END\r\n")) == 100000 + len(b"VALUE big0 0 100000\r\n\r\nEND\r\n"),
              "another client is served after the disconnect")
        other.close()

        # A client that pipelines 1 MB multi-gets and never reads.
        base = srv.rss_kb()
        greedy = srv.connect()
        greedy.setblocking(False)
        line = b"get " + b" ".join(b"s%d" % i for i in range(2000)) + b"\r\n"
        sent, deadline, peak = 0, time.time() + 3, 0
        while time.time() < deadline:
            try:
                sent += greedy.send(line)
            except BlockingIOError:
                time.sleep(0.05)
            except (ConnectionResetError, BrokenPipeError):
                break   # already closed by the idle timeout (checked below)
            peak = max(peak, srv.rss_kb())
        check(sent > 20 * len(line), "the greedy client sent %d multi-gets (%d replies of 1 MB "
              "unread)" % (sent // len(line), sent // len(line)))
        check(SANITIZED or peak - base < 32 * 1024, "server RSS grew by %d KiB (bound 32 MiB) while the "
              "client did not read" % (peak - base))
        # A client that sends half a request and stalls.
        partial = srv.connect()
        partial.sendall(b"get s1")
        # Others are served while those two stall.
        t0 = time.time()
        with srv.connect() as s:
            s.sendall(b"get s1\r\n")
            check(recv_until(s, b"END\r\n").endswith(b"END\r\n") and time.time() - t0 < 1,
                  "another client is served at once while the greedy one stalls")
        # idle_timeout=2: both closed within a few seconds, counted.
        kicks, deadline = "0", time.time() + 8
        while time.time() < deadline and kicks != "2":
            time.sleep(0.25)
            kicks = srv.stats().get("idle_kicks")
        check(kicks == "2", "stats idle_kicks 2 (the greedy and the stalled client), got %s" % kicks)
        out, closed = read_to_eof(partial, 5)
        check(closed and out == b"", "the stalled client was closed without a reply")
        greedy.setblocking(True)
        out, closed = read_to_eof(greedy, 20)
        check(closed, "the greedy client was closed (read %d bytes of replies first)" % len(out))
        partial.close()
        greedy.close()
        # A worker counts a close just after the client sees it (and the
        # previous stats client's close may still be on its way): polled.
        conns, deadline = None, time.time() + 10
        while conns != "1" and time.time() < deadline:
            conns = srv.stats().get("curr_connections")
            if conns != "1":
                time.sleep(0.05)
        check(conns == "1", "only the stats client is left: %s" % conns)
    finally:
        check(srv.stop() == 0, "limits: SIGTERM exits 0")


def scan_order(srv):
    keys = [b"key:%d" % i for i in range(300)]
    with srv.connect(resp=True) as s:
        s.sendall(b"*%d\r\n$4\r\nMSET\r\n" % (2 * len(keys) + 1) +
                  b"".join(b"$%d\r\n%s\r\n$1\r\nv\r\n" % (len(k), k) for k in keys))
        check(recv_until(s, b"\r\n") == b"+OK\r\n", "MSET of 300 keys")
        order, cursor = [], b"0"
        for _ in range(10000):
            s.sendall(b"SCAN %s COUNT 1000\r\n" % cursor)
            # *2 $len cursor *n ($len key)*n
            buf, n, parts = b"", -1, []
            for _ in range(1000):
                chunk = s.recv(65536)   # the socket's 10 s timeout bounds each wait
                if not chunk:
                    break
                buf += chunk
                parts = buf.split(b"\r\n")
                if len(parts) >= 5:
                    n = int(parts[3][1:])
                    if len(parts) >= 5 + 2 * n:
                        break
            if n < 0 or len(parts) < 5 + 2 * n:
                check(False, "SCAN reply complete: %r" % buf[:200])
                break
            cursor = parts[2]
            order += parts[5:5 + 2 * n:2]
            if cursor == b"0":
                break
    return order, sorted(keys)


def test_scan_order_differs_between_processes():
    orders = []
    for _ in range(2):
        srv = Server(["-t", "1"], resp=True)
        try:
            order, keys = scan_order(srv)
            check(sorted(order) == keys, "SCAN returns each of the 300 keys once")
            orders.append(order)
        finally:
            srv.stop()
    check(orders[0] != orders[1], "two processes give the same keys in different SCAN orders "
          "(random hash seed per process)")


def main():
    if not BIN:
        print("KIOKU_BIN is not set")
        return 77
    test_defaults_loopback_only_and_no_udp()
    test_root_needs_u_and_u_nobody_drops_root()
    test_max_clients_refused_in_the_clients_protocol()
    test_output_limit_idle_timeout_and_bounded_memory()
    test_scan_order_differs_between_processes()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
