/*
 * Unit tests for types/zset and types/skiplist over the heap arena: every
 * operation in both encodings, the switch at the limits, out-of-memory at
 * every allocation leaving the set whole, a randomized run against a naive
 * sorted array, and a 1M-member build with rank and range spot checks.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena_heap.h"
#include "types/zset.h"

static const struct zset_limits redis_limits = { 128, 64 };
/* No compact encoding at all: the skiplist from the first member. */
static const struct zset_limits no_compact = { 0, 64 };

static const struct zset_limits *limits_for(int i)
{
    return i == 0 ? &redis_limits : &no_compact;
}

static int add(struct arena *a, struct zset *z, const struct zset_limits *lim,
               const char *m, double score, int flags, int *out, double *ns)
{
    int o;
    double n;
    int rc = zset_add(a, z, lim, m, strlen(m), score, flags, out ? out : &o, ns ? ns : &n);
    /* These two assert only on a failure: Check sends each passing
     * assertion to its parent, and tests add tens of thousands. */
    int bad = zset_verify(a, z);
    if (bad != 0)
        ck_abort_msg("after adding %s: zset_verify returned %d", m, bad);
    return rc;
}

static void add_ok(struct arena *a, struct zset *z, const struct zset_limits *lim, const char *m, double s)
{
    int out;
    int rc = add(a, z, lim, m, s, 0, &out, NULL);
    if (rc != ZSET_OK)
        ck_abort_msg("add %s %g: returned %d", m, s, rc);
}

/* The members from rank 0 up, joined with ',' ("m:score" when scores). */
static void dump(struct arena *a, const struct zset *z, char *buf, size_t cap, bool scores)
{
    struct zset_iter it;
    struct zset_entry e;
    size_t n = 0;
    buf[0] = 0;
    if (zset_len(z) == 0)
        return;
    zset_iter_rank(&it, a, z, 0, zset_len(z) - 1, false);
    while (zset_iter_next(&it, &e)) {
        n += (size_t)snprintf(buf + n, cap - n, "%s%.*s", n ? "," : "", (int)e.mlen, (const char *)e.m);
        if (scores)
            n += (size_t)snprintf(buf + n, cap - n, ":%g", e.score);
    }
}

/* The members an iterator gives, joined with ','. */
static void walk(struct zset_iter *it, char *buf, size_t cap)
{
    struct zset_entry e;
    size_t n = 0;
    bool first = true;
    buf[0] = 0;
    while (zset_iter_next(it, &e)) {
        n += (size_t)snprintf(buf + n, cap - n, "%s%.*s", first ? "" : ",", (int)e.mlen, (const char *)e.m);
        first = false;
    }
}

static struct zrange_score srange(double min, bool minex, double max, bool maxex)
{
    struct zrange_score r = { min, max, minex, maxex };
    return r;
}

/* A lex bound as ZRANGEBYLEX spells it: "-", "+", "[x" or "(x". */
static struct zlex_bound lb(const char *s)
{
    struct zlex_bound b = { ZLEX_INCL, NULL, 0 };
    if (strcmp(s, "-") == 0)
        b.kind = ZLEX_NEG_INF;
    else if (strcmp(s, "+") == 0)
        b.kind = ZLEX_POS_INF;
    else {
        b.kind = s[0] == '(' ? ZLEX_EXCL : ZLEX_INCL;
        b.s = s + 1;
        b.len = strlen(s + 1);
    }
    return b;
}

static struct zrange_lex lr(const char *min, const char *max)
{
    struct zrange_lex r = { lb(min), lb(max) };
    return r;
}

START_TEST(test_orders_by_score_then_member_bytes)
{
    const struct zset_limits *lim = limits_for(_i);
    struct arena *a = arena_heap_new(0);
    struct zset z;
    char buf[512];
    zset_init(&z);
    add_ok(a, &z, lim, "b", 2);
    add_ok(a, &z, lim, "a", 2);
    add_ok(a, &z, lim, "ab", 2);
    add_ok(a, &z, lim, "z", -1);
    add_ok(a, &z, lim, "", 2);
    add_ok(a, &z, lim, "inf", INFINITY);
    add_ok(a, &z, lim, "ninf", -INFINITY);
    add_ok(a, &z, lim, "\xff", 2);
    dump(a, &z, buf, sizeof(buf), true);
    ck_assert_str_eq(buf, "ninf:-inf,z:-1,:2,a:2,ab:2,b:2,\xff:2,inf:inf");
    ck_assert_str_eq(zset_encoding(&z), _i == 0 ? "listpack" : "skiplist");
    ck_assert_uint_eq(zset_len(&z), 8);
    zset_free(a, &z);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_add_options_as_redis_zadd)
{
    const struct zset_limits *lim = limits_for(_i);
    struct arena *a = arena_heap_new(0);
    struct zset z;
    int out;
    double ns = 0;
    zset_init(&z);

    ck_assert_int_eq(add(a, &z, lim, "m", 5, 0, &out, &ns), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_ADDED);
    ck_assert(ns == 5);
    /* Same score again: nothing changes, not even "updated". */
    ck_assert_int_eq(add(a, &z, lim, "m", 5, 0, &out, NULL), ZSET_OK);
    ck_assert_int_eq(out, 0);
    ck_assert_int_eq(add(a, &z, lim, "m", 6, 0, &out, NULL), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_UPDATED);
    /* NX: never touches an existing member, adds a new one. */
    ck_assert_int_eq(add(a, &z, lim, "m", 7, ZADD_IN_NX, &out, NULL), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_NOP);
    ck_assert_int_eq(add(a, &z, lim, "n", 1, ZADD_IN_NX, &out, NULL), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_ADDED);
    /* XX: never adds. */
    ck_assert_int_eq(add(a, &z, lim, "x", 1, ZADD_IN_XX, &out, NULL), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_NOP);
    ck_assert_int_eq(add(a, &z, lim, "n", 2, ZADD_IN_XX, &out, NULL), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_UPDATED);
    /* GT / LT: only a move in that direction; a new member is added. */
    ck_assert_int_eq(add(a, &z, lim, "m", 3, ZADD_IN_GT, &out, NULL), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_NOP);
    ck_assert_int_eq(add(a, &z, lim, "m", 6, ZADD_IN_GT, &out, NULL), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_NOP);
    ck_assert_int_eq(add(a, &z, lim, "m", 9, ZADD_IN_GT, &out, NULL), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_UPDATED);
    ck_assert_int_eq(add(a, &z, lim, "m", 10, ZADD_IN_LT, &out, NULL), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_NOP);
    ck_assert_int_eq(add(a, &z, lim, "m", -1, ZADD_IN_LT, &out, NULL), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_UPDATED);
    ck_assert_int_eq(add(a, &z, lim, "g", 4, ZADD_IN_GT, &out, NULL), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_ADDED);
    /* INCR: the new score comes back; with GT a decrease is refused. */
    ck_assert_int_eq(add(a, &z, lim, "m", 2.5, ZADD_IN_INCR, &out, &ns), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_UPDATED);
    ck_assert(ns == 1.5);
    ck_assert_int_eq(add(a, &z, lim, "m", -1, ZADD_IN_INCR | ZADD_IN_GT, &out, NULL), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_NOP);
    ns = 0;
    ck_assert_int_eq(add(a, &z, lim, "m", 0, ZADD_IN_INCR, &out, &ns), ZSET_OK);
    ck_assert_int_eq(out, 0);
    ck_assert(ns == 1.5);
    ck_assert_int_eq(add(a, &z, lim, "new", 3, ZADD_IN_INCR, &out, &ns), ZSET_OK);
    ck_assert_int_eq(out, ZADD_OUT_ADDED);
    ck_assert(ns == 3);
    /* NaN: refused as input and as the result of an increment. */
    ck_assert_int_eq(add(a, &z, lim, "m", NAN, 0, &out, NULL), ZSET_NAN);
    ck_assert_int_eq(add(a, &z, lim, "i", INFINITY, 0, &out, NULL), ZSET_OK);
    ck_assert_int_eq(add(a, &z, lim, "i", -INFINITY, ZADD_IN_INCR, &out, NULL), ZSET_NAN);
    double s;
    ck_assert_int_eq(zset_score(a, &z, "i", 1, &s), 1);
    ck_assert(isinf(s) && s > 0);
    ck_assert_int_eq(zset_score(a, &z, "m", 1, &s), 1);
    ck_assert(s == 1.5);
    ck_assert_int_eq(zset_score(a, &z, "nope", 4, &s), 0);
    ck_assert_uint_eq(zset_len(&z), 5);
    zset_free(a, &z);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_score_change_moves_member_both_ways)
{
    const struct zset_limits *lim = limits_for(_i);
    struct arena *a = arena_heap_new(0);
    struct zset z;
    char buf[512];
    zset_init(&z);
    add_ok(a, &z, lim, "a", 1);
    add_ok(a, &z, lim, "bb", 2);
    add_ok(a, &z, lim, "ccc", 3);
    add_ok(a, &z, lim, "dddd", 4);
    add_ok(a, &z, lim, "a", 3.5);
    dump(a, &z, buf, sizeof(buf), true);
    ck_assert_str_eq(buf, "bb:2,ccc:3,a:3.5,dddd:4");
    add_ok(a, &z, lim, "dddd", 0);
    dump(a, &z, buf, sizeof(buf), true);
    ck_assert_str_eq(buf, "dddd:0,bb:2,ccc:3,a:3.5");
    add_ok(a, &z, lim, "a", 2);    /* tie with bb: a goes first */
    dump(a, &z, buf, sizeof(buf), true);
    ck_assert_str_eq(buf, "dddd:0,a:2,bb:2,ccc:3");
    add_ok(a, &z, lim, "dddd", 100);
    add_ok(a, &z, lim, "ccc", -100);
    dump(a, &z, buf, sizeof(buf), true);
    ck_assert_str_eq(buf, "ccc:-100,a:2,bb:2,dddd:100");
    add_ok(a, &z, lim, "bb", 2.0000001);   /* in place */
    dump(a, &z, buf, sizeof(buf), false);
    ck_assert_str_eq(buf, "ccc,a,bb,dddd");
    zset_free(a, &z);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_del_rank_and_reverse_rank)
{
    const struct zset_limits *lim = limits_for(_i);
    struct arena *a = arena_heap_new(0);
    struct zset z;
    char m[16];
    double s;
    zset_init(&z);
    for (int i = 0; i < 100; i++) {
        snprintf(m, sizeof(m), "m%03d", i);
        add_ok(a, &z, lim, m, i * 10);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(m, sizeof(m), "m%03d", i);
        ck_assert_int_eq(zset_rank(a, &z, m, 4, false, &s), i);
        ck_assert(s == i * 10);
        ck_assert_int_eq(zset_rank(a, &z, m, 4, true, NULL), 99 - i);
    }
    ck_assert_int_eq(zset_rank(a, &z, "m100", 4, false, NULL), -1);
    ck_assert_int_eq(zset_del(a, &z, "m050", 4), 1);
    ck_assert_int_eq(zset_del(a, &z, "m050", 4), 0);
    ck_assert_int_eq(zset_verify(a, &z), 0);
    ck_assert_int_eq(zset_rank(a, &z, "m051", 4, false, NULL), 50);
    ck_assert_int_eq(zset_rank(a, &z, "m049", 4, true, NULL), 49);
    for (int i = 0; i < 100; i++) {
        snprintf(m, sizeof(m), "m%03d", i);
        ck_assert_int_eq(zset_del(a, &z, m, 4), i != 50);
        ck_assert_int_eq(zset_verify(a, &z), 0);
    }
    ck_assert_uint_eq(zset_len(&z), 0);
    zset_free(a, &z);
    arena_heap_destroy(a, 1);
}
END_TEST

/* a:1 b:2 c:3 d:4 e:5 */
static void five(struct arena *a, struct zset *z, const struct zset_limits *lim)
{
    zset_init(z);
    add_ok(a, z, lim, "c", 3);
    add_ok(a, z, lim, "a", 1);
    add_ok(a, z, lim, "e", 5);
    add_ok(a, z, lim, "b", 2);
    add_ok(a, z, lim, "d", 4);
}

START_TEST(test_ranges_by_rank_score_and_lex)
{
    const struct zset_limits *lim = limits_for(_i);
    struct arena *a = arena_heap_new(0);
    struct zset z;
    struct zset_iter it;
    char buf[256];
    five(a, &z, lim);

    zset_iter_rank(&it, a, &z, 1, 3, false);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "b,c,d");
    zset_iter_rank(&it, a, &z, 0, 1, true);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "e,d");
    zset_iter_rank(&it, a, &z, 4, 4, true);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "a");
    zset_iter_rank(&it, a, &z, 3, 5, false);      /* end past the last: nothing */
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "");

    struct zrange_score r = srange(2, false, 4, false);
    zset_iter_score(&it, a, &z, &r, false);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "b,c,d");
    zset_iter_score(&it, a, &z, &r, true);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "d,c,b");
    r = srange(2, true, 4, true);
    zset_iter_score(&it, a, &z, &r, false);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "c");
    ck_assert_uint_eq(zset_count_score(a, &z, &r), 1);
    r = srange(-INFINITY, false, INFINITY, false);
    zset_iter_score(&it, a, &z, &r, true);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "e,d,c,b,a");
    ck_assert_uint_eq(zset_count_score(a, &z, &r), 5);
    r = srange(3, true, 3, false);
    zset_iter_score(&it, a, &z, &r, false);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "");
    ck_assert_uint_eq(zset_count_score(a, &z, &r), 0);
    r = srange(4.5, false, 100, false);
    zset_iter_score(&it, a, &z, &r, true);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "e");
    r = srange(5.5, false, 100, false);
    zset_iter_score(&it, a, &z, &r, false);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "");
    r = srange(-10, false, 0.5, false);
    zset_iter_score(&it, a, &z, &r, true);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "");

    zset_free(a, &z);
    /* Lex ranges mean something when the scores tie. */
    zset_init(&z);
    const char *names[] = { "alpha", "bar", "foo", "a", "zap", "b", "" };
    for (size_t i = 0; i < 7; i++)
        add_ok(a, &z, lim, names[i], 0);
    struct zrange_lex l = lr("-", "+");
    zset_iter_lex(&it, a, &z, &l, false);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, ",a,alpha,b,bar,foo,zap");
    ck_assert_uint_eq(zset_count_lex(a, &z, &l), 7);
    l = lr("[b", "(foo");
    zset_iter_lex(&it, a, &z, &l, false);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "b,bar");
    zset_iter_lex(&it, a, &z, &l, true);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "bar,b");
    ck_assert_uint_eq(zset_count_lex(a, &z, &l), 2);
    l = lr("(a", "[b");
    zset_iter_lex(&it, a, &z, &l, false);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "alpha,b");
    l = lr("+", "-");
    ck_assert_uint_eq(zset_count_lex(a, &z, &l), 0);
    l = lr("-", "-");
    ck_assert_uint_eq(zset_count_lex(a, &z, &l), 0);
    l = lr("[foo", "[bar");
    ck_assert_uint_eq(zset_count_lex(a, &z, &l), 0);
    l = lr("[foo", "(foo");
    ck_assert_uint_eq(zset_count_lex(a, &z, &l), 0);
    l = lr("[foo", "[foo");
    ck_assert_uint_eq(zset_count_lex(a, &z, &l), 1);
    l = lr("[", "[a");
    ck_assert_uint_eq(zset_count_lex(a, &z, &l), 2);
    l = lr("[zz", "+");
    zset_iter_lex(&it, a, &z, &l, true);
    walk(&it, buf, sizeof(buf));
    ck_assert_str_eq(buf, "");
    zset_free(a, &z);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_remove_ranges)
{
    const struct zset_limits *lim = limits_for(_i);
    struct arena *a = arena_heap_new(0);
    struct zset z;
    char buf[256];
    five(a, &z, lim);
    ck_assert_uint_eq(zset_remove_rank(a, &z, 1, 2), 2);
    ck_assert_int_eq(zset_verify(a, &z), 0);
    dump(a, &z, buf, sizeof(buf), false);
    ck_assert_str_eq(buf, "a,d,e");
    ck_assert_uint_eq(zset_remove_rank(a, &z, 0, 2), 3);
    ck_assert_int_eq(zset_verify(a, &z), 0);
    ck_assert_uint_eq(zset_len(&z), 0);
    zset_free(a, &z);

    five(a, &z, lim);
    struct zrange_score r = srange(1, true, 4, false);
    ck_assert_uint_eq(zset_remove_score(a, &z, &r), 3);
    ck_assert_int_eq(zset_verify(a, &z), 0);
    dump(a, &z, buf, sizeof(buf), false);
    ck_assert_str_eq(buf, "a,e");
    r = srange(10, false, 20, false);
    ck_assert_uint_eq(zset_remove_score(a, &z, &r), 0);
    r = srange(-INFINITY, false, INFINITY, false);
    ck_assert_uint_eq(zset_remove_score(a, &z, &r), 2);
    ck_assert_int_eq(zset_verify(a, &z), 0);
    zset_free(a, &z);

    zset_init(&z);
    add_ok(a, &z, lim, "a", 0);
    add_ok(a, &z, lim, "b", 0);
    add_ok(a, &z, lim, "c", 0);
    add_ok(a, &z, lim, "d", 0);
    struct zrange_lex l = lr("(a", "[c");
    ck_assert_uint_eq(zset_remove_lex(a, &z, &l), 2);
    ck_assert_int_eq(zset_verify(a, &z), 0);
    dump(a, &z, buf, sizeof(buf), false);
    ck_assert_str_eq(buf, "a,d");
    /* Removed members are gone from the index too. */
    double s;
    ck_assert_int_eq(zset_score(a, &z, "b", 1, &s), 0);
    add_ok(a, &z, lim, "b", 7);
    ck_assert_uint_eq(zset_len(&z), 3);
    zset_free(a, &z);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_converts_after_128_entries_and_never_back)
{
    struct arena *a = arena_heap_new(0);
    struct zset z;
    char m[16];
    zset_init(&z);
    for (int i = 0; i < 128; i++) {
        snprintf(m, sizeof(m), "k%d", i);
        add_ok(a, &z, &redis_limits, m, -i);
        ck_assert_str_eq(zset_encoding(&z), "listpack");
    }
    add_ok(a, &z, &redis_limits, "k128", 1);
    ck_assert_str_eq(zset_encoding(&z), "skiplist");
    ck_assert_uint_eq(zset_len(&z), 129);
    ck_assert_int_eq(zset_rank(a, &z, "k127", 4, false, NULL), 0);
    ck_assert_int_eq(zset_rank(a, &z, "k128", 4, false, NULL), 128);
    for (int i = 0; i < 120; i++) {
        snprintf(m, sizeof(m), "k%d", i);
        ck_assert_int_eq(zset_del(a, &z, m, strlen(m)), 1);
    }
    ck_assert_int_eq(zset_verify(a, &z), 0);
    ck_assert_str_eq(zset_encoding(&z), "skiplist");
    zset_free(a, &z);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_converts_on_a_member_longer_than_64)
{
    struct arena *a = arena_heap_new(0);
    struct zset z;
    char m[100];
    memset(m, 'x', sizeof(m));
    zset_init(&z);
    m[64] = 0;
    add_ok(a, &z, &redis_limits, m, 1);
    ck_assert_str_eq(zset_encoding(&z), "listpack");
    m[64] = 'x';
    m[65] = 0;
    add_ok(a, &z, &redis_limits, m, 2);
    ck_assert_str_eq(zset_encoding(&z), "skiplist");
    ck_assert_uint_eq(zset_len(&z), 2);
    /* An existing member's update never converts. */
    zset_free(a, &z);
    zset_init(&z);
    m[10] = 0;
    add_ok(a, &z, &redis_limits, m, 1);
    add_ok(a, &z, &redis_limits, m, 5);
    ck_assert_str_eq(zset_encoding(&z), "listpack");
    zset_free(a, &z);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_too_long_member_is_refused)
{
    struct arena *a = arena_heap_new(0);
    struct zset z;
    size_t n = ARENA_ALLOC_MAX;
    char *m = malloc(n);
    int out;
    memset(m, 'q', n);
    zset_init(&z);
    ck_assert_int_eq(zset_add(a, &z, &redis_limits, m, n, 1, 0, &out, NULL), ZSET_TOOBIG);
    ck_assert_uint_eq(zset_len(&z), 0);
    /* The longest that fits works. */
    ck_assert_int_eq(zset_add(a, &z, &redis_limits, m, ZSET_MEMBER_MAX, 1, 0, &out, NULL), ZSET_OK);
    ck_assert_int_eq(zset_verify(a, &z), 0);
    zset_free(a, &z);
    free(m);
    arena_heap_destroy(a, 1);
}
END_TEST

/* Out of memory at the k-th allocation of an add, for every k the add
 * makes: the set stays exactly as it was and sound. */
static void oom_sweep(const struct zset_limits *lim, int base, const char *m)
{
    for (long k = 0; k < 4000; k++) {
        struct arena *a = arena_heap_new(0);
        struct zset z;
        char before[8192], after[8192], name[16];
        zset_init(&z);
        for (int i = 0; i < base; i++) {
            snprintf(name, sizeof(name), "e%d", i);
            add_ok(a, &z, lim, name, i % 7);
        }
        dump(a, &z, before, sizeof(before), true);
        size_t blocks = arena_heap_blocks(a);
        const char *enc = zset_encoding(&z);
        arena_heap_fail_after(a, k);
        int out;
        int rc = zset_add(a, &z, lim, m, strlen(m), 3.5, 0, &out, NULL);
        arena_heap_fail_after(a, -1);
        ck_assert_int_eq(zset_verify(a, &z), 0);
        if (rc == ZSET_NOMEM) {
            dump(a, &z, after, sizeof(after), true);
            ck_assert_str_eq(before, after);
            /* The conversion may stand when the insert after it fails:
             * the same members, in the other encoding. Leaks show at
             * destroy either way. */
            if (strcmp(enc, zset_encoding(&z)) == 0)
                ck_assert_uint_eq(arena_heap_blocks(a), blocks);
        } else {
            ck_assert_int_eq(rc, ZSET_OK);
            ck_assert_int_eq(out, ZADD_OUT_ADDED);
            ck_assert_uint_eq(zset_len(&z), (size_t)base + 1);
            zset_free(a, &z);
            arena_heap_destroy(a, 1);
            return;
        }
        zset_free(a, &z);
        arena_heap_destroy(a, 1);
    }
    ck_abort_msg("add never succeeded");
}

START_TEST(test_out_of_memory_leaves_set_whole)
{
    oom_sweep(&redis_limits, 0, "first");         /* compact block */
    oom_sweep(&redis_limits, 5, "grow");          /* compact growth */
    oom_sweep(&redis_limits, 128, "convert");     /* conversion */
    oom_sweep(&no_compact, 0, "first");           /* skiplist header + index */
    oom_sweep(&no_compact, 300, "node");          /* node, index entry, index growth */
}
END_TEST

struct scan_acc {
    int seen[300];
    int calls;
};

static void scan_cb(void *arg, const void *m, size_t mlen, double score)
{
    struct scan_acc *acc = arg;
    char buf[16];
    snprintf(buf, sizeof(buf), "%.*s", (int)mlen, (const char *)m);
    int i = atoi(buf + 1);
    ck_assert(score == i * 2);
    acc->seen[i]++;
    acc->calls++;
}

START_TEST(test_scan_visits_every_member)
{
    const struct zset_limits *lim = limits_for(_i);
    struct arena *a = arena_heap_new(0);
    struct zset z;
    char m[16];
    struct scan_acc acc;
    memset(&acc, 0, sizeof(acc));
    zset_init(&z);
    int n = _i == 0 ? 100 : 300;
    for (int i = 0; i < n; i++) {
        snprintf(m, sizeof(m), "s%d", i);
        add_ok(a, &z, lim, m, i * 2);
    }
    uint64_t cur = 0;
    int rounds = 0;
    do {
        cur = zset_scan(a, &z, cur, scan_cb, &acc);
        ck_assert_int_lt(++rounds, 100000);
    } while (cur != 0);
    if (_i == 0)
        ck_assert_int_eq(rounds, 1);
    for (int i = 0; i < n; i++)
        ck_assert_int_ge(acc.seen[i], 1);
    zset_free(a, &z);
    arena_heap_destroy(a, 1);
}
END_TEST

/* ---- randomized against a sorted array ---- */

struct ment {
    char m[12];
    size_t mlen;
    double s;
};

static int ment_cmp(const void *x, const void *y)
{
    const struct ment *a = x, *b = y;
    if (a->s != b->s)
        return a->s < b->s ? -1 : 1;
    return zsl_cmp(a->m, a->mlen, b->m, b->mlen);
}

static int model_find(struct ment *md, int n, const char *m, size_t mlen)
{
    for (int i = 0; i < n; i++)
        if (md[i].mlen == mlen && memcmp(md[i].m, m, mlen) == 0)
            return i;
    return -1;
}

static void check_against_model(struct arena *a, struct zset *z, struct ment *md, int n)
{
    struct zset_iter it;
    struct zset_entry e;
    ck_assert_int_eq(zset_verify(a, z), 0);
    ck_assert_uint_eq(zset_len(z), (size_t)n);
    qsort(md, (size_t)n, sizeof(*md), ment_cmp);
    if (n == 0)
        return;
    /* One assertion per walk, naming the first rank that differs: Check
     * sends every passing assertion to its parent. */
    int r = 0;
    zset_iter_rank(&it, a, z, 0, (size_t)n - 1, false);
    while (r < n && zset_iter_next(&it, &e) && e.mlen == md[r].mlen &&
           memcmp(e.m, md[r].m, e.mlen) == 0 && e.score == md[r].s)
        r++;
    ck_assert_msg(r == n, "rank %d of %d: want %.*s (%g)", r, n, (int)md[r].mlen, md[r].m, md[r].s);
    ck_assert(!zset_iter_next(&it, &e));
    zset_iter_rank(&it, a, z, 0, (size_t)n - 1, true);
    r = n - 1;
    while (r >= 0 && zset_iter_next(&it, &e) && memcmp(e.m, md[r].m, e.mlen) == 0)
        r--;
    ck_assert_msg(r < 0, "reverse, rank %d of %d: want %.*s", r, n, (int)md[r].mlen, md[r].m);
    int i = rand() % n;
    ck_assert_int_eq(zset_rank(a, z, md[i].m, md[i].mlen, false, NULL), i);
    ck_assert_int_eq(zset_rank(a, z, md[i].m, md[i].mlen, true, NULL), n - 1 - i);
}

static void random_run(const struct zset_limits *lim, unsigned seed, int steps, bool same_score)
{
    struct arena *a = arena_heap_new(0);
    struct zset z;
    struct ment md[400];
    int n = 0;
    srand(seed);
    zset_init(&z);
    for (int step = 0; step < steps; step++) {
        char m[12];
        size_t mlen = (size_t)snprintf(m, sizeof(m), "%x", rand() % 300);
        if (rand() % 5 == 0)
            mlen = (size_t)(rand() % 3);      /* short prefixes, the empty member */
        double s = same_score ? 0 : (double)(rand() % 20) / 2 - 5;
        int op = rand() % 10, out;
        int at = model_find(md, n, m, mlen);
        if (op < 5) {
            int flags = rand() % 4 == 0 ? ZADD_IN_INCR : 0;
            if (rand() % 6 == 0)
                flags |= (rand() & 1) ? ZADD_IN_GT : ZADD_IN_LT;
            double ns = 0;
            ck_assert_int_eq(zset_add(a, &z, lim, m, mlen, s, flags, &out, &ns), ZSET_OK);
            double want = (flags & ZADD_IN_INCR) && at >= 0 ? md[at].s + s : s;
            bool move = at < 0 || !(((flags & ZADD_IN_GT) && want <= md[at].s) ||
                                    ((flags & ZADD_IN_LT) && want >= md[at].s));
            if (at < 0) {
                memcpy(md[n].m, m, mlen);
                md[n].mlen = mlen;
                md[n].s = want;
                n++;
                ck_assert_int_eq(out, ZADD_OUT_ADDED);
            } else if (move) {
                ck_assert_int_eq(out, want != md[at].s ? ZADD_OUT_UPDATED : 0);
                md[at].s = want;
            } else {
                ck_assert_int_eq(out, ZADD_OUT_NOP);
            }
        } else if (op < 7) {
            ck_assert_int_eq(zset_del(a, &z, m, mlen), at >= 0);
            if (at >= 0)
                md[at] = md[--n];
        } else if (op == 7 && n > 0) {
            struct zrange_score r = srange(s, rand() & 1, s + rand() % 4, rand() & 1);
            size_t want = 0;
            for (int i = 0; i < n; i++)
                want += zsl_score_gte_min(md[i].s, &r) && zsl_score_lte_max(md[i].s, &r);
            ck_assert_uint_eq(zset_count_score(a, &z, &r), want);
            if (rand() % 4 == 0) {
                ck_assert_uint_eq(zset_remove_score(a, &z, &r), want);
                for (int i = 0; i < n;)
                    if (zsl_score_gte_min(md[i].s, &r) && zsl_score_lte_max(md[i].s, &r))
                        md[i] = md[--n];
                    else
                        i++;
            }
        } else if (op == 8 && n > 0) {
            qsort(md, (size_t)n, sizeof(*md), ment_cmp);
            size_t st = (size_t)(rand() % n), en = st + (size_t)(rand() % 4);
            if (en >= (size_t)n)
                en = (size_t)n - 1;
            ck_assert_uint_eq(zset_remove_rank(a, &z, st, en), en - st + 1);
            memmove(&md[st], &md[en + 1], ((size_t)n - en - 1) * sizeof(*md));
            n -= (int)(en - st + 1);
        } else if (op == 9 && n > 0) {
            char lo[4], hi[4];
            snprintf(lo, sizeof(lo), "%c%x", (rand() & 1) ? '[' : '(', rand() % 16);
            snprintf(hi, sizeof(hi), "%c%x", (rand() & 1) ? '[' : '(', rand() % 16);
            struct zrange_lex l = lr(rand() % 8 == 0 ? "-" : lo, rand() % 8 == 0 ? "+" : hi);
            size_t cnt = zset_count_lex(a, &z, &l);
            if (same_score) {
                /* Scores tie: lex ranges are defined, check them. */
                size_t want = 0;
                for (int i = 0; i < n; i++)
                    want += zsl_lex_gte_min(md[i].m, md[i].mlen, &l) && zsl_lex_lte_max(md[i].m, md[i].mlen, &l);
                ck_assert_uint_eq(cnt, want);
                if (rand() % 4 == 0) {
                    ck_assert_uint_eq(zset_remove_lex(a, &z, &l), want);
                    for (int i = 0; i < n;)
                        if (zsl_lex_gte_min(md[i].m, md[i].mlen, &l) && zsl_lex_lte_max(md[i].m, md[i].mlen, &l))
                            md[i] = md[--n];
                        else
                            i++;
                }
            }
        }
        if (step % 50 == 0 || step == steps - 1)
            check_against_model(a, &z, md, n);
    }
    zset_free(a, &z);
    arena_heap_destroy(a, 1);
}

START_TEST(test_random_operations_match_a_sorted_array)
{
    static const struct zset_limits small = { 16, 8 };
    random_run(&redis_limits, 1, 4000, false);
    random_run(&no_compact, 2, 4000, false);
    random_run(&small, 3, 4000, false);
    random_run(&redis_limits, 4, 4000, true);
    random_run(&no_compact, 5, 4000, true);
}
END_TEST

START_TEST(test_million_members_rank_and_range)
{
    struct arena *a = arena_heap_new(0);
    struct zset z;
    char m[24];
    const int n = 1000000;
    struct timespec t0, t1, t2;
    zset_init(&z);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* Scores in a scrambled order so inserts land all over the list. One
     * assertion for the million adds, naming the first that failed: Check
     * sends every passing assertion to its parent. */
    int add_rc = ZSET_OK, add_out = ZADD_OUT_ADDED, bad = -1;
    for (int i = 0; i < n && bad < 0; i++) {
        int k = (int)(((uint64_t)i * 2654435761u) % (uint64_t)n);
        int len = snprintf(m, sizeof(m), "user:%d", k);
        add_out = -1;
        add_rc = zset_add(a, &z, &redis_limits, m, (size_t)len, k, 0, &add_out, NULL);
        if (add_rc != ZSET_OK || add_out != ZADD_OUT_ADDED)
            bad = i;
    }
    ck_assert_msg(bad < 0, "add %d, %s: returned %d (want %d), out %d (want %d)", bad, m, add_rc, ZSET_OK,
                  add_out, ZADD_OUT_ADDED);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_uint_eq(zset_len(&z), (size_t)n);
    ck_assert_str_eq(zset_encoding(&z), "skiplist");
    for (int k = 0; k < n; k += 9973) {
        int len = snprintf(m, sizeof(m), "user:%d", k);
        ck_assert_int_eq(zset_rank(a, &z, m, (size_t)len, false, NULL), k);
        ck_assert_int_eq(zset_rank(a, &z, m, (size_t)len, true, NULL), n - 1 - k);
    }
    /* Top 10 from the high end, as a leaderboard asks. */
    struct zset_iter it;
    struct zset_entry e;
    zset_iter_rank(&it, a, &z, 0, 9, true);
    for (int i = 0; i < 10; i++) {
        ck_assert(zset_iter_next(&it, &e));
        ck_assert(e.score == n - 1 - i);
    }
    ck_assert(!zset_iter_next(&it, &e));
    struct zrange_score r = srange(500000, false, 500099, true);
    ck_assert_uint_eq(zset_count_score(a, &z, &r), 99);
    zset_iter_score(&it, a, &z, &r, false);
    ck_assert(zset_iter_next(&it, &e));
    ck_assert(e.score == 500000);
    /* Moving one member to the top keeps every rank right. */
    int out;
    ck_assert_int_eq(zset_add(a, &z, &redis_limits, "user:0", 6, 1e9, 0, &out, NULL), ZSET_OK);
    ck_assert_int_eq(zset_rank(a, &z, "user:0", 6, true, NULL), 0);
    ck_assert_int_eq(zset_rank(a, &z, "user:1", 6, false, NULL), 0);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    ck_assert_int_eq(zset_verify(a, &z), 0);
    printf("zset 1M: build %.2fs, lookups %.4fs\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
           (double)(t2.tv_sec - t1.tv_sec) + (double)(t2.tv_nsec - t1.tv_nsec) / 1e9);
    zset_free(a, &z);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_weigh_clears_nan_of_inf_times_zero)
{
    ck_assert(zset_weigh(INFINITY, 0) == 0 && !signbit(zset_weigh(INFINITY, 0)));
    ck_assert(zset_weigh(0, -INFINITY) == 0);
    ck_assert(zset_weigh(2, 3) == 6);
    ck_assert(zset_weigh(-INFINITY, 2) == -INFINITY);
    /* -0 stays -0: a skiplist result shows it. */
    ck_assert(zset_weigh(0, -2) == 0 && signbit(zset_weigh(0, -2)));
}
END_TEST

START_TEST(test_aggregate_sum_min_max_as_redis)
{
    double acc = INFINITY;
    zset_aggregate(&acc, -INFINITY, ZAGG_SUM);
    ck_assert(acc == 0 && !isnan(acc));         /* inf + -inf is 0 */
    acc = 5;
    zset_aggregate(&acc, NAN, ZAGG_SUM);
    ck_assert(acc == 0);                        /* a NaN sum is 0 too */
    acc = 1.5;
    zset_aggregate(&acc, 2.25, ZAGG_SUM);
    ck_assert(acc == 3.75);
    acc = 5;
    zset_aggregate(&acc, NAN, ZAGG_MIN);
    ck_assert(acc == 5);                        /* NaN never wins */
    zset_aggregate(&acc, NAN, ZAGG_MAX);
    ck_assert(acc == 5);
    zset_aggregate(&acc, -INFINITY, ZAGG_MIN);
    ck_assert(acc == -INFINITY);
    zset_aggregate(&acc, 7, ZAGG_MAX);
    ck_assert(acc == 7);
    zset_aggregate(&acc, 3, ZAGG_MAX);
    ck_assert(acc == 7);
    zset_aggregate(&acc, 9, ZAGG_MIN);
    ck_assert(acc == 7);
}
END_TEST

static Suite *zset_suite(void)
{
    Suite *s = suite_create("zset");
    TCase *tc = tcase_create("ops");
    /* The loop index picks the encoding: 0 compact, 1 skiplist. */
    tcase_add_loop_test(tc, test_orders_by_score_then_member_bytes, 0, 2);
    tcase_add_loop_test(tc, test_add_options_as_redis_zadd, 0, 2);
    tcase_add_loop_test(tc, test_score_change_moves_member_both_ways, 0, 2);
    tcase_add_loop_test(tc, test_del_rank_and_reverse_rank, 0, 2);
    tcase_add_loop_test(tc, test_ranges_by_rank_score_and_lex, 0, 2);
    tcase_add_loop_test(tc, test_remove_ranges, 0, 2);
    tcase_add_loop_test(tc, test_scan_visits_every_member, 0, 2);
    tcase_add_test(tc, test_converts_after_128_entries_and_never_back);
    tcase_add_test(tc, test_converts_on_a_member_longer_than_64);
    tcase_add_test(tc, test_too_long_member_is_refused);
    tcase_add_test(tc, test_out_of_memory_leaves_set_whole);
    tcase_add_test(tc, test_random_operations_match_a_sorted_array);
    tcase_add_test(tc, test_weigh_clears_nan_of_inf_times_zero);
    tcase_add_test(tc, test_aggregate_sum_min_max_as_redis);
    suite_add_tcase(s, tc);
    TCase *big = tcase_create("big");
    tcase_set_timeout(big, 300);
    tcase_add_test(big, test_million_members_rank_and_range);
    suite_add_tcase(s, big);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(zset_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
