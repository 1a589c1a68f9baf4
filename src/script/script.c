/*
 * Lua scripting, Redis 7 style, on Debian's Lua 5.1 (see script.h).
 *
 * The interpreter. One lua_State per worker thread (script_lua.c: the
 * sandbox), made on the worker's first script. Compiled scripts stay in
 * its registry as "f_<sha>" until SCRIPT FLUSH changes the cache
 * generation; the worker then closes the interpreter and makes a fresh one
 * for its next script.
 *
 * Busy scripts and this design: a script runs on its client's worker,
 * whose event loop is stopped meanwhile. Clients of the other workers get
 * -BUSY from their dispatcher and can SCRIPT KILL it. Those of its own
 * worker are served from the count hook, as Redis's one thread serves
 * everyone from inside a script: past the threshold, every SERVE_EVERY_MS
 * the hook calls worker_serve_pending(), which polls the worker's RESP
 * connections without blocking and runs them through the usual path,
 * where the dispatcher answers -BUSY (or runs SCRIPT KILL). The caller's
 * connection, mid-request, is skipped. Memcached-protocol clients of this
 * worker are not served: their commands would take the stripes this
 * thread holds for the script as no-ops (item_hold), so they wait, bytes
 * unread, until the script ends. So -t 1 can still kill a runaway script.
 *
 * redis.call() and redis.pcall() run a command through the RESP command
 * table (resp_cmd_find, resp_run) on this thread's script connection: a
 * real struct conn whose transport appends what it "writes" to a buffer.
 * The reply bytes are read back with proto/resp_reply into Lua values.
 *
 * Locking. Before the script starts, the stripes of its KEYS are locked in
 * index order (item_lock_set) and held (item_hold), so no other client's
 * command on those keys interleaves, and the script's own commands lock
 * them as no-ops. A command on a key that was not declared needs another
 * stripe: it is trylocked and added to the hold; if another thread has it,
 * the script lets go of all its stripes and takes the larger set in index
 * order, since waiting while holding could deadlock against MSET or
 * another script. A command with no key positions that may walk stripes
 * (KEYS, SCAN, FLUSHALL, ...) runs with the hold let go, then it is taken
 * again. So isolation is whole for declared keys, the case Redis documents
 * as the only correct one, and may have a gap when a script reaches beyond
 * them.
 *
 * Run time. A count hook (every HOOK_EVERY instructions) compares the
 * elapsed time with the busy threshold: a script past it sets its worker's
 * slot busy and bumps script_busy_, which the dispatcher reads. SCRIPT KILL
 * (from any other client) marks a busy script that has run no write
 * command; its hook then raises Redis's error, and keeps raising on every
 * line so that a pcall cannot swallow it.
 */
#include "script/script.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/resp_cmds.h"
#include "cmd/resp_multi.h"
#include "core/conn.h"
#include "core/worker.h"
#include "script/script_cache.h"
#include "script/script_lua.h"
#include "stats/stats.h"
#include "storage/item.h"
#include "storage/storage.h"
#include "util/log.h"
#include "util/sha1.h"

#define HOOK_EVERY 100000       /* instructions between time checks, as Redis */
#define REPLY_DEPTH_MAX 1000    /* nesting of a reply, either direction */
#define GC_EVERY 50             /* runs between incremental GC steps */
#define SERVE_EVERY_MS 20       /* a busy script serves its worker's other clients */

#define ERR_KILLED "Script killed by user with SCRIPT KILL..."
#define ERR_NOSCRIPT "NOSCRIPT No matching script. Please use EVAL."

atomic_int script_busy_;

/* One per worker: what SCRIPT KILL, on another thread, needs to know. */
struct slot {
    uint64_t run_id;     /* atomic: the current (or last) run */
    int busy;            /* atomic: that run is past the threshold */
    int wrote;           /* atomic: that run has run a write command */
    uint64_t kill_id;    /* atomic: SCRIPT KILL asked run kill_id to stop */
};

static int stop_all;   /* atomic: script_stop_all() was called */
static struct slot *slots;
static int nslots;
static unsigned busy_threshold = 5000;   /* atomic, ms */
static pthread_mutex_t kill_lock = PTHREAD_MUTEX_INITIALIZER;

/* The run in progress on this thread. */
struct run {
    struct conn *caller;
    char sha[SHA1_HEX_LEN + 1];
    bool read_only;
    bool busy;
    int resp;                  /* 2, or 3 after redis.setresp(3) */
    struct slot *slot;         /* NULL outside a worker */
    uint64_t id;
    int64_t start_ms;
    int64_t served_ms;         /* when the worker's other clients were last served */
    struct item_lockset held;  /* stripes held for the script */
};

/* A worker's interpreter and script connection. */
struct engine {
    lua_State *L;
    uint64_t gen;              /* script_cache_generation() it was made in */
    uint64_t rand;             /* math.random's 48-bit state */
    unsigned runs;
    struct conn *conn;
    char *cap;                 /* captured reply bytes */
    size_t cap_len, cap_size;
    struct resp_arg *argv;     /* redis.call arguments */
    int argv_cap;
};

static __thread struct engine eng;
static __thread struct run *cur;
/* Its destructor frees a worker's engine when the thread exits. */
static pthread_key_t engine_key;
static bool engine_key_made;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the script connection: replies land in eng.cap ---- */

static ssize_t capture_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    (void)c;
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    if (eng.cap_size - eng.cap_len < n) {
        size_t size = eng.cap_size != 0 ? eng.cap_size : 4096;
        while (size - eng.cap_len < n)
            size *= 2;
        char *p = realloc(eng.cap, size);
        if (p == NULL) {
            errno = ENOMEM;
            return -1;
        }
        eng.cap = p;
        eng.cap_size = size;
    }
    for (int i = 0; i < iovcnt; i++) {
        memcpy(eng.cap + eng.cap_len, iov[i].iov_base, iov[i].iov_len);
        eng.cap_len += iov[i].iov_len;
    }
    return (ssize_t)n;
}

static ssize_t capture_read(struct conn *c, void *buf, size_t n)
{
    (void)c;
    (void)buf;
    (void)n;
    return 0;
}

static void capture_close(struct conn *c)
{
    (void)c;
}

static const struct transport capture_tp = {
    .name = "script", .read = capture_read, .writev = capture_writev, .close = capture_close,
};

static struct conn *script_conn(void)
{
    if (eng.conn == NULL) {
        struct conn *c = calloc(1, sizeof(*c));
        if (c == NULL)
            return NULL;
        if (conn_buffers_init(c) != 0) {
            free(c);
            return NULL;
        }
        c->fd = -1;
        c->kind = LISTENER_RESP;
        c->tp = &capture_tp;
        snprintf(c->name, sizeof(c->name), "lua");
        eng.conn = c;
    }
    return eng.conn;
}

/* ---- Lua values -> the reply to the caller ---- */

/* A Lua number as Redis sends it: truncated to an integer. Out of range
 * (and NaN) gives INT64_MIN, what redis-server answers on x86-64. */
static int64_t number_to_int(lua_Number d)
{
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
        return INT64_MIN;
    return (int64_t)d;
}

static void reply_double(struct conn *c, double d)
{
    char buf[64];
    if (resp_proto_version(c) == 3) {
        char *p = conn_out_reserve(c, RESP_HDR_MAX + 32);
        if (p != NULL)
            conn_out_commit(c, resp_put_double(p, RESP_HDR_MAX + 32, d));
        return;
    }
    int n = snprintf(buf, sizeof(buf), "%.17g", d);
    rs_bulk(c, buf, (size_t)n);
}

/* The field Redis sets in the error table of a redis.call that failed,
 * whose error INFO errorstats has counted: the script's own error reply
 * then does not count it again. */
#define ERR_COUNTED_FIELD "ignore_error_stats_update"

static void mark_counted(lua_State *L)
{
    lua_pushstring(L, ERR_COUNTED_FIELD);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
}

/* Is the error table at idx one mark_counted() marked? */
static bool is_counted(lua_State *L, int idx)
{
    lua_pushstring(L, ERR_COUNTED_FIELD);
    lua_rawget(L, idx);
    bool counted = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return counted;
}

/* Is the table at idx {field = <string>}? Leaves the string pushed if so. */
static bool string_field(lua_State *L, int idx, const char *field)
{
    lua_pushstring(L, field);
    lua_rawget(L, idx);
    if (lua_type(L, -1) == LUA_TSTRING)
        return true;
    lua_pop(L, 1);
    return false;
}

static void reply_value(struct conn *c, lua_State *L, int depth);

static void reply_table(struct conn *c, lua_State *L, int depth)
{
    int t = lua_gettop(L);
    if (string_field(L, t, "err")) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        char buf[1024];
        snprintf(buf, sizeof(buf), "%.*s", (int)len, s);
        if (is_counted(L, t))
            rs_error_counted(c, buf[0] == '-' ? buf + 1 : buf);
        else
            rs_error(c, buf[0] == '-' ? buf + 1 : buf);
        lua_pop(L, 1);
        return;
    }
    if (string_field(L, t, "ok")) {
        rs_simple(c, lua_tostring(L, -1));
        lua_pop(L, 1);
        return;
    }
    lua_pushstring(L, "double");
    lua_rawget(L, t);
    if (lua_type(L, -1) == LUA_TNUMBER) {
        reply_double(c, lua_tonumber(L, -1));
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    /* An array: elements 1, 2, ... up to the first nil. */
    size_t n = 0;
    for (;;) {
        lua_rawgeti(L, t, (int)n + 1);
        bool nil = lua_isnil(L, -1);
        lua_pop(L, 1);
        if (nil)
            break;
        n++;
    }
    rs_array(c, n);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, t, (int)i);
        reply_value(c, L, depth + 1);
    }
}

/* Reply the value on top of the stack, and pop it. */
static void reply_value(struct conn *c, lua_State *L, int depth)
{
    if (depth > REPLY_DEPTH_MAX || !lua_checkstack(L, 4)) {
        rs_error(c, "ERR reached lua stack limit");
        lua_pop(L, 1);
        return;
    }
    switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        rs_bulk(c, s, len);
        break;
    }
    case LUA_TBOOLEAN: {
        bool b = lua_toboolean(L, -1);
        if (cur != NULL && cur->resp == 3 && resp_proto_version(c) == 3)
            conn_out(c, b ? "#t\r\n" : "#f\r\n", 4);
        else if (cur != NULL && cur->resp == 3)
            rs_int(c, b);
        else if (b)
            rs_int(c, 1);
        else
            rs_null(c);
        break;
    }
    case LUA_TNUMBER:
        rs_int(c, number_to_int(lua_tonumber(L, -1)));
        break;
    case LUA_TTABLE:
        reply_table(c, L, depth);
        break;
    default:
        rs_null(c);
        break;
    }
    lua_pop(L, 1);
}

/* ---- stripes ---- */

/* Commands with no key positions that touch no stripe: they run inside
 * the hold. Every other keyless command runs with the hold let go. */
static bool lock_free(const struct resp_cmd *cmd)
{
    static const char *const names[] = {"ping", "echo", "time", "select", "command", NULL};
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(cmd->name, names[i]) == 0)
            return true;
    return false;
}

static void hold_release(struct run *r)
{
    item_hold(NULL);
    item_unlock_many(&r->held);
}

static void hold_take(struct run *r)
{
    item_lock_set(&r->held);
    item_hold(&r->held);
}

/* Make sure the script holds the stripes of the command's keys. */
static void hold_keys_of(struct run *r, const struct resp_cmd *cmd, int argc,
                         const struct resp_arg *argv)
{
    struct item_lockset want;
    memset(&want, 0, sizeof(want));
    struct resp_keys k;
    int i;
    bool extra = false;
    resp_keys_begin(&k, cmd, argc, argv);
    while (resp_keys_next(&k, &i)) {
        if (argv[i].len > STORAGE_KEY_MAX)
            continue;   /* refused by the dispatcher anyway */
        item_lockset_add(&want, item_hash(argv[i].ptr, argv[i].len));
    }
    for (unsigned w = 0; w < ITEM_LOCKSET_WORDS; w++)
        if ((want.bits[w] & ~r->held.bits[w]) != 0)
            extra = true;
    if (!extra || item_trylock_more(&r->held, &want))
        return;
    hold_release(r);
    for (unsigned w = 0; w < ITEM_LOCKSET_WORDS; w++)
        r->held.bits[w] |= want.bits[w];
    hold_take(r);
}

/* ---- the redis table ---- */

/* Names Redis 7 flags "noscript" among kioku's commands. They are kept
 * here, not as a flag in the shared command table, so that the table's
 * rows stay as they are. */
static bool denied_in_scripts(const struct resp_cmd *cmd)
{
    static const char *const names[] = {
        "eval", "evalsha", "eval_ro", "evalsha_ro", "script", "multi", "exec", "discard",
        "watch", "unwatch", "client", "hello", "auth", "quit", "config", "function",
        "shutdown", NULL,
    };
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(cmd->name, names[i]) == 0)
            return true;
    return false;
}

/* Run one command for redis.call/pcall; leaves its converted reply (or an
 * error table) on the stack. Returns true when that is an error. */
static bool call_command(lua_State *L, struct run *r)
{
    int argc = lua_gettop(L);
    if (argc == 0) {
        script_lua_push_error(L, "Please specify at least one argument for this redis lib call", 61);
        return true;
    }
    if (argc > eng.argv_cap) {
        struct resp_arg *a = realloc(eng.argv, sizeof(*a) * (size_t)argc);
        if (a == NULL) {
            script_lua_push_error(L, "-OOM out of memory", 18);
            return true;
        }
        eng.argv = a;
        eng.argv_cap = argc;
    }
    for (int i = 1; i <= argc; i++) {
        int t = lua_type(L, i);
        if (t == LUA_TNUMBER) {
            /* As Redis: %.17g, so 12 is "12" and 5.7 "5.7000000000000002". */
            char buf[64];
            snprintf(buf, sizeof(buf), "%.17g", (double)lua_tonumber(L, i));
            lua_pushstring(L, buf);
            lua_replace(L, i);
        } else if (t != LUA_TSTRING) {
            const char *m = "Lua redis lib command arguments must be strings or integers";
            script_lua_push_error(L, m, strlen(m));
            return true;
        }
        eng.argv[i - 1].ptr = lua_tolstring(L, i, &eng.argv[i - 1].len);
    }
    const struct resp_cmd *cmd = resp_cmd_find(eng.argv[0].ptr, eng.argv[0].len);
    const char *refuse = NULL;
    if (cmd == NULL)
        refuse = "Unknown Redis command called from script";
    else if ((cmd->arity > 0 && argc != cmd->arity) || (cmd->arity < 0 && argc < -cmd->arity))
        refuse = "Wrong number of args calling Redis command from script";
    else if (denied_in_scripts(cmd))
        refuse = "This Redis command is not allowed from script";
    else if ((cmd->flags & RC_WRITE) && r->read_only)
        refuse = "Write commands are not allowed from read-only scripts.";
    if (refuse != NULL) {
        /* Counted here, as Redis counts a command a script may not run;
         * a text with no code of its own counts as ERR. */
        stats_error_reply(r->caller->stats, "ERR", 3);
        if (cmd != NULL)
            resp_cmdstat_rejected(r->caller, cmd);
        script_lua_push_error(L, refuse, strlen(refuse));
        mark_counted(L);
        return true;
    }
    struct conn *sc = script_conn();
    if (sc == NULL) {
        script_lua_push_error(L, "-OOM out of memory", 18);
        return true;
    }
    if ((cmd->flags & RC_WRITE) && r->slot != NULL)
        __atomic_store_n(&r->slot->wrote, 1, __ATOMIC_RELAXED);
    sc->worker = r->caller->worker;
    sc->stats = r->caller->stats;
    sc->now = r->caller->now;
    resp_set_proto_version(sc, r->resp);
    bool global = !resp_cmd_has_keys(cmd) && !lock_free(cmd);
    if (global)
        hold_release(r);
    else
        hold_keys_of(r, cmd, argc, eng.argv);
    resp_run(sc, argc, eng.argv);
    if (global)
        hold_take(r);
    /* The reply, written to eng.cap; bytes_written is the clients' count. */
    static __thread struct thread_stats scratch;
    sc->stats = &scratch;
    eng.cap_len = 0;
    bool too_big = sc->out_over;
    if (conn_flush(sc) != FLUSH_DONE)
        too_big = true;
    sc->out_over = sc->close_after_write = false;
    if (too_big) {
        eng.cap_len = 0;
        script_lua_push_error(L, "reply of the command called from the script is too large", 57);
        return true;
    }
    size_t used;
    if (!script_lua_push_reply(L, eng.cap, eng.cap_len, &used, r->resp)) {
        script_lua_push_error(L, "reply of the command called from the script is too deep", 56);
        return true;
    }
    bool err = eng.cap_len > 0 && eng.cap[0] == '-';
    if (err)
        mark_counted(L);   /* the command's reply counted it */
    if (eng.cap_size > 65536) {   /* after a big reply, give the memory back */
        free(eng.cap);
        eng.cap = NULL;
        eng.cap_size = 0;
    }
    eng.cap_len = 0;
    return err;
}

static int l_call(lua_State *L)
{
    if (cur == NULL)
        return script_lua_raise(L, "redis.call/pcall can only be called inside a script invocation");
    if (call_command(L, cur))
        return lua_error(L);
    return 1;
}

static int l_pcall(lua_State *L)
{
    if (cur == NULL)
        return script_lua_raise(L, "redis.call/pcall can only be called inside a script invocation");
    call_command(L, cur);
    return 1;
}

static int l_set_repl(lua_State *L)
{
    if (cur == NULL)
        return script_lua_raise(L, "redis.set_repl can only be called inside a script invocation");
    if (lua_gettop(L) != 1)
        return script_lua_raise(L, "redis.set_repl() requires two arguments.");
    int flags = (int)lua_tonumber(L, 1);
    if (flags < 0 || flags > 3)
        return script_lua_raise(L, "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.");
    return 0;   /* kioku does not replicate: accepted, as Redis 7 accepts it */
}

static int l_setresp(lua_State *L)
{
    if (cur == NULL)
        return script_lua_raise(L, "redis.setresp can only be called inside a script invocation");
    if (lua_gettop(L) != 1)
        return script_lua_raise(L, "redis.setresp() requires one argument.");
    int v = (int)lua_tonumber(L, 1);
    if (v != 2 && v != 3)
        return script_lua_raise(L, "RESP version must be 2 or 3.");
    cur->resp = v;
    return 0;
}

static int l_acl_check_cmd(lua_State *L)
{
    if (cur == NULL)
        return script_lua_raise(L, "redis.acl_check_cmd can only be called inside a script invocation");
    size_t len;
    const char *name = lua_gettop(L) >= 1 ? lua_tolstring(L, 1, &len) : NULL;
    if (name == NULL || resp_cmd_find(name, len) == NULL)
        return script_lua_raise(L, "Invalid command passed to redis.acl_check_cmd()");
    lua_pushboolean(L, 1);   /* the default user may run everything */
    return 1;
}


static void engine_close(void)
{
    if (eng.L != NULL)
        lua_close(eng.L);
    eng.L = NULL;
}

/* The redis.* functions that need a running script. */
static const luaL_Reg redis_fns[] = {
    {"call", l_call},
    {"pcall", l_pcall},
    {"set_repl", l_set_repl},
    {"setresp", l_setresp},
    {"acl_check_cmd", l_acl_check_cmd},
    {NULL, NULL},
};

static void engine_free(void *arg)
{
    (void)arg;
    engine_close();
    if (eng.conn != NULL) {
        conn_buffers_free(eng.conn);   /* its output was always flushed */
        free(eng.conn);
        eng.conn = NULL;
    }
    free(eng.cap);
    free(eng.argv);
    eng.cap = NULL;
    eng.argv = NULL;
    eng.cap_size = eng.cap_len = 0;
    eng.argv_cap = 0;
}

/* This worker's interpreter, current with the cache generation. */
static lua_State *engine(void)
{
    uint64_t gen = script_cache_generation();
    if (eng.L != NULL && eng.gen != gen)
        engine_close();
    if (eng.L == NULL) {
        eng.L = script_lua_open(redis_fns);
        eng.gen = gen;
        if (engine_key_made)
            pthread_setspecific(engine_key, &eng);
    }
    return eng.L;
}

/* ---- compiling ---- */

#define SCRIPT_NO_WRITES 1   /* #!lua flags=no-writes */
#define SCRIPT_SHEBANG 2     /* the body declared its flags */

/* A "#!lua [flags=a,b]" first line: its flags, and where the code starts
 * (at the newline, so line numbers stay). Returns false after replying. */
static bool shebang(struct conn *c, const char *body, size_t len, int *flags, size_t *skip)
{
    *flags = 0;
    *skip = 0;
    if (len < 2 || body[0] != '#' || body[1] != '!')
        return true;
    const char *nl = memchr(body, '\n', len);
    if (nl == NULL) {
        rs_error(c, "ERR Invalid script shebang");
        return false;
    }
    size_t end = (size_t)(nl - body);
    char line[1024];
    snprintf(line, sizeof(line), "%.*s", (int)end, body);
    char *save = NULL;
    char *word = strtok_r(line, " \t\r", &save);
    if (word == NULL) {
        rs_error(c, "ERR Invalid engine in script shebang");
        return false;
    }
    if (strcmp(word, "#!lua") != 0) {
        rs_errorf(c, "ERR Unexpected engine in script shebang: %s", word);
        return false;
    }
    *flags = SCRIPT_SHEBANG;
    while ((word = strtok_r(NULL, " \t\r", &save)) != NULL) {
        if (strncmp(word, "flags=", 6) != 0) {
            rs_errorf(c, "ERR Unknown lua shebang option: %s", word);
            return false;
        }
        char *save2 = NULL;
        for (char *f = strtok_r(word + 6, ",", &save2); f != NULL; f = strtok_r(NULL, ",", &save2)) {
            if (strcmp(f, "no-writes") == 0)
                *flags |= SCRIPT_NO_WRITES;
            else if (strcmp(f, "allow-oom") != 0 && strcmp(f, "allow-stale") != 0 &&
                     strcmp(f, "no-cluster") != 0 && strcmp(f, "allow-cross-slot-keys") != 0) {
                rs_errorf(c, "ERR Unexpected flag in script shebang: %s", f);
                return false;
            }
        }
    }
    *skip = end;
    return true;
}

/* Compile body as f_<sha> (and its flags as g_<sha>) in L. Returns false
 * after replying the error. */
static bool compile(struct conn *c, lua_State *L, const char *sha, const char *body, size_t len)
{
    int flags;
    size_t skip;
    if (!shebang(c, body, len, &flags, &skip))
        return false;
    if (luaL_loadbuffer(L, body + skip, len - skip, "@user_script") != 0) {
        const char *msg = lua_tostring(L, -1);
        rs_errorf(c, "ERR Error compiling script (new function): %s", msg != NULL ? msg : "?");
        lua_pop(L, 1);
        return false;
    }
    char key[SHA1_HEX_LEN + 3];
    snprintf(key, sizeof(key), "f_%s", sha);
    lua_setfield(L, LUA_REGISTRYINDEX, key);
    key[0] = 'g';
    lua_pushinteger(L, flags);
    lua_setfield(L, LUA_REGISTRYINDEX, key);
    return true;
}

/* Push f_<sha>, compiling it from body (or from the shared cache when
 * body is NULL). Returns false after replying. */
static bool find_function(struct conn *c, lua_State *L, const char *sha, const char *body,
                          size_t len, int *flags)
{
    char key[SHA1_HEX_LEN + 3];
    snprintf(key, sizeof(key), "f_%s", sha);
    lua_getfield(L, LUA_REGISTRYINDEX, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        char *copy = NULL;
        if (body == NULL) {
            copy = script_cache_get(sha, &len);
            if (copy == NULL) {
                rs_error(c, ERR_NOSCRIPT);
                return false;
            }
            body = copy;
        }
        bool ok = compile(c, L, sha, body, len);
        if (ok && copy == NULL && script_cache_add(sha, body, len) != 0) {
            rs_error(c, RS_ERR_OOM);
            ok = false;
        }
        free(copy);
        if (!ok)
            return false;
        lua_getfield(L, LUA_REGISTRYINDEX, key);
    }
    key[0] = 'g';
    lua_getfield(L, LUA_REGISTRYINDEX, key);
    *flags = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return true;
}

/* ---- running ---- */

static void hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct run *r = cur;
    if (r == NULL)
        return;
    unsigned limit = __atomic_load_n(&busy_threshold, __ATOMIC_RELAXED);
    if (!r->busy && limit > 0 && mono_ms() - r->start_ms >= (int64_t)limit) {
        r->busy = true;
        if (r->slot != NULL)
            __atomic_store_n(&r->slot->busy, 1, __ATOMIC_RELEASE);
        atomic_fetch_add_explicit(&script_busy_, 1, memory_order_relaxed);
        log_warn("script %s still running after %u ms: other clients get -BUSY", r->sha,
                 limit);
    }
    if (r->busy && r->caller->worker != NULL) {
        int64_t now = mono_ms();
        if (now - r->served_ms >= SERVE_EVERY_MS) {
            r->served_ms = now;
            worker_serve_pending(r->caller->worker, r->caller);
        }
    }
    if ((r->slot != NULL && __atomic_load_n(&r->slot->kill_id, __ATOMIC_ACQUIRE) == r->id) ||
        __atomic_load_n(&stop_all, __ATOMIC_RELAXED)) {
        /* On every line from now on, so that pcall cannot catch it for good. */
        lua_sethook(L, hook, LUA_MASKLINE, 0);
        script_lua_raise(L, ERR_KILLED);
    }
}

static void set_array(lua_State *L, int globals, const char *name,
                      const struct resp_arg *a, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushlstring(L, a[i].ptr, a[i].len);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, globals, name);
}

/* The error a failed run replies: the err field, then where. */
static void reply_run_error(struct conn *c, lua_State *L, const char *sha)
{
    char buf[1024];
    if (!lua_istable(L, -1)) {
        const char *s = lua_tostring(L, -1);
        snprintf(buf, sizeof(buf), "ERR Error running script %s, %.100s", sha,
                 s != NULL ? s : "execution failure");
        rs_error(c, buf);
        return;
    }
    int t = lua_gettop(L);
    lua_getfield(L, t, "err");
    lua_getfield(L, t, "source");
    lua_getfield(L, t, "line");
    const char *msg = lua_type(L, -3) == LUA_TSTRING ? lua_tostring(L, -3) : NULL;
    const char *src = lua_isstring(L, -2) ? lua_tostring(L, -2) : NULL;
    const char *line = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
    if (msg == NULL)
        msg = "ERR unknown error (the script raised an error table with no 'err' string)";
    int n = snprintf(buf, sizeof(buf), "%s", msg);
    if (src != NULL && line != NULL && n >= 0 && (size_t)n < sizeof(buf))
        snprintf(buf + n, sizeof(buf) - (size_t)n, " script: %s, on %s:%s.", sha, src, line);
    if (is_counted(L, t))
        rs_error_counted(c, buf[0] == '-' ? buf + 1 : buf);
    else
        rs_error(c, buf[0] == '-' ? buf + 1 : buf);
    lua_pop(L, 3);
}

static void run_function(struct conn *c, lua_State *L, const char *sha, bool read_only,
                         const struct resp_arg *keys, int nkeys, const struct resp_arg *args,
                         int nargs)
{
    struct run r;
    memset(&r, 0, sizeof(r));
    r.caller = c;
    memcpy(r.sha, sha, SHA1_HEX_LEN + 1);
    r.read_only = read_only;
    r.resp = 2;
    r.start_ms = mono_ms();
    int w = c->worker != NULL ? c->worker->id : -1;
    if (slots != NULL && w >= 0 && w < nslots) {
        r.slot = &slots[w];
        __atomic_store_n(&r.slot->wrote, 0, __ATOMIC_RELAXED);
        r.id = __atomic_add_fetch(&r.slot->run_id, 1, __ATOMIC_ACQ_REL);
    }

    /* Stack: error handler, function. */
    lua_getfield(L, LUA_REGISTRYINDEX, SCRIPT_REG_ERRH);
    lua_insert(L, -2);
    lua_getfield(L, LUA_REGISTRYINDEX, SCRIPT_REG_GLOBALS);
    int globals = lua_gettop(L);
    set_array(L, globals, "KEYS", keys, nkeys);
    set_array(L, globals, "ARGV", args, nargs);
    lua_pop(L, 1);

    for (int i = 0; i < nkeys; i++)
        if (keys[i].len <= STORAGE_KEY_MAX)
            item_lockset_add(&r.held, item_hash(keys[i].ptr, keys[i].len));
    hold_take(&r);
    cur = &r;
    if (__atomic_load_n(&busy_threshold, __ATOMIC_RELAXED) > 0 || r.slot != NULL)
        lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_EVERY);
    int rc = lua_pcall(L, 0, 1, -2);
    lua_sethook(L, NULL, 0, 0);
    cur = NULL;
    hold_release(&r);
    if (r.busy) {
        __atomic_store_n(&r.slot->busy, 0, __ATOMIC_RELEASE);
        atomic_fetch_sub_explicit(&script_busy_, 1, memory_order_relaxed);
    }

    cur = &r;   /* the reply reads r.resp */
    if (rc != 0)
        reply_run_error(c, L, sha);
    else
        reply_value(c, L, 0);
    cur = NULL;
    lua_settop(L, 0);
    if (++eng.runs % GC_EVERY == 0)
        lua_gc(L, LUA_GCSTEP, GC_EVERY);
}

/* A digest argument as the cache keys it: 40 lowercase hex digits. */
static bool digest_arg(const struct resp_arg *a, char out[SHA1_HEX_LEN + 1])
{
    if (a->len != SHA1_HEX_LEN)
        return false;
    for (size_t i = 0; i < SHA1_HEX_LEN; i++) {
        char ch = a->ptr[i];
        if (ch >= 'A' && ch <= 'F')
            ch = (char)(ch + 32);
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return false;
        out[i] = ch;
    }
    out[SHA1_HEX_LEN] = '\0';
    return true;
}

void script_eval(struct conn *c, int argc, const struct resp_arg *argv, bool by_sha,
                 bool read_only)
{
    int64_t numkeys;
    if (!rs_arg_i64(c, &argv[2], &numkeys))
        return;
    if (numkeys > argc - 3) {
        rs_error(c, "ERR Number of keys can't be greater than number of args");
        return;
    }
    if (numkeys < 0) {
        rs_error(c, "ERR Number of keys can't be negative");
        return;
    }
    char sha[SHA1_HEX_LEN + 1];
    if (by_sha) {
        if (!digest_arg(&argv[1], sha)) {
            rs_error(c, ERR_NOSCRIPT);
            return;
        }
    } else {
        sha1_hex(sha, argv[1].ptr, argv[1].len);
    }
    lua_State *L = engine();
    if (L == NULL) {
        rs_error(c, RS_ERR_OOM);
        return;
    }
    int flags;
    if (!find_function(c, L, sha, by_sha ? NULL : argv[1].ptr, argv[1].len, &flags)) {
        lua_settop(L, 0);
        return;
    }
    if (read_only && (flags & SCRIPT_SHEBANG) && !(flags & SCRIPT_NO_WRITES)) {
        lua_settop(L, 0);
        rs_error(c, "ERR Can not execute a script with write flag using *_ro command.");
        return;
    }
    int nk = (int)numkeys;
    run_function(c, L, sha, read_only || (flags & SCRIPT_NO_WRITES), &argv[3], nk,
                 &argv[3 + nk], argc - 3 - nk);
}

void script_load(struct conn *c, const struct resp_arg *body)
{
    char sha[SHA1_HEX_LEN + 1];
    sha1_hex(sha, body->ptr, body->len);
    lua_State *L = engine();
    if (L == NULL) {
        rs_error(c, RS_ERR_OOM);
        return;
    }
    int flags;
    bool ok = find_function(c, L, sha, body->ptr, body->len, &flags);
    lua_settop(L, 0);
    if (ok)
        rs_bulk(c, sha, SHA1_HEX_LEN);
}

void script_stop_all(void)
{
    __atomic_store_n(&stop_all, 1, __ATOMIC_RELAXED);
}

void script_kill(struct conn *c)
{
    int busy = 0, wrote = 0;
    uint64_t ids[64];
    int idx[64], n = 0;
    pthread_mutex_lock(&kill_lock);
    for (int i = 0; i < nslots; i++) {
        uint64_t id = __atomic_load_n(&slots[i].run_id, __ATOMIC_ACQUIRE);
        bool b = __atomic_load_n(&slots[i].busy, __ATOMIC_ACQUIRE) != 0;
        bool wr = __atomic_load_n(&slots[i].wrote, __ATOMIC_RELAXED) != 0;
        if (!b || __atomic_load_n(&slots[i].run_id, __ATOMIC_ACQUIRE) != id)
            continue;
        busy++;
        wrote += wr;
        if (n < 64) {
            ids[n] = id;
            idx[n++] = i;
        }
    }
    if (busy == 0) {
        rs_error(c, "NOTBUSY No scripts in execution right now.");
    } else if (wrote > 0) {
        rs_error(c, "UNKILLABLE Sorry the script already executed write commands against the "
                    "dataset. You can either wait the script termination or kill the server in "
                    "a hard way using the SHUTDOWN NOSAVE command.");
    } else {
        for (int k = 0; k < n; k++)
            __atomic_store_n(&slots[idx[k]].kill_id, ids[k], __ATOMIC_RELEASE);
        rs_ok(c);
    }
    pthread_mutex_unlock(&kill_lock);
}

unsigned script_get_busy_threshold(void)
{
    return __atomic_load_n(&busy_threshold, __ATOMIC_RELAXED);
}

void script_set_busy_threshold(unsigned ms)
{
    __atomic_store_n(&busy_threshold, ms, __ATOMIC_RELAXED);
}

int script_setup(int workers)
{
    if (!engine_key_made && pthread_key_create(&engine_key, engine_free) == 0)
        engine_key_made = true;
    free(slots);
    nslots = workers > 0 ? workers : 1;
    slots = calloc((size_t)nslots, sizeof(*slots));
    return slots != NULL ? 0 : -1;
}

void script_teardown(void)
{
    free(slots);
    slots = NULL;
    nslots = 0;
}
