#!/usr/bin/env python3
"""TLS options as memcached 1.6 names them (issue 13): session resumption,
the write buffer size, and per-listener TLS in -l.

Certificates come from tls.py's make_certs (a CA, server and client
certificates made with the openssl command for this run). Two servers:

  C  -Z with -l notls:<plain>,<tls>,mtls:<mtls>: one plain listener, one
     TLS listener that asks for no certificate, one that requires a client
     certificate signed by ssl_ca_cert; a --resp-port (TLS under -Z) on
     that address, listed three times; -o ssl_session_cache and
     ssl_wbuf_size=64 (KiB)
  D  -Z, no session cache, ssl_wbuf_size=4 (KiB), ssl_kernel_tls, and a
     notls: listener (whether the kernel takes the records depends on its
     tls module; either way the bytes must arrive intact)

Python's ssl module is the client: resumption is a second connection
offered the first one's session (SSLSocket.session_reused), for TLS 1.2
and 1.3; record sizes are read off the wire by a client whose TLS runs over
memory BIOs, so it sees each record header. Bad option values must be
refused at start with a clear message. Both servers must exit 0 on SIGTERM
with no sanitizer report.

Exit: 0 pass, 1 fail, 77 skip (no KIOKU_BIN, no openssl command, or a
kioku built without TLS).
"""
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tls as kt  # noqa: E402  (tls.py: certificates, start/stop, clients)
from kioku_proc import free_port  # noqa: E402

check = kt.check
VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def ctx_for(d, version=None, cert=False):
    ctx = kt.client_ctx(d, cert=cert)
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    return ctx


def version_over(ctx, port, session=None):
    """One TLS connection: `version`, then the session it made and whether
    it resumed. The reply is read before the session is taken: a TLS 1.3
    ticket arrives after the handshake."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as s:
        s.sendall(b"version\r\n")
        reply = kt.read_until(s, b"\r\n")
        return reply, s.session, s.session_reused


def plain(port, data, end=b"\r\n"):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        return kt.read_until(s, end)


def stats(port, sub=b""):
    out = {}
    for line in plain(port, b"stats" + sub + b"\r\n", b"END\r\n").split(b"\r\n"):
        parts = line.split(b" ", 2)
        if len(parts) == 3 and parts[0] == b"STAT":
            out[parts[1].decode()] = parts[2].decode()
    return out


def test_resumption(d, tport, pport, mport):
    for v in ("1.2", "1.3"):
        # one context (Python resumes only its own sessions) with a client
        # certificate, which only the mtls: listener asks for
        ctx = ctx_for(d, v, cert=True)
        before = int(stats(pport)["ssl_new_sessions"])
        reply, sess, reused = version_over(ctx, tport)
        check(reply.startswith(b"VERSION ") and not reused, f"TLS {v}: first connection, full handshake")
        made = int(stats(pport)["ssl_new_sessions"])
        check(made > before, f"TLS {v}: ssl_new_sessions counts the new session ({before} -> {made})")
        reply, sess2, reused = version_over(ctx, tport, sess)
        check(reply.startswith(b"VERSION ") and reused,
              f"TLS {v}: -o ssl_session_cache: a second connection resumes the session")
        after = int(stats(pport)["ssl_new_sessions"])
        if v == "1.2":   # a TLS 1.3 server issues a fresh ticket even on resumption
            check(after == made, f"TLS 1.2: a resumed session is not a new one ({made} -> {after})")
        # the session just resumed (or its fresh ticket) resumes again
        _, _, reused = version_over(ctx, tport, sess2)
        check(reused, f"TLS {v}: the resumed connection's session resumes too")
        # A session made without a client certificate must not resume on
        # the listener that requires one (the certificate check would be
        # skipped): the mtls: listener does a full handshake.
        reply, _, reused = version_over(ctx, mport, sess)
        check(reply.startswith(b"VERSION ") and not reused,
              f"TLS {v}: an mtls: listener does not resume a session from the btls listener")


def test_no_resumption(d, tport, pport):
    s = stats(pport)
    check("ssl_new_sessions" not in s, "no session cache: stats has no ssl_new_sessions (as memcached)")
    for v in ("1.2", "1.3"):
        ctx = ctx_for(d, v)
        _, sess, _ = version_over(ctx, tport)
        reply, _, reused = version_over(ctx, tport, sess)
        check(reply.startswith(b"VERSION ") and not reused,
              f"TLS {v}: without ssl_session_cache a session is not resumed (no cache, no tickets)")


def test_listeners(d, tport, pport, mport, rport):
    with kt.tls_connect(ctx_for(d), rport) as s:
        s.sendall(b"PING\r\n")
        check(kt.read_until(s, b"\r\n") == b"+PONG\r\n",
              "--resp-port speaks TLS, bound once for an address -l lists thrice")
    check(plain(pport, b"set lk 0 0 2\r\nhi\r\nget lk\r\n", b"END\r\n") ==
          b"STORED\r\nVALUE lk 0 2\r\nhi\r\nEND\r\n", "-l notls: listener speaks plain text under -Z")
    with kt.tls_connect(ctx_for(d), tport) as s:
        s.sendall(b"get lk\r\n")
        check(kt.read_until(s, b"END\r\n") == b"VALUE lk 0 2\r\nhi\r\nEND\r\n",
              "the -Z listener beside it speaks TLS (same store)")
    # plain text on the TLS listener is not a ClientHello: closed, no reply
    with socket.create_connection(("127.0.0.1", tport), timeout=10) as s:
        s.sendall(b"version\r\n")
        try:
            got = kt.read_until(s, b"\r\n")
        except OSError:   # reset: it had unread bytes
            got = b""
        check(b"VERSION" not in got, f"-Z listener refuses plain text (got {got[:40]!r})")
    # a TLS client on the notls: listener gets memcached's ERROR in clear
    try:
        kt.tls_connect(ctx_for(d), pport).close()
        check(False, "TLS handshake on the notls: listener fails")
    except (ssl.SSLError, OSError):
        check(True, "TLS handshake on the notls: listener fails")
    check(plain(pport, b"version\r\n").startswith(b"VERSION "), "notls: listener still serves after that")

    # mtls: a client certificate is required although ssl_verify_mode is 0
    for v in ("1.2", "1.3"):
        got = None
        try:
            with kt.tls_connect(ctx_for(d, v), mport) as s:
                s.sendall(b"version\r\n")
                got = kt.read_until(s, b"\r\n")
        except (ssl.SSLError, OSError):
            pass
        check(not got, f"TLS {v}: mtls: listener refuses a client without a certificate (got {got!r})")
        reply, _, _ = version_over(ctx_for(d, v, cert=True), mport)
        check(reply.startswith(b"VERSION "), f"TLS {v}: mtls: listener serves a client with a certificate")
        reply, _, _ = version_over(ctx_for(d, v), tport)
        check(reply.startswith(b"VERSION "), f"TLS {v}: the default listener still asks for none")


def record_sizes(d, port, key, total):
    """Get key over TLS on a client whose TLS runs over memory BIOs, so that
    every record header from the server is seen. Returns (value bytes,
    sizes of the application data records that carried the reply)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx_for(d, "1.3").wrap_bio(inc, out, server_hostname="127.0.0.1")

    def flush():
        data = out.read()
        if data:
            raw.sendall(data)

    for _ in range(100):   # bounded: a handshake is a few round trips
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            data = raw.recv(1 << 16)
            if not data:
                raise OSError("closed in handshake")
            inc.write(data)
    flush()
    obj.write(b"get " + key + b"\r\n")
    flush()
    wire, reply, sizes = b"", bytearray(), []
    deadline = time.monotonic() + 30
    while len(reply) < total and time.monotonic() < deadline:
        data = raw.recv(1 << 16)
        if not data:
            break
        inc.write(data)
        wire += data
        while len(wire) >= 5:   # type, version (2), length (2)
            n = int.from_bytes(wire[3:5], "big")
            if len(wire) < 5 + n:
                break
            if wire[0] == 23:
                sizes.append(n)
            wire = wire[5 + n:]
        try:
            while True:
                reply += obj.read(1 << 16)
        except ssl.SSLWantReadError:
            pass
    raw.close()
    return bytes(reply), sizes


def test_wbuf(d, pport, tport, kb, big):
    s = stats(pport, b" settings")
    check(s.get("ssl_wbuf_size") == str(kb * 1024),
          f"stats settings: ssl_wbuf_size {s.get('ssl_wbuf_size')} for -o ssl_wbuf_size={kb}")
    n = 300 * 1024
    value = bytes((i * 7 + kb) % 251 for i in range(n))
    check(plain(pport, b"set wb 0 0 %d\r\n" % n + value + b"\r\n") == b"STORED\r\n", "stored 300 KiB")
    want = b"VALUE wb 0 %d\r\n" % n + value + b"\r\nEND\r\n"
    reply, sizes = record_sizes(d, tport, b"wb", len(want))
    check(reply == want, f"ssl_wbuf_size={kb}: 300 KiB value intact over TLS")
    # TLS 1.3 with AEAD adds a content-type byte and a 16-byte tag; allow 256
    biggest = max(sizes) if sizes else 0
    if big:
        check(biggest > 8 * 1024 and biggest <= 16 * 1024 + 256,
              f"ssl_wbuf_size={kb}: maximal records, 16 KiB plaintext (largest {biggest})")
    else:
        check(0 < biggest <= kb * 1024 + 256 and len(sizes) >= n // (kb * 1024),
              f"ssl_wbuf_size={kb}: records at most {kb} KiB (largest {biggest}, {len(sizes)} records)")
    # A slow reader: the socket fills, SSL_write wants to be retried with
    # the same bytes, from the same (larger) buffer.
    with kt.tls_connect(ctx_for(d), tport) as sock:
        sock.sendall(b"get wb\r\nget wb\r\nget wb\r\n")
        time.sleep(0.5)
        got = kt.read_exact(sock, len(want) * 3)
        check(hashlib.sha256(got).digest() == hashlib.sha256(want * 3).digest(),
              f"ssl_wbuf_size={kb}: three pipelined 300 KiB replies to a slow reader intact ({len(got)} bytes)")


def test_settings(pport, cache, ktls):
    s = stats(pport, b" settings")
    check(s.get("ssl_session_cache") == ("yes" if cache else "no"),
          f"stats settings: ssl_session_cache {s.get('ssl_session_cache')}")
    check(s.get("ssl_kernel_tls") == ("yes" if ktls else "no"),
          f"stats settings: ssl_kernel_tls {s.get('ssl_kernel_tls')}")


def refused(args, want):
    r = kt.run([kt.BIN, "-p", str(free_port()), "-U", "0"] + kt.ROOT_ARGS + args)
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 64 and want in err, f"{args[-1]}: refused ({r.returncode}, {err.strip()!r})")


def test_bad_options(d):
    certs = f"ssl_key={d}/server.key,ssl_chain_cert={d}/server.crt"
    refused(["-Z", "-o", certs, "-o", "ssl_wbuf_size=0"], "ssl_wbuf_size must be 1 to 1024 (KiB)")
    refused(["-Z", "-o", certs, "-o", "ssl_wbuf_size=1025"], "ssl_wbuf_size must be 1 to 1024 (KiB)")
    refused(["-Z", "-o", certs, "-o", "ssl_wbuf_size=4k"], "ssl_wbuf_size must be 1 to 1024 (KiB)")
    refused(["-Z", "-o", certs, "-o", "ssl_session_cache=yes"], "-o ssl_session_cache takes no value")
    refused(["-Z", "-o", certs, "-o", "ssl_kernel_tls=yes"], "-o ssl_kernel_tls takes no value")
    refused(["-l", "notls:127.0.0.1"], "'notls' option is valid only when SSL is enabled")
    refused(["-l", "127.0.0.1,mtls:127.0.0.1:1"], "'mtls' option is valid only when SSL is enabled")


def main():
    if not kt.BIN:
        print("KIOKU_BIN not set")
        return 77
    if shutil.which("openssl") is None:
        print("no openssl command")
        return 77
    if b"--enable-ssl" not in kt.run([kt.BIN, "--help"]).stdout:
        print("kioku built without TLS")
        return 77
    d = tempfile.mkdtemp(prefix="kioku-tlsc-")
    try:
        kt.make_certs(d)
        test_bad_options(d)
        pport, tport, mport, rport = free_port(), free_port(), free_port(), free_port()
        c, cerr = kt.start(["-Z", "-p", str(tport), "-t", "2", "--resp-port", str(rport),
                            "-l", f"notls:127.0.0.1:{pport},127.0.0.1:{tport},mtls:127.0.0.1:{mport}",
                            "-o", f"ssl_chain_cert={d}/server.crt,ssl_key={d}/server.key,"
                                  f"ssl_ca_cert={d}/ca.crt,ssl_session_cache,ssl_wbuf_size=64"],
                           [pport, tport, mport, rport])
        try:
            test_settings(pport, True, False)
            test_listeners(d, tport, pport, mport, rport)
            test_resumption(d, tport, pport, mport)
            test_wbuf(d, pport, tport, 64, True)
        finally:
            kt.stop(c, cerr, "C")

        pport, tport = free_port(), free_port()
        dd, derr = kt.start(["-Z", "-p", str(tport), "-t", "1", "-l", f"127.0.0.1,notls:127.0.0.1:{pport}",
                             "-o", f"ssl_chain_cert={d}/server.crt,ssl_key={d}/server.key,ssl_wbuf_size=4,"
                                   "ssl_kernel_tls"],
                            [pport, tport])
        try:
            test_settings(pport, False, True)
            test_no_resumption(d, tport, pport)
            test_wbuf(d, pport, tport, 4, False)
        finally:
            kt.stop(dd, derr, "D")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if kt.failures:
        print(f"{len(kt.failures)} failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
