/*
 * RESP connections: parse, dispatch, reply.
 *
 * process() takes one request at a time from the read buffer with the pure
 * parser in proto/resp.c, looks its name up in the command table, checks
 * the arity and the key lengths, and runs the row's handler, which queues
 * one reply. Requests already parsed before a malformed one are answered
 * first; the malformed one gets Redis's "-ERR Protocol error: ..." and the
 * connection closes after it (only that connection: nothing else is
 * touched).
 *
 * Memory per request: none on the hot path. The argument slices point into
 * the read buffer; the slice array is a thread-local one for requests of up
 * to RESP_SMALL_ARGS arguments. A connection that sends a larger request
 * gets its own array, sized to the request, but only once the read buffer
 * holds enough bytes for that many arguments to be real (at least 6 bytes
 * each), so a bare "*1000000\r\n" allocates nothing.
 *
 * Big values. A request is parsed once it is wholly in the read buffer,
 * which the connection grows for it up to RESP_REQ_MAX (4 MiB), except for
 * one argument of at least RESP_STREAM_MIN bytes (the parser's
 * PARSE_STREAM): when it is the value of a command that stores it (the SET
 * family, APPEND, SETRANGE: resp_stream_arg()), the item is allocated
 * from the header alone, up to proto-max-bulk-len and half the memory
 * limit (item_alloc_big()), and the connection reads the bytes straight
 * into it as the memcached protocols do; the arguments after it are parsed
 * as usual and the command runs with the item in hand (resp_stream_take()).
 * A value refused there (too large, out of memory, a wrong arity) gets its
 * error at once and its bytes are skipped, so the connection carries on.
 * Any other large argument (MSET, ECHO, a key) is buffered: its request
 * must fit RESP_REQ_MAX, else "-ERR Protocol error: too big request" and
 * the connection closes; gathering those too would cost a second copy of
 * values the cache is there to hold once. A bulk over proto-max-bulk-len
 * is refused from its header with "-ERR Protocol error: invalid bulk
 * length", which closes the connection, as in Redis.
 *
 * Command names are found through a small hash index built at set-up over
 * the lower-cased names, so dispatch is one hash and one compare.
 */
#include "cmd/proto_resp.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "cmd/resp_cmds.h"
#include "cmd/mc_watch.h"
#include "cmd/resp_multi.h"
#include "config/settings.h"
#include "proto/resp.h"
#include "core/worker.h"
#include "script/script.h"
#include "stats/stats.h"
#include "storage/item.h"
#include "storage/storage.h"

#define RESP_REQ_MAX ((size_t)4 * 1024 * 1024)   /* at most conn.c's RBUF_MAX */
#define RESP_SMALL_ARGS 256
#define RESP_MAX_ARGS (1024 * 1024)              /* Redis's multibulk limit */
#define RESP_MIN_ARG_BYTES 6                     /* "$0\r\n\r\n" */
/* Bulks this long are read into their item; below it a copy through the
 * read buffer costs less than the bookkeeping. */
#define RESP_STREAM_MIN ((size_t)64 * 1024)
#define RESP_STREAM_ARGS 16                      /* SET k v and every option, twice over */

static const struct settings *settings;   /* read-only after setup */
static struct resp_limits limits;
static size_t max_bulk;                   /* proto-max-bulk-len; CONFIG SET: atomic */

/*
 * A request whose large argument number `arg` is read into an item. The
 * arguments before it are copied here (the read buffer moves on); those
 * after it are parsed into argv[arg + 1 ..] once they arrive. Allocated
 * per streamed value (each at least RESP_STREAM_MIN bytes), freed when
 * the request has run.
 */
struct resp_stream {
    const struct resp_cmd *cmd;   /* NULL: refused, replied; skip the rest */
    struct item *it;              /* the value once read (our reference) */
    bool reading;                 /* conn_read_value() holds the item */
    uint32_t arg, nargs;
    struct resp_arg argv[RESP_STREAM_ARGS];
    char bytes[];                 /* argv[0 .. arg) */
};

/* Per-connection state, inside conn->proto_data. */
struct resp_conn {
    struct resp_state st;
    struct resp_arg *argv;    /* own array for large requests, or NULL */
    uint32_t argv_cap;
    uint8_t version;          /* 0 (never said) or 2: RESP2; 3: RESP3 */
    bool reply_off;           /* CLIENT REPLY OFF: replies are dropped */
    bool reply_skip;          /* CLIENT REPLY SKIP: this request's is */
    bool reply_skip_next;     /* ... the next request's */
    struct resp_multi *multi; /* open MULTI, or NULL */
    struct resp_stream *stream; /* a large value being read, or NULL */
    bool authed;              /* AUTH or HELLO AUTH succeeded, or no password
                                 was required when the client arrived */
    bool started;             /* authed has been initialised */
    uint32_t errors;          /* error replies queued */
    uint32_t errors_seen;     /* errors when the last call began or ended:
                                 a call that adds to errors failed, and an
                                 EXEC is not failed by the calls it ran */
    struct ahead *ahead;      /* resp_process's look-ahead while it runs */
    struct mc_watch *monitor; /* MONITOR's stream, or NULL */
};

static __thread struct resp_arg small_argv[RESP_SMALL_ARGS];

static struct resp_conn *state_of(const struct conn *c)
{
    _Static_assert(sizeof(struct resp_conn) <= CONN_PROTO_DATA, "RESP state too large");
    return (struct resp_conn *)(uintptr_t)c->proto_data;
}

bool resp_authed(const struct conn *c)
{
    return state_of(c)->authed || !auth_resp_required();
}

void resp_set_authed(struct conn *c)
{
    state_of(c)->authed = true;
}

void resp_set_reply_mode(struct conn *c, enum resp_reply_mode mode)
{
    struct resp_conn *rc = state_of(c);
    rc->reply_off = mode == RESP_REPLY_OFF;
    rc->reply_skip_next = mode == RESP_REPLY_SKIP;
    if (mode == RESP_REPLY_ON)
        rc->reply_skip = false;
}

/* CLIENT REPLY: a request that runs while replies are off or skipped has
 * what it queued dropped, as Redis decides it once the request ran (so
 * CLIENT REPLY ON is answered). SKIP then moves on to the next request. */
static bool quiet_begin(struct conn *c, struct resp_conn *rc, struct conn_out_mark *m)
{
    if (!rc->reply_off && !rc->reply_skip)
        return false;
    conn_out_mark(c, m);
    return true;
}

static void quiet_end(struct conn *c, struct resp_conn *rc, const struct conn_out_mark *m,
                      bool quiet)
{
    if (quiet && (rc->reply_off || rc->reply_skip))
        conn_out_rollback(c, m);
    if (rc->reply_skip || rc->reply_skip_next) {
        rc->reply_skip = rc->reply_skip_next;
        rc->reply_skip_next = false;
    }
}

const struct settings *resp_settings(void)
{
    return settings;
}

size_t resp_max_bulk(void)
{
    return __atomic_load_n(&max_bulk, __ATOMIC_RELAXED);
}

void resp_set_max_bulk(size_t n)
{
    __atomic_store_n(&max_bulk, n, __ATOMIC_RELAXED);
}

/* The stream of this very call (not of one EXEC or a script runs). */
static struct resp_stream *stream_of(struct conn *c, const struct resp_call *call, int i)
{
    struct resp_stream *s = state_of(c)->stream;
    if (s == NULL || call->argv != s->argv || i < 0 || (uint32_t)i != s->arg)
        return NULL;
    return s;
}

struct item *resp_stream_value(struct conn *c, const struct resp_call *call, int i)
{
    struct resp_stream *s = stream_of(c, call, i);
    return s != NULL ? s->it : NULL;
}

struct item *resp_stream_take(struct conn *c, const struct resp_call *call, int i)
{
    struct resp_stream *s = stream_of(c, call, i);
    struct item *it = s != NULL ? s->it : NULL;
    if (s != NULL)
        s->it = NULL;
    return it;
}

int resp_proto_version(const struct conn *c)
{
    return state_of(c)->version == 3 ? 3 : 2;
}

void resp_set_proto_version(struct conn *c, int version)
{
    state_of(c)->version = (uint8_t)version;
}

struct resp_multi *resp_conn_multi(const struct conn *c)
{
    return state_of(c)->multi;
}

void resp_conn_set_multi(struct conn *c, struct resp_multi *m)
{
    state_of(c)->multi = m;
}

/* ---- replies ---- */

static void put_hdr(struct conn *c, char type, size_t n)
{
    char *p = conn_out_reserve(c, RESP_HDR_MAX);
    if (p == NULL)
        return;
    size_t len = resp_put_array_hdr(p, RESP_HDR_MAX, n);
    p[0] = type;   /* same shape as "*<n>\r\n" */
    conn_out_commit(c, len);
}

void rs_ok(struct conn *c)
{
    CONN_OUT_LIT(c, "+OK\r\n");
}

void rs_simple(struct conn *c, const char *s)
{
    size_t n = strlen(s);
    char *p = conn_out_reserve(c, n + 3);
    if (p != NULL)
        conn_out_commit(c, resp_put_simple(p, n + 3, s, n));
}

void rs_error_counted(struct conn *c, const char *s)
{
    state_of(c)->errors++;
    size_t n = strlen(s);
    char *p = conn_out_reserve(c, n + 3);
    if (p != NULL)
        conn_out_commit(c, resp_put_error(p, n + 3, s, n));
}

void rs_error(struct conn *c, const char *s)
{
    if (c->stats != NULL)
        stats_error_reply(c->stats, s, strlen(s));
    rs_error_counted(c, s);
}

void rs_errorf(struct conn *c, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    rs_error(c, buf);
}

void rs_int(struct conn *c, int64_t v)
{
    char *p = conn_out_reserve(c, RESP_HDR_MAX);
    if (p != NULL)
        conn_out_commit(c, resp_put_int(p, RESP_HDR_MAX, v));
}

void rs_bulk(struct conn *c, const void *data, size_t len)
{
    char *p = conn_out_reserve(c, len + RESP_HDR_MAX);
    if (p != NULL)
        conn_out_commit(c, resp_put_bulk(p, len + RESP_HDR_MAX, data, len));
}

void rs_bulk_str(struct conn *c, const char *s)
{
    rs_bulk(c, s, strlen(s));
}

/* Values up to this size are copied into the output with their header in
 * one step (conn_out_item copies them too, but as a second entry). */
#define RS_COPY_MAX 512

void rs_bulk_item(struct conn *c, struct item *it, size_t off, size_t len)
{
    if (len <= RS_COPY_MAX && !item_is_chunked(it)) {
        char hdr[RESP_HDR_MAX];
        size_t h = resp_put_bulk_hdr(hdr, sizeof(hdr), len), n = h + len + 2;
        /* Admitted as the two steps below would be: the header's room
         * (RESP_HDR_MAX), then everything. */
        char *p = conn_out_reserve(c, n > RESP_HDR_MAX ? n : RESP_HDR_MAX);
        if (p == NULL)
            return;
        memcpy(p, hdr, h);
        if (off + len == item_nbytes(it)) {
            memcpy(p + h, item_value(it) + off, len + 2);   /* the item's own CRLF */
        } else {
            memcpy(p + h, item_value(it) + off, len);
            memcpy(p + h + len, "\r\n", 2);
        }
        conn_out_commit(c, n);
        return;
    }
    char *p = conn_out_reserve(c, RESP_HDR_MAX);
    if (p == NULL)
        return;
    conn_out_commit(c, resp_put_bulk_hdr(p, RESP_HDR_MAX, len));
    if (off + len == item_nbytes(it)) {
        conn_out_item(c, it, off, len + 2);   /* the item's own CRLF */
    } else {
        if (len > 0) {
            conn_out_item(c, it, off, len);
            conn_out_value_end(c);
        } else {
            CONN_OUT_LIT(c, "\r\n");
        }
    }
}

void rs_null(struct conn *c)
{
    if (resp_proto_version(c) == 3)
        CONN_OUT_LIT(c, "_\r\n");
    else
        CONN_OUT_LIT(c, "$-1\r\n");
}

void rs_null_array(struct conn *c)
{
    if (resp_proto_version(c) == 3)
        CONN_OUT_LIT(c, "_\r\n");
    else
        CONN_OUT_LIT(c, "*-1\r\n");
}

void rs_array(struct conn *c, size_t n)
{
    put_hdr(c, '*', n);
}

void rs_map(struct conn *c, size_t pairs)
{
    if (resp_proto_version(c) == 3)
        put_hdr(c, '%', pairs);
    else
        put_hdr(c, '*', pairs * 2);
}

void rs_set(struct conn *c, size_t n)
{
    put_hdr(c, resp_proto_version(c) == 3 ? '~' : '*', n);
}

void rs_verbatim(struct conn *c, const char *s, size_t len)
{
    if (resp_proto_version(c) != 3) {
        rs_bulk(c, s, len);
        return;
    }
    put_hdr(c, '=', len + 4);
    CONN_OUT_LIT(c, "txt:");
    conn_out(c, s, len);
    CONN_OUT_LIT(c, "\r\n");
}

void rs_alloc_error(struct conn *c, int alloc_status)
{
    if (alloc_status == ITEM_ALLOC_TOO_LARGE) {
        STAT_INC(c->stats, store_too_large);
        rs_error(c, RS_ERR_TOO_BIG);
    } else {
        STAT_INC(c->stats, store_no_memory);
        rs_error(c, RS_ERR_OOM);
    }
}

void rs_expire_error(struct conn *c, const struct resp_call *call)
{
    rs_errorf(c, "ERR invalid expire time in '%s' command", call->cmd->name);
}

/* ---- arguments ---- */

bool rs_parse_i64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0, lim;

    if (len == 0 || len > 20)
        return false;
    if (len == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    if (s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == len || s[i] < '1' || s[i] > '9')
        return false;
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

bool rs_arg_i64(struct conn *c, const struct resp_arg *a, int64_t *out)
{
    if (rs_parse_i64(a->ptr, a->len, out))
        return true;
    rs_error(c, RS_ERR_NOT_INT);
    return false;
}

bool rs_arg_is(const struct resp_arg *a, const char *word)
{
    return resp_name_eq(a->ptr, a->len, word);
}

/* ---- the command table ---- */

#define R RC_READONLY
#define W RC_WRITE
#define F RC_FAST
#define M RC_DENYOOM
#define A RC_ADMIN
#define S RC_STALE
#define N RC_NOAUTH
#define L RC_LOADING
/* What Redis gives the commands a client may send while a script is busy
 * (AUTH, HELLO, QUIT, MULTI, DISCARD, WATCH, UNWATCH). */
#define BUSY_OK (RC_NOSCRIPT | RC_LOADING | RC_ALLOW_BUSY)
#define SCRIPT_FLAGS (RC_NOSCRIPT | RC_SKIP_MONITOR | RC_NO_MANDATORY_KEYS)
/* aux of expire/ttl rows: bit 0 milliseconds, bit 1 absolute time.
 * Read-only once proto_resp_setup() has run (which may swap handlers for
 * -o null_storage). */
static struct resp_cmd commands[] = {
    {"get", 2, R | F, 1, 1, 1, "string", "Get the value of a key", resp_cmd_get, 0, 0},
    {"set", -3, W | M, 1, 1, 1, "string", "Set the string value of a key", resp_cmd_set, 0, 0},
    {"setex", 4, W | M, 1, 1, 1, "string", "Set the value and expiration of a key", resp_cmd_setex, 0, 0},
    {"psetex", 4, W | M, 1, 1, 1, "string", "Set the value and expiration in milliseconds of a key", resp_cmd_setex, 1, 0},
    {"setnx", 3, W | M | F, 1, 1, 1, "string", "Set the value of a key, only if the key does not exist", resp_cmd_setnx, 0, 0},
    {"getset", 3, W | M | F, 1, 1, 1, "string", "Set the string value of a key and return its old value", resp_cmd_getset, 0, 0},
    {"getdel", 2, W | F, 1, 1, 1, "string", "Get the value of a key and delete the key", resp_cmd_getdel, 0, 0},
    {"getex", -2, W | F, 1, 1, 1, "string", "Get the value of a key and optionally set its expiration", resp_cmd_getex, 0, 0},
    {"mget", -2, R | F, 1, -1, 1, "string", "Get the values of all the given keys", resp_cmd_mget, 0, 0},
    {"mset", -3, W | M, 1, -1, 2, "string", "Set multiple keys to multiple values", resp_cmd_mset, 0, 0},
    {"msetnx", -3, W | M, 1, -1, 2, "string", "Set multiple keys to multiple values, only if none of the keys exist", resp_cmd_msetnx, 0, 0},
    {"append", 3, W | M | F, 1, 1, 1, "string", "Append a value to a key", resp_cmd_append, 0, 0},
    {"strlen", 2, R | F, 1, 1, 1, "string", "Get the length of the value stored in a key", resp_cmd_strlen, 0, 0},
    {"getrange", 4, R, 1, 1, 1, "string", "Get a substring of the string stored at a key", resp_cmd_getrange, 0, 0},
    {"substr", 4, R, 1, 1, 1, "string", "Get a substring of the string stored at a key", resp_cmd_getrange, 0, 0},
    {"setrange", 4, W | M, 1, 1, 1, "string", "Overwrite part of a string at key starting at the specified offset", resp_cmd_setrange, 0, 0},
    {"incr", 2, W | M | F, 1, 1, 1, "string", "Increment the integer value of a key by one", resp_cmd_incr, 1, 0},
    {"decr", 2, W | M | F, 1, 1, 1, "string", "Decrement the integer value of a key by one", resp_cmd_incr, -1, 0},
    {"incrby", 3, W | M | F, 1, 1, 1, "string", "Increment the integer value of a key by the given amount", resp_cmd_incrby, 1, 0},
    {"decrby", 3, W | M | F, 1, 1, 1, "string", "Decrement the integer value of a key by the given number", resp_cmd_incrby, -1, 0},
    {"incrbyfloat", 3, W | M | F, 1, 1, 1, "string", "Increment the float value of a key by the given amount", resp_cmd_incrbyfloat, 0, 0},
    {"setbit", 4, W | M, 1, 1, 1, "bitmap", "Sets or clears the bit at offset in the string value stored at key", resp_cmd_setbit, 0, 0},
    {"getbit", 3, R | F, 1, 1, 1, "bitmap", "Returns the bit value at offset in the string value stored at key", resp_cmd_getbit, 0, 0},
    {"bitcount", -2, R, 1, 1, 1, "bitmap", "Count set bits in a string", resp_cmd_bitcount, 0, 0},
    {"bitpos", -3, R, 1, 1, 1, "bitmap", "Find first bit set or clear in a string", resp_cmd_bitpos, 0, 0},
    {"bitop", -4, W | M, 2, -1, 1, "bitmap", "Perform bitwise operations between strings", resp_cmd_bitop, 0, 0},
    {"lcs", -3, R, 1, 2, 1, "string", "Find longest common substring", resp_cmd_lcs, 0, 0},

    {"del", -2, W, 1, -1, 1, "generic", "Delete a key", resp_cmd_del, 0, 0},
    {"unlink", -2, W | F, 1, -1, 1, "generic", "Delete a key asynchronously in another thread", resp_cmd_del, 0, 0},
    {"exists", -2, R | F, 1, -1, 1, "generic", "Determine if a key exists", resp_cmd_exists, 0, 0},
    {"touch", -2, R | F, 1, -1, 1, "generic", "Alters the last access time of a key(s)", resp_cmd_touch, 0, 0},
    {"expire", -3, W | F, 1, 1, 1, "generic", "Set a key's time to live in seconds", resp_cmd_expire, 0, 0},
    {"pexpire", -3, W | F, 1, 1, 1, "generic", "Set a key's time to live in milliseconds", resp_cmd_expire, 1, 0},
    {"expireat", -3, W | F, 1, 1, 1, "generic", "Set the expiration for a key as a UNIX timestamp", resp_cmd_expire, 2, 0},
    {"pexpireat", -3, W | F, 1, 1, 1, "generic", "Set the expiration for a key as a UNIX timestamp specified in milliseconds", resp_cmd_expire, 3, 0},
    {"ttl", 2, R | F, 1, 1, 1, "generic", "Get the time to live for a key in seconds", resp_cmd_ttl, 0, 0},
    {"pttl", 2, R | F, 1, 1, 1, "generic", "Get the time to live for a key in milliseconds", resp_cmd_ttl, 1, 0},
    {"expiretime", 2, R | F, 1, 1, 1, "generic", "Get the expiration Unix timestamp for a key", resp_cmd_ttl, 2, 0},
    {"pexpiretime", 2, R | F, 1, 1, 1, "generic", "Get the expiration Unix timestamp for a key in milliseconds", resp_cmd_ttl, 3, 0},
    {"persist", 2, W | F, 1, 1, 1, "generic", "Remove the expiration from a key", resp_cmd_persist, 0, 0},
    {"type", 2, R | F, 1, 1, 1, "generic", "Determine the type stored at key", resp_cmd_type, 0, 0},
    {"object", -2, R | RC_CONTAINER, 2, 2, 1, "generic", "A container for object introspection commands", resp_cmd_object, 0, 0},
    {"memory", -2, R | RC_CONTAINER, 2, 2, 1, "server", "A container for memory diagnostics commands", resp_cmd_memory, 0, 0},
    {"rename", 3, W, 1, 2, 1, "generic", "Rename a key", resp_cmd_rename, 0, 0},
    {"renamenx", 3, W | F, 1, 2, 1, "generic", "Rename a key, only if the new key does not exist", resp_cmd_rename, 1, 0},
    {"copy", -3, W | M, 1, 2, 1, "generic", "Copy a key", resp_cmd_copy, 0, 0},
    {"randomkey", 1, R, 0, 0, 0, "generic", "Return a random key from the keyspace", resp_cmd_randomkey, 0, 0},
    {"keys", 2, R, 0, 0, 0, "generic", "Find all keys matching the given pattern", resp_cmd_keys, 0, 0},
    {"scan", -2, R, 0, 0, 0, "generic", "Incrementally iterate the keys space", resp_cmd_scan, 0, 0},

    /* Hashes (issue 11). aux of hgetall: bit 0 fields, bit 1 values. */
    {"hset", -4, W | M | F, 1, 1, 1, "hash", "Set the string value of a hash field", resp_cmd_hset, 0, 0},
    {"hmset", -4, W | M | F, 1, 1, 1, "hash", "Set multiple hash fields to multiple values", resp_cmd_hset, 1, 0},
    {"hsetnx", 4, W | M | F, 1, 1, 1, "hash", "Set the value of a hash field, only if the field does not exist", resp_cmd_hsetnx, 0, 0},
    {"hget", 3, R | F, 1, 1, 1, "hash", "Get the value of a hash field", resp_cmd_hget, 0, 0},
    {"hmget", -3, R | F, 1, 1, 1, "hash", "Get the values of all the given hash fields", resp_cmd_hmget, 0, 0},
    {"hgetall", 2, R, 1, 1, 1, "hash", "Get all the fields and values in a hash", resp_cmd_hgetall, 3, 0},
    {"hkeys", 2, R, 1, 1, 1, "hash", "Get all the fields in a hash", resp_cmd_hgetall, 1, 0},
    {"hvals", 2, R, 1, 1, 1, "hash", "Get all the values in a hash", resp_cmd_hgetall, 2, 0},
    {"hdel", -3, W | F, 1, 1, 1, "hash", "Delete one or more hash fields", resp_cmd_hdel, 0, 0},
    {"hexists", 3, R | F, 1, 1, 1, "hash", "Determine if a hash field exists", resp_cmd_hexists, 0, 0},
    {"hstrlen", 3, R | F, 1, 1, 1, "hash", "Get the length of the value of a hash field", resp_cmd_hexists, 1, 0},
    {"hlen", 2, R | F, 1, 1, 1, "hash", "Get the number of fields in a hash", resp_cmd_hlen, 0, 0},
    {"hincrby", 4, W | M | F, 1, 1, 1, "hash", "Increment the integer value of a hash field by the given number", resp_cmd_hincrby, 0, 0},
    {"hincrbyfloat", 4, W | M | F, 1, 1, 1, "hash", "Increment the float value of a hash field by the given amount", resp_cmd_hincrbyfloat, 0, 0},
    {"hrandfield", -2, R, 1, 1, 1, "hash", "Get one or multiple random fields from a hash", resp_cmd_hrandfield, 0, 0},
    {"hscan", -3, R, 1, 1, 1, "hash", "Incrementally iterate hash fields and associated values", resp_cmd_hscan, 0, 0},

    {"ping", -1, F, 0, 0, 0, "connection", "Ping the server", resp_cmd_ping, 0, 0},
    {"echo", 2, F | S | L, 0, 0, 0, "connection", "Echo the given string", resp_cmd_echo, 0, 0},
    {"quit", -1, F | S | N | BUSY_OK, 0, 0, 0, "connection", "Close the connection", resp_cmd_quit, 0, 0},
    {"select", 2, F | S | L, 0, 0, 0, "connection", "Change the selected database for the current connection", resp_cmd_select, 0, 0},
    {"hello", -1, F | S | N | BUSY_OK, 0, 0, 0, "connection", "Handshake with Redis", resp_cmd_hello, 0, 0},
    {"auth", -2, F | S | N | BUSY_OK, 0, 0, 0, "connection", "Authenticate to the server", resp_cmd_auth, 0, 0},
    {"client", -2, S | RC_CONTAINER, 0, 0, 0, "connection", "A container for client connection commands", resp_cmd_client, 0, 0},
    {"command", -1, S | L, 0, 0, 0, "server", "Get array of Redis command details", resp_cmd_command, 0, 0},
    {"config", -2, A | S | RC_CONTAINER, 0, 0, 0, "server", "A container for server configuration commands", resp_cmd_config, 0, 0},
    {"function", -2, S | RC_CONTAINER, 0, 0, 0, "scripting", "A container for function commands", resp_cmd_function, 0, 0},
    {"info", -1, S | L, 0, 0, 0, "server", "Get information and statistics about the server", resp_cmd_info, 0, 0},
    {"dbsize", 1, R | F, 0, 0, 0, "server", "Return the number of keys in the selected database", resp_cmd_dbsize, 0, 0},
    {"flushdb", -1, W, 0, 0, 0, "server", "Remove all keys from the current database", resp_cmd_flushall, 0, 0},
    {"flushall", -1, W, 0, 0, 0, "server", "Remove all keys from all databases", resp_cmd_flushall, 0, 0},
    {"monitor", 1, A | S | L | RC_NOSCRIPT, 0, 0, 0, "server", "Listen for all requests received by the server in real time", resp_cmd_monitor, 0, 0},
    {"time", 1, F | S | L, 0, 0, 0, "server", "Return the current server time", resp_cmd_time, 0, 0},
    {"shutdown", -1, A | S | RC_NOSCRIPT | RC_LOADING | RC_NO_MULTI | RC_ALLOW_BUSY, 0, 0, 0, "server", "Synchronously save the dataset to disk and then shut down the server", resp_cmd_shutdown, 0, 0},

    {"multi", 1, F | S | BUSY_OK, 0, 0, 0, "transactions", "Mark the start of a transaction block", resp_cmd_multi, 0, 0},
    {"exec", 1, S | RC_NOSCRIPT | RC_LOADING | RC_SKIP_SLOWLOG, 0, 0, 0, "transactions", "Execute all commands issued after MULTI", resp_cmd_exec, 0, 0},
    {"discard", 1, F | S | BUSY_OK, 0, 0, 0, "transactions", "Discard all commands issued after MULTI", resp_cmd_discard, 0, 0},
    {"watch", -2, F | S | BUSY_OK, 1, -1, 1, "transactions", "Watch the given keys to determine execution of the MULTI/EXEC block", resp_cmd_watch, 0, 0},
    {"unwatch", 1, F | S | BUSY_OK, 0, 0, 0, "transactions", "Forget about all watched keys", resp_cmd_unwatch, 0, 0},

    {"eval", -3, S | SCRIPT_FLAGS, 0, 0, 0, "scripting", "Execute a Lua script server side", resp_cmd_eval, 0, 2},
    {"evalsha", -3, S | SCRIPT_FLAGS, 0, 0, 0, "scripting", "Execute a Lua script server side", resp_cmd_eval, 1, 2},
    {"eval_ro", -3, R | S | SCRIPT_FLAGS, 0, 0, 0, "scripting", "Execute a read-only Lua script server side", resp_cmd_eval, 2, 2},
    {"evalsha_ro", -3, R | S | SCRIPT_FLAGS, 0, 0, 0, "scripting", "Execute a read-only Lua script server side", resp_cmd_eval, 3, 2},
    {"script", -2, S | RC_CONTAINER, 0, 0, 0, "scripting", "A container for Lua scripts management commands", resp_cmd_script, 0, 0},

    /* sorted sets (resp_zset.c, resp_zsetops.c); ZRANGE's aux: range type | direction << 4 */
    {"zadd", -4, W | M | F, 1, 1, 1, "sorted-set", "Add one or more members to a sorted set, or update its score if it already exists", resp_cmd_zadd, 0, 0},
    {"zincrby", 4, W | M | F, 1, 1, 1, "sorted-set", "Increment the score of a member in a sorted set", resp_cmd_zadd, 1, 0},
    {"zcard", 2, R | F, 1, 1, 1, "sorted-set", "Get the number of members in a sorted set", resp_cmd_zcard, 0, 0},
    {"zscore", 3, R | F, 1, 1, 1, "sorted-set", "Get the score associated with the given member in a sorted set", resp_cmd_zscore, 0, 0},
    {"zmscore", -3, R | F, 1, 1, 1, "sorted-set", "Get the score associated with the given members in a sorted set", resp_cmd_zmscore, 0, 0},
    {"zrank", -3, R | F, 1, 1, 1, "sorted-set", "Determine the index of a member in a sorted set", resp_cmd_zrank, 0, 0},
    {"zrevrank", -3, R | F, 1, 1, 1, "sorted-set", "Determine the index of a member in a sorted set, with scores ordered from high to low", resp_cmd_zrank, 1, 0},
    {"zcount", 4, R | F, 1, 1, 1, "sorted-set", "Count the members in a sorted set with scores within the given values", resp_cmd_zcount, 2, 0},
    {"zlexcount", 4, R | F, 1, 1, 1, "sorted-set", "Count the number of members in a sorted set between a given lexicographical range", resp_cmd_zcount, 3, 0},
    {"zrange", -4, R, 1, 1, 1, "sorted-set", "Return a range of members in a sorted set", resp_cmd_zrange, 0, 0},
    {"zrevrange", -4, R, 1, 1, 1, "sorted-set", "Return a range of members in a sorted set, by index, with scores ordered from high to low", resp_cmd_zrange, 1 | 2 << 4, 0},
    {"zrangebyscore", -4, R, 1, 1, 1, "sorted-set", "Return a range of members in a sorted set, by score", resp_cmd_zrange, 2 | 1 << 4, 0},
    {"zrevrangebyscore", -4, R, 1, 1, 1, "sorted-set", "Return a range of members in a sorted set, by score, with scores ordered from high to low", resp_cmd_zrange, 2 | 2 << 4, 0},
    {"zrangebylex", -4, R, 1, 1, 1, "sorted-set", "Return a range of members in a sorted set, by lexicographical range", resp_cmd_zrange, 3 | 1 << 4, 0},
    {"zrevrangebylex", -4, R, 1, 1, 1, "sorted-set", "Return a range of members in a sorted set, by lexicographical range, ordered from higher to lower strings.", resp_cmd_zrange, 3 | 2 << 4, 0},
    {"zrem", -3, W | F, 1, 1, 1, "sorted-set", "Remove one or more members from a sorted set", resp_cmd_zrem, 0, 0},
    {"zremrangebyrank", 4, W, 1, 1, 1, "sorted-set", "Remove all members in a sorted set within the given indexes", resp_cmd_zremrange, 1, 0},
    {"zremrangebyscore", 4, W, 1, 1, 1, "sorted-set", "Remove all members in a sorted set within the given scores", resp_cmd_zremrange, 2, 0},
    {"zremrangebylex", 4, W, 1, 1, 1, "sorted-set", "Remove all members in a sorted set between the given lexicographical range", resp_cmd_zremrange, 3, 0},
    {"zpopmin", -2, W | F, 1, 1, 1, "sorted-set", "Remove and return members with the lowest scores in a sorted set", resp_cmd_zpop, 0, 0},
    {"zpopmax", -2, W | F, 1, 1, 1, "sorted-set", "Remove and return members with the highest scores in a sorted set", resp_cmd_zpop, 1, 0},
    {"zscan", -3, R, 1, 1, 1, "sorted-set", "Incrementally iterate sorted sets elements and associated scores", resp_cmd_zscan, 0, 0},
    {"zrandmember", -2, R, 1, 1, 1, "sorted-set", "Get one or multiple random elements from a sorted set", resp_cmd_zrandmember, 0, 0},
    /* set operations: every argument from the first key on counts as a key,
     * so a script holds all their stripes; aux: ZOP_* | ZOP_STORE (0x10) */
    {"zunionstore", -4, W | M, 1, 0, 0, "sorted-set", "Add multiple sorted sets and store the resulting sorted set in a new key", resp_cmd_zsetop, 0 | 0x10, 2},
    {"zinterstore", -4, W | M, 1, 0, 0, "sorted-set", "Intersect multiple sorted sets and store the resulting sorted set in a new key", resp_cmd_zsetop, 1 | 0x10, 2},
    {"zdiffstore", -4, W | M, 1, 0, 0, "sorted-set", "Subtract multiple sorted sets and store the resulting sorted set in a new key", resp_cmd_zsetop, 2 | 0x10, 2},
    {"zunion", -3, R, 0, 0, 0, "sorted-set", "Add multiple sorted sets", resp_cmd_zsetop, 0, 1},
    {"zinter", -3, R, 0, 0, 0, "sorted-set", "Intersect multiple sorted sets", resp_cmd_zsetop, 1, 1},
    {"zdiff", -3, R, 0, 0, 0, "sorted-set", "Subtract multiple sorted sets", resp_cmd_zsetop, 2, 1},
    {"zintercard", -3, R, 0, 0, 0, "sorted-set", "Intersect multiple sorted sets and return the cardinality of the result", resp_cmd_zsetop, 3, 1},
    {"zrangestore", -5, W | M, 1, 2, 1, "sorted-set", "Store a range of members from sorted set into another key", resp_cmd_zrangestore, 0, 0},
    {"zmpop", -4, W, 0, 0, 0, "sorted-set", "Remove and return members with scores in a sorted set", resp_cmd_zmpop, 0, 1},
};
#undef R
#undef W
#undef F
#undef M
#undef A
#undef S
#undef N
#undef L
#undef BUSY_OK
#undef SCRIPT_FLAGS

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))
#define INDEX_SIZE 512            /* power of two, > 2 * NCOMMANDS */
#define NAME_MAX_LEN 16

static uint8_t cmd_index[INDEX_SIZE];   /* row + 1; 0 = empty */

const struct resp_cmd *resp_cmd_table(size_t *count)
{
    *count = NCOMMANDS;
    return commands;
}

/* FNV-1a over the ASCII-lower-cased name. */
static unsigned name_hash(const char *p, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)p[i];
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b + 32);
        h = (h ^ b) * 16777619u;
    }
    return h & (INDEX_SIZE - 1);
}

const struct resp_cmd *resp_cmd_find(const char *name, size_t len)
{
    if (len == 0 || len > NAME_MAX_LEN)
        return NULL;
    for (unsigned i = name_hash(name, len);; i = (i + 1) & (INDEX_SIZE - 1)) {
        if (cmd_index[i] == 0)
            return NULL;
        const struct resp_cmd *cmd = &commands[cmd_index[i] - 1];
        if (resp_name_eq(name, len, cmd->name))
            return cmd;
    }
}

/* ---- INFO commandstats ----
 *
 * One row of counters per command per worker: a worker bumps only its own
 * row (relaxed stores, as stats.h's counters), INFO sums the rows. A reset
 * records the sums as a baseline under a lock only INFO and CONFIG take. */

static struct resp_cmdstat *cmdstats;        /* [workers][NCOMMANDS] */
static int cmdstat_rows;
static struct resp_cmdstat cmdstat_base[NCOMMANDS];
static pthread_mutex_t cmdstat_lock = PTHREAD_MUTEX_INITIALIZER;

static struct resp_cmdstat *cmdstat_of(const struct conn *c, const struct resp_cmd *cmd)
{
    int w = c->worker != NULL ? c->worker->id : 0;
    if (cmdstats == NULL || w < 0 || w >= cmdstat_rows)
        return NULL;
    return &cmdstats[(size_t)w * NCOMMANDS + (size_t)(cmd - commands)];
}

static void cmdstat_sum_raw(size_t i, struct resp_cmdstat *out)
{
    memset(out, 0, sizeof(*out));
    for (int w = 0; w < cmdstat_rows && cmdstats != NULL; w++) {
        const struct resp_cmdstat *r = &cmdstats[(size_t)w * NCOMMANDS + i];
        out->calls += __atomic_load_n(&r->calls, __ATOMIC_RELAXED);
        out->usec += __atomic_load_n(&r->usec, __ATOMIC_RELAXED);
        out->rejected += __atomic_load_n(&r->rejected, __ATOMIC_RELAXED);
        out->failed += __atomic_load_n(&r->failed, __ATOMIC_RELAXED);
    }
}

void resp_cmdstat_sum(size_t i, struct resp_cmdstat *out)
{
    if (i >= NCOMMANDS) {
        memset(out, 0, sizeof(*out));
        return;
    }
    cmdstat_sum_raw(i, out);
    pthread_mutex_lock(&cmdstat_lock);
    out->calls -= cmdstat_base[i].calls;
    out->usec -= cmdstat_base[i].usec;
    out->rejected -= cmdstat_base[i].rejected;
    out->failed -= cmdstat_base[i].failed;
    pthread_mutex_unlock(&cmdstat_lock);
}

void resp_cmdstat_reset(void)
{
    pthread_mutex_lock(&cmdstat_lock);
    for (size_t i = 0; i < NCOMMANDS; i++)
        cmdstat_sum_raw(i, &cmdstat_base[i]);
    pthread_mutex_unlock(&cmdstat_lock);
}

#define CMDSTAT_ADD(row, field, n) \
    __atomic_store_n(&(row)->field, __atomic_load_n(&(row)->field, __ATOMIC_RELAXED) + (n), \
                     __ATOMIC_RELAXED)

void resp_cmdstat_rejected(const struct conn *c, const struct resp_cmd *cmd)
{
    struct resp_cmdstat *row = cmdstat_of(c, cmd);
    if (row != NULL)
        CMDSTAT_ADD(row, rejected, 1);
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * -o null_storage, a benchmark mode: GET answers every key with the bulk
 * "null" and SET answers +OK (after the usual arity check; its options are
 * not looked at), with no storage behind them; every other command runs as
 * usual. A SET value is then never streamed into an item: it is buffered
 * like any argument, so one over RESP_REQ_MAX closes the connection.
 */
static enum proc_result null_get(struct conn *c, const struct resp_call *call)
{
    (void)call;
    rs_bulk(c, "null", 4);
    return PROC_MORE;
}

static enum proc_result null_set(struct conn *c, const struct resp_call *call)
{
    (void)call;
    rs_ok(c);
    return PROC_MORE;
}

void proto_resp_setup(const struct settings *s)
{
    _Static_assert(NCOMMANDS * 2 < INDEX_SIZE && NCOMMANDS < 255, "grow INDEX_SIZE");
    settings = s;
    memset(cmd_index, 0, sizeof(cmd_index));
    for (size_t k = 0; k < NCOMMANDS; k++) {
        unsigned i = name_hash(commands[k].name, strlen(commands[k].name));
        while (cmd_index[i] != 0)
            i = (i + 1) & (INDEX_SIZE - 1);
        cmd_index[i] = (uint8_t)(k + 1);
    }
    for (size_t k = 0; k < NCOMMANDS; k++) {
        if (commands[k].fn == resp_cmd_get || commands[k].fn == null_get)
            commands[k].fn = s->null_storage ? null_get : resp_cmd_get;
        else if (commands[k].fn == resp_cmd_set || commands[k].fn == null_set)
            commands[k].fn = s->null_storage ? null_set : resp_cmd_set;
    }
    resp_set_max_bulk(s->proto_max_bulk_len);
    limits.max_args = RESP_MAX_ARGS;
    limits.max_inline = RESP_INLINE_MAX;
    limits.stream_min = RESP_STREAM_MIN;
    free(cmdstats);
    cmdstat_rows = s->threads > 0 ? s->threads : 1;
    cmdstats = calloc((size_t)cmdstat_rows * NCOMMANDS, sizeof(*cmdstats));
    memset(cmdstat_base, 0, sizeof(cmdstat_base));
    script_setup(cmdstat_rows);   /* one script slot per worker */
}

/* ---- dispatch ---- */

static void unknown_command(struct conn *c, int argc, const struct resp_arg *argv)
{
    char args[512];
    size_t n = 0;
    args[0] = '\0';
    /* As Redis: up to ~128 bytes of arguments, each quoted, stopping at NUL. */
    for (int i = 1; i < argc && n < 128; i++) {
        size_t room = 128 - n, len = strnlen(argv[i].ptr, argv[i].len);
        if (len > room)
            len = room;
        n += (size_t)snprintf(args + n, sizeof(args) - n, "'%.*s' ", (int)len, argv[i].ptr);
    }
    size_t nlen = strnlen(argv[0].ptr, argv[0].len);
    rs_errorf(c, "ERR unknown command '%.*s', with args beginning with: %s",
              (int)(nlen < 128 ? nlen : 128), argv[0].ptr, args);
}

void resp_keys_begin(struct resp_keys *k, const struct resp_cmd *cmd, int argc,
                     const struct resp_arg *argv)
{
    int at = cmd->numkeys_at;
    int64_t n;

    k->dest = 0;
    k->next = 0;
    k->last = -1;
    k->step = 1;
    k->bad = false;
    if (at == 0) {
        if (cmd->first_key <= 0)
            return;
        k->next = cmd->first_key;
        k->last = cmd->last_key < 0 ? argc + cmd->last_key : cmd->last_key;
        if (k->last >= argc)
            k->last = argc - 1;
        k->step = cmd->key_step;
        return;
    }
    if (at >= argc || !rs_parse_i64(argv[at].ptr, argv[at].len, &n) || n < 0 || n >= argc - at ||
        (n == 0 && !(cmd->flags & RC_NO_MANDATORY_KEYS))) {
        k->bad = true;
        return;
    }
    if (cmd->first_key > 0 && cmd->first_key < argc)
        k->dest = cmd->first_key;
    k->next = at + 1;
    k->last = at + (int)n;
}

/* Every key argument must fit a kioku key. */
static bool keys_fit(const struct resp_cmd *cmd, int argc, const struct resp_arg *argv)
{
    struct resp_keys k;
    int i;

    /* A script's keys are only its arguments: its calls check their own. */
    if (cmd->flags & RC_NO_MANDATORY_KEYS)
        return true;
    resp_keys_begin(&k, cmd, argc, argv);
    while (resp_keys_next(&k, &i))
        if (argv[i].len > STORAGE_KEY_MAX)
            return false;
    return true;
}

/* An HTTP request (a browser tricked into posting to a cache port): its
 * request line ends in HTTP/x, its headers start "Host:". As memcached and
 * Redis do, such a connection is closed without a reply. */
static bool looks_like_http(int argc, const struct resp_arg *argv)
{
    const struct resp_arg *last = &argv[argc - 1];
    return (argc > 1 && last->len >= 5 && memcmp(last->ptr, "HTTP/", 5) == 0) ||
           rs_arg_is(&argv[0], "host:") || rs_arg_is(&argv[0], "post");
}

/* The command for a request, or NULL after replying why it cannot run;
 * cmd is resp_cmd_find(argv[0]) (NULL: no such command). */
static const struct resp_cmd *check_call(struct conn *c, const struct resp_cmd *cmd, int argc,
                                         const struct resp_arg *argv)
{
    if (cmd == NULL) {
        unknown_command(c, argc, argv);
        return NULL;
    }
    struct resp_cmdstat *row = cmdstat_of(c, cmd);
    if ((cmd->arity > 0 && argc != cmd->arity) || (cmd->arity < 0 && argc < -cmd->arity)) {
        rs_errorf(c, "ERR wrong number of arguments for '%s' command", cmd->name);
        if (row != NULL)
            CMDSTAT_ADD(row, rejected, 1);
        return NULL;
    }
    if (!keys_fit(cmd, argc, argv)) {
        rs_errorf(c, "ERR key too long: kioku keys are at most %d bytes", STORAGE_KEY_MAX);
        if (row != NULL)
            CMDSTAT_ADD(row, rejected, 1);
        return NULL;
    }
    return cmd;
}

/* ---- MONITOR ---- */

#define MONITOR_LINE_MAX (16 * 1024)
#define MONITOR_ARG_MAX 1024     /* bytes of one argument shown */

/* An argument as Redis quotes it ("...", with \\, \", \n, \r, \t, \a,
 * \b and \xHH), at most MONITOR_ARG_MAX bytes of it. */
static size_t quote_arg(char *p, size_t room, const char *s, size_t n)
{
    size_t o = 0;
    if (room < 8)
        return 0;
    room -= 6;   /* the quotes, a "...", the space */
    p[o++] = '"';
    for (size_t i = 0; i < n && i < MONITOR_ARG_MAX && o + 4 < room; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '\\': case '"': p[o++] = '\\'; p[o++] = (char)ch; break;
        case '\n': p[o++] = '\\'; p[o++] = 'n'; break;
        case '\r': p[o++] = '\\'; p[o++] = 'r'; break;
        case '\t': p[o++] = '\\'; p[o++] = 't'; break;
        case '\a': p[o++] = '\\'; p[o++] = 'a'; break;
        case '\b': p[o++] = '\\'; p[o++] = 'b'; break;
        default:
            if (ch >= 0x20 && ch < 0x7f)
                p[o++] = (char)ch;
            else
                o += (size_t)snprintf(p + o, 5, "\\x%02x", ch);
        }
    }
    if (n > MONITOR_ARG_MAX) {
        memcpy(p + o, "...", 3);
        o += 3;
    }
    p[o++] = '"';
    return o;
}

/* One request, for the monitors: "+<time> [0 <client>] "arg" ...", AUTH's
 * and HELLO AUTH's secrets as "(redacted)", as Redis. */
static void monitor_feed(struct conn *c, int argc, const struct resp_arg *argv)
{
    static __thread char line[MONITOR_LINE_MAX];
    char who[96];
    struct timespec ts;
    size_t o;
    int redact_from = argc > 0 && rs_arg_is(&argv[0], "auth") ? 1 : argc;

    if (argc > 0 && rs_arg_is(&argv[0], "hello"))
        for (int i = 1; i + 1 < argc && redact_from == argc; i++)
            if (rs_arg_is(&argv[i], "auth"))
                redact_from = i + 1;
    if (c->fd < 0)
        snprintf(who, sizeof(who), "lua");
    else
        conn_peer_name(c, who, sizeof(who));
    clock_gettime(CLOCK_REALTIME, &ts);
    o = (size_t)snprintf(line, sizeof(line), "+%lld.%06ld [0 %s]", (long long)ts.tv_sec,
                         ts.tv_nsec / 1000, who);
    for (int i = 0; i < argc && o + 16 < sizeof(line); i++) {
        line[o++] = ' ';
        if (i >= redact_from)
            o += (size_t)snprintf(line + o, sizeof(line) - o, "\"(redacted)\"");
        else
            o += quote_arg(line + o, sizeof(line) - o - 2, argv[i].ptr, argv[i].len);
    }
    line[o++] = '\r';
    line[o++] = '\n';
    watch_emit(WATCH_MONITOR, line, o);
}

/* MONITOR: +OK, then every request any client makes, as it runs. */
enum proc_result resp_cmd_monitor(struct conn *c, const struct resp_call *call)
{
    struct resp_conn *rc = state_of(c);
    enum watch_add_result why;
    (void)call;
    if (rc->monitor != NULL)
        return PROC_MORE;   /* already one: Redis ignores it too */
    if (c->fd < 0) {
        /* A script's client has no socket to stream to (and RC_NOSCRIPT
         * keeps scripts from getting here). */
        rs_error(c, "ERR MONITOR is not available here");
        return PROC_MORE;
    }
    rc->monitor = mc_watch_open(c, WATCH_MONITOR, &why);
    if (rc->monitor == NULL) {
        rs_error(c, why == WATCH_ADD_TOO_MANY ? "ERR max number of monitors reached"
                                              : "ERR out of memory");
        return PROC_MORE;
    }
    /* Queued before any line: the stream's wake-up runs on this thread,
     * after this request. */
    rs_ok(c);
    /* A monitor sends no requests: -o idle_timeout must not close it. */
    __atomic_store_n(&c->streaming, true, __ATOMIC_RELAXED);
    return PROC_MORE;
}

static enum proc_result run(struct conn *c, const struct resp_cmd *cmd, int argc,
                            const struct resp_arg *argv)
{
    struct resp_call call = {cmd, argc, argv};
    struct resp_conn *rc = state_of(c);
    rc->errors_seen = rc->errors;
    int64_t t0 = mono_us();
    /* Monitors see a request once it ran; a script (skip_monitor) before
     * it runs, so that its calls follow it, as Redis shows them. */
    bool shown = watch_on(WATCH_MONITOR) && !(cmd->flags & RC_ADMIN);
    if (shown && (cmd->flags & RC_SKIP_MONITOR))
        monitor_feed(c, argc, argv);
    enum proc_result res = cmd->fn(c, &call);
    if (shown && !(cmd->flags & RC_SKIP_MONITOR))
        monitor_feed(c, argc, argv);
    struct resp_cmdstat *row = cmdstat_of(c, cmd);
    if (row != NULL) {   /* after, as Redis: INFO does not count itself */
        CMDSTAT_ADD(row, calls, 1);
        CMDSTAT_ADD(row, usec, (uint64_t)(mono_us() - t0));
        /* The error of a call EXEC ran is that call's (seen already). */
        if (rc->errors != rc->errors_seen)
            CMDSTAT_ADD(row, failed, 1);
    }
    rc->errors_seen = rc->errors;
    STAT_INC(c->stats, commands_processed);
    return res;
}

enum proc_result resp_run(struct conn *c, int argc, const struct resp_arg *argv)
{
    const struct resp_cmd *cmd = resp_cmd_find(argv[0].ptr, argv[0].len);
    cmd = check_call(c, cmd, argc, argv);
    return cmd != NULL ? run(c, cmd, argc, argv) : PROC_MORE;
}

/* found: resp_cmd_find(argv[0]), done by the caller (maybe parsing ahead). */
static enum proc_result dispatch(struct conn *c, const struct resp_cmd *found, int argc,
                                 const struct resp_arg *argv)
{
    struct resp_multi *m = state_of(c)->multi;
    const struct resp_cmd *cmd = check_call(c, found, argc, argv);
    if (cmd != NULL && !(cmd->flags & RC_NOAUTH) && !resp_authed(c)) {
        /* After the name and arity checks, as Redis; inside MULTI too. */
        rs_error(c, "NOAUTH Authentication required.");
        resp_cmdstat_rejected(c, cmd);
        if (m != NULL)
            resp_multi_flag_error(m);
        return PROC_MORE;
    }
    if (cmd != NULL && script_busy() && !resp_script_allowed_when_busy(cmd, argc, argv)) {
        rs_error(c, SCRIPT_ERR_BUSY);
        resp_cmdstat_rejected(c, cmd);
        if (m != NULL)
            resp_multi_flag_error(m);
        return PROC_MORE;
    }
    if (m != NULL && cmd != NULL && cmd->fn == resp_cmd_shutdown) {
        rs_error(c, "ERR Command not allowed inside a transaction");
        resp_cmdstat_rejected(c, cmd);
        resp_multi_flag_error(m);
        return PROC_MORE;
    }
    if (m != NULL && (cmd == NULL || !resp_multi_runs_now(cmd))) {
        if (cmd == NULL)
            resp_multi_flag_error(m);
        else
            resp_multi_queue(c, m, argc, argv);
        return PROC_MORE;
    }
    return cmd != NULL ? run(c, cmd, argc, argv) : PROC_MORE;
}

/* The count of the multibulk request at the head of the buffer, which the
 * parser has already validated as a number. */
static uint64_t head_count(const char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 1; i < n && p[i] >= '0' && p[i] <= '9' && v < RESP_MAX_ARGS + 1; i++)
        v = v * 10 + (uint64_t)(p[i] - '0');
    return v;
}

enum grow { GROW_RETRY, GROW_WAIT, GROW_FAIL };

/* The request has more arguments than the array in use holds. */
static enum grow grow_argv(struct conn *c, struct resp_conn *rc)
{
    uint64_t count = head_count(conn_rbuf(c), conn_rlen(c));
    if (count > RESP_MAX_ARGS || count * RESP_MIN_ARG_BYTES > RESP_REQ_MAX)
        return GROW_FAIL;
    if (count <= rc->argv_cap)
        return GROW_FAIL;
    if (conn_rlen(c) < count * RESP_MIN_ARG_BYTES)
        return GROW_WAIT;   /* allocate only for arguments that can be there */
    struct resp_arg *a = realloc(rc->argv, sizeof(*a) * count);
    if (a == NULL)
        return GROW_FAIL;
    rc->argv = a;
    rc->argv_cap = (uint32_t)count;
    return GROW_RETRY;
}

/* Refuse what cannot go on: reply the error, close after the reply. */
static enum proc_result protocol_error(struct conn *c, const char *error)
{
    rs_error(c, error);
    conn_consume(c, conn_rlen(c));
    return PROC_CLOSE;
}

static void stream_free(struct resp_conn *rc)
{
    struct resp_stream *s = rc->stream;
    if (s == NULL)
        return;
    rc->stream = NULL;
    if (s->it != NULL)
        item_put(s->it);
    free(s);   /* while reading, conn_close() puts the item it holds */
}

/* The request of rc->stream is complete: run it (unless refused). */
static enum proc_result stream_finish(struct conn *c, struct resp_conn *rc)
{
    struct resp_stream *s = rc->stream;
    enum proc_result res = PROC_MORE;
    struct conn_out_mark m;
    bool quiet = quiet_begin(c, rc, &m);
    /* Checked again when it runs: a busy script may have begun since, and
     * one on this thread serves this connection from its hook. */
    if (s->cmd != NULL && script_busy())
        rs_error(c, SCRIPT_ERR_BUSY);
    else if (s->cmd != NULL)
        res = run(c, s->cmd, (int)s->nargs, s->argv);
    quiet_end(c, rc, &m, quiet);
    stream_free(rc);
    return res;
}

static enum proc_result dispatch(struct conn *c, const struct resp_cmd *found, int argc,
                                 const struct resp_arg *argv);

static enum proc_result dispatch_replying(struct conn *c, struct resp_conn *rc,
                                          const struct resp_cmd *found, int argc,
                                          const struct resp_arg *argv)
{
    struct conn_out_mark m;
    bool quiet = quiet_begin(c, rc, &m);
    enum proc_result res = dispatch(c, found, argc, argv);
    quiet_end(c, rc, &m, quiet);
    return res;
}

/* The value's bytes are all in its item: give it back its own CRLF (the
 * client's two bytes went over it) and run the request if it ends here. */
static enum proc_result stream_value_in(struct conn *c, struct resp_conn *rc)
{
    struct resp_stream *s = rc->stream;
    s->it = conn_take_value(c);
    s->reading = false;
    item_value_write(s->it, item_nbytes(s->it), "\r\n", 2);
    return s->arg + 1 == s->nargs ? stream_finish(c, rc) : PROC_MORE;
}

/*
 * PARSE_STREAM: take argument r->argc (r->stream_len bytes at rbuf +
 * used) into an item if the command stores it there. false: the caller
 * parses the request buffered instead. true: *res says how to go on (the
 * bytes may still be arriving: PROC_NREAD).
 */
static bool stream_begin(struct conn *c, struct resp_conn *rc, const struct resp_req *r,
                         size_t used, enum proc_result *res)
{
    if (r->argc < 2 || r->nargs > RESP_STREAM_ARGS || rc->multi != NULL || !resp_authed(c))
        return false;
    const struct resp_cmd *cmd = resp_cmd_find(r->argv[0].ptr, r->argv[0].len);
    if (cmd == NULL || resp_stream_arg(cmd) != (int)r->argc)
        return false;
    size_t bytes = 0;   /* each argument before it is under RESP_STREAM_MIN */
    for (uint32_t i = 0; i < r->argc; i++)
        bytes += r->argv[i].len;
    struct resp_stream *s = malloc(sizeof(*s) + bytes);
    if (s == NULL)
        return false;
    memset(s, 0, sizeof(*s));
    s->arg = r->argc;
    s->nargs = r->nargs;
    for (uint32_t i = 0, off = 0; i < r->nargs; i++) {
        s->argv[i].ptr = "";
        s->argv[i].len = 0;
        if (i < r->argc) {
            memcpy(s->bytes + off, r->argv[i].ptr, r->argv[i].len);
            s->argv[i].ptr = s->bytes + off;
            s->argv[i].len = r->argv[i].len;
            off += (uint32_t)r->argv[i].len;
        }
    }
    /* Its bytes are in the item, not here: a handler asks resp_stream_*(). */
    s->argv[s->arg].len = r->stream_len;
    rc->stream = s;
    conn_consume(c, used);
    size_t n = r->stream_len + 2;

    /* Arity and key first, as for any request; then the allocation. */
    bool callable = check_call(c, cmd, (int)s->nargs, s->argv) != NULL;
    if (callable && script_busy()) {
        rs_error(c, SCRIPT_ERR_BUSY);   /* as dispatch() */
    } else if (callable) {
        enum item_alloc_status st;
        const struct resp_arg *key = &s->argv[1];
        s->it = item_alloc_big(key->ptr, key->len, 0, 0, r->stream_len, resp_max_bulk(),
                               c->now, &st);
        if (s->it != NULL)
            s->cmd = cmd;
        else
            rs_alloc_error(c, (int)st);
    }
    if (s->cmd == NULL) {
        /* Refused and answered: skip the bytes, then the rest of it. */
        bool last = s->arg + 1 == s->nargs;
        if (last)
            stream_free(rc);
        conn_swallow(c, n);
        *res = PROC_NREAD;
        return true;
    }
    struct item *it = s->it;
    s->it = NULL;
    s->reading = true;
    if (conn_read_value(c, it, n))
        *res = stream_value_in(c, rc);
    else
        *res = PROC_NREAD;
    return true;
}

/*
 * Pipelining, as in proto_mc_text.c: with several requests buffered, parse
 * ahead (the parser is pure) and prefetch the keys the commands will look
 * up (the table's key positions), so their cache misses overlap. The
 * requests parsed there are kept (struct ahead, on resp_process's stack:
 * the buffer stays put during a call), with their rows and their keys'
 * hashes (resp_key_hash), so none is parsed, looked up or hashed twice.
 * Only multibulk requests: an inline one is decoded in place and must be
 * parsed once. Stops at an incomplete, refused or unknown request, one
 * with more than PF_ARGS arguments, after PF_REQS requests or PF_KEYS
 * keys, and after a command without keys (kept): those (AUTH, HELLO,
 * CONFIG, MULTI, EVAL...) may change how the next requests parse or run.
 * A '*' after the first byte is the cheap sign of a second request (one
 * inside a value only costs a look).
 */
#define PF_KEYS 16
#define PF_REQS 16
#define PF_ARGS 8

struct ahead {
    struct resp_arg argv[PF_REQS][PF_ARGS];
    const struct resp_cmd *cmd[PF_REQS];
    const char *at[PF_REQS];        /* where request i starts in the buffer */
    size_t used[PF_REQS];
    uint32_t argc[PF_REQS];
    unsigned n, next;
    const char *key[PF_KEYS];       /* hashed keys, in buffer order */
    uint64_t hv[PF_KEYS];
    unsigned nk, knext;
    const char *end;                /* no new look before the input gets here */
};

static void look_ahead(struct ahead *a, char *p, size_t n, const struct resp_limits *lim)
{
    size_t off = 0;

    a->n = a->next = a->nk = a->knext = 0;
    if (n < 2 || p[0] != '*' || memchr(p + 1, '*', n - 1) == NULL) {
        a->end = p + n;
        return;
    }
    while (a->nk < PF_KEYS && a->n < PF_REQS && off < n && p[off] == '*') {
        struct resp_req r = {.argv = a->argv[a->n], .argv_cap = PF_ARGS};
        struct resp_state st;
        size_t used = 0;
        resp_state_init(&st);
        if (resp_parse(&r, &st, p + off, n - off, &used, lim) != PARSE_OK || r.argc == 0)
            break;
        const struct resp_arg *argv = r.argv;
        const struct resp_cmd *cmd = resp_cmd_find(argv[0].ptr, argv[0].len);
        if (cmd == NULL)
            break;
        int argc = (int)r.argc;
        struct resp_keys k;
        int i;
        resp_keys_begin(&k, cmd, argc, argv);
        while (a->nk < PF_KEYS && resp_keys_next(&k, &i)) {
            a->key[a->nk] = argv[i].ptr;
            a->hv[a->nk++] = item_hash(argv[i].ptr, argv[i].len);
        }
        a->cmd[a->n] = cmd;
        a->at[a->n] = p + off;
        a->used[a->n] = used;
        a->argc[a->n++] = r.argc;
        off += used;
        if (!resp_cmd_has_keys(cmd))
            break;
    }
    if (a->nk > 1)
        item_prefetch(a->hv, a->nk);
    a->end = p + (off < n ? (off > 0 ? off : 1) : n);
}

uint64_t resp_key_hash(const struct conn *c, const struct resp_arg *key)
{
    struct ahead *a = state_of(c)->ahead;
    if (a != NULL) {
        /* Keys come in buffer order; skip those a command did not look up. */
        while (a->knext < a->nk && a->key[a->knext] < key->ptr)
            a->knext++;
        if (a->knext < a->nk && a->key[a->knext] == key->ptr)
            return a->hv[a->knext++];
    }
    return item_hash(key->ptr, key->len);
}

static enum proc_result process(struct conn *c, struct resp_conn *rc, struct ahead *ah)
{
    if (!rc->started) {
        /* As Redis 7: a client that arrives while the default user needs no
         * password stays authenticated if CONFIG SET requirepass adds one. */
        rc->started = true;
        rc->authed = !auth_resp_required();
    }
    for (;;) {
        if (rc->monitor != NULL) {   /* a monitor only listens: input is dropped */
            conn_consume(c, conn_rlen(c));
            return PROC_MORE;
        }
        if (conn_rlen(c) == 0)
            return PROC_MORE;
        if (conn_out_full(c) || !conn_budget(c))
            return PROC_YIELD;
        struct resp_req r;
        struct resp_stream *s = rc->stream;
        if (s != NULL) {   /* the arguments after a streamed one */
            r.argv = s->argv + s->arg + 1;
            r.argv_cap = s->nargs - s->arg - 1;
        } else {
            r.argv = rc->argv != NULL ? rc->argv : small_argv;
            r.argv_cap = rc->argv != NULL ? rc->argv_cap : RESP_SMALL_ARGS;
        }
        struct resp_limits lim = limits;
        lim.max_bulk = resp_max_bulk();
        lim.unauthenticated = !resp_authed(c);
        const char *head = c->rbuf + c->rpos;
        if (head >= ah->end && s == NULL && !lim.unauthenticated && !settings->null_storage)
            look_ahead(ah, c->rbuf + c->rpos, conn_rlen(c), &lim);
        if (ah->next < ah->n && ah->at[ah->next] == head && s == NULL) {
            /* Parsed ahead: no partial parse can be pending for it. */
            unsigned i = ah->next++;
            resp_state_init(&rc->st);
            enum proc_result res = dispatch_replying(c, rc, ah->cmd[i], (int)ah->argc[i], ah->argv[i]);
            conn_consume(c, ah->used[i]);
            if (res != PROC_MORE)
                return res;
            continue;
        }
        size_t used = 0;
        enum parse_status ps = resp_parse(&r, &rc->st, c->rbuf + c->rpos, conn_rlen(c),
                                          &used, &lim);
        if (ps == PARSE_AGAIN) {
            c->budget++;   /* an incomplete request is not a request */
            if (conn_rlen(c) >= RESP_REQ_MAX)
                return protocol_error(c, "ERR Protocol error: too big request");
            return PROC_MORE;
        }
        if (ps == PARSE_STREAM) {
            enum proc_result res;
            if (stream_begin(c, rc, &r, used, &res)) {
                if (res != PROC_MORE)
                    return res;
                continue;
            }
            /* Buffered instead: it must fit the read buffer. */
            if (used + r.stream_len + 2 > RESP_REQ_MAX)
                return protocol_error(c, "ERR Protocol error: too big request");
            resp_state_nostream(&rc->st);
            c->budget++;
            continue;
        }
        if (s != NULL) {
            if (ps != PARSE_OK) {
                stream_free(rc);
                return protocol_error(c, r.error);
            }
            conn_consume(c, used);
            enum proc_result res = stream_finish(c, rc);
            if (res != PROC_MORE)
                return res;
            continue;
        }
        if (ps == PARSE_TOO_LONG && strcmp(r.error, RESP_ERR_MBULK_LEN) == 0) {
            c->budget++;
            enum grow g = grow_argv(c, rc);
            if (g == GROW_RETRY)
                continue;
            if (g == GROW_WAIT)
                return PROC_MORE;
        }
        if (ps != PARSE_OK)
            return protocol_error(c, r.error);
        enum proc_result res = PROC_MORE;
        if (r.argc > 0 && r.is_inline && looks_like_http((int)r.argc, r.argv)) {
            c->close_reason = CONN_CLOSE_ERROR;
            res = PROC_CLOSE;
        }
        else if (r.argc > 0)
            res = dispatch_replying(c, rc, resp_cmd_find(r.argv[0].ptr, r.argv[0].len), (int)r.argc,
                                    r.argv);
        conn_consume(c, used);
        if (rc->argv != NULL) {
            /* A big request's array is not kept for an idle connection. */
            free(rc->argv);
            rc->argv = NULL;
            rc->argv_cap = 0;
        }
        if (res != PROC_MORE)
            return res;
    }
}

static enum proc_result resp_process(struct conn *c)
{
    struct resp_conn *rc = state_of(c);
    struct ahead ah;
    ah.n = ah.next = ah.nk = ah.knext = 0;
    ah.end = c->rbuf + c->rpos;
    struct ahead *outer = rc->ahead;   /* a script's hook may nest a call */
    rc->ahead = &ah;
    enum proc_result res = process(c, rc, &ah);
    rc->ahead = outer;
    return res;
}

static enum proc_result resp_value_done(struct conn *c)
{
    struct resp_conn *rc = state_of(c);
    if (rc->stream == NULL || !rc->stream->reading)
        return PROC_CLOSE;   /* never asked for a value */
    return stream_value_in(c, rc);
}

static void resp_release(struct conn *c)
{
    struct resp_conn *rc = state_of(c);
    mc_watch_stop(rc->monitor);
    rc->monitor = NULL;
    stream_free(rc);
    resp_multi_free(rc->multi);
    rc->multi = NULL;
    free(rc->argv);
    rc->argv = NULL;
    rc->argv_cap = 0;
}

const struct proto_ops proto_resp = {
    .name = "resp",
    .process = resp_process,
    .value_done = resp_value_done,
    .release = resp_release,
};
