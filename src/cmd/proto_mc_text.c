/*
 * memcached text protocol commands.
 *
 * process() parses one line at a time with mc_text_parse() and runs the row
 * of the command table for it. A storage command allocates its item first
 * and lets the connection read the data block straight into it; the store
 * completes in store_done(), at once if the block was already buffered.
 *
 * A get line may name thousands of keys (memcached takes get lines of any
 * length; kioku up to MC_TEXT_KEYS_LINE_MAX): the connection's read buffer
 * grows until the whole line is in (memcached too reads the line before it
 * answers, so a client that writes the whole line before reading cannot
 * deadlock against replies), and the replies are then written as they are
 * made: the key walk stops when the queued output is full, lets the
 * connection write, and resumes (struct get_walk), so the output held per
 * connection stays bounded however many keys the line names.
 *
 * Replies follow memcached 1.6 byte for byte. `noreply` suppresses every
 * reply line of its command, errors included, as memcached does.
 *
 * Per-prefix stats (stats detail) count what memcached counts: each key of
 * get/gets/gat/gats, each storage command whose line was valid (stored or
 * not), each delete; meta commands are not counted, as in memcached.
 */
#include "cmd/proto_mc_text.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "auth/auth.h"
#include "cmd/cmd_stats.h"
#include "cmd/cmd_util.h"
#include "cmd/mc_crawler_cmds.h"
#include "cmd/mc_watch.h"
#include "cmd/proto_mc_meta.h"
#include "config/settings.h"
#include "config/version.h"
#include "proto/mc_text.h"
#include "stats/prefix_stats.h"
#include "stats/stats.h"
#include "storage/item.h"
#include "storage/storage.h"
#include "tls/tls.h"
#include "util/fmt.h"
#include "util/log.h"
#include "util/watch.h"

static const struct settings *settings;   /* read-only after setup */

typedef enum proc_result (*text_handler)(struct conn *c, const struct mc_text_req *r);

/* The command table and the get walk in use, chosen once at setup: the
 * real ones, or under -o null_storage those that answer without storage. */
static const text_handler *rows;
static enum proc_result (*walk)(struct conn *c);
static void choose_rows(bool null_storage);

void proto_mc_text_setup(const struct settings *s)
{
    settings = s;
    choose_rows(s->null_storage);
    proto_mc_meta_setup(s);
}

/*
 * A get/gets/gat/gats being answered. Its replies are written as they are
 * made: when the queued output is full the walk stops, the connection
 * writes and lets other clients run, and the walk resumes at `cur`. The
 * line stays in the read buffer, unconsumed, until the last key is
 * answered, so the keys need no copy. Offsets are from conn_rbuf(), which
 * follows the line if the buffer moves.
 */
struct get_walk {
    size_t cur, end;            /* keys left: [cur, end) of the line */
    int64_t exptime;            /* gat/gats: the new expiry, kioku ms */
    enum mc_cmd cmd;
};

/* Per-connection state kept between calls. */
struct text_state {
    enum mc_cmd cmd;            /* MC_META_SET: an ms owns the value */
    bool noreply;
    uint64_t cas;
    size_t line;                /* bytes of the line just parsed (for a
                                   handler that consumes its own line) */
    size_t get_line;            /* bytes of the line a get walk or a dump is
                                   answering (0: none); the walk is in u.get,
                                   the dump in u.dump */
    bool dumping;               /* get_line is an lru_crawler metadump's */
    size_t scanned;             /* leading bytes of input already known to
                                   hold no newline (a long key list) */
    bool authed;                /* -Y: this client has authenticated */
    bool watching;              /* `watch` ran: the connection only streams,
                                   its watcher in u.watch */
    union {
        uint64_t meta[PROTO_MC_META_STATE / 8];   /* proto_mc_meta's ms state */
        struct get_walk get;    /* only while get_line != 0 */
        struct mc_crawler_dump dump;    /* only while dumping */
        struct mc_watch *watch; /* only while watching */
    } u;
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
    return settings->storage.use_cas ? item_cas(it) : 0;
}

/* Most keys the pipelining look-ahead (text_process) hashes and prefetches. */
#define PF_KEYS 16

/* Hashes of the get keys parsed ahead, in key order, for get_walk. Reset
 * at every text_process call, so a pointer never outlives its buffer. */
static __thread struct key_hints {
    const char *key[PF_KEYS];
    size_t nkey[PF_KEYS];
    uint64_t hv[PF_KEYS];
    unsigned n, next;
} hints;

/*
 * mc_text_next_key() for get_walk: a key the look-ahead found is taken with
 * its length and hash (*hinted) instead of being scanned and hashed again.
 * Keys come in buffer order; hints of keys a walk skipped are passed over.
 */
static bool walk_next_key(const char **cur, const char *end, const char **key, size_t *nkey,
                          uint64_t *hv, bool *hinted)
{
    const char *s = *cur;
    while (s < end && *s == ' ')
        s++;
    while (hints.next < hints.n && hints.key[hints.next] < s)
        hints.next++;
    *hinted = hints.next < hints.n && hints.key[hints.next] == s;
    if (!*hinted) {
        *cur = s;
        return mc_text_next_key(cur, end, key, nkey);
    }
    *key = s;
    *nkey = hints.nkey[hints.next];
    *hv = hints.hv[hints.next++];
    *cur = s + *nkey;
    return true;
}

/* ---- retrieval ---- */

/* Values up to this size are copied into the output with their VALUE line
 * in one step (conn_out_item copies them too, but as a second entry). */
#define VALUE_COPY_MAX 512

static void out_value(struct conn *c, struct item *it, bool with_cas)
{
    size_t room = 6 + item_nkey(it) + 1 + 10 + 1 + 10 + 1 + 20 + 2;
    size_t vlen = (size_t)item_nbytes(it) + 2;
    char line[6 + STORAGE_KEY_MAX + 1 + 10 + 1 + 10 + 1 + 20 + 2];
    bool copy = vlen <= VALUE_COPY_MAX && !item_is_chunked(it) && room <= sizeof(line);
    char *p = copy ? line : conn_out_reserve(c, room);
    if (p == NULL)
        return;
    size_t n = 0;
    memcpy(p, "VALUE ", 6);
    n += 6;
    memcpy(p + n, item_key(it), item_nkey(it));
    n += item_nkey(it);
    p[n++] = ' ';
    n += fmt_u64(p + n, item_flags(it));
    p[n++] = ' ';
    n += fmt_u64(p + n, item_nbytes(it));
    if (with_cas) {
        p[n++] = ' ';
        n += fmt_u64(p + n, visible_cas(it));
    }
    p[n++] = '\r';
    p[n++] = '\n';
    if (!copy) {
        conn_out_commit(c, n);
        conn_out_item(c, it, 0, vlen);
        return;
    }
    /* Admitted as the two steps would be: the line's room, then all. */
    char *out = conn_out_reserve(c, n + vlen > room ? n + vlen : room);
    if (out == NULL)
        return;
    memcpy(out, line, n);
    memcpy(out + n, item_value(it), vlen);   /* with the item's own CRLF */
    conn_out_commit(c, n + vlen);
}

/* Every key answered: END, and the get line leaves the read buffer. */
static enum proc_result walk_end(struct conn *c, struct text_state *st)
{
    CONN_OUT_LIT(c, "END\r\n");
    conn_consume(c, st->get_line);
    st->get_line = 0;
    return PROC_MORE;
}

/* Answer the keys of the walk in progress: all of them, or as many as fit
 * before the queued output is full (then PROC_YIELD, to be called again). */
static enum proc_result get_walk(struct conn *c)
{
    struct text_state *st = state_of(c);
    struct get_walk *g = &st->u.get;
    bool with_cas = g->cmd == MC_GETS || g->cmd == MC_GATS;
    bool touch = g->cmd == MC_GAT || g->cmd == MC_GATS;
    int64_t exptime = g->exptime;
    const char *line = conn_rbuf(c);
    const char *cur = line + g->cur, *end = line + g->end, *key;
    size_t nkey;
    uint64_t hv = 0;
    bool hinted;
    while (walk_next_key(&cur, end, &key, &nkey, &hv, &hinted)) {
        enum item_miss miss = ITEM_MISS_NONE;
        struct item *it;
        if (touch)
            it = item_get_touch(key, nkey, exptime, c->now, &miss);
        else
            it = item_get_hashed(key, nkey, hinted ? hv : item_hash(key, nkey), c->now, &miss);
        if (touch) {
            STAT_INC(c->stats, cmd_touch);
            if (it != NULL) {
                STAT_INC(c->stats, touch_hits);
                STAT_SLAB_INC(c->stats, item_class_id(it), touch_hits);
            } else {
                STAT_INC(c->stats, touch_misses);
            }
        } else {
            STAT_INC(c->stats, cmd_get);
            if (it != NULL) {
                STAT_INC(c->stats, get_hits);
                STAT_SLAB_INC(c->stats, item_class_id(it), get_hits);
            } else {
                STAT_INC(c->stats, get_misses);
            }
        }
        if (prefix_stats_on())
            prefix_stats_record(key, nkey, PREFIX_GET, it != NULL);
        if (watch_on(WATCH_FETCHERS))
            mc_watch_fetch(c, key, nkey, it, miss);
        if (it == NULL) {
            cmd_count_miss(c, miss);
            continue;
        }
        out_value(c, it, with_cas);
        item_put(it);
        if (conn_out_full(c) && cur < end) {
            g->cur = (size_t)(cur - line);
            return PROC_YIELD;
        }
    }
    return walk_end(c, st);
}

/* get/gets/gat/gats: the line is still in the read buffer (keeps_line). */
static enum proc_result cmd_get(struct conn *c, const struct mc_text_req *r)
{
    struct text_state *st = state_of(c);
    struct get_walk *g = &st->u.get;
    const char *line = conn_rbuf(c);
    bool touch = r->cmd == MC_GAT || r->cmd == MC_GATS;

    g->cmd = r->cmd;
    g->exptime = touch ? item_exptime_from_seconds(r->exptime, c->now) : 0;
    g->cur = r->keys != NULL ? (size_t)(r->keys - line) : 0;
    g->end = g->cur + r->keys_len;
    st->get_line = st->line;
    return walk(c);
}

/* ---- storage ---- */

static enum watch_store_cmd watch_cmd_of(enum mc_cmd cmd)
{
    switch (cmd) {
    case MC_ADD: return WATCH_CMD_ADD;
    case MC_REPLACE: return WATCH_CMD_REPLACE;
    case MC_APPEND: return WATCH_CMD_APPEND;
    case MC_PREPEND: return WATCH_CMD_PREPEND;
    case MC_CAS: return WATCH_CMD_CAS;
    default: return WATCH_CMD_SET;
    }
}

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
    item_value_read(it, item_nbytes(it), crlf, 2);
    if (crlf[0] != '\r' || crlf[1] != '\n') {
        REPLY(c, st->noreply, "CLIENT_ERROR bad data chunk\r\n");
        item_put(it);
        return PROC_MORE;
    }
    if (watch_on(WATCH_FETCHERS)) {   /* memcached reports a store's lookup */
        unsigned cls;
        uint32_t size;
        mc_watch_peek(c, item_key(it), item_nkey(it), &cls, &size);
    }
    enum item_result res = item_store(it, store_op_of(st->cmd), st->cas, c->now, NULL);
    if (watch_on(WATCH_MUTATIONS))
        mc_watch_store(c, it, res, watch_cmd_of(st->cmd));
    STAT_SLAB_INC(c->stats, item_class_id(it), cmd_set);
    if (st->cmd == MC_CAS)
        cmd_count_cas_cls(c, res, item_class_id(it));
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
    if (watch_on(WATCH_MUTATIONS))
        mc_watch_refused(c, r->key, r->nkey, why == ITEM_ALLOC_TOO_LARGE, watch_cmd_of(r->cmd));
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
    uint32_t size = 0;
    bool watched = watch_on(WATCH_FETCHERS | WATCH_DELETIONS);
    if (prefix_stats_on())
        prefix_stats_record(r->key, r->nkey, PREFIX_DEL, false);
    if (watched)   /* the size the deletion line shows */
        mc_watch_peek(c, r->key, r->nkey, &cls, &size);
    if (item_delete_cls(r->key, r->nkey, 0, c->now, &cls) == ITEM_DELETED) {
        if (watched && watch_on(WATCH_DELETIONS))
            watch_deletion(r->key, r->nkey, "delete", cls, size);
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
    uint32_t size;
    if (watch_on(WATCH_FETCHERS))   /* memcached logs the lookup of incr/decr */
        mc_watch_peek(c, r->key, r->nkey, &cls, &size);
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
    uint32_t size;
    if (watch_on(WATCH_FETCHERS))   /* and of touch */
        mc_watch_peek(c, r->key, r->nkey, &cls, &size);
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

/* memcached's refresh_certs: reload the TLS certificate, key and CA from
 * their files. A file that fails to load leaves the old ones serving. */
static enum proc_result cmd_refresh_certs(struct conn *c, const struct mc_text_req *r)
{
    char err[400], line[420];
    (void)r;
    if (tls_refresh_certs(err, sizeof(err)) == 0) {
        CONN_OUT_LIT(c, "OK\r\n");
        return PROC_MORE;
    }
    int n = snprintf(line, sizeof(line), "ERROR %s\r\n", err);
    conn_out(c, line, n > 0 && (size_t)n < sizeof(line) ? (size_t)n : strlen(line));
    return PROC_MORE;
}

/* memcached's `cache_memlimit <MiB>`: the memory limit at run time, with
 * its replies. The limit that `stats settings` (maxbytes), `stats`
 * (limit_maxbytes) and Redis's INFO show follows it. */
static enum proc_result cmd_cache_memlimit(struct conn *c, const struct mc_text_req *r)
{
    if (r->megabytes < 8)
        REPLY(c, r->noreply, "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n");
    else if (r->megabytes > 1000000000)
        REPLY(c, r->noreply, "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n");
    else if (storage_set_mem_limit((size_t)r->megabytes * 1024 * 1024) != 0)
        REPLY(c, r->noreply, "MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n");
    else
        REPLY(c, r->noreply, "OK\r\n");
    return PROC_MORE;
}

/* A whole decimal int32 token, as memcached's safe_strtol. */
static bool token_i32(const char *s, size_t n, int32_t *out)
{
    char buf[16];
    char *end;
    long v;

    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    v = strtol(buf, &end, 10);
    if (errno != 0 || *end != '\0' || v < INT32_MIN || v > INT32_MAX)
        return false;
    *out = (int32_t)v;
    return true;
}

/* memcached's `slabs reassign <src> <dst>` and `slabs automove <0|1|2>`,
 * with its replies. */
static enum proc_result cmd_slabs(struct conn *c, const struct mc_text_req *r)
{
    static const char *const replies[] = {
        [STORAGE_REASSIGN_OK] = "OK",
        [STORAGE_REASSIGN_BUSY] = "BUSY currently processing reassign request",
        [STORAGE_REASSIGN_BADCLASS] = "BADCLASS invalid src or dst class id",
        [STORAGE_REASSIGN_NOSPARE] = "NOSPARE source class has no spare pages",
        [STORAGE_REASSIGN_SAME] = "SAME src and dst class are identical",
        [STORAGE_REASSIGN_DISABLED] = "CLIENT_ERROR slab reassignment disabled",
    };
    const char *tok[4];
    size_t len[4];
    unsigned n = 0;
    const char *p = r->args, *e = r->args + r->args_len;
    int32_t a, b;

    while (p < e && n < 4) {
        while (p < e && *p == ' ')
            p++;
        if (p == e)
            break;
        tok[n] = p;
        while (p < e && *p != ' ')
            p++;
        len[n] = (size_t)(p - tok[n]);
        n++;
    }
    if (n == 3 && len[0] == 8 && memcmp(tok[0], "reassign", 8) == 0) {
        if (!settings->storage.slab_reassign) {
            reply_line(c, replies[STORAGE_REASSIGN_DISABLED]);
        } else if (!token_i32(tok[1], len[1], &a) || !token_i32(tok[2], len[2], &b)) {
            reply_line(c, "CLIENT_ERROR bad command line format");
        } else {
            reply_line(c, replies[storage_slabs_reassign(a, b)]);
        }
    } else if (n >= 2 && len[0] == 8 && memcmp(tok[0], "automove", 8) == 0) {
        if (!token_i32(tok[1], len[1], &a) || a < 0) {
            reply_line(c, "CLIENT_ERROR bad command line format");
        } else if (a > 2) {
            reply_line(c, "ERROR");
        } else {
            storage_slabs_automove((unsigned)a);
            reply_line(c, "OK");
        }
    } else {
        reply_line(c, "ERROR");
    }
    return PROC_MORE;
}

/* Go on with a metadump/mgdump: its line stays in the read buffer until
 * the dump ends, as a get walk's does (so process() keeps being called). */
static enum proc_result dump_walk(struct conn *c)
{
    struct text_state *st = state_of(c);

    if (!mc_crawler_dump_step(c, &st->u.dump))
        return PROC_YIELD;
    conn_consume(c, st->get_line);
    st->get_line = 0;
    st->dumping = false;
    return PROC_MORE;
}

/* lru_crawler: its line is kept (keeps_line) for a dump; anything else
 * consumes it here. */
static enum proc_result cmd_lru_crawler(struct conn *c, const struct mc_text_req *r)
{
    struct text_state *st = state_of(c);
    bool pipelined = c->out_pos < c->nout;

    if (mc_crawler_cmd(c, &st->u.dump, r->args, r->args_len, pipelined)) {
        st->get_line = st->line;
        st->dumping = true;
        return dump_walk(c);
    }
    conn_consume(c, st->line);
    return PROC_MORE;
}

static enum proc_result cmd_stats(struct conn *c, const struct mc_text_req *r)
{
    cmd_stats_text(c, r->args, r->args_len);
    return PROC_MORE;
}

static enum proc_result cmd_watch(struct conn *c, const struct mc_text_req *r)
{
    struct text_state *st = state_of(c);
    struct mc_watch *w = NULL;
    enum proc_result res = mc_watch_start(c, r->args, r->args_len, settings->watch_enabled, &w);
    if (w != NULL) {
        st->u.watch = w;
        st->watching = true;
        conn_consume(c, conn_rlen(c));   /* nothing after watch is a command */
        /* It sends no requests by design: -o idle_timeout must not take it
         * for idle (memcached never kicks a watcher either). */
        __atomic_store_n(&c->streaming, true, __ATOMIC_RELAXED);   /* stats conns reads it */
    }
    return res;
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
    return proto_mc_meta_run(c, st->u.meta, meta_of[r->cmd], r->key, r->nkey,
                             r->args, r->args_len);
}

/* ---- authentication (-Y), as memcached 1.6's try_read_command_asciiauth ---- */

#define AUTH_TOKEN_MAX 16384     /* memcached's MAX_AUTH_REQ_LEN */
#define AUTH_LINE_MIN 6          /* shorter lines cannot be the set: close */
#define AUTH_JUNK_MAX 2048       /* this much without a newline: close */

/* Token i (0-based) of a line of space-separated tokens, or false. */
static bool line_token(const char *p, size_t n, int i, const char **tok, size_t *len)
{
    size_t pos = 0;
    for (int k = 0;; k++) {
        while (pos < n && p[pos] == ' ')
            pos++;
        if (pos == n)
            return false;
        size_t start = pos;
        while (pos < n && p[pos] != ' ')
            pos++;
        if (k == i) {
            *tok = p + start;
            *len = pos - start;
            return true;
        }
    }
}

static bool token_u32(const char *p, size_t n, uint32_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/*
 * One request of a client that has not authenticated. The only request
 * that does anything is "set <key> <flags> <exptime> <n>" with n bytes of
 * "user password" (key, flags and exptime ignored; "noreply" too: the
 * answer is always sent); every other line is answered
 * "CLIENT_ERROR unauthenticated" and the connection stays open. As
 * memcached, a line too short to be that set (under 6 bytes, e.g. "quit")
 * or 2 KiB of input without a newline closes the connection.
 *
 * The set line is consumed together with its data, so nothing is consumed
 * until the whole request is in (at most ~16 KiB). Returns false when it
 * needs more input; else true with *res what process() should do next
 * (PROC_MORE: go on with the next request). The password is never copied
 * anywhere but the comparison's stack buffer.
 */
static bool auth_request(struct conn *c, struct text_state *st, enum proc_result *res)
{
    const char *p = conn_rbuf(c);
    size_t n = conn_rlen(c);
    *res = PROC_MORE;
    const char *nl = n >= 3 ? memchr(p, '\n', n) : NULL;
    if (nl == NULL) {
        if (n <= AUTH_JUNK_MAX)
            return false;
        *res = PROC_CLOSE;
        return true;
    }
    size_t linelen = (size_t)(nl - p);   /* without the '\n' */
    if (linelen < AUTH_LINE_MIN) {
        *res = PROC_CLOSE;
        return true;
    }
    size_t toklen = linelen - (p[linelen - 1] == '\r');
    const char *tok;
    size_t tlen;
    uint32_t size;
    if (strncmp(p, "set", 3) != 0 || !line_token(p, toklen, 4, &tok, &tlen) ||
        !token_u32(tok, tlen, &size)) {
        conn_consume(c, linelen + 1);
        reply_line(c, "CLIENT_ERROR unauthenticated");
        return true;
    }
    if (size > AUTH_TOKEN_MAX) {
        conn_consume(c, linelen + 1);
        reply_line(c, "CLIENT_ERROR auth token too long");
        return true;
    }
    size_t total = linelen + 1 + size + 2;
    if (n < total)
        return false;
    const char *data = nl + 1;
    const char *mid = memchr(data, ' ', size);
    if (memcmp(data + size, "\r\n", 2) != 0) {
        reply_line(c, "CLIENT_ERROR bad command line termination");
    } else if (mid == NULL) {
        reply_line(c, "CLIENT_ERROR bad authentication token format");
    } else {
        const char *pass = mid + 1;
        bool ok = auth_file_check(data, (size_t)(mid - data), pass,
                                  (size_t)(data + size - pass));
        STAT_INC(c->stats, auth_cmds);
        if (ok) {
            st->authed = true;
            reply_line(c, "STORED");
        } else {
            STAT_INC(c->stats, auth_errors);
            reply_line(c, "CLIENT_ERROR authentication failure");
        }
    }
    conn_consume(c, total);
    return true;
}

/* ---- null storage ----
 *
 * -o null_storage, a benchmark mode: the same reads, parser, dispatch and
 * writes, but get/gets/gat/gats answer every key as a hit on the 4-byte
 * value "null" (flags 0; cas 1 where one is shown) and the storage commands
 * skip their data block and answer STORED (a block already read in full
 * without its CRLF gets "CLIENT_ERROR bad data chunk"). Nothing is looked up
 * or stored; every other command runs as usual. bench/mc_ab.sh sets kioku
 * against this to see what share of a request the cache itself costs.
 */

static enum proc_result null_walk(struct conn *c)
{
    struct text_state *st = state_of(c);
    struct get_walk *g = &st->u.get;
    bool with_cas = g->cmd == MC_GETS || g->cmd == MC_GATS;
    const char *line = conn_rbuf(c);
    const char *cur = line + g->cur, *end = line + g->end, *key;
    size_t nkey;
    while (mc_text_next_key(&cur, end, &key, &nkey)) {
        STAT_INC(c->stats, cmd_get);
        STAT_INC(c->stats, get_hits);
        char *p = conn_out_reserve(c, 6 + nkey + 4 + 2 + 8);
        if (p == NULL)
            continue;
        size_t n = 0;
        memcpy(p, "VALUE ", 6);
        n += 6;
        memcpy(p + n, key, nkey);
        n += nkey;
        memcpy(p + n, " 0 4", 4);
        n += 4;
        if (with_cas) {
            memcpy(p + n, " 1", 2);
            n += 2;
        }
        memcpy(p + n, "\r\nnull\r\n", 8);
        n += 8;
        conn_out_commit(c, n);
        if (conn_out_full(c) && cur < end) {
            g->cur = (size_t)(cur - line);
            return PROC_YIELD;
        }
    }
    return walk_end(c, st);
}

static enum proc_result null_store(struct conn *c, const struct mc_text_req *r)
{
    STAT_INC(c->stats, cmd_set);
    size_t n = (size_t)r->vlen + 2;
    if (conn_rlen(c) < n) {   /* still arriving: skipped unseen, so no CRLF check */
        REPLY(c, r->noreply, "STORED\r\n");
        conn_swallow(c, n);
        return PROC_NREAD;
    }
    const char *end = conn_rbuf(c) + r->vlen;
    bool crlf = end[0] == '\r' && end[1] == '\n';
    conn_consume(c, n);
    if (crlf)
        REPLY(c, r->noreply, "STORED\r\n");
    else
        REPLY(c, r->noreply, "CLIENT_ERROR bad data chunk\r\n");
    return PROC_MORE;
}

/* ---- dispatch ---- */

/* Commands are rows: a command the parser knows but this table lacks is
 * answered "ERROR" like an unknown one. */
static const text_handler handlers[MC_CMD_COUNT] = {
    [MC_GET] = cmd_get, [MC_GETS] = cmd_get, [MC_GAT] = cmd_get, [MC_GATS] = cmd_get,
    [MC_SET] = cmd_store, [MC_ADD] = cmd_store, [MC_REPLACE] = cmd_store,
    [MC_APPEND] = cmd_store, [MC_PREPEND] = cmd_store, [MC_CAS] = cmd_store,
    [MC_DELETE] = cmd_delete, [MC_INCR] = cmd_delta, [MC_DECR] = cmd_delta,
    [MC_TOUCH] = cmd_touch, [MC_FLUSH_ALL] = cmd_flush_all, [MC_VERSION] = cmd_version,
    [MC_VERBOSITY] = cmd_verbosity, [MC_QUIT] = cmd_quit, [MC_SHUTDOWN] = cmd_shutdown,
    [MC_STATS] = cmd_stats, [MC_SLABS] = cmd_slabs, [MC_REFRESH_CERTS] = cmd_refresh_certs,
    [MC_CACHE_MEMLIMIT] = cmd_cache_memlimit, [MC_LRU_CRAWLER] = cmd_lru_crawler,
    [MC_META_GET] = cmd_meta, [MC_META_SET] = cmd_meta, [MC_META_DELETE] = cmd_meta,
    [MC_META_ARITH] = cmd_meta, [MC_META_NOOP] = cmd_meta, [MC_META_DEBUG] = cmd_meta,
    [MC_WATCH] = cmd_watch,
};

/* handlers, with retrieval and storage answered by the null rows. */
static text_handler null_handlers[MC_CMD_COUNT];

static void choose_rows(bool null_storage)
{
    rows = handlers;
    walk = get_walk;
    if (!null_storage)
        return;
    memcpy(null_handlers, handlers, sizeof(handlers));
    for (int i = 0; i < MC_CMD_COUNT; i++) {
        if (handlers[i] == cmd_store)
            null_handlers[i] = null_store;
    }
    rows = null_handlers;
    walk = null_walk;
}

/* Handlers that consume their own line: a get may yield before it has
 * answered every key, and its keys are read from the line in place; an
 * lru_crawler dump yields too. */
static bool keeps_line(enum mc_cmd cmd)
{
    return cmd == MC_GET || cmd == MC_GETS || cmd == MC_GAT || cmd == MC_GATS ||
           cmd == MC_LRU_CRAWLER;
}

/*
 * Is the head of input a key list still without its newline, with no need
 * to parse it again? A get line may grow to MC_TEXT_KEYS_LINE_MAX (the
 * read buffer grows for it); looking only at the bytes that arrived since
 * the last look keeps the work linear in the line's length.
 */
static bool keys_line_incomplete(struct text_state *st, const char *p, size_t n)
{
    if (st->scanned <= MC_TEXT_LINE_MAX || n >= MC_TEXT_KEYS_LINE_MAX || n < st->scanned)
        return false;
    if (memchr(p + st->scanned, '\n', n - st->scanned) != NULL)
        return false;
    st->scanned = n;
    return true;
}

/*
 * Pipelining: with several requests in the read buffer, parse ahead (the
 * parser is pure) and pass the hashes of the keys about to be looked up or
 * stored to item_prefetch, so their cache misses overlap instead of
 * stalling one request after another (a lookup's misses were a quarter of
 * a pipelined get's CPU). The parsed requests are kept for text_process
 * (struct ahead, on its stack: the buffer does not move during a call)
 * and the get keys' hashes for get_walk (key_hints), so neither is done
 * twice. Looks at most PF_KEYS keys or PF_REQS requests, and stops at an
 * incomplete request or after one that is not a retrieval or storage
 * command.
 * A single request (no pipelining) is left alone: nothing to overlap.
 */
#define PF_REQS 16

struct ahead {
    struct mc_text_req req[PF_REQS];
    const char *at[PF_REQS];    /* where request i starts in the buffer */
    size_t used[PF_REQS];       /* its line's bytes */
    unsigned n, next;
    const char *end;            /* no new look before the input gets here */
};

static void look_ahead(struct ahead *a, const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n);
    uint64_t hv[PF_KEYS];
    size_t nk = 0, off = 0;

    a->n = a->next = 0;
    hints.n = hints.next = 0;
    if (nl == NULL || (size_t)(nl - p) + 1 == n) {
        a->end = p + n;
        return;
    }
    while (nk < PF_KEYS && a->n < PF_REQS && off < n) {
        struct mc_text_req *r = &a->req[a->n];
        size_t used = 0;
        if (mc_text_parse(r, p + off, n - off, &used) != PARSE_OK)
            break;
        size_t next = off + used;
        bool keyed = true;
        if (r->cmd == MC_GET || r->cmd == MC_GETS || r->cmd == MC_GAT || r->cmd == MC_GATS) {
            const char *cur = r->keys, *end = r->keys + r->keys_len, *key;
            size_t nkey;
            while (nk < PF_KEYS && mc_text_next_key(&cur, end, &key, &nkey)) {
                hints.key[hints.n] = key;
                hints.nkey[hints.n] = nkey;
                hints.hv[hints.n++] = hv[nk++] = item_hash(key, nkey);
            }
        } else if (r->has_data) {
            hv[nk++] = item_hash(r->key, r->nkey);
            next += (size_t)r->vlen + 2;
        } else {
            keyed = false;
        }
        a->at[a->n] = p + off;
        a->used[a->n++] = used;
        off = next;
        if (!keyed)
            break;   /* kept, so it is not parsed again, but the look ends */
    }
    if (nk > 1)
        item_prefetch(hv, nk);
    a->end = p + (off < n ? (off > 0 ? off : 1) : n);
}

static enum proc_result text_process(struct conn *c)
{
    struct text_state *st = state_of(c);
    if (st->watching) {   /* a watcher: input is dropped, see mc_watch.c */
        conn_consume(c, conn_rlen(c));
        return PROC_MORE;
    }
    struct ahead ah;
    ah.n = ah.next = 0;
    ah.end = conn_rbuf(c);
    hints.n = hints.next = 0;
    for (;;) {
        if (conn_rlen(c) == 0)
            return PROC_MORE;
        if (conn_out_full(c) || !conn_budget(c))
            return PROC_YIELD;
        if (st->get_line != 0) {
            enum proc_result res = st->dumping ? dump_walk(c) : walk(c);
            if (res != PROC_MORE)
                return res;
            continue;
        }
        if (!st->authed && auth_file_enabled()) {
            enum proc_result res;
            if (!auth_request(c, st, &res)) {
                c->budget++;   /* an incomplete request is not a request */
                return PROC_MORE;
            }
            if (res != PROC_MORE)
                return res;
            continue;
        }
        if (keys_line_incomplete(st, conn_rbuf(c), conn_rlen(c))) {
            c->budget++;
            return PROC_MORE;
        }
        if (conn_rbuf(c) >= ah.end && !settings->null_storage)
            look_ahead(&ah, conn_rbuf(c), conn_rlen(c));
        struct mc_text_req parsed, *r = &parsed;
        size_t used = 0;
        enum parse_status ps;
        if (ah.next < ah.n && ah.at[ah.next] == conn_rbuf(c)) {
            r = &ah.req[ah.next];
            used = ah.used[ah.next++];
            ps = PARSE_OK;
        } else {
            ps = mc_text_parse(r, conn_rbuf(c), conn_rlen(c), &used);
        }
        if (ps == PARSE_AGAIN) {
            c->budget++;   /* an incomplete line is not a request */
            st->scanned = conn_rlen(c);
            return PROC_MORE;
        }
        st->scanned = 0;
        if (ps == PARSE_TOO_LONG) {
            c->close_reason = CONN_CLOSE_ERROR;
            reply_line(c, r->error);
            return PROC_CLOSE;
        }
        if (log_level() > 1)
            log_command(c->fd, conn_rbuf(c), used);
        if (ps == PARSE_OK && rows[r->cmd] != NULL && keeps_line(r->cmd))
            st->line = used;
        else
            conn_consume(c, used);
        if (ps == PARSE_OK && rows[r->cmd] == NULL) {
            ps = PARSE_UNKNOWN;
            r->error = "ERROR";
        }
        if (ps == PARSE_UNKNOWN) {
            if (r->http) {
                c->close_reason = CONN_CLOSE_ERROR;
                return PROC_CLOSE;   /* no reply to a browser, as memcached */
            }
            reply_line(c, r->error);
            continue;
        }
        if (ps == PARSE_INVALID) {
            if (!r->noreply)
                reply_line(c, r->error);
            if (r->has_data) {
                /* As memcached 1.6.45: a refused storage line whose length
                 * was valid still has its data block, which is skipped. */
                conn_swallow(c, (size_t)r->vlen + 2);
                return PROC_NREAD;
            }
            continue;
        }
        STAT_INC(c->stats, commands_processed);
        enum proc_result res = rows[r->cmd](c, r);
        if (res != PROC_MORE)
            return res;
    }
}

static enum proc_result text_value_done(struct conn *c)
{
    struct text_state *st = state_of(c);

    if (st->cmd == MC_META_SET)
        return proto_mc_meta_set_done(c, st->u.meta);
    return store_done(c);
}

static void text_release(struct conn *c)
{
    struct text_state *st = state_of(c);

    if (st->watching) {
        mc_watch_stop(st->u.watch);
        st->watching = false;
    }
}

const struct proto_ops proto_mc_text = {
    .name = "text",
    .process = text_process,
    .value_done = text_value_done,
    .release = text_release,
};
