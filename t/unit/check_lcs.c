/*
 * Unit tests for util/lcs.c: lengths against a brute-force check on small
 * random strings, and the subsequence and ranges redis-server 7.0 gives
 * for the strings of its own documentation.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util/lcs.h"

struct ranges {
    struct lcs_range r[16];
    size_t n;
};

static void collect(void *arg, const struct lcs_range *r)
{
    struct ranges *rs = arg;
    if (rs->n < 16)
        rs->r[rs->n++] = *r;
}

/* Is s (len n) a subsequence of t (len m)? */
static int is_subseq(const uint8_t *s, size_t n, const uint8_t *t, size_t m)
{
    size_t i = 0;
    for (size_t j = 0; j < m && i < n; j++)
        if (s[i] == t[j])
            i++;
    return i == n;
}

START_TEST(test_redis_doc_example)
{
    const char *a = "ohmytext", *b = "mynewtext";
    uint32_t t[9 * 10];
    uint8_t out[16];
    struct ranges rs = {.n = 0};
    uint32_t n = lcs_fill(t, (const uint8_t *)a, 8, (const uint8_t *)b, 9);
    ck_assert_uint_eq(n, 6);
    lcs_walk(t, (const uint8_t *)a, 8, (const uint8_t *)b, 9, out, collect, &rs);
    ck_assert(memcmp(out, "mytext", 6) == 0);
    /* LCS key1 key2 IDX: 1) [4,7] [5,8]  2) [2,3] [0,1] */
    ck_assert_uint_eq(rs.n, 2);
    ck_assert_uint_eq(rs.r[0].a0, 4);
    ck_assert_uint_eq(rs.r[0].a1, 7);
    ck_assert_uint_eq(rs.r[0].b0, 5);
    ck_assert_uint_eq(rs.r[0].b1, 8);
    ck_assert_uint_eq(rs.r[1].a0, 2);
    ck_assert_uint_eq(rs.r[1].a1, 3);
    ck_assert_uint_eq(rs.r[1].b0, 0);
    ck_assert_uint_eq(rs.r[1].b1, 1);
}
END_TEST

START_TEST(test_empty)
{
    uint32_t t[4];
    struct ranges rs = {.n = 0};
    ck_assert_uint_eq(lcs_fill(t, (const uint8_t *)"", 0, (const uint8_t *)"abc", 3), 0);
    lcs_walk(t, (const uint8_t *)"", 0, (const uint8_t *)"abc", 3, NULL, collect, &rs);
    ck_assert_uint_eq(rs.n, 0);
}
END_TEST

/* The walk's result is a common subsequence of the computed length, its
 * ranges cover exactly that many matching bytes, and no longer common
 * subsequence exists (checked by dropping to an alphabet of two letters,
 * where a brute force over a's subsets is cheap). */
START_TEST(test_random_strings)
{
    unsigned seed = 3;
    for (int round = 0; round < 300; round++) {
        uint8_t a[12], b[12], out[12];
        uint32_t alen = (uint32_t)(rand_r(&seed) % 12), blen = (uint32_t)(rand_r(&seed) % 12);
        for (uint32_t i = 0; i < alen; i++)
            a[i] = (uint8_t)('a' + rand_r(&seed) % 2);
        for (uint32_t i = 0; i < blen; i++)
            b[i] = (uint8_t)('a' + rand_r(&seed) % 2);
        uint32_t t[13 * 13];
        struct ranges rs = {.n = 0};
        uint32_t n = lcs_fill(t, a, alen, b, blen);
        lcs_walk(t, a, alen, b, blen, out, collect, &rs);
        ck_assert(is_subseq(out, n, a, alen) && is_subseq(out, n, b, blen));
        uint32_t covered = 0;
        for (size_t k = 0; k < rs.n; k++) {
            ck_assert_uint_eq(rs.r[k].a1 - rs.r[k].a0, rs.r[k].b1 - rs.r[k].b0);
            ck_assert(memcmp(a + rs.r[k].a0, b + rs.r[k].b0, rs.r[k].a1 - rs.r[k].a0 + 1) == 0);
            covered += rs.r[k].a1 - rs.r[k].a0 + 1;
        }
        ck_assert_uint_eq(covered, n);
        uint32_t best = 0;
        for (uint32_t mask = 0; mask < (1u << alen); mask++) {
            uint8_t s[12];
            uint32_t k = 0;
            for (uint32_t i = 0; i < alen; i++)
                if (mask & (1u << i))
                    s[k++] = a[i];
            if (k > best && is_subseq(s, k, b, blen))
                best = k;
        }
        ck_assert_uint_eq(n, best);
    }
}
END_TEST

static Suite *lcs_suite(void)
{
    Suite *s = suite_create("lcs");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_redis_doc_example);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_random_strings);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lcs_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
