/*
 * Unit tests for per-prefix key statistics (src/stats/prefix_stats.c):
 * memcached's prefix rule, the dump format byte for byte, the cap, and
 * counting from several threads at once. No sockets, no server.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats/prefix_stats.h"

static void setup(void)
{
    prefix_stats_setup(':', true);
}

static void teardown(void)
{
    prefix_stats_teardown();
}

static void rec(const char *key, enum prefix_op op, bool hit)
{
    prefix_stats_record(key, strlen(key), op, hit);
}

static char *dump_str(void)
{
    size_t n = 0;
    char *d = prefix_stats_dump(&n);
    ck_assert_ptr_nonnull(d);
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, d, n);
    s[n] = '\0';
    free(d);
    return s;
}

START_TEST(test_dump_is_end_alone_when_nothing_counted)
{
    char *s = dump_str();
    ck_assert_str_eq(s, "END\r\n");
    free(s);
}
END_TEST

/* The sequence of memcached's t/stats-detail.t, on the module alone. */
START_TEST(test_dump_lines_match_memcached_format)
{
    rec("foo:123", PREFIX_SET, false);
    char *s = dump_str();
    ck_assert_str_eq(s, "PREFIX foo get 0 hit 0 set 1 del 0\r\nEND\r\n");
    free(s);
    rec("foo:123", PREFIX_GET, true);
    rec("foo:124", PREFIX_GET, false);
    rec("foo:125", PREFIX_DEL, false);
    s = dump_str();
    ck_assert_str_eq(s, "PREFIX foo get 2 hit 1 set 1 del 1\r\nEND\r\n");
    free(s);
}
END_TEST

START_TEST(test_key_without_delimiter_is_not_counted)
{
    rec("plainkey", PREFIX_SET, false);
    rec("", PREFIX_GET, false);
    ck_assert_uint_eq(prefix_stats_count(), 0);
}
END_TEST

START_TEST(test_prefix_is_up_to_first_delimiter_and_may_be_empty)
{
    struct prefix_counts n;

    rec("a:b:c", PREFIX_GET, true);
    rec(":x", PREFIX_SET, false);
    ck_assert(prefix_stats_find("a", 1, &n));
    ck_assert_uint_eq(n.get, 1);
    ck_assert_uint_eq(n.hit, 1);
    ck_assert(!prefix_stats_find("a:b", 3, &n));
    ck_assert(prefix_stats_find("", 0, &n));
    ck_assert_uint_eq(n.set, 1);
}
END_TEST

/* memcached's scan for the delimiter stops at a NUL byte. */
START_TEST(test_nul_before_delimiter_means_no_prefix)
{
    prefix_stats_record("a\0b:c", 5, PREFIX_SET, false);
    ck_assert_uint_eq(prefix_stats_count(), 0);
    prefix_stats_record("ab:\0c", 5, PREFIX_SET, false);
    ck_assert_uint_eq(prefix_stats_count(), 1);
}
END_TEST

START_TEST(test_prefixes_differing_in_length_are_distinct)
{
    struct prefix_counts n;

    rec("ab:1", PREFIX_SET, false);
    rec("abc:1", PREFIX_SET, false);
    rec("abc:2", PREFIX_SET, false);
    ck_assert_uint_eq(prefix_stats_count(), 2);
    ck_assert(prefix_stats_find("ab", 2, &n));
    ck_assert_uint_eq(n.set, 1);
    ck_assert(prefix_stats_find("abc", 3, &n));
    ck_assert_uint_eq(n.set, 2);
}
END_TEST

START_TEST(test_other_delimiter)
{
    struct prefix_counts n;

    prefix_stats_teardown();
    prefix_stats_setup('/', true);
    rec("user/1:x", PREFIX_DEL, false);
    rec("user:1", PREFIX_DEL, false);
    ck_assert(prefix_stats_find("user", 4, &n));
    ck_assert_uint_eq(n.del, 1);
    ck_assert_uint_eq(prefix_stats_count(), 1);
}
END_TEST

START_TEST(test_clear_forgets_every_prefix)
{
    rec("a:1", PREFIX_SET, false);
    rec("b:1", PREFIX_SET, false);
    prefix_stats_clear();
    ck_assert_uint_eq(prefix_stats_count(), 0);
    char *s = dump_str();
    ck_assert_str_eq(s, "END\r\n");
    free(s);
    rec("a:1", PREFIX_GET, true);
    s = dump_str();
    ck_assert_str_eq(s, "PREFIX a get 1 hit 1 set 0 del 0\r\nEND\r\n");
    free(s);
}
END_TEST

START_TEST(test_enable_flag_follows_on_and_off)
{
    ck_assert(prefix_stats_on());
    prefix_stats_enable(false);
    ck_assert(!prefix_stats_on());
    prefix_stats_enable(true);
    ck_assert(prefix_stats_on());
}
END_TEST

START_TEST(test_new_prefixes_stop_at_the_cap_old_ones_still_count)
{
    char key[32];
    struct prefix_counts n;

    for (unsigned i = 0; i < PREFIX_STATS_MAX + 10; i++) {
        snprintf(key, sizeof(key), "p%u:k", i);
        rec(key, PREFIX_SET, false);
    }
    ck_assert_uint_eq(prefix_stats_count(), PREFIX_STATS_MAX);
    snprintf(key, sizeof(key), "p%u", (unsigned)PREFIX_STATS_MAX + 5);
    ck_assert(!prefix_stats_find(key, strlen(key), &n));
    rec("p0:again", PREFIX_SET, false);
    ck_assert(prefix_stats_find("p0", 2, &n));
    ck_assert_uint_eq(n.set, 2);
    size_t len = 0;
    char *d = prefix_stats_dump(&len);
    ck_assert_ptr_nonnull(d);
    ck_assert(len > 5 && memcmp(d + len - 5, "END\r\n", 5) == 0);
    free(d);
}
END_TEST

#define THREADS 4
#define PER_THREAD 20000

static void *hammer(void *arg)
{
    char key[32];
    unsigned id = (unsigned)(size_t)arg;
    for (unsigned i = 0; i < PER_THREAD; i++) {
        /* every thread hits the shared prefix and some of its own */
        prefix_stats_record("shared:k", 8, PREFIX_GET, (i & 1) != 0);
        snprintf(key, sizeof(key), "t%u_%u:k", id, i % 100);
        prefix_stats_record(key, strlen(key), PREFIX_SET, false);
    }
    return NULL;
}

START_TEST(test_concurrent_counting_loses_nothing)
{
    pthread_t th[THREADS];
    struct prefix_counts n;

    for (size_t i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, (void *)i), 0);
    for (size_t i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert(prefix_stats_find("shared", 6, &n));
    ck_assert_uint_eq(n.get, THREADS * PER_THREAD);
    ck_assert_uint_eq(n.hit, THREADS * PER_THREAD / 2);
    ck_assert_uint_eq(prefix_stats_count(), 1 + THREADS * 100);
    ck_assert(prefix_stats_find("t3_99", 5, &n));
    ck_assert_uint_eq(n.set, PER_THREAD / 100);
}
END_TEST

static Suite *prefix_stats_suite(void)
{
    Suite *s = suite_create("prefix_stats");
    TCase *tc = tcase_create("prefix_stats");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_dump_is_end_alone_when_nothing_counted);
    tcase_add_test(tc, test_dump_lines_match_memcached_format);
    tcase_add_test(tc, test_key_without_delimiter_is_not_counted);
    tcase_add_test(tc, test_prefix_is_up_to_first_delimiter_and_may_be_empty);
    tcase_add_test(tc, test_nul_before_delimiter_means_no_prefix);
    tcase_add_test(tc, test_prefixes_differing_in_length_are_distinct);
    tcase_add_test(tc, test_other_delimiter);
    tcase_add_test(tc, test_clear_forgets_every_prefix);
    tcase_add_test(tc, test_enable_flag_follows_on_and_off);
    tcase_add_test(tc, test_new_prefixes_stop_at_the_cap_old_ones_still_count);
    tcase_add_test(tc, test_concurrent_counting_loses_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(prefix_stats_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
