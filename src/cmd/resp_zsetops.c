/*
 * RESP sorted-set commands on several keys: ZUNION, ZINTER, ZDIFF and
 * their STORE forms, ZINTERCARD, ZRANGESTORE and ZMPOP, answering as
 * Redis 7 does. The one-key commands and the helpers shared with them are
 * in resp_zset.c (resp_zset_int.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/resp_zset_int.h"
#include "stats/stats.h"
#include "storage/item.h"
#include "util/log.h"

/* ---- set operations: ZUNION[STORE], ZINTER[STORE], ZDIFF[STORE],
 *      ZINTERCARD, ZRANGESTORE ---- */

/*
 * A command on several keys holds all their stripes at once
 * (item_lock_many: index order, so it cannot deadlock with RENAME, MSET or
 * another of these) and opens each key under them with do_coll_open(), so
 * the sources are read and the destination written as one step. Inside a
 * script the stripes are the script's already (the table names every
 * argument from the first key on, so the script holds them all).
 */

/* aux: the operation, and whether a destination key comes first. */
enum { ZOP_UNION = 0, ZOP_INTER = 1, ZOP_DIFF = 2, ZOP_CARD = 3 };
#define ZOP_STORE 0x10

struct zop_src {
    const struct resp_arg *key;
    struct coll_handle h;
    bool open;
    size_t len;
    double weight;
    uint32_t pos;               /* place on the command line */
};

struct zop_opts {
    enum zset_agg agg;
    bool scores;
    int64_t limit;              /* ZINTERCARD; 0: none */
    const char *err;            /* the first bad option's error, replied after the type checks */
};

/* Options after the keys, read as Redis reads them (WEIGHTS takes one
 * value per key). Redis checks the sources' types first, so an error is
 * kept in o->err for later. */
static void zop_parse_opts(const struct resp_call *call, int j, int op, bool store,
                           struct zop_src *src, long setnum, struct zop_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->agg = ZAGG_SUM;
    while (j < call->argc) {
        const struct resp_arg *a = &call->argv[j];
        long remaining = call->argc - j;
        if (op != ZOP_DIFF && op != ZOP_CARD && remaining >= setnum + 1 && rs_arg_is(a, "weights")) {
            j++;
            for (long i = 0; i < setnum; i++, j++) {
                if (!zs_parse_score(&call->argv[j], &src[i].weight)) {
                    o->err = "ERR weight value is not a float";
                    return;
                }
            }
        } else if (op != ZOP_DIFF && op != ZOP_CARD && remaining >= 2 && rs_arg_is(a, "aggregate")) {
            const struct resp_arg *v = &call->argv[j + 1];
            if (rs_arg_is(v, "sum")) {
                o->agg = ZAGG_SUM;
            } else if (rs_arg_is(v, "min")) {
                o->agg = ZAGG_MIN;
            } else if (rs_arg_is(v, "max")) {
                o->agg = ZAGG_MAX;
            } else {
                o->err = RS_ERR_SYNTAX;
                return;
            }
            j += 2;
        } else if (!store && op != ZOP_CARD && rs_arg_is(a, "withscores")) {
            o->scores = true;
            j++;
        } else if (op == ZOP_CARD && remaining >= 2 && rs_arg_is(a, "limit")) {
            /* A non-number and a negative number get the same error. */
            if (!rs_parse_i64(call->argv[j + 1].ptr, call->argv[j + 1].len, &o->limit) || o->limit < 0) {
                o->err = "ERR LIMIT can't be negative";
                return;
            }
            j += 2;
        } else {
            o->err = RS_ERR_SYNTAX;
            return;
        }
    }
}

/* Smallest first, ties in command-line order (Redis's qsort is a stable
 * merge sort here): the fold order of ZUNION and ZINTER. */
static int src_by_len(const void *x, const void *y)
{
    const struct zop_src *a = x, *b = y;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static int ent_by_member(const void *x, const void *y)
{
    const struct zop_ent *a = x, *b = y;
    int r = zsl_cmp(a->m, a->len, b->m, b->len);
    if (r != 0)
        return r;
    return a->src < b->src ? -1 : a->src > b->src;
}

static int ent_by_score(const void *x, const void *y)
{
    const struct zop_ent *a = x, *b = y;
    if (a->score != b->score)
        return a->score < b->score ? -1 : 1;
    return zsl_cmp(a->m, a->len, b->m, b->len);
}

/* Add every member of an open source to res (scores weighed). */
static bool zop_copy_all(struct zop_res *res, struct zop_src *s, uint32_t order)
{
    struct zset_iter it;
    struct zset_entry e;
    if (s->len == 0)
        return true;
    zset_iter_rank(&it, coll_arena(&s->h), zs_root(&s->h), 0, s->len - 1, false);
    while (zset_iter_next(&it, &e)) {
        e.score = zset_weigh(e.score, s->weight);
        if (!zs_res_add(res, &e, order))
            return false;
    }
    return true;
}

/* ZUNION: every source's members, then one entry per member with the
 * scores folded in source order. */
static void zop_union(struct zop_res *res, struct zop_src *src, long n, enum zset_agg agg)
{
    for (long i = 0; i < n; i++)
        if (!zop_copy_all(res, &src[i], (uint32_t)i))
            return;
    zs_res_seal(res);
    if (res->n == 0)
        return;
    qsort(res->e, res->n, sizeof(res->e[0]), ent_by_member);
    size_t w = 0;
    for (size_t i = 0; i < res->n; i++) {
        struct zop_ent *last = w > 0 ? &res->e[w - 1] : NULL;
        if (last != NULL && zsl_cmp(last->m, last->len, res->e[i].m, res->e[i].len) == 0)
            zset_aggregate(&last->score, res->e[i].score, agg);
        else
            res->e[w++] = res->e[i];
    }
    res->n = w;
}

/* ZINTER / ZINTERCARD: the smallest source's members found in every other
 * one; returns how many (stopping at limit when it is not 0). Only a
 * cardinality is wanted when res is NULL. */
static size_t zop_inter(struct zop_res *res, struct zop_src *src, long n, enum zset_agg agg, int64_t limit)
{
    struct zset_iter it;
    struct zset_entry e;
    size_t card = 0;
    if (src[0].len == 0)
        return 0;
    zset_iter_rank(&it, coll_arena(&src[0].h), zs_root(&src[0].h), 0, src[0].len - 1, false);
    while (zset_iter_next(&it, &e)) {
        double score = zset_weigh(e.score, src[0].weight), v;
        long j;
        for (j = 1; j < n; j++) {
            /* Only the first weighed score is cleared of NaN, as in Redis. */
            if (src[j].h.item == src[0].h.item)
                v = e.score * src[j].weight;
            else if (zset_score(coll_arena(&src[j].h), zs_root(&src[j].h), e.m, e.mlen, &v))
                v *= src[j].weight;
            else
                break;
            zset_aggregate(&score, v, agg);
        }
        if (j < n)
            continue;
        card++;
        if (res == NULL) {
            if (limit > 0 && card >= (uint64_t)limit)
                break;
            continue;
        }
        e.score = score;
        if (!zs_res_add(res, &e, 0))
            break;
    }
    return card;
}

/* ZDIFF: the first source's members in none of the others. */
static void zop_diff(struct zop_res *res, struct zop_src *src, long n)
{
    struct zset_iter it;
    struct zset_entry e;
    if (src[0].len == 0)
        return;
    zset_iter_rank(&it, coll_arena(&src[0].h), zs_root(&src[0].h), 0, src[0].len - 1, false);
    while (zset_iter_next(&it, &e)) {
        double v;
        long j;
        for (j = 1; j < n; j++)
            if (src[j].len > 0 && zset_score(coll_arena(&src[j].h), zs_root(&src[j].h), e.m, e.mlen, &v))
                break;
        if (j == n && !zs_res_add(res, &e, 0))
            break;
    }
}

/* Does a result go straight into a skiplist? Redis builds a ZUNIONSTORE
 * (& co.) result as one and makes it a listpack only when it fits, and
 * starts a ZRANGESTORE by rank in a skiplist when the range is longer than
 * a listpack holds. It shows: a listpack keeps -0 as 0, a skiplist as -0. */
static bool zop_skiplist_first(const struct zop_res *res, bool setop)
{
    struct zset_limits lim = zs_limits();
    if (res->n > lim.max_entries)
        return true;
    for (size_t i = 0; setop && i < res->n; i++)
        if (res->e[i].len > lim.max_value)
            return true;
    return false;
}

/* Replace the destination (any type, its TTL too, as Redis's SET of a new
 * value does) with the result, or delete it when the result is empty; the
 * caller holds its stripe. Replies the new size, or OOM (the destination
 * is gone then: the old value was dropped first). */
static void zop_store(struct conn *c, const struct resp_arg *key, uint64_t hv, struct zop_res *res,
                      bool skiplist)
{
    struct item *old = do_item_find(key->ptr, key->len, hv, c->now, NULL);
    if (old != NULL) {
        do_item_unlink(old, hv);
        item_put(old);
    }
    if (res->n == 0) {
        rs_int(c, 0);
        return;
    }
    struct coll_handle h;
    if (do_coll_open(&h, key->ptr, key->len, hv, COLL_ZSET, true, c->now) != COLL_OK) {
        rs_error(c, RS_ERR_OOM);
        return;
    }
    struct zset_limits lim = zs_limits();
    struct zset *z = zs_root(&h);
    int rc = ZSET_OK;
    if (skiplist)
        lim.max_entries = 0;    /* converts at the first member, never back */
    for (size_t i = 0; i < res->n && rc == ZSET_OK; i++) {
        int out;
        double ns;
        rc = zset_add(coll_arena(&h), z, &lim, res->e[i].m, res->e[i].len, res->e[i].score, 0, &out, &ns);
    }
    if (rc != ZSET_OK) {
        /* Left empty, the new key is freed by do_coll_close(). */
        zset_free(coll_arena(&h), z);
        zset_init(z);
        rs_error(c, RS_ERR_OOM);
    } else {
        rs_int(c, (int64_t)zset_len(z));
    }
    do_coll_close(&h);
}

/* The result as ZUNION / ZINTER / ZDIFF answer it: by score, then member. */
static void zop_reply(struct conn *c, struct zop_res *res, bool scores)
{
    if (res->n > 1)
        qsort(res->e, res->n, sizeof(res->e[0]), ent_by_score);
    zs_reply_list_hdr(c, res->n, scores);
    for (size_t i = 0; i < res->n; i++) {
        struct zset_entry e = { res->e[i].m, res->e[i].len, res->e[i].score };
        zs_reply_entry(c, &e, scores);
    }
}

/* Open the n sources under their held stripes, counting each lookup as a
 * read; false after replying WRONGTYPE (those opened are closed again). */
static bool zop_open_sources(struct conn *c, struct zop_src *src, const uint64_t *hvs, long n)
{
    for (long i = 0; i < n; i++) {
        const struct resp_arg *k = src[i].key;
        if (do_coll_open(&src[i].h, k->ptr, k->len, hvs[i], COLL_ZSET, false, c->now) != COLL_OK) {
            STAT_INC(c->stats, resp_read_hits);
            for (long j = 0; j < i; j++)
                do_coll_close(&src[j].h);
            rs_error(c, ZERR_WRONGTYPE);
            return false;
        }
        src[i].open = true;
        if (coll_exists(&src[i].h)) {
            STAT_INC(c->stats, resp_read_hits);
            src[i].len = zset_len(zs_root(&src[i].h));
        } else {
            STAT_INC(c->stats, resp_read_misses);
        }
    }
    return true;
}

/* Everything of one call that lives on the heap. */
struct zop_call {
    struct zop_src *src;
    uint64_t *hvs;              /* sources' hashes, then the destination's */
    struct zop_res res;
};

static void zop_call_free(struct zop_call *z)
{
    free(z->src);
    free(z->hvs);
    zs_res_free(&z->res);
}

/*
 * ZUNIONSTORE / ZINTERSTORE / ZDIFFSTORE dst numkeys key... [options],
 * ZUNION / ZINTER / ZDIFF / ZINTERCARD numkeys key... [options]; aux:
 * ZOP_* | ZOP_STORE. Checks in Redis's order: numkeys, the keys' types,
 * then the options.
 */
enum proc_result resp_cmd_zsetop(struct conn *c, const struct resp_call *call)
{
    int op = call->cmd->aux & 0xf;
    bool store = call->cmd->aux & ZOP_STORE;
    int nidx = store ? 2 : 1;
    int64_t setnum;
    struct zop_call z;

    memset(&z, 0, sizeof(z));
    if (!rs_arg_i64(c, &call->argv[nidx], &setnum))
        return PROC_MORE;
    if (setnum < 1) {
        rs_errorf(c, "ERR at least 1 input key is needed for '%s' command", call->cmd->name);
        return PROC_MORE;
    }
    if (setnum > call->argc - (nidx + 1)) {
        rs_error(c, RS_ERR_SYNTAX);
        return PROC_MORE;
    }
    long n = (long)setnum;
    z.src = calloc((size_t)n, sizeof(*z.src));
    z.hvs = malloc(sizeof(*z.hvs) * (size_t)(n + 1));
    if (z.src == NULL || z.hvs == NULL) {
        rs_error(c, "ERR out of memory");
        goto out;
    }
    for (long i = 0; i < n; i++) {
        z.src[i].key = &call->argv[nidx + 1 + i];
        z.src[i].weight = 1.0;
        z.src[i].pos = (uint32_t)i;
        z.hvs[i] = item_hash(z.src[i].key->ptr, z.src[i].key->len);
    }
    if (store)
        z.hvs[n] = item_hash(call->argv[1].ptr, call->argv[1].len);
    struct zop_opts o;
    zop_parse_opts(call, nidx + 1 + (int)n, op, store, z.src, n, &o);

    struct item_lockset set;
    item_lock_many(&set, z.hvs, (size_t)(store ? n + 1 : n));
    if (!zop_open_sources(c, z.src, z.hvs, n))
        goto unlock;
    size_t card = 0;
    if (o.err == NULL) {
        if (op != ZOP_DIFF)
            qsort(z.src, (size_t)n, sizeof(z.src[0]), src_by_len);
        if (op == ZOP_UNION)
            zop_union(&z.res, z.src, n, o.agg);
        else if (op == ZOP_INTER)
            zop_inter(&z.res, z.src, n, o.agg, 0);
        else if (op == ZOP_CARD)
            card = zop_inter(NULL, z.src, n, ZAGG_SUM, o.limit);
        else
            zop_diff(&z.res, z.src, n);
        zs_res_seal(&z.res);
    }
    for (long i = 0; i < n; i++)
        do_coll_close(&z.src[i].h);
    if (o.err != NULL)
        rs_error(c, o.err);
    else if (z.res.nomem)
        rs_error(c, "ERR out of memory");
    else if (op == ZOP_CARD)
        rs_int(c, (int64_t)card);
    else if (store)
        zop_store(c, &call->argv[1], z.hvs[n], &z.res, zop_skiplist_first(&z.res, true));
    else
        zop_reply(c, &z.res, o.scores);
unlock:
    item_unlock_many(&set);
out:
    zop_call_free(&z);
    return PROC_MORE;
}

/* ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]. */
enum proc_result resp_cmd_zrangestore(struct conn *c, const struct resp_call *call)
{
    struct range_req q;
    struct zop_res res;
    struct zop_src s;
    uint64_t hvs[2];

    if (!zs_parse_range_req(c, call, 2, true, &q))
        return PROC_MORE;
    memset(&res, 0, sizeof(res));
    memset(&s, 0, sizeof(s));
    s.key = &call->argv[2];
    hvs[0] = item_hash(s.key->ptr, s.key->len);
    hvs[1] = item_hash(call->argv[1].ptr, call->argv[1].len);
    struct item_lockset set;
    item_lock_many(&set, hvs, 2);
    if (!zop_open_sources(c, &s, hvs, 1))
        goto unlock;
    if (coll_exists(&s.h) && q.type == ZR_RANK) {
        size_t from, to;
        struct zset_iter it;
        struct zset_entry e;
        if (zs_clip_ranks(q.start, q.end, s.len, &from, &to)) {
            zset_iter_rank(&it, coll_arena(&s.h), zs_root(&s.h), from, to, q.reverse);
            while (zset_iter_next(&it, &e) && zs_res_add(&res, &e, 0))
                ;
        }
    } else if (coll_exists(&s.h)) {
        zs_range_walk(NULL, &res, &s.h, &q);
    }
    zs_res_seal(&res);
    do_coll_close(&s.h);
    if (res.nomem)
        rs_error(c, "ERR out of memory");
    else
        zop_store(c, &call->argv[1], hvs[1], &res, q.type == ZR_RANK && zop_skiplist_first(&res, false));
unlock:
    item_unlock_many(&set);
    zs_res_free(&res);
    return PROC_MORE;
}

/*
 * ZMPOP numkeys key... MIN|MAX [COUNT count]: pops from the first of the
 * keys that holds a set; a null array when none does. The keys' stripes
 * are held together, so the "first" is decided on one snapshot.
 */
enum proc_result resp_cmd_zmpop(struct conn *c, const struct resp_call *call)
{
    int64_t n, count = -1;
    bool max;

    if (!rs_parse_i64(call->argv[1].ptr, call->argv[1].len, &n) || n < 1) {
        rs_error(c, "ERR numkeys should be greater than 0");
        return PROC_MORE;
    }
    if (n >= call->argc - 2) {
        rs_error(c, RS_ERR_SYNTAX);
        return PROC_MORE;
    }
    int where = 2 + (int)n;
    if (rs_arg_is(&call->argv[where], "min") || rs_arg_is(&call->argv[where], "max")) {
        max = rs_arg_is(&call->argv[where], "max");
    } else {
        rs_error(c, RS_ERR_SYNTAX);
        return PROC_MORE;
    }
    for (int j = where + 1; j < call->argc; j++) {
        if (count == -1 && j + 1 < call->argc && rs_arg_is(&call->argv[j], "count")) {
            j++;
            if (!rs_parse_i64(call->argv[j].ptr, call->argv[j].len, &count) || count < 1) {
                rs_error(c, "ERR count should be greater than 0");
                return PROC_MORE;
            }
        } else {
            rs_error(c, RS_ERR_SYNTAX);
            return PROC_MORE;
        }
    }
    if (count == -1)
        count = 1;

    uint64_t *hvs = malloc(sizeof(*hvs) * (size_t)n);
    if (hvs == NULL) {
        rs_error(c, "ERR out of memory");
        return PROC_MORE;
    }
    for (int i = 0; i < n; i++)
        hvs[i] = item_hash(call->argv[2 + i].ptr, call->argv[2 + i].len);
    struct item_lockset set;
    item_lock_many(&set, hvs, (size_t)n);
    int i;
    struct coll_handle h;
    for (i = 0; i < n; i++) {
        const struct resp_arg *k = &call->argv[2 + i];
        if (do_coll_open(&h, k->ptr, k->len, hvs[i], COLL_ZSET, false, c->now) != COLL_OK) {
            rs_error(c, ZERR_WRONGTYPE);
            break;
        }
        if (coll_exists(&h)) {
            struct zset *z = zs_root(&h);
            size_t len = zset_len(z), m = (uint64_t)count < len ? (size_t)count : len;
            rs_array(c, 2);
            rs_bulk(c, k->ptr, k->len);
            rs_array(c, m);
            zs_pop_some(c, coll_arena(&h), z, max, m, true);
            do_coll_close(&h);
            break;
        }
    }
    if (i == n)
        rs_null_array(c);
    item_unlock_many(&set);
    free(hvs);
    return PROC_MORE;
}
