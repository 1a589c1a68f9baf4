"""Start and stop a kioku server for the Python integration tests: a free
loopback port, wait until it accepts, stop by PID. Shared by the Python
integration tests."""
import os
import shutil
import socket
import subprocess
import sys
import time

# kioku, like memcached, refuses to run as root without -u. KIOKU_EXTRA_ARGS
# (e.g. "-o io_uring") runs every test's kioku in another mode.
ROOT_ARGS = (["-u", "root"] if os.geteuid() == 0 else []) + \
    os.environ.get("KIOKU_EXTRA_ARGS", "").split()


def import_redis(name):
    """The redis module, for test `name`. Without it, the test runs again
    under the distribution's python (pyenv and virtualenvs hide its
    packages), and failing that is skipped: exit 77."""
    try:
        import redis
        return redis
    except ImportError:
        pass
    if os.path.exists("/usr/bin/python3") and not os.environ.get("KIOKU_REDIS_REEXEC"):
        os.environ["KIOKU_REDIS_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("%s: redis-py is not installed (python3-redis); skipped" % name)
    sys.exit(77)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connect(port):
    """A connection to the server on 127.0.0.1:port, 10 s per operation."""
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def recv_until(s, end, limit=1 << 26):
    """What s sends until it ends with `end`, closes, or limit bytes came
    (the socket's own timeout bounds each wait)."""
    buf = b""
    while not buf.endswith(end) and len(buf) < limit:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def proc_kb(pid, field, name="status"):
    """The kB value of field ("VmRSS", "AnonHugePages"...) in
    /proc/pid/<name>, 0 if it is not there."""
    with open("/proc/%d/%s" % (pid, name)) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def mc_ask(s, req, end):
    """Send req; read until the reply ends with end (at most 4 MiB)."""
    s.sendall(req)
    return recv_until(s, end, 1 << 22)


class Failures(list):
    """The failed checks of a test file that goes on past a failure."""

    def check(self, cond, what):
        if not cond:
            self.append(what)
            print("FAIL:", what)


def mc_stats(s, group=b""):
    """A memcached `stats [group]` reply as a dict of name -> value."""
    out = mc_ask(s, b"stats" + (b" " + group if group else b"") + b"\r\n", b"END\r\n")
    vals = {}
    for line in out.decode().split("\r\n"):
        f = line.split(" ")
        if len(f) == 3 and f[0] == "STAT":
            vals[f[1]] = f[2]
    return vals


def start(binary, args, stderr=None):
    """(process, port) of `binary -p PORT -l 127.0.0.1 -U 0 ARGS`, accepting
    on PORT and on the --resp-port in ARGS, if any: kioku listens on its
    ports one after another, so the first one accepting says nothing of the
    next on a slow (sanitizer) run."""
    args = list(args)
    extra = [int(args[i + 1]) for i, a in enumerate(args[:-1]) if a == "--resp-port"]
    for _ in range(5):
        port = free_port()
        while port in extra:   # the kernel may hand out the same free port twice
            port = free_port()
        proc = subprocess.Popen([binary, "-p", str(port), "-l", "127.0.0.1", "-U", "0"] +
                                ROOT_ARGS + args, stderr=stderr)
        waiting = [port] + extra
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", waiting[0]), timeout=1).close()
                waiting.pop(0)
                if not waiting:
                    return proc, port
                continue
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        proc.kill()
        proc.wait()
    sys.exit("could not start the server")


def start_redis(args=()):
    """(process, port) of a redis-server on a free loopback port, saving
    nothing, accepting; (None, None) when it is not installed or will not
    start."""
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(exe, os.X_OK):
        return None, None
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--daemonize", "no"] + list(args),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc, port
            except OSError:
                time.sleep(0.05)
        stop(proc)
    return None, None


def stop(proc):
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class RespRaw:
    """A RESP client that returns each reply's exact bytes (RESP2 and 3)."""

    def __init__(self, port, timeout=10):
        self.s = connect(port)
        self.s.settimeout(timeout)
        self.buf = b""

    def close(self):
        self.s.close()

    def _more(self):
        d = self.s.recv(65536)
        if not d:
            raise ConnectionError("closed")
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._more()
        i = self.buf.index(b"\r\n")
        line, self.buf = self.buf[:i + 2], self.buf[i + 2:]
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read(self):
        """The next whole reply, nested aggregates included."""
        line = self._line()
        t = line[:1]
        if t in (b"+", b"-", b":", b"_", b",", b"#", b"("):
            return line
        if t in (b"$", b"=", b"!"):
            n = int(line[1:-2])
            return line if n < 0 else line + self._exact(n + 2)
        if t in (b"*", b"~", b">", b"%", b"|"):
            n = int(line[1:-2])
            if n < 0:
                return line
            k = n * 2 if t in (b"%", b"|") else n
            return line + b"".join(self.read() for _ in range(k))
        raise ValueError("bad reply %r" % line)

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)

    def cmd(self, *args):
        self.send(*args)
        return self.read()


class McText:
    """A minimal memcached text client, so the replies are seen verbatim."""

    def __init__(self, port, timeout=20):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")

    def set(self, key, value, ttl=0):
        self.s.sendall(b"set %s 0 %d %d\r\n%s\r\n" % (key.encode(), ttl, len(value), value))
        return self.f.readline().decode().rstrip("\r\n")

    def set_many(self, keys, value, ttl=0):
        """Pipelined sets; the replies, in order."""
        self.s.sendall(b"".join(b"set %s 0 %d %d\r\n%s\r\n" % (k.encode(), ttl, len(value), value)
                                for k in keys))
        return [self.f.readline().decode().rstrip("\r\n") for _ in keys]

    def get(self, key):
        self.s.sendall(b"get %s\r\n" % key.encode())
        line = self.f.readline()
        if line.startswith(b"END"):
            return None
        n = int(line.split()[3])
        data = self.f.read(n + 2)[:n]
        self.f.readline()
        return data

    def delete(self, key):
        self.s.sendall(b"delete %s\r\n" % key.encode())
        return self.f.readline().decode().rstrip("\r\n")

    def line(self, cmd):
        self.s.sendall(cmd.encode() + b"\r\n")
        return self.f.readline().decode().rstrip("\r\n")

    def stats(self, what=""):
        self.s.sendall(b"stats %s\r\n" % what.encode() if what else b"stats\r\n")
        out = {}
        while True:
            line = self.f.readline().decode().rstrip("\r\n")
            if line == "END":
                return out
            _, k, v = line.split(" ", 2)
            out[k] = v

    def close(self):
        self.s.close()

