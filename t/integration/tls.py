#!/usr/bin/env python3
"""TLS (issue 9): every protocol over TLS, mutual TLS, reloads, bad clients.

Certificates are made for this run with the openssl command line in a
temporary directory: a CA, two server certificates (for reloads) and a
client certificate. Two servers start on free loopback ports:

  A  plain -p, --tls-port beside it, --resp-port made TLS by -o resp_tls;
     a short handshake deadline; one worker thread, so a client that
     blocked it would block every other client
  B  -Z (the main and RESP ports speak only TLS), ssl_ca_cert with
     ssl_verify_mode=2 and ssl_min_version=tlsv1.3; the key is in the
     chain file (no ssl_key)

Real clients drive them: `openssl s_client -quiet` for memcached text,
redis-cli --tls for RESP, Python's ssl module for pipelined text, meta,
binary and RESP, large values, garbage and stalled handshakes. At the end
both servers get SIGTERM and must exit 0 with nothing from a sanitizer on
stderr (under the ASan build an SSL object left unfreed fails this test).

Exit: 0 pass, 1 fail, 77 skip (no KIOKU_BIN, no openssl command, or a
kioku built without TLS).
"""
import hashlib
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kioku_proc import free_port  # noqa: E402

# kioku, like memcached, refuses to run as root without -u.
ROOT_ARGS = ["-u", "root"] if os.geteuid() == 0 else []

BIN = os.environ.get("KIOKU_BIN")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def run(args, **kw):
    return subprocess.run(args, capture_output=True, timeout=30, **kw)


def make_certs(d):
    """CA, server, server2 and client certificates (EC P-256: quick to make)."""
    def req(name, cn):
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr",
             "-subj", f"/CN={cn}"], check=True)

    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt", "-days", "2",
         "-subj", "/CN=kioku test CA"], check=True)
    with open(f"{d}/san.ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "server2", "client"):
        req(name, name)
        run(["openssl", "x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.crt",
             "-CAkey", f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/{name}.crt",
             "-days", "2", "-extfile", f"{d}/san.ext"], check=True)
    # The files the server is configured with; reload tests overwrite them.
    shutil.copy(f"{d}/server.crt", f"{d}/live.crt")
    shutil.copy(f"{d}/server.key", f"{d}/live.key")
    # Key and chain in one file, as memcached allows without ssl_key.
    with open(f"{d}/combined.pem", "w") as out:
        for name in ("server.crt", "server.key"):
            with open(f"{d}/{name}") as f:
                out.write(f.read())


def start(args, ports):
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([BIN, "-l", "127.0.0.1", "-U", "0", "-m", "64"] + ROOT_ARGS + args,
                            stdout=subprocess.DEVNULL, stderr=err)
    for _ in range(200):
        try:
            for p in ports:
                socket.create_connection(("127.0.0.1", p), timeout=1).close()
            return proc, err
        except OSError:
            if proc.poll() is not None:
                err.seek(0)
                sys.exit("server exited at start: " + err.read().decode(errors="replace"))
            time.sleep(0.05)
    proc.kill()
    sys.exit("server did not start")


def stop(proc, err, name):
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    err.seek(0)
    text = err.read().decode(errors="replace")
    check(rc == 0, f"server {name} exits 0 on SIGTERM (got {rc})")
    check("Sanitizer" not in text and "runtime error" not in text,
          f"server {name}: no sanitizer report" + ("" if "Sanitizer" not in text else ":\n" + text[-3000:]))
    return text


def client_ctx(d, cert=False, **kw):
    ctx = ssl.create_default_context(cafile=f"{d}/ca.crt")
    if cert:
        ctx.load_cert_chain(f"{d}/client.crt", f"{d}/client.key")
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def tls_connect(ctx, port):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def read_until(s, end, limit=1 << 26):
    out = b""
    while not out.endswith(end):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        out += chunk
        if len(out) > limit:
            break
    return out


def read_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def peer_fingerprint(d, port):
    with tls_connect(client_ctx(d), port) as s:
        return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def file_fingerprint(path):
    der = run(["openssl", "x509", "-in", path, "-outform", "DER"], check=True).stdout
    return hashlib.sha256(der).hexdigest()


def mc_text(d, port, data, end):
    with tls_connect(client_ctx(d), port) as s:
        s.sendall(data)
        return read_until(s, end)


def stat(pport, name):
    with socket.create_connection(("127.0.0.1", pport), timeout=10) as s:
        s.sendall(b"stats\r\n")
        for line in read_until(s, b"END\r\n").split(b"\r\n"):
            parts = line.split()
            if len(parts) == 3 and parts[1] == name.encode():
                return int(parts[2])
    return None


# ---- server A: a TLS port beside plain ones ----

def test_s_client_text(d, tport):
    r = run(["openssl", "s_client", "-connect", f"127.0.0.1:{tport}", "-quiet",
             "-CAfile", f"{d}/ca.crt", "-verify_return_error"],
            input=b"set sc 5 0 5\r\nhello\r\nget sc\r\nversion\r\nquit\r\n")
    out = r.stdout
    check(b"STORED\r\nVALUE sc 5 5\r\nhello\r\nEND\r\nVERSION " in out,
          "openssl s_client -quiet drives memcached text over TLS")


def test_text_meta_pipelined(d, tport, pport):
    n = 200
    req = b"".join(b"set k%d 0 0 %d\r\nv%d\r\n" % (i, len(b"v%d" % i), i) for i in range(n))
    req += b"".join(b"get k%d\r\n" % i for i in range(n))
    req += b"ms mk 3 T0\r\nabc\r\nmg mk v\r\nmn\r\n"
    out = mc_text(d, tport, req, b"MN\r\n")
    want = b"STORED\r\n" * n + b"".join(b"VALUE k%d 0 %d\r\nv%d\r\nEND\r\n" % (i, len(b"v%d" % i), i)
                                        for i in range(n))
    want += b"HD\r\nVA 3\r\nabc\r\nMN\r\n"
    check(out == want, f"{n} pipelined text sets and gets, then meta ms/mg/mn, in one TLS write")
    # The plain port sees the same data: one store behind both.
    with socket.create_connection(("127.0.0.1", pport), timeout=10) as s:
        s.sendall(b"get k7\r\n")
        check(read_until(s, b"END\r\n") == b"VALUE k7 0 2\r\nv7\r\nEND\r\n",
              "the plain port still speaks plain text, same store")


def test_stats_settings(d, tport):
    out = mc_text(d, tport, b"stats settings\r\n", b"END\r\n")
    check(b"STAT ssl_enabled yes\r\n" in out and b"STAT ssl_min_version tlsv1.2\r\n" in out
          and b"STAT ssl_verify_mode 0\r\n" in out and b"live.crt\r\n" in out,
          "stats settings shows the TLS settings as memcached names them")


def test_large_values(d, tport):
    big = os.urandom(900 * 1024)
    with tls_connect(client_ctx(d), tport) as s:
        s.sendall(b"set big 0 0 %d\r\n%s\r\n" % (len(big), big))
        check(read_until(s, b"\r\n") == b"STORED\r\n", "a 900 KiB value arrives over TLS")
        s.sendall(b"get big\r\n" * 4)
        one = b"VALUE big 0 %d\r\n%s\r\nEND\r\n" % (len(big), big)
        out = read_exact(s, 4 * len(one))
        check(out == one * 4, "four pipelined gets of it come back intact (3.6 MB of records)")


def bin_req(opcode, key=b"", value=b"", extras=b"", opaque=0):
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0,
                       len(body), opaque, 0) + body


def test_binary_pipelined(d, tport):
    req = b""
    for i in range(50):
        req += bin_req(0x01, b"b%d" % i, b"val%d" % i, struct.pack(">II", 0, 0), opaque=i)
    for i in range(50):
        req += bin_req(0x00, b"b%d" % i, opaque=1000 + i)
    with tls_connect(client_ctx(d), tport) as s:
        s.sendall(req)
        ok = True
        for i in range(100):
            hdr = read_exact(s, 24)
            if len(hdr) < 24:
                ok = False
                break
            magic, op, klen, elen, _, status, blen, opaque, _ = struct.unpack(">BBHBBHIIQ", hdr)
            body = read_exact(s, blen)
            if i < 50:
                ok &= magic == 0x81 and op == 0x01 and status == 0 and opaque == i
            else:
                ok &= op == 0x00 and status == 0 and opaque == 1000 + i - 50
                ok &= body[elen + klen:] == b"val%d" % (i - 50)
        check(ok, "50 pipelined binary sets then 50 gets over TLS (first byte 0x80 picks binary)")


def test_resp(d, tport):
    if shutil.which("redis-cli") is None:
        print("skip redis-cli: not installed")
    else:
        base = ["redis-cli", "--tls", "--cacert", f"{d}/ca.crt", "-h", "127.0.0.1", "-p", str(tport)]
        r1 = run(base + ["SET", "rk", "hello tls"])
        r2 = run(base + ["GET", "rk"])
        check(r1.stdout.strip() == b"OK" and r2.stdout.strip() == b"hello tls",
              "redis-cli --tls SET/GET on the TLS port (RESP picked by the first byte)")
    with tls_connect(client_ctx(d), tport) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n" + b"*3\r\n$3\r\nSET\r\n$2\r\nr2\r\n$1\r\nx\r\n" * 100 +
                  b"*2\r\n$3\r\nGET\r\n$2\r\nr2\r\n")
        want = b"+PONG\r\n" + b"+OK\r\n" * 100 + b"$1\r\nx\r\n"
        check(read_exact(s, len(want)) == want, "102 pipelined RESP commands over TLS")


def test_resp_tls_port(d, rport):
    if shutil.which("redis-cli") is not None:
        r = run(["redis-cli", "--tls", "--cacert", f"{d}/ca.crt", "-h", "127.0.0.1", "-p", str(rport),
                 "PING"])
        check(r.stdout.strip() == b"PONG", "-o resp_tls: redis-cli --tls on --resp-port")
    with socket.create_connection(("127.0.0.1", rport), timeout=5) as s:
        s.sendall(b"PING\r\n")
        try:
            got = s.recv(100)
        except (ConnectionResetError, socket.timeout):
            got = b""
        check(not got.startswith(b"+PONG"), "-o resp_tls: --resp-port no longer speaks plain RESP")


def test_ciphers(d, tport):
    ok_ctx = client_ctx(d, maximum_version=ssl.TLSVersion.TLSv1_2)
    ok_ctx.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
    with tls_connect(ok_ctx, tport) as s:
        s.sendall(b"version\r\n")
        check(read_until(s, b"\r\n").startswith(b"VERSION "),
              "TLS 1.2 with a cipher in ssl_ciphers is served")
    bad_ctx = client_ctx(d, maximum_version=ssl.TLSVersion.TLSv1_2)
    bad_ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    try:
        with tls_connect(bad_ctx, tport) as s:
            s.sendall(b"version\r\n")
            refused = s.recv(100) == b""
    except (ssl.SSLError, OSError):
        refused = True
    check(refused, "TLS 1.2 with only a cipher outside ssl_ciphers is refused")


def test_garbage(d, tport, pport):
    before = stat(pport, "ssl_handshake_errors")
    with socket.create_connection(("127.0.0.1", tport), timeout=10) as s:
        s.sendall(b"get foo\r\n" + os.urandom(3000))
        try:
            data = s.recv(4096)
            while data:
                data = s.recv(4096)
            closed = True
        except ConnectionResetError:
            closed = True
        except socket.timeout:
            closed = False
    check(closed, "plain text instead of a ClientHello: the TLS port closes the connection")
    out = mc_text(d, tport, b"get k1\r\n", b"END\r\n")
    check(out == b"VALUE k1 0 2\r\nv1\r\nEND\r\n", "and keeps serving other TLS clients")
    after = stat(pport, "ssl_handshake_errors")
    check(before is not None and after == before + 1, f"stats ssl_handshake_errors counts it ({before} -> {after})")


def test_stalled_handshake(d, tport, pport):
    before = stat(pport, "ssl_handshake_errors")
    stalled = socket.create_connection(("127.0.0.1", tport), timeout=10)
    # A TLS record header announcing a 512-byte handshake message, then silence.
    stalled.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    silent = socket.create_connection(("127.0.0.1", tport), timeout=10)   # sends nothing
    t0 = time.monotonic()
    out = mc_text(d, tport, b"get k2\r\n", b"END\r\n")
    took = time.monotonic() - t0
    check(out == b"VALUE k2 0 2\r\nv2\r\nEND\r\n" and took < 1.5,
          f"two stalled handshakes on the only worker do not block a third client ({took:.2f}s)")
    closed = []
    for s in (stalled, silent):
        try:
            closed.append(s.recv(100) == b"")
        except ConnectionResetError:
            closed.append(True)
        except socket.timeout:
            closed.append(False)
        s.close()
    took = time.monotonic() - t0
    check(all(closed) and took < 8, f"both are closed at the handshake deadline ({took:.1f}s)")
    after = stat(pport, "ssl_handshake_errors")
    check(after == before + 2, f"and counted in ssl_handshake_errors ({before} -> {after})")


def test_drop_during_write(d, tport):
    for _ in range(5):
        s = tls_connect(client_ctx(d), tport)
        s.sendall(b"get big big big big big big big big\r\n" * 4)
        s.recv(1000)
        s.close()   # with megabytes still to be written
    out = mc_text(d, tport, b"get k3\r\n", b"END\r\n")
    check(out == b"VALUE k3 0 2\r\nv3\r\nEND\r\n", "clients that drop mid-reply leave the server serving")


def test_reload(d, tport, proc, err):
    fp1, fp2 = file_fingerprint(f"{d}/server.crt"), file_fingerprint(f"{d}/server2.crt")
    check(peer_fingerprint(d, tport) == fp1, "the configured certificate is served")

    with open(f"{d}/live.crt", "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    out = mc_text(d, tport, b"refresh_certs\r\n", b"\r\n")
    check(out.startswith(b"ERROR Error loading the certificate chain: ") and b"live.crt" in out,
          "refresh_certs with a bad chain file answers ERROR with the reason: " + out.decode().strip())
    check(peer_fingerprint(d, tport) == fp1, "and the old certificate stays in use")

    shutil.copy(f"{d}/server2.crt", f"{d}/live.crt")
    shutil.copy(f"{d}/server2.key", f"{d}/live.key")
    out = mc_text(d, tport, b"refresh_certs\r\n", b"\r\n")
    check(out == b"OK\r\n", "refresh_certs with good files answers OK")
    check(peer_fingerprint(d, tport) == fp2, "and new handshakes get the new certificate")

    shutil.copy(f"{d}/server.crt", f"{d}/live.crt")
    shutil.copy(f"{d}/server.key", f"{d}/live.key")
    proc.send_signal(signal.SIGHUP)
    ok = False
    for _ in range(50):
        if peer_fingerprint(d, tport) == fp1:
            ok = True
            break
        time.sleep(0.1)
    check(ok, "SIGHUP reloads the certificates")

    with open(f"{d}/live.key", "w") as f:
        f.write("garbage\n")
    proc.send_signal(signal.SIGHUP)
    logged = False
    for _ in range(50):
        err.seek(0)
        if b"could not reload TLS certificates on SIGHUP" in err.read():
            logged = True
            break
        time.sleep(0.1)
    check(logged, "a bad key on SIGHUP is logged to stderr")
    check(peer_fingerprint(d, tport) == fp1 and proc.poll() is None,
          "and the old certificates keep serving")
    shutil.copy(f"{d}/server.key", f"{d}/live.key")


# ---- server B: -Z with mutual TLS ----

def test_mutual_tls(d, port, rport):
    try:
        with tls_connect(client_ctx(d), port) as s:
            s.sendall(b"version\r\n")
            refused = not s.recv(100).startswith(b"VERSION")
    except (ssl.SSLError, OSError):
        refused = True
    check(refused, "ssl_verify_mode=2: a client without a certificate is refused")

    with tls_connect(client_ctx(d, cert=True), port) as s:
        s.sendall(b"set m 0 0 2\r\nhi\r\nget m\r\n")
        check(read_until(s, b"END\r\n") == b"STORED\r\nVALUE m 0 2\r\nhi\r\nEND\r\n",
              "a client with a certificate from ssl_ca_cert is served")

    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"version\r\n")
        try:
            got = s.recv(100)
        except (ConnectionResetError, socket.timeout):
            got = b""
        check(not got.startswith(b"VERSION"), "-Z: the main port speaks only TLS")

    try:
        with tls_connect(client_ctx(d, cert=True, maximum_version=ssl.TLSVersion.TLSv1_2), port) as s:
            s.sendall(b"version\r\n")
            refused = not s.recv(100).startswith(b"VERSION")
    except (ssl.SSLError, OSError):
        refused = True
    check(refused, "ssl_min_version=tlsv1.3: a TLS 1.2 client is refused")

    if shutil.which("redis-cli") is not None:
        r = run(["redis-cli", "--tls", "--cacert", f"{d}/ca.crt", "--cert", f"{d}/client.crt",
                 "--key", f"{d}/client.key", "-h", "127.0.0.1", "-p", str(rport), "GET", "m"])
        check(r.stdout.strip() == b"hi", "-Z: redis-cli --tls with a client certificate on --resp-port")


def main():
    if not BIN:
        print("KIOKU_BIN not set")
        return 77
    if shutil.which("openssl") is None:
        print("no openssl command")
        return 77
    if b"--enable-ssl" not in run([BIN, "--help"]).stdout:
        print("kioku built without TLS")
        return 77
    d = tempfile.mkdtemp(prefix="kioku-tls-")
    try:
        make_certs(d)
        pport, tport, rport = free_port(), free_port(), free_port()
        a, aerr = start(["-p", str(pport), "--tls-port", str(tport), "--resp-port", str(rport), "-t", "1",
                         "-o", f"ssl_chain_cert={d}/live.crt,ssl_key={d}/live.key,"
                               "ssl_handshake_timeout=2,ssl_ciphers=ECDHE-ECDSA-AES256-GCM-SHA384,resp_tls"],
                        [pport, tport, rport])
        try:
            test_s_client_text(d, tport)
            test_text_meta_pipelined(d, tport, pport)
            test_stats_settings(d, tport)
            test_large_values(d, tport)
            test_binary_pipelined(d, tport)
            test_resp(d, tport)
            test_resp_tls_port(d, rport)
            test_ciphers(d, tport)
            test_garbage(d, tport, pport)
            test_stalled_handshake(d, tport, pport)
            test_drop_during_write(d, tport)
            test_reload(d, tport, a, aerr)
        finally:
            stop(a, aerr, "A")

        port, rport = free_port(), free_port()
        b, berr = start(["-Z", "-p", str(port), "--resp-port", str(rport), "-t", "2",
                         "-o", f"ssl_chain_cert={d}/combined.pem,"
                               f"ssl_ca_cert={d}/ca.crt,ssl_verify_mode=2,ssl_min_version=tlsv1.3"],
                        [port, rport])
        try:
            test_mutual_tls(d, port, rport)
        finally:
            stop(b, berr, "B")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
