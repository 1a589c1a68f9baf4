/*
 * Unit tests for types/adict over the heap arena (t/unit/arena_heap.c):
 * lookups, replacement with a value of another size, growth past one
 * bucket block into a directory of segments and shrinking back, the scan
 * cursor across resizes, out-of-memory paths that leave the dictionary
 * unchanged, and that freeing returns every block.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena_heap.h"
#include "types/adict.h"

static size_t keyname(char *buf, size_t cap, unsigned i)
{
    return (size_t)snprintf(buf, cap, "key:%u", i);
}

static void put(struct arena *a, struct adict *d, unsigned i)
{
    char k[32], v[32];
    size_t kl = keyname(k, sizeof(k), i);
    size_t vl = (size_t)snprintf(v, sizeof(v), "v%u", i * 7);
    int created = -1;
    /* Asserts only when the set fails: Check sends each passing assertion
     * to its parent, and the tests put tens of thousands of keys. */
    void *p = adict_set(a, d, k, kl, v, vl, &created);
    if (p == NULL || created != 1)
        ck_abort_msg("set %s: %s, created %d", k, p ? "stored" : "NULL", created);
}

static void expect(struct arena *a, struct adict *d, unsigned i, int present)
{
    char k[32], v[32];
    size_t kl = keyname(k, sizeof(k), i);
    size_t vl = (size_t)snprintf(v, sizeof(v), "v%u", i * 7), got = 0;
    void *p = adict_get(a, d, k, kl, &got);
    if (!present) {
        ck_assert_ptr_null(p);
        return;
    }
    if (p == NULL || got != vl || memcmp(p, v, vl) != 0)
        ck_abort_msg("get %s: %.*s (%zu bytes), want %s", k, p ? (int)got : 4, p ? (const char *)p : "NULL",
                     got, v);
}

START_TEST(test_set_get_del_round_trip)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    ck_assert_int_eq(adict_init(a, &d), 0);
    ck_assert_uint_eq(adict_count(&d), 0);
    ck_assert_ptr_null(adict_get(a, &d, "x", 1, NULL));
    for (unsigned i = 0; i < 100; i++)
        put(a, &d, i);
    ck_assert_uint_eq(adict_count(&d), 100);
    for (unsigned i = 0; i < 100; i++)
        expect(a, &d, i, 1);
    expect(a, &d, 100, 0);
    ck_assert_int_eq(adict_del(a, &d, "key:5", 5), 1);
    ck_assert_int_eq(adict_del(a, &d, "key:5", 5), 0);
    ck_assert_uint_eq(adict_count(&d), 99);
    expect(a, &d, 5, 0);
    expect(a, &d, 6, 1);
    adict_free(a, &d);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_empty_key_and_empty_value_are_entries)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    ck_assert_int_eq(adict_init(a, &d), 0);
    int created;
    ck_assert_ptr_nonnull(adict_set(a, &d, "", 0, "", 0, &created));
    ck_assert_int_eq(created, 1);
    size_t vl = 99;
    ck_assert_ptr_nonnull(adict_get(a, &d, "", 0, &vl));
    ck_assert_uint_eq(vl, 0);
    ck_assert_ptr_nonnull(adict_set(a, &d, "", 0, "abc", 3, &created));
    ck_assert_int_eq(created, 0);
    char *p = adict_get(a, &d, "", 0, &vl);
    ck_assert_uint_eq(vl, 3);
    ck_assert(memcmp(p, "abc", 3) == 0);
    ck_assert_uint_eq(adict_count(&d), 1);
    ck_assert_int_eq(adict_del(a, &d, "", 0), 1);
    ck_assert_uint_eq(adict_count(&d), 0);
    adict_free(a, &d);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_replace_with_other_length_keeps_one_entry)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    ck_assert_int_eq(adict_init(a, &d), 0);
    /* Same bucket neighbours around the replaced entry must stay linked. */
    for (unsigned i = 0; i < 50; i++)
        put(a, &d, i);
    size_t before = arena_heap_blocks(a);
    int created;
    const char *big = "a value that is much longer than the one before it";
    ck_assert_ptr_nonnull(adict_set(a, &d, "key:7", 5, big, strlen(big), &created));
    ck_assert_int_eq(created, 0);
    ck_assert_uint_eq(arena_heap_blocks(a), before);
    size_t vl;
    char *p = adict_get(a, &d, "key:7", 5, &vl);
    ck_assert_uint_eq(vl, strlen(big));
    ck_assert(memcmp(p, big, vl) == 0);
    for (unsigned i = 0; i < 50; i++)
        if (i != 7)
            expect(a, &d, i, 1);
    /* In place, same size: the pointer is the caller's to fill. */
    char *q = adict_set(a, &d, "key:7", 5, NULL, strlen(big), &created);
    ck_assert_ptr_eq(q, p);
    ck_assert_uint_eq(adict_count(&d), 50);
    adict_free(a, &d);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_values_are_eight_byte_aligned)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    ck_assert_int_eq(adict_init(a, &d), 0);
    for (unsigned i = 0; i < 20; i++) {
        char k[8];
        memset(k, 'k', sizeof(k));
        double score = i * 1.5;
        double *v = adict_set(a, &d, k, i % 8, &score, sizeof(score), NULL);
        ck_assert_ptr_nonnull(v);
        ck_assert_uint_eq((uintptr_t)v % 8, 0);
        ck_assert(*v == score);
    }
    adict_free(a, &d);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_growth_past_one_segment_and_shrink_back)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    ck_assert_int_eq(adict_init(a, &d), 0);
    const unsigned n = 3 * ADICT_SEG_BUCKETS + 123;
    for (unsigned i = 0; i < n; i++)
        put(a, &d, i);
    ck_assert_uint_eq(adict_count(&d), n);
    ck_assert_uint_gt((uint64_t)1 << d.log2, ADICT_SEG_BUCKETS);
    for (unsigned i = 0; i < n; i++)
        expect(a, &d, i, 1);
    for (unsigned i = 0; i < n; i += 2) {
        char k[32];
        ck_assert_int_eq(adict_del(a, &d, k, keyname(k, sizeof(k), i)), 1);
    }
    for (unsigned i = 0; i < n; i++)
        expect(a, &d, i, i % 2);
    for (unsigned i = 1; i < n; i += 2) {
        char k[32];
        ck_assert_int_eq(adict_del(a, &d, k, keyname(k, sizeof(k), i)), 1);
    }
    ck_assert_uint_eq(adict_count(&d), 0);
    ck_assert_uint_eq((uint64_t)1 << d.log2, ADICT_MIN_BUCKETS);
    /* Only the minimal table is left. */
    ck_assert_uint_eq(arena_heap_blocks(a), 1);
    adict_free(a, &d);
    arena_heap_destroy(a, 1);
}
END_TEST

struct seen {
    unsigned char *hits;
    unsigned n;
    unsigned visits;
};

static void mark(void *arg, const void *k, size_t klen, const void *v, size_t vlen)
{
    struct seen *s = arg;
    char buf[32];
    /* Asserts only on a wrong entry: Check sends each passing assertion
     * to its parent, and the walks visit a quarter million entries. */
    if (klen >= sizeof(buf))
        ck_abort_msg("a key of %zu bytes", klen);
    memcpy(buf, k, klen);
    buf[klen] = '\0';
    unsigned i = (unsigned)strtoul(buf + 4, NULL, 10);
    if (i >= s->n)
        ck_abort_msg("key %s: not one of the %u put", buf, s->n);
    char want[32];
    size_t wl = (size_t)snprintf(want, sizeof(want), "v%u", i * 7);
    if (vlen != wl || memcmp(v, want, vlen) != 0)
        ck_abort_msg("key %s: value %.*s, want %s", buf, (int)vlen, (const char *)v, want);
    if (s->hits[i] < 255)
        s->hits[i]++;
    s->visits++;
}

START_TEST(test_foreach_visits_each_entry_once)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    ck_assert_int_eq(adict_init(a, &d), 0);
    const unsigned n = 5000;
    for (unsigned i = 0; i < n; i++)
        put(a, &d, i);
    struct seen s = { calloc(n, 1), n, 0 };
    adict_foreach(a, &d, mark, &s);
    ck_assert_uint_eq(s.visits, n);
    for (unsigned i = 0; i < n; i++)
        ck_assert_uint_eq(s.hits[i], 1);
    free(s.hits);
    adict_free(a, &d);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_scan_returns_every_key_during_growth)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    ck_assert_int_eq(adict_init(a, &d), 0);
    const unsigned first = 1000, total = 20000;
    for (unsigned i = 0; i < first; i++)
        put(a, &d, i);
    struct seen s = { calloc(total, 1), total, 0 };
    uint64_t cur = 0;
    unsigned next = first, calls = 0;
    do {
        cur = adict_scan(a, &d, cur, mark, &s);
        /* The table doubles several times while the scan runs. */
        for (int j = 0; j < 8 && next < total; j++)
            put(a, &d, next++);
    } while (++calls < 1000000 && cur != 0);
    ck_assert_uint_lt(calls, 1000000);
    for (unsigned i = 0; i < first; i++)
        ck_assert_uint_ge(s.hits[i], 1);
    free(s.hits);
    adict_free(a, &d);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_scan_returns_every_key_during_shrink)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    ck_assert_int_eq(adict_init(a, &d), 0);
    const unsigned n = 20000, keep = 500;
    for (unsigned i = 0; i < n; i++)
        put(a, &d, i);
    struct seen s = { calloc(n, 1), n, 0 };
    uint64_t cur = 0;
    unsigned del = keep, calls = 0;
    do {
        cur = adict_scan(a, &d, cur, mark, &s);
        for (int j = 0; j < 64 && del < n; j++) {
            char k[32];
            size_t kl = keyname(k, sizeof(k), del++);
            if (adict_del(a, &d, k, kl) != 1)
                ck_abort_msg("delete %s failed", k);
        }
        ck_assert_uint_lt(++calls, 1000000);
    } while (cur != 0);
    ck_assert_uint_lt((uint64_t)1 << d.log2, n);
    for (unsigned i = 0; i < keep; i++)
        ck_assert_uint_ge(s.hits[i], 1);
    free(s.hits);
    adict_free(a, &d);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_scan_of_stable_dict_returns_each_once)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    ck_assert_int_eq(adict_init(a, &d), 0);
    const unsigned n = 9000;
    for (unsigned i = 0; i < n; i++)
        put(a, &d, i);
    struct seen s = { calloc(n, 1), n, 0 };
    uint64_t cur = 0;
    do
        cur = adict_scan(a, &d, cur, mark, &s);
    while (cur != 0);
    ck_assert_uint_eq(s.visits, n);
    ck_assert_uint_eq(adict_scan(a, &d, 0, mark, &s), adict_scan(a, &d, 0, mark, &s));
    free(s.hits);
    adict_free(a, &d);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_no_memory_leaves_dict_unchanged)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    arena_heap_fail_after(a, 0);
    ck_assert_int_eq(adict_init(a, &d), -1);
    arena_heap_fail_after(a, -1);
    ck_assert_int_eq(adict_init(a, &d), 0);
    for (unsigned i = 0; i < 4; i++)
        put(a, &d, i);
    size_t blocks = arena_heap_blocks(a);
    arena_heap_fail_after(a, 0);
    char k[32];
    size_t kl = keyname(k, sizeof(k), 99);
    ck_assert_ptr_null(adict_set(a, &d, k, kl, "x", 1, NULL));
    /* Replacing with a longer value needs a new entry too. */
    ck_assert_ptr_null(adict_set(a, &d, "key:1", 5, "longer value", 12, NULL));
    ck_assert_uint_eq(adict_count(&d), 4);
    ck_assert_uint_eq(arena_heap_blocks(a), blocks);
    for (unsigned i = 0; i < 4; i++)
        expect(a, &d, i, 1);
    expect(a, &d, 99, 0);
    adict_free(a, &d);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_growth_without_memory_keeps_working)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    ck_assert_int_eq(adict_init(a, &d), 0);
    unsigned log2 = d.log2;
    /* Entries succeed, every table allocation fails: one entry per call
     * succeeds before the failing resize, so allow exactly one each time. */
    for (unsigned i = 0; i < 200; i++) {
        arena_heap_fail_after(a, 1);
        put(a, &d, i);
    }
    arena_heap_fail_after(a, -1);
    ck_assert_uint_eq(d.log2, log2);
    for (unsigned i = 0; i < 200; i++)
        expect(a, &d, i, 1);
    /* With memory again, the next insert grows the table. */
    put(a, &d, 200);
    ck_assert_uint_gt(d.log2, log2);
    for (unsigned i = 0; i <= 200; i++)
        expect(a, &d, i, 1);
    adict_free(a, &d);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_too_large_entry_is_refused)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    ck_assert_int_eq(adict_init(a, &d), 0);
    ck_assert_ptr_null(adict_set(a, &d, "k", 1, NULL, ADICT_KV_MAX, NULL));
    ck_assert_ptr_nonnull(adict_set(a, &d, "k", 1, NULL, ADICT_KV_MAX - 1, NULL));
    ck_assert_uint_eq(adict_count(&d), 1);
    adict_free(a, &d);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_random_is_uniform_over_chained_entries)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    ck_assert_int_eq(adict_init(a, &d), 0);
    const void *k, *v;
    size_t kl, vl;
    ck_assert_int_eq(adict_random(a, &d, 1, &k, &kl, &v, &vl), -1);
    /* 40 entries in 64 buckets: chains of one, two and more. */
    const unsigned n = 40, draws = 40000;
    for (unsigned i = 0; i < n; i++)
        put(a, &d, i);
    struct seen s = { calloc(n, 1), n, 0 };
    unsigned *hits = calloc(n, sizeof(unsigned));
    uint64_t r;
    for (r = 0; r < draws; r++) {
        if (adict_random(a, &d, r, &k, &kl, &v, &vl) != 0)
            break;
        mark(&s, k, kl, v, vl);
        char buf[32];
        memcpy(buf, k, kl);
        buf[kl] = '\0';
        hits[strtoul(buf + 4, NULL, 10)]++;
    }
    ck_assert_msg(r == draws, "draw %llu: no entry", (unsigned long long)r);
    /* 1000 expected each, standard deviation about 31: 6 sigmas either way. */
    for (unsigned i = 0; i < n; i++) {
        ck_assert_uint_gt(hits[i], 810);
        ck_assert_uint_lt(hits[i], 1190);
    }
    free(hits);
    free(s.hits);
    adict_free(a, &d);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_every_operation_works_mid_resize)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    ck_assert_int_eq(adict_init(a, &d), 0);
    unsigned n = 0;
    /* Grow until a resize is under way with many buckets still to move. */
    while (n < 100000 && !(d.old != ARENA_NONE && n > 5000))
        put(a, &d, n++);
    ck_assert(d.old != ARENA_NONE);
    for (unsigned i = 0; i < n; i++)
        expect(a, &d, i, 1);
    struct seen s = { calloc(n, 1), n, 0 };
    adict_foreach(a, &d, mark, &s);
    ck_assert_uint_eq(s.visits, n);
    /* The loops here assert only on a failure: Check sends each passing
     * assertion to its parent. */
    for (unsigned i = 0; i < n; i++)
        if (s.hits[i] != 1)
            ck_abort_msg("foreach: entry %u visited %u times", i, (unsigned)s.hits[i]);
    memset(s.hits, 0, n);
    s.visits = 0;
    uint64_t cur = 0;
    do
        cur = adict_scan(a, &d, cur, mark, &s);
    while (cur != 0);
    ck_assert_uint_eq(s.visits, n);
    for (unsigned i = 0; i < n; i++)
        if (s.hits[i] != 1)
            ck_abort_msg("scan: entry %u returned %u times", i, (unsigned)s.hits[i]);
    const void *k, *v;
    size_t kl, vl;
    memset(s.hits, 0, n);
    uint64_t r;
    for (r = 0; r < 40 * (uint64_t)n; r++) {
        if (adict_random(a, &d, r, &k, &kl, &v, &vl) != 0)
            break;
        mark(&s, k, kl, v, vl);
    }
    ck_assert_msg(r == 40 * (uint64_t)n, "draw %llu: no entry", (unsigned long long)r);
    unsigned missed = 0;
    for (unsigned i = 0; i < n; i++)
        missed += s.hits[i] == 0;
    /* 40 draws per entry: a fair pick misses a given one with e^-40, some
     * one of the n (over 5000) with n * e^-40 < 1e-13. The dictionary's
     * seed differs per process, so each run draws anew; 20 draws per
     * entry missed one in about 1e-5 of the runs. */
    ck_assert_uint_eq(missed, 0);
    /* Deletes during the move, down to empty: back to the minimal table. */
    for (unsigned i = 0; i < n; i++) {
        char key[32];
        size_t klen = keyname(key, sizeof(key), i);
        if (adict_del(a, &d, key, klen) != 1)
            ck_abort_msg("delete %s failed", key);
    }
    ck_assert(d.old == ARENA_NONE);
    ck_assert_uint_eq((uint64_t)1 << d.log2, ADICT_MIN_BUCKETS);
    ck_assert_uint_eq(arena_heap_blocks(a), 1);
    free(s.hits);
    adict_free(a, &d);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_free_returns_every_block)
{
    struct arena *a = arena_heap_new(0);
    struct adict d;
    ck_assert_int_eq(adict_init(a, &d), 0);
    for (unsigned i = 0; i < 10000; i++)
        put(a, &d, i);
    ck_assert_uint_gt(arena_heap_blocks(a), 10000);
    adict_free(a, &d);
    ck_assert_uint_eq(arena_heap_blocks(a), 0);
    ck_assert_uint_eq(arena_heap_live(a), 0);
    arena_heap_destroy(a, 1);
}
END_TEST

static Suite *adict_suite(void)
{
    Suite *s = suite_create("adict");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_set_get_del_round_trip);
    tcase_add_test(tc, test_empty_key_and_empty_value_are_entries);
    tcase_add_test(tc, test_replace_with_other_length_keeps_one_entry);
    tcase_add_test(tc, test_values_are_eight_byte_aligned);
    tcase_add_test(tc, test_growth_past_one_segment_and_shrink_back);
    tcase_add_test(tc, test_foreach_visits_each_entry_once);
    tcase_add_test(tc, test_scan_returns_every_key_during_growth);
    tcase_add_test(tc, test_scan_returns_every_key_during_shrink);
    tcase_add_test(tc, test_scan_of_stable_dict_returns_each_once);
    tcase_add_test(tc, test_no_memory_leaves_dict_unchanged);
    tcase_add_test(tc, test_growth_without_memory_keeps_working);
    tcase_add_test(tc, test_too_large_entry_is_refused);
    tcase_add_test(tc, test_random_is_uniform_over_chained_entries);
    tcase_add_test(tc, test_every_operation_works_mid_resize);
    tcase_add_test(tc, test_free_returns_every_block);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(adict_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
