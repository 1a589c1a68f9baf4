#!/usr/bin/env python3
"""memcached's UDP protocol (-U, issue 13) against a real $KIOKU_BIN:

- every reply datagram starts with the 8-byte frame header: the request's
  id echoed (0, 1, 161, 65535), its sequence number, the total, reserved 0;
- a get of a 5000-byte value comes back as 4 datagrams of at most 1400
  bytes (all but the last exactly 1400), seq 0..3, total 4, and the
  payloads put together by seq are the TCP reply byte for byte;
- set/add/get/gets/delete/incr/decr/touch, meta (mg/ms/mn) and binary
  (Set/Get/Increment/Delete) work over UDP, and what UDP stored TCP reads;
- several requests in one datagram get one message each, in order;
- a 600 kB multi-get reply (past the 512 KiB a connection queues) leaves
  as several whole messages that together are the TCP reply (needs a 2 MB
  receive buffer: as root, else skipped);
- malformed datagrams are dropped and counted (stats kioku udp_bad_frames):
  shorter than the header, a header alone, total 2, total 0; a set whose
  data block is cut off gets "CLIENT_ERROR bad data chunk" and leaves no
  item; the server keeps serving UDP and TCP after all of them;
- `stats conns` lists a UDP descriptor per worker (addr
  udp:127.0.0.1:<port>, state conn_read), `stats settings` shows udpport
  and num_threads_per_udp, curr_connections counts the UDP descriptors;
  with two -l addresses each UDP socket has one worker (memcached's
  num_threads_per_udp 1) and both answer;
- MEMCACHED_PORT_FILENAME: the file names "TCP INET: <port>" and
  "UDP INET: <port>" (with -p -1 -U -1 both kernel-chosen and served;
  with -p 0 no TCP line) and is gone once the server has stopped; -U
  without -p puts TCP on the UDP port, as memcached does.

Every server is stopped by PID; every socket wait has a timeout.
Exit: 0 pass, 1 fail, 77 skip without KIOKU_BIN.
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402
from kioku_proc import connect, recv_until  # noqa: E402

BIN = os.environ.get("KIOKU_BIN")
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def free_udp_port():
    """A port free for UDP and for TCP too: -U without -p takes both, and
    other tests' servers hold TCP ports the kernel may give out for UDP."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            s.close()
    sys.exit("udp.py: no port free for both TCP and UDP")


def udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def frame(rid, payload, seq=0, total=1, reserved=0):
    return struct.pack(">HHHH", rid, seq, total, reserved) + payload


def collect(s, wait=0.5, limit=400, first=None):
    """Datagrams s receives until none comes for `wait` seconds (at most
    `limit`; the first one is waited for `first` seconds, `wait` unless
    given): a list of ((rid, seq, total, reserved), payload, size)."""
    out = []
    s.settimeout(wait if first is None else first)
    while len(out) < limit:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        out.append((struct.unpack(">HHHH", d[:8]), d[8:], len(d)))
        s.settimeout(wait)
    return out


def request(s, port, rid, payload, seq=0, total=1, reserved=0, limit=400, first=10):
    """Send one frame; the datagrams that answer it. A reply is waited for
    up to `first` seconds (a sanitizer build on a busy machine may take
    longer than the 0.5 s that end it); give first=0.5 where none is due."""
    s.sendto(frame(rid, payload, seq, total, reserved), ("127.0.0.1", port))
    return collect(s, limit=limit, first=first)


def message(dgrams):
    """One message's payload, its datagrams ordered by seq; None if they do
    not form one complete message."""
    if not dgrams:
        return None
    total = dgrams[0][0][2]
    seqs = sorted(d[0][1] for d in dgrams)
    if any(d[0][2] != total for d in dgrams) or seqs != list(range(total)):
        return None
    return b"".join(d[1] for d in sorted(dgrams, key=lambda d: d[0][1]))


def talk(s, req, end):
    s.sendall(req)
    return recv_until(s, end)


def stat_of(text, name):
    for line in text.split("\r\n"):
        parts = line.split(" ")
        if len(parts) == 3 and parts[1] == name:
            return parts[2]
    return None


def test_frames(port, uport):
    u = udp_socket()
    t = connect(port)
    check(talk(t, b"set foo 0 0 6\r\nfooval\r\n", b"\r\n") == b"STORED\r\n", "tcp: set foo")
    for rid in (0, 1, 161, 65535):
        got = request(u, uport, rid, b"get foo\r\n")
        check(len(got) == 1 and got[0][0] == (rid, 0, 1, 0) and
              got[0][1] == b"VALUE foo 0 6\r\nfooval\r\nEND\r\n",
              "request id %d echoed in a one-datagram reply: %r" % (rid, got[:2]))

    value = bytes((65 + (i * 7) % 26) for i in range(5000))
    check(talk(t, b"set big 0 0 5000\r\n" + value + b"\r\n", b"\r\n") == b"STORED\r\n",
          "tcp: set a 5000-byte value")
    tcp_reply = talk(t, b"get big\r\n", b"END\r\n")
    got = request(u, uport, 53, b"get big\r\n")
    heads = sorted(d[0] for d in got)
    check(heads == [(53, i, 4, 0) for i in range(4)],
          "5000-byte get: 4 datagrams, seq 0..3 of 4, id 53, reserved 0: %r" % heads)
    sizes = [d[2] for d in sorted(got, key=lambda d: d[0][1])]
    check(len(sizes) == 4 and sizes[:3] == [1400] * 3 and 8 < sizes[3] <= 1400,
          "datagrams of at most 1400 bytes, all but the last full: %r" % sizes)
    check(message(got) == tcp_reply and tcp_reply.endswith(b"\r\nEND\r\n"),
          "payloads put together by seq are the TCP reply byte for byte")
    # shuffled arrival: the seq numbers alone order it
    check(message(list(reversed(got))) == tcp_reply, "reassembly by seq, not arrival order")
    u.close()
    t.close()


def test_commands(port, uport):
    u = udp_socket()
    t = connect(port)

    def one(rid, req):
        return message(request(u, uport, rid, req))

    check(one(1, b"set u1 3 0 5\r\nhello\r\n") == b"STORED\r\n", "udp: set")
    check(one(2, b"get u1\r\n") == b"VALUE u1 3 5\r\nhello\r\nEND\r\n", "udp: get")
    check(talk(t, b"get u1\r\n", b"END\r\n") == b"VALUE u1 3 5\r\nhello\r\nEND\r\n",
          "tcp reads what udp stored")
    check(one(3, b"add u1 0 0 1\r\nx\r\n") == b"NOT_STORED\r\n", "udp: add of an existing key")
    gets = one(4, b"gets u1\r\n")
    check(gets is not None and gets.startswith(b"VALUE u1 3 5 ") and gets.endswith(b"\r\nhello\r\nEND\r\n"),
          "udp: gets shows a cas: %r" % gets)
    check(one(5, b"get nosuchkey\r\n") == b"END\r\n", "udp: get miss")
    check(one(6, b"set n 0 0 2\r\n10\r\n") == b"STORED\r\n", "udp: set a number")
    check(one(7, b"incr n 5\r\n") == b"15\r\n", "udp: incr")
    check(one(8, b"decr n 20\r\n") == b"0\r\n", "udp: decr stops at 0")
    check(one(9, b"touch n 100\r\n") == b"TOUCHED\r\n", "udp: touch")
    check(one(10, b"delete n\r\n") == b"DELETED\r\n", "udp: delete")
    check(one(11, b"delete n\r\n") == b"NOT_FOUND\r\n", "udp: delete a missing key")
    check(talk(t, b"get n\r\n", b"END\r\n") == b"END\r\n", "tcp: the deleted key is gone")
    check(request(u, uport, 12, b"set q 0 0 1 noreply\r\nq\r\n", first=0.5) == [],
          "udp: noreply sends nothing")
    check(one(13, b"get q\r\n") == b"VALUE q 0 1\r\nq\r\nEND\r\n", "udp: the noreply set stored")
    check(one(14, b"bogus\r\n") == b"ERROR\r\n", "udp: an unknown command gets ERROR")
    check(one(15, b"mg u1 v f\r\n") == b"VA 5 f3\r\nhello\r\n", "udp: meta get")
    check(one(16, b"ms m1 2\r\nhi\r\n") == b"HD\r\n", "udp: meta set")
    check(one(17, b"mn\r\n") == b"MN\r\n", "udp: meta no-op")

    # several requests in one datagram: one message each, in order
    got = request(u, uport, 18, b"get u1\r\nmg m1 v\r\nversion\r\n")
    check([d[0] for d in got] == [(18, 0, 1, 0)] * 3 and
          got[0][1] == b"VALUE u1 3 5\r\nhello\r\nEND\r\n" and got[1][1] == b"VA 2\r\nhi\r\n" and
          got[2][1].startswith(b"VERSION "),
          "three requests in a datagram: three messages in order: %r" % got)

    # binary protocol over UDP
    key = b"bkey"
    val = b"binval"
    req = struct.pack(">BBHBBHIIQ", 0x80, 0x01, len(key), 8, 0, 0, 8 + len(key) + len(val), 0xabc, 0)
    req += struct.pack(">II", 7, 0) + key + val
    res = message(request(u, uport, 19, req))
    check(res is not None and len(res) >= 24 and res[0] == 0x81 and res[1] == 0x01 and
          struct.unpack(">H", res[6:8])[0] == 0 and struct.unpack(">I", res[12:16])[0] == 0xabc,
          "binary Set over udp: success, opaque echoed")
    req = struct.pack(">BBHBBHIIQ", 0x80, 0x00, len(key), 0, 0, 0, len(key), 0, 0) + key
    res = message(request(u, uport, 20, req))
    check(res is not None and res[0] == 0x81 and struct.unpack(">H", res[6:8])[0] == 0 and
          res[24:28] == struct.pack(">I", 7) and res[28:] == val,
          "binary Get over udp: flags 7 and the value")
    check(talk(t, b"get bkey\r\n", b"END\r\n") == b"VALUE bkey 7 6\r\nbinval\r\nEND\r\n",
          "tcp reads what binary udp stored")
    one(21, b"set bn 0 0 1\r\n5\r\n")
    req = struct.pack(">BBHBBHIIQ", 0x80, 0x05, 2, 20, 0, 0, 22, 0, 0)
    req += struct.pack(">QQI", 3, 0, 0) + b"bn"
    res = message(request(u, uport, 22, req))
    check(res is not None and struct.unpack(">H", res[6:8])[0] == 0 and
          struct.unpack(">Q", res[24:32])[0] == 8, "binary Increment over udp: 5 + 3 = 8")
    req = struct.pack(">BBHBBHIIQ", 0x80, 0x04, 2, 0, 0, 0, 2, 0, 0) + b"bn"
    res = message(request(u, uport, 23, req))
    check(res is not None and struct.unpack(">H", res[6:8])[0] == 0, "binary Delete over udp")
    u.close()
    t.close()


def test_long_reply(port, uport):
    """A get whose reply passes what a connection queues at once (512 KiB)
    leaves as several messages, each whole, together the TCP reply."""
    u = udp_socket()
    try:
        u.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)   # SO_RCVBUFFORCE (root)
    except OSError:
        u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    if u.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < (2 << 20):
        print("skip: a 600 kB burst needs a receive buffer of 2 MB (root or net.core.rmem_max)")
        u.close()
        return
    t = connect(port)
    value = b"L" * 10000
    for i in range(60):
        t.sendall(b"set long%d 0 0 10000\r\n" % i + value + b"\r\n")
        recv_until(t, b"\r\n")
    line = b"get " + b" ".join(b"long%d" % i for i in range(60)) + b"\r\n"
    tcp_reply = talk(t, line, b"END\r\n")
    t.close()
    got = request(u, uport, 99, line, limit=2000)
    msgs = []
    for d in got:   # loopback keeps the order: a message starts at seq 0
        if d[0][1] == 0:
            msgs.append([])
        if msgs:
            msgs[-1].append(d)
    whole = [message(m) for m in msgs]
    check(len(msgs) >= 2 and all(w is not None for w in whole) and all(d[0][0] == 99 for d in got),
          "a 600 kB reply: %d messages, each whole, id 99" % len(msgs))
    check(b"".join(w or b"" for w in whole) == tcp_reply,
          "the messages together are the TCP reply (%d bytes)" % len(tcp_reply))
    u.close()


def bad_frames(port):
    t = connect(port)
    out = talk(t, b"stats kioku\r\n", b"END\r\n").decode()
    t.close()
    v = stat_of(out, "udp_bad_frames")
    return int(v) if v is not None else None


def test_malformed(port, uport):
    u = udp_socket()
    before = bad_frames(port)
    check(before == 0, "stats kioku: udp_bad_frames starts at 0 (%r)" % before)
    u.sendto(b"\x00\x01\x00", ("127.0.0.1", uport))
    check(collect(u) == [], "a datagram shorter than the header: no reply")
    u.sendto(frame(2, b""), ("127.0.0.1", uport))
    check(collect(u) == [], "a header alone: no reply")
    check(request(u, uport, 3, b"get foo\r\n", total=2, first=0.5) == [],
          "total 2 (a request over datagrams): dropped")
    check(request(u, uport, 4, b"get foo\r\n", total=0, first=0.5) == [], "total 0: dropped")
    u.sendto(b"", ("127.0.0.1", uport))
    check(collect(u) == [], "an empty datagram: no reply")
    after, deadline = bad_frames(port), time.time() + 10
    while after != 5 and time.time() < deadline:   # the worker counts in its own time
        time.sleep(0.05)
        after = bad_frames(port)
    check(after == 5, "stats kioku: the 5 bad datagrams counted (%r)" % after)
    # a request cut short by its datagram
    got = message(request(u, uport, 5, b"set cut 0 0 100\r\nonly part"))
    check(got == b"CLIENT_ERROR bad data chunk\r\n", "a set whose data block is cut off: %r" % got)
    check(message(request(u, uport, 6, b"get cut\r\n")) == b"END\r\n",
          "the cut set stored nothing, and the next datagram starts afresh")
    check(request(u, uport, 7, b"get foo", first=0.5) == [], "a line without its newline: no reply")
    # memcached ignores seq and reserved in a request
    got = message(request(u, uport, 8, b"get foo\r\n", seq=3, reserved=9))
    check(got == b"VALUE foo 0 6\r\nfooval\r\nEND\r\n", "seq and reserved of a request are ignored")
    # and the server still serves both transports
    t = connect(port)
    check(talk(t, b"get foo\r\n", b"END\r\n") == b"VALUE foo 0 6\r\nfooval\r\nEND\r\n",
          "tcp still served after the bad datagrams")
    t.close()
    check(message(request(u, uport, 9, b"get foo\r\n")) == b"VALUE foo 0 6\r\nfooval\r\nEND\r\n",
          "udp still served after the bad datagrams")
    u.close()


def test_stats(port, uport, threads):
    t = connect(port)
    out = talk(t, b"stats conns\r\n", b"END\r\n").decode()
    addrs = [line for line in out.split("\r\n") if line.endswith(":addr udp:127.0.0.1:%d" % uport)]
    check(len(addrs) == threads, "stats conns: one UDP descriptor per worker (%d): %r" % (threads, addrs))
    for a in addrs:
        fd = a.split(" ")[1].split(":")[0]
        check("STAT %s:state conn_read\r\n" % fd in out and "STAT %s:UDP UDP\r\n" % fd in out,
              "stats conns: fd %s is UDP, in conn_read" % fd)
    out = talk(t, b"stats settings\r\n", b"END\r\n").decode()
    check(stat_of(out, "udpport") == str(uport) and stat_of(out, "tcpport") == str(port),
          "stats settings: udpport %d, tcpport %d" % (uport, port))
    check(stat_of(out, "num_threads_per_udp") == str(threads),
          "stats settings: num_threads_per_udp %d, every worker" % threads)
    out = talk(t, b"stats\r\n", b"END\r\n").decode()
    check(stat_of(out, "curr_connections") == str(threads + 1),
          "curr_connections counts each UDP descriptor, as memcached: %r" % stat_of(out, "curr_connections"))
    t.close()


def start_with_port_file(args, path, listen="127.0.0.1", lines=None):
    """A server started with MEMCACHED_PORT_FILENAME=path and args; waits
    (at most 10 s) for the file. (process, {"TCP INET": port, ...}); the
    file's lines, as (kind, port), are appended to `lines` if given."""
    env = dict(os.environ, MEMCACHED_PORT_FILENAME=path)
    proc = subprocess.Popen([BIN, "-l", listen] + kioku_proc.ROOT_ARGS + args, env=env)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not os.path.exists(path) and proc.poll() is None:
        time.sleep(0.05)
    ports = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                kind, _, port = line.strip().partition(": ")
                ports[kind] = int(port)
                if lines is not None:
                    lines.append((kind, int(port)))
    return proc, ports


def test_port_file():
    d = tempfile.mkdtemp(prefix="kioku-udp-")
    path = os.path.join(d, "ports")
    try:
        proc, ports = start_with_port_file(["-p", "-1", "-U", "-1", "-t", "2"], path)
        try:
            tcp, udp = ports.get("TCP INET"), ports.get("UDP INET")
            check(set(ports) == {"TCP INET", "UDP INET"} and tcp and udp and tcp != 11211,
                  "-p -1 -U -1: the port file names a TCP and a UDP port: %r" % ports)
            if tcp and udp:
                t = connect(tcp)
                check(talk(t, b"set pf 0 0 2\r\nok\r\n", b"\r\n") == b"STORED\r\n",
                      "the TCP port of the file is served")
                t.close()
                u = udp_socket()
                check(message(request(u, udp, 77, b"get pf\r\n")) == b"VALUE pf 0 2\r\nok\r\nEND\r\n",
                      "the UDP port of the file is served")
                u.close()
            check(not os.path.exists(path + ".lck"), "no .lck file left behind")
        finally:
            kioku_proc.stop(proc)
        check(proc.returncode == 0 and not os.path.exists(path),
              "after a clean stop the port file is gone (rc %r)" % proc.returncode)

        uport = free_udp_port()
        proc, ports = start_with_port_file(["-U", str(uport)], path)
        try:
            check(ports == {"TCP INET": uport, "UDP INET": uport},
                  "-U without -p: TCP on the UDP port too, as memcached: %r" % ports)
        finally:
            kioku_proc.stop(proc)

        uport = free_udp_port()
        proc, ports = start_with_port_file(["-p", "0", "-U", str(uport)], path)
        try:
            check(ports == {"UDP INET": uport}, "-p 0: no TCP port, UDP only: %r" % ports)
            u = udp_socket()
            check(message(request(u, uport, 1, b"version\r\n")) is not None,
                  "a UDP-only server answers")
            u.close()
        finally:
            kioku_proc.stop(proc)

        # two -l addresses (the same one twice, on kernel-chosen ports): as
        # memcached, one worker serves each UDP socket
        lines = []
        proc, ports = start_with_port_file(["-p", "-1", "-U", "-1", "-t", "2"], path,
                                           listen="127.0.0.1,127.0.0.1", lines=lines)
        try:
            tcp = [p for k, p in lines if k == "TCP INET"]
            udp = [p for k, p in lines if k == "UDP INET"]
            check(len(tcp) == 2 and len(udp) == 2 and len(set(udp)) == 2,
                  "two -l addresses: two TCP and two UDP lines: %r" % lines)
            if len(tcp) == 2 and len(udp) == 2:
                t = connect(tcp[0])
                out = talk(t, b"stats conns\r\n", b"END\r\n").decode()
                for p in udp:
                    n = out.count(":addr udp:127.0.0.1:%d\r\n" % p)
                    check(n == 1, "UDP port %d has one worker's descriptor (%d)" % (p, n))
                out = talk(t, b"stats settings\r\n", b"END\r\n").decode()
                check(stat_of(out, "num_threads_per_udp") == "1",
                      "stats settings: num_threads_per_udp 1 with two addresses")
                t.close()
                u = udp_socket()
                for i, p in enumerate(udp):
                    check(message(request(u, p, 40 + i, b"version\r\n")) is not None,
                          "UDP port %d of two answers" % p)
                u.close()
        finally:
            kioku_proc.stop(proc)

        proc, ports = start_with_port_file(["-p", str(kioku_proc.free_port())], path)
        try:
            check(list(ports) == ["TCP INET"], "no -U: no UDP port (memcached's default): %r" % ports)
        finally:
            kioku_proc.stop(proc)
    finally:
        for name in ("ports", "ports.lck"):
            if os.path.exists(os.path.join(d, name)):
                os.unlink(os.path.join(d, name))
        os.rmdir(d)


def main():
    if not BIN:
        print("skip: KIOKU_BIN not set")
        return 77
    threads = 2
    for _ in range(3):
        uport = free_udp_port()
        proc, port = kioku_proc.start(BIN, ["-t", str(threads), "-U", str(uport)])
        if proc.poll() is None:
            break
    try:
        test_frames(port, uport)
        test_commands(port, uport)
        test_long_reply(port, uport)
        test_malformed(port, uport)
        test_stats(port, uport, threads)
        check(proc.poll() is None, "server still running")
    finally:
        kioku_proc.stop(proc)
    test_port_file()
    r = subprocess.run([BIN, "-U", "11299", "-S", "-Y", "/nonexistent"] + kioku_proc.ROOT_ARGS,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=10)
    check(r.returncode == 64 and b"Cannot use UDP with ascii authentication" in r.stderr,
          "-U with -Y is refused (64): %r" % r.stderr[:100])
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
