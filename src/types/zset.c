/*
 * Sorted set over an arena (see zset.h): the compact encoding, the switch
 * to skiplist + member index, and every operation on either.
 *
 * The compact block is kept with some slack (it grows by half) so that a
 * run of inserts does not copy it every time. A score change in it moves
 * the entry by rotating the bytes between its old and new place, so it
 * never needs memory. In the skiplist encoding a score change moves the
 * node itself (zsl_update_score), so the index's node ref stays right and
 * only a new member allocates.
 */
#include "types/zset.h"

#include <math.h>
#include <string.h>

#define C_HDR 12u               /* u32 length + f64 score before the member */
#define C_ESZ(mlen) (C_HDR + (uint32_t)(mlen) + 4u)
#define C_MIN_CAP 64u

/* ---- compact encoding ---- */

static uint32_t rd32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static char *cblk(struct arena *a, const struct zset *z)
{
    return arena_ptr(a, z->u.c.blk);
}

static void c_read(const char *b, uint32_t off, struct zset_entry *e)
{
    e->mlen = rd32(b + off);
    memcpy(&e->score, b + off + 4, sizeof(double));
    e->m = b + off + C_HDR;
}

static uint32_t c_next(const char *b, uint32_t off)
{
    return off + C_ESZ(rd32(b + off));
}

static uint32_t c_prev(const char *b, uint32_t off)
{
    return off - C_ESZ(rd32(b + off - 4));
}

static int entry_cmp(double s1, const void *m1, size_t l1, double s2, const void *m2, size_t l2)
{
    if (s1 != s2)
        return s1 < s2 ? -1 : 1;
    return zsl_cmp(m1, l1, m2, l2);
}

/* Offset of the member's entry or UINT32_MAX; its index in *idx. */
static uint32_t c_find(struct arena *a, const struct zset *z, const void *m, size_t mlen, size_t *idx)
{
    if (z->len == 0)
        return UINT32_MAX;
    const char *b = cblk(a, z);
    size_t i = 0;
    for (uint32_t off = 0; off < z->u.c.used; off = c_next(b, off), i++) {
        if (rd32(b + off) == mlen && memcmp(b + off + C_HDR, m, mlen) == 0) {
            if (idx)
                *idx = i;
            return off;
        }
    }
    return UINT32_MAX;
}

/* Where (score, m) goes: the first entry after it, skipping the one at
 * `skip` (the member's own entry when it moves). */
static uint32_t c_place(const char *b, uint32_t used, double score, const void *m, size_t mlen, uint32_t skip)
{
    struct zset_entry e;
    uint32_t off;
    for (off = 0; off < used; off = c_next(b, off)) {
        if (off == skip)
            continue;
        c_read(b, off, &e);
        if (entry_cmp(e.score, e.m, e.mlen, score, m, mlen) > 0)
            break;
    }
    return off;
}

/* A listpack keeps a score as text, where Redis's -0 reads back as 0: the
 * compact encoding stores 0 too, so replies match; a skiplist keeps -0. */
static double c_score(double score)
{
    return score == 0 ? 0.0 : score;
}

static void c_write(char *p, const void *m, size_t mlen, double score)
{
    uint32_t l = (uint32_t)mlen;
    score = c_score(score);
    memcpy(p, &l, 4);
    memcpy(p + 4, &score, sizeof(double));
    if (mlen)
        memcpy(p + C_HDR, m, mlen);
    memcpy(p + C_HDR + mlen, &l, 4);
}

static int c_insert(struct arena *a, struct zset *z, const void *m, size_t mlen, double score)
{
    uint32_t esz = C_ESZ(mlen), used = z->u.c.used;
    uint32_t need = used + esz;
    if (need > z->u.c.cap) {
        size_t cap = (size_t)z->u.c.cap + z->u.c.cap / 2;
        if (cap < need)
            cap = need;
        if (cap < C_MIN_CAP)
            cap = C_MIN_CAP;
        if (cap > ARENA_ALLOC_MAX)
            cap = ARENA_ALLOC_MAX;
        uint32_t nb = arena_alloc(a, cap);
        if (nb == ARENA_NONE)
            return ZSET_NOMEM;
        char *dst = arena_ptr(a, nb);
        uint32_t at = 0;
        if (z->len) {
            const char *src = cblk(a, z);
            at = c_place(src, used, score, m, mlen, UINT32_MAX);
            memcpy(dst, src, at);
            memcpy(dst + at + esz, src + at, used - at);
            arena_free(a, z->u.c.blk, z->u.c.cap);
        }
        c_write(dst + at, m, mlen, score);
        z->u.c.blk = nb;
        z->u.c.cap = (uint32_t)cap;
    } else {
        char *b = cblk(a, z);
        uint32_t at = c_place(b, used, score, m, mlen, UINT32_MAX);
        memmove(b + at + esz, b + at, used - at);
        c_write(b + at, m, mlen, score);
    }
    z->u.c.used = need;
    z->len++;
    return ZSET_OK;
}

static void c_remove(struct arena *a, struct zset *z, uint32_t off, uint32_t esz)
{
    char *b = cblk(a, z);
    memmove(b + off, b + off + esz, z->u.c.used - off - esz);
    z->u.c.used -= esz;
    z->len--;
    if (z->len == 0) {
        arena_free(a, z->u.c.blk, z->u.c.cap);
        z->u.c.blk = ARENA_NONE;
        z->u.c.cap = 0;
    }
}

static void reverse_bytes(char *p, size_t n)
{
    for (size_t i = 0, j = n; i + 1 < j; i++, j--) {
        char t = p[i];
        p[i] = p[j - 1];
        p[j - 1] = t;
    }
}

/* Rotate p[0..n) left by k bytes, in place. */
static void rotate_left(char *p, size_t n, size_t k)
{
    reverse_bytes(p, k);
    reverse_bytes(p + k, n - k);
    reverse_bytes(p, n);
}

/* Give the entry at off a new score and move it to its new place. */
static void c_rescore(struct arena *a, struct zset *z, uint32_t off, double score)
{
    char *b = cblk(a, z);
    uint32_t mlen = rd32(b + off), esz = C_ESZ(mlen);
    uint32_t at = c_place(b, z->u.c.used, score, b + off + C_HDR, mlen, off);
    if (at > off) {
        rotate_left(b + off, at - off, esz);
        off = at - esz;
    } else if (at < off) {
        rotate_left(b + at, off + esz - at, off - at);
        off = at;
    }
    score = c_score(score);
    memcpy(b + off + 4, &score, sizeof(double));
}

/* Offset of the entry at 0-based index i from the low end. */
static uint32_t c_at(const char *b, uint32_t used, size_t i)
{
    uint32_t off = 0;
    while (i-- > 0 && off < used)
        off = c_next(b, off);
    return off;
}

/* Offset of the entry at 0-based index i from the high end. */
static uint32_t c_at_rev(const char *b, uint32_t used, size_t i)
{
    uint32_t off = c_prev(b, used);
    while (i-- > 0)
        off = c_prev(b, off);
    return off;
}

/* ---- skiplist encoding ---- */

static int s_find(struct arena *a, const struct zset *z, const void *m, size_t mlen, uint32_t *ref)
{
    size_t vlen;
    const void *v = adict_get(a, &z->u.s.dict, m, mlen, &vlen);
    if (v == NULL)
        return 0;
    memcpy(ref, v, sizeof(*ref));
    return 1;
}

static int s_insert(struct arena *a, struct zset *z, const void *m, size_t mlen, double score)
{
    uint32_t ref = zsl_insert(a, &z->u.s.zsl, score, m, mlen);
    if (ref == ARENA_NONE)
        return ZSET_NOMEM;
    int created;
    if (adict_set(a, &z->u.s.dict, m, mlen, &ref, sizeof(ref), &created) == NULL) {
        zsl_delete(a, &z->u.s.zsl, ref);
        return ZSET_NOMEM;
    }
    z->len++;
    return ZSET_OK;
}

struct unindex {
    struct arena *a;
    struct zset *z;
};

/* A range removal took a node out of the list: take it out of the index. */
static void s_unindex(void *arg, const struct zsl_node *n)
{
    struct unindex *u = arg;
    adict_del(u->a, &u->z->u.s.dict, zsl_member(n), n->mlen);
    u->z->len--;
}

/* Build the skiplist encoding from the compact one; on failure the set is
 * left compact and whole. */
static int convert(struct arena *a, struct zset *z)
{
    struct zset t;
    memset(&t, 0, sizeof(t));
    t.enc = ZSET_SKIPLIST;
    if (zsl_create(a, &t.u.s.zsl, 0x2545f491u ^ z->len) != 0)
        return ZSET_NOMEM;
    if (adict_init(a, &t.u.s.dict) != 0) {
        zsl_destroy(a, &t.u.s.zsl);
        return ZSET_NOMEM;
    }
    if (z->len) {
        const char *b = cblk(a, z);
        struct zset_entry e;
        for (uint32_t off = 0; off < z->u.c.used; off = c_next(b, off)) {
            c_read(b, off, &e);
            if (s_insert(a, &t, e.m, e.mlen, e.score) != ZSET_OK) {
                zset_free(a, &t);
                return ZSET_NOMEM;
            }
        }
        arena_free(a, z->u.c.blk, z->u.c.cap);
    }
    *z = t;
    return ZSET_OK;
}

/* ---- the interface ---- */

void zset_init(struct zset *z)
{
    memset(z, 0, sizeof(*z));
    z->enc = ZSET_COMPACT;
    z->u.c.blk = ARENA_NONE;
}

void zset_free(struct arena *a, struct zset *z)
{
    if (z->enc == ZSET_SKIPLIST) {
        adict_free(a, &z->u.s.dict);
        zsl_destroy(a, &z->u.s.zsl);
    } else if (z->u.c.blk != ARENA_NONE) {
        arena_free(a, z->u.c.blk, z->u.c.cap);
    }
    zset_init(z);
}

const char *zset_encoding(const struct zset *z)
{
    return z->enc == ZSET_SKIPLIST ? "skiplist" : "listpack";
}

int zset_add(struct arena *a, struct zset *z, const struct zset_limits *lim,
             const void *m, size_t mlen, double score, int flags, int *out, double *newscore)
{
    bool incr = flags & ZADD_IN_INCR, nx = flags & ZADD_IN_NX, xx = flags & ZADD_IN_XX;
    bool gt = flags & ZADD_IN_GT, lt = flags & ZADD_IN_LT;
    double cur;
    uint32_t off = UINT32_MAX, ref = ARENA_NONE;
    int found;

    *out = 0;
    if (isnan(score))
        return ZSET_NAN;
    if (z->enc == ZSET_COMPACT) {
        off = c_find(a, z, m, mlen, NULL);
        found = off != UINT32_MAX;
        if (found)
            memcpy(&cur, cblk(a, z) + off + 4, sizeof(double));
    } else {
        found = s_find(a, z, m, mlen, &ref);
        if (found)
            cur = zsl_node(a, ref)->score;
    }

    if (found) {
        if (nx) {
            *out = ZADD_OUT_NOP;
            return ZSET_OK;
        }
        if (incr) {
            score += cur;
            if (isnan(score))
                return ZSET_NAN;
        }
        if ((lt && score >= cur) || (gt && score <= cur)) {
            *out = ZADD_OUT_NOP;
            return ZSET_OK;
        }
        if (newscore)
            *newscore = score;
        if (score != cur) {
            if (z->enc == ZSET_COMPACT)
                c_rescore(a, z, off, score);
            else
                zsl_update_score(a, &z->u.s.zsl, ref, score);
            *out = ZADD_OUT_UPDATED;
        }
        return ZSET_OK;
    }
    if (xx) {
        *out = ZADD_OUT_NOP;
        return ZSET_OK;
    }
    if (mlen > ZSET_MEMBER_MAX)
        return ZSET_TOOBIG;
    if (z->enc == ZSET_COMPACT &&
        ((size_t)z->len + 1 > lim->max_entries || mlen > lim->max_value ||
         (size_t)z->u.c.used + C_ESZ(mlen) > ARENA_ALLOC_MAX)) {
        int rc = convert(a, z);
        if (rc != ZSET_OK)
            return rc;
    }
    int rc = z->enc == ZSET_COMPACT ? c_insert(a, z, m, mlen, score)
                                    : s_insert(a, z, m, mlen, score);
    if (rc != ZSET_OK)
        return rc;
    if (newscore)
        *newscore = score;
    *out = ZADD_OUT_ADDED;
    return ZSET_OK;
}

int zset_score(struct arena *a, const struct zset *z, const void *m, size_t mlen, double *score)
{
    if (z->enc == ZSET_COMPACT) {
        uint32_t off = c_find(a, z, m, mlen, NULL);
        if (off == UINT32_MAX)
            return 0;
        memcpy(score, cblk(a, z) + off + 4, sizeof(double));
        return 1;
    }
    uint32_t ref;
    if (!s_find(a, z, m, mlen, &ref))
        return 0;
    *score = zsl_node(a, ref)->score;
    return 1;
}

int zset_del(struct arena *a, struct zset *z, const void *m, size_t mlen)
{
    if (z->enc == ZSET_COMPACT) {
        uint32_t off = c_find(a, z, m, mlen, NULL);
        if (off == UINT32_MAX)
            return 0;
        c_remove(a, z, off, C_ESZ(mlen));
        return 1;
    }
    uint32_t ref;
    if (!s_find(a, z, m, mlen, &ref))
        return 0;
    adict_del(a, &z->u.s.dict, m, mlen);
    zsl_delete(a, &z->u.s.zsl, ref);
    z->len--;
    return 1;
}

long zset_rank(struct arena *a, const struct zset *z, const void *m, size_t mlen, bool reverse, double *score)
{
    size_t rank;
    double s;
    if (z->enc == ZSET_COMPACT) {
        uint32_t off = c_find(a, z, m, mlen, &rank);
        if (off == UINT32_MAX)
            return -1;
        memcpy(&s, cblk(a, z) + off + 4, sizeof(double));
    } else {
        uint32_t ref;
        if (!s_find(a, z, m, mlen, &ref))
            return -1;
        s = zsl_node(a, ref)->score;
        rank = zsl_rank(a, &z->u.s.zsl, s, m, mlen) - 1;
    }
    if (score)
        *score = s;
    return (long)(reverse ? z->len - 1 - rank : rank);
}

size_t zset_count_score(struct arena *a, const struct zset *z, const struct zrange_score *r)
{
    struct zset_iter it;
    struct zset_entry e;
    size_t n = 0;
    if (z->enc == ZSET_SKIPLIST) {
        const struct zsl *l = &z->u.s.zsl;
        uint32_t f = zsl_first_in_score(a, l, r);
        if (f == ARENA_NONE)
            return 0;
        uint32_t t = zsl_last_in_score(a, l, r);
        const struct zsl_node *fn = zsl_node(a, f), *tn = zsl_node(a, t);
        return zsl_rank(a, l, tn->score, zsl_member(tn), tn->mlen) -
               zsl_rank(a, l, fn->score, zsl_member(fn), fn->mlen) + 1;
    }
    zset_iter_score(&it, a, z, r, false);
    while (zset_iter_next(&it, &e))
        n++;
    return n;
}

size_t zset_count_lex(struct arena *a, const struct zset *z, const struct zrange_lex *r)
{
    struct zset_iter it;
    struct zset_entry e;
    size_t n = 0;
    if (z->enc == ZSET_SKIPLIST) {
        const struct zsl *l = &z->u.s.zsl;
        uint32_t f = zsl_first_in_lex(a, l, r);
        if (f == ARENA_NONE)
            return 0;
        const struct zsl_node *fn = zsl_node(a, f);
        size_t first = zsl_rank(a, l, fn->score, zsl_member(fn), fn->mlen);
        /* With scores that differ the members are not in lex order and
         * the last match may come before the first: Redis then counts to
         * the end, or answers last - first + 1 as it falls; so do we. */
        uint32_t t = zsl_last_in_lex(a, l, r);
        if (t == ARENA_NONE)
            return z->len - first + 1;
        const struct zsl_node *tn = zsl_node(a, t);
        /* May wrap below zero like Redis's count does. */
        return zsl_rank(a, l, tn->score, zsl_member(tn), tn->mlen) - first + 1;
    }
    zset_iter_lex(&it, a, z, r, false);
    while (zset_iter_next(&it, &e))
        n++;
    return n;
}

static size_t c_remove_walk(struct arena *a, struct zset *z, struct zset_iter *it);

size_t zset_remove_rank(struct arena *a, struct zset *z, size_t start, size_t end)
{
    if (start > end || end >= z->len)
        return 0;
    if (z->enc == ZSET_SKIPLIST) {
        struct unindex u = { a, z };
        return zsl_delete_rank(a, &z->u.s.zsl, start + 1, end + 1, s_unindex, &u);
    }
    struct zset_iter it;
    zset_iter_rank(&it, a, z, start, end, false);
    return c_remove_walk(a, z, &it);
}

/* Remove the compact entries an iterator walks over (forward only). */
static size_t c_remove_walk(struct arena *a, struct zset *z, struct zset_iter *it)
{
    size_t n = 0;
    struct zset_entry e;
    if (!it->valid)
        return 0;
    uint32_t from = it->pos, to = from;
    while (zset_iter_next(it, &e)) {
        to += C_ESZ(e.mlen);
        n++;
    }
    if (n == 0)
        return 0;
    char *b = cblk(a, z);
    memmove(b + from, b + to, z->u.c.used - to);
    z->u.c.used -= to - from;
    z->len -= (uint32_t)n;
    if (z->len == 0) {
        arena_free(a, z->u.c.blk, z->u.c.cap);
        z->u.c.blk = ARENA_NONE;
        z->u.c.cap = 0;
    }
    return n;
}

size_t zset_remove_score(struct arena *a, struct zset *z, const struct zrange_score *r)
{
    if (z->enc == ZSET_SKIPLIST) {
        struct unindex u = { a, z };
        return zsl_delete_score(a, &z->u.s.zsl, r, s_unindex, &u);
    }
    struct zset_iter it;
    zset_iter_score(&it, a, z, r, false);
    return c_remove_walk(a, z, &it);
}

size_t zset_remove_lex(struct arena *a, struct zset *z, const struct zrange_lex *r)
{
    if (z->enc == ZSET_SKIPLIST) {
        struct unindex u = { a, z };
        return zsl_delete_lex(a, &z->u.s.zsl, r, s_unindex, &u);
    }
    struct zset_iter it;
    zset_iter_lex(&it, a, z, r, false);
    return c_remove_walk(a, z, &it);
}

/* ---- walks ---- */

static void iter_start(struct zset_iter *it, struct arena *a, const struct zset *z,
                       enum zset_iter_kind kind, bool reverse)
{
    memset(it, 0, sizeof(*it));
    it->a = a;
    it->z = z;
    it->kind = kind;
    it->reverse = reverse;
    it->valid = false;
}

void zset_iter_rank(struct zset_iter *it, struct arena *a, const struct zset *z,
                    size_t start, size_t end, bool reverse)
{
    iter_start(it, a, z, ZITER_RANK, reverse);
    if (start > end || end >= z->len)
        return;
    it->left = end - start + 1;
    if (z->enc == ZSET_SKIPLIST) {
        size_t rank = reverse ? z->len - start : start + 1;
        it->pos = zsl_by_rank(a, &z->u.s.zsl, rank);
    } else {
        const char *b = cblk(a, z);
        it->pos = reverse ? c_at_rev(b, z->u.c.used, start) : c_at(b, z->u.c.used, start);
    }
    it->valid = true;
}

void zset_iter_score(struct zset_iter *it, struct arena *a, const struct zset *z,
                     const struct zrange_score *r, bool reverse)
{
    iter_start(it, a, z, ZITER_SCORE, reverse);
    it->score = *r;
    if (z->len == 0 || zsl_score_empty(r))
        return;
    if (z->enc == ZSET_SKIPLIST) {
        it->pos = reverse ? zsl_last_in_score(a, &z->u.s.zsl, r) : zsl_first_in_score(a, &z->u.s.zsl, r);
        it->valid = it->pos != ARENA_NONE;
        return;
    }
    const char *b = cblk(a, z);
    struct zset_entry e;
    if (!reverse) {
        for (uint32_t off = 0; off < z->u.c.used; off = c_next(b, off)) {
            c_read(b, off, &e);
            if (zsl_score_gte_min(e.score, r)) {
                it->pos = off;
                it->valid = zsl_score_lte_max(e.score, r);
                return;
            }
        }
    } else {
        for (uint32_t off = z->u.c.used; off > 0;) {
            off = c_prev(b, off);
            c_read(b, off, &e);
            if (zsl_score_lte_max(e.score, r)) {
                it->pos = off;
                it->valid = zsl_score_gte_min(e.score, r);
                return;
            }
        }
    }
}

void zset_iter_lex(struct zset_iter *it, struct arena *a, const struct zset *z,
                   const struct zrange_lex *r, bool reverse)
{
    iter_start(it, a, z, ZITER_LEX, reverse);
    it->lex = *r;
    if (z->len == 0 || zsl_lex_empty(r))
        return;
    if (z->enc == ZSET_SKIPLIST) {
        it->pos = reverse ? zsl_last_in_lex(a, &z->u.s.zsl, r) : zsl_first_in_lex(a, &z->u.s.zsl, r);
        it->valid = it->pos != ARENA_NONE;
        return;
    }
    const char *b = cblk(a, z);
    struct zset_entry e;
    /* As Redis: nothing unless the last member is >= min and the first
     * <= max. With differing scores the members are not in lex order and
     * the answer is Redis's own, so its steps are followed exactly. */
    c_read(b, c_prev(b, z->u.c.used), &e);
    if (!zsl_lex_gte_min(e.m, e.mlen, r))
        return;
    c_read(b, 0, &e);
    if (!zsl_lex_lte_max(e.m, e.mlen, r))
        return;
    if (!reverse) {
        for (uint32_t off = 0; off < z->u.c.used; off = c_next(b, off)) {
            c_read(b, off, &e);
            if (zsl_lex_gte_min(e.m, e.mlen, r)) {
                it->pos = off;
                it->valid = zsl_lex_lte_max(e.m, e.mlen, r);
                return;
            }
        }
    } else {
        for (uint32_t off = z->u.c.used; off > 0;) {
            off = c_prev(b, off);
            c_read(b, off, &e);
            if (zsl_lex_lte_max(e.m, e.mlen, r)) {
                it->pos = off;
                it->valid = zsl_lex_gte_min(e.m, e.mlen, r);
                return;
            }
        }
    }
}

bool zset_iter_next(struct zset_iter *it, struct zset_entry *e)
{
    if (!it->valid)
        return false;
    const struct zset *z = it->z;
    bool compact = z->enc == ZSET_COMPACT;
    if (compact) {
        c_read(cblk(it->a, z), it->pos, e);
    } else {
        const struct zsl_node *n = zsl_node(it->a, it->pos);
        e->m = zsl_member(n);
        e->mlen = n->mlen;
        e->score = n->score;
    }
    /* The start was placed on the range's near end: check the far one. */
    switch (it->kind) {
    case ZITER_RANK:
        if (it->left == 0)
            return it->valid = false;
        it->left--;
        break;
    case ZITER_SCORE:
        if (!(it->reverse ? zsl_score_gte_min(e->score, &it->score)
                          : zsl_score_lte_max(e->score, &it->score)))
            return it->valid = false;
        break;
    case ZITER_LEX:
        if (!(it->reverse ? zsl_lex_gte_min(e->m, e->mlen, &it->lex)
                          : zsl_lex_lte_max(e->m, e->mlen, &it->lex)))
            return it->valid = false;
        break;
    }
    if (compact) {
        const char *b = cblk(it->a, z);
        if (it->reverse) {
            if (it->pos == 0)
                it->valid = false;
            else
                it->pos = c_prev(b, it->pos);
        } else {
            it->pos = c_next(b, it->pos);
            if (it->pos >= z->u.c.used)
                it->valid = false;
        }
    } else {
        const struct zsl_node *n = zsl_node(it->a, it->pos);
        it->pos = it->reverse ? n->backward : n->lv[0].forward;
        it->valid = it->pos != ARENA_NONE;
    }
    return true;
}

/* ---- ZSCAN ---- */

struct scan_ctx {
    struct arena *a;
    zset_scan_fn fn;
    void *arg;
};

static void scan_one(void *arg, const void *k, size_t klen, const void *v, size_t vlen)
{
    struct scan_ctx *c = arg;
    uint32_t ref;
    (void)vlen;
    memcpy(&ref, v, sizeof(ref));
    c->fn(c->arg, k, klen, zsl_node(c->a, ref)->score);
}

uint64_t zset_scan(struct arena *a, const struct zset *z, uint64_t cursor, zset_scan_fn fn, void *arg)
{
    if (z->enc == ZSET_SKIPLIST) {
        struct scan_ctx c = { a, fn, arg };
        return adict_scan(a, &z->u.s.dict, cursor, scan_one, &c);
    }
    if (z->len) {
        const char *b = cblk(a, z);
        struct zset_entry e;
        for (uint32_t off = 0; off < z->u.c.used; off = c_next(b, off)) {
            c_read(b, off, &e);
            fn(arg, e.m, e.mlen, e.score);
        }
    }
    return 0;
}

/* ---- checks for tests ---- */

static int verify_compact(struct arena *a, const struct zset *z)
{
    if (z->len == 0)
        return z->u.c.blk == ARENA_NONE && z->u.c.used == 0 ? 0 : -1;
    if (z->u.c.used > z->u.c.cap || z->u.c.cap > ARENA_ALLOC_MAX)
        return -1;
    const char *b = cblk(a, z);
    struct zset_entry e, p = { 0 };
    size_t n = 0;
    uint32_t off;
    for (off = 0; off < z->u.c.used; off = c_next(b, off), n++) {
        c_read(b, off, &e);
        if (off + C_ESZ(e.mlen) > z->u.c.used || rd32(b + off + C_HDR + e.mlen) != e.mlen)
            return -1;
        if (isnan(e.score))
            return -1;
        if (n > 0 && entry_cmp(p.score, p.m, p.mlen, e.score, e.m, e.mlen) >= 0)
            return -1;
        p = e;
    }
    return off == z->u.c.used && n == z->len ? 0 : -1;
}

static int verify_skiplist(struct arena *a, const struct zset *z)
{
    const struct zsl *l = &z->u.s.zsl;
    if (l->length != z->len || z->u.s.dict.count != z->len || l->level < 1 || l->level > ZSL_MAXLEVEL)
        return -1;
    const struct zsl_node *h = zsl_node(a, l->header);
    uint32_t prev = ARENA_NONE;
    size_t n = 0;
    for (uint32_t x = h->lv[0].forward; x != ARENA_NONE; x = zsl_node(a, x)->lv[0].forward) {
        const struct zsl_node *xn = zsl_node(a, x);
        if (xn->backward != prev || xn->level < 1 || xn->level > l->level || isnan(xn->score))
            return -1;
        if (prev != ARENA_NONE) {
            const struct zsl_node *pn = zsl_node(a, prev);
            if (entry_cmp(pn->score, zsl_member(pn), pn->mlen, xn->score, zsl_member(xn), xn->mlen) >= 0)
                return -1;
        }
        uint32_t ref;
        if (!s_find(a, z, zsl_member(xn), xn->mlen, &ref) || ref != x)
            return -1;
        prev = x;
        n++;
    }
    if (n != z->len || l->tail != prev)
        return -1;
    /* Spans: on every level the running sum is each node's rank. */
    for (uint32_t i = 0; i < l->level; i++) {
        size_t rank = 0;
        for (uint32_t x = l->header; zsl_node(a, x)->lv[i].forward != ARENA_NONE;) {
            rank += zsl_node(a, x)->lv[i].span;
            x = zsl_node(a, x)->lv[i].forward;
            const struct zsl_node *xn = zsl_node(a, x);
            if (zsl_rank(a, l, xn->score, zsl_member(xn), xn->mlen) != rank)
                return -1;
        }
    }
    for (uint32_t i = l->level; i < ZSL_MAXLEVEL; i++)
        if (h->lv[i].forward != ARENA_NONE)
            return -1;
    return 0;
}

int zset_verify(struct arena *a, const struct zset *z)
{
    return z->enc == ZSET_SKIPLIST ? verify_skiplist(a, z) : verify_compact(a, z);
}

/* ---- set operations ---- */

double zset_weigh(double score, double weight)
{
    double v = score * weight;
    return isnan(v) ? 0 : v;
}

void zset_aggregate(double *acc, double val, enum zset_agg agg)
{
    switch (agg) {
    case ZAGG_SUM:
        *acc += val;
        if (isnan(*acc))
            *acc = 0;
        break;
    case ZAGG_MIN:
        if (val < *acc)
            *acc = val;
        break;
    case ZAGG_MAX:
        if (val > *acc)
            *acc = val;
        break;
    }
}
