/*
 * RESP string commands: GET/SET and their variants, multi-key MGET/MSET,
 * APPEND/SETRANGE/GETRANGE/STRLEN and the counters.
 *
 * A Redis string is an item's value; a key set here gets client flags 0, and
 * an item stored by a memcached client reads back as its value bytes, so
 * both protocols share one store. Expiry is kept in kioku milliseconds,
 * which are unix milliseconds, so EXAT/PXAT are taken as they come and PX
 * is exact to the millisecond.
 *
 * Atomicity: every read-modify-write (SET with NX/XX/GET/KEEPTTL, GETSET,
 * GETDEL, GETEX, APPEND, SETRANGE, INCR*, ...) finds, checks and replaces
 * under the key's stripe lock with the do_item_* primitives, so it is atomic
 * with respect to every other client of either protocol. A linked item's
 * value is changed in place only where nothing but the hash table holds it
 * (SETBIT's do_item_write_sole(), as INCR's do_delta); otherwise a new item
 * is allocated (item_alloc() may be called with one stripe held) and
 * replaces it, so readers that hold the old one keep sending consistent
 * bytes. The reply is queued after the
 * lock is released whenever an item reference can carry it.
 *
 * Large values: the value of SET, SETNX, GETSET, SETEX, PSETEX, APPEND and
 * SETRANGE may arrive already in an item (resp_stream_arg()): SET and its
 * kin link that item itself, APPEND and SETRANGE copy from it. Every
 * string made here may be as long as proto-max-bulk-len (not -I, which
 * bounds memcached values), within half the memory limit.
 *
 * Keys holding a hash or sorted set (storage/coll.h): SET, SETEX, MSET
 * and the like overwrite them, as in Redis; commands that read or change a
 * string value answer WRONGTYPE without changing anything; MGET reads them
 * as nil.
 *
 * Not atomic: MSET and MSETNX across keys on different stripes. Each key is
 * set atomically, but another client may see some keys of an MSET before
 * the rest, and MSETNX checks all keys before setting any, so a key created
 * by someone else in between is overwritten (storage forbids holding two
 * stripes, which a multi-key lock would need).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/resp_cmds.h"
#include "config/settings.h"
#include "stats/stats.h"
#include "storage/item.h"
#include "util/fmt.h"

/* ---- helpers ---- */

/* Copy n bytes of src's value from soff into dst's value at doff. */
static void copy_value(struct item *dst, size_t doff, struct item *src, size_t soff, size_t n)
{
    struct iovec iov[8];
    while (n > 0) {
        int cnt = item_value_iov(src, soff, iov, 8);
        if (cnt <= 0)
            return;
        for (int i = 0; i < cnt && n > 0; i++) {
            size_t len = iov[i].iov_len < n ? iov[i].iov_len : n;
            item_value_write(dst, doff, iov[i].iov_base, len);
            doff += len;
            soff += len;
            n -= len;
        }
    }
}

static void zero_value(struct item *dst, size_t off, size_t n)
{
    static const char zeros[1024];
    while (n > 0) {
        size_t len = n < sizeof(zeros) ? n : sizeof(zeros);
        item_value_write(dst, off, zeros, len);
        off += len;
        n -= len;
    }
}

/* A new unlinked item for key, value uninitialised; replies the error and
 * returns NULL when it cannot be had. */
static struct item *new_item(struct conn *c, const struct resp_arg *key, uint32_t flags,
                             int64_t exptime, size_t nbytes)
{
    enum item_alloc_status st;
    struct item *it = item_alloc_big(key->ptr, key->len, flags, exptime, nbytes, resp_max_bulk(),
                                     c->now, &st);
    if (it == NULL)
        rs_alloc_error(c, (int)st);
    return it;
}

static struct item *new_value(struct conn *c, const struct resp_arg *key,
                              const void *val, size_t len, int64_t exptime)
{
    struct item *it = new_item(c, key, 0, exptime, len);
    if (it != NULL)
        item_value_write(it, 0, val, len);
    return it;
}

int resp_stream_arg(const struct resp_cmd *cmd)
{
    if (cmd->fn == resp_cmd_set || cmd->fn == resp_cmd_setnx || cmd->fn == resp_cmd_getset ||
        cmd->fn == resp_cmd_append)
        return 2;
    if (cmd->fn == resp_cmd_setex || cmd->fn == resp_cmd_setrange)
        return 3;
    return 0;
}

/* Argument i's bytes into dst's value at off, wherever they arrived. */
static void write_arg(struct conn *c, const struct resp_call *call, int i, struct item *dst,
                      size_t off)
{
    struct item *src = resp_stream_value(c, call, i);
    if (src != NULL)
        copy_value(dst, off, src, 0, item_nbytes(src));
    else
        item_value_write(dst, off, call->argv[i].ptr, call->argv[i].len);
}

/* True (and WRONGTYPE replied) when it is a collection, not a string. */
static bool wrongtype(struct conn *c, const struct item *it)
{
    if (it == NULL || !item_is_typed(it))
        return false;
    rs_error(c, RS_ERR_WRONGTYPE);
    return true;
}

/* GET's lookup: counts as an access (LRU bump) and in the get stats. A
 * collection is returned too: callers check with wrongtype(). */
static struct item *get_item(struct conn *c, const struct resp_arg *key)
{
    enum item_miss miss = ITEM_MISS_NONE;
    struct item *it = item_get_any_hashed(key->ptr, key->len, resp_key_hash(c, key), c->now,
                                          &miss);
    STAT_INC(c->stats, cmd_get);
    if (it != NULL) {
        STAT_INC(c->stats, get_hits);
    } else {
        STAT_INC(c->stats, get_misses);
        if (miss == ITEM_MISS_EXPIRED)
            STAT_INC(c->stats, get_expired);
        else if (miss == ITEM_MISS_FLUSHED)
            STAT_INC(c->stats, get_flushed);
    }
    return it;
}

static void reply_value(struct conn *c, struct item *it)
{
    if (it == NULL) {
        rs_null(c);
        return;
    }
    rs_bulk_item(c, it, 0, item_nbytes(it));
    item_put(it);
}

/* Relative (now + v) or absolute (v) expiry in units of `unit` ms, as
 * kioku ms. false when v <= 0 or the result overflows: Redis's "invalid
 * expire time" for SET, SETEX and GETEX. */
static bool expiry_of(int64_t v, int64_t unit, bool absolute, int64_t now, int64_t *out)
{
    if (v <= 0 || v > INT64_MAX / unit)
        return false;
    v *= unit;
    if (!absolute) {
        if (v > INT64_MAX - now)
            return false;
        v += now;
    }
    *out = v;
    return true;
}

/* ---- SET and its options ---- */

enum {
    O_NX = 1 << 0, O_XX = 1 << 1, O_GET = 1 << 2, O_KEEPTTL = 1 << 3, O_PERSIST = 1 << 4,
    O_EX = 1 << 5, O_PX = 1 << 6, O_EXAT = 1 << 7, O_PXAT = 1 << 8,
};
#define O_EXPIRY (O_EX | O_PX | O_EXAT | O_PXAT)

struct str_opts {
    unsigned flags;
    int64_t at;        /* kioku ms when an O_EXPIRY flag is set */
};

/* One option word; 0 if it is not allowed here (a syntax error). */
static unsigned opt_word(const struct resp_arg *a, unsigned have, bool is_set, bool has_next)
{
    static const struct { const char *word; unsigned flag; } expiry[] = {
        {"ex", O_EX}, {"px", O_PX}, {"exat", O_EXAT}, {"pxat", O_PXAT},
    };
    if (is_set && rs_arg_is(a, "nx"))
        return (have & O_XX) ? 0 : O_NX;
    if (is_set && rs_arg_is(a, "xx"))
        return (have & O_NX) ? 0 : O_XX;
    if (is_set && rs_arg_is(a, "get"))
        return O_GET;
    if (is_set && rs_arg_is(a, "keepttl"))
        return (have & (O_PERSIST | O_EXPIRY)) ? 0 : O_KEEPTTL;
    if (!is_set && rs_arg_is(a, "persist"))
        return (have & (O_KEEPTTL | O_EXPIRY)) ? 0 : O_PERSIST;
    for (size_t k = 0; k < sizeof(expiry) / sizeof(expiry[0]); k++) {
        if (rs_arg_is(a, expiry[k].word)) {
            unsigned others = O_KEEPTTL | O_PERSIST | (O_EXPIRY & ~expiry[k].flag);
            return (has_next && !(have & others)) ? expiry[k].flag : 0;
        }
    }
    return 0;
}

/*
 * SET (is_set) or GETEX options from argv[from..). As Redis: words are
 * checked first (syntax error), then the expiry number (not an integer),
 * then its range (invalid expire time). Replies and returns false on error.
 */
static bool parse_opts(struct conn *c, const struct resp_call *call, int from, bool is_set,
                       struct str_opts *o)
{
    const struct resp_arg *num = NULL;
    o->flags = 0;
    o->at = 0;
    for (int j = from; j < call->argc; j++) {
        unsigned f = opt_word(&call->argv[j], o->flags, is_set, j + 1 < call->argc);
        if (f == 0) {
            rs_error(c, RS_ERR_SYNTAX);
            return false;
        }
        if (f & O_EXPIRY)
            num = &call->argv[++j];
        o->flags |= f;
    }
    if (num == NULL)
        return true;
    int64_t v;
    if (!rs_arg_i64(c, num, &v))
        return false;
    int64_t unit = (o->flags & (O_EX | O_EXAT)) ? 1000 : 1;
    if (!expiry_of(v, unit, (o->flags & (O_EXAT | O_PXAT)) != 0, c->now, &o->at)) {
        rs_expire_error(c, call);
        return false;
    }
    return true;
}

/*
 * Store argument `vi` of the call under its key argv[1]: the atomic core
 * of the SET family. O_NX/O_XX make it conditional, O_KEEPTTL keeps the
 * old expiry, `at` (0: none) is the new one; an expiry already past
 * deletes the key instead, as Redis does. Returns 1 stored, 0 condition
 * not met, -1 error (replied). With old_out the previous live item is
 * handed back referenced (or NULL).
 */
static int do_set(struct conn *c, const struct resp_call *call, int vi, unsigned flags,
                  int64_t at, struct item **old_out)
{
    const struct resp_arg *key = &call->argv[1], *val = &call->argv[vi];
    STAT_INC(c->stats, cmd_set);
    struct item *it = resp_stream_take(c, call, vi);
    if (it != NULL)
        item_set_exptime_unlinked(it, at);   /* made for this key, unlinked */
    else
        it = new_value(c, key, val->ptr, val->len, at);
    if (it == NULL)
        return -1;
    uint64_t hv = resp_key_hash(c, key);
    item_lock(hv);
    struct item *old = do_item_find(key->ptr, key->len, hv, c->now, NULL);
    if (old_out != NULL)
        resp_count_read(c, old);
    if (old_out != NULL && old != NULL && item_is_typed(old)) {
        /* SET ... GET and GETSET read the old value first. */
        item_unlock(hv);
        item_put(it);
        item_put(old);
        rs_error(c, RS_ERR_WRONGTYPE);
        return -1;
    }
    bool ok = !((flags & O_NX) && old != NULL) && !((flags & O_XX) && old == NULL);
    if (ok) {
        if ((flags & O_KEEPTTL) && old != NULL)
            item_set_exptime_unlinked(it, item_exptime(old));
        if (item_exptime_passed(item_exptime(it), c->now)) {
            if (old != NULL)
                do_item_unlink(old, hv);
        } else {
            do_item_replace(old, it, hv);
        }
    }
    item_unlock(hv);
    item_put(it);
    if (old_out != NULL)
        *old_out = old;
    else if (old != NULL)
        item_put(old);
    return ok ? 1 : 0;
}

enum proc_result resp_cmd_get(struct conn *c, const struct resp_call *call)
{
    struct item *it = get_item(c, &call->argv[1]);
    if (wrongtype(c, it))
        item_put(it);
    else
        reply_value(c, it);
    return PROC_MORE;
}

enum proc_result resp_cmd_set(struct conn *c, const struct resp_call *call)
{
    struct str_opts o;
    if (!parse_opts(c, call, 3, true, &o))
        return PROC_MORE;
    struct item *old = NULL;
    int res = do_set(c, call, 2, o.flags, o.at, (o.flags & O_GET) ? &old : NULL);
    if (res < 0)
        return PROC_MORE;
    if (o.flags & O_GET)
        reply_value(c, old);
    else if (res == 1)
        rs_ok(c);
    else
        rs_null(c);
    return PROC_MORE;
}

/* SETEX key seconds value; PSETEX (aux 1) in milliseconds. */
enum proc_result resp_cmd_setex(struct conn *c, const struct resp_call *call)
{
    int64_t v, at;
    if (!rs_arg_i64(c, &call->argv[2], &v))
        return PROC_MORE;
    if (!expiry_of(v, call->cmd->aux ? 1 : 1000, false, c->now, &at)) {
        rs_expire_error(c, call);
        return PROC_MORE;
    }
    if (do_set(c, call, 3, 0, at, NULL) >= 0)
        rs_ok(c);
    return PROC_MORE;
}

enum proc_result resp_cmd_setnx(struct conn *c, const struct resp_call *call)
{
    int res = do_set(c, call, 2, O_NX, 0, NULL);
    if (res >= 0)
        rs_int(c, res);
    return PROC_MORE;
}

enum proc_result resp_cmd_getset(struct conn *c, const struct resp_call *call)
{
    struct item *old = NULL;
    if (do_set(c, call, 2, 0, 0, &old) >= 0)
        reply_value(c, old);
    return PROC_MORE;
}

enum proc_result resp_cmd_getdel(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *key = &call->argv[1];
    uint64_t hv = item_hash(key->ptr, key->len);
    item_lock(hv);
    struct item *it = do_item_find(key->ptr, key->len, hv, c->now, NULL);
    resp_count_read(c, it);
    bool wrong = wrongtype(c, it);
    if (it != NULL && !wrong)
        do_item_unlink(it, hv);
    item_unlock(hv);
    if (wrong)
        item_put(it);
    else
        reply_value(c, it);
    return PROC_MORE;
}

enum proc_result resp_cmd_getex(struct conn *c, const struct resp_call *call)
{
    struct str_opts o;
    if (!parse_opts(c, call, 2, false, &o))
        return PROC_MORE;
    const struct resp_arg *key = &call->argv[1];
    uint64_t hv = item_hash(key->ptr, key->len);
    item_lock(hv);
    struct item *it = do_item_find(key->ptr, key->len, hv, c->now, NULL);
    resp_count_read(c, it);
    if (wrongtype(c, it)) {
        item_unlock(hv);
        item_put(it);
        return PROC_MORE;
    }
    if (it != NULL) {
        do_item_bump(it, c->now);
        if (o.flags & O_PERSIST)
            do_item_set_exptime(it, hv, 0);
        else if ((o.flags & O_EXPIRY) && item_exptime_passed(o.at, c->now))
            do_item_unlink(it, hv);
        else if (o.flags & O_EXPIRY)
            do_item_set_exptime(it, hv, o.at);
    }
    item_unlock(hv);
    reply_value(c, it);
    return PROC_MORE;
}

enum proc_result resp_cmd_mget(struct conn *c, const struct resp_call *call)
{
    rs_array(c, (size_t)call->argc - 1);
    for (int i = 1; i < call->argc; i++) {
        struct item *it = get_item(c, &call->argv[i]);
        if (it != NULL && item_is_typed(it)) {
            item_put(it);
            it = NULL;
        }
        reply_value(c, it);
    }
    return PROC_MORE;
}

static bool pairs_ok(struct conn *c, const struct resp_call *call)
{
    if (call->argc % 2 == 1)
        return true;
    rs_errorf(c, "ERR wrong number of arguments for '%s' command", call->cmd->name);
    return false;
}

/*
 * MSET and MSETNX (nx): all keys change at once, as in Redis. The new items
 * are allocated first (allocation may evict), then every key's stripe is
 * locked in index order and the keys are checked (nx) and linked together.
 * Returns 1 when set, 0 when nx found a key, -1 after an error reply.
 */
static int set_pairs(struct conn *c, const struct resp_call *call, bool nx)
{
    int npairs = (call->argc - 1) / 2;
    struct item *small_its[16];
    uint64_t small_hvs[16] = {0};
    struct item **its = small_its;
    uint64_t *hvs = small_hvs;
    int result = 1, made = 0;

    if (npairs > 16) {
        its = malloc(sizeof(*its) * (size_t)npairs);
        hvs = malloc(sizeof(*hvs) * (size_t)npairs);
        if (its == NULL || hvs == NULL) {
            rs_error(c, "ERR out of memory");
            result = -1;
            goto out;
        }
    }
    for (; made < npairs; made++) {
        const struct resp_arg *key = &call->argv[1 + 2 * made], *val = &call->argv[2 + 2 * made];
        STAT_INC(c->stats, cmd_set);
        its[made] = new_value(c, key, val->ptr, val->len, 0);
        if (its[made] == NULL) {
            result = -1;   /* new_item replied */
            goto out;
        }
        hvs[made] = item_hash(key->ptr, key->len);
    }
    struct item_lockset set;
    item_lock_many(&set, hvs, (size_t)npairs);
    for (int i = 0; nx && i < npairs; i++) {
        const struct resp_arg *key = &call->argv[1 + 2 * i];
        struct item *old = do_item_find(key->ptr, key->len, hvs[i], c->now, NULL);
        if (old != NULL) {
            item_put(old);
            result = 0;
            break;
        }
    }
    for (int i = 0; result == 1 && i < npairs; i++) {
        const struct resp_arg *key = &call->argv[1 + 2 * i];
        struct item *old = do_item_find(key->ptr, key->len, hvs[i], c->now, NULL);
        do_item_replace(old, its[i], hvs[i]);
        if (old != NULL)
            item_put(old);
    }
    item_unlock_many(&set);
out:
    for (int i = 0; i < made; i++)
        item_put(its[i]);
    if (its != small_its)
        free(its);
    if (hvs != small_hvs)
        free(hvs);
    return result;
}

enum proc_result resp_cmd_mset(struct conn *c, const struct resp_call *call)
{
    if (pairs_ok(c, call) && set_pairs(c, call, false) == 1)
        rs_ok(c);
    return PROC_MORE;
}

enum proc_result resp_cmd_msetnx(struct conn *c, const struct resp_call *call)
{
    if (!pairs_ok(c, call))
        return PROC_MORE;
    int r = set_pairs(c, call, true);
    if (r >= 0)
        rs_int(c, r);
    return PROC_MORE;
}

/* ---- APPEND, SETRANGE, GETRANGE, STRLEN ---- */

enum proc_result resp_cmd_append(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *key = &call->argv[1], *val = &call->argv[2];
    uint64_t hv = item_hash(key->ptr, key->len);
    item_lock(hv);
    struct item *old = do_item_find(key->ptr, key->len, hv, c->now, NULL);
    if (wrongtype(c, old)) {
        item_unlock(hv);
        item_put(old);
        return PROC_MORE;
    }
    size_t oldlen = old != NULL ? item_nbytes(old) : 0;
    struct item *it = new_item(c, key, old != NULL ? item_flags(old) : 0,
                               old != NULL ? item_exptime(old) : 0, oldlen + val->len);
    if (it != NULL) {
        if (old != NULL)
            copy_value(it, 0, old, 0, oldlen);
        write_arg(c, call, 2, it, oldlen);
        do_item_replace(old, it, hv);
    }
    item_unlock(hv);
    if (old != NULL)
        item_put(old);
    if (it != NULL) {
        item_put(it);
        rs_int(c, (int64_t)(oldlen + val->len));
    }
    return PROC_MORE;
}

enum proc_result resp_cmd_setrange(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *key = &call->argv[1], *val = &call->argv[3];
    int64_t off;
    if (!rs_arg_i64(c, &call->argv[2], &off))
        return PROC_MORE;
    if (off < 0) {
        rs_error(c, "ERR offset is out of range");
        return PROC_MORE;
    }
    uint64_t hv = item_hash(key->ptr, key->len);
    item_lock(hv);
    struct item *old = do_item_find(key->ptr, key->len, hv, c->now, NULL);
    size_t oldlen = old != NULL ? item_nbytes(old) : 0;
    int64_t result = (int64_t)oldlen;
    if (wrongtype(c, old)) {
        result = -1;
    } else if (val->len > 0 && (uint64_t)off + val->len > resp_max_bulk()) {
        rs_error(c, RS_ERR_TOO_BIG);
        result = -1;
    } else if (val->len > 0) {
        size_t end = (size_t)off + val->len, len = end > oldlen ? end : oldlen;
        struct item *it = new_item(c, key, old != NULL ? item_flags(old) : 0,
                                   old != NULL ? item_exptime(old) : 0, len);
        if (it == NULL) {
            result = -1;
        } else {
            if (old != NULL)
                copy_value(it, 0, old, 0, oldlen);
            if ((size_t)off > oldlen)
                zero_value(it, oldlen, (size_t)off - oldlen);
            write_arg(c, call, 3, it, (size_t)off);
            do_item_replace(old, it, hv);
            item_put(it);
            result = (int64_t)len;
        }
    }
    item_unlock(hv);
    if (old != NULL)
        item_put(old);
    if (result >= 0)
        rs_int(c, result);
    return PROC_MORE;
}

enum proc_result resp_cmd_getrange(struct conn *c, const struct resp_call *call)
{
    int64_t start, end;
    if (!rs_arg_i64(c, &call->argv[2], &start) || !rs_arg_i64(c, &call->argv[3], &end))
        return PROC_MORE;
    struct item *it = get_item(c, &call->argv[1]);
    if (wrongtype(c, it)) {
        item_put(it);
        return PROC_MORE;
    }
    int64_t len = it != NULL ? (int64_t)item_nbytes(it) : 0;
    if (start < 0 && end < 0 && start > end)
        len = 0;
    if (start < 0)
        start += len;
    if (end < 0)
        end += len;
    if (start < 0)
        start = 0;
    if (end < 0)
        end = 0;
    if (end >= len)
        end = len - 1;
    if (it == NULL || len == 0 || start > end)
        rs_bulk(c, "", 0);
    else
        rs_bulk_item(c, it, (size_t)start, (size_t)(end - start + 1));
    if (it != NULL)
        item_put(it);
    return PROC_MORE;
}

enum proc_result resp_cmd_strlen(struct conn *c, const struct resp_call *call)
{
    struct item *it = get_item(c, &call->argv[1]);
    if (!wrongtype(c, it))
        rs_int(c, it != NULL ? (int64_t)item_nbytes(it) : 0);
    if (it != NULL)
        item_put(it);
    return PROC_MORE;
}

/* ---- counters ---- */

static bool value_i64(struct item *it, int64_t *out)
{
    char buf[24];
    if (item_nbytes(it) > 20)
        return false;
    item_value_read(it, 0, buf, item_nbytes(it));
    return rs_parse_i64(buf, item_nbytes(it), out);
}

/* Replace (or create) key with the new number text; the caller holds the
 * stripe. Keeps the old item's flags and expiry. false: error replied. */
static bool do_store_number(struct conn *c, const struct resp_arg *key, struct item *old,
                            uint64_t hv, const char *text, size_t len)
{
    struct item *it = new_item(c, key, old != NULL ? item_flags(old) : 0,
                               old != NULL ? item_exptime(old) : 0, len);
    if (it == NULL)
        return false;
    item_value_write(it, 0, text, len);
    do_item_replace(old, it, hv);
    item_put(it);
    return true;
}

static void incr_by(struct conn *c, const struct resp_arg *key, int64_t delta, bool incr)
{
    uint64_t hv = item_hash(key->ptr, key->len);
    const char *err = NULL;
    int64_t v = 0;
    item_lock(hv);
    struct item *old = do_item_find(key->ptr, key->len, hv, c->now, NULL);
    if (old != NULL && item_is_typed(old))
        err = RS_ERR_WRONGTYPE;
    else if (old != NULL && !value_i64(old, &v))
        err = RS_ERR_NOT_INT;
    else if ((delta < 0 && v < 0 && delta < INT64_MIN - v) ||
             (delta > 0 && v > 0 && delta > INT64_MAX - v))
        err = RS_ERR_OVERFLOW;
    bool ok = false;
    if (err == NULL) {
        char text[24];
        v += delta;
        ok = do_store_number(c, key, old, hv, text, fmt_i64(text, v));
    }
    item_unlock(hv);
    if (incr && old != NULL)
        STAT_INC(c->stats, incr_hits);
    else if (incr)
        STAT_INC(c->stats, incr_misses);
    else if (old != NULL)
        STAT_INC(c->stats, decr_hits);
    else
        STAT_INC(c->stats, decr_misses);
    if (old != NULL)
        item_put(old);
    if (err != NULL)
        rs_error(c, err);
    else if (ok)
        rs_int(c, v);
}

/* INCR (aux 1), DECR (aux -1). */
enum proc_result resp_cmd_incr(struct conn *c, const struct resp_call *call)
{
    incr_by(c, &call->argv[1], call->cmd->aux, call->cmd->aux > 0);
    return PROC_MORE;
}

/* INCRBY (aux 1), DECRBY (aux -1). */
enum proc_result resp_cmd_incrby(struct conn *c, const struct resp_call *call)
{
    int64_t delta;
    if (!rs_arg_i64(c, &call->argv[2], &delta))
        return PROC_MORE;
    if (call->cmd->aux < 0) {
        if (delta == INT64_MIN) {
            rs_error(c, "ERR decrement would overflow");
            return PROC_MORE;
        }
        delta = -delta;
    }
    incr_by(c, &call->argv[1], delta, call->cmd->aux > 0);
    return PROC_MORE;
}


/* Redis's string2ld: the whole text is one finite-or-infinite number. */
bool rs_parse_ld(const char *s, size_t len, long double *out)
{
    char buf[LD_CHARS_MAX];
    char *end;
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (buf[0] == ' ' || (buf[0] >= '\t' && buf[0] <= '\r'))
        return false;
    errno = 0;
    long double v = strtold(buf, &end);
    if (end != buf + len || isnan(v))
        return false;
    if (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || v == 0))
        return false;
    *out = v;
    return true;
}

/* Redis's human-friendly long double: 17 decimals, trailing zeros cut. */
size_t rs_format_ld(char *buf, size_t cap, long double v)
{
    int n = snprintf(buf, cap, "%.17Lf", v);
    if (n < 0 || (size_t)n + 1 > cap)
        return 0;
    size_t l = (size_t)n;
    if (memchr(buf, '.', l) != NULL) {
        while (buf[l - 1] == '0')
            l--;
        if (buf[l - 1] == '.')
            l--;
    }
    if (l == 2 && buf[0] == '-' && buf[1] == '0') {
        buf[0] = '0';
        l = 1;
    }
    return l;
}

enum proc_result resp_cmd_incrbyfloat(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *key = &call->argv[1];
    long double incr, v = 0;
    if (!rs_parse_ld(call->argv[2].ptr, call->argv[2].len, &incr)) {
        rs_error(c, RS_ERR_NOT_FLOAT);
        return PROC_MORE;
    }
    static __thread char text[LD_CHARS_MAX], cur[LD_CHARS_MAX];
    const char *err = NULL;
    size_t len = 0;
    uint64_t hv = item_hash(key->ptr, key->len);
    item_lock(hv);
    struct item *old = do_item_find(key->ptr, key->len, hv, c->now, NULL);
    if (old != NULL && item_is_typed(old)) {
        err = RS_ERR_WRONGTYPE;
    } else if (old != NULL) {
        size_t n = item_nbytes(old) < sizeof(cur) ? item_nbytes(old) : 0;
        item_value_read(old, 0, cur, n);
        if (n == 0 || !rs_parse_ld(cur, n, &v))
            err = RS_ERR_NOT_FLOAT;
    }
    if (err == NULL) {
        v += incr;
        if (isnan(v) || isinf(v) || (len = rs_format_ld(text, sizeof(text), v)) == 0)
            err = "ERR increment would produce NaN or Infinity";
    }
    bool ok = err == NULL && do_store_number(c, key, old, hv, text, len);
    item_unlock(hv);
    if (old != NULL)
        item_put(old);
    if (err != NULL)
        rs_error(c, err);
    else if (ok)
        rs_bulk(c, text, len);
    return PROC_MORE;
}
