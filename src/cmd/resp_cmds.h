/*
 * The RESP command layer's internal interface, shared by proto_resp.c (the
 * connection side: parsing, dispatch, reply helpers, the command table) and
 * the command files resp_strings.c, resp_keys.c and resp_server.c.
 *
 * A command is a row {name, arity, flags, key positions, handler}. The
 * dispatcher has checked the arity and that every key argument fits a
 * kioku key (at most STORAGE_KEY_MAX bytes) before a handler runs, so
 * handlers only validate their options. A handler queues exactly one
 * reply (the rs_* helpers below) and returns PROC_MORE, or PROC_CLOSE to
 * close the connection after the queued output (QUIT).
 *
 * Replies follow the connection's protocol version: RESP2 by default,
 * RESP3 after HELLO 3. Only the helpers know the difference (null, map,
 * verbatim string), so handlers are written once.
 */
#ifndef KIOKU_RESP_CMDS_H
#define KIOKU_RESP_CMDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conn.h"
#include "proto/resp.h"

struct settings;
struct item;

/* Command flags, reported by COMMAND INFO under Redis's names. */
enum {
    RC_WRITE = 1 << 0,     /* "write": may change the keyspace */
    RC_READONLY = 1 << 1,  /* "readonly" */
    RC_FAST = 1 << 2,      /* "fast": O(1) or O(log n) */
    RC_ADMIN = 1 << 3,     /* "admin" */
    RC_DENYOOM = 1 << 4,   /* "denyoom": may allocate memory */
    RC_STALE = 1 << 5,     /* "stale" */
    RC_NOAUTH = 1 << 6,    /* "no_auth": runs before the client authenticates */
    /* Reported only, as Redis 7.0 reports them (kioku has no replicas, no
     * loading phase and no MONITOR, so they change nothing here). */
    RC_LOADING = 1 << 7,        /* "loading" */
    RC_NOSCRIPT = 1 << 8,       /* "noscript" */
    RC_SKIP_MONITOR = 1 << 9,   /* "skip_monitor" */
    RC_SKIP_SLOWLOG = 1 << 10,  /* "skip_slowlog" */
    RC_NO_MANDATORY_KEYS = 1 << 11, /* "no_mandatory_keys" */
    RC_NO_MULTI = 1 << 12,      /* "no_multi" */
    RC_ALLOW_BUSY = 1 << 13,    /* "allow_busy" */
    RC_CONTAINER = 1 << 14,     /* has subcommands: COMMAND INFO shows no
                                 * flags and no keys, as Redis does */
};

struct resp_cmd;

/* One call: the row that matched and the arguments (argv[0] is the name). */
struct resp_call {
    const struct resp_cmd *cmd;
    int argc;
    const struct resp_arg *argv;
};

typedef enum proc_result (*resp_handler)(struct conn *c, const struct resp_call *call);

struct resp_cmd {
    const char *name;      /* lower case, as Redis reports it */
    int arity;             /* Redis convention: >0 exact, <0 at least -arity */
    uint32_t flags;        /* RC_* */
    int first_key;         /* 0: no keys */
    int last_key;          /* -1: the last argument */
    int key_step;
    const char *group;     /* COMMAND DOCS "group" */
    const char *summary;   /* COMMAND DOCS "summary" */
    resp_handler fn;
    int aux;               /* handler-specific variant (e.g. time unit) */
    /* Movable keys ("movablekeys"): the index of the numkeys argument, the
     * keys right after it; first_key is then 0 or a destination before it.
     * 0 for the commands whose keys are the range above. */
    int numkeys_at;
};

/* The keys of one call, in argument order:
 *     struct resp_keys k; int i;
 *     resp_keys_begin(&k, cmd, argc, argv);
 *     while (resp_keys_next(&k, &i)) ... argv[i] ...
 * A movable-key call whose numkeys is not a count that fits (0 fits only
 * a script) is `bad` and has no keys: the command refuses it anyway. */
struct resp_keys {
    int dest;       /* a destination still to give, 0 none */
    int next, last, step;
    bool bad;
};
void resp_keys_begin(struct resp_keys *k, const struct resp_cmd *cmd, int argc,
                     const struct resp_arg *argv);
/* Whether the command names keys at all (else it works on the keyspace as
 * a whole, or on none). */
static inline bool resp_cmd_has_keys(const struct resp_cmd *cmd)
{
    return cmd->first_key > 0 || cmd->numkeys_at > 0;
}
static inline bool resp_keys_next(struct resp_keys *k, int *idx)
{
    if (k->dest > 0) {
        *idx = k->dest;
        k->dest = 0;
        return true;
    }
    if (k->next <= 0 || k->next > k->last)
        return false;
    *idx = k->next;
    k->next += k->step;
    return true;
}

/* INFO commandstats for one row of the command table: calls that ran, the
 * microseconds they took, calls refused before running (arity, key size)
 * and calls that ran and answered an error. */
struct resp_cmdstat {
    uint64_t calls, usec, rejected, failed;
};
/* Row i's counters summed over the workers, minus the last reset. Not a
 * hot path: reads every worker's row. */
void resp_cmdstat_sum(size_t i, struct resp_cmdstat *out);
/* CONFIG RESETSTAT: read as zero from now on (the workers' counters are
 * theirs alone, so this records a baseline). */
void resp_cmdstat_reset(void);
/* Count a call of cmd refused before it ran (rejected_calls). */
void resp_cmdstat_rejected(const struct conn *c, const struct resp_cmd *cmd);

/* The command table (proto_resp.c) and a case-insensitive lookup. */
const struct resp_cmd *resp_cmd_table(size_t *count);
const struct resp_cmd *resp_cmd_find(const char *name, size_t len);

/* item_hash(key) for a key argument of the call running on c; taken from
 * the look-ahead of a pipelined batch when that hashed it already. */
uint64_t resp_key_hash(const struct conn *c, const struct resp_arg *key);

/* Count a lookup Redis makes with lookupKeyRead (EXISTS, TTL, GETBIT, LCS,
 * GETSET...) in INFO's keyspace_hits or keyspace_misses; not in memcached's
 * get stats, as it is not a get. */
void resp_count_read(struct conn *c, const struct item *it);
/* That lookup itself: the key's item (a collection too), counted. */
struct item *resp_read_item(struct conn *c, const struct resp_arg *key);

/* The settings, read-only after proto_resp_setup(). */
const struct settings *resp_settings(void);
/* The longest bulk argument accepted (proto-max-bulk-len), which also
 * bounds every string a RESP command makes (APPEND, SETRANGE). */
size_t resp_max_bulk(void);
/* CONFIG SET proto-max-bulk-len (validated by the caller). */
void resp_set_max_bulk(size_t n);

/*
 * Large values. Argument i of a call may have been read straight into an
 * item instead of the read buffer (proto_resp.c: a bulk of 64 KiB or more
 * in the argument resp_stream_arg() names). Then call->argv[i].len is its
 * length but its bytes are not at argv[i].ptr: they are in the item, an
 * unlinked one made for the key argv[1], with flags 0 and no expiry.
 * resp_stream_value() lends it (NULL: argv[i] is an ordinary argument);
 * resp_stream_take() hands the reference over, once.
 */
struct item *resp_stream_value(struct conn *c, const struct resp_call *call, int i);
struct item *resp_stream_take(struct conn *c, const struct resp_call *call, int i);
/* The argument of cmd that may arrive that way (resp_strings.c); 0: none. */
int resp_stream_arg(const struct resp_cmd *cmd);

/* The Redis version kioku answers as (HELLO, INFO). */
#define RESP_REDIS_VERSION "7.0.0"

/* ---- per-connection facts kept by proto_resp.c ---- */

/* 2 or 3. */
int resp_proto_version(const struct conn *c);
void resp_set_proto_version(struct conn *c, int version);
/* May this client run commands? True once it authenticated, or while no
 * password is required (auth_resp_required(), which CONFIG SET may change). */
bool resp_authed(const struct conn *c);
void resp_set_authed(struct conn *c);
/* CLIENT REPLY ON | OFF | SKIP for c's requests from the next one on. */
enum resp_reply_mode { RESP_REPLY_ON, RESP_REPLY_OFF, RESP_REPLY_SKIP };
void resp_set_reply_mode(struct conn *c, enum resp_reply_mode mode);

/* ---- replies (one element each; they follow the protocol version) ---- */

void rs_ok(struct conn *c);
void rs_simple(struct conn *c, const char *s);
/* s is the error text without "-" and CRLF, starting with its code. */
void rs_error(struct conn *c, const char *s);
/* The same reply, for an error INFO errorstats has counted already (one a
 * script's redis.call got): it still makes the call a failed one. */
void rs_error_counted(struct conn *c, const char *s);
void rs_errorf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rs_int(struct conn *c, int64_t v);
void rs_bulk(struct conn *c, const void *data, size_t len);
void rs_bulk_str(struct conn *c, const char *s);
/* The item's value bytes [off, off+len) as one bulk string, not copied. */
void rs_bulk_item(struct conn *c, struct item *it, size_t off, size_t len);
void rs_null(struct conn *c);        /* missing value: $-1, or _ in RESP3 */
void rs_null_array(struct conn *c);  /* *-1, or _ in RESP3 */
void rs_array(struct conn *c, size_t n);
void rs_map(struct conn *c, size_t pairs);   /* RESP2: an array of 2*pairs */
void rs_set(struct conn *c, size_t n);       /* RESP2: an array */
/* Free text (INFO, CLIENT INFO): bulk, or a "txt" verbatim string in RESP3. */
void rs_verbatim(struct conn *c, const char *s, size_t len);

/* Common errors, Redis's exact texts. */
#define RS_ERR_NOT_INT   "ERR value is not an integer or out of range"
#define RS_ERR_SYNTAX    "ERR syntax error"
#define RS_ERR_OVERFLOW  "ERR increment or decrement would overflow"
#define RS_ERR_NOT_FLOAT "ERR value is not a valid float"
#define RS_ERR_TOO_BIG   "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
#define RS_ERR_OOM       "OOM command not allowed when used memory > 'maxmemory'."
#define RS_ERR_WRONGTYPE "WRONGTYPE Operation against a key holding the wrong kind of value"

/* Reply the error for a failed item_alloc() (too large / out of memory). */
void rs_alloc_error(struct conn *c, int alloc_status);
/* "ERR invalid expire time in '<cmd>' command". */
void rs_expire_error(struct conn *c, const struct resp_call *call);

/* ---- arguments ---- */

/* Redis's strict integer syntax (string2ll): no blanks, no '+', no leading
 * zeros, fits int64_t. */
bool rs_parse_i64(const char *s, size_t len, int64_t *out);
/* rs_parse_i64 on an argument; on failure replies RS_ERR_NOT_INT. */
bool rs_arg_i64(struct conn *c, const struct resp_arg *a, int64_t *out);
/* Case-insensitive comparison with a word. */
bool rs_arg_is(const struct resp_arg *a, const char *word);
/* Redis's string2ld (INCRBYFLOAT, HINCRBYFLOAT): the whole text one
 * number, no leading blank, no NaN. */
#define LD_CHARS_MAX (5 * 1024)   /* Redis's MAX_LONG_DOUBLE_CHARS */
bool rs_parse_ld(const char *s, size_t len, long double *out);
/* Redis's human-friendly long double: 17 decimals, trailing zeros cut;
 * 0 when it does not fit cap. */
size_t rs_format_ld(char *buf, size_t cap, long double v);

/* ---- handlers ---- */

/* resp_strings.c */
enum proc_result resp_cmd_get(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_set(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_setex(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_setnx(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_getset(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_getdel(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_getex(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_mget(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_mset(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_msetnx(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_append(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_strlen(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_getrange(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_setrange(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_incr(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_incrby(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_incrbyfloat(struct conn *c, const struct resp_call *call);

/* resp_bits.c */
enum proc_result resp_cmd_setbit(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_getbit(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_bitcount(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_bitpos(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_bitop(struct conn *c, const struct resp_call *call);
/* resp_lcs.c */
enum proc_result resp_cmd_lcs(struct conn *c, const struct resp_call *call);

/* resp_keys.c */
enum proc_result resp_cmd_del(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_exists(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_touch(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_expire(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_ttl(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_persist(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_type(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_object(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_memory(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_rename(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_copy(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_randomkey(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_keys(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_scan(struct conn *c, const struct resp_call *call);

/* Container commands (resp_server.c): a sub-command table, run by name with
 * Redis's arity and unknown-subcommand errors. */
typedef void (*resp_sub_handler)(struct conn *c, const struct resp_call *call);
struct resp_sub {
    const char *name;
    int arity;          /* counting the container and the sub-command name */
    resp_sub_handler fn;
};
void resp_run_sub(struct conn *c, const struct resp_call *call, const struct resp_sub *subs,
                  size_t n, const char *upper);
/* A HELP reply: the NULL-terminated lines as simple strings. */
void resp_reply_help(struct conn *c, const char *const *lines);

/* resp_hash.c */
struct coll_handle;
/* COPY: every field of open hash src into dst, which is new and empty.
 * False when no memory (dst is emptied again). */
bool resp_hash_copy(struct coll_handle *src, struct coll_handle *dst);
enum proc_result resp_cmd_hset(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_hsetnx(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_hget(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_hmget(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_hgetall(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_hdel(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_hexists(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_hlen(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_hincrby(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_hincrbyfloat(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_hrandfield(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_hscan(struct conn *c, const struct resp_call *call);
/* Shared by HSCAN and ZSCAN: Redis's strtoull cursor, and the options. */
bool rs_parse_cursor(const struct resp_arg *a, uint64_t *out);

/* resp_server.c */
enum proc_result resp_cmd_ping(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_echo(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_quit(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_select(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_hello(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_auth(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_client(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_command(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_monitor(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_config(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_function(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_info(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_dbsize(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_flushall(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_shutdown(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_time(struct conn *c, const struct resp_call *call);

/* resp_script.c: EVAL and its variants (aux bit 0 by digest, bit 1
 * read-only), and SCRIPT. */
enum proc_result resp_cmd_eval(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_script(struct conn *c, const struct resp_call *call);
/* While a script is busy: may this command run (SCRIPT KILL, AUTH, ...)? */
bool resp_script_allowed_when_busy(const struct resp_cmd *cmd, int argc,
                                   const struct resp_arg *argv);

/* resp_multi.c */
enum proc_result resp_cmd_multi(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_exec(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_discard(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_watch(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_unwatch(struct conn *c, const struct resp_call *call);

/* resp_zset.c and resp_zsetops.c (sorted sets) */
/* COPY: resp_hash_copy() for a sorted set. */
bool resp_zset_copy(struct coll_handle *src, struct coll_handle *dst);
enum proc_result resp_cmd_zadd(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_zcard(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_zscore(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_zmscore(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_zrank(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_zcount(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_zrange(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_zrem(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_zremrange(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_zpop(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_zscan(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_zrandmember(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_zsetop(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_zrangestore(struct conn *c, const struct resp_call *call);
enum proc_result resp_cmd_zmpop(struct conn *c, const struct resp_call *call);

#endif
