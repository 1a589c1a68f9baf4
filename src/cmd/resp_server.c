/*
 * RESP connection and server commands: PING, ECHO, QUIT, SELECT, HELLO,
 * AUTH, CLIENT, CONFIG, INFO, DBSIZE, FLUSHDB/FLUSHALL, TIME (COMMAND is in
 * resp_command.c).
 *
 * kioku has one database (0), no persistence and no passwords, and its
 * settings are fixed at start-up; the replies say so in Redis's terms:
 * SELECT of another index is "DB index is out of range", CONFIG GET save
 * is "" and appendonly "no", and CONFIG SET succeeds only where it changes
 * nothing (a value equal to the current one), else it fails with Redis's
 * error texts. The exceptions are maxmemory, the eviction knobs
 * (maxmemory-policy and the LFU/sampling ones), requirepass and
 * proto-max-bulk-len, which CONFIG SET changes at run time. HELLO 3 switches the connection to RESP3 replies.
 *
 * The container commands (CLIENT, CONFIG, COMMAND) dispatch through small
 * sub-tables so that arity and unknown-subcommand errors read as Redis's
 * ("client|setname", "Try CLIENT HELP."). None of this is a hot path:
 * snprintf and a malloc per INFO are fine here.
 */
#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "auth/auth.h"
#include "cmd/resp_cmds.h"
#include "config/settings.h"
#include "core/signals.h"
#include "core/worker.h"
#include "script/script.h"
#include "script/script_cache.h"
#include "stats/stats.h"
#include "storage/coll.h"
#include "storage/evict.h"
#include "storage/item.h"
#include "storage/storage.h"
#include "util/clock.h"
#include "util/glob.h"
#include "util/log.h"

/* ---- sub-command tables ---- */

void resp_run_sub(struct conn *c, const struct resp_call *call, const struct resp_sub *subs,
                  size_t n, const char *upper)
{
    const struct resp_arg *a = &call->argv[1];
    for (size_t i = 0; i < n; i++) {
        if (!rs_arg_is(a, subs[i].name))
            continue;
        int ar = subs[i].arity;
        if ((ar > 0 && call->argc != ar) || (ar < 0 && call->argc < -ar))
            rs_errorf(c, "ERR wrong number of arguments for '%s|%s' command", call->cmd->name,
                      subs[i].name);
        else
            subs[i].fn(c, call);
        return;
    }
    size_t len = strnlen(a->ptr, a->len);
    rs_errorf(c, "ERR unknown subcommand '%.*s'. Try %s HELP.", (int)(len < 128 ? len : 128),
              a->ptr, upper);
}

void resp_reply_help(struct conn *c, const char *const *lines)
{
    size_t n = 0;
    while (lines[n] != NULL)
        n++;
    rs_array(c, n);
    for (size_t i = 0; i < n; i++)
        rs_simple(c, lines[i]);
}

/* ---- connection ---- */

enum proc_result resp_cmd_ping(struct conn *c, const struct resp_call *call)
{
    if (call->argc > 2)
        rs_errorf(c, "ERR wrong number of arguments for '%s' command", call->cmd->name);
    else if (call->argc == 2)
        rs_bulk(c, call->argv[1].ptr, call->argv[1].len);
    else
        CONN_OUT_LIT(c, "+PONG\r\n");
    return PROC_MORE;
}

enum proc_result resp_cmd_echo(struct conn *c, const struct resp_call *call)
{
    rs_bulk(c, call->argv[1].ptr, call->argv[1].len);
    return PROC_MORE;
}

enum proc_result resp_cmd_quit(struct conn *c, const struct resp_call *call)
{
    (void)call;
    rs_ok(c);
    return PROC_CLOSE;
}

enum proc_result resp_cmd_select(struct conn *c, const struct resp_call *call)
{
    int64_t db;
    if (!rs_arg_i64(c, &call->argv[1], &db))
        return PROC_MORE;
    if (db != 0)
        rs_error(c, "ERR DB index is out of range");
    else
        rs_ok(c);
    return PROC_MORE;
}

/*
 * Check a password (auth/auth.h has the rules for the "default" user; user
 * NULL is AUTH's one-argument form). On success the connection is
 * authenticated; on failure it keeps what it had, as in Redis, and the
 * error is queued. Attempts count in memcached's auth_cmds/auth_errors.
 */
static bool auth_ok(struct conn *c, const struct resp_arg *user, const struct resp_arg *pass)
{
    enum auth_result r = auth_resp_check(user ? user->ptr : NULL, user ? user->len : 0,
                                         pass->ptr, pass->len);
    if (r == AUTH_NOPASS) {
        rs_error(c, "ERR AUTH <password> called without any password configured for the "
                    "default user. Are you sure your configuration is correct?");
        return false;
    }
    STAT_INC(c->stats, auth_cmds);
    if (r == AUTH_OK) {
        resp_set_authed(c);
        return true;
    }
    STAT_INC(c->stats, auth_errors);
    rs_error(c, "WRONGPASS invalid username-password pair or user is disabled.");
    return false;
}

enum proc_result resp_cmd_auth(struct conn *c, const struct resp_call *call)
{
    if (call->argc > 3)
        rs_error(c, RS_ERR_SYNTAX);
    else if (auth_ok(c, call->argc == 3 ? &call->argv[1] : NULL, &call->argv[call->argc - 1]))
        rs_ok(c);
    return PROC_MORE;
}

/* Redis's rule for client names: printable ASCII without blanks. */
static bool set_name(struct conn *c, const struct resp_arg *name)
{
    for (size_t i = 0; i < name->len; i++) {
        if (name->ptr[i] < '!' || name->ptr[i] > '~') {
            rs_error(c, "ERR Client names cannot contain spaces, newlines or special characters.");
            return false;
        }
    }
    if (name->len >= sizeof(c->name)) {
        rs_errorf(c, "ERR client name too long: kioku keeps at most %zu bytes",
                  sizeof(c->name) - 1);
        return false;
    }
    /* CLIENT LIST of other connections reads names under this lock. */
    pthread_mutex_lock(&c->worker->conns_lock);
    memcpy(c->name, name->ptr, name->len);
    c->name[name->len] = '\0';
    pthread_mutex_unlock(&c->worker->conns_lock);
    return true;
}

enum proc_result resp_cmd_hello(struct conn *c, const struct resp_call *call)
{
    int64_t ver = resp_proto_version(c);
    int j = 1;
    if (call->argc >= 2) {
        if (!rs_parse_i64(call->argv[1].ptr, call->argv[1].len, &ver)) {
            rs_error(c, "ERR Protocol version is not an integer or out of range");
            return PROC_MORE;
        }
        if (ver < 2 || ver > 3) {
            rs_error(c, "NOPROTO unsupported protocol version");
            return PROC_MORE;
        }
        j = 2;
    }
    const struct resp_arg *user = NULL, *pass = NULL, *name = NULL;
    for (; j < call->argc; j++) {
        int more = call->argc - 1 - j;
        const struct resp_arg *a = &call->argv[j];
        if (rs_arg_is(a, "auth") && more >= 2) {
            user = &call->argv[j + 1];
            pass = &call->argv[j + 2];
            j += 2;
        } else if (rs_arg_is(a, "setname") && more >= 1) {
            name = &call->argv[++j];
        } else {
            rs_errorf(c, "ERR Syntax error in HELLO option '%.*s'", (int)strnlen(a->ptr, a->len),
                      a->ptr);
            return PROC_MORE;
        }
    }
    if (user != NULL && !auth_ok(c, user, pass))
        return PROC_MORE;
    if (!resp_authed(c)) {
        rs_error(c, "NOAUTH HELLO must be called with the client already authenticated, "
                    "otherwise the HELLO AUTH <user> <pass> option can be used to "
                    "authenticate the client and select the RESP protocol version at the "
                    "same time");
        return PROC_MORE;
    }
    if (name != NULL && !set_name(c, name))
        return PROC_MORE;
    resp_set_proto_version(c, (int)ver);
    rs_map(c, 7);
    rs_bulk_str(c, "server");
    rs_bulk_str(c, "redis");
    rs_bulk_str(c, "version");
    rs_bulk_str(c, RESP_REDIS_VERSION);
    rs_bulk_str(c, "proto");
    rs_int(c, ver);
    rs_bulk_str(c, "id");
    rs_int(c, (int64_t)c->id);
    rs_bulk_str(c, "mode");
    rs_bulk_str(c, "standalone");
    rs_bulk_str(c, "role");
    rs_bulk_str(c, "master");
    rs_bulk_str(c, "modules");
    rs_array(c, 0);
    return PROC_MORE;
}

/* ---- CLIENT ---- */

/* The connection's own address, "ip:port" as CLIENT LIST shows it. */
static void local_name(const struct conn *o, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    snprintf(buf, len, "?");
    if (getsockname(o->fd, (struct sockaddr *)&ss, &sl) == 0) {
        struct conn tmp;
        memset(&tmp, 0, sizeof(tmp));
        memcpy(&tmp.peer, &ss, sl);
        tmp.peer_len = sl;
        conn_peer_name(&tmp, buf, len);
    }
}

/* One CLIENT LIST line for o. The calling connection (self) shows the
 * CLIENT subcommand it runs and its query buffer; of another connection,
 * whose buffers its own thread owns, the command is NULL and the buffer 0.
 * The caller holds o's worker's conns_lock when o is not self. */
static int client_line(char *buf, size_t cap, const struct conn *o, const struct conn *self,
                       const struct resp_call *call)
{
    char addr[96], laddr[96], cmd[32] = "NULL";
    conn_peer_name(o, addr, sizeof(addr));
    local_name(o, laddr, sizeof(laddr));
    if (o == self) {
        const struct resp_arg *sub = &call->argv[1];
        size_t n = sub->len < 16 ? sub->len : 16;
        memcpy(cmd, "client|", 7);
        for (size_t i = 0; i < n; i++)
            cmd[7 + i] = (char)tolower((unsigned char)sub->ptr[i]);
        cmd[7 + n] = '\0';
    }
    int64_t last = __atomic_load_n(&o->last_cmd, __ATOMIC_RELAXED);
    int64_t now = self->now;
    return snprintf(buf, cap,
                    "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=N db=0 "
                    "sub=0 psub=0 ssub=0 multi=-1 qbuf=%zu qbuf-free=0 argv-mem=0 multi-mem=0 "
                    "rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=%s user=default "
                    "redir=-1 resp=%d\n",
                    (unsigned long long)o->id, addr, laddr, o->fd, o->name,
                    (long long)((now - o->created) / 1000),
                    (long long)(now > last ? (now - last) / 1000 : 0),
                    o == self ? conn_rlen(self) : (size_t)0, cmd,
                    o == self ? resp_proto_version(self) : 2);
}

/* CLIENT LIST [TYPE normal|master|replica|slave|pubsub] [ID id ...]: kioku's
 * clients are all normal ones. */
static void client_list(struct conn *c, const struct resp_call *call)
{
    bool none = false;
    int ids = 0;   /* argv index of the first ID, 0 for all */
    if (call->argc == 4 && rs_arg_is(&call->argv[2], "type")) {
        const struct resp_arg *t = &call->argv[3];
        if (!rs_arg_is(t, "normal") && !rs_arg_is(t, "master") && !rs_arg_is(t, "replica") &&
            !rs_arg_is(t, "slave") && !rs_arg_is(t, "pubsub")) {
            size_t tl = strnlen(t->ptr, t->len);
            rs_errorf(c, "ERR Unknown client type '%.*s'", (int)(tl < 128 ? tl : 128), t->ptr);
            return;
        }
        none = !rs_arg_is(t, "normal");
    } else if (call->argc > 3 && rs_arg_is(&call->argv[2], "id")) {
        ids = 3;
        for (int j = ids; j < call->argc; j++) {
            int64_t id;
            if (!rs_parse_i64(call->argv[j].ptr, call->argv[j].len, &id)) {
                rs_error(c, "ERR Invalid client ID");
                return;
            }
        }
    } else if (call->argc != 2) {
        rs_error(c, RS_ERR_SYNTAX);
        return;
    }
    size_t len = 0, cap = 4096;
    char *out = malloc(cap);
    /* With IDs, each listed once, in the order asked. */
    for (int j = ids > 0 ? ids : call->argc - 1; j < call->argc && out != NULL && !none; j++) {
        int64_t want = 0;
        if (ids > 0)
            rs_parse_i64(call->argv[j].ptr, call->argv[j].len, &want);
        for (int i = 0; i < worker_count() && out != NULL; i++) {
            struct worker *w = worker_get(i);
            pthread_mutex_lock(&w->conns_lock);
            for (struct conn *o = w->conns; o != NULL && out != NULL; o = o->next) {
                if (ids > 0 && (int64_t)o->id != want)
                    continue;
                if (cap - len < 1024) {
                    char *p = realloc(out, cap * 2);
                    if (p == NULL) {
                        free(out);
                        out = NULL;
                        break;
                    }
                    out = p;
                    cap *= 2;
                }
                len += (size_t)client_line(out + len, cap - len, o, c, call);
            }
            pthread_mutex_unlock(&w->conns_lock);
        }
    }
    if (out == NULL && !none)
        rs_error(c, RS_ERR_OOM);
    else
        rs_verbatim(c, out, len);
    free(out);
}

static bool arg_eq(const struct resp_arg *a, const char *s)
{
    return a->len == strlen(s) && memcmp(a->ptr, s, a->len) == 0;
}

/*
 * CLIENT KILL ip:port, or CLIENT KILL [ID id] [TYPE type] [USER name]
 * [ADDR ip:port] [LADDR ip:port] [SKIPME yes|no]: marks every connection
 * that matches all filters (by default not the caller) and has its worker
 * close it; the caller, when it matches, closes after this reply.
 */
static void client_kill(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *addr = NULL, *laddr = NULL;
    int64_t id = 0;
    bool skipme = true, typed_none = false;

    if (call->argc == 3) {
        addr = &call->argv[2];
        skipme = false;
    } else if (call->argc % 2 != 0) {
        rs_error(c, RS_ERR_SYNTAX);
        return;
    }
    for (int i = 2; call->argc > 3 && i < call->argc; i += 2) {
        const struct resp_arg *k = &call->argv[i], *v = &call->argv[i + 1];
        size_t vl = strnlen(v->ptr, v->len);
        if (rs_arg_is(k, "id")) {
            if (!rs_parse_i64(v->ptr, v->len, &id) || id < 1) {
                rs_error(c, "ERR client-id should be greater than 0");
                return;
            }
        } else if (rs_arg_is(k, "type")) {
            if (!rs_arg_is(v, "normal") && !rs_arg_is(v, "master") && !rs_arg_is(v, "replica") &&
                !rs_arg_is(v, "slave") && !rs_arg_is(v, "pubsub")) {
                rs_errorf(c, "ERR Unknown client type '%.*s'", (int)(vl < 128 ? vl : 128), v->ptr);
                return;
            }
            typed_none = !rs_arg_is(v, "normal");
        } else if (rs_arg_is(k, "user")) {
            if (!arg_eq(v, "default")) {
                rs_errorf(c, "ERR No such user '%.*s'", (int)(vl < 128 ? vl : 128), v->ptr);
                return;
            }
        } else if (rs_arg_is(k, "addr")) {
            addr = v;
        } else if (rs_arg_is(k, "laddr")) {
            laddr = v;
        } else if (rs_arg_is(k, "skipme")) {
            if (rs_arg_is(v, "yes") || rs_arg_is(v, "no")) {
                skipme = rs_arg_is(v, "yes");
            } else {
                rs_error(c, RS_ERR_SYNTAX);
                return;
            }
        } else {
            rs_error(c, RS_ERR_SYNTAX);
            return;
        }
    }
    int64_t killed = 0;
    bool me = false;
    for (int i = 0; i < worker_count() && !typed_none; i++) {
        struct worker *w = worker_get(i);
        int64_t marked = 0;
        pthread_mutex_lock(&w->conns_lock);
        for (struct conn *o = w->conns; o != NULL; o = o->next) {
            char name[96];
            if (id != 0 && (int64_t)o->id != id)
                continue;
            if (addr != NULL && (conn_peer_name(o, name, sizeof(name)), !arg_eq(addr, name)))
                continue;
            if (laddr != NULL && (local_name(o, name, sizeof(name)), !arg_eq(laddr, name)))
                continue;
            if (o == c && skipme)
                continue;
            killed++;
            if (o == c) {
                me = true;
            } else {
                o->kill_asked = true;
                marked++;
            }
        }
        pthread_mutex_unlock(&w->conns_lock);
        if (marked > 0)
            worker_kill_marked(w);
    }
    if (call->argc == 3 && killed == 0)
        rs_error(c, "ERR No such client");
    else if (call->argc == 3)
        rs_ok(c);
    else
        rs_int(c, killed);
    if (me)
        c->close_after_write = true;
}

static void client_info(struct conn *c, const struct resp_call *call)
{
    char line[1024];
    pthread_mutex_lock(&c->worker->conns_lock);
    int n = client_line(line, sizeof(line), c, c, call);
    pthread_mutex_unlock(&c->worker->conns_lock);
    rs_verbatim(c, line, (size_t)n);
}

static void client_setname(struct conn *c, const struct resp_call *call)
{
    if (set_name(c, &call->argv[2]))
        rs_ok(c);
}

static void client_getname(struct conn *c, const struct resp_call *call)
{
    (void)call;
    if (c->name[0] == '\0')
        rs_null(c);
    else
        rs_bulk_str(c, c->name);
}

static void client_id(struct conn *c, const struct resp_call *call)
{
    (void)call;
    rs_int(c, (int64_t)c->id);
}

static void client_setinfo(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *attr = &call->argv[2];
    if (rs_arg_is(attr, "lib-name") || rs_arg_is(attr, "lib-ver"))
        rs_ok(c);
    else
        rs_errorf(c, "ERR Unrecognized option '%.*s'", (int)strnlen(attr->ptr, attr->len),
                  attr->ptr);
}

/* CLIENT REPLY ON|OFF|SKIP: only ON is answered. */
static void client_reply(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *a = &call->argv[2];
    if (a->len == 2 && strncasecmp(a->ptr, "on", 2) == 0) {
        resp_set_reply_mode(c, RESP_REPLY_ON);
        rs_ok(c);
    } else if (a->len == 3 && strncasecmp(a->ptr, "off", 3) == 0) {
        resp_set_reply_mode(c, RESP_REPLY_OFF);
    } else if (a->len == 4 && strncasecmp(a->ptr, "skip", 4) == 0) {
        resp_set_reply_mode(c, RESP_REPLY_SKIP);
    } else {
        rs_error(c, "ERR syntax error");
    }
}

static void client_help(struct conn *c, const struct resp_call *call)
{
    static const char *const lines[] = {
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GETNAME", "    Return the name of the current connection.",
        "ID", "    Return the ID of the current connection.",
        "INFO", "    Return information about the current client connection.",
        "KILL <ip:port>", "    Kill connection made from <ip:port>.",
        "KILL <option> <value> [<option> <value> [...]]",
        "    Kill connections. Options are:",
        "    * ADDR (<ip:port>|<unixsocket>:0)", "      Kill connections made from the specified address",
        "    * LADDR (<ip:port>|<unixsocket>:0)", "      Kill connections made to specified local address",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)", "      Kill connections by type.",
        "    * USER <username>", "      Kill connections authenticated by <username>.",
        "    * SKIPME (YES|NO)", "      Skip killing current connection (default: yes).",
        "    * ID <client-id>", "      Kill connections by client id.",
        "LIST [TYPE normal|master|replica|pubsub] [ID <id> [<id> ...]]",
        "    Return information about client connections.",
        "REPLY (ON|OFF|SKIP)", "    Control the replies sent to the current connection.",
        "SETNAME <name>", "    Assign the name <name> to the current connection.",
        "HELP", "    Print this help.", NULL,
    };
    (void)call;
    resp_reply_help(c, lines);
}

static const struct resp_sub client_subs[] = {
    {"setname", 3, client_setname}, {"getname", 2, client_getname}, {"id", 2, client_id},
    {"list", -2, client_list}, {"info", 2, client_info}, {"kill", -3, client_kill},
    {"setinfo", 4, client_setinfo}, {"reply", 3, client_reply},
    {"help", 2, client_help},
};

enum proc_result resp_cmd_client(struct conn *c, const struct resp_call *call)
{
    resp_run_sub(c, call, client_subs, sizeof(client_subs) / sizeof(client_subs[0]), "CLIENT");
    return PROC_MORE;
}

/* ---- CONFIG ---- */

/*
 * Two kinds of parameter. Most are fixed at start-up: CONFIG GET shows them
 * and CONFIG SET succeeds only with the current value. The eviction knobs
 * (evict.h), maxmemory (storage_set_mem_limit), requirepass and
 * proto-max-bulk-len change at run time, validated with Redis's rules and
 * error texts. CONFIG SET with several pairs is all or nothing, as in Redis 7:
 * every name is resolved, then every value validated, then all are applied.
 */

/* CFG_SIZE and CFG_MEMSIZE: a listpack threshold (coll_limit), 0 to
 * LONG_MAX, the latter also in Redis's memory units. CFG_BULK:
 * proto-max-bulk-len. CFG_MEMORY: maxmemory. */
enum config_kind { CFG_FIXED, CFG_POLICY, CFG_UINT, CFG_PASS, CFG_BULK, CFG_SIZE, CFG_MEMSIZE, CFG_MEMORY };

struct config_param {
    const char *name;
    enum config_kind kind;
    long long lo;                 /* CFG_UINT: Redis's range is [lo, INT_MAX] */
    void (*set)(unsigned v);      /* CFG_POLICY, CFG_UINT */
    int limit;                    /* CFG_SIZE, CFG_MEMSIZE: enum coll_limit */
    char value[1100];             /* as CONFIG GET shows it */
};

static void set_policy(unsigned v)
{
    evict_set_policy((enum evict_policy)v);
}

/* Redis 7's list, in its order; kioku's allkeys-s3fifo is accepted too, but
 * the error text stays byte for byte Redis's for clients that match on it. */
/* The smallest CONFIG SET maxmemory: memcached's cache_memlimit floor. */
#define RESP_MAXMEMORY_MIN ((size_t)8 * 1024 * 1024)

#define REDIS_POLICIES "volatile-lru, volatile-lfu, volatile-random, volatile-ttl, " \
                       "allkeys-lru, allkeys-lfu, allkeys-random, noeviction"

/* Redis's names for kioku's settings; values as CONFIG GET shows them. */
static size_t config_params(struct config_param *p, size_t cap)
{
    const struct settings *s = resp_settings();
    size_t n = 0;
#define PARAM_OF(nm, k, l, fn, ...) \
    do { if (n < cap) { p[n].name = nm; p[n].kind = k; p[n].lo = l; p[n].set = fn; p[n].limit = -1; \
                        snprintf(p[n].value, sizeof(p[n].value), __VA_ARGS__); n++; } } while (0)
#define PARAM(nm, ...) PARAM_OF(nm, CFG_FIXED, 0, NULL, __VA_ARGS__)
    PARAM_OF("maxmemory", CFG_MEMORY, 0, NULL, "%zu", storage_mem_limit());
    PARAM_OF("maxmemory-policy", CFG_POLICY, 0, set_policy, "%s",
             evict_policy_name(evict_get_policy()));
    PARAM_OF("lfu-log-factor", CFG_UINT, 0, evict_set_lfu_log_factor, "%u",
             evict_get_lfu_log_factor());
    PARAM_OF("lfu-decay-time", CFG_UINT, 0, evict_set_lfu_decay_time, "%u",
             evict_get_lfu_decay_time());
    PARAM_OF("maxmemory-samples", CFG_UINT, 1, evict_set_samples, "%u", evict_get_samples());
    /* The listpack thresholds (issue 11), each under both of Redis's names. */
    static const struct { const char *name; enum coll_limit l; } lims[] = {
        {"hash-max-listpack-entries", COLL_HASH_ENTRIES}, {"hash-max-ziplist-entries", COLL_HASH_ENTRIES},
        {"hash-max-listpack-value", COLL_HASH_VALUE}, {"hash-max-ziplist-value", COLL_HASH_VALUE},
        {"zset-max-listpack-entries", COLL_ZSET_ENTRIES}, {"zset-max-ziplist-entries", COLL_ZSET_ENTRIES},
        {"zset-max-listpack-value", COLL_ZSET_VALUE}, {"zset-max-ziplist-value", COLL_ZSET_VALUE},
    };
    for (size_t i = 0; i < sizeof(lims) / sizeof(lims[0]); i++) {
        bool mem = lims[i].l == COLL_HASH_VALUE || lims[i].l == COLL_ZSET_VALUE;
        PARAM_OF(lims[i].name, mem ? CFG_MEMSIZE : CFG_SIZE, 0, NULL, "%llu",
                 (unsigned long long)coll_limit(lims[i].l));
        if (n > 0 && strcmp(p[n - 1].name, lims[i].name) == 0)
            p[n - 1].limit = (int)lims[i].l;
    }
    PARAM("save", "%s", "");
    PARAM("appendonly", "%s", "no");
    PARAM("databases", "%s", "1");
    PARAM("port", "%d", s->port);
    PARAM("bind", "%s", s->listen);
    PARAM("timeout", "%d", s->idle_timeout);
    PARAM("maxclients", "%d", s->max_conns);
    /* -o max_output_buffer is a hard limit for every client; no soft one */
    PARAM("client-output-buffer-limit", "normal %zu 0 0 slave 0 0 0 pubsub 0 0 0", s->max_output);
    PARAM_OF("proto-max-bulk-len", CFG_BULK, 0, NULL, "%zu", resp_max_bulk());
    PARAM("io-threads", "%d", s->threads);
    PARAM("tcp-backlog", "%d", s->backlog);
    PARAM("daemonize", "%s", s->daemonize ? "yes" : "no");
    PARAM("pidfile", "%s", s->pid_file);
    PARAM("unixsocket", "%s", s->socket_path);
    PARAM("cluster-enabled", "%s", "no");
    PARAM_OF("busy-reply-threshold", CFG_UINT, 0, script_set_busy_threshold, "%u",
             script_get_busy_threshold());
    PARAM_OF("lua-time-limit", CFG_UINT, 0, script_set_busy_threshold, "%u",
             script_get_busy_threshold());
    char pass[AUTH_FIELD_MAX + 1];
    auth_get_requirepass(pass, sizeof(pass));
    PARAM_OF("requirepass", CFG_PASS, 0, NULL, "%s", pass);   /* shown, as Redis does */
    memset(pass, 0, sizeof(pass));
#undef PARAM
#undef PARAM_OF
    for (size_t i = 0; i < n; i++)   /* -l is comma-separated, bind is blank-separated */
        if (strcmp(p[i].name, "bind") == 0)
            for (char *q = p[i].value; *q != '\0'; q++)
                if (*q == ',')
                    *q = ' ';
    return n;
}

#define MAX_PARAMS 48

static void config_get(struct conn *c, const struct resp_call *call)
{
    static __thread struct config_param p[MAX_PARAMS];
    size_t n = config_params(p, MAX_PARAMS), hits = 0;
    bool match[MAX_PARAMS] = {false};
    for (size_t i = 0; i < n; i++) {
        for (int j = 2; j < call->argc && !match[i]; j++)
            match[i] = glob_match(call->argv[j].ptr, call->argv[j].len, p[i].name,
                                  strlen(p[i].name), true);
        hits += match[i];
    }
    rs_map(c, hits);
    for (size_t i = 0; i < n; i++) {
        if (match[i]) {
            rs_bulk_str(c, p[i].name);
            rs_bulk_str(c, p[i].value);
        }
    }
}

/* A fixed parameter accepts its current value; maxmemory also in Redis's
 * units ("64mb"), so a client that sets what it read back succeeds. */
static bool config_fixed_equal(const struct config_param *p, const struct resp_arg *val)
{
    if (val->len == strlen(p->value) && strncasecmp(val->ptr, p->value, val->len) == 0)
        return true;
    if (strcmp(p->name, "maxmemory") != 0 || val->len >= 32)
        return false;
    char buf[32];
    size_t bytes;
    memcpy(buf, val->ptr, val->len);
    buf[val->len] = '\0';
    return strlen(buf) == val->len && settings_parse_redis_size(buf, &bytes) == 0 &&
           bytes == storage_mem_limit();
}

/* A memory value as Redis's CONFIG SET reads one ("512mb", "1gb", bytes). */
static bool config_memory(const struct resp_arg *val, size_t *out)
{
    char buf[32];
    if (val->len >= sizeof(buf))
        return false;
    memcpy(buf, val->ptr, val->len);
    buf[val->len] = '\0';
    return strlen(buf) == val->len && settings_parse_redis_size(buf, out) == 0;
}

/* Validate val for p: 0 and the value to apply in *out (*big for a size),
 * or -1 after replying with Redis's error. */
static int config_check(struct conn *c, const struct config_param *p,
                        const struct resp_arg *val, unsigned long long *out)
{
    long long v;
    switch (p->kind) {
    case CFG_SIZE:
    case CFG_MEMSIZE: {
        char buf[32];
        size_t bytes;
        bool ok = false;
        if (p->kind == CFG_MEMSIZE && val->len < sizeof(buf)) {
            memcpy(buf, val->ptr, val->len);
            buf[val->len] = '\0';
            ok = strlen(buf) == val->len && settings_parse_redis_size(buf, &bytes) == 0;
            v = ok && bytes <= (size_t)LLONG_MAX ? (long long)bytes : -1;
        }
        if (!ok && settings_parse_ll(val->ptr, val->len, &v) != 0) {
            rs_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - "
                         "argument couldn't be parsed into an integer", p->name);
            return -1;
        }
        if (v < 0 || (unsigned long long)v > (unsigned long long)LONG_MAX) {
            rs_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - "
                         "argument must be between 0 and %ld inclusive", p->name, LONG_MAX);
            return -1;
        }
        *out = (unsigned long long)v;
        return 0;
    }
    case CFG_BULK: {
        size_t big;
        if (!config_memory(val, &big)) {
            rs_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - "
                         "argument must be a memory value", p->name);
            return -1;
        }
        if (big < SETTINGS_BULK_MIN || big > (size_t)LLONG_MAX) {
            rs_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - "
                         "argument must be between %zu and %lld inclusive", p->name,
                      SETTINGS_BULK_MIN, LLONG_MAX);
            return -1;
        }
        *out = big;
        return 0;
    }
    case CFG_MEMORY: {
        /* Redis's units; kioku's floor is memcached's cache_memlimit one
         * (Redis's 0, "no limit", has no meaning for a slab cache). */
        size_t big;
        if (!config_memory(val, &big)) {
            rs_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - "
                         "argument must be a memory value", p->name);
            return -1;
        }
        if (big < RESP_MAXMEMORY_MIN) {
            rs_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - "
                         "kioku's maxmemory must be at least 8mb", p->name);
            return -1;
        }
        *out = big;
        return 0;
    }
    case CFG_FIXED:
        if (config_fixed_equal(p, val))
            return 0;
        rs_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - "
                     "kioku settings are fixed at start-up", p->name);
        return -1;
    case CFG_POLICY: {
        char buf[32];
        enum evict_policy pol;
        if (val->len < sizeof(buf)) {
            memcpy(buf, val->ptr, val->len);
            buf[val->len] = '\0';
            if (strlen(buf) == val->len && evict_policy_parse(buf, &pol) == 0) {
                *out = (unsigned)pol;
                return 0;
            }
        }
        rs_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - "
                     "argument(s) must be one of the following: " REDIS_POLICIES, p->name);
        return -1;
    }
    case CFG_UINT:
        if (settings_parse_ll(val->ptr, val->len, &v) != 0) {
            rs_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - "
                         "argument couldn't be parsed into an integer", p->name);
            return -1;
        }
        if (v < p->lo || v > INT_MAX) {
            rs_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - "
                         "argument must be between %lld and %d inclusive", p->name, p->lo,
                      INT_MAX);
            return -1;
        }
        *out = (unsigned)v;
        return 0;
    case CFG_PASS:
        if (val->len <= AUTH_FIELD_MAX)
            return 0;
        rs_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - "
                     "kioku passwords are at most %d bytes", p->name, AUTH_FIELD_MAX);
        return -1;
    }
    return -1;
}

static void config_set(struct conn *c, const struct resp_call *call)
{
    static __thread struct config_param p[MAX_PARAMS];
    size_t n = config_params(p, MAX_PARAMS);
    if (call->argc % 2 != 0) {
        rs_error(c, "ERR syntax error");
        return;
    }
    int npairs = (call->argc - 2) / 2;
    size_t which[MAX_PARAMS];
    unsigned long long values[MAX_PARAMS];
    bool seen[MAX_PARAMS] = {false};
    for (int k = 0; k < npairs; k++) {   /* names: unknown, then duplicate */
        const struct resp_arg *name = &call->argv[2 + 2 * k];
        size_t i = 0;
        while (i < n && !rs_arg_is(name, p[i].name))
            i++;
        if (i == n) {
            rs_errorf(c, "ERR Unknown option or number of arguments for CONFIG SET - '%.*s'",
                      (int)strnlen(name->ptr, name->len), name->ptr);
            return;
        }
        if (seen[i]) {
            rs_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - "
                         "duplicate parameter", p[i].name);
            return;
        }
        seen[i] = true;
        which[k] = i;   /* k < n: every name is distinct */
    }
    for (int k = 0; k < npairs; k++)     /* values */
        if (config_check(c, &p[which[k]], &call->argv[3 + 2 * k], &values[k]) != 0)
            return;
    /* maxmemory first: the only change that can still be refused (with -e
     * or -L, or past the address space reserved at start-up), and then
     * nothing is applied. */
    for (int k = 0; k < npairs; k++) {
        if (p[which[k]].kind == CFG_MEMORY && storage_set_mem_limit((size_t)values[k]) != 0) {
            rs_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - "
                         "kioku cannot change maxmemory with -e or -L, or beyond the "
                         "address space reserved at start-up", p[which[k]].name);
            return;
        }
    }
    for (int k = 0; k < npairs; k++) {   /* apply */
        const struct resp_arg *val = &call->argv[3 + 2 * k];
        if (p[which[k]].kind == CFG_PASS)
            auth_set_requirepass(val->ptr, val->len);   /* checked: fits */
        else if (p[which[k]].kind == CFG_BULK)
            resp_set_max_bulk((size_t)values[k]);
        else if (p[which[k]].limit >= 0)
            coll_limit_set((enum coll_limit)p[which[k]].limit, values[k]);
        else if (p[which[k]].set != NULL)
            p[which[k]].set((unsigned)values[k]);
    }
    rs_ok(c);
}

static void config_resetstat(struct conn *c, const struct resp_call *call)
{
    (void)call;
    stats_reset();
    resp_cmdstat_reset();
    rs_ok(c);
}

static void config_rewrite(struct conn *c, const struct resp_call *call)
{
    (void)call;
    rs_error(c, "ERR The server is running without a config file");
}

static void config_help(struct conn *c, const struct resp_call *call)
{
    static const char *const lines[] = {
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <directive> <value>",
        "    Set maxmemory-policy, lfu-log-factor, lfu-decay-time, maxmemory-samples,",
        "    proto-max-bulk-len, requirepass or the hash-/zset-max-listpack-entries/-value",
        "    thresholds;",
        "    other settings are fixed at start-up and accept only their current value.",
        "RESETSTAT", "    Reset statistics reported by the INFO command.",
        "HELP", "    Print this help.", NULL,
    };
    (void)call;
    resp_reply_help(c, lines);
}

static const struct resp_sub config_subs[] = {
    {"get", -3, config_get}, {"set", -4, config_set}, {"resetstat", 2, config_resetstat},
    {"rewrite", 2, config_rewrite}, {"help", 2, config_help},
};

enum proc_result resp_cmd_config(struct conn *c, const struct resp_call *call)
{
    resp_run_sub(c, call, config_subs, sizeof(config_subs) / sizeof(config_subs[0]), "CONFIG");
    return PROC_MORE;
}

/* ---- FUNCTION: kioku runs no scripts, so it never holds a library ---- */

/* FUNCTION FLUSH [ASYNC|SYNC]: there is nothing to remove, so it succeeds
 * with Redis 7's argument checks (its test suite flushes before each file). */
static void function_flush(struct conn *c, const struct resp_call *call)
{
    if (call->argc > 3) {
        rs_errorf(c, "ERR unknown subcommand or wrong number of arguments for '%.*s'. "
                     "Try FUNCTION HELP.", (int)(call->argv[1].len < 128 ? call->argv[1].len : 128),
                  call->argv[1].ptr);
        return;
    }
    if (call->argc == 3 && !rs_arg_is(&call->argv[2], "sync") &&
        !rs_arg_is(&call->argv[2], "async")) {
        rs_error(c, "ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
        return;
    }
    rs_ok(c);
}

/* FUNCTION LIST [...]: no libraries. */
static void function_list(struct conn *c, const struct resp_call *call)
{
    (void)call;
    rs_array(c, 0);
}

static void function_help(struct conn *c, const struct resp_call *call)
{
    static const char *const lines[] = {
        "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "FLUSH [ASYNC|SYNC]", "    Delete all the libraries: kioku has none, so this does nothing.",
        "LIST", "    Return an empty list: kioku does not run functions.",
        "HELP", "    Print this help.", NULL,
    };
    (void)call;
    resp_reply_help(c, lines);
}

static const struct resp_sub function_subs[] = {
    {"flush", -2, function_flush}, {"list", -2, function_list}, {"help", 2, function_help},
};

enum proc_result resp_cmd_function(struct conn *c, const struct resp_call *call)
{
    resp_run_sub(c, call, function_subs, sizeof(function_subs) / sizeof(function_subs[0]),
            "FUNCTION");
    return PROC_MORE;
}

/* ---- INFO ---- */

struct text {
    char *p;
    size_t len, cap;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_add(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = t->p != NULL ? vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        char *q = realloc(t->p, cap);
        if (q == NULL)
            return;
        t->p = q;
        t->cap = cap;
    }
}

static void human(char *buf, size_t cap, uint64_t bytes)
{
    static const char units[] = "BKMGT";
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%lluB", (unsigned long long)bytes);
    else
        snprintf(buf, cap, "%.2f%c", v, units[u]);
}

static void info_server(struct text *t, const struct conn *c)
{
    const struct settings *s = resp_settings();
    int64_t up = (c->now - clock_start_ms()) / 1000;
    text_add(t, "# Server\r\nredis_version:%s\r\nredis_mode:standalone\r\n"
                "kioku_version:%s\r\nos:Linux\r\narch_bits:%zu\r\nmultiplexing_api:libevent\r\n"
                "process_id:%ld\r\ntcp_port:%d\r\nresp_port:%d\r\nuptime_in_seconds:%lld\r\n"
                "uptime_in_days:%lld\r\nio_threads_active:%d\r\n\r\n",
             RESP_REDIS_VERSION, PACKAGE_VERSION, sizeof(void *) * 8, (long)getpid(), s->port,
             s->resp_port, (long long)up, (long long)(up / 86400), s->threads);
}

static void info_clients(struct text *t)
{
    struct conn_stats cs;
    stats_conns(&cs);
    text_add(t, "# Clients\r\nconnected_clients:%llu\r\nmaxclients:%d\r\nblocked_clients:0\r\n\r\n",
             (unsigned long long)cs.curr_connections, resp_settings()->max_conns);
}

static void info_memory(struct text *t)
{
    struct storage_stats ss;
    storage_stats(&ss);
    uint64_t used = ss.total_malloced + ss.hash_bytes;
    char h1[32], h2[32];
    size_t maxmemory = storage_mem_limit();   /* CONFIG SET may have changed it */
    human(h1, sizeof(h1), used);
    human(h2, sizeof(h2), maxmemory);
    size_t nscripts, script_bytes;
    script_cache_usage(&nscripts, &script_bytes);
    text_add(t, "# Memory\r\nused_memory:%llu\r\nused_memory_human:%s\r\n"
                "used_memory_dataset:%llu\r\nused_memory_scripts_eval:%zu\r\n"
                "number_of_cached_scripts:%zu\r\nmaxmemory:%zu\r\nmaxmemory_human:%s\r\n"
                "maxmemory_policy:%s\r\n\r\n",
             (unsigned long long)used, h1, (unsigned long long)ss.bytes, script_bytes, nscripts,
             maxmemory, h2, evict_policy_name(evict_get_policy()));
}

static void info_persistence(struct text *t)
{
    text_add(t, "# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:0\r\n"
                "rdb_bgsave_in_progress:0\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\n\r\n");
}

static void info_stats(struct text *t)
{
    struct thread_stats ts;
    struct storage_stats ss;
    struct conn_stats cs;
    stats_aggregate(&ts);
    storage_stats(&ss);
    stats_conns(&cs);
    text_add(t, "# Stats\r\ntotal_connections_received:%llu\r\nrejected_connections:%llu\r\n"
                "client_output_buffer_limit_disconnections:%llu\r\n"
                "total_commands_processed:%llu\r\n"
                "total_net_input_bytes:%llu\r\ntotal_net_output_bytes:%llu\r\n"
                "expired_keys:%llu\r\nevicted_keys:%llu\r\nkeyspace_hits:%llu\r\n"
                "keyspace_misses:%llu\r\ntotal_error_replies:%llu\r\n\r\n",
             (unsigned long long)cs.total_connections, (unsigned long long)cs.rejected_connections,
             (unsigned long long)ts.output_limit_disconnects,
             (unsigned long long)ts.commands_processed,
             (unsigned long long)ts.bytes_read, (unsigned long long)ts.bytes_written,
             (unsigned long long)(ss.reclaimed + ts.get_expired),
             (unsigned long long)ss.evictions,
             (unsigned long long)(ts.get_hits + ts.resp_read_hits),
             (unsigned long long)(ts.get_misses + ts.resp_read_misses),
             (unsigned long long)ts.total_error_replies);
}

static void info_replication(struct text *t)
{
    text_add(t, "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_repl_offset:0\r\n\r\n");
}

/* CPU seconds of the process and of children it waited for (none), as
 * Redis reports them from getrusage(). */
static void info_cpu(struct text *t)
{
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    text_add(t, "# CPU\r\nused_cpu_sys:%ld.%06ld\r\nused_cpu_user:%ld.%06ld\r\n"
                "used_cpu_sys_children:%ld.%06ld\r\nused_cpu_user_children:%ld.%06ld\r\n\r\n",
             (long)self.ru_stime.tv_sec, (long)self.ru_stime.tv_usec,
             (long)self.ru_utime.tv_sec, (long)self.ru_utime.tv_usec,
             (long)kids.ru_stime.tv_sec, (long)kids.ru_stime.tv_usec,
             (long)kids.ru_utime.tv_sec, (long)kids.ru_utime.tv_usec);
}

static void info_cluster(struct text *t)
{
    text_add(t, "# Cluster\r\ncluster_enabled:0\r\n\r\n");
}

/* Keys and keys with a TTL, as Redis counts them (expired keys not yet
 * reclaimed included): O(stripes), so monitoring may poll INFO freely. */
static void info_keyspace(struct text *t)
{
    uint64_t keys, expires;
    storage_key_counts(&keys, &expires);
    text_add(t, "# Keyspace\r\n");
    if (keys > 0)
        text_add(t, "db0:keys=%llu,expires=%llu,avg_ttl=0\r\n", (unsigned long long)keys,
                 (unsigned long long)expires);
    text_add(t, "\r\n");
}

/* Commands run since start (or CONFIG RESETSTAT), Redis's format; only
 * commands that were called, refused or failed are listed. */
static void info_commandstats(struct text *t)
{
    size_t n = 0;
    const struct resp_cmd *cmds = resp_cmd_table(&n);
    text_add(t, "# Commandstats\r\n");
    for (size_t i = 0; i < n; i++) {
        struct resp_cmdstat cs;
        resp_cmdstat_sum(i, &cs);
        if (cs.calls == 0 && cs.rejected == 0 && cs.failed == 0)
            continue;
        text_add(t, "cmdstat_%s:calls=%llu,usec=%llu,usec_per_call=%.2f,rejected_calls=%llu,"
                    "failed_calls=%llu\r\n",
                 cmds[i].name, (unsigned long long)cs.calls, (unsigned long long)cs.usec,
                 cs.calls > 0 ? (double)cs.usec / (double)cs.calls : 0.0,
                 (unsigned long long)cs.rejected, (unsigned long long)cs.failed);
    }
    text_add(t, "\r\n");
}

static int cmp_error_kind(const void *a, const void *b)
{
    return strcmp(stats_error_name(*(const int *)a), stats_error_name(*(const int *)b));
}

/* Error replies by their first word since start (or CONFIG RESETSTAT),
 * in byte order as Redis lists them; words not seen since are left out. */
static void info_errorstats(struct text *t)
{
    struct thread_stats ts;
    int order[STATS_ERROR_KINDS];
    int n = stats_error_kinds();
    stats_aggregate(&ts);
    for (int i = 0; i < n; i++)
        order[i] = i;
    qsort(order, (size_t)n, sizeof(order[0]), cmp_error_kind);
    text_add(t, "# Errorstats\r\n");
    for (int i = 0; i < n; i++) {
        if (ts.error_kind[order[i]] == 0)
            continue;
        char name[STATS_ERROR_NAME_MAX + 1];
        snprintf(name, sizeof(name), "%s", stats_error_name(order[i]));
        for (char *p = name; *p != '\0'; p++)
            if (strchr("#:\r\n", *p) != NULL)
                *p = '_';   /* as Redis: the line must still parse */
        text_add(t, "errorstat_%s:count=%llu\r\n", name,
                 (unsigned long long)ts.error_kind[order[i]]);
    }
    text_add(t, "\r\n");
}

/* Redis 7's sections in its order. "default" (and no argument) names the
 * usual ones; "all" and "everything" add commandstats (Redis's
 * latencystats and modules kioku does not keep). */
enum { S_SERVER = 1, S_CLIENTS = 2, S_MEMORY = 4, S_PERSIST = 8, S_STATS = 16, S_REPL = 32,
       S_CPU = 64, S_CLUSTER = 128, S_KEYSPACE = 256, S_ERRSTATS = 1024,
       S_DEFAULT = 511 | S_ERRSTATS, S_CMDSTATS = 512, S_ALL = 2047 };

enum proc_result resp_cmd_info(struct conn *c, const struct resp_call *call)
{
    static const struct { const char *name; unsigned bit; } sections[] = {
        {"server", S_SERVER}, {"clients", S_CLIENTS}, {"memory", S_MEMORY},
        {"persistence", S_PERSIST}, {"stats", S_STATS}, {"replication", S_REPL},
        {"cpu", S_CPU}, {"cluster", S_CLUSTER}, {"keyspace", S_KEYSPACE},
        {"commandstats", S_CMDSTATS}, {"errorstats", S_ERRSTATS},
        {"default", S_DEFAULT}, {"all", S_ALL}, {"everything", S_ALL},
    };
    unsigned want = call->argc == 1 ? S_DEFAULT : 0;
    for (int i = 1; i < call->argc; i++)
        for (size_t k = 0; k < sizeof(sections) / sizeof(sections[0]); k++)
            if (rs_arg_is(&call->argv[i], sections[k].name))
                want |= sections[k].bit;
    struct text t = {NULL, 0, 0};
    text_add(&t, "%s", "");
    if (want & S_SERVER)
        info_server(&t, c);
    if (want & S_CLIENTS)
        info_clients(&t);
    if (want & S_MEMORY)
        info_memory(&t);
    if (want & S_PERSIST)
        info_persistence(&t);
    if (want & S_STATS)
        info_stats(&t);
    if (want & S_REPL)
        info_replication(&t);
    if (want & S_CPU)
        info_cpu(&t);
    if (want & S_CMDSTATS)
        info_commandstats(&t);
    if (want & S_ERRSTATS)
        info_errorstats(&t);
    if (want & S_CLUSTER)
        info_cluster(&t);
    if (want & S_KEYSPACE)
        info_keyspace(&t);
    if (t.p == NULL) {
        rs_error(c, RS_ERR_OOM);
        return PROC_MORE;
    }
    /* Redis ends the text without the last section's blank line. */
    size_t len = t.len >= 4 ? t.len - 2 : 0;
    rs_verbatim(c, t.p, len);
    free(t.p);
    return PROC_MORE;
}

/* ---- SHUTDOWN ---- */

/*
 * SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT], parsed as Redis 7.0 parses
 * it. Off unless kioku runs with -A, as memcached's `shutdown` is (Redis
 * has it on: a deliberate difference, so that no client of a shared cache
 * can stop it by default). The stop is SIGTERM's (signals_request_stop());
 * the client gets no reply, only its connection closed, as from Redis.
 * SAVE / NOSAVE: the warm-restart save (-e) or not; by default as SIGTERM
 * (saved with -e). SAVE without -e has nothing to save to, so it fails as
 * a failed save fails Redis's SHUTDOWN, unless FORCE. NOW: kioku has no
 * replicas to wait for. ABORT: a stop, once begun, is never taken back,
 * so there is no shutdown in progress to abort.
 */
enum proc_result resp_cmd_shutdown(struct conn *c, const struct resp_call *call)
{
    const struct settings *s = resp_settings();
    if (!s->enable_shutdown) {
        rs_error(c, "ERR SHUTDOWN is disabled on this server (kioku -A enables it)");
        return PROC_MORE;
    }
    bool nosave = false, save = false, now = false, force = false, abort_ = false;
    for (int i = 1; i < call->argc; i++) {
        const struct resp_arg *a = &call->argv[i];
        if (rs_arg_is(a, "nosave"))
            nosave = true;
        else if (rs_arg_is(a, "save"))
            save = true;
        else if (rs_arg_is(a, "force"))
            force = true;
        else if (rs_arg_is(a, "abort"))
            abort_ = true;
        else if (rs_arg_is(a, "now"))
            now = true;
        else {
            rs_error(c, RS_ERR_SYNTAX);
            return PROC_MORE;
        }
    }
    if ((abort_ && (nosave || save || now || force)) || (nosave && save)) {
        rs_error(c, RS_ERR_SYNTAX);
        return PROC_MORE;
    }
    if (abort_) {
        rs_error(c, "ERR No shutdown in progress.");
        return PROC_MORE;
    }
    if (!nosave && script_busy()) {
        rs_error(c, SCRIPT_ERR_BUSY);   /* as Redis: only NOSAVE stops under a busy script */
        return PROC_MORE;
    }
    bool have_file = s->storage.memory_file[0] != '\0';
    if (save && !have_file && !force) {
        log_warn("SHUTDOWN SAVE refused: no -e memory file to save to (FORCE stops anyway)");
        rs_error(c, "ERR Errors trying to SHUTDOWN. Check logs.");
        return PROC_MORE;
    }
    if (nosave)
        script_stop_all();   /* a busy script must not hold the stop up */
    signals_request_stop("SHUTDOWN", !nosave);
    return PROC_CLOSE;
}

/* ---- keyspace-wide ---- */

/* O(stripes); flushed keys are gone at once, expired ones count until
 * reclaimed, as in Redis. */
enum proc_result resp_cmd_dbsize(struct conn *c, const struct resp_call *call)
{
    (void)call;
    uint64_t keys, expires;
    storage_key_counts(&keys, &expires);
    rs_int(c, (int64_t)keys);
    return PROC_MORE;
}

/* FLUSHDB and FLUSHALL [ASYNC|SYNC]: both flush at once. */
enum proc_result resp_cmd_flushall(struct conn *c, const struct resp_call *call)
{
    if (call->argc > 2 || (call->argc == 2 && !rs_arg_is(&call->argv[1], "async") &&
                           !rs_arg_is(&call->argv[1], "sync"))) {
        rs_error(c, RS_ERR_SYNTAX);
        return PROC_MORE;
    }
    if (!resp_settings()->flush_enabled) {
        rs_error(c, "ERR flushing is disabled on this server (-F)");
        return PROC_MORE;
    }
    STAT_INC(c->stats, cmd_flush);
    item_flush(0, c->now);
    rs_ok(c);
    return PROC_MORE;
}

enum proc_result resp_cmd_time(struct conn *c, const struct resp_call *call)
{
    (void)call;
    struct timespec ts;
    char sec[24], usec[24];
    clock_gettime(CLOCK_REALTIME, &ts);
    int n1 = snprintf(sec, sizeof(sec), "%lld", (long long)ts.tv_sec);
    int n2 = snprintf(usec, sizeof(usec), "%ld", ts.tv_nsec / 1000);
    rs_array(c, 2);
    rs_bulk(c, sec, (size_t)n1);
    rs_bulk(c, usec, (size_t)n2);
    return PROC_MORE;
}
