/*
 * memcached binary protocol commands.
 *
 * process() decodes one request at a time with mc_bin_parse_prefix(): the
 * header, extras and key (at most 24 + 255 + 250 bytes) must be buffered, the
 * value never is. A storage opcode allocates its item first and lets the
 * connection read the value straight into it (conn_read_value), so a 1 MiB
 * value arriving over many reads costs no extra copy or buffer; the store
 * completes in store_done(), at once if the value was already buffered.
 *
 * Every handler is a row of one table indexed by the loud opcode; the quiet
 * variants share the row and differ only in what they leave unsaid:
 *   - GetQ/GetKQ/GATQ/GATKQ send nothing on a miss;
 *   - SetQ, DeleteQ, IncrementQ, FlushQ ... send nothing on success, but do
 *     send errors;
 *   - QuitQ closes without a word.
 * Responses are queued in request order, so a Noop after a run of quiet
 * requests tells the client that everything before it has been answered.
 *
 * Statuses, error bodies, extras and CAS placement follow memcached 1.6
 * (checked against 1.6.18 and 1.6.45 packet by packet). Where a request
 * cannot be trusted the failure classes of proto/mc_bin.h apply: framing
 * lost (bad magic, key + extras longer than the body) -> close at once;
 * wrong shape -> "Invalid arguments", then close; unknown opcode (and the
 * SASL ones when no password file is loaded) -> "Unknown command", body
 * skipped, go on; a
 * body longer than any storable value -> "Too large.", body skipped without
 * being buffered, go on.
 *
 * With a password file (-Y, -S) a client must authenticate with SASL PLAIN
 * first, as memcached -S does: List Mechs answers "PLAIN", Auth with
 * "[authzid]\0user\0password" answers "Authenticated" or "Auth failure.";
 * any other opcode but Version gets "Auth failure." and the connection
 * closes after it.
 *
 * Counters are the text protocol's (cmd_get, get_hits, ...), so `stats`
 * counts binary traffic the same way.
 */
#include "cmd/proto_mc_bin.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "auth/auth.h"
#include "cmd/cmd_stats.h"
#include "cmd/cmd_util.h"
#include "cmd/mc_watch.h"
#include "config/settings.h"
#include "config/version.h"
#include "proto/mc_bin.h"
#include "stats/prefix_stats.h"
#include "stats/stats.h"
#include "storage/item.h"
#include "util/log.h"

static const struct settings *settings;   /* read-only after setup */

/* The largest extras any opcode has (Increment: delta, initial, exptime). */
#define BIN_EXTRAS_MAX 20
/* Incr/decr with this exptime never create a missing key. */
#define BIN_NO_CREATE 0xffffffffu

typedef enum proc_result (*bin_handler)(struct conn *c, const struct mc_bin_req *r);

/* The command table in use, chosen once at setup: the real one, or under
 * -o null_storage one whose get and store rows answer without storage. */
static const bin_handler *rows;
static void choose_rows(bool null_storage);

void proto_mc_bin_setup(const struct settings *s)
{
    settings = s;
    choose_rows(s->null_storage);
}

/* Per-connection state kept while a value is read into its item. */
struct bin_state {
    uint8_t opcode;         /* as sent: echoed in the response */
    bool quiet;
    enum store_op op;
    uint32_t opaque;
    uint64_t cas;           /* the request's CAS: 0 none */
    bool authed;            /* SASL PLAIN succeeded on this connection */
};

static struct bin_state *state_of(struct conn *c)
{
    _Static_assert(sizeof(struct bin_state) <= CONN_PROTO_DATA, "binary state too large");
    return (struct bin_state *)c->proto_data;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint64_t visible_cas(const struct item *it)
{
    return settings->storage.use_cas ? item_cas(it) : 0;
}

/* ---- responses ---- */

/*
 * Queue a response header followed by `body` (n bytes, copied) and state
 * that vlen more value bytes follow (queued by the caller).
 */
static void respond(struct conn *c, uint8_t opcode, uint16_t status, uint8_t extlen,
                    uint16_t keylen, uint32_t vlen, uint32_t opaque, uint64_t cas,
                    const void *body, size_t n)
{
    char *p = conn_out_reserve(c, MC_BIN_HEADER_LEN + n);
    if (p == NULL)
        return;
    mc_bin_write_header((uint8_t *)p, opcode, status, extlen, keylen, vlen, opaque, cas);
    if (n > 0)
        memcpy(p + MC_BIN_HEADER_LEN, body, n);
    conn_out_commit(c, MC_BIN_HEADER_LEN + n);
}

/* An error response: memcached's text for the status as the body. Sent for
 * quiet requests too. */
static void respond_error(struct conn *c, uint8_t opcode, uint32_t opaque, uint16_t status)
{
    const char *msg = mc_bin_status_str(status);
    size_t n = strlen(msg);
    respond(c, opcode, status, 0, 0, (uint32_t)n, opaque, 0, msg, n);
}

/* An empty success response, left out for quiet requests. */
static void respond_ok(struct conn *c, const struct mc_bin_req *r, uint64_t cas)
{
    if (!mc_bin_opcode_is_quiet(r->opcode))
        respond(c, r->opcode, MC_BIN_SUCCESS, 0, 0, 0, r->opaque, cas, NULL, 0);
}

/* Values up to this size are copied into the output with their header in
 * one step (conn_out_item copies them too, but as a second entry). */
#define VALUE_COPY_MAX 512

/* A hit for Get/GAT/Touch: flags as extras, the key if the opcode returns it,
 * the value unless `with_value` is false (Touch): copied, or sent from the
 * item when larger than VALUE_COPY_MAX. */

static void respond_item(struct conn *c, const struct mc_bin_req *r, struct item *it,
                         bool with_value)
{
    uint8_t pre[4 + MC_BIN_KEY_MAX];
    uint16_t keylen = mc_bin_opcode_returns_key(r->opcode) ? item_nkey(it) : 0;
    uint32_t vlen = with_value ? item_nbytes(it) : 0;
    if (vlen <= VALUE_COPY_MAX && !item_is_chunked(it)) {
        size_t n = MC_BIN_HEADER_LEN + 4 + (size_t)keylen;
        char *p = conn_out_reserve(c, n + vlen);
        if (p == NULL)
            return;
        mc_bin_write_header((uint8_t *)p, r->opcode, MC_BIN_SUCCESS, 4, keylen, vlen,
                            r->opaque, visible_cas(it));
        put32((uint8_t *)p + MC_BIN_HEADER_LEN, item_flags(it));
        memcpy(p + MC_BIN_HEADER_LEN + 4, item_key(it), keylen);
        memcpy(p + n, item_value(it), vlen);
        conn_out_commit(c, n + vlen);
        return;
    }
    put32(pre, item_flags(it));
    memcpy(pre + 4, item_key(it), keylen);
    respond(c, r->opcode, MC_BIN_SUCCESS, 4, keylen, vlen, r->opaque, visible_cas(it), pre,
            4 + (size_t)keylen);
    if (vlen > 0)
        conn_out_item(c, it, 0, vlen);
}

/* A miss: quiet gets say nothing; GetK/GATK name the key instead of "Not found". */
static void respond_miss(struct conn *c, const struct mc_bin_req *r)
{
    if (mc_bin_opcode_is_quiet(r->opcode))
        return;
    if (mc_bin_opcode_returns_key(r->opcode))
        respond(c, r->opcode, MC_BIN_KEY_ENOENT, 0, r->keylen, 0, r->opaque, 0, r->key,
                r->keylen);
    else
        respond_error(c, r->opcode, r->opaque, MC_BIN_KEY_ENOENT);
}

/* ---- retrieval and touch ---- */

/* Most keys the pipelining look-ahead (bin_process) hashes and prefetches. */
#define PF_KEYS 16

/* Hashes of the keys decoded ahead, in key order, for cmd_get. Reset at
 * every bin_process call, so a pointer never outlives its buffer. */
static __thread struct key_hints {
    const uint8_t *key[PF_KEYS];
    uint64_t hv[PF_KEYS];
    unsigned n, next;
} hints;

static uint64_t key_hash(const uint8_t *key, size_t nkey)
{
    /* Keys come in buffer order; skip those looked up another way. */
    while (hints.next < hints.n && hints.key[hints.next] < key)
        hints.next++;
    if (hints.next < hints.n && hints.key[hints.next] == key)
        return hints.hv[hints.next++];
    return item_hash((const char *)key, nkey);
}

/* Get, GetQ, GetK, GetKQ. */
static enum proc_result cmd_get(struct conn *c, const struct mc_bin_req *r)
{
    enum item_miss miss = ITEM_MISS_NONE;
    struct item *it = item_get_hashed((const char *)r->key, r->keylen,
                                      key_hash(r->key, r->keylen), c->now, &miss);
    if (watch_on(WATCH_FETCHERS))
        mc_watch_fetch(c, (const char *)r->key, r->keylen, it, miss);
    STAT_INC(c->stats, cmd_get);
    if (prefix_stats_on())
        prefix_stats_record((const char *)r->key, r->keylen, PREFIX_GET, it != NULL);
    if (it == NULL) {
        STAT_INC(c->stats, get_misses);
        cmd_count_miss(c, miss);
        respond_miss(c, r);
        return PROC_MORE;
    }
    STAT_INC(c->stats, get_hits);
    STAT_SLAB_INC(c->stats, item_class_id(it), get_hits);
    respond_item(c, r, it, true);
    item_put(it);
    return PROC_MORE;
}

/* Touch, GAT, GATQ, GATK, GATKQ: set a new exptime, then answer like the
 * matching get; Touch answers with the flags and CAS but not the value. */
static enum proc_result cmd_touch(struct conn *c, const struct mc_bin_req *r)
{
    int64_t exptime = item_exptime_from_seconds((int64_t)r->exptime, c->now);
    enum item_miss miss = ITEM_MISS_NONE;
    struct item *it = item_get_touch((const char *)r->key, r->keylen, exptime, c->now, &miss);
    if (watch_on(WATCH_FETCHERS))
        mc_watch_fetch(c, (const char *)r->key, r->keylen, it, miss);
    STAT_INC(c->stats, cmd_touch);
    if (it == NULL) {
        STAT_INC(c->stats, touch_misses);
        respond_miss(c, r);
        return PROC_MORE;
    }
    STAT_INC(c->stats, touch_hits);
    STAT_SLAB_INC(c->stats, item_class_id(it), touch_hits);
    respond_item(c, r, it, r->opcode != MC_BIN_TOUCH);
    item_put(it);
    return PROC_MORE;
}

/* ---- storage ---- */

static enum store_op store_op_of(uint8_t loud, uint64_t cas)
{
    switch (loud) {
    case MC_BIN_APPEND: return STORE_APPEND;
    case MC_BIN_PREPEND: return STORE_PREPEND;
    default: break;
    }
    if (cas != 0)
        return STORE_CAS;   /* memcached: a set/add/replace with a CAS is a cas */
    switch (loud) {
    case MC_BIN_ADD: return STORE_ADD;
    case MC_BIN_REPLACE: return STORE_REPLACE;
    default: return STORE_SET;
    }
}

/* memcached's status for a store that did not happen, by operation. */
static uint16_t not_stored_status(enum store_op op)
{
    switch (op) {
    case STORE_ADD: return MC_BIN_KEY_EEXISTS;
    case STORE_REPLACE: return MC_BIN_KEY_ENOENT;
    default: return MC_BIN_NOT_STORED;
    }
}

static void count_cas(struct conn *c, const struct bin_state *st, enum item_result res,
                      unsigned cls)
{
    if (st->cas != 0)
        cmd_count_cas_cls(c, res, cls);
}

static enum watch_store_cmd watch_cmd_of(enum store_op op)
{
    switch (op) {
    case STORE_ADD: return WATCH_CMD_ADD;
    case STORE_REPLACE: return WATCH_CMD_REPLACE;
    case STORE_APPEND: return WATCH_CMD_APPEND;
    case STORE_PREPEND: return WATCH_CMD_PREPEND;
    case STORE_CAS: return WATCH_CMD_CAS;
    default: return WATCH_CMD_SET;
    }
}

/* The value is in the item: store it and answer. */
static enum proc_result store_done(struct conn *c)
{
    struct bin_state *st = state_of(c);
    struct item *it = conn_take_value(c);
    uint64_t cas = 0;
    if (watch_on(WATCH_FETCHERS)) {   /* memcached reports a store's lookup */
        unsigned cls;
        uint32_t size;
        mc_watch_peek(c, item_key(it), item_nkey(it), &cls, &size);
    }
    enum item_result res = item_store(it, st->op, st->cas, c->now, &cas);
    if (watch_on(WATCH_MUTATIONS))
        mc_watch_store(c, it, res, watch_cmd_of(st->op));
    STAT_SLAB_INC(c->stats, item_class_id(it), cmd_set);
    count_cas(c, st, res, item_class_id(it));
    item_put(it);
    switch (res) {
    case ITEM_STORED:
        if (!st->quiet)
            respond(c, st->opcode, MC_BIN_SUCCESS, 0, 0, 0, st->opaque,
                    settings->storage.use_cas ? cas : 0, NULL, 0);
        break;
    case ITEM_EXISTS: respond_error(c, st->opcode, st->opaque, MC_BIN_KEY_EEXISTS); break;
    case ITEM_NOT_FOUND: respond_error(c, st->opcode, st->opaque, MC_BIN_KEY_ENOENT); break;
    case ITEM_TOO_LARGE:
        STAT_INC(c->stats, store_too_large);
        respond_error(c, st->opcode, st->opaque, not_stored_status(st->op));
        break;
    case ITEM_NOMEM:
        STAT_INC(c->stats, store_no_memory);
        respond_error(c, st->opcode, st->opaque, not_stored_status(st->op));
        break;
    default: respond_error(c, st->opcode, st->opaque, not_stored_status(st->op)); break;
    }
    return PROC_MORE;
}

/* A value that cannot be stored: answer, drop any older value for a set (a
 * failed set must not leave stale data readable), skip the value. */
static enum proc_result refuse_value(struct conn *c, const struct mc_bin_req *r,
                                     enum item_alloc_status why)
{
    if (why == ITEM_ALLOC_TOO_LARGE) {
        STAT_INC(c->stats, store_too_large);
        respond_error(c, r->opcode, r->opaque, MC_BIN_E2BIG);
    } else {
        STAT_INC(c->stats, store_no_memory);
        respond_error(c, r->opcode, r->opaque, MC_BIN_ENOMEM);
    }
    if (mc_bin_opcode_loud(r->opcode) == MC_BIN_SET)
        item_delete((const char *)r->key, r->keylen, 0, c->now);
    conn_swallow(c, r->vlen);
    return PROC_NREAD;
}

/* Set, Add, Replace, Append, Prepend and their quiet forms. */
static enum proc_result cmd_store(struct conn *c, const struct mc_bin_req *r)
{
    STAT_INC(c->stats, cmd_set);
    if (prefix_stats_on())
        prefix_stats_record((const char *)r->key, r->keylen, PREFIX_SET, false);
    if (r->vlen > settings->storage.item_size_max)
        return refuse_value(c, r, ITEM_ALLOC_TOO_LARGE);
    enum item_alloc_status why;
    int64_t exptime = item_exptime_from_seconds((int64_t)r->exptime, c->now);
    struct item *it = item_alloc((const char *)r->key, r->keylen, r->flags, exptime, r->vlen,
                                 c->now, &why);
    if (it == NULL)
        return refuse_value(c, r, why);
    struct bin_state *st = state_of(c);
    st->opcode = r->opcode;
    st->quiet = mc_bin_opcode_is_quiet(r->opcode);
    st->op = store_op_of(mc_bin_opcode_loud(r->opcode), r->cas);
    st->opaque = r->opaque;
    st->cas = r->cas;
    if (conn_read_value(c, it, r->vlen))
        return store_done(c);
    return PROC_NREAD;
}

/* ---- other key commands ---- */

static enum proc_result cmd_delete(struct conn *c, const struct mc_bin_req *r)
{
    unsigned cls = 0;
    if (prefix_stats_on())
        prefix_stats_record((const char *)r->key, r->keylen, PREFIX_DEL, false);
    if (watch_on(WATCH_FETCHERS)) {   /* its lookup; memcached logs no binary deletion */
        uint32_t size;
        mc_watch_peek(c, (const char *)r->key, r->keylen, &cls, &size);
    }
    enum item_result res = item_delete_cls((const char *)r->key, r->keylen, r->cas, c->now, &cls);
    if (res == ITEM_DELETED) {
        STAT_INC(c->stats, delete_hits);
        STAT_SLAB_INC(c->stats, cls, delete_hits);
        respond_ok(c, r, 0);
    } else if (res == ITEM_EXISTS) {
        respond_error(c, r->opcode, r->opaque, MC_BIN_KEY_EEXISTS);
    } else {
        STAT_INC(c->stats, delete_misses);
        respond_error(c, r->opcode, r->opaque, MC_BIN_KEY_ENOENT);
    }
    return PROC_MORE;
}

/*
 * Increment/Decrement: an existing value changes by delta (incr wraps at
 * 2^64, decr stops at 0); a missing key is created holding `initial` unless
 * exptime is 0xffffffff. Tried first without creating, so that a creation
 * counts as a miss in `stats` as memcached counts it.
 */
static enum proc_result cmd_delta(struct conn *c, const struct mc_bin_req *r)
{
    bool incr = mc_bin_opcode_loud(r->opcode) == MC_BIN_INCREMENT;
    const char *key = (const char *)r->key;
    uint64_t value = 0, cas = 0;
    unsigned cls = 0;
    enum item_result res = item_delta_cls(key, r->keylen, incr, r->delta, r->cas, false, 0, 0,
                                          c->now, &value, &cas, &cls);
    if (res == ITEM_NOT_FOUND) {
        if (incr)
            STAT_INC(c->stats, incr_misses);
        else
            STAT_INC(c->stats, decr_misses);
        if (r->exptime != BIN_NO_CREATE) {
            int64_t exptime = item_exptime_from_seconds((int64_t)r->exptime, c->now);
            res = item_delta(key, r->keylen, incr, r->delta, 0, true, r->initial, exptime,
                             c->now, &value, &cas);
        }
    } else if (incr) {
        STAT_INC(c->stats, incr_hits);
        STAT_SLAB_INC(c->stats, cls, incr_hits);
    } else {
        STAT_INC(c->stats, decr_hits);
        STAT_SLAB_INC(c->stats, cls, decr_hits);
    }
    uint16_t status;
    switch (res) {
    case ITEM_DELTA_OK: {
        if (mc_bin_opcode_is_quiet(r->opcode))
            return PROC_MORE;
        uint8_t body[8];
        put32(body, (uint32_t)(value >> 32));
        put32(body + 4, (uint32_t)value);
        respond(c, r->opcode, MC_BIN_SUCCESS, 0, 0, 8, r->opaque,
                settings->storage.use_cas ? cas : 0, NULL, 0);
        conn_out(c, body, sizeof(body));
        return PROC_MORE;
    }
    case ITEM_NOT_FOUND: status = MC_BIN_KEY_ENOENT; break;
    case ITEM_EXISTS: status = MC_BIN_KEY_EEXISTS; break;
    case ITEM_NON_NUMERIC: status = MC_BIN_DELTA_BADVAL; break;
    default: status = MC_BIN_ENOMEM; break;
    }
    respond_error(c, r->opcode, r->opaque, status);
    return PROC_MORE;
}

/* ---- server commands ---- */

static enum proc_result cmd_flush(struct conn *c, const struct mc_bin_req *r)
{
    if (!settings->flush_enabled) {
        /* memcached answers a disabled flush with an auth error */
        respond_error(c, r->opcode, r->opaque, MC_BIN_AUTH_ERROR);
        return PROC_MORE;
    }
    STAT_INC(c->stats, cmd_flush);
    int64_t delay_ms = 0;
    if (r->exptime > 0) {
        /* like an exptime: large values are an absolute time */
        delay_ms = item_exptime_from_seconds((int64_t)r->exptime, c->now) - c->now;
        if (delay_ms < 0)
            delay_ms = 0;
    }
    item_flush(delay_ms, c->now);
    respond_ok(c, r, 0);
    return PROC_MORE;
}

static enum proc_result cmd_noop(struct conn *c, const struct mc_bin_req *r)
{
    respond_ok(c, r, 0);
    return PROC_MORE;
}

static enum proc_result cmd_version(struct conn *c, const struct mc_bin_req *r)
{
    static const char version[] = KIOKU_PROTOCOL_VERSION;
    respond(c, r->opcode, MC_BIN_SUCCESS, 0, 0, sizeof(version) - 1, r->opaque, 0, version,
            sizeof(version) - 1);
    return PROC_MORE;
}

/* Accepted for compatibility (1.6.18 answers nothing, 1.6.45 "Unknown
 * command"; the spec says success); the log level is fixed at start-up. */
static enum proc_result cmd_verbosity(struct conn *c, const struct mc_bin_req *r)
{
    /* memcached 1.6.45 answers this but ignores the level; kioku applies it
     * as the text command does (levels stop at 2). */
    log_level_set(r->verbosity > 2 ? 2 : (int)r->verbosity);
    respond_ok(c, r, 0);
    return PROC_MORE;
}

static enum proc_result cmd_quit(struct conn *c, const struct mc_bin_req *r)
{
    respond_ok(c, r, 0);
    return PROC_CLOSE;
}

/* Binary sink for cmd_stats_pairs(): one Stat packet per pair. */
struct stat_target {
    struct conn *c;
    uint32_t opaque;
};

static void stat_pair(void *arg, const char *name, const char *value)
{
    const struct stat_target *t = arg;
    size_t nk = strlen(name), nv = strlen(value);
    if (nk > UINT16_MAX)
        return;
    respond(t->c, MC_BIN_STAT, MC_BIN_SUCCESS, 0, (uint16_t)nk, (uint32_t)nv, t->opaque, 0,
            name, nk);
    conn_out(t->c, value, nv);
}

/* Stat: the group named by the key (none: general), one packet per stat,
 * then an empty packet; an unknown group is "Not found". */
static enum proc_result cmd_stat(struct conn *c, const struct mc_bin_req *r)
{
    struct stat_target t = {c, r->opaque};
    enum cmd_stats_result res = cmd_stats_pairs((const char *)r->key, r->keylen, c->now,
                                                stat_pair, &t);
    if (res == CMD_STATS_DETAIL_DUMP) {
        /* memcached: one "detailed" stat whose value is the text dump */
        size_t n = 0;
        char *dump = prefix_stats_dump(&n);
        if (dump == NULL || n > UINT32_MAX) {
            free(dump);
            respond_error(c, r->opcode, r->opaque, MC_BIN_ENOMEM);
            return PROC_MORE;
        }
        respond(c, MC_BIN_STAT, MC_BIN_SUCCESS, 0, 8, (uint32_t)n, r->opaque, 0, "detailed", 8);
        conn_out(c, dump, n);
        free(dump);
        res = CMD_STATS_LISTED;
    }
    if (res == CMD_STATS_LISTED || res == CMD_STATS_RESET || res == CMD_STATS_DETAIL_OK)
        respond(c, r->opcode, MC_BIN_SUCCESS, 0, 0, 0, r->opaque, 0, NULL, 0);
    else
        respond_error(c, r->opcode, r->opaque, MC_BIN_KEY_ENOENT);
    return PROC_MORE;
}

/* A known opcode kioku does not serve (SASL without a password file), as
 * memcached without SASL does; the value, if any, is skipped. */
static enum proc_result cmd_unsupported(struct conn *c, const struct mc_bin_req *r)
{
    respond_error(c, r->opcode, r->opaque, MC_BIN_UNKNOWN_COMMAND);
    conn_swallow(c, r->vlen);
    return PROC_NREAD;
}

/* ---- SASL (only with a password file; else cmd_unsupported) ---- */

#define SASL_DATA_MAX 1024   /* "\0user\0password": 2 fields of AUTH_FIELD_MAX */

static enum proc_result cmd_sasl_list_mechs(struct conn *c, const struct mc_bin_req *r)
{
    static const char mechs[] = "PLAIN";
    state_of(c)->authed = false;   /* as memcached: every SASL call starts over */
    respond(c, r->opcode, MC_BIN_SUCCESS, 0, 0, sizeof(mechs) - 1, r->opaque, 0, mechs,
            sizeof(mechs) - 1);
    return PROC_MORE;
}

/*
 * RFC 4616 PLAIN: authzid NUL authcid NUL passwd. An authzid other than
 * empty or the user itself asks to act as someone else, which no entry of
 * the file allows.
 */
static bool sasl_plain_ok(const uint8_t *data, size_t n)
{
    const uint8_t *z1 = memchr(data, 0, n);
    if (z1 == NULL)
        return false;
    const uint8_t *user = z1 + 1;
    size_t rest = n - (size_t)(user - data);
    const uint8_t *z2 = memchr(user, 0, rest);
    if (z2 == NULL)
        return false;
    size_t zlen = (size_t)(z1 - data), ulen = (size_t)(z2 - user);
    if (zlen != 0 && (zlen != ulen || memcmp(data, user, ulen) != 0))
        return false;
    const uint8_t *pass = z2 + 1;
    return auth_file_check((const char *)user, ulen, (const char *)pass,
                           n - (size_t)(pass - data));
}

/* Auth or Step: its whole value is in the read buffer (bin_process waited
 * for it). PLAIN completes in one Auth, so a Step is always a failure, as
 * memcached's SASL answers a step it did not start. */
static enum proc_result cmd_sasl_auth(struct conn *c, const struct mc_bin_req *r)
{
    static const char plain[] = "PLAIN", ok[] = "Authenticated";
    const uint8_t *data = (const uint8_t *)conn_rbuf(c);
    bool good = mc_bin_opcode_loud(r->opcode) == MC_BIN_SASL_AUTH &&
                r->keylen == sizeof(plain) - 1 && memcmp(r->key, plain, r->keylen) == 0 &&
                sasl_plain_ok(data, r->vlen);
    conn_consume(c, r->vlen);
    STAT_INC(c->stats, auth_cmds);
    state_of(c)->authed = good;   /* a failed attempt also ends an earlier success */
    if (good) {
        respond(c, r->opcode, MC_BIN_SUCCESS, 0, 0, sizeof(ok) - 1, r->opaque, 0, ok,
                sizeof(ok) - 1);
    } else {
        STAT_INC(c->stats, auth_errors);
        respond_error(c, r->opcode, r->opaque, MC_BIN_AUTH_ERROR);
    }
    return PROC_MORE;
}

/* What an unauthenticated client may send: memcached's list. */
static bool allowed_before_auth(uint8_t loud)
{
    return loud == MC_BIN_SASL_LIST_MECHS || loud == MC_BIN_SASL_AUTH ||
           loud == MC_BIN_SASL_STEP || loud == MC_BIN_VERSION;
}

/*
 * The SASL gate, for a request decoded with *used header bytes. Returns
 * true with *res when the request was answered here (refused, or its
 * value is still on the way: *res PROC_MORE with nothing consumed).
 */
static bool sasl_gate(struct conn *c, const struct mc_bin_req *r, size_t used,
                      enum proc_result *res)
{
    uint8_t loud = mc_bin_opcode_loud(r->opcode);
    if (!state_of(c)->authed && !allowed_before_auth(loud)) {
        conn_consume(c, used);
        respond_error(c, r->opcode, r->opaque, MC_BIN_AUTH_ERROR);
        *res = PROC_CLOSE;
        return true;
    }
    if (loud != MC_BIN_SASL_AUTH && loud != MC_BIN_SASL_STEP)
        return false;
    if (r->vlen > SASL_DATA_MAX) {
        conn_consume(c, used);
        respond_error(c, r->opcode, r->opaque, MC_BIN_EINVAL);
        conn_swallow(c, r->vlen);
        *res = PROC_NREAD;
        return true;
    }
    if (conn_rlen(c) < used + r->vlen) {
        c->budget++;   /* an incomplete request is not a request */
        *res = PROC_MORE;
        return true;
    }
    return false;
}

/* ---- null storage ----
 *
 * -o null_storage, a benchmark mode (see proto_mc_text.c): Get/GetK and
 * their quiet forms answer a hit on the 4-byte value "null" (flags 0, CAS
 * 1), the store opcodes skip their value and answer success (CAS 1; quiet
 * ones say nothing). Nothing is looked up or stored.
 */

static enum proc_result null_get(struct conn *c, const struct mc_bin_req *r)
{
    uint8_t body[4 + MC_BIN_KEY_MAX + 4];
    uint16_t keylen = mc_bin_opcode_returns_key(r->opcode) ? r->keylen : 0;
    STAT_INC(c->stats, cmd_get);
    STAT_INC(c->stats, get_hits);
    put32(body, 0);
    memcpy(body + 4, r->key, keylen);
    memcpy(body + 4 + keylen, "null", 4);
    respond(c, r->opcode, MC_BIN_SUCCESS, 4, keylen, 4, r->opaque, 1, body,
            4 + (size_t)keylen + 4);
    return PROC_MORE;
}

static enum proc_result null_store(struct conn *c, const struct mc_bin_req *r)
{
    STAT_INC(c->stats, cmd_set);
    respond_ok(c, r, 1);
    if (conn_rlen(c) >= r->vlen) {
        conn_consume(c, r->vlen);
        return PROC_MORE;
    }
    conn_swallow(c, r->vlen);
    return PROC_NREAD;
}

/* ---- dispatch ---- */

/* Indexed by the loud opcode; the decoder has already checked each
 * request's shape (extras, key, value) against its opcode. */
static const bin_handler handlers[256] = {
    [MC_BIN_GET] = cmd_get, [MC_BIN_GETK] = cmd_get,
    [MC_BIN_TOUCH] = cmd_touch, [MC_BIN_GAT] = cmd_touch, [MC_BIN_GATK] = cmd_touch,
    [MC_BIN_SET] = cmd_store, [MC_BIN_ADD] = cmd_store, [MC_BIN_REPLACE] = cmd_store,
    [MC_BIN_APPEND] = cmd_store, [MC_BIN_PREPEND] = cmd_store,
    [MC_BIN_DELETE] = cmd_delete,
    [MC_BIN_INCREMENT] = cmd_delta, [MC_BIN_DECREMENT] = cmd_delta,
    [MC_BIN_QUIT] = cmd_quit, [MC_BIN_FLUSH] = cmd_flush, [MC_BIN_NOOP] = cmd_noop,
    [MC_BIN_VERSION] = cmd_version, [MC_BIN_VERBOSITY] = cmd_verbosity,
    [MC_BIN_STAT] = cmd_stat,
    [MC_BIN_SASL_LIST_MECHS] = cmd_unsupported, [MC_BIN_SASL_AUTH] = cmd_unsupported,
    [MC_BIN_SASL_STEP] = cmd_unsupported,
};

/* handlers, with get and store answered by the null rows. */
static bin_handler null_handlers[256];

static void choose_rows(bool null_storage)
{
    rows = handlers;
    if (!null_storage)
        return;
    memcpy(null_handlers, handlers, sizeof(handlers));
    for (int i = 0; i < 256; i++) {
        if (handlers[i] == cmd_get)
            null_handlers[i] = null_get;
        else if (handlers[i] == cmd_store)
            null_handlers[i] = null_store;
    }
    rows = null_handlers;
}

/* With a password file, the SASL rows instead of cmd_unsupported. */
static const bin_handler sasl_handlers[256] = {
    [MC_BIN_SASL_LIST_MECHS] = cmd_sasl_list_mechs, [MC_BIN_SASL_AUTH] = cmd_sasl_auth,
    [MC_BIN_SASL_STEP] = cmd_sasl_auth,
};

/* The largest body worth reading: a maximal value with key and extras. */
static size_t max_body(void)
{
    return settings->storage.item_size_max + MC_BIN_KEY_MAX + BIN_EXTRAS_MAX;
}

/*
 * A request the decoder refused, its header still at the front of the read
 * buffer. Nothing is allocated for its body: the body is skipped as it
 * streams past, or the connection closes.
 */
static enum proc_result refuse_request(struct conn *c, const struct mc_bin_req *r,
                                       enum parse_status ps)
{
    if (r->fatal)
        return PROC_CLOSE;   /* framing lost: nothing to answer to */
    if (ps == PARSE_TOO_LONG) {
        /* Too long for any value. Is the request otherwise well formed?
         * Then it is a value too large (answer, skip, carry on); else it is
         * answered as the shape error or unknown opcode it also is. */
        struct mc_bin_req shape;
        ps = mc_bin_parse_header(&shape, (const uint8_t *)conn_rbuf(c), MC_BIN_HEADER_LEN,
                                 SIZE_MAX);
    }
    conn_consume(c, MC_BIN_HEADER_LEN);
    if (ps == PARSE_OK) {
        STAT_INC(c->stats, store_too_large);
        respond_error(c, r->opcode, r->opaque, MC_BIN_E2BIG);
        conn_swallow(c, r->bodylen);
        return PROC_NREAD;
    }
    if (ps == PARSE_UNKNOWN) {
        respond_error(c, r->opcode, r->opaque, MC_BIN_UNKNOWN_COMMAND);
        conn_swallow(c, r->bodylen);
        return PROC_NREAD;
    }
    /* Invalid arguments: memcached answers, then closes. */
    respond_error(c, r->opcode, r->opaque, MC_BIN_EINVAL);
    return PROC_CLOSE;
}

/*
 * Pipelining, as in proto_mc_text.c: with several requests buffered,
 * decode ahead (the parser is pure) and prefetch the keys, so the lookups'
 * cache misses overlap. The decoded requests are kept (struct ahead, on
 * bin_process's stack: the buffer stays put during a call) and their keys'
 * hashes too (hints, for cmd_get), so neither is done twice. Stops at an
 * incomplete or refused request or after PF_KEYS keys. A lone request is
 * left alone.
 */
struct ahead {
    struct mc_bin_req req[PF_KEYS];
    const char *at[PF_KEYS];    /* where request i starts in the buffer */
    size_t used[PF_KEYS];
    unsigned n, next;
    const char *end;            /* no new look before the input gets here */
};

static void look_ahead(struct ahead *a, const char *buf, size_t n, size_t body_max)
{
    const uint8_t *p = (const uint8_t *)buf;
    size_t off = 0;

    a->n = a->next = 0;
    hints.n = hints.next = 0;
    while (a->n < PF_KEYS && off < n) {
        struct mc_bin_req *r = &a->req[a->n];
        size_t used = 0;
        if (mc_bin_parse_prefix(r, p + off, n - off, body_max, &used) != PARSE_OK)
            break;
        if (off == 0 && used + r->vlen >= n) {
            a->end = buf + n;
            return;
        }
        if (r->keylen > 0) {
            hints.key[hints.n] = r->key;
            hints.hv[hints.n++] = item_hash((const char *)r->key, r->keylen);
        }
        a->at[a->n] = buf + off;
        a->used[a->n++] = used;
        off += used + r->vlen;
    }
    if (hints.n > 1)
        item_prefetch(hints.hv, hints.n);
    a->end = buf + (off < n ? (off > 0 ? off : 1) : n);
}

static enum proc_result bin_process(struct conn *c)
{
    struct ahead ah;
    ah.n = ah.next = 0;
    ah.end = conn_rbuf(c);
    hints.n = hints.next = 0;
    for (;;) {
        if (conn_rlen(c) == 0)
            return PROC_MORE;
        if (conn_out_full(c) || !conn_budget(c))
            return PROC_YIELD;
        if (conn_rbuf(c) >= ah.end && !settings->null_storage)
            look_ahead(&ah, conn_rbuf(c), conn_rlen(c), max_body());
        struct mc_bin_req parsed, *r = &parsed;
        size_t used = 0;
        enum parse_status ps;
        if (ah.next < ah.n && ah.at[ah.next] == conn_rbuf(c)) {
            r = &ah.req[ah.next];
            used = ah.used[ah.next++];
            ps = PARSE_OK;
        } else {
            ps = mc_bin_parse_prefix(r, (const uint8_t *)conn_rbuf(c), conn_rlen(c), max_body(),
                                     &used);
        }
        if (ps == PARSE_AGAIN) {
            c->budget++;   /* an incomplete request is not a request */
            return PROC_MORE;
        }
        enum proc_result res;
        if (ps != PARSE_OK) {
            res = refuse_request(c, r, ps);
        } else if (auth_file_enabled() && sasl_gate(c, r, used, &res)) {
            /* answered, refused or waiting for the SASL data: then it
             * is read first (going round again would spin, never reading) */
            if (res == PROC_MORE)
                return PROC_MORE;
        } else {
            /* The key stays where it is in the read buffer until the next
             * read, which cannot happen before the handler returns. */
            conn_consume(c, used);
            bin_handler h = rows[mc_bin_opcode_loud(r->opcode)];
            if (auth_file_enabled() && sasl_handlers[mc_bin_opcode_loud(r->opcode)] != NULL)
                h = sasl_handlers[mc_bin_opcode_loud(r->opcode)];
            if (h != NULL)
                STAT_INC(c->stats, commands_processed);
            res = h != NULL ? h(c, r) : cmd_unsupported(c, r);
        }
        if (res != PROC_MORE)
            return res;
    }
}

static enum proc_result bin_value_done(struct conn *c)
{
    return store_done(c);
}

const struct proto_ops proto_mc_bin = {
    .name = "binary",
    .process = bin_process,
    .value_done = bin_value_done,
    .release = NULL,
};
