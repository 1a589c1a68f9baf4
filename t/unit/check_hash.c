/*
 * Unit tests for types/hash over the heap arena: the listpack encoding
 * (insertion order, in-place replacement of shorter and longer values,
 * deletes), conversion to the dictionary at each threshold and never back,
 * out-of-memory paths that leave the hash as it was, and that the last
 * delete frees every block.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena_heap.h"
#include "types/hash.h"

static const struct hash_limits lim = {128, 64};

static int set_s(struct arena *a, struct hash_root *r, const char *f, const char *v, const struct hash_limits *l)
{
    return hash_set(a, r, f, strlen(f), v, strlen(v), l);
}

static void expect(struct arena *a, struct hash_root *r, const char *f, const char *v)
{
    size_t vl = 0;
    const char *p = hash_get(a, r, f, strlen(f), &vl);
    if (v == NULL) {
        ck_assert_ptr_null(p);
        return;
    }
    ck_assert_msg(p != NULL, "field %s missing", f);
    ck_assert_uint_eq(vl, strlen(v));
    ck_assert(memcmp(p, v, vl) == 0);
}

struct order {
    char buf[4096];
    size_t n;
};

static void collect(void *arg, const void *k, size_t klen, const void *v, size_t vlen)
{
    struct order *o = arg;
    o->n += (size_t)snprintf(o->buf + o->n, sizeof(o->buf) - o->n, "%.*s=%.*s,", (int)klen, (const char *)k,
                             (int)vlen, (const char *)v);
}

static const char *order_of(struct arena *a, struct hash_root *r, struct order *o)
{
    o->n = 0;
    o->buf[0] = '\0';
    hash_foreach(a, r, collect, o);
    return o->buf;
}

START_TEST(test_listpack_keeps_insertion_order_and_replaces_in_place)
{
    struct arena *a = arena_heap_new(0);
    struct hash_root r;
    struct order o;
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(set_s(a, &r, "a", "1", &lim), 1);
    ck_assert_int_eq(set_s(a, &r, "b", "2", &lim), 1);
    ck_assert_int_eq(set_s(a, &r, "c", "3", &lim), 1);
    ck_assert_str_eq(order_of(a, &r, &o), "a=1,b=2,c=3,");
    ck_assert_int_eq(set_s(a, &r, "b", "a much longer value", &lim), 0);
    ck_assert_str_eq(order_of(a, &r, &o), "a=1,b=a much longer value,c=3,");
    ck_assert_int_eq(set_s(a, &r, "b", "", &lim), 0);
    ck_assert_str_eq(order_of(a, &r, &o), "a=1,b=,c=3,");
    ck_assert_uint_eq(hash_len(&r), 3);
    ck_assert_str_eq(hash_encoding(&r), "listpack");
    ck_assert_int_eq(hash_del(a, &r, "a", 1), 1);
    ck_assert_int_eq(hash_del(a, &r, "a", 1), 0);
    ck_assert_str_eq(order_of(a, &r, &o), "b=,c=3,");
    expect(a, &r, "c", "3");
    expect(a, &r, "a", NULL);
    hash_free(a, &r);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_empty_field_is_a_field)
{
    struct arena *a = arena_heap_new(0);
    struct hash_root r;
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(set_s(a, &r, "", "", &lim), 1);
    expect(a, &r, "", "");
    ck_assert_uint_eq(hash_len(&r), 1);
    ck_assert_int_eq(hash_del(a, &r, "", 0), 1);
    ck_assert_uint_eq(hash_len(&r), 0);
    ck_assert_uint_eq(arena_heap_blocks(a), 0);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_converts_past_max_entries_and_never_back)
{
    struct arena *a = arena_heap_new(0);
    struct hash_root r;
    const struct hash_limits small = {4, 64};
    char f[16], v[16];
    memset(&r, 0, sizeof(r));
    for (int i = 0; i < 4; i++) {
        snprintf(f, sizeof(f), "f%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        ck_assert_int_eq(set_s(a, &r, f, v, &small), 1);
    }
    ck_assert_str_eq(hash_encoding(&r), "listpack");
    /* Replacing keeps the count: no conversion. */
    ck_assert_int_eq(set_s(a, &r, "f0", "again", &small), 0);
    ck_assert_str_eq(hash_encoding(&r), "listpack");
    ck_assert_int_eq(set_s(a, &r, "f4", "v4", &small), 1);
    ck_assert_str_eq(hash_encoding(&r), "hashtable");
    ck_assert_uint_eq(hash_len(&r), 5);
    expect(a, &r, "f0", "again");
    for (int i = 1; i < 5; i++) {
        snprintf(f, sizeof(f), "f%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        expect(a, &r, f, v);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(f, sizeof(f), "f%d", i);
        ck_assert_int_eq(hash_del(a, &r, f, strlen(f)), 1);
    }
    ck_assert_str_eq(hash_encoding(&r), "hashtable");
    ck_assert_uint_eq(hash_len(&r), 1);
    hash_free(a, &r);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_converts_on_long_field_or_value)
{
    struct arena *a = arena_heap_new(0);
    struct hash_root r;
    char big[66];
    memset(big, 'x', 65);
    big[65] = '\0';
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(set_s(a, &r, "a", "1", &lim), 1);
    big[64] = '\0';
    /* 64 bytes is still within hash-max-listpack-value. */
    ck_assert_int_eq(set_s(a, &r, "b", big, &lim), 1);
    ck_assert_str_eq(hash_encoding(&r), "listpack");
    big[64] = 'x';
    ck_assert_int_eq(set_s(a, &r, "c", big, &lim), 1);
    ck_assert_str_eq(hash_encoding(&r), "hashtable");
    expect(a, &r, "a", "1");
    expect(a, &r, "c", big);
    hash_free(a, &r);

    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(set_s(a, &r, big, "v", &lim), 1);
    ck_assert_str_eq(hash_encoding(&r), "hashtable");
    expect(a, &r, big, "v");
    hash_free(a, &r);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_many_fields_in_listpack_survive_growth_and_shrink)
{
    struct arena *a = arena_heap_new(0);
    struct hash_root r;
    const struct hash_limits wide = {1000, 64};
    char f[32], v[64];
    memset(&r, 0, sizeof(r));
    for (int i = 0; i < 600; i++) {
        snprintf(f, sizeof(f), "field-%d", i);
        snprintf(v, sizeof(v), "value-%d-%0*d", i, i % 40, 0);
        ck_assert_int_eq(set_s(a, &r, f, v, &wide), 1);
    }
    ck_assert_str_eq(hash_encoding(&r), "listpack");
    for (int i = 0; i < 600; i += 3) {
        snprintf(f, sizeof(f), "field-%d", i);
        ck_assert_int_eq(hash_del(a, &r, f, strlen(f)), 1);
    }
    for (int i = 0; i < 600; i++) {
        snprintf(f, sizeof(f), "field-%d", i);
        snprintf(v, sizeof(v), "value-%d-%0*d", i, i % 40, 0);
        expect(a, &r, f, i % 3 == 0 ? NULL : v);
    }
    ck_assert_uint_eq(hash_len(&r), 400);
    ck_assert_uint_eq(arena_heap_blocks(a), 1);
    hash_free(a, &r);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_no_memory_leaves_hash_unchanged)
{
    struct arena *a = arena_heap_new(0);
    struct hash_root r, before;
    const struct hash_limits small = {2, 64};
    struct order o1, o2;
    memset(&r, 0, sizeof(r));
    arena_heap_fail_after(a, 0);
    ck_assert_int_eq(set_s(a, &r, "a", "1", &small), -1);
    ck_assert_uint_eq(hash_len(&r), 0);
    arena_heap_fail_after(a, -1);
    ck_assert_int_eq(set_s(a, &r, "a", "1", &small), 1);
    ck_assert_int_eq(set_s(a, &r, "b", "2", &small), 1);
    before = r;
    order_of(a, &r, &o1);
    /* The third field needs the dictionary: each allocation it takes fails
     * in turn, and every time the listpack is left whole. */
    for (long n = 0; n < 6; n++) {
        arena_heap_fail_after(a, n);
        size_t blocks = arena_heap_blocks(a);
        int rc = set_s(a, &r, "c", "3", &small);
        arena_heap_fail_after(a, -1);
        if (rc == 1)
            break;
        ck_assert_int_eq(rc, -1);
        ck_assert_uint_eq(arena_heap_blocks(a), blocks);
        ck_assert(memcmp(&r, &before, sizeof(r)) == 0);
        ck_assert_str_eq(order_of(a, &r, &o2), o1.buf);
    }
    ck_assert_str_eq(hash_encoding(&r), "hashtable");
    expect(a, &r, "c", "3");
    hash_free(a, &r);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_last_delete_frees_every_block)
{
    struct arena *a = arena_heap_new(0);
    struct hash_root r;
    char f[16];
    memset(&r, 0, sizeof(r));
    for (int i = 0; i < 300; i++) {
        snprintf(f, sizeof(f), "%d", i);
        ck_assert_int_ge(set_s(a, &r, f, "v", &lim), 0);
    }
    ck_assert_str_eq(hash_encoding(&r), "hashtable");
    for (int i = 0; i < 300; i++) {
        snprintf(f, sizeof(f), "%d", i);
        ck_assert_int_eq(hash_del(a, &r, f, strlen(f)), 1);
    }
    ck_assert_uint_eq(hash_len(&r), 0);
    ck_assert_uint_eq(arena_heap_blocks(a), 0);
    arena_heap_destroy(a, 1);
}
END_TEST

START_TEST(test_random_and_scan_cover_both_encodings)
{
    struct arena *a = arena_heap_new(0);
    struct hash_root r;
    char f[16];
    const void *k, *v;
    size_t kl, vl;
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(hash_random(a, &r, 7, &k, &kl, &v, &vl), -1);
    for (int round = 0; round < 2; round++) {
        int n = round == 0 ? 10 : 200;
        for (int i = 0; i < n; i++) {
            snprintf(f, sizeof(f), "%d", i);
            hash_set(a, &r, f, strlen(f), f, strlen(f), &lim);
        }
        int seen[200] = {0};
        /* Asserts only on a wrong draw: Check sends each passing assertion
         * to its parent. */
        for (uint64_t x = 0; x < 20000; x++) {
            int rc = hash_random(a, &r, x, &k, &kl, &v, &vl);
            if (rc != 0 || kl != vl || memcmp(k, v, kl) != 0)
                ck_abort_msg("draw %llu: %d, field %.*s, value %.*s", (unsigned long long)x, rc,
                             rc ? 0 : (int)kl, rc ? "" : (const char *)k, rc ? 0 : (int)vl,
                             rc ? "" : (const char *)v);
            snprintf(f, sizeof(f), "%.*s", (int)kl, (const char *)k);
            seen[atoi(f)]++;
        }
        for (int i = 0; i < n; i++)
            ck_assert_int_gt(seen[i], 0);
        struct order o;
        o.n = 0;
        uint64_t cur = 0;
        int calls = 0;
        do {
            cur = hash_scan(a, &r, cur, collect, &o);
            calls++;
        } while (cur != 0 && o.n < sizeof(o.buf) - 64);
        ck_assert_int_eq(calls > 1, round == 1);
        ck_assert_str_eq(hash_encoding(&r), round == 0 ? "listpack" : "hashtable");
    }
    hash_free(a, &r);
    arena_heap_destroy(a, 1);
}
END_TEST

static Suite *hash_suite(void)
{
    Suite *s = suite_create("hash");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_listpack_keeps_insertion_order_and_replaces_in_place);
    tcase_add_test(tc, test_empty_field_is_a_field);
    tcase_add_test(tc, test_converts_past_max_entries_and_never_back);
    tcase_add_test(tc, test_converts_on_long_field_or_value);
    tcase_add_test(tc, test_many_fields_in_listpack_survive_growth_and_shrink);
    tcase_add_test(tc, test_no_memory_leaves_hash_unchanged);
    tcase_add_test(tc, test_last_delete_frees_every_block);
    tcase_add_test(tc, test_random_and_scan_cover_both_encodings);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hash_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
