/*
 * Whole-server behaviour: memory limits (eviction, -M), the connection
 * limit (-c), signals, and the command line (-V, -h, bad flags).
 *
 * Every test starts its own server with the options it is about, stops it
 * by PID, and (except where the test itself is about exiting) requires that
 * the server survived the test and exits with status 0 on SIGTERM.
 *
 * kioku-only checks are registered only when $KIOKU_BIN ends in "kioku";
 * they are marked KIOKU-ONLY below.
 */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VALUE_SIZE (10 * 1024)
#define BATCH 50

static struct kh_server g_srv;

static void start(const char *const *args)
{
    kh_server_must_start(&g_srv, args);
}

static void stop_expect_clean_exit(void)
{
    ck_assert_msg(kh_server_alive(&g_srv), "the server died during the test "
                  "(wait status 0x%x)", (unsigned)g_srv.status);
    kh_server_must_exit_cleanly(&g_srv, kh_scale_ms(10000));
}

/* Safety net for tests that fail before stopping their server. */
static void teardown(void)
{
    if (g_srv.pid > 0)
        kh_server_stop(&g_srv, kh_scale_ms(10000));
}

static void pause_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Deterministic content of value number i. */
static void fill_value(char *v, size_t n, int i)
{
    for (size_t k = 0; k < n; k++)
        v[k] = (char)('a' + (unsigned)(i * 7 + (int)(k % 23)) % 26);
    snprintf(v, 16, "%08d", i); /* NUL lands inside, overwritten below */
    v[8] = '|';
}

static size_t append_set(char *buf, int i, const char *val, size_t vlen)
{
    int h = sprintf(buf, "set key:%d 0 0 %zu\r\n", i, vlen);
    memcpy(buf + h, val, vlen);
    memcpy(buf + h + vlen, "\r\n", 2);
    return (size_t)h + vlen + 2;
}

static void expect_stored_value(int fd, int i)
{
    char key[32], want[VALUE_SIZE], got[VALUE_SIZE], why[4096];
    size_t vlen;
    snprintf(key, sizeof key, "key:%d", i);
    fill_value(want, sizeof want, i);
    int r = kh_get(fd, key, got, sizeof got, &vlen, NULL, why, sizeof why);
    ck_assert_msg(r == 1, "%s: %s", key, r == 0 ? "miss" : why);
    ck_assert_msg(vlen == VALUE_SIZE && memcmp(got, want, vlen) == 0,
                  "%s: value differs from what was stored", key);
}

START_TEST(test_small_memory_evicts_old_items_and_keeps_recent_ones)
{
    static const char *const args[] = { "-m", "8", NULL };
    static char buf[BATCH * (VALUE_SIZE + 64)];
    static char val[VALUE_SIZE];
    char want[BATCH * 8 + 1];
    const int total = 3000; /* 30 MB of values into 8 MB */
    start(args);
    int fd = kh_connect(g_srv.port);
    ck_assert_int_ge(fd, 0);

    for (int b = 0; b < BATCH; b++)
        memcpy(want + b * 8, "STORED\r\n", 8);
    for (int i = 0; i < total; i += BATCH) {
        size_t n = 0;
        for (int b = 0; b < BATCH; b++) {
            fill_value(val, sizeof val, i + b);
            n += append_set(buf + n, i + b, val, sizeof val);
        }
        KH_EXPECT_N(fd, buf, n, want, (size_t)BATCH * 8);
    }
    char st[65536];
    ck_assert_uint_gt(kh_stats_fetch(fd, "stats", st, sizeof st), 0);
    long long ev = kh_stats_num(st, "evictions");
    ck_assert_msg(ev > 0, "30 MB stored into -m 8 but evictions = %lld", ev);
    long long bytes = kh_stats_num(st, "bytes");
    ck_assert_msg(bytes > 0 && bytes <= 8LL * 1024 * 1024,
                  "bytes = %lld with -m 8", bytes);
    /* The most recent writes survive; the first one was evicted. */
    for (int i = total - 20; i < total; i++)
        expect_stored_value(fd, i);
    KH_EXPECT(fd, "get key:0\r\n", "END\r\n");
    KH_EXPECT(fd, "set after 0 0 2\r\nok\r\n", "STORED\r\n");
    KH_EXPECT(fd, "get after\r\n", "VALUE after 0 2\r\nok\r\nEND\r\n");
    close(fd);
    stop_expect_clean_exit();
}
END_TEST

START_TEST(test_M_refuses_stores_when_memory_is_full_and_keeps_old_items)
{
    static const char *const args[] = { "-m", "8", "-M", NULL };
    static char buf[VALUE_SIZE + 64];
    static char val[VALUE_SIZE];
    static const char oom[] = "SERVER_ERROR out of memory storing object\r\n";
    start(args);
    int fd = kh_connect(g_srv.port);
    ck_assert_int_ge(fd, 0);

    int stored = 0;
    bool refused = false;
    for (int i = 0; i < 2000 && !refused; i++) {
        char line[128], why[4096];
        bool closed;
        fill_value(val, sizeof val, i);
        size_t n = append_set(buf, i, val, sizeof val);
        ck_assert_int_eq(kh_send_all(fd, buf, n), 0);
        size_t got = kh_read_until(fd, line, sizeof line, "\r\n",
                                   kh_scale_ms(KH_IO_TIMEOUT_MS), &closed);
        if (got == 8 && memcmp(line, "STORED\r\n", 8) == 0) {
            stored++;
            continue;
        }
        kh_escape(line, got, why, sizeof why);
        ck_assert_msg(got == sizeof oom - 1 && memcmp(line, oom, got) == 0,
                      "set #%d: expected STORED or \"%s\", got \"%s\"", i,
                      "SERVER_ERROR out of memory storing object", why);
        refused = true;
    }
    ck_assert_msg(refused, "-m 8 -M accepted 20 MB without an out of memory "
                  "error");
    ck_assert_msg(stored > 100, "only %d items stored before refusing", stored);
    /* Refused data was swallowed; nothing was evicted to make room. */
    expect_stored_value(fd, 0);
    expect_stored_value(fd, 1);
    expect_stored_value(fd, stored / 2);
    expect_stored_value(fd, stored - 1);
    char st[65536];
    ck_assert_uint_gt(kh_stats_fetch(fd, "stats", st, sizeof st), 0);
    ck_assert_int_eq(kh_stats_num(st, "evictions"), 0);
    /* Still full: the next store of the same size is refused too. */
    fill_value(val, sizeof val, 5000);
    size_t n = append_set(buf, 5000, val, sizeof val);
    KH_EXPECT_N(fd, buf, n, oom, sizeof oom - 1);
    KH_EXPECT(fd, "get key:5000\r\n", "END\r\n");
    /* Deleting makes room again. */
    for (int i = 0; i < 20; i++) {
        char req[64];
        snprintf(req, sizeof req, "delete key:%d\r\n", i);
        KH_EXPECT(fd, req, "DELETED\r\n");
    }
    KH_EXPECT_N(fd, buf, n, "STORED\r\n", 8);
    expect_stored_value(fd, 5000);
    close(fd);
    stop_expect_clean_exit();
}
END_TEST

/*
 * Returns 1 if the connection is served (answers version), 0 if it was
 * rejected (error line and/or close), and puts the first line read in line.
 */
static int probe_conn(int fd, char *line, size_t cap)
{
    bool closed;
    if (kh_send_all(fd, "version\r\n", 9) != 0) {
        line[0] = '\0';
        return 0;
    }
    size_t n = kh_read_until(fd, line, cap, "\r\n",
                             kh_scale_ms(KH_IO_TIMEOUT_MS), &closed);
    return n > 8 && strncmp(line, "VERSION ", 8) == 0;
}

START_TEST(test_connection_limit_rejects_extra_clients_and_serves_after_close)
{
    enum { LIMIT = 64, SLACK = 2, MAXOPEN = LIMIT + 10 };
    static const char *const args[] = { "-c", "64", "-t", "2", NULL };
    static const char too_many[] = "ERROR Too many open connections\r\n";
    int fds[MAXOPEN];
    int served = 0;
    char line[256], esc[512];
    start(args);

    for (int i = 0; i < MAXOPEN; i++) {
        fds[i] = kh_connect(g_srv.port);
        ck_assert_msg(fds[i] >= 0, "connect #%d failed outright", i);
        int r = probe_conn(fds[i], line, sizeof line);
        if (!r) {
            kh_escape(line, strlen(line), esc, sizeof esc);
            ck_assert_msg(line[0] == '\0' || strcmp(line, too_many) == 0,
                          "extra connection #%d got \"%s\"", i, esc);
            close(fds[i]);
            fds[i] = -1;
            break;
        }
        served++;
    }
    ck_assert_msg(served < MAXOPEN, "-c %d but %d connections were served",
                  LIMIT, MAXOPEN);
    ck_assert_msg(served <= LIMIT + SLACK, "-c %d but %d connections were "
                  "served", LIMIT, served);
    ck_assert_msg(served >= 1, "no connection was served");

    /* An extra client that only listens gets the exact error, then EOF. */
    int extra = kh_connect(g_srv.port);
    ck_assert_int_ge(extra, 0);
    bool closed;
    size_t n = kh_read_until(extra, line, sizeof line, "\r\n",
                             kh_scale_ms(KH_IO_TIMEOUT_MS), &closed);
    kh_escape(line, n, esc, sizeof esc);
    ck_assert_msg(n == sizeof too_many - 1 && strcmp(line, too_many) == 0,
                  "connection over the limit got \"%s\", expected \"%s\"", esc,
                  "ERROR Too many open connections\\r\\n");
    ck_assert_msg(kh_wait_closed(extra, kh_scale_ms(5000)),
                  "connection over the limit was not closed");
    close(extra);

    /* Clients already in keep working. */
    KH_EXPECT(fds[0], "set a 0 0 1\r\nx\r\n", "STORED\r\n");
    KH_EXPECT(fds[served - 1], "get a\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n");

    /* Closing some makes room for a new client (the server may need a
     * moment to notice the closes). */
    for (int i = 1; i <= 5 && i < served - 1; i++) {
        close(fds[i]);
        fds[i] = -1;
    }
    bool ok = false;
    for (int attempt = 0; attempt < 50 && !ok; attempt++) {
        int fd = kh_connect(g_srv.port);
        if (fd >= 0) {
            ok = probe_conn(fd, line, sizeof line) == 1;
            close(fd);
        }
        if (!ok)
            pause_ms(100);
    }
    ck_assert_msg(ok, "no new client served after closing 5 connections");
    for (int i = 0; i < served; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    stop_expect_clean_exit();
}
END_TEST

START_TEST(test_sigterm_exits_with_status_0_within_a_few_seconds)
{
    start(NULL);
    int fd = kh_connect(g_srv.port);
    ck_assert_int_ge(fd, 0);
    KH_EXPECT(fd, "set k 0 0 1\r\nv\r\n", "STORED\r\n");
    /* An idle open connection must not hold up shutdown. */
    ck_assert_int_eq(kill(g_srv.pid, SIGTERM), 0);
    int st = kh_server_wait_exit(&g_srv, kh_scale_ms(5000));
    ck_assert_msg(st != -1, "server still running 5 s after SIGTERM");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit after SIGTERM: wait status 0x%x", (unsigned)st);
    ck_assert_msg(kh_wait_closed(fd, kh_scale_ms(5000)),
                  "client connection not closed after exit");
    close(fd);
    kh_server_stop(&g_srv, 0);
}
END_TEST

/* memcached 1.6.45's replies; "shutdown graceful" stops with exit 0. */
START_TEST(test_shutdown_command_needs_A_and_takes_only_graceful)
{
    start(NULL);
    int fd = kh_connect(g_srv.port);
    ck_assert_int_ge(fd, 0);
    KH_EXPECT(fd, "shutdown\r\n", "SERVER_ERROR: shutdown not enabled\r\n");
    close(fd);
    stop_expect_clean_exit();

    static const char *const args[] = { "-A", NULL };
    start(args);
    fd = kh_connect(g_srv.port);
    ck_assert_int_ge(fd, 0);
    KH_EXPECT(fd, "shutdown foo\r\n", "CLIENT_ERROR invalid shutdown mode\r\n");
    ck_assert_int_eq(kh_send_all(fd, "shutdown graceful\r\n", 19), 0);
    int st = kh_server_wait_exit(&g_srv, kh_scale_ms(5000));
    ck_assert_msg(st != -1, "server still running 5 s after shutdown graceful");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status 0x%x", (unsigned)st);
    close(fd);
    kh_server_stop(&g_srv, 0);
}
END_TEST

/* -o idle_timeout=1: a connection silent for over a second is closed and
 * counted as idle_kicks; one that keeps sending stays (memcached's
 * t/idle-timeout.t, shorter). */
START_TEST(test_idle_timeout_closes_silent_connections_only)
{
    static const char *const args[] = { "-o", "idle_timeout=1", NULL };
    start(args);
    int quiet = kh_connect(g_srv.port);
    int busy = kh_connect(g_srv.port);
    ck_assert(quiet >= 0 && busy >= 0);
    KH_EXPECT(quiet, "get k\r\n", "END\r\n");
    /* Every 100 ms for 3 s: a stall of up to 900 ms (TSan on a busy
     * machine) leaves the busy one within the second; at 500 ms a stall of
     * half a second had it kicked. */
    for (int i = 0; i < 30; i++) {
        KH_EXPECT(busy, "get k\r\n", "END\r\n");
        pause_ms(100);
    }
    ck_assert_msg(kh_wait_closed(quiet, kh_scale_ms(3000)), "idle connection still open");
    char buf[16384];
    ck_assert(kh_stats_fetch(busy, "stats", buf, sizeof(buf)) > 0);
    ck_assert_msg(kh_stats_num(buf, "idle_kicks") >= 1, "idle_kicks: %lld",
                  kh_stats_num(buf, "idle_kicks"));
    close(quiet);
    close(busy);
    stop_expect_clean_exit();
}
END_TEST

START_TEST(test_sigterm_lets_an_in_flight_multiget_response_complete)
{
    enum { NKEYS = 40, VSIZE = 100 * 1024 };
    static char val[VSIZE];
    static char want[NKEYS * (VSIZE + 64) + 8];
    static char got[sizeof want];
    char req[NKEYS * 16 + 16];
    start(NULL);
    int fd = kh_connect(g_srv.port);
    ck_assert_int_ge(fd, 0);

    size_t rl = (size_t)sprintf(req, "get");
    size_t wl = 0;
    for (int i = 0; i < NKEYS; i++) {
        char head[64];
        memset(val, 'A' + i % 26, sizeof val);
        int h = snprintf(head, sizeof head, "set big%d 0 0 %d\r\n", i, VSIZE);
        ck_assert_int_eq(kh_send_all(fd, head, (size_t)h), 0);
        KH_EXPECT_N(fd, val, sizeof val, "", 0); /* no reply yet */
        KH_EXPECT_N(fd, "\r\n", 2, "STORED\r\n", 8);
        rl += (size_t)sprintf(req + rl, " big%d", i);
        wl += (size_t)sprintf(want + wl, "VALUE big%d 0 %d\r\n", i, VSIZE);
        memcpy(want + wl, val, sizeof val);
        wl += sizeof val;
        wl += (size_t)sprintf(want + wl, "\r\n");
    }
    rl += (size_t)sprintf(req + rl, "\r\n");
    wl += (size_t)sprintf(want + wl, "END\r\n");

    /* Start the 4 MB response, take its first part, then SIGTERM. */
    ck_assert_int_eq(kh_send_all(fd, req, rl), 0);
    bool closed;
    size_t n = kh_read_n(fd, got, 65536, kh_scale_ms(KH_IO_TIMEOUT_MS),
                         &closed);
    ck_assert_int_eq(n, 65536);
    ck_assert_int_eq(kill(g_srv.pid, SIGTERM), 0);
    n += kh_read_n(fd, got + n, wl - n, kh_scale_ms(KH_IO_TIMEOUT_MS),
                   &closed);
    ck_assert_msg(n == wl, "response cut short by SIGTERM: %zu of %zu bytes%s",
                  n, wl, closed ? " (connection closed)" : "");
    ck_assert_msg(memcmp(got, want, wl) == 0, "response content differs");
    int st = kh_server_wait_exit(&g_srv, kh_scale_ms(5000));
    ck_assert_msg(st != -1, "server still running 5 s after SIGTERM");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "exit after SIGTERM: wait status 0x%x", (unsigned)st);
    close(fd);
    kh_server_stop(&g_srv, 0);
}
END_TEST

START_TEST(test_V_prints_the_served_version_and_exits_0)
{
    static const char *const args[] = { "-V", NULL };
    char out[4096], ver[256];
    int st = kh_run_capture(args, out, sizeof out, kh_scale_ms(10000));
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "-V: wait status 0x%x, output: %s", (unsigned)st, out);
    /* The same version a running server reports. */
    start(NULL);
    int fd = kh_connect(g_srv.port);
    ck_assert_int_ge(fd, 0);
    bool closed;
    ck_assert_int_eq(kh_send_all(fd, "version\r\n", 9), 0);
    size_t n = kh_read_until(fd, ver, sizeof ver, "\r\n",
                             kh_scale_ms(KH_IO_TIMEOUT_MS), &closed);
    ck_assert_msg(n > 10 && strncmp(ver, "VERSION ", 8) == 0, "version: %s",
                  ver);
    ver[n - 2] = '\0';
    ck_assert_msg(strstr(out, ver + 8) != NULL,
                  "-V printed \"%s\", which lacks the served version \"%s\"",
                  out, ver + 8);
    close(fd);
    stop_expect_clean_exit();
}
END_TEST

START_TEST(test_h_prints_usage_and_exits_0)
{
    static const char *const args[] = { "-h", NULL };
    char out[16384];
    int st = kh_run_capture(args, out, sizeof out, kh_scale_ms(10000));
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "-h: wait status 0x%x", (unsigned)st);
    ck_assert_msg(strstr(out, "-p") != NULL && strstr(out, "-m") != NULL &&
                      strstr(out, "-c") != NULL,
                  "-h output does not describe -p, -m and -c: %.300s", out);
}
END_TEST

/* KIOKU-ONLY: memcached exits with a different status for a bad flag. */
START_TEST(test_kioku_unknown_flag_exits_64_mentioning_help)
{
    static const char *const args[] = { "--no-such-flag", NULL };
    char out[4096];
    int st = kh_run_capture(args, out, sizeof out, kh_scale_ms(10000));
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 64,
                  "unknown flag: wait status 0x%x (want exit 64), output: %s",
                  (unsigned)st, out);
    ck_assert_msg(strstr(out, "--help") != NULL,
                  "unknown-flag message does not mention --help: %s", out);
}
END_TEST

static Suite *server_suite(void)
{
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("memory");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_small_memory_evicts_old_items_and_keeps_recent_ones);
    tcase_add_test(tc, test_M_refuses_stores_when_memory_is_full_and_keeps_old_items);
    suite_add_tcase(s, tc);

    tc = tcase_create("connections");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_connection_limit_rejects_extra_clients_and_serves_after_close);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sigterm_exits_with_status_0_within_a_few_seconds);
    tcase_add_test(tc, test_sigterm_lets_an_in_flight_multiget_response_complete);
    tcase_add_test(tc, test_shutdown_command_needs_A_and_takes_only_graceful);
    tcase_add_test(tc, test_idle_timeout_closes_silent_connections_only);
    tcase_add_test(tc, test_V_prints_the_served_version_and_exits_0);
    tcase_add_test(tc, test_h_prints_usage_and_exits_0);
    if (kh_server_is_kioku())
        tcase_add_test(tc, test_kioku_unknown_flag_exits_64_mentioning_help);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    kh_server_bin();
    SRunner *sr = srunner_create(server_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
