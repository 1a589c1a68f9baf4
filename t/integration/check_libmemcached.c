/*
 * The server as a real client library sees it: libmemcached over the ASCII
 * protocol against a server started from $KIOKU_BIN.
 *
 * One server per TCase (Check's parent process starts it); each test gets a
 * fresh memcached_st and an emptied cache. Return codes are checked with
 * memcached_strerror() in the message, values byte for byte.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct kh_server g_srv;
static memcached_st *g_mc;

#define RC_EQ(rc, want)                                                       \
    ck_assert_msg((rc) == (want), "%s: got %s, expected %s", #rc,            \
                  memcached_strerror(g_mc, (rc)), memcached_strerror(g_mc, (want)))

static void server_start_with(const char *const *args)
{
    kh_server_must_start(&g_srv, args);
}

static void server_start(void)
{
    server_start_with(NULL);
}

static void server_start_4m(void)
{
    static const char *const args[] = { "-I", "4m", NULL };
    server_start_with(args);
}

static void server_stop(void)
{
    kh_server_must_exit_cleanly(&g_srv, kh_scale_ms(10000));
}

static void client_open(void)
{
    g_mc = kh_memc_create(g_srv.port);
    ck_assert_ptr_nonnull(g_mc);
    memcached_return_t rc = memcached_flush(g_mc, 0);
    RC_EQ(rc, MEMCACHED_SUCCESS);
}

static void client_close(void)
{
    memcached_free(g_mc);
    g_mc = NULL;
    ck_assert_msg(kh_server_alive(&g_srv), "the server died during the test");
}

static void pause_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static memcached_return_t set_str(const char *key, const char *val,
                                  time_t exp, uint32_t flags)
{
    return memcached_set(g_mc, key, strlen(key), val, strlen(val), exp, flags);
}

/* Require key to hold exactly val (length vlen) with flags. */
static void expect_value(const char *key, const void *val, size_t vlen,
                         uint32_t flags)
{
    size_t got_len = 0;
    uint32_t got_flags = 0;
    memcached_return_t rc;
    char *got = memcached_get(g_mc, key, strlen(key), &got_len, &got_flags,
                              &rc);
    ck_assert_msg(rc == MEMCACHED_SUCCESS && got != NULL,
                  "get %s: %s", key, memcached_strerror(g_mc, rc));
    ck_assert_msg(got_len == vlen, "get %s: length %zu, expected %zu", key,
                  got_len, vlen);
    ck_assert_msg(memcmp(got, val, vlen) == 0, "get %s: value differs", key);
    ck_assert_msg(got_flags == flags, "get %s: flags %u, expected %u", key,
                  got_flags, flags);
    free(got);
}

static void expect_str(const char *key, const char *val, uint32_t flags)
{
    expect_value(key, val, strlen(val), flags);
}

static void expect_missing(const char *key)
{
    size_t len;
    uint32_t flags;
    memcached_return_t rc;
    char *got = memcached_get(g_mc, key, strlen(key), &len, &flags, &rc);
    ck_assert_msg(got == NULL && rc == MEMCACHED_NOTFOUND,
                  "get %s: expected NOTFOUND, got %s", key,
                  memcached_strerror(g_mc, rc));
}

/* The cas unique of key, read with mget + fetch_result. */
static uint64_t fetch_cas(const char *key)
{
    const char *keys[1] = { key };
    size_t lens[1] = { strlen(key) };
    memcached_return_t rc = memcached_mget(g_mc, keys, lens, 1);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    memcached_result_st *res = memcached_fetch_result(g_mc, NULL, &rc);
    ck_assert_msg(res != NULL, "gets %s: %s", key,
                  memcached_strerror(g_mc, rc));
    uint64_t cas = memcached_result_cas(res);
    memcached_result_free(res);
    /* Drain the END. */
    res = memcached_fetch_result(g_mc, NULL, &rc);
    ck_assert_ptr_null(res);
    return cas;
}

START_TEST(test_set_then_get_round_trips_value_and_flags)
{
    RC_EQ(set_str("alpha", "first value", 0, 0xDEADBEEFu), MEMCACHED_SUCCESS);
    expect_str("alpha", "first value", 0xDEADBEEFu);
    RC_EQ(set_str("alpha", "second", 0, 7), MEMCACHED_SUCCESS);
    expect_str("alpha", "second", 7);
    expect_missing("beta");
}
END_TEST

START_TEST(test_add_fails_with_notstored_on_existing_key)
{
    memcached_return_t rc = memcached_add(g_mc, "k", 1, "one", 3, 0, 1);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    rc = memcached_add(g_mc, "k", 1, "two", 3, 0, 2);
    RC_EQ(rc, MEMCACHED_NOTSTORED);
    expect_str("k", "one", 1);
}
END_TEST

START_TEST(test_replace_fails_with_notstored_on_missing_key)
{
    memcached_return_t rc = memcached_replace(g_mc, "k", 1, "x", 1, 0, 0);
    RC_EQ(rc, MEMCACHED_NOTSTORED);
    expect_missing("k");
    RC_EQ(set_str("k", "old", 0, 0), MEMCACHED_SUCCESS);
    rc = memcached_replace(g_mc, "k", 1, "new", 3, 0, 3);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    expect_str("k", "new", 3);
}
END_TEST

START_TEST(test_append_and_prepend_extend_value)
{
    memcached_return_t rc = memcached_append(g_mc, "k", 1, "x", 1, 0, 0);
    RC_EQ(rc, MEMCACHED_NOTSTORED);
    rc = memcached_prepend(g_mc, "k", 1, "x", 1, 0, 0);
    RC_EQ(rc, MEMCACHED_NOTSTORED);
    RC_EQ(set_str("k", "middle", 0, 9), MEMCACHED_SUCCESS);
    rc = memcached_append(g_mc, "k", 1, "-tail", 5, 0, 0);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    rc = memcached_prepend(g_mc, "k", 1, "head-", 5, 0, 0);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    expect_str("k", "head-middle-tail", 9);
}
END_TEST

START_TEST(test_cas_succeeds_with_current_unique_and_fails_when_stale)
{
    memcached_return_t rc = memcached_behavior_set(
        g_mc, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    RC_EQ(set_str("c", "v0", 0, 0), MEMCACHED_SUCCESS);
    uint64_t cas = fetch_cas("c");
    rc = memcached_cas(g_mc, "c", 1, "v1", 2, 0, 5, cas);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    expect_str("c", "v1", 5);
    rc = memcached_cas(g_mc, "c", 1, "v2", 2, 0, 0, cas);
    RC_EQ(rc, MEMCACHED_DATA_EXISTS);
    expect_str("c", "v1", 5);
    uint64_t cas2 = fetch_cas("c");
    ck_assert_msg(cas2 != cas, "cas unique unchanged after a cas store");
    rc = memcached_cas(g_mc, "missing", 7, "v", 1, 0, 0, cas2);
    RC_EQ(rc, MEMCACHED_NOTFOUND);
}
END_TEST

START_TEST(test_delete_succeeds_once_then_reports_notfound)
{
    RC_EQ(set_str("d", "x", 0, 0), MEMCACHED_SUCCESS);
    memcached_return_t rc = memcached_delete(g_mc, "d", 1, 0);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    expect_missing("d");
    rc = memcached_delete(g_mc, "d", 1, 0);
    RC_EQ(rc, MEMCACHED_NOTFOUND);
}
END_TEST

START_TEST(test_increment_and_decrement_return_new_value)
{
    uint64_t v = 0;
    RC_EQ(set_str("n", "40", 0, 0), MEMCACHED_SUCCESS);
    memcached_return_t rc = memcached_increment(g_mc, "n", 1, 2, &v);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    ck_assert_uint_eq(v, 42);
    rc = memcached_decrement(g_mc, "n", 1, 50, &v);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    ck_assert_uint_eq(v, 0);
    rc = memcached_increment(g_mc, "n", 1, 1000, &v);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    ck_assert_uint_eq(v, 1000);
    expect_str("n", "1000", 0);
    rc = memcached_increment(g_mc, "nope", 4, 1, &v);
    RC_EQ(rc, MEMCACHED_NOTFOUND);
    RC_EQ(set_str("s", "text", 0, 0), MEMCACHED_SUCCESS);
    rc = memcached_increment(g_mc, "s", 1, 1, &v);
    ck_assert_msg(rc != MEMCACHED_SUCCESS, "incr of a non-numeric value "
                  "succeeded");
    expect_str("s", "text", 0);
}
END_TEST

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A 1 s TTL item is there until a second has passed; a sanitizer build on
 * a busy machine may stall that long between two requests. The result of
 * an attempt that took 900 ms or more proves nothing and it is made again
 * (at most 10). */
START_TEST(test_touch_succeeds_on_existing_and_notfound_on_missing)
{
    memcached_return_t rc;
    for (int attempt = 1;; attempt++) {
        int64_t t0 = mono_ms();
        RC_EQ(set_str("t", "v", 1, 0), MEMCACHED_SUCCESS);
        rc = memcached_touch(g_mc, "t", 1, 100);
        if (mono_ms() - t0 < 900)
            break;
        ck_assert_msg(attempt < 10, "10 attempts, each over 900 ms");
    }
    RC_EQ(rc, MEMCACHED_SUCCESS);
    rc = memcached_touch(g_mc, "missing", 7, 100);
    RC_EQ(rc, MEMCACHED_NOTFOUND);
    pause_ms(2500);
    expect_str("t", "v", 0);
}
END_TEST

START_TEST(test_item_set_with_1s_expiration_disappears)
{
    RC_EQ(set_str("k", "kept", 100, 0), MEMCACHED_SUCCESS);
    for (int attempt = 1;; attempt++) {
        int64_t t0 = mono_ms();
        RC_EQ(set_str("e", "soon gone", 1, 0), MEMCACHED_SUCCESS);
        size_t len = 0;
        uint32_t flags = 0;
        memcached_return_t rc;
        char *got = memcached_get(g_mc, "e", 1, &len, &flags, &rc);
        bool hit = rc == MEMCACHED_SUCCESS && got != NULL && len == 9 &&
                   memcmp(got, "soon gone", 9) == 0 && flags == 0;
        free(got);
        if (mono_ms() - t0 < 900) {
            ck_assert_msg(hit, "get e right after its 1 s set: %s", memcached_strerror(g_mc, rc));
            break;
        }
        ck_assert_msg(attempt < 10, "10 attempts, each over 900 ms");
    }
    pause_ms(2500);
    expect_missing("e");
    expect_str("k", "kept", 0);
}
END_TEST

START_TEST(test_mget_of_100_keys_fetches_all_in_order)
{
    char keys[100][32], vals[100][64];
    const char *kp[100];
    size_t kl[100];
    for (int i = 0; i < 100; i++) {
        snprintf(keys[i], sizeof keys[i], "mget:%d", i);
        snprintf(vals[i], sizeof vals[i], "value number %d", i * i);
        kp[i] = keys[i];
        kl[i] = strlen(keys[i]);
        RC_EQ(set_str(keys[i], vals[i], 0, (uint32_t)i), MEMCACHED_SUCCESS);
    }
    memcached_return_t rc = memcached_mget(g_mc, kp, kl, 100);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    int n = 0;
    memcached_result_st *res;
    while ((res = memcached_fetch_result(g_mc, NULL, &rc)) != NULL && n < 200) {
        ck_assert_msg(n < 100, "more than 100 results");
        ck_assert_msg(memcached_result_key_length(res) == kl[n] &&
                          memcmp(memcached_result_key_value(res), kp[n],
                                 kl[n]) == 0,
                      "result %d is %.*s, expected %s", n,
                      (int)memcached_result_key_length(res),
                      memcached_result_key_value(res), kp[n]);
        ck_assert_uint_eq(memcached_result_length(res), strlen(vals[n]));
        ck_assert(memcmp(memcached_result_value(res), vals[n],
                         strlen(vals[n])) == 0);
        ck_assert_uint_eq(memcached_result_flags(res), (uint32_t)n);
        memcached_result_free(res);
        n++;
    }
    ck_assert_msg(rc == MEMCACHED_END || rc == MEMCACHED_NOTFOUND,
                  "fetch ended with %s", memcached_strerror(g_mc, rc));
    ck_assert_int_eq(n, 100);
}
END_TEST

START_TEST(test_flush_removes_every_item)
{
    RC_EQ(set_str("a", "1", 0, 0), MEMCACHED_SUCCESS);
    RC_EQ(set_str("b", "2", 0, 0), MEMCACHED_SUCCESS);
    memcached_return_t rc = memcached_flush(g_mc, 0);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    expect_missing("a");
    expect_missing("b");
}
END_TEST

START_TEST(test_noreply_behavior_still_stores)
{
    memcached_return_t rc = memcached_behavior_set(
        g_mc, MEMCACHED_BEHAVIOR_NOREPLY, 1);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    for (int i = 0; i < 50; i++) {
        char k[32];
        snprintf(k, sizeof k, "nr%d", i);
        rc = set_str(k, k, 0, 0);
        ck_assert_msg(rc == MEMCACHED_SUCCESS || rc == MEMCACHED_BUFFERED,
                      "noreply set: %s", memcached_strerror(g_mc, rc));
    }
    memcached_behavior_set(g_mc, MEMCACHED_BEHAVIOR_NOREPLY, 0);
    expect_str("nr0", "nr0", 0);
    expect_str("nr49", "nr49", 0);
}
END_TEST

START_TEST(test_version_matches_the_version_command)
{
    int fd = kh_connect(g_srv.port);
    ck_assert_int_ge(fd, 0);
    char buf[256];
    bool closed;
    ck_assert_int_eq(kh_send_all(fd, "version\r\n", 9), 0);
    kh_read_until(fd, buf, sizeof buf, "\r\n", kh_scale_ms(KH_IO_TIMEOUT_MS),
                  &closed);
    close(fd);
    unsigned ma, mi, mc;
    ck_assert_msg(sscanf(buf, "VERSION %u.%u.%u", &ma, &mi, &mc) == 3,
                  "version is not major.minor.micro: %s", buf);

    /* libmemcached refuses a version whose major number is 0, and then
     * memcached_version() and every tool built on it (memcstat) fail. */
    memcached_return_t rc = memcached_version(g_mc);
    ck_assert_msg(rc == MEMCACHED_SUCCESS,
                  "memcached_version() failed (%s) for the server's "
                  "\"%.*s\"", memcached_last_error_message(g_mc),
                  (int)strcspn(buf, "\r"), buf);
    const memcached_instance_st *inst =
        memcached_server_instance_by_position(g_mc, 0);
    ck_assert_ptr_nonnull(inst);
    ck_assert_uint_eq(memcached_server_major_version(inst), ma);
    ck_assert_uint_eq(memcached_server_minor_version(inst), mi);
    ck_assert_uint_eq(memcached_server_micro_version(inst), mc);
}
END_TEST

START_TEST(test_stat_reports_pid_threads_and_item_count)
{
    for (int i = 0; i < 10; i++) {
        char k[16];
        snprintf(k, sizeof k, "st%d", i);
        RC_EQ(set_str(k, "v", 0, 0), MEMCACHED_SUCCESS);
    }
    memcached_return_t rc;
    memcached_stat_st *st = memcached_stat(g_mc, NULL, &rc);
    ck_assert_msg(st != NULL && rc == MEMCACHED_SUCCESS, "memcached_stat: %s",
                  memcached_strerror(g_mc, rc));
    ck_assert_int_eq((long long)st->pid, (long long)g_srv.pid);
    ck_assert_uint_eq(st->curr_items, 10);
    ck_assert_uint_eq(st->threads, 4);
    ck_assert_uint_eq(st->limit_maxbytes, 64ULL * 1024 * 1024);
    ck_assert_msg(st->curr_connections >= 1, "curr_connections is 0");
    char *ver = memcached_stat_get_value(g_mc, st, "version", &rc);
    ck_assert_msg(ver != NULL && ver[0] != '\0', "no version stat");
    free(ver);
    memcached_stat_free(NULL, st);
}
END_TEST

/* ---- large values ---------------------------------------------------------- */

static char *pattern(size_t n, unsigned seed)
{
    char *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i * 31 + seed + i / 4096) & 0xff);
    return p;
}

START_TEST(test_500kb_value_round_trips_under_default_item_limit)
{
    size_t n = 500 * 1024;
    char *v = pattern(n, 3);
    memcached_return_t rc = memcached_set(g_mc, "big", 3, v, n, 0, 11);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    expect_value("big", v, n, 11);
    free(v);
}
END_TEST

START_TEST(test_2mb_value_over_default_item_limit_is_refused)
{
    size_t n = 2 * 1024 * 1024;
    char *v = pattern(n, 5);
    memcached_return_t rc = memcached_set(g_mc, "huge", 4, v, n, 0, 0);
    free(v);
    ck_assert_msg(rc != MEMCACHED_SUCCESS, "a 2 MB value was stored with the "
                  "default 1 MB item size limit");
    /* The connection or a reconnect keeps working. */
    RC_EQ(set_str("after", "ok", 0, 0), MEMCACHED_SUCCESS);
    expect_str("after", "ok", 0);
    expect_missing("huge");
}
END_TEST

START_TEST(test_2mb_value_round_trips_with_I_4m)
{
    size_t n = 2 * 1024 * 1024;
    char *v = pattern(n, 7);
    memcached_return_t rc = memcached_set(g_mc, "huge", 4, v, n, 0, 12);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    expect_value("huge", v, n, 12);
    /* And a second one next to it. */
    v[0] ^= 1;
    rc = memcached_set(g_mc, "huge2", 5, v, n, 0, 13);
    RC_EQ(rc, MEMCACHED_SUCCESS);
    expect_value("huge2", v, n, 13);
    free(v);
}
END_TEST

static TCase *tcase_shared(const char *name, void (*start)(void))
{
    TCase *tc = tcase_create(name);
    tcase_add_unchecked_fixture(tc, start, server_stop);
    tcase_add_checked_fixture(tc, client_open, client_close);
    tcase_set_timeout(tc, 30);
    return tc;
}

static Suite *libmemcached_suite(void)
{
    Suite *s = suite_create("libmemcached");
    TCase *tc = tcase_shared("commands", server_start);
    tcase_add_test(tc, test_set_then_get_round_trips_value_and_flags);
    tcase_add_test(tc, test_add_fails_with_notstored_on_existing_key);
    tcase_add_test(tc, test_replace_fails_with_notstored_on_missing_key);
    tcase_add_test(tc, test_append_and_prepend_extend_value);
    tcase_add_test(tc, test_cas_succeeds_with_current_unique_and_fails_when_stale);
    tcase_add_test(tc, test_delete_succeeds_once_then_reports_notfound);
    tcase_add_test(tc, test_increment_and_decrement_return_new_value);
    tcase_add_test(tc, test_touch_succeeds_on_existing_and_notfound_on_missing);
    tcase_add_test(tc, test_item_set_with_1s_expiration_disappears);
    tcase_add_test(tc, test_mget_of_100_keys_fetches_all_in_order);
    tcase_add_test(tc, test_flush_removes_every_item);
    tcase_add_test(tc, test_noreply_behavior_still_stores);
    tcase_add_test(tc, test_version_matches_the_version_command);
    tcase_add_test(tc, test_500kb_value_round_trips_under_default_item_limit);
    tcase_add_test(tc, test_2mb_value_over_default_item_limit_is_refused);
    suite_add_tcase(s, tc);

    /* curr_items counts flushed items until they are reclaimed: this test
     * needs a server nothing else has written to. */
    tc = tcase_shared("stat", server_start);
    tcase_add_test(tc, test_stat_reports_pid_threads_and_item_count);
    suite_add_tcase(s, tc);

    tc = tcase_shared("large_items", server_start_4m);
    tcase_add_test(tc, test_2mb_value_round_trips_with_I_4m);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    kh_server_bin();
    SRunner *sr = srunner_create(libmemcached_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
