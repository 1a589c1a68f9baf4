/*
 * Unit tests for util/fmt.h: the integer writers against printf, and
 * fmt_g17's fast path for whole numbers against "%.17g" itself, which is
 * what Redis replies and what the fast path must never differ from.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/fmt.h"

/* fmt_g17(d) must be byte for byte "%.17g" of d. */
static void same_as_printf(double d)
{
    char want[64], got[64];
    int n = snprintf(want, sizeof(want), "%.17g", d);
    size_t k = fmt_g17(got, sizeof(got), d);
    got[k] = '\0';
    /* Asserts only on a mismatch: Check sends each passing assertion to its
     * parent, and this is called 600 thousand times. */
    if ((size_t)n != k || strcmp(want, got) != 0)
        ck_abort_msg("%%.17g of %a: want \"%s\", got \"%s\"", d, want, got);
}

START_TEST(test_integers_match_printf)
{
    char buf[32];
    const int64_t v[] = {0, 1, -1, 9, 10, 99, 100, INT64_MAX, INT64_MIN, 1234567890123LL};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char want[32];
        snprintf(want, sizeof(want), "%lld", (long long)v[i]);
        size_t n = fmt_i64(buf, v[i]);
        buf[n] = '\0';
        ck_assert_str_eq(buf, want);
    }
}
END_TEST

START_TEST(test_g17_whole_numbers_and_edges)
{
    const double v[] = {0.0, -0.0, 1, -1, 12345, -98765, 1e15, 1e16, 99999999999999984.0,
                        1e17, -1e17, 1e17 + 16, 2e17, 9007199254740992.0, 9007199254740993.0,
                        4503599627370495.5, 0.5, -0.5, 5.7, 1e-300, DBL_MAX, -DBL_MAX, DBL_MIN,
                        1e300, 123456789.25, (double)INT64_MAX, (double)INT64_MIN};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        same_as_printf(v[i]);
}
END_TEST

START_TEST(test_g17_random_doubles)
{
    unsigned seed = 12345;
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = 0;
        for (int b = 0; b < 4; b++)
            bits = bits << 16 | (uint64_t)(rand_r(&seed) & 0xffff);
        double d;
        memcpy(&d, &bits, sizeof(d));
        if (!isfinite(d))
            continue;
        same_as_printf(d);
        /* and whole numbers of every size, where the fast path runs */
        same_as_printf(trunc(ldexp((double)(bits >> 11), -(int)(bits % 60))));
        same_as_printf(-(double)(int64_t)(bits >> (bits % 64)));
    }
}
END_TEST

static Suite *fmt_suite(void)
{
    Suite *s = suite_create("fmt");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_integers_match_printf);
    tcase_add_test(tc, test_g17_whole_numbers_and_edges);
    tcase_add_test(tc, test_g17_random_doubles);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fmt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
