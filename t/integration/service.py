#!/usr/bin/env python3
"""Installing and running kioku as a service (issue 10), against a real
$KIOKU_BIN:

- a config file (--config FILE and -o config=FILE) sets options by their
  long names and -o keys; the command line wins over it; an unknown key or
  a bad value stops kioku with one line naming file and line, exit 78;
- -d: the command returns once the daemon serves, the -P pid file holds the
  daemon's pid, SIGTERM stops it and removes the pid file; a daemon that
  cannot start makes the command fail with its message;
- -u nobody (from the config file) runs as nobody when started as root;
- start-up errors (port in use, unwritable pid file, bad certificate, too
  much memory) print one line and exit non-zero;
- sd_notify: READY=1 and STATUS= on a $NOTIFY_SOCKET once the port accepts,
  STOPPING=1 on SIGTERM (skipped when built without libsystemd);
- the generated systemd unit passes `systemd-analyze verify`, and the
  example config starts kioku;
- kioku(1) names every option of --help and renders without warnings;
- `make install DESTDIR=...` puts the binary, man page, example config and
  unit where configure said, and `make uninstall` takes them all back.

Every server is stopped by PID; every wait and loop is bounded.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kioku_proc import free_port  # noqa: E402

BIN = os.environ.get("KIOKU_BIN")
BUILDDIR = os.environ.get("KIOKU_BUILDDIR") or (
    os.path.dirname(os.path.dirname(BIN)) if BIN else None)
SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.geteuid() == 0
# kioku, like memcached, refuses to run as root without -u.
ROOT_ARGS = ["-u", "root"] if ROOT else []

failures = []
tmp = None


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_accepting(proc, port):
    for _ in range(200):
        if accepts(port):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def stop(proc):
    """SIGTERM, then SIGKILL if it has not exited within 10 s; the status."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def ask(port, line, end=b"\r\n"):
    """The reply to line, read until it ends with end (5 s at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(line)
        out = b""
        deadline = time.time() + 5
        while not out.endswith(end) and time.time() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def stats_settings(port):
    out = ask(port, b"stats settings\r\n", b"END\r\n").decode()
    return dict(l.split(" ", 2)[1:] for l in out.splitlines() if l.startswith("STAT "))


def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def run(args, env=None, timeout=30):
    return subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout, env=env)


def one_line(r):
    return len(r.stderr.splitlines()) == 1 and r.stderr.endswith("\n")


def test_config_file_sets_options_and_the_command_line_wins():
    port, other = free_port(), free_port()
    conf = write("good.conf", "# kioku test config\n\nport = %d\nlisten 127.0.0.1\nthreads=2\n"
                 "maxmemory-policy = allkeys-lru\nidle_timeout = 30\nudp-port 0\n"
                 "enable-shutdown\n" % port)
    proc = subprocess.Popen([BIN, "--config", conf] + ROOT_ARGS)
    try:
        check(wait_accepting(proc, port), "--config: listens on the file's port %d" % port)
        st = stats_settings(port)
        check(st.get("num_threads") == "2" and st.get("maxmemory_policy") == "allkeys-lru" and
              st.get("idle_timeout") == "30",
              "--config: threads, maxmemory-policy and idle_timeout from the file (%s)" %
              {k: st.get(k) for k in ("num_threads", "maxmemory_policy", "idle_timeout")})
    finally:
        check(stop(proc) == 0, "--config: SIGTERM exits 0")

    # The command line wins, whether it comes before or after --config.
    proc = subprocess.Popen([BIN, "-p", str(other), "-o", "config=" + conf, "-t", "3",
                             "--maxmemory-policy=volatile-ttl"] + ROOT_ARGS)
    try:
        check(wait_accepting(proc, other), "-o config=: -p on the command line wins (port %d)" % other)
        check(not accepts(port), "-o config=: the file's port %d is not listened on" % port)
        st = stats_settings(other)
        check(st.get("num_threads") == "3" and st.get("maxmemory_policy") == "volatile-ttl" and
              st.get("idle_timeout") == "30",
              "-o config=: -t and --maxmemory-policy override the file, idle_timeout is kept (%s)" %
              {k: st.get(k) for k in ("num_threads", "maxmemory_policy", "idle_timeout")})
    finally:
        check(stop(proc) == 0, "-o config=: SIGTERM exits 0")


def test_config_file_errors_name_file_and_line():
    port = free_port()
    bad = write("bad.conf", "port = %d\n# a comment\n\nprot %d\n" % (port, port))
    r = run(["--config", bad] + ROOT_ARGS)
    check(r.returncode == 78 and r.stderr == "kioku: %s:4: unknown option 'prot'\n" % bad,
          "unknown key: exit 78, one line with file:line (%d, %r)" % (r.returncode, r.stderr))
    check(not accepts(port), "unknown key: nothing listens")
    bad = write("badval.conf", "threads = 2\nport = eleven\n")
    r = run(["-o", "config=" + bad] + ROOT_ARGS)
    check(r.returncode == 78 and r.stderr == "kioku: %s:2: invalid port: eleven\n" % bad,
          "bad value: exit 78, one line with file:line (%d, %r)" % (r.returncode, r.stderr))
    bad = write("flag.conf", "daemon = maybe\n")
    r = run(["--config", bad] + ROOT_ARGS)
    check(r.returncode == 78 and r.stderr == "kioku: %s:1: option 'daemon' is a flag: give no "
          "value, yes or no\n" % bad, "a flag with a value: exit 78 (%d, %r)" % (r.returncode, r.stderr))
    missing = os.path.join(tmp, "missing.conf")
    r = run(["--config", missing] + ROOT_ARGS)
    check(r.returncode == 78 and r.stderr == "kioku: %s: cannot open: No such file or directory\n"
          % missing, "missing file: exit 78, one line (%d, %r)" % (r.returncode, r.stderr))


def proc_gone(pid):
    """True once pid has exited (a zombie counts: no one may reap it)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_daemon_writes_pid_file_and_sigterm_removes_it():
    port = free_port()
    pidfile = os.path.join(tmp, "kioku.pid")
    t0 = time.time()
    r = run(["-d", "-P", pidfile, "-p", str(port), "-l", "127.0.0.1"] + ROOT_ARGS)
    check(r.returncode == 0 and r.stderr == "", "-d: the command exits 0 (%d, %r)" %
          (r.returncode, r.stderr))
    check(accepts(port), "-d: the port accepts as soon as the command has returned")
    try:
        with open(pidfile) as f:
            text = f.read()
        pid = int(text)
    except (OSError, ValueError):
        check(False, "-d: the pid file holds a pid")
        return
    try:
        check(text == "%d\n" % pid, "-d: the pid file is one line (%r)" % text)
        check(os.readlink("/proc/%d/exe" % pid) == os.path.realpath(BIN),
              "-d: the pid file's pid %d is kioku" % pid)
        check(os.getsid(pid) == pid, "-d: the daemon leads its own session")
        check(ask(port, b"version\r\n").startswith(b"VERSION "), "-d: the daemon answers")
        with open("/proc/%d/status" % pid) as f:
            ppid = int(next(l for l in f if l.startswith("PPid:")).split()[1])
        check(ppid != os.getpid(), "-d: the daemon is not the test's child")
    finally:
        os.kill(pid, signal.SIGTERM)
    for _ in range(200):
        if proc_gone(pid) and not os.path.exists(pidfile):
            break
        time.sleep(0.05)
    check(proc_gone(pid), "-d: SIGTERM stops the daemon")
    check(not os.path.exists(pidfile), "-d: SIGTERM removes the pid file")
    check(time.time() - t0 < 20, "-d: start and stop take under 20 s")

    # A daemon that cannot listen fails the command that started it.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    busy = holder.getsockname()[1]
    try:
        r = run(["-d", "-P", pidfile, "-p", str(busy), "-l", "127.0.0.1"] + ROOT_ARGS)
    finally:
        holder.close()
    check(r.returncode == 71 and one_line(r) and "Address already in use" in r.stderr,
          "-d, port in use: the command exits 71 with the daemon's one line (%d, %r)" %
          (r.returncode, r.stderr))
    check(not os.path.exists(pidfile), "-d, port in use: no pid file")


def test_user_from_config_file_drops_root():
    if not ROOT:
        print("skip: not root, -u does not apply")
        return
    nobody = pwd.getpwnam("nobody")
    port = free_port()
    conf = write("user.conf", "user = nobody\nport = %d\n" % port)
    proc = subprocess.Popen([BIN, "--config", conf])
    try:
        check(wait_accepting(proc, port), "user = nobody: the server starts")
        with open("/proc/%d/status" % proc.pid) as f:
            ids = {l.split(":")[0]: l.split()[1:] for l in f if l.startswith(("Uid:", "Gid:"))}
        check(ids["Uid"] == [str(nobody.pw_uid)] * 4 and ids["Gid"] == [str(nobody.pw_gid)] * 4,
              "user = nobody: every uid and gid is nobody's (%s)" % ids)
    finally:
        check(stop(proc) == 0, "user = nobody: SIGTERM exits 0")


def test_startup_errors_print_one_line_and_exit_nonzero():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    busy = holder.getsockname()[1]
    try:
        r = run(["-p", str(busy), "-l", "127.0.0.1"] + ROOT_ARGS)
    finally:
        holder.close()
    check(r.returncode == 71 and one_line(r) and r.stderr.startswith("error: ") and
          "Address already in use" in r.stderr,
          "port in use: one line, exit 71 (%d, %r)" % (r.returncode, r.stderr))

    port = free_port()
    nodir = os.path.join(tmp, "no", "such", "dir", "kioku.pid")
    r = run(["-p", str(port), "-l", "127.0.0.1", "-P", nodir] + ROOT_ARGS)
    check(r.returncode == 73 and one_line(r) and
          r.stderr == "error: cannot write the pid file %s: No such file or directory\n" % nodir,
          "unwritable pid file: one line, exit 73 (%d, %r)" % (r.returncode, r.stderr))
    check(not accepts(port), "unwritable pid file: the server does not stay up")

    junk = write("junk.pem", "not a certificate\n")
    r = run(["-p", str(free_port()), "-l", "127.0.0.1", "-Z", "-o",
             "ssl_chain_cert=%s,ssl_key=%s" % (junk, junk)] + ROOT_ARGS)
    check(r.returncode != 0 and one_line(r) and r.stderr.startswith("error: "),
          "bad certificate: one line, non-zero exit (%d, %r)" % (r.returncode, r.stderr))

    # More item memory than the address space holds, taken at start (-L).
    r = run(["-p", str(free_port()), "-l", "127.0.0.1", "-m", "1000000000", "-L"] + ROOT_ARGS)
    check(r.returncode != 0 and one_line(r) and r.stderr.startswith("error: ") and
          "memory" in r.stderr,
          "no memory: one line, non-zero exit (%d, %r)" % (r.returncode, r.stderr))


def built_with_systemd():
    flag = os.environ.get("KIOKU_SYSTEMD")
    if flag:
        return flag == "yes"
    out = subprocess.run(["ldd", BIN], capture_output=True, text=True, timeout=10).stdout
    return "libsystemd" in out


def recv_msg(sock, want, timeout=15):
    """Datagrams until one holds want (a bytes line); all of them joined."""
    got = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        sock.settimeout(max(0.1, deadline - time.time()))
        try:
            msg = sock.recv(4096)
        except socket.timeout:
            break
        got.append(msg)
        if want in msg.split(b"\n"):
            break
    return got


def test_sd_notify_ready_status_and_stopping():
    if not built_with_systemd():
        print("skip: kioku was built without libsystemd (apt-get install libsystemd-dev, "
              "configure --with-systemd): no sd_notify to test")
        return
    path = os.path.join(tmp, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    port = free_port()
    proc = subprocess.Popen([BIN, "-p", str(port), "-l", "127.0.0.1"] + ROOT_ARGS, env=env)
    try:
        got = recv_msg(sock, b"READY=1")
        ready = [m for m in got if b"READY=1" in m.split(b"\n")]
        check(ready != [], "sd_notify: READY=1 arrives (%r)" % got)
        check(accepts(port), "sd_notify: the port accepts when READY=1 has arrived")
        check(ready != [] and re.search(rb"(^|\n)STATUS=\S", ready[0]) is not None,
              "sd_notify: READY=1 comes with a STATUS= line (%r)" % ready)
        proc.send_signal(signal.SIGTERM)
        got = recv_msg(sock, b"STOPPING=1")
        check(any(b"STOPPING=1" in m.split(b"\n") for m in got),
              "sd_notify: SIGTERM sends STOPPING=1 (%r)" % got)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 0, "sd_notify: the server exits 0 after STOPPING=1 (%r)" % rc)
    finally:
        stop(proc)
        sock.close()


def test_systemd_unit_verifies_and_example_config_starts():
    unit = os.path.join(BUILDDIR, "doc", "kioku.service")
    try:
        with open(unit) as f:
            text = f.read()
    except OSError as e:
        check(False, "the unit %s was generated: %s" % (unit, e))
        return
    dirs = install_dirs()
    check("@" not in text, "the unit has no @...@ left")
    check(re.search(r"^Type=notify$", text, re.M) is not None, "the unit is Type=notify")
    want = "ExecStart=%s/kioku --config=%s/kioku.conf" % (dirs.get("bindir"), dirs.get("sysconfdir"))
    check(want in text.splitlines(), "the unit runs %r" % want)
    for key in ("DynamicUser=yes", "PrivateTmp=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                "PrivateDevices=yes", "ProtectHome=yes", "MemoryDenyWriteExecute=yes",
                "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "ProtectKernelTunables=yes"):
        check(key in text.splitlines(), "the unit has %s" % key)

    example = os.path.join(SRCDIR, "doc", "kioku.conf")
    port = free_port()
    proc = subprocess.Popen([BIN, "--config", example, "-p", str(port)] + ROOT_ARGS)
    try:
        check(wait_accepting(proc, port), "the example config starts kioku")
    finally:
        check(stop(proc) == 0, "the example config: SIGTERM exits 0")

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        print("skip: no systemd-analyze to verify the unit with")
        return
    # verify needs ExecStart's binary and the man page of Documentation=.
    udir = os.path.join(tmp, "unit")
    mandir = os.path.join(tmp, "man", "man1")
    os.makedirs(udir)
    os.makedirs(mandir)
    shutil.copy(os.path.join(SRCDIR, "doc", "kioku.1"), mandir)
    conf = write("unit.conf", "")
    copy = re.sub(r"^ExecStart=\S+ --config=\S+$",
                  "ExecStart=%s --config=%s" % (os.path.realpath(BIN), conf), text, flags=re.M)
    with open(os.path.join(udir, "kioku.service"), "w") as f:
        f.write(copy)
    env = dict(os.environ, MANPATH=os.path.join(tmp, "man"), SYSTEMD_LOG_COLOR="0")
    r = subprocess.run([analyze, "verify", os.path.join(udir, "kioku.service")],
                       capture_output=True, text=True, timeout=60, env=env)
    check(r.returncode == 0 and r.stdout == "" and r.stderr == "",
          "systemd-analyze verify accepts the unit without a word (%d, %r, %r)" %
          (r.returncode, r.stdout, r.stderr))
    # The check can fail: a wrong key is reported.
    with open(os.path.join(udir, "kioku.service"), "w") as f:
        f.write(copy.replace("Type=notify", "Type=notify\nProtectSytem=strict"))
    r = subprocess.run([analyze, "verify", os.path.join(udir, "kioku.service")],
                       capture_output=True, text=True, timeout=60, env=env)
    check("ProtectSytem" in r.stderr, "systemd-analyze verify reports a misspelt key (%r)" % r.stderr)


def test_man_page_covers_every_option_and_renders_cleanly():
    page = os.path.join(SRCDIR, "doc", "kioku.1")
    with open(page) as f:
        text = f.read()
    plain = re.sub(r"\\f[BIRP]", "", text.replace("\\-", "-"))
    usage = run(["--help"]).stdout
    longs = sorted(set(re.findall(r"--([a-z][a-z0-9-]+)", usage)))
    okeys = sorted(set(re.findall(r"^\s+- ([a-z_]+)", usage, re.M)) |
                   set(re.findall(r"^\s+- [a-z_]+, ([a-z_]+)", usage, re.M)))
    shorts = sorted(set(re.findall(r"^-([a-zA-Z]),", usage, re.M)))
    check(len(longs) > 30 and len(okeys) > 20 and len(shorts) > 25,
          "--help lists the options (%d long, %d -o, %d short)" % (len(longs), len(okeys), len(shorts)))
    missing = ([o for o in longs if "--" + o not in plain] +
               [k for k in okeys if not re.search(r"\b%s\b" % k, plain)] +
               ["-" + c for c in shorts if not re.search(r"(^|[^-\w])-%s\b" % c, plain, re.M)])
    check(missing == [], "kioku(1) names every option of --help (missing: %s)" % missing)
    for sect in ("CONFIGURATION FILE", "SYSTEMD", "SIGNALS", "FILES", "EXAMPLES", "EXIT STATUS"):
        check(re.search(r"^\.SH %s$" % sect, text, re.M) is not None, "kioku(1) has %s" % sect)
    if shutil.which("groff"):
        r = subprocess.run(["groff", "-man", "-ww", "-z", page], capture_output=True, text=True,
                           timeout=60)
        check(r.returncode == 0 and r.stderr == "", "groff -man -ww: no warning (%r)" % r.stderr)
    else:
        print("skip: no groff (apt-get install groff-base)")
    if shutil.which("man"):
        env = dict(os.environ, MANWIDTH="80")
        r = subprocess.run(["man", "--warnings", "-l", page], capture_output=True, text=True,
                           timeout=60, env=env)
        check(r.returncode == 0 and r.stderr == "" and "CONFIGURATION FILE" in r.stdout,
              "man --warnings -l renders kioku(1) at 80 columns without a warning (%r)" % r.stderr)
    else:
        print("skip: no man (apt-get install man-db)")


def make(*args):
    # Not the jobserver of the make that runs the tests.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "-s", "-C", BUILDDIR] + list(args), capture_output=True,
                          text=True, timeout=300, env=env)


_dirs = None


def install_dirs():
    global _dirs
    if _dirs is None:
        r = make("print-install-dirs")
        _dirs = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
    return _dirs


def files_under(root):
    out = []
    for d, _, names in os.walk(root):
        out += [os.path.join(d, n) for n in names]
    return sorted(out)


def test_make_install_and_uninstall():
    if shutil.which("make") is None or not os.path.exists(os.path.join(BUILDDIR, "Makefile")):
        print("skip: no make or no Makefile in %s" % BUILDDIR)
        return
    dest = os.path.join(tmp, "dest")
    r = make("install", "DESTDIR=" + dest)
    check(r.returncode == 0, "make install DESTDIR= succeeds (%r)" % r.stderr[-2000:])
    d = install_dirs()
    want = [d["bindir"] + "/kioku", d["man1dir"] + "/kioku.1", d["sysconfdir"] + "/kioku.conf",
            d["examplesdir"] + "/kioku.conf"]
    if d.get("systemdsystemunitdir"):
        want.append(d["systemdsystemunitdir"] + "/kioku.service")
    else:
        print("note: configured without a systemd unit directory: no unit installed")
    got = files_under(dest)
    check(sorted(dest + w for w in want) == got, "make install puts exactly %s (%s)" % (want, got))
    check(os.access(dest + d["bindir"] + "/kioku", os.X_OK), "the installed kioku is executable")
    if d.get("systemdsystemunitdir"):
        with open(dest + d["systemdsystemunitdir"] + "/kioku.service") as f:
            check("ExecStart=%s/kioku " % d["bindir"] in f.read(), "the installed unit runs $(bindir)/kioku")
    with open(dest + d["sysconfdir"] + "/kioku.conf") as f, \
            open(os.path.join(SRCDIR, "doc", "kioku.conf")) as g:
        check(f.read() == g.read(), "the installed config is the example")

    # An edited config survives a reinstall and an uninstall.
    conf = dest + d["sysconfdir"] + "/kioku.conf"
    with open(conf, "a") as f:
        f.write("port = 11999\n")
    make("install", "DESTDIR=" + dest)
    with open(conf) as f:
        check(f.read().endswith("port = 11999\n"), "a reinstall keeps an edited config")
    r = make("uninstall", "DESTDIR=" + dest)
    check(r.returncode == 0 and files_under(dest) == [conf],
          "make uninstall leaves only the edited config (%s)" % files_under(dest))
    os.unlink(conf)
    make("install", "DESTDIR=" + dest)
    r = make("uninstall", "DESTDIR=" + dest)
    check(r.returncode == 0 and files_under(dest) == [],
          "install then uninstall leaves no file (%s)" % files_under(dest))


def main():
    global tmp
    if not BIN:
        print("KIOKU_BIN is not set")
        return 77
    tmp = tempfile.mkdtemp(prefix="kioku-service.")
    try:
        test_config_file_sets_options_and_the_command_line_wins()
        test_config_file_errors_name_file_and_line()
        test_daemon_writes_pid_file_and_sigterm_removes_it()
        test_user_from_config_file_drops_root()
        test_startup_errors_print_one_line_and_exit_nonzero()
        test_sd_notify_ready_status_and_stopping()
        test_systemd_unit_verifies_and_example_config_starts()
        test_man_page_covers_every_option_and_renders_cleanly()
        test_make_install_and_uninstall()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
