/*
 * Unit tests for the error counters of INFO errorstats (src/stats/stats.c):
 * Redis's rule for an error's word, the bound on distinct words, the
 * reset baseline, and counting from several threads at once. No sockets,
 * no server.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

#define THREADS 4

static void setup(void)
{
    ck_assert_int_eq(stats_setup(THREADS), 0);
}

static void teardown(void)
{
    stats_teardown();
}

static void err(int thread, const char *s)
{
    stats_error_reply(stats_thread(thread), s, strlen(s));
}

/* The count of word since the last reset, 0 when it was never seen. */
static uint64_t count_of(const char *word)
{
    struct thread_stats *ts = malloc(sizeof(*ts));
    ck_assert_ptr_nonnull(ts);
    stats_aggregate(ts);
    uint64_t n = 0;
    for (int i = 0; i < stats_error_kinds(); i++)
        if (strcmp(stats_error_name(i), word) == 0)
            n = ts->error_kind[i];
    free(ts);
    return n;
}

static uint64_t total(void)
{
    struct thread_stats *ts = malloc(sizeof(*ts));
    ck_assert_ptr_nonnull(ts);
    stats_aggregate(ts);
    uint64_t n = ts->total_error_replies;
    free(ts);
    return n;
}

START_TEST(test_word_is_text_up_to_the_first_space)
{
    err(0, "WRONGTYPE Operation against a key holding the wrong kind of value");
    err(0, "ERR unknown command 'x', with args beginning with: ");
    err(1, "NOSCRIPT No matching script. Please use EVAL.");
    err(1, "WRONGTYPE again");
    ck_assert_uint_eq(count_of("WRONGTYPE"), 2);
    ck_assert_uint_eq(count_of("ERR"), 1);
    ck_assert_uint_eq(count_of("NOSCRIPT"), 1);
    ck_assert_uint_eq(total(), 4);
}
END_TEST

START_TEST(test_no_space_in_the_first_31_bytes_counts_as_err)
{
    err(0, "NOSPACEATALL");
    /* 31 letters then a space: Redis looks at 32 bytes, the dash included. */
    err(0, "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDE x");
    ck_assert_uint_eq(count_of("ERR"), 2);
    err(0, "ABCDEFGHIJKLMNOPQRSTUVWXYZABCD x");   /* 30: its own word */
    ck_assert_uint_eq(count_of("ABCDEFGHIJKLMNOPQRSTUVWXYZABCD"), 1);
    ck_assert_uint_eq(total(), 3);
}
END_TEST

START_TEST(test_empty_word_before_a_leading_space)
{
    err(0, " leading space");
    ck_assert_uint_eq(count_of(""), 1);
    ck_assert_uint_eq(count_of("ERR"), 0);
}
END_TEST

START_TEST(test_reset_reads_zero_then_counts_again)
{
    err(0, "OOM command not allowed");
    err(2, "OOM command not allowed");
    ck_assert_uint_eq(count_of("OOM"), 2);
    stats_reset();
    ck_assert_uint_eq(count_of("OOM"), 0);
    ck_assert_uint_eq(total(), 0);
    err(3, "OOM command not allowed");
    ck_assert_uint_eq(count_of("OOM"), 1);
    ck_assert_uint_eq(total(), 1);
}
END_TEST

START_TEST(test_new_words_stop_at_the_bound_old_ones_still_count)
{
    char buf[64];
    for (int i = 0; i < STATS_ERROR_KINDS + 10; i++) {
        snprintf(buf, sizeof(buf), "W%d x", i);
        err(0, buf);
    }
    ck_assert_int_eq(stats_error_kinds(), STATS_ERROR_KINDS);
    ck_assert_uint_eq(count_of("W0"), 1);
    ck_assert_uint_eq(count_of("W130"), 0);   /* past the bound: in the total only */
    ck_assert_uint_eq(total(), STATS_ERROR_KINDS + 10);
    err(1, "W0 again");
    ck_assert_uint_eq(count_of("W0"), 2);
}
END_TEST

#define PER_THREAD 20000

static void *count_errors(void *arg)
{
    int t = (int)(intptr_t)arg;
    char buf[32];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(buf, sizeof(buf), "K%d x", i % 50);   /* all threads race to add the same words */
        err(t, buf);
    }
    return NULL;
}

START_TEST(test_concurrent_counting_loses_nothing)
{
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, count_errors, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(stats_error_kinds(), 50);
    ck_assert_uint_eq(count_of("K7"), THREADS * PER_THREAD / 50);
    ck_assert_uint_eq(total(), THREADS * PER_THREAD);
}
END_TEST

static Suite *error_stats_suite(void)
{
    Suite *s = suite_create("error_stats");
    TCase *tc = tcase_create("error_stats");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_word_is_text_up_to_the_first_space);
    tcase_add_test(tc, test_no_space_in_the_first_31_bytes_counts_as_err);
    tcase_add_test(tc, test_empty_word_before_a_leading_space);
    tcase_add_test(tc, test_reset_reads_zero_then_counts_again);
    tcase_add_test(tc, test_new_words_stop_at_the_bound_old_ones_still_count);
    tcase_add_test(tc, test_concurrent_counting_loses_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(error_stats_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
