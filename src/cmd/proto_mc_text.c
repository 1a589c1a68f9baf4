/*
 * memcached text protocol commands.
 *
 * process() parses one line at a time with mc_text_parse() and runs the row
 * of the command table for it. A storage command allocates its item first
 * and lets the connection read the data block straight into it; the store
 * completes in store_done(), at once if the block was already buffered.
 *
 * Replies follow memcached 1.6 byte for byte. `noreply` suppresses every
 * reply line of its command, errors included, as memcached does.
 *
 * Per-prefix stats (stats detail) count what memcached counts: each key of
 * get/gets/gat/gats, each storage command whose line was valid (stored or
 * not), each delete; meta commands are not counted, as in memcached.
 */
#include "cmd/proto_mc_text.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "cmd/cmd_stats.h"
#include "cmd/cmd_util.h"
#include "cmd/proto_mc_meta.h"
#include "config/settings.h"
#include "config/version.h"
#include "proto/mc_text.h"
#include "stats/prefix_stats.h"
#include "stats/stats.h"
#include "storage/item.h"
#include "util/fmt.h"
#include "util/log.h"

static const struct settings *settings;   /* read-only after setup */

void proto_mc_text_setup(const struct settings *s)
{
    settings = s;
    proto_mc_meta_setup(s);
}

/* Per-connection state kept while a data block is read. */
struct text_state {
    enum mc_cmd cmd;            /* MC_META_SET: an ms owns the value */
    uint64_t cas;
    bool noreply;
    uint64_t meta[PROTO_MC_META_STATE / 8];   /* proto_mc_meta's ms state */
};

static struct text_state *state_of(struct conn *c)
{
    _Static_assert(sizeof(struct text_state) <= CONN_PROTO_DATA, "text state too large");
    return (struct text_state *)c->proto_data;
}

static void reply(struct conn *c, bool noreply, const char *s, size_t n)
{
    if (!noreply)
        conn_out(c, s, n);
}
#define REPLY(c, noreply, lit) reply((c), (noreply), lit, sizeof(lit) - 1)

static void reply_line(struct conn *c, const char *line)
{
    size_t n = strlen(line);
    char *p = conn_out_reserve(c, n + 2);
    if (p == NULL)
        return;
    memcpy(p, line, n);
    memcpy(p + n, "\r\n", 2);
    conn_out_commit(c, n + 2);
}

static uint64_t visible_cas(const struct item *it)
{
    return settings->storage.use_cas ? it->cas : 0;
}

/* ---- retrieval ---- */

static void out_value(struct conn *c, struct item *it, bool with_cas)
{
    char *p = conn_out_reserve(c, 6 + it->nkey + 1 + 10 + 1 + 10 + 1 + 20 + 2);
    if (p == NULL)
        return;
    size_t n = 0;
    memcpy(p, "VALUE ", 6);
    n += 6;
    memcpy(p + n, item_key(it), it->nkey);
    n += it->nkey;
    p[n++] = ' ';
    n += fmt_u64(p + n, it->flags);
    p[n++] = ' ';
    n += fmt_u64(p + n, it->nbytes);
    if (with_cas) {
        p[n++] = ' ';
        n += fmt_u64(p + n, visible_cas(it));
    }
    p[n++] = '\r';
    p[n++] = '\n';
    conn_out_commit(c, n);
    conn_out_item(c, it, 0, (size_t)it->nbytes + 2);
}

static enum proc_result cmd_get(struct conn *c, const struct mc_text_req *r)
{
    bool with_cas = r->cmd == MC_GETS || r->cmd == MC_GATS;
    bool touch = r->cmd == MC_GAT || r->cmd == MC_GATS;
    int64_t exptime = touch ? item_exptime_from_seconds(r->exptime, c->now) : 0;
    const char *cur = r->keys, *end = r->keys + r->keys_len, *key;
    size_t nkey;
    while (mc_text_next_key(&cur, end, &key, &nkey)) {
        enum item_miss miss = ITEM_MISS_NONE;
        struct item *it = touch ? item_get_touch(key, nkey, exptime, c->now, &miss)
                                : item_get(key, nkey, c->now, &miss);
        if (touch) {
            STAT_INC(c->stats, cmd_touch);
            if (it != NULL) {
                STAT_INC(c->stats, touch_hits);
                STAT_SLAB_INC(c->stats, it->clsid, touch_hits);
            } else {
                STAT_INC(c->stats, touch_misses);
            }
        } else {
            STAT_INC(c->stats, cmd_get);
            if (it != NULL) {
                STAT_INC(c->stats, get_hits);
                STAT_SLAB_INC(c->stats, it->clsid, get_hits);
            } else {
                STAT_INC(c->stats, get_misses);
            }
        }
        if (prefix_stats_on())
            prefix_stats_record(key, nkey, PREFIX_GET, it != NULL);
        if (it == NULL) {
            cmd_count_miss(c, miss);
            continue;
        }
        out_value(c, it, with_cas);
        item_put(it);
    }
    CONN_OUT_LIT(c, "END\r\n");
    return PROC_MORE;
}

/* ---- storage ---- */

static enum store_op store_op_of(enum mc_cmd cmd)
{
    switch (cmd) {
    case MC_ADD: return STORE_ADD;
    case MC_REPLACE: return STORE_REPLACE;
    case MC_APPEND: return STORE_APPEND;
    case MC_PREPEND: return STORE_PREPEND;
    case MC_CAS: return STORE_CAS;
    default: return STORE_SET;
    }
}

/* The data block is in the item: check its terminator and store it. */
static enum proc_result store_done(struct conn *c)
{
    struct text_state *st = state_of(c);
    struct item *it = conn_take_value(c);
    char crlf[2] = {0, 0};
    item_value_read(it, it->nbytes, crlf, 2);
    if (crlf[0] != '\r' || crlf[1] != '\n') {
        REPLY(c, st->noreply, "CLIENT_ERROR bad data chunk\r\n");
        item_put(it);
        return PROC_MORE;
    }
    enum item_result res = item_store(it, store_op_of(st->cmd), st->cas, c->now, NULL);
    STAT_SLAB_INC(c->stats, it->clsid, cmd_set);
    if (st->cmd == MC_CAS)
        cmd_count_cas_cls(c, res, it->clsid);
    item_put(it);
    switch (res) {
    case ITEM_STORED: REPLY(c, st->noreply, "STORED\r\n"); break;
    case ITEM_EXISTS: REPLY(c, st->noreply, "EXISTS\r\n"); break;
    case ITEM_NOT_FOUND: REPLY(c, st->noreply, "NOT_FOUND\r\n"); break;
    case ITEM_TOO_LARGE:
        STAT_INC(c->stats, store_too_large);
        REPLY(c, st->noreply, "SERVER_ERROR object too large for cache\r\n");
        break;
    case ITEM_NOMEM:
        STAT_INC(c->stats, store_no_memory);
        REPLY(c, st->noreply, "SERVER_ERROR out of memory storing object\r\n");
        break;
    default: REPLY(c, st->noreply, "NOT_STORED\r\n"); break;
    }
    return PROC_MORE;
}

/* A value that cannot be stored: answer, drop any older value for a set
 * (a failed set must not leave stale data readable), skip the data block. */
static enum proc_result refuse_value(struct conn *c, const struct mc_text_req *r,
                                     enum item_alloc_status why)
{
    if (why == ITEM_ALLOC_TOO_LARGE) {
        STAT_INC(c->stats, store_too_large);
        REPLY(c, r->noreply, "SERVER_ERROR object too large for cache\r\n");
    } else {
        STAT_INC(c->stats, store_no_memory);
        REPLY(c, r->noreply, "SERVER_ERROR out of memory storing object\r\n");
    }
    if (r->cmd == MC_SET)
        item_delete(r->key, r->nkey, 0, c->now);
    conn_swallow(c, (size_t)r->vlen + 2);
    return PROC_NREAD;
}

static enum proc_result cmd_store(struct conn *c, const struct mc_text_req *r)
{
    STAT_INC(c->stats, cmd_set);
    if (prefix_stats_on())
        prefix_stats_record(r->key, r->nkey, PREFIX_SET, false);
    if (r->vlen > settings->storage.item_size_max)
        return refuse_value(c, r, ITEM_ALLOC_TOO_LARGE);
    enum item_alloc_status why;
    int64_t exptime = item_exptime_from_seconds(r->exptime, c->now);
    struct item *it = item_alloc(r->key, r->nkey, r->flags, exptime, r->vlen, c->now, &why);
    if (it == NULL)
        return refuse_value(c, r, why);
    struct text_state *st = state_of(c);
    st->cmd = r->cmd;
    st->cas = r->cmd == MC_CAS ? r->cas : 0;
    st->noreply = r->noreply;
    if (conn_read_value(c, it, (size_t)r->vlen + 2))
        return store_done(c);
    return PROC_NREAD;
}

/* ---- other key commands ---- */

static enum proc_result cmd_delete(struct conn *c, const struct mc_text_req *r)
{
    unsigned cls = 0;
    if (prefix_stats_on())
        prefix_stats_record(r->key, r->nkey, PREFIX_DEL, false);
    if (item_delete_cls(r->key, r->nkey, 0, c->now, &cls) == ITEM_DELETED) {
        STAT_INC(c->stats, delete_hits);
        STAT_SLAB_INC(c->stats, cls, delete_hits);
        REPLY(c, r->noreply, "DELETED\r\n");
    } else {
        STAT_INC(c->stats, delete_misses);
        REPLY(c, r->noreply, "NOT_FOUND\r\n");
    }
    return PROC_MORE;
}

static enum proc_result cmd_delta(struct conn *c, const struct mc_text_req *r)
{
    bool incr = r->cmd == MC_INCR;
    uint64_t value = 0;
    unsigned cls = 0;
    enum item_result res = item_delta_cls(r->key, r->nkey, incr, r->delta, 0, false, 0, 0,
                                          c->now, &value, NULL, &cls);
    if (res == ITEM_DELTA_OK) {
        if (incr)
            STAT_SLAB_INC(c->stats, cls, incr_hits);
        else
            STAT_SLAB_INC(c->stats, cls, decr_hits);
    }
    if (res == ITEM_NOT_FOUND) {
        if (incr)
            STAT_INC(c->stats, incr_misses);
        else
            STAT_INC(c->stats, decr_misses);
    } else if (incr) {
        STAT_INC(c->stats, incr_hits);
    } else {
        STAT_INC(c->stats, decr_hits);
    }
    switch (res) {
    case ITEM_DELTA_OK: {
        if (r->noreply)
            break;
        char *p = conn_out_reserve(c, 22);
        if (p == NULL)
            break;
        size_t n = fmt_u64(p, value);
        p[n++] = '\r';
        p[n++] = '\n';
        conn_out_commit(c, n);
        break;
    }
    case ITEM_NOT_FOUND: REPLY(c, r->noreply, "NOT_FOUND\r\n"); break;
    case ITEM_NON_NUMERIC:
        REPLY(c, r->noreply, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
        break;
    default: REPLY(c, r->noreply, "SERVER_ERROR out of memory\r\n"); break;
    }
    return PROC_MORE;
}

static enum proc_result cmd_touch(struct conn *c, const struct mc_text_req *r)
{
    int64_t exptime = item_exptime_from_seconds(r->exptime, c->now);
    STAT_INC(c->stats, cmd_touch);
    unsigned cls = 0;
    if (item_touch_cls(r->key, r->nkey, exptime, c->now, &cls) == ITEM_TOUCHED) {
        STAT_INC(c->stats, touch_hits);
        STAT_SLAB_INC(c->stats, cls, touch_hits);
        REPLY(c, r->noreply, "TOUCHED\r\n");
    } else {
        STAT_INC(c->stats, touch_misses);
        REPLY(c, r->noreply, "NOT_FOUND\r\n");
    }
    return PROC_MORE;
}

/* ---- server commands ---- */

static enum proc_result cmd_flush_all(struct conn *c, const struct mc_text_req *r)
{
    if (!settings->flush_enabled) {
        REPLY(c, r->noreply, "CLIENT_ERROR flush_all not allowed\r\n");
        return PROC_MORE;
    }
    STAT_INC(c->stats, cmd_flush);
    int64_t delay_ms = 0;
    if (r->delay > 0) {
        /* memcached reads the delay like an exptime: large values are absolute */
        delay_ms = item_exptime_from_seconds(r->delay, c->now) - c->now;
        if (delay_ms < 0)
            delay_ms = 0;
    }
    item_flush(delay_ms, c->now);
    REPLY(c, r->noreply, "OK\r\n");
    return PROC_MORE;
}

static enum proc_result cmd_version(struct conn *c, const struct mc_text_req *r)
{
    (void)r;
    CONN_OUT_LIT(c, "VERSION " KIOKU_PROTOCOL_VERSION "\r\n");
    return PROC_MORE;
}

static enum proc_result cmd_verbosity(struct conn *c, const struct mc_text_req *r)
{
    /* As memcached: the level applies from the next request, on every
     * connection (-vv logs each command line). */
    log_level_set(r->level > 2 ? 2 : (int)r->level);
    REPLY(c, r->noreply, "OK\r\n");
    return PROC_MORE;
}

static enum proc_result cmd_quit(struct conn *c, const struct mc_text_req *r)
{
    (void)c;
    (void)r;
    return PROC_CLOSE;
}

static enum proc_result cmd_shutdown(struct conn *c, const struct mc_text_req *r)
{
    if (!settings->enable_shutdown) {
        CONN_OUT_LIT(c, "SERVER_ERROR: shutdown not enabled\r\n");
        return PROC_MORE;
    }
    /* "graceful" (memcached: SIGUSR1) is how kioku always stops: replies in
     * flight are written first. Any other argument is refused. */
    if (r->args_len != 0 && !(r->args_len == 8 && memcmp(r->args, "graceful", 8) == 0)) {
        CONN_OUT_LIT(c, "CLIENT_ERROR invalid shutdown mode\r\n");
        return PROC_MORE;
    }
    /* The acceptor's signal handling starts a clean stop. */
    kill(getpid(), SIGTERM);
    return PROC_CLOSE;
}

static enum proc_result cmd_stats(struct conn *c, const struct mc_text_req *r)
{
    cmd_stats_text(c, r->args, r->args_len);
    return PROC_MORE;
}

/* ---- meta commands (cmd/proto_mc_meta.c) ---- */

static enum proc_result cmd_meta(struct conn *c, const struct mc_text_req *r)
{
    static const enum mc_meta_cmd meta_of[MC_CMD_COUNT] = {
        [MC_META_GET] = MC_META_MG, [MC_META_SET] = MC_META_MS,
        [MC_META_DELETE] = MC_META_MD, [MC_META_ARITH] = MC_META_MA,
        [MC_META_NOOP] = MC_META_MN, [MC_META_DEBUG] = MC_META_ME,
    };
    struct text_state *st = state_of(c);

    st->cmd = r->cmd;   /* routes value_done() for ms */
    return proto_mc_meta_run(c, st->meta, meta_of[r->cmd], r->key, r->nkey,
                             r->args, r->args_len);
}

/* ---- dispatch ---- */

typedef enum proc_result (*text_handler)(struct conn *c, const struct mc_text_req *r);

/* Commands are rows: a command the parser knows but this table lacks is
 * answered "ERROR" like an unknown one. */
static const text_handler handlers[MC_CMD_COUNT] = {
    [MC_GET] = cmd_get, [MC_GETS] = cmd_get, [MC_GAT] = cmd_get, [MC_GATS] = cmd_get,
    [MC_SET] = cmd_store, [MC_ADD] = cmd_store, [MC_REPLACE] = cmd_store,
    [MC_APPEND] = cmd_store, [MC_PREPEND] = cmd_store, [MC_CAS] = cmd_store,
    [MC_DELETE] = cmd_delete, [MC_INCR] = cmd_delta, [MC_DECR] = cmd_delta,
    [MC_TOUCH] = cmd_touch, [MC_FLUSH_ALL] = cmd_flush_all, [MC_VERSION] = cmd_version,
    [MC_VERBOSITY] = cmd_verbosity, [MC_QUIT] = cmd_quit, [MC_SHUTDOWN] = cmd_shutdown,
    [MC_STATS] = cmd_stats,
    [MC_META_GET] = cmd_meta, [MC_META_SET] = cmd_meta, [MC_META_DELETE] = cmd_meta,
    [MC_META_ARITH] = cmd_meta, [MC_META_NOOP] = cmd_meta, [MC_META_DEBUG] = cmd_meta,
};

static enum proc_result text_process(struct conn *c)
{
    for (;;) {
        if (conn_rlen(c) == 0)
            return PROC_MORE;
        if (conn_out_full(c) || !conn_budget(c))
            return PROC_YIELD;
        struct mc_text_req r;
        size_t used = 0;
        enum parse_status ps = mc_text_parse(&r, conn_rbuf(c), conn_rlen(c), &used);
        if (ps == PARSE_AGAIN) {
            c->budget++;   /* an incomplete line is not a request */
            return PROC_MORE;
        }
        if (ps == PARSE_TOO_LONG) {
            reply_line(c, r.error);
            return PROC_CLOSE;
        }
        if (log_level() > 1)
            log_command(c->fd, conn_rbuf(c), used);
        conn_consume(c, used);
        if (ps == PARSE_OK && handlers[r.cmd] == NULL) {
            ps = PARSE_UNKNOWN;
            r.error = "ERROR";
        }
        if (ps == PARSE_UNKNOWN) {
            if (r.http)
                return PROC_CLOSE;   /* no reply to a browser, as memcached */
            reply_line(c, r.error);
            continue;
        }
        if (ps == PARSE_INVALID) {
            if (!r.noreply)
                reply_line(c, r.error);
            if (r.has_data) {
                /* As memcached 1.6.45: a refused storage line whose length
                 * was valid still has its data block, which is skipped. */
                conn_swallow(c, (size_t)r.vlen + 2);
                return PROC_NREAD;
            }
            continue;
        }
        STAT_INC(c->stats, commands_processed);
        enum proc_result res = handlers[r.cmd](c, &r);
        if (res != PROC_MORE)
            return res;
    }
}

static enum proc_result text_value_done(struct conn *c)
{
    struct text_state *st = state_of(c);

    if (st->cmd == MC_META_SET)
        return proto_mc_meta_set_done(c, st->meta);
    return store_done(c);
}

const struct proto_ops proto_mc_text = {
    .name = "text",
    .process = text_process,
    .value_done = text_value_done,
    .release = NULL,
};
