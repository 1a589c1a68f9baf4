#!/usr/bin/env python3
"""Lua scripts (issue 11): EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT
against a kioku this test starts itself, with redis-py and raw sockets.

  lock release   the redis-py line users write, verbatim, both branches
  semantics      KEYS/ARGV, every reply conversion both ways, redis.call
                 against redis.pcall, error_reply/status_reply, sha1hex,
                 EVALSHA and NOSCRIPT, SCRIPT LOAD/EXISTS/FLUSH, EVAL_RO
                 refusing writes, no os/io, read-only globals: each reply
                 byte for byte as redis-server 7.0.15 sends it (recorded)
  redis-server   when /usr/bin/redis-server is installed, the same requests
                 go to one started here too and the replies must be equal
  busy script    with busy-reply-threshold low, a script looping forever
                 makes other clients get -BUSY; SCRIPT KILL ends it; a
                 script that wrote is UNKILLABLE; the server serves again
  -t 1           the same on one worker: the script's own thread answers
                 -BUSY (before, pipelined, new connections, large SETs,
                 one half sent before the script, QUIT) and SCRIPT KILL from inside the script; a memcached
                 client waits for the script, then is served; every step
                 equal to redis-server's replies
  atomicity      16 clients x 150 read-then-write increments by script on
                 one key (not atomic without the script's lock) add up
                 exactly; scripts reaching undeclared keys beside MSETs on
                 the same keys do not deadlock

Every wait is bounded. Servers listen on 127.0.0.1, on free ports, and are
stopped by PID. Exit: 0 pass, 1 fail, 77 skip without redis-py.
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kioku_proc  # noqa: E402

redis = kioku_proc.import_redis("scripting")

BIN = os.environ.get("KIOKU_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "kioku")
REDIS_SERVER = "/usr/bin/redis-server"
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


# ---- raw RESP ----

def enc(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def read_reply(f):
    """One whole reply, as the bytes it arrived in."""
    line = f.readline()
    if not line:
        raise EOFError("connection closed")
    out = line
    t = line[:1]
    if t == b"$":
        n = int(line[1:-2])
        if n >= 0:
            out += f.read(n + 2)
    elif t in (b"*", b"~", b"%"):
        n = max(int(line[1:-2]), 0) * (2 if t == b"%" else 1)
        for _ in range(n):
            out += read_reply(f)
    return out


class Raw:
    def __init__(self, port, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.s.makefile("rb")

    def ask(self, *args):
        self.s.sendall(enc(args))
        return read_reply(self.f)

    def send(self, *args):
        self.s.sendall(enc(args))

    def read(self):
        return read_reply(self.f)

    def close(self):
        self.f.close()
        self.s.close()


# (request, reply) as redis-server 7.0.15 answers, recorded over a socket.
# The digest in an error names the script: sha1 of its body.
def sha(body):
    import hashlib
    return hashlib.sha1(body.encode()).hexdigest()


def where(body, line=1):
    return (" script: %s, on @user_script:%d.\r\n" % (sha(body), line)).encode()


def err_case(body, msg, numkeys="0", *rest):
    return (["eval", body, numkeys] + list(rest), b"-" + msg + where(body))


CASES = [
    # KEYS and ARGV
    (["eval", 'return table.concat(KEYS, ",") .. "|" .. table.concat(ARGV, ",")', "2",
      "k1", "k2", "a1", "a2"], b"$11\r\nk1,k2|a1,a2\r\n"),
    (["eval", "return #KEYS + 10 * #ARGV", "1", "k", "a", "b"], b":21\r\n"),
    (["eval", "return 1", "2", "a"],
     b"-ERR Number of keys can't be greater than number of args\r\n"),
    (["eval", "return 1", "-1", "a"], b"-ERR Number of keys can't be negative\r\n"),
    (["eval", "return 1", "x"], b"-ERR value is not an integer or out of range\r\n"),
    (["eval", "return 1"], b"-ERR wrong number of arguments for 'eval' command\r\n"),
    # Lua -> RESP
    (["eval", 'return {1,2,3,"ciao",{1,2}}', "0"],
     b"*5\r\n:1\r\n:2\r\n:3\r\n$4\r\nciao\r\n*2\r\n:1\r\n:2\r\n"),
    (["eval", "return {1,2,nil,4}", "0"], b"*2\r\n:1\r\n:2\r\n"),
    (["eval", "return 3.99", "0"], b":3\r\n"),
    (["eval", "return -3.7", "0"], b":-3\r\n"),
    (["eval", "return true", "0"], b":1\r\n"),
    (["eval", "return false", "0"], b"$-1\r\n"),
    (["eval", "return nil", "0"], b"$-1\r\n"),
    (["eval", 'return {1, true, false, "a"}', "0"], b"*4\r\n:1\r\n:1\r\n$-1\r\n$1\r\na\r\n"),
    (["eval", 'return {err="My Error"}', "0"], b"-My Error\r\n"),
    (["eval", 'return {ok="fine"}', "0"], b"+fine\r\n"),
    (["eval", 'return {ok="a\\r\\nb"}', "0"], b"+a  b\r\n"),
    (["eval", 'return {1,2,3,err="x"}', "0"], b"-x\r\n"),
    (["eval", "return {err=3}", "0"], b"*0\r\n"),
    (["eval", "return {double=1.5}", "0"], b"$3\r\n1.5\r\n"),
    (["eval", "return 1e20", "0"], b":-9223372036854775808\r\n"),
    (["eval", 'return "\\0a"', "0"], b"$2\r\n\x00a\r\n"),
    (["eval", 'return redis.error_reply("E2")', "0"], b"-ERR E2\r\n"),
    (["eval", 'return redis.error_reply("-E3 x")', "0"], b"-E3 x\r\n"),
    (["eval", 'return redis.status_reply("FINE")', "0"], b"+FINE\r\n"),
    (["eval", 'return redis.sha1hex("")', "0"],
     b"$40\r\nda39a3ee5e6b4b0d3255bfef95601890afd80709\r\n"),
    err_case("return redis.sha1hex()", b"ERR wrong number of arguments"),
    # RESP -> Lua
    (["eval", 'redis.call("set", KEYS[1], "v"); return redis.call("get", KEYS[1])', "1", "cv"],
     b"$1\r\nv\r\n"),
    (["eval", 'return redis.call("get", KEYS[1]) == false', "1", "nokey"], b":1\r\n"),
    (["eval", 'return redis.call("set", KEYS[1], "x")', "1", "s"], b"+OK\r\n"),
    (["eval", 'return redis.call("exists", KEYS[1], KEYS[2])', "2", "s", "nokey"], b":1\r\n"),
    (["eval", 'return type(redis.call("set", KEYS[1], "x"))', "1", "s"], b"$5\r\ntable\r\n"),
    (["eval", 'return redis.call("set", KEYS[1], "x").ok', "1", "s"], b"$2\r\nOK\r\n"),
    (["eval", 'return redis.call("mget", KEYS[1], KEYS[2])', "2", "s", "nokey"],
     b"*2\r\n$1\r\nx\r\n$-1\r\n"),
    (["eval", 'redis.call("set", KEYS[1], 5.7); return redis.call("get", KEYS[1])', "1", "s"],
     b"$18\r\n5.7000000000000002\r\n"),
    (["eval", 'redis.call("del", KEYS[1]); return redis.call("incr", KEYS[1])', "1", "n"],
     b":1\r\n"),
    # redis.call raises, redis.pcall returns the error
    err_case('redis.call("set",KEYS[1],"x"); return redis.call("incr",KEYS[1])',
             b"ERR value is not an integer or out of range", "1", "s"),
    (["eval", 'redis.call("set",KEYS[1],"x"); return redis.pcall("incr",KEYS[1])', "1", "s"],
     b"-ERR value is not an integer or out of range\r\n"),
    (["eval", 'return redis.pcall("nosuch")', "0"],
     b"-ERR Unknown Redis command called from script\r\n"),
    (["eval", 'local e = redis.pcall("nosuch"); return e.err', "0"],
     b"$44\r\nERR Unknown Redis command called from script\r\n"),
    (["eval", 'local ok, e = pcall(redis.call, "nosuch"); return e', "0"],
     b"$44\r\nERR Unknown Redis command called from script\r\n"),
    err_case('return redis.call("nosuch")', b"ERR Unknown Redis command called from script"),
    err_case('return redis.call("get")',
             b"ERR Wrong number of args calling Redis command from script"),
    err_case('return redis.call("multi")', b"ERR This Redis command is not allowed from script"),
    err_case('return redis.call("eval", "return 1", "0")',
             b"ERR This Redis command is not allowed from script"),
    err_case("return redis.call()",
             b"ERR Please specify at least one argument for this redis lib call"),
    err_case('return redis.call("get", {})',
             b"ERR Lua redis lib command arguments must be strings or integers"),
    err_case('error("boom")', b"ERR user_script:1: boom"),
    err_case('error({err="custom"})', b"custom"),
    err_case('error("x", 0)', b"ERR x"),
    (["eval", "syntax error here", "0"],
     b"-ERR Error compiling script (new function): user_script:1: '=' expected near 'error'\r\n"),
    # read-only scripts
    (["eval_ro", 'return redis.call("set","a","b")', "1", "a"],
     b"-ERR Write commands are not allowed from read-only scripts." +
     where('return redis.call("set","a","b")')),
    (["eval_ro", 'return redis.call("get", KEYS[1])', "1", "s"], b"$1\r\nx\r\n"),
    (["eval", '#!lua flags=no-writes\nreturn redis.call("set","x","1")', "0"],
     b"-ERR Write commands are not allowed from read-only scripts." +
     where('#!lua flags=no-writes\nreturn redis.call("set","x","1")', 2)),
    (["eval_ro", '#!lua\nreturn 1', "0"],
     b"-ERR Can not execute a script with write flag using *_ro command.\r\n"),
    (["eval", "#!python\nreturn 1", "0"],
     b"-ERR Unexpected engine in script shebang: #!python\r\n"),
    # the sandbox: no os, io, loadfile...; read-only globals
    err_case("return os", b"ERR user_script:1: Script attempted to access nonexistent global "
             b"variable 'os'"),
    err_case("return io", b"ERR user_script:1: Script attempted to access nonexistent global "
             b"variable 'io'"),
    err_case("return loadfile", b"ERR user_script:1: Script attempted to access nonexistent "
             b"global variable 'loadfile'"),
    err_case("return x", b"ERR user_script:1: Script attempted to access nonexistent global "
             b"variable 'x'"),
    err_case("x = 1", b"ERR user_script:1: Attempt to modify a readonly table"),
    err_case("string.x = 1", b"ERR user_script:1: Attempt to modify a readonly table"),
    err_case("KEYS = 1", b"ERR user_script:1: Attempt to modify a readonly table"),
    err_case('rawset(_G, "y", 1)', b"ERR Attempt to modify a readonly table"),
    (["eval", "return type(loadstring)", "0"], b"$8\r\nfunction\r\n"),
    (["eval", "local t = {}; t.x = 1; return t.x", "0"], b":1\r\n"),
    (["eval", 'return ("x"):rep(3)', "0"], b"$3\r\nxxx\r\n"),
    # the redis table's other members
    (["eval", "return redis.LOG_WARNING", "0"], b":3\r\n"),
    (["eval", "return {redis.REPL_ALL, redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, "
      "redis.REPL_REPLICA}", "0"], b"*5\r\n:3\r\n:0\r\n:1\r\n:2\r\n:2\r\n"),
    (["eval", "return redis.replicate_commands()", "0"], b":1\r\n"),
    (["eval", "return redis.set_repl(redis.REPL_ALL)", "0"], b"$-1\r\n"),
    (["eval", 'return redis.log(redis.LOG_DEBUG, "from a test")', "0"], b"$-1\r\n"),
    err_case("return redis.log()", b"ERR redis.log() requires two arguments or more."),
    # redis.setresp(3): RESP3 replies read back
    (["eval", 'redis.setresp(3); return redis.call("get", "nokey") == nil', "0"], b":1\r\n"),
    (["eval", 'redis.setresp(3); return redis.call("incrbyfloat", "fl", "1.5")', "0"],
     b"$3\r\n1.5\r\n"),
    (["eval", "redis.setresp(3); return {double=3.5}", "0"], b"$3\r\n3.5\r\n"),
    err_case("redis.setresp(4)", b"ERR RESP version must be 2 or 3."),
    # cjson and bit (Debian's lua-cjson and lua-bitop)
    (["eval", 'return cjson.encode({1,2,3,"a"})', "0"], b'$11\r\n[1,2,3,"a"]\r\n'),
    (["eval", "local t = cjson.decode(ARGV[1]) return {t.a, t.b[2], tostring(t.c)}", "0",
      '{"a":1,"b":[5,6],"c":true}'], b"*3\r\n:1\r\n:6\r\n$4\r\ntrue\r\n"),
    (["eval", "return bit.tohex(65535)", "0"], b"$8\r\n0000ffff\r\n"),
    (["eval", "return bit.bxor(5, 3)", "0"], b":6\r\n"),
    err_case("cjson.encode = 1", b"ERR user_script:1: Attempt to modify a readonly table"),
    # EVALSHA and SCRIPT
    (["script", "flush"], b"+OK\r\n"),
    (["evalsha", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
     b"-NOSCRIPT No matching script. Please use EVAL.\r\n"),
    (["script", "load", "return 1"], b"$40\r\ne0e1f9fabfc9d4800c877a703b823ac0578ff8db\r\n"),
    (["script", "exists", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db",
      "ffffffffffffffffffffffffffffffffffffffff"], b"*2\r\n:1\r\n:0\r\n"),
    (["evalsha", "E0E1F9FABFC9D4800C877A703B823AC0578FF8DB", "0"], b":1\r\n"),
    (["evalsha_ro", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"], b":1\r\n"),
    (["evalsha", "e0e1f9", "0"], b"-NOSCRIPT No matching script. Please use EVAL.\r\n"),
    (["script", "flush", "async"], b"+OK\r\n"),
    (["script", "exists", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"], b"*1\r\n:0\r\n"),
    (["eval", "return 2", "0"], b":2\r\n"),
    (["script", "exists", sha("return 2")], b"*1\r\n:1\r\n"),
    (["script", "flush", "bad"], b"-ERR SCRIPT FLUSH only support SYNC|ASYNC option\r\n"),
    (["script", "kill"], b"-NOTBUSY No scripts in execution right now.\r\n"),
    (["script", "nosuch"], b"-ERR unknown subcommand 'nosuch'. Try SCRIPT HELP.\r\n"),
    (["script"], b"-ERR wrong number of arguments for 'script' command\r\n"),
    (["script", "load"], b"-ERR wrong number of arguments for 'script|load' command\r\n"),
    (["script", "load", "x ="],
     b"-ERR Error compiling script (new function): user_script:1: unexpected symbol near "
     b"'<eof>'\r\n"),
]


def semantics(port):
    r = Raw(port)
    for req, want in CASES:
        got = r.ask(*req)
        check(got == want, "%r: got %r, want %r" % (req, got, want))
    # The connection and the server survive all of it.
    check(r.ask("ping") == b"+PONG\r\n", "PING after the cases")
    r.close()


def lock_release(port):
    r = redis.Redis(port=port, socket_timeout=10)
    name, token = "job7", "tok-1"
    r.set(f"lock:{name}", token)
    # Not the holder: nothing happens.
    res = r.eval('if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end', 1, f"lock:{name}", "other")
    check(res == 0 and r.get(f"lock:{name}") == token.encode(), "lock kept for a stranger")
    # The holder releases it.
    res = r.eval('if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end', 1, f"lock:{name}", token)
    check(res == 1 and r.get(f"lock:{name}") is None, "lock released by its holder")
    # redis-py's Script helper: EVALSHA, NOSCRIPT, then EVAL.
    r.script_flush()
    incr_by = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    r.delete("ctr")
    check(incr_by(keys=["ctr"], args=[5]) == 5 and incr_by(keys=["ctr"], args=[2]) == 7,
          "register_script runs through NOSCRIPT and EVALSHA")
    check(r.script_exists(incr_by.sha) == [True], "script_exists after the first call")
    try:
        r.eval("return redis.call('nosuch')", 0)
        check(False, "an error in a script reaches redis-py")
    except redis.exceptions.ResponseError as e:
        check("Unknown Redis command called from script" in str(e), "error text: %s" % e)
    # EVAL inside MULTI/EXEC (redis-py pipelines).
    p = r.pipeline()
    p.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "pk", "pv")
    p.eval("return redis.call('GET', KEYS[1])", 1, "pk")
    got = p.execute()
    check(got == [b"OK", b"pv"], "EVAL inside MULTI/EXEC: %r" % got)
    # RESP3 caller: false is a RESP3 null.
    raw = Raw(port)
    raw.ask("hello", "3")
    check(raw.ask("eval", "return false", "0") == b"_\r\n", "RESP3: false is _")
    check(raw.ask("eval", "return {1, nil}", "0") == b"*1\r\n:1\r\n", "RESP3: array")
    raw.close()
    r.close()


def start_redis():
    """(process, port) of a redis-server started here and accepting, or
    (process, None) if it did not start within 10 s."""
    rport = kioku_proc.free_port()
    d = tempfile.mkdtemp(prefix="kioku-scripting-")
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(rport), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", d],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            Raw(rport).close()
            return proc, rport
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                check(False, "redis-server did not start")
                return proc, None
            time.sleep(0.05)


def compare_with_redis(port):
    if not os.access(REDIS_SERVER, os.X_OK):
        print("scripting: %s not installed; comparison skipped" % REDIS_SERVER)
        return
    proc, rport = start_redis()
    try:
        if rport is None:
            return
        rr = Raw(rport)
        kr = Raw(port)
        rr.ask("flushall")
        kr.ask("flushall")
        for req, _ in CASES:
            a, b = kr.ask(*req), rr.ask(*req)
            check(a == b, "%r: kioku %r, redis-server %r" % (req, a, b))
        # math.random is deterministic, from the same start as Redis's.
        a = kr.ask("eval", "return {math.random(100), math.random(100)}", "0")
        b = rr.ask("eval", "return {math.random(100), math.random(100)}", "0")
        check(a == b, "math.random on a fresh server: kioku %r, redis-server %r" % (a, b))
        kr.close()
        rr.close()
    finally:
        kioku_proc.stop(proc)


LOOP = "while true do end"
WRITE_THEN_WAIT = ("redis.call('set', KEYS[1], 'w') "
                   "local t0 = redis.call('time') "
                   "while true do local t = redis.call('time') "
                   "if (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 3000000 then break end end "
                   "return 'done'")


def others(port, n=4):
    """n clients connected after the script's: some are on other workers."""
    return [Raw(port, timeout=2) for _ in range(n)]


def first_reply_like(clients, req, prefix, deadline):
    """Send req on each client in turn until one answers with prefix (one
    may ask before the script is busy). That reply and client, or None."""
    pending = list(clients)
    while pending and time.monotonic() < deadline:
        for c in list(pending):
            try:
                got = c.ask(*req)
            except socket.timeout:
                pending.remove(c)   # no reply in its 2 s: busy_one_worker tells why
                continue
            if got.startswith(prefix):
                return got, c
        time.sleep(0.05)
    return None, None


def busy_script(port):
    admin = Raw(port)
    check(admin.ask("config", "set", "busy-reply-threshold", "200") == b"+OK\r\n",
          "CONFIG SET busy-reply-threshold")
    check(admin.ask("config", "get", "lua-time-limit") ==
          b"*2\r\n$14\r\nlua-time-limit\r\n$3\r\n200\r\n", "lua-time-limit is its alias")
    admin.close()

    runner = Raw(port, timeout=30)
    runner.send("eval", LOOP, "0")
    got, killer = first_reply_like(others(port), ["get", "x"], b"-BUSY", time.monotonic() + 20)
    check(got == b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or "
                 b"SHUTDOWN NOSAVE.\r\n", "other clients get -BUSY: %r" % got)
    if killer is not None:
        check(killer.ask("script", "kill") == b"+OK\r\n", "SCRIPT KILL")
        got = runner.read()
        check(got == b"-ERR Script killed by user with SCRIPT KILL..." + where(LOOP),
              "the killed script's caller: %r" % got)
        check(killer.ask("script", "kill") == b"-NOTBUSY No scripts in execution right now.\r\n",
              "NOTBUSY once it is gone")
    check(runner.ask("ping") == b"+PONG\r\n", "the script's client is served again")
    runner.close()

    # A script that wrote cannot be killed; it ends by itself.
    runner = Raw(port, timeout=30)
    runner.send("eval", WRITE_THEN_WAIT, "1", "wk")
    got, _ = first_reply_like(others(port), ["script", "kill"], b"-UNKILLABLE",
                              time.monotonic() + 2.5)
    check(got == b"-UNKILLABLE Sorry the script already executed write commands against the "
                 b"dataset. You can either wait the script termination or kill the server in a "
                 b"hard way using the SHUTDOWN NOSAVE command.\r\n",
          "SCRIPT KILL of a script that wrote is refused: %r" % got)
    check(runner.read() == b"$4\r\ndone\r\n", "the unkillable script finishes")
    r = Raw(port)
    check(r.ask("get", "wk") == b"$1\r\nw\r\n", "its write stands")
    check(r.ask("config", "set", "busy-reply-threshold", "5000") == b"+OK\r\n", "threshold back")
    r.close()


BUSY = (b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or "
        b"SHUTDOWN NOSAVE.\r\n")
UNKILLABLE = (b"-UNKILLABLE Sorry the script already executed write commands against the "
              b"dataset. You can either wait the script termination or kill the server in a "
              b"hard way using the SHUTDOWN NOSAVE command.\r\n")


def busy_same_worker(port, mc=None):
    """What the clients of a busy script's own thread get, as a list of
    (what, reply): redis-server (one thread) and kioku -t 1 must agree.
    mc(phase) is called on kioku, for its memcached client."""
    out = []
    admin = Raw(port)
    check(admin.ask("config", "set", "busy-reply-threshold", "100") == b"+OK\r\n",
          "CONFIG SET busy-reply-threshold 100")
    before = Raw(port, timeout=10)    # connected before the script
    # A large SET whose value is half sent before the script starts.
    partial = Raw(port, timeout=10)
    value = b"p" * 100000
    partial.s.sendall(b"*3\r\n$3\r\nset\r\n$7\r\npartial\r\n$100000\r\n" + value[:50000])
    time.sleep(0.05)
    runner = Raw(port, timeout=30)
    runner.send("eval", LOOP, "0")
    time.sleep(0.02)
    if mc is not None:
        mc("script running")
    # Sent before the script is busy, answered once it is (10 s at most).
    out.append(("GET from a client of the script's thread", before.ask("get", "x")))
    before.s.sendall(enc(["get", "x"]) + enc(["ping"]) + enc(["eval", "return 1", "0"]))
    out.append(("pipelined", [before.read() for _ in range(3)]))
    after = Raw(port, timeout=10)     # accepted while the script runs
    out.append(("PING from a new connection", after.ask("ping")))
    partial.s.sendall(value[50000:] + b"\r\n")
    out.append(("a SET whose value ends while the script is busy", partial.read()))
    partial.close()
    out.append(("a large SET", before.ask("set", "big", "v" * 100000)))
    quitter = Raw(port, timeout=10)
    out.append(("QUIT", quitter.ask("quit")))
    try:
        out.append(("after QUIT", quitter.f.readline()))
    except OSError as e:
        out.append(("after QUIT", repr(e)))
    quitter.close()
    gone = Raw(port, timeout=10)      # asks and goes away unanswered
    gone.send("get", "x")
    gone.close()
    out.append(("SCRIPT KILL", after.ask("script", "kill")))
    out.append(("the script's caller", runner.read()))
    out.append(("SCRIPT KILL again", after.ask("script", "kill")))
    out.append(("the large SET did not run", before.ask("get", "big")))
    out.append(("nor the half-sent one", before.ask("get", "partial")))
    out.append(("the caller again", runner.ask("ping")))
    out.append(("SET", before.ask("set", "k", "v")))
    out.append(("GET", after.ask("get", "k")))

    # A script that wrote cannot be killed; it ends by itself (3 s).
    runner.send("eval", WRITE_THEN_WAIT, "1", "wk")
    time.sleep(0.02)
    out.append(("SCRIPT KILL of a script that wrote", after.ask("script", "kill")))
    out.append(("the unkillable script", runner.read()))
    out.append(("its write stands", before.ask("get", "wk")))
    check(admin.ask("config", "set", "busy-reply-threshold", "5000") == b"+OK\r\n",
          "threshold back")
    for c in (admin, before, runner, after):
        c.close()
    return out


def busy_one_worker(port):
    """kioku -t 1: the busy script's own thread serves its RESP clients from
    the script's hook, while its memcached clients wait for the script."""
    log = tempfile.TemporaryFile()
    proc, kport = kioku_proc.start(BIN, ["-t", "1"], stderr=log)
    mcs = {}

    def mc(phase):
        if phase == "script running":
            m = socket.create_connection(("127.0.0.1", kport), timeout=10)
            m.sendall(b"set mk 0 0 1\r\nm\r\n")
            mcs["m"] = m

    try:
        got = busy_same_worker(kport, mc)
        want = [
            ("GET from a client of the script's thread", BUSY),
            ("pipelined", [BUSY] * 3),
            ("PING from a new connection", BUSY),
            ("a SET whose value ends while the script is busy", BUSY),
            ("a large SET", BUSY),
            ("QUIT", b"+OK\r\n"),
            ("after QUIT", b""),
            ("SCRIPT KILL", b"+OK\r\n"),
            ("the script's caller", b"-ERR Script killed by user with SCRIPT KILL..." + where(LOOP)),
            ("SCRIPT KILL again", b"-NOTBUSY No scripts in execution right now.\r\n"),
            ("the large SET did not run", b"$-1\r\n"),
            ("nor the half-sent one", b"$-1\r\n"),
            ("the caller again", b"+PONG\r\n"),
            ("SET", b"+OK\r\n"),
            ("GET", b"$1\r\nv\r\n"),
            ("SCRIPT KILL of a script that wrote", UNKILLABLE),
            ("the unkillable script", b"$4\r\ndone\r\n"),
            ("its write stands", b"$1\r\nw\r\n"),
        ]
        for (what, a), (_, b) in zip(got, want):
            check(a == b, "-t 1, %s: %r, want %r" % (what, a, b))
        check(len(got) == len(want), "-t 1: %d steps, want %d" % (len(got), len(want)))
        # The memcached client waited for the script, then got its reply.
        m = mcs.get("m")
        check(m is not None, "memcached client connected")
        if m is not None:
            m.settimeout(10)
            check(m.recv(64) == b"STORED\r\n", "memcached set served after the script")
            m.sendall(b"get mk\r\n")
            check(m.recv(64) == b"VALUE mk 0 1\r\nm\r\nEND\r\n", "memcached get")
            m.close()
        r = Raw(kport)
        check(r.ask("eval", "redis.log(redis.LOG_WARNING, 'from', 'a test') "
                            "redis.log(redis.LOG_VERBOSE, 'not shown') return 1", "0") ==
              b":1\r\n", "redis.log")
        r.close()
        check(proc.poll() is None, "kioku -t 1 still running")
    finally:
        kioku_proc.stop(proc)
    # Through the log API: a warning's prefix, one line each.
    log.seek(0)
    lines = log.read().decode(errors="replace").splitlines()
    log.close()
    check("warning: script %s still running after 100 ms: other clients get -BUSY" % sha(LOOP)
          in lines, "the busy script is logged: %r" % lines[:4])
    check("warning: script: from a test" in lines, "redis.log(LOG_WARNING): %r" % lines[:4])
    check(not any("not shown" in x for x in lines), "LOG_VERBOSE needs -v")
    # The sanitizer builds report here, since stderr is read.
    check(not any("Sanitizer" in x or "runtime error" in x for x in lines),
          "no sanitizer report: %r" % [x for x in lines if "Sanitizer" in x][:2])
    if not os.access(REDIS_SERVER, os.X_OK):
        return
    rproc, rport = start_redis()
    try:
        if rport is not None:
            theirs = busy_same_worker(rport)
            for (what, a), (_, b) in zip(got, theirs):
                check(a == b, "-t 1 against redis-server, %s: kioku %r, redis %r" % (what, a, b))
    finally:
        kioku_proc.stop(rproc)


INCR_SCRIPT = ("local v = redis.call('GET', KEYS[1]) "
               "if v then v = tonumber(v) else v = 0 end "
               "for i = 1, 20000 do end "
               "redis.call('SET', KEYS[1], tostring(v + 1)) return v + 1")
REACH_SCRIPT = ("redis.call('INCR', KEYS[1]) "
                "redis.call('INCR', ARGV[1]) redis.call('INCR', ARGV[2]) return 1")


def atomicity(port):
    clients, per = 16, 150
    r = redis.Redis(port=port, socket_timeout=30)
    r.delete("counter")
    deadline = time.monotonic() + 120
    errors = []

    def worker():
        c = redis.Redis(port=port, socket_timeout=30)
        try:
            for _ in range(per):
                if time.monotonic() > deadline:
                    errors.append("timeout")
                    return
                c.eval(INCR_SCRIPT, 1, "counter")
        except Exception as e:   # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            c.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    check(not errors, "increment workers: %s" % errors[:3])
    got = int(r.get("counter") or 0)
    check(got == clients * per, "scripted read-then-write increments: %d, want %d" %
          (got, clients * per))

    # Undeclared keys and MSETs on the same keys: everything completes.
    stop_at = time.monotonic() + 60
    done = {"scripts": 0, "msets": 0}

    def reach(i):
        c = redis.Redis(port=port, socket_timeout=30)
        try:
            for k in range(100):
                if time.monotonic() > stop_at:
                    errors.append("timeout")
                    return
                c.eval(REACH_SCRIPT, 1, "rk%d" % (k % 5), "rk%d" % ((k + 1) % 5),
                       "rk%d" % ((k + 2) % 5))
                done["scripts"] += 1
        except Exception as e:   # noqa: BLE001
            errors.append(repr(e))
        finally:
            c.close()

    def msets():
        c = redis.Redis(port=port, socket_timeout=30)
        try:
            for k in range(200):
                if time.monotonic() > stop_at:
                    errors.append("timeout")
                    return
                c.mset({"rk%d" % j: 0 for j in range(5)})
                c.keys("rk*")
                done["msets"] += 1
        except Exception as e:   # noqa: BLE001
            errors.append(repr(e))
        finally:
            c.close()

    threads = [threading.Thread(target=reach, args=(i,)) for i in range(6)]
    threads += [threading.Thread(target=msets) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    check(not any(t.is_alive() for t in threads), "no deadlock between scripts and MSET")
    check(not errors, "undeclared-key workers: %s" % errors[:3])
    check(r.ping(), "server alive after the load")
    r.close()


def main():
    if not os.access(BIN, os.X_OK):
        print("scripting: no server binary at %s" % BIN)
        return 1
    # RESP on the memcached port: the first byte tells.
    proc, port = kioku_proc.start(BIN, ["-t", "4"])
    try:
        for phase in (lock_release, semantics, compare_with_redis, busy_script,
                      busy_one_worker, atomicity):
            t0 = time.monotonic()
            phase(port)
            print("scripting: %s took %.1f s" % (phase.__name__, time.monotonic() - t0))
        check(proc.poll() is None, "kioku still running")
    finally:
        kioku_proc.stop(proc)
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        return 1
    print("scripting: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
