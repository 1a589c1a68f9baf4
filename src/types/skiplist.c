/*
 * Skiplist with spans over arena blocks (see skiplist.h).
 *
 * Every walk goes down from the header's top level in use and keeps, per
 * level, the last node before the target (update[]) and the rank reached
 * there (rank[]); inserting and unlinking then fix exactly those links and
 * spans. A level is kept with probability 1/4, as in the usual skiplist, so
 * a walk visits O(log n) nodes.
 */
#include "types/skiplist.h"

#include <string.h>

#define N(a, ref) zsl_node((a), (ref))

int zsl_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

bool zsl_score_gte_min(double v, const struct zrange_score *r)
{
    return r->minex ? v > r->min : v >= r->min;
}

bool zsl_score_lte_max(double v, const struct zrange_score *r)
{
    return r->maxex ? v < r->max : v <= r->max;
}

bool zsl_score_empty(const struct zrange_score *r)
{
    return r->min > r->max || (r->min == r->max && (r->minex || r->maxex));
}

/* Order of a member against a bound, the infinities below / above all. */
static int lex_cmp(const void *m, size_t mlen, const struct zlex_bound *b)
{
    if (b->kind == ZLEX_NEG_INF)
        return 1;
    if (b->kind == ZLEX_POS_INF)
        return -1;
    return zsl_cmp(m, mlen, b->s, b->len);
}

bool zsl_lex_gte_min(const void *m, size_t mlen, const struct zrange_lex *r)
{
    int c = lex_cmp(m, mlen, &r->min);
    return r->min.kind == ZLEX_INCL ? c >= 0 : c > 0;
}

bool zsl_lex_lte_max(const void *m, size_t mlen, const struct zrange_lex *r)
{
    int c = lex_cmp(m, mlen, &r->max);
    return r->max.kind == ZLEX_INCL ? c <= 0 : c < 0;
}

bool zsl_lex_empty(const struct zrange_lex *r)
{
    const struct zlex_bound *lo = &r->min, *hi = &r->max;
    int c;
    /* An infinity counts as an exclusive end, as "-" and "+" do in Redis. */
    if (lo->kind == hi->kind && (lo->kind == ZLEX_NEG_INF || lo->kind == ZLEX_POS_INF))
        c = 0;
    else if (lo->kind == ZLEX_NEG_INF || hi->kind == ZLEX_POS_INF)
        c = -1;
    else if (lo->kind == ZLEX_POS_INF || hi->kind == ZLEX_NEG_INF)
        c = 1;
    else
        c = zsl_cmp(lo->s, lo->len, hi->s, hi->len);
    return c > 0 || (c == 0 && (lo->kind != ZLEX_INCL || hi->kind != ZLEX_INCL));
}

size_t zsl_node_size(uint32_t level, size_t mlen)
{
    return sizeof(struct zsl_node) + level * sizeof(struct zsl_level) + mlen;
}

size_t zsl_member_max(void)
{
    return ARENA_ALLOC_MAX - zsl_node_size(ZSL_MAXLEVEL, 0);
}

/* Does node n sort before (score, m)? */
static bool node_lt(const struct zsl_node *n, double score, const void *m, size_t mlen)
{
    return n->score < score ||
           (n->score == score && zsl_cmp(zsl_member(n), n->mlen, m, mlen) < 0);
}

static uint32_t random_level(struct zsl *l)
{
    uint32_t level = 1;
    for (;;) {
        uint32_t x = l->rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        l->rng = x;
        /* One more level with probability 1/4, a fresh draw each time. */
        if ((x & 3u) != 0 || level == ZSL_MAXLEVEL)
            return level;
        level++;
    }
}

int zsl_create(struct arena *a, struct zsl *l, uint32_t seed)
{
    uint32_t h = arena_alloc(a, zsl_node_size(ZSL_MAXLEVEL, 0));
    if (h == ARENA_NONE)
        return -1;
    struct zsl_node *n = N(a, h);
    memset(n, 0, zsl_node_size(ZSL_MAXLEVEL, 0));
    n->level = ZSL_MAXLEVEL;
    l->header = h;
    l->tail = ARENA_NONE;
    l->length = 0;
    l->level = 1;
    l->rng = seed ? seed : 0x9e3779b9u;
    return 0;
}

void zsl_destroy(struct arena *a, struct zsl *l)
{
    uint32_t x = N(a, l->header)->lv[0].forward;
    while (x != ARENA_NONE) {
        struct zsl_node *n = N(a, x);
        uint32_t next = n->lv[0].forward;
        arena_free(a, x, zsl_node_size(n->level, n->mlen));
        x = next;
    }
    arena_free(a, l->header, zsl_node_size(ZSL_MAXLEVEL, 0));
    l->header = l->tail = ARENA_NONE;
    l->length = 0;
}

/* Link a node whose score, member and level are set. */
static void link_node(struct arena *a, struct zsl *l, uint32_t ref)
{
    uint32_t update[ZSL_MAXLEVEL];
    size_t rank[ZSL_MAXLEVEL];
    struct zsl_node *n = N(a, ref);
    const void *m = zsl_member(n);
    uint32_t x = l->header;

    struct zsl_node *xp = N(a, x);
    for (int i = (int)l->level - 1; i >= 0; i--) {
        rank[i] = i == (int)l->level - 1 ? 0 : rank[i + 1];
        for (;;) {
            uint32_t f = xp->lv[i].forward;
            if (f == ARENA_NONE)
                break;
            struct zsl_node *fp = N(a, f);
            if (!node_lt(fp, n->score, m, n->mlen))
                break;
            rank[i] += xp->lv[i].span;
            x = f;
            xp = fp;
        }
        update[i] = x;
    }
    if (n->level > l->level) {
        struct zsl_node *h = N(a, l->header);
        for (uint32_t i = l->level; i < n->level; i++) {
            rank[i] = 0;
            update[i] = l->header;
            h->lv[i].span = l->length;
        }
        l->level = n->level;
    }
    for (uint32_t i = 0; i < n->level; i++) {
        struct zsl_node *u = N(a, update[i]);
        n->lv[i].forward = u->lv[i].forward;
        u->lv[i].forward = ref;
        n->lv[i].span = u->lv[i].span - (uint32_t)(rank[0] - rank[i]);
        u->lv[i].span = (uint32_t)(rank[0] - rank[i]) + 1;
    }
    for (uint32_t i = n->level; i < l->level; i++)
        N(a, update[i])->lv[i].span++;
    n->backward = update[0] == l->header ? ARENA_NONE : update[0];
    if (n->lv[0].forward != ARENA_NONE)
        N(a, n->lv[0].forward)->backward = ref;
    else
        l->tail = ref;
    l->length++;
}

uint32_t zsl_insert(struct arena *a, struct zsl *l, double score, const void *m, size_t mlen)
{
    uint32_t level = random_level(l);
    if (mlen > zsl_member_max())
        return ARENA_NONE;
    size_t sz = zsl_node_size(level, mlen);
    uint32_t ref = arena_alloc(a, sz);
    if (ref == ARENA_NONE)
        return ARENA_NONE;
    struct zsl_node *n = N(a, ref);
    n->score = score;
    n->mlen = (uint32_t)mlen;
    n->level = level;
    n->pad = 0;
    if (mlen)
        memcpy((char *)zsl_member(n), m, mlen);
    link_node(a, l, ref);
    return ref;
}

/* Unlink x given the last node before it on every level in use. */
static void unlink_node(struct arena *a, struct zsl *l, uint32_t x, const uint32_t *update)
{
    struct zsl_node *n = N(a, x);
    for (uint32_t i = 0; i < l->level; i++) {
        struct zsl_node *u = N(a, update[i]);
        if (u->lv[i].forward == x) {
            u->lv[i].span += n->lv[i].span - 1;
            u->lv[i].forward = n->lv[i].forward;
        } else {
            u->lv[i].span--;
        }
    }
    if (n->lv[0].forward != ARENA_NONE)
        N(a, n->lv[0].forward)->backward = n->backward;
    else
        l->tail = n->backward;
    struct zsl_node *h = N(a, l->header);
    while (l->level > 1 && h->lv[l->level - 1].forward == ARENA_NONE)
        l->level--;
    l->length--;
}

/* The path to the node holding x's (score, member). */
static void find_path(const struct arena *a, const struct zsl *l, uint32_t ref, uint32_t *update)
{
    const struct zsl_node *n = N(a, ref);
    const void *m = zsl_member(n);
    uint32_t x = l->header;
    const struct zsl_node *xp = N(a, x);
    for (int i = (int)l->level - 1; i >= 0; i--) {
        for (;;) {
            uint32_t f = xp->lv[i].forward;
            if (f == ARENA_NONE || f == ref)
                break;
            const struct zsl_node *fp = N(a, f);
            if (!node_lt(fp, n->score, m, n->mlen))
                break;
            x = f;
            xp = fp;
        }
        update[i] = x;
    }
}

void zsl_delete(struct arena *a, struct zsl *l, uint32_t ref)
{
    uint32_t update[ZSL_MAXLEVEL];
    find_path(a, l, ref, update);
    unlink_node(a, l, ref, update);
    struct zsl_node *n = N(a, ref);
    arena_free(a, ref, zsl_node_size(n->level, n->mlen));
}

void zsl_update_score(struct arena *a, struct zsl *l, uint32_t ref, double score)
{
    struct zsl_node *n = N(a, ref);
    /* Still strictly between its neighbours: the order holds in place. */
    if ((n->backward == ARENA_NONE || N(a, n->backward)->score < score) &&
        (n->lv[0].forward == ARENA_NONE || N(a, n->lv[0].forward)->score > score)) {
        n->score = score;
        return;
    }
    uint32_t update[ZSL_MAXLEVEL];
    find_path(a, l, ref, update);
    unlink_node(a, l, ref, update);
    n->score = score;
    link_node(a, l, ref);
}

size_t zsl_rank(const struct arena *a, const struct zsl *l, double score, const void *m, size_t mlen)
{
    uint32_t x = l->header;
    const struct zsl_node *xp = N(a, x);
    size_t rank = 0;
    for (int i = (int)l->level - 1; i >= 0; i--) {
        for (;;) {
            uint32_t f = xp->lv[i].forward;
            if (f == ARENA_NONE)
                break;
            const struct zsl_node *fn = N(a, f);
            if (fn->score > score ||
                (fn->score == score && zsl_cmp(zsl_member(fn), fn->mlen, m, mlen) > 0))
                break;
            rank += xp->lv[i].span;
            x = f;
            xp = fn;
        }
        if (x != l->header && xp->score == score && zsl_cmp(zsl_member(xp), xp->mlen, m, mlen) == 0)
            return rank;
    }
    return 0;
}

uint32_t zsl_by_rank(const struct arena *a, const struct zsl *l, size_t rank)
{
    if (rank == 0 || rank > l->length)
        return ARENA_NONE;
    uint32_t x = l->header;
    const struct zsl_node *xn = N(a, x);
    size_t passed = 0;
    for (int i = (int)l->level - 1; i >= 0; i--) {
        while (xn->lv[i].forward != ARENA_NONE && passed + xn->lv[i].span <= rank) {
            passed += xn->lv[i].span;
            x = xn->lv[i].forward;
            xn = N(a, x);
        }
        if (passed == rank)
            return x;
    }
    return ARENA_NONE;
}

static uint32_t first_ref(const struct arena *a, const struct zsl *l)
{
    return N(a, l->header)->lv[0].forward;
}

static bool score_in_list(const struct arena *a, const struct zsl *l, const struct zrange_score *r)
{
    if (zsl_score_empty(r) || l->tail == ARENA_NONE)
        return false;
    return zsl_score_gte_min(N(a, l->tail)->score, r) &&
           zsl_score_lte_max(N(a, first_ref(a, l))->score, r);
}

uint32_t zsl_first_in_score(const struct arena *a, const struct zsl *l, const struct zrange_score *r)
{
    if (!score_in_list(a, l, r))
        return ARENA_NONE;
    uint32_t x = l->header;
    for (int i = (int)l->level - 1; i >= 0; i--) {
        uint32_t f;
        while ((f = N(a, x)->lv[i].forward) != ARENA_NONE && !zsl_score_gte_min(N(a, f)->score, r))
            x = f;
    }
    x = N(a, x)->lv[0].forward;
    return x != ARENA_NONE && zsl_score_lte_max(N(a, x)->score, r) ? x : ARENA_NONE;
}

uint32_t zsl_last_in_score(const struct arena *a, const struct zsl *l, const struct zrange_score *r)
{
    if (!score_in_list(a, l, r))
        return ARENA_NONE;
    uint32_t x = l->header;
    for (int i = (int)l->level - 1; i >= 0; i--) {
        uint32_t f;
        while ((f = N(a, x)->lv[i].forward) != ARENA_NONE && zsl_score_lte_max(N(a, f)->score, r))
            x = f;
    }
    return x != l->header && zsl_score_gte_min(N(a, x)->score, r) ? x : ARENA_NONE;
}

static bool lex_gte(const struct arena *a, uint32_t ref, const struct zrange_lex *r)
{
    const struct zsl_node *n = N(a, ref);
    return zsl_lex_gte_min(zsl_member(n), n->mlen, r);
}

static bool lex_lte(const struct arena *a, uint32_t ref, const struct zrange_lex *r)
{
    const struct zsl_node *n = N(a, ref);
    return zsl_lex_lte_max(zsl_member(n), n->mlen, r);
}

static bool lex_in_list(const struct arena *a, const struct zsl *l, const struct zrange_lex *r)
{
    if (zsl_lex_empty(r) || l->tail == ARENA_NONE)
        return false;
    return lex_gte(a, l->tail, r) && lex_lte(a, first_ref(a, l), r);
}

uint32_t zsl_first_in_lex(const struct arena *a, const struct zsl *l, const struct zrange_lex *r)
{
    if (!lex_in_list(a, l, r))
        return ARENA_NONE;
    uint32_t x = l->header;
    for (int i = (int)l->level - 1; i >= 0; i--) {
        uint32_t f;
        while ((f = N(a, x)->lv[i].forward) != ARENA_NONE && !lex_gte(a, f, r))
            x = f;
    }
    x = N(a, x)->lv[0].forward;
    return x != ARENA_NONE && lex_lte(a, x, r) ? x : ARENA_NONE;
}

uint32_t zsl_last_in_lex(const struct arena *a, const struct zsl *l, const struct zrange_lex *r)
{
    if (!lex_in_list(a, l, r))
        return ARENA_NONE;
    uint32_t x = l->header;
    for (int i = (int)l->level - 1; i >= 0; i--) {
        uint32_t f;
        while ((f = N(a, x)->lv[i].forward) != ARENA_NONE && lex_lte(a, f, r))
            x = f;
    }
    return x != l->header && lex_gte(a, x, r) ? x : ARENA_NONE;
}

/* Unlink, report and free nodes from x on while keep() says so. */
static size_t delete_run(struct arena *a, struct zsl *l, uint32_t *update, uint32_t x,
                         bool (*keep)(const struct arena *, uint32_t, const void *, size_t),
                         const void *r, size_t budget, zsl_del_fn fn, void *arg)
{
    size_t removed = 0;
    while (x != ARENA_NONE && removed < budget && keep(a, x, r, removed)) {
        struct zsl_node *n = N(a, x);
        uint32_t next = n->lv[0].forward;
        unlink_node(a, l, x, update);
        if (fn)
            fn(arg, n);
        arena_free(a, x, zsl_node_size(n->level, n->mlen));
        removed++;
        x = next;
    }
    return removed;
}

static bool score_keep(const struct arena *a, uint32_t x, const void *r, size_t done)
{
    (void)done;
    return zsl_score_lte_max(N(a, x)->score, r);
}

static bool lex_keep(const struct arena *a, uint32_t x, const void *r, size_t done)
{
    (void)done;
    return lex_lte(a, x, r);
}

static bool always(const struct arena *a, uint32_t x, const void *r, size_t done)
{
    (void)a, (void)x, (void)r, (void)done;
    return true;
}

size_t zsl_delete_score(struct arena *a, struct zsl *l, const struct zrange_score *r, zsl_del_fn fn, void *arg)
{
    uint32_t update[ZSL_MAXLEVEL];
    if (zsl_score_empty(r))
        return 0;
    uint32_t x = l->header;
    for (int i = (int)l->level - 1; i >= 0; i--) {
        uint32_t f;
        while ((f = N(a, x)->lv[i].forward) != ARENA_NONE && !zsl_score_gte_min(N(a, f)->score, r))
            x = f;
        update[i] = x;
    }
    return delete_run(a, l, update, N(a, x)->lv[0].forward, score_keep, r, SIZE_MAX, fn, arg);
}

size_t zsl_delete_lex(struct arena *a, struct zsl *l, const struct zrange_lex *r, zsl_del_fn fn, void *arg)
{
    uint32_t update[ZSL_MAXLEVEL];
    if (zsl_lex_empty(r))
        return 0;
    uint32_t x = l->header;
    for (int i = (int)l->level - 1; i >= 0; i--) {
        uint32_t f;
        while ((f = N(a, x)->lv[i].forward) != ARENA_NONE && !lex_gte(a, f, r))
            x = f;
        update[i] = x;
    }
    return delete_run(a, l, update, N(a, x)->lv[0].forward, lex_keep, r, SIZE_MAX, fn, arg);
}

size_t zsl_delete_rank(struct arena *a, struct zsl *l, size_t start, size_t end, zsl_del_fn fn, void *arg)
{
    uint32_t update[ZSL_MAXLEVEL];
    if (start == 0 || start > end || start > l->length)
        return 0;
    uint32_t x = l->header;
    size_t passed = 0;
    for (int i = (int)l->level - 1; i >= 0; i--) {
        for (;;) {
            const struct zsl_node *xn = N(a, x);
            if (xn->lv[i].forward == ARENA_NONE || passed + xn->lv[i].span >= start)
                break;
            passed += xn->lv[i].span;
            x = xn->lv[i].forward;
        }
        update[i] = x;
    }
    return delete_run(a, l, update, N(a, x)->lv[0].forward, always, NULL, end - start + 1, fn, arg);
}
