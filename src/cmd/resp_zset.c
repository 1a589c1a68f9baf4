/*
 * RESP sorted-set commands: ZADD and ZINCRBY, the lookups (ZSCORE,
 * ZMSCORE, ZCARD, ZRANK, ZCOUNT), the ranges (ZRANGE in all its forms and
 * the older ZRANGEBYSCORE/ZREVRANGE/... spellings), the removals (ZREM,
 * ZREMRANGEBY*, ZPOPMIN/MAX), ZRANDMEMBER and ZSCAN, answering as Redis 7
 * does. The commands on several keys (ZUNION/ZINTER/ZDIFF and their STORE
 * forms, ZINTERCARD, ZRANGESTORE, ZMPOP) are in resp_zsetops.c.
 *
 * Each handler checks its arguments first, in the order Redis does (so the
 * same bad request gets the same error), then opens the key with
 * coll_open(), which holds the key's stripe lock until coll_close(): the
 * whole command, reply included, is atomic per key (a command on several
 * keys holds all their stripes at once, see resp_zsetops.c).
 * Replies are copied
 * into the connection's output while the lock is held, never referenced,
 * since the set's blocks may change once it is released. A range whose
 * length is not known up front (BYSCORE/BYLEX with LIMIT) is walked twice,
 * once to count for the array header and once to reply; the lock keeps
 * both walks on the same set.
 *
 * Out of memory (the arena could not grow under -m) answers Redis's OOM
 * error and changes nothing: a ZADD of several members takes back those it
 * had added or rescored (Redis refuses such a command before it starts).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/resp_cmds.h"
#include "cmd/resp_zset_int.h"
#include "stats/stats.h"
#include "storage/coll.h"
#include "storage/item.h"
#include "types/zset.h"
#include "util/fmt.h"
#include "util/glob.h"
#include "util/log.h"

#define ZERR_NAN "ERR resulting score is not a number (NaN)"
#define ZERR_RANGE "ERR min or max is not a float"
#define ZERR_LEX "ERR min or max not valid string range item"
#define ZERR_TOOBIG "ERR sorted set member is too long"
#define ZERR_POSITIVE "ERR value is out of range, must be positive"

/* A number argument at least this long is refused as not a float (Redis
 * has no limit; DBL_MAX written out in full is 309 digits). */
#define NUM_MAX 1024


/* ---- opening the key ---- */

/* Open the key's sorted set (creating an empty one when create); on a
 * wrong type or no memory reply the error and return false (nothing held). */
static bool zopen(struct conn *c, struct coll_handle *h, const struct resp_arg *key, bool create)
{
    switch (coll_open(h, key->ptr, key->len, COLL_ZSET, create, c->now)) {
    case COLL_OK:
        return true;
    case COLL_WRONGTYPE:
        rs_error(c, ZERR_WRONGTYPE);
        return false;
    case COLL_NOMEM:
        break;
    }
    rs_error(c, RS_ERR_OOM);
    return false;
}

/* zopen() for a command that only reads: counted in INFO's keyspace hits
 * and misses as Redis counts a read lookup (a key of another type is a hit). */
static bool zread(struct conn *c, struct coll_handle *h, const struct resp_arg *key)
{
    bool ok = zopen(c, h, key, false);
    if (!ok || coll_exists(h))
        STAT_INC(c->stats, resp_read_hits);   /* a failure: WRONGTYPE (no memory: none taken) */
    else
        STAT_INC(c->stats, resp_read_misses);
    return ok;
}

struct zset *zs_root(struct coll_handle *h)
{
    _Static_assert(sizeof(struct zset) <= COLL_ROOT_SIZE, "zset root fits");
    return coll_root(h);
}

struct zset_limits zs_limits(void)
{
    struct zset_limits l = { (size_t)coll_limit(COLL_ZSET_ENTRIES), (size_t)coll_limit(COLL_ZSET_VALUE) };
    return l;
}

/* COPY of a sorted set (resp_keys.c): every member into dst, which is
 * empty; on no memory dst is emptied again and false returned. */
bool resp_zset_copy(struct coll_handle *src, struct coll_handle *dst)
{
    struct zset_limits lim = zs_limits();
    struct zset *z = zs_root(src);
    struct zset_iter it;
    struct zset_entry e;
    int out;
    double score;

    if (zset_len(z) == 0)
        return true;
    zset_iter_rank(&it, coll_arena(src), z, 0, zset_len(z) - 1, false);
    while (zset_iter_next(&it, &e)) {
        if (zset_add(coll_arena(dst), zs_root(dst), &lim, e.m, e.mlen, e.score, 0, &out,
                     &score) != ZSET_OK) {
            zset_free(coll_arena(dst), zs_root(dst));
            return false;
        }
    }
    return true;
}

/* ---- numbers ---- */

/* An argument as a NUL-terminated string in buf; false when too long. */
static bool arg_cstr(const struct resp_arg *a, char *buf, size_t cap)
{
    if (a->len >= cap)
        return false;
    memcpy(buf, a->ptr, a->len);
    buf[a->len] = '\0';
    return true;
}

/* A score as ZADD takes it: the whole string is a number, no leading
 * blank, no overflow, not NaN ("inf" and "-inf" are fine). */
bool zs_parse_score(const struct resp_arg *a, double *out)
{
    char buf[NUM_MAX], *end;
    if (a->len == 0 || !arg_cstr(a, buf, sizeof(buf)) || buf[0] == ' ' ||
        (buf[0] >= '\t' && buf[0] <= '\r'))
        return false;
    errno = 0;
    double v = strtod(buf, &end);
    if ((size_t)(end - buf) != a->len || isnan(v) ||
        (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL || v == 0)))
        return false;
    *out = v;
    return true;
}

/* One end of a score range: "(" makes it exclusive. As Redis, strtod
 * decides and only trailing bytes or NaN are refused. */
static bool parse_bound(const struct resp_arg *a, double *v, bool *ex)
{
    char buf[NUM_MAX], *end;
    if (!arg_cstr(a, buf, sizeof(buf)))
        return false;
    const char *p = buf;
    *ex = buf[0] == '(';
    if (*ex)
        p++;
    *v = strtod(p, &end);
    return *end == '\0' && !isnan(*v);
}

static bool parse_score_range(const struct resp_arg *min, const struct resp_arg *max, struct zrange_score *r)
{
    return parse_bound(min, &r->min, &r->minex) && parse_bound(max, &r->max, &r->maxex);
}

static bool parse_lex_bound(const struct resp_arg *a, struct zlex_bound *b)
{
    if (a->len == 0)
        return false;
    switch (a->ptr[0]) {
    case '+':
    case '-':
        if (a->len != 1)
            return false;
        b->kind = a->ptr[0] == '+' ? ZLEX_POS_INF : ZLEX_NEG_INF;
        b->s = NULL;
        b->len = 0;
        return true;
    case '(':
    case '[':
        b->kind = a->ptr[0] == '(' ? ZLEX_EXCL : ZLEX_INCL;
        b->s = a->ptr + 1;
        b->len = a->len - 1;
        return true;
    }
    return false;
}

static bool parse_lex_range(const struct resp_arg *min, const struct resp_arg *max, struct zrange_lex *r)
{
    return parse_lex_bound(min, &r->min) && parse_lex_bound(max, &r->max);
}

/* ---- replies ---- */

/* A score: a bulk string in RESP2, a double in RESP3, "%.17g" as Redis. */
static void reply_score(struct conn *c, double d)
{
    char buf[64];
    int n;
    if (isinf(d))
        n = snprintf(buf, sizeof(buf), "%s", d > 0 ? "inf" : "-inf");
    else
        n = (int)fmt_g17(buf, sizeof(buf), d);
    if (resp_proto_version(c) == 3) {
        CONN_OUT_LIT(c, ",");
        conn_out(c, buf, (size_t)n);
        CONN_OUT_LIT(c, "\r\n");
    } else {
        rs_bulk(c, buf, (size_t)n);
    }
}

/* The header of a list of n members, with scores or not: RESP2 flat,
 * RESP3 a [member, score] pair each. */
void zs_reply_list_hdr(struct conn *c, size_t n, bool scores)
{
    rs_array(c, scores && resp_proto_version(c) == 2 ? n * 2 : n);
}

void zs_reply_entry(struct conn *c, const struct zset_entry *e, bool scores)
{
    if (scores && resp_proto_version(c) == 3)
        rs_array(c, 2);
    rs_bulk(c, e->m, e->mlen);
    if (scores)
        reply_score(c, e->score);
}

/* ---- ZADD, ZINCRBY ---- */

static void reply_add_error(struct conn *c, int rc)
{
    if (rc == ZSET_NAN)
        rs_error(c, ZERR_NAN);
    else if (rc == ZSET_TOOBIG)
        rs_error(c, ZERR_TOOBIG);
    else
        rs_error(c, RS_ERR_OOM);
}

/*
 * What a ZADD of several members changed, so that one that fails partway
 * (no memory, a member too long) can be taken back: Redis refuses such a
 * command before it starts, so a client never sees some members added.
 * Per member: was it there, and its score before.
 */
struct zundo {
    bool existed;
    double score;
};

/* Undo members [0, n) newest first, so a member named twice gets its
 * first score back. */
static void zundo_apply(const struct zundo *u, struct coll_handle *h, const struct zset_limits *lim,
                        const struct resp_call *call, int first, int n)
{
    for (int j = n - 1; j >= 0; j--) {
        const struct resp_arg *m = &call->argv[first + 2 * j + 1];
        int out;
        double ns;
        if (!u[j].existed)
            zset_del(coll_arena(h), zs_root(h), m->ptr, m->len);
        else if (zset_add(coll_arena(h), zs_root(h), lim, m->ptr, m->len, u[j].score, 0, &out,
                          &ns) != ZSET_OK)
            log_warn("ZADD rollback: no memory to restore a member of '%.*s'",
                     (int)call->argv[1].len, call->argv[1].ptr);
    }
}

/* ZADD, and ZINCRBY (aux ZADD_IN_INCR): its options are parsed too, as
 * Redis does, so "ZINCRBY k nx m" is the same syntax error. */
enum proc_result resp_cmd_zadd(struct conn *c, const struct resp_call *call)
{
    int flags = call->cmd->aux, i = 2;
    bool ch = false;

    /* Options come before the first score. */
    for (; i < call->argc; i++) {
        const struct resp_arg *a = &call->argv[i];
        if (rs_arg_is(a, "nx"))
            flags |= ZADD_IN_NX;
        else if (rs_arg_is(a, "xx"))
            flags |= ZADD_IN_XX;
        else if (rs_arg_is(a, "gt"))
            flags |= ZADD_IN_GT;
        else if (rs_arg_is(a, "lt"))
            flags |= ZADD_IN_LT;
        else if (rs_arg_is(a, "ch"))
            ch = true;
        else if (rs_arg_is(a, "incr"))
            flags |= ZADD_IN_INCR;
        else
            break;
    }
    int pairs = call->argc - i;
    if (pairs % 2 != 0 || pairs == 0) {
        rs_error(c, RS_ERR_SYNTAX);
        return PROC_MORE;
    }
    pairs /= 2;
    bool nx = flags & ZADD_IN_NX, xx = flags & ZADD_IN_XX;
    bool gt = flags & ZADD_IN_GT, lt = flags & ZADD_IN_LT, incr = flags & ZADD_IN_INCR;
    if (nx && xx) {
        rs_error(c, "ERR XX and NX options at the same time are not compatible");
        return PROC_MORE;
    }
    if ((gt && nx) || (lt && nx) || (gt && lt)) {
        rs_error(c, "ERR GT, LT, and/or NX options at the same time are not compatible");
        return PROC_MORE;
    }
    if (incr && pairs > 1) {
        rs_error(c, "ERR INCR option supports a single increment-element pair");
        return PROC_MORE;
    }
    for (int j = 0; j < pairs; j++) {
        double s;
        if (!zs_parse_score(&call->argv[i + 2 * j], &s)) {
            rs_error(c, RS_ERR_NOT_FLOAT);
            return PROC_MORE;
        }
    }

    struct coll_handle h;
    if (!zopen(c, &h, &call->argv[1], !xx))
        return PROC_MORE;
    size_t added = 0, updated = 0, processed = 0;
    double score = 0;
    int rc = ZSET_OK;
    struct zundo *undo = NULL;
    if (coll_exists(&h) && pairs > 1 && (undo = malloc(sizeof(*undo) * (size_t)pairs)) == NULL)
        rc = ZSET_NOMEM;
    if (coll_exists(&h) && rc == ZSET_OK) {
        struct zset_limits lim = zs_limits();
        struct zset *z = zs_root(&h);
        for (int j = 0; j < pairs && rc == ZSET_OK; j++) {
            const struct resp_arg *m = &call->argv[i + 2 * j + 1];
            double s, ns = 0;
            int out;
            zs_parse_score(&call->argv[i + 2 * j], &s);
            if (undo != NULL)
                undo[j].existed = zset_score(coll_arena(&h), z, m->ptr, m->len, &undo[j].score);
            rc = zset_add(coll_arena(&h), z, &lim, m->ptr, m->len, s, flags, &out, &ns);
            if (rc != ZSET_OK) {
                if (undo != NULL)
                    zundo_apply(undo, &h, &lim, call, i, j);
                break;
            }
            added += (out & ZADD_OUT_ADDED) != 0;
            updated += (out & ZADD_OUT_UPDATED) != 0;
            if (!(out & ZADD_OUT_NOP)) {
                processed++;
                score = ns;
            }
        }
    }
    free(undo);
    if (rc != ZSET_OK)
        reply_add_error(c, rc);
    else if (incr && processed)
        reply_score(c, score);
    else if (incr)
        rs_null(c);
    else
        rs_int(c, (int64_t)(ch ? added + updated : added));
    coll_close(&h);
    return PROC_MORE;
}

/* ---- lookups ---- */

/* ZSCORE's reply for one member: its score or a null. */
static void send_score(struct conn *c, struct coll_handle *h, const struct resp_arg *m)
{
    double s;
    if (coll_exists(h) && zset_score(coll_arena(h), zs_root(h), m->ptr, m->len, &s))
        reply_score(c, s);
    else
        rs_null(c);
}

enum proc_result resp_cmd_zcard(struct conn *c, const struct resp_call *call)
{
    struct coll_handle h;
    if (!zread(c, &h, &call->argv[1]))
        return PROC_MORE;
    rs_int(c, coll_exists(&h) ? (int64_t)zset_len(zs_root(&h)) : 0);
    coll_close(&h);
    return PROC_MORE;
}

enum proc_result resp_cmd_zscore(struct conn *c, const struct resp_call *call)
{
    struct coll_handle h;
    if (!zread(c, &h, &call->argv[1]))
        return PROC_MORE;
    send_score(c, &h, &call->argv[2]);
    coll_close(&h);
    return PROC_MORE;
}

enum proc_result resp_cmd_zmscore(struct conn *c, const struct resp_call *call)
{
    struct coll_handle h;
    if (!zread(c, &h, &call->argv[1]))
        return PROC_MORE;
    rs_array(c, (size_t)(call->argc - 2));
    for (int i = 2; i < call->argc; i++)
        send_score(c, &h, &call->argv[i]);
    coll_close(&h);
    return PROC_MORE;
}

/* ZRANK / ZREVRANK (aux 1) key member [WITHSCORE]. WITHSCORE is Redis
 * 7.2's: [rank, score], or a null array for a missing member. */
enum proc_result resp_cmd_zrank(struct conn *c, const struct resp_call *call)
{
    bool withscore = false;
    if (call->argc > 4) {
        rs_errorf(c, "ERR wrong number of arguments for '%s' command", call->cmd->name);
        return PROC_MORE;
    }
    if (call->argc == 4) {
        if (!rs_arg_is(&call->argv[3], "withscore")) {
            rs_error(c, RS_ERR_SYNTAX);
            return PROC_MORE;
        }
        withscore = true;
    }
    struct coll_handle h;
    const struct resp_arg *m = &call->argv[2];
    if (!zread(c, &h, &call->argv[1]))
        return PROC_MORE;
    double s = 0;
    long rank = coll_exists(&h) ? zset_rank(coll_arena(&h), zs_root(&h), m->ptr, m->len, call->cmd->aux, &s) : -1;
    if (rank < 0 && withscore) {
        rs_null_array(c);
    } else if (rank < 0) {
        rs_null(c);
    } else if (withscore) {
        rs_array(c, 2);
        rs_int(c, rank);
        reply_score(c, s);
    } else {
        rs_int(c, rank);
    }
    coll_close(&h);
    return PROC_MORE;
}

/* ZCOUNT (aux ZR_SCORE) and ZLEXCOUNT (aux ZR_LEX). */
enum proc_result resp_cmd_zcount(struct conn *c, const struct resp_call *call)
{
    struct zrange_score sr;
    struct zrange_lex lr;
    bool lex = call->cmd->aux == ZR_LEX;
    if (lex ? !parse_lex_range(&call->argv[2], &call->argv[3], &lr)
            : !parse_score_range(&call->argv[2], &call->argv[3], &sr)) {
        rs_error(c, lex ? ZERR_LEX : ZERR_RANGE);
        return PROC_MORE;
    }
    struct coll_handle h;
    if (!zread(c, &h, &call->argv[1]))
        return PROC_MORE;
    size_t n = 0;
    if (coll_exists(&h))
        n = lex ? zset_count_lex(coll_arena(&h), zs_root(&h), &lr) : zset_count_score(coll_arena(&h), zs_root(&h), &sr);
    rs_int(c, (int64_t)n);
    coll_close(&h);
    return PROC_MORE;
}

/* ---- results copied out of sets ---- */

bool zs_res_add(struct zop_res *r, const struct zset_entry *e, uint32_t src)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct zop_ent *ne = realloc(r->e, cap * sizeof(*ne));
        if (ne == NULL)
            goto nomem;
        r->e = ne;
        r->cap = cap;
    }
    if (e->mlen > r->bcap - r->used) {
        size_t cap = r->bcap ? r->bcap : 256;
        while (cap - r->used < e->mlen)
            cap *= 2;
        char *nb = realloc(r->buf, cap);
        if (nb == NULL)
            goto nomem;
        r->buf = nb;
        r->bcap = cap;
    }
    if (e->mlen > 0)
        memcpy(r->buf + r->used, e->m, e->mlen);
    r->e[r->n++] = (struct zop_ent){ NULL, r->used, e->mlen, e->score, src };
    r->used += e->mlen;
    return true;
nomem:
    r->nomem = true;
    return false;
}

/* Point every entry at its bytes: the buffer grows no more. */
void zs_res_seal(struct zop_res *r)
{
    for (size_t i = 0; i < r->n; i++)
        r->e[i].m = r->buf + r->e[i].off;
}

void zs_res_free(struct zop_res *r)
{
    free(r->e);
    free(r->buf);
}

/* ---- ranges ---- */

/* Redis's rank arithmetic: negative counts from the end, clipped; false
 * when nothing is left. */
bool zs_clip_ranks(int64_t start, int64_t end, size_t len, size_t *s, size_t *e)
{
    int64_t n = (int64_t)len;
    if (start < 0)
        start += n;
    if (end < 0)
        end += n;
    if (start < 0)
        start = 0;
    if (start > end || start >= n)
        return false;
    if (end >= n)
        end = n - 1;
    *s = (size_t)start;
    *e = (size_t)end;
    return true;
}

static void range_iter(struct zset_iter *it, struct coll_handle *h, const struct range_req *q)
{
    if (q->type == ZR_SCORE)
        zset_iter_score(it, coll_arena(h), zs_root(h), &q->score, q->reverse);
    else
        zset_iter_lex(it, coll_arena(h), zs_root(h), &q->lex, q->reverse);
}

/* Walk a score or lex range past offset, up to limit entries; reply them
 * when c is not NULL, copy them into res when it is not NULL. Returns how
 * many (or 0 when res runs out of memory, with res->nomem set). */
size_t zs_range_walk(struct conn *c, struct zop_res *res, struct coll_handle *h, const struct range_req *q)
{
    struct zset_iter it;
    struct zset_entry e;
    size_t n = 0;
    if (q->offset < 0 || (q->offset > 0 && (uint64_t)q->offset >= zset_len(zs_root(h))))
        return 0;
    range_iter(&it, h, q);
    for (int64_t skip = q->offset; skip > 0; skip--)
        if (!zset_iter_next(&it, &e))
            return 0;
    while ((q->limit < 0 || (int64_t)n < q->limit) && zset_iter_next(&it, &e)) {
        if (c != NULL)
            zs_reply_entry(c, &e, q->scores);
        if (res != NULL && !zs_res_add(res, &e, 0))
            return 0;
        n++;
    }
    return n;
}

static void range_reply(struct conn *c, struct coll_handle *h, const struct range_req *q)
{
    if (q->type == ZR_RANK) {
        size_t s, e;
        struct zset_iter it;
        struct zset_entry ent;
        if (!zs_clip_ranks(q->start, q->end, zset_len(zs_root(h)), &s, &e)) {
            rs_array(c, 0);
            return;
        }
        zs_reply_list_hdr(c, e - s + 1, q->scores);
        zset_iter_rank(&it, coll_arena(h), zs_root(h), s, e, q->reverse);
        while (zset_iter_next(&it, &ent))
            zs_reply_entry(c, &ent, q->scores);
        return;
    }
    zs_reply_list_hdr(c, zs_range_walk(NULL, NULL, h, q), q->scores);
    zs_range_walk(c, NULL, h, q);
}

/*
 * Parse ZRANGE's arguments from the key at argv[first] on (ZRANGESTORE:
 * first 2, store, and no WITHSCORES): false after replying the error.
 */
bool zs_parse_range_req(struct conn *c, const struct resp_call *call, int first, bool store,
                        struct range_req *q)
{
    int type = call->cmd->aux & 0xf, dir = call->cmd->aux >> 4;

    memset(q, 0, sizeof(*q));
    q->limit = -1;
    for (int j = first + 3; j < call->argc; j++) {
        const struct resp_arg *a = &call->argv[j];
        int left = call->argc - j - 1;
        if (!store && rs_arg_is(a, "withscores")) {
            q->scores = true;
        } else if (rs_arg_is(a, "limit") && left >= 2) {
            if (!rs_arg_i64(c, &call->argv[j + 1], &q->offset) || !rs_arg_i64(c, &call->argv[j + 2], &q->limit))
                return false;
            j += 2;
        } else if (dir == ZD_AUTO && rs_arg_is(a, "rev")) {
            dir = ZD_REV;
        } else if (type == ZR_AUTO && rs_arg_is(a, "bylex")) {
            type = ZR_LEX;
        } else if (type == ZR_AUTO && rs_arg_is(a, "byscore")) {
            type = ZR_SCORE;
        } else {
            rs_error(c, RS_ERR_SYNTAX);
            return false;
        }
    }
    if (type == ZR_AUTO)
        type = ZR_RANK;
    q->type = type;
    q->reverse = dir == ZD_REV;
    if (q->limit != -1 && type == ZR_RANK) {
        rs_error(c, "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
        return false;
    }
    if (q->scores && type == ZR_LEX) {
        rs_error(c, "ERR syntax error, WITHSCORES not supported in combination with BYLEX");
        return false;
    }
    /* Reversed score and lex ranges are written max first. */
    const struct resp_arg *lo = &call->argv[first + 1], *hi = &call->argv[first + 2];
    if (q->reverse && type != ZR_RANK) {
        lo = &call->argv[first + 2];
        hi = &call->argv[first + 1];
    }
    if (type == ZR_RANK)
        return rs_arg_i64(c, lo, &q->start) && rs_arg_i64(c, hi, &q->end);
    if (type == ZR_SCORE) {
        if (!parse_score_range(lo, hi, &q->score)) {
            rs_error(c, ZERR_RANGE);
            return false;
        }
    } else if (!parse_lex_range(lo, hi, &q->lex)) {
        rs_error(c, ZERR_LEX);
        return false;
    }
    return true;
}

/*
 * ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count]
 * [WITHSCORES], and with aux fixing the type and direction: ZREVRANGE,
 * Z[REV]RANGEBYSCORE, Z[REV]RANGEBYLEX.
 */
enum proc_result resp_cmd_zrange(struct conn *c, const struct resp_call *call)
{
    struct range_req q;
    if (!zs_parse_range_req(c, call, 1, false, &q))
        return PROC_MORE;
    struct coll_handle h;
    if (!zread(c, &h, &call->argv[1]))
        return PROC_MORE;
    if (coll_exists(&h))
        range_reply(c, &h, &q);
    else
        rs_array(c, 0);
    coll_close(&h);
    return PROC_MORE;
}

/* ---- removals ---- */

enum proc_result resp_cmd_zrem(struct conn *c, const struct resp_call *call)
{
    struct coll_handle h;
    int64_t n = 0;
    if (!zopen(c, &h, &call->argv[1], false))
        return PROC_MORE;
    if (coll_exists(&h)) {
        struct zset *z = zs_root(&h);
        for (int i = 2; i < call->argc && zset_len(z) > 0; i++)
            n += zset_del(coll_arena(&h), z, call->argv[i].ptr, call->argv[i].len);
    }
    rs_int(c, n);
    coll_close(&h);
    return PROC_MORE;
}

/* ZREMRANGEBYRANK / ZREMRANGEBYSCORE / ZREMRANGEBYLEX (aux: ZR_*). */
enum proc_result resp_cmd_zremrange(struct conn *c, const struct resp_call *call)
{
    int type = call->cmd->aux;
    int64_t start = 0, end = 0;
    struct zrange_score sr;
    struct zrange_lex lr;

    if (type == ZR_RANK) {
        if (!rs_arg_i64(c, &call->argv[2], &start) || !rs_arg_i64(c, &call->argv[3], &end))
            return PROC_MORE;
    } else if (type == ZR_SCORE) {
        if (!parse_score_range(&call->argv[2], &call->argv[3], &sr)) {
            rs_error(c, ZERR_RANGE);
            return PROC_MORE;
        }
    } else if (!parse_lex_range(&call->argv[2], &call->argv[3], &lr)) {
        rs_error(c, ZERR_LEX);
        return PROC_MORE;
    }
    struct coll_handle h;
    if (!zopen(c, &h, &call->argv[1], false))
        return PROC_MORE;
    size_t n = 0;
    if (coll_exists(&h)) {
        struct arena *a = coll_arena(&h);
        struct zset *z = zs_root(&h);
        size_t s, e;
        if (type == ZR_RANK) {
            if (zs_clip_ranks(start, end, zset_len(z), &s, &e))
                n = zset_remove_rank(a, z, s, e);
        } else if (type == ZR_SCORE) {
            n = zset_remove_score(a, z, &sr);
        } else {
            n = zset_remove_lex(a, z, &lr);
        }
    }
    rs_int(c, (int64_t)n);
    coll_close(&h);
    return PROC_MORE;
}

/* Pop n members (n <= the set's length) from the low end (high end with
 * max), replying each as member, score ([member, score] when nested). */
void zs_pop_some(struct conn *c, struct arena *a, struct zset *z, bool max, size_t n, bool nested)
{
    for (size_t i = 0; i < n; i++) {
        struct zset_iter it;
        struct zset_entry e;
        size_t end = zset_len(z) - 1;
        zset_iter_rank(&it, a, z, max ? end : 0, max ? end : 0, false);
        if (!zset_iter_next(&it, &e))
            break;
        if (nested)
            rs_array(c, 2);
        rs_bulk(c, e.m, e.mlen);
        reply_score(c, e.score);
        /* The reply holds a copy now; the entry may go. */
        zset_remove_rank(a, z, max ? end : 0, max ? end : 0);
    }
}

/* ZPOPMIN / ZPOPMAX (aux 1) key [count]. */
enum proc_result resp_cmd_zpop(struct conn *c, const struct resp_call *call)
{
    int64_t count = -1;     /* no count: one member, always a flat reply */
    bool max = call->cmd->aux;
    if (call->argc > 3) {
        rs_error(c, RS_ERR_SYNTAX);
        return PROC_MORE;
    }
    if (call->argc == 3) {
        /* Not a number and negative get the same error, as in Redis. */
        if (!rs_parse_i64(call->argv[2].ptr, call->argv[2].len, &count) || count < 0) {
            rs_error(c, ZERR_POSITIVE);
            return PROC_MORE;
        }
    }
    struct coll_handle h;
    if (!zopen(c, &h, &call->argv[1], false))
        return PROC_MORE;
    if (!coll_exists(&h) || count == 0) {
        rs_array(c, 0);
        coll_close(&h);
        return PROC_MORE;
    }
    struct arena *a = coll_arena(&h);
    struct zset *z = zs_root(&h);
    bool nested = resp_proto_version(c) == 3 && count != -1;
    size_t n = count == -1 ? 1 : (uint64_t)count < zset_len(z) ? (size_t)count : zset_len(z);
    rs_array(c, nested ? n : n * 2);
    zs_pop_some(c, a, z, max, n, nested);
    coll_close(&h);
    return PROC_MORE;
}

/* ---- ZRANDMEMBER ---- */

/* Per worker thread: random picks need no lock and no shared state. */
static __thread uint64_t rng_state;

static uint64_t rnd64(void)
{
    if (rng_state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        rng_state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)&rng_state ^ (uint64_t)ts.tv_sec;
        rng_state |= 1;
    }
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* Reply the member at a rank (with its score when scores). */
static void reply_rank(struct conn *c, struct coll_handle *h, size_t rank, bool scores)
{
    struct zset_iter it;
    struct zset_entry e;
    zset_iter_rank(&it, coll_arena(h), zs_root(h), rank, rank, false);
    if (zset_iter_next(&it, &e))
        zs_reply_entry(c, &e, scores);
}

/* At most this many distinct members are drawn by retrying; more are
 * chosen in one ordered pass (selection sampling), which needs no memory
 * to remember what was drawn. */
#define RAND_PICK_MAX 64

static void zrand_count(struct conn *c, struct coll_handle *h, int64_t l, bool scores)
{
    size_t size = zset_len(zs_root(h));
    uint64_t count = l < 0 ? (uint64_t)(-l) : (uint64_t)l;
    if (count == 0) {
        rs_array(c, 0);
        return;
    }
    if (l < 0 || count == 1) {
        /* Repeats allowed: count independent picks, in random order. */
        zs_reply_list_hdr(c, count, scores);
        for (uint64_t i = 0; i < count && !c->out_over; i++)
            reply_rank(c, h, (size_t)(rnd64() % size), scores);
        return;
    }
    if (count >= size) {
        /* The whole set, from the highest score down as Redis walks it. */
        struct zset_iter it;
        struct zset_entry e;
        zs_reply_list_hdr(c, size, scores);
        zset_iter_rank(&it, coll_arena(h), zs_root(h), 0, size - 1, true);
        while (zset_iter_next(&it, &e))
            zs_reply_entry(c, &e, scores);
        return;
    }
    zs_reply_list_hdr(c, count, scores);
    if (count <= RAND_PICK_MAX) {
        size_t picked[RAND_PICK_MAX], n = 0;
        while (n < count) {
            size_t r = (size_t)(rnd64() % size), i;
            for (i = 0; i < n && picked[i] != r; i++)
                ;
            if (i == n) {
                picked[n++] = r;
                reply_rank(c, h, r, scores);
            }
        }
        return;
    }
    /* Each rank is taken with probability (still needed / still left). */
    struct zset_iter it;
    struct zset_entry e;
    uint64_t need = count;
    zset_iter_rank(&it, coll_arena(h), zs_root(h), 0, size - 1, false);
    for (size_t i = 0; need > 0 && zset_iter_next(&it, &e); i++) {
        if (rnd64() % (size - i) < need) {
            zs_reply_entry(c, &e, scores);
            need--;
        }
    }
}

/* ZRANDMEMBER key [count [WITHSCORES]]. */
enum proc_result resp_cmd_zrandmember(struct conn *c, const struct resp_call *call)
{
    int64_t l = 0;
    bool scores = false, counted = call->argc >= 3;
    if (counted) {
        if (!rs_arg_i64(c, &call->argv[2], &l))
            return PROC_MORE;
        if (l == INT64_MIN) {
            rs_errorf(c, "ERR value is out of range, value must between %lld and %lld",
                      (long long)-INT64_MAX, (long long)INT64_MAX);
            return PROC_MORE;
        }
        if (call->argc > 4 || (call->argc == 4 && !rs_arg_is(&call->argv[3], "withscores"))) {
            rs_error(c, RS_ERR_SYNTAX);
            return PROC_MORE;
        }
        if (call->argc == 4) {
            scores = true;
            if (l < -INT64_MAX / 2 || l > INT64_MAX / 2) {
                rs_error(c, "ERR value is out of range");
                return PROC_MORE;
            }
        }
    }
    struct coll_handle h;
    if (!zread(c, &h, &call->argv[1]))
        return PROC_MORE;
    if (!coll_exists(&h)) {
        if (counted)
            rs_array(c, 0);
        else
            rs_null(c);
    } else if (counted) {
        zrand_count(c, &h, l, scores);
    } else {
        reply_rank(c, &h, (size_t)(rnd64() % zset_len(zs_root(&h))), false);
    }
    coll_close(&h);
    return PROC_MORE;
}

/* ---- ZSCAN ---- */

/* Redis's d2string: how a listpack keeps a score, so how ZSCAN shows one
 * from a small set (integers without exponent). */
static int fmt_lp_score(char *buf, size_t cap, double d)
{
    if (isinf(d))
        return snprintf(buf, cap, "%s", d > 0 ? "inf" : "-inf");
    if (d == 0)
        return snprintf(buf, cap, "%s", signbit(d) ? "-0" : "0");
    if (d >= (double)(-INT64_MAX / 2) && d <= (double)(INT64_MAX / 2) && (double)(long long)d == d)
        return snprintf(buf, cap, "%lld", (long long)d);
    return snprintf(buf, cap, "%.17g", d);
}

struct zscan_ctx {
    struct conn *c;             /* NULL: count only */
    const struct resp_arg *pat; /* NULL: everything */
    bool compact;
    size_t visited, matched;
};

static void zscan_one(void *arg, const void *m, size_t mlen, double score)
{
    struct zscan_ctx *x = arg;
    x->visited++;
    if (x->pat != NULL && !glob_match(x->pat->ptr, x->pat->len, m, mlen, false))
        return;
    x->matched++;
    if (x->c == NULL)
        return;
    char buf[64];
    int n;
    rs_bulk(x->c, m, mlen);
    if (x->compact)
        n = fmt_lp_score(buf, sizeof(buf), score);
    else if (isinf(score))
        n = snprintf(buf, sizeof(buf), "%s", score > 0 ? "inf" : "-inf");
    else
        n = (int)fmt_g17(buf, sizeof(buf), score);
    rs_bulk(x->c, buf, (size_t)n);
}

/* Run the scan from cursor as Redis does (until COUNT members were seen,
 * at most 10*COUNT steps); returns the next cursor. */
static uint64_t zscan_run(struct coll_handle *h, uint64_t cursor, int64_t count, struct zscan_ctx *x)
{
    int64_t steps = count > INT64_MAX / 10 ? INT64_MAX : count * 10;
    x->visited = x->matched = 0;
    do {
        cursor = zset_scan(coll_arena(h), zs_root(h), cursor, zscan_one, x);
    } while (cursor != 0 && steps-- > 0 && (int64_t)x->visited < count);
    return cursor;
}

static bool parse_cursor(const struct resp_arg *a, uint64_t *out)
{
    char buf[32], *end;
    if (!arg_cstr(a, buf, sizeof(buf)) || buf[0] == ' ' || (buf[0] >= '\t' && buf[0] <= '\r'))
        return false;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

enum proc_result resp_cmd_zscan(struct conn *c, const struct resp_call *call)
{
    uint64_t cursor;
    int64_t count = 10;
    const struct resp_arg *pat = NULL;
    if (!parse_cursor(&call->argv[2], &cursor)) {
        rs_error(c, "ERR invalid cursor");
        return PROC_MORE;
    }
    struct coll_handle h;
    if (!zread(c, &h, &call->argv[1]))
        return PROC_MORE;
    if (!coll_exists(&h)) {
        CONN_OUT_LIT(c, "*2\r\n$1\r\n0\r\n*0\r\n");
        coll_close(&h);
        return PROC_MORE;
    }
    /* Redis reads the options only once it found the set. */
    for (int i = 3; i < call->argc; i += 2) {
        const struct resp_arg *a = &call->argv[i];
        if (i + 1 < call->argc && rs_arg_is(a, "count")) {
            if (!rs_arg_i64(c, &call->argv[i + 1], &count))
                goto out;
            if (count < 1) {
                rs_error(c, RS_ERR_SYNTAX);
                goto out;
            }
        } else if (i + 1 < call->argc && rs_arg_is(a, "match")) {
            pat = &call->argv[i + 1];
            if (pat->len == 1 && pat->ptr[0] == '*')
                pat = NULL;
        } else {
            rs_error(c, RS_ERR_SYNTAX);
            goto out;
        }
    }
    struct zset *z = zs_root(&h);
    struct zscan_ctx x = { NULL, pat, z->enc == ZSET_COMPACT, 0, 0 };
    uint64_t next = zscan_run(&h, cursor, count, &x);
    char cur[24];
    int n = snprintf(cur, sizeof(cur), "%llu", (unsigned long long)next);
    rs_array(c, 2);
    rs_bulk(c, cur, (size_t)n);
    rs_array(c, x.matched * 2);
    x.c = c;
    zscan_run(&h, cursor, count, &x);
out:
    coll_close(&h);
    return PROC_MORE;
}
