/*
 * Unit tests for the log (src/util/log.c): which severities each -v count
 * shows, the three line forms (stderr, journald, log file), cutting and
 * flattening of long or multi-line messages, $JOURNAL_STREAM matching, and
 * the file itself: whole lines under concurrent writers, and a reopen that
 * moves writers to a new file at the same path.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

START_TEST(test_error_warning_notice_always_info_debug_trace_one_v_each)
{
    for (int sev = LOG_SEV_ERROR; sev <= LOG_SEV_NOTICE; sev++)
        ck_assert(log_sev_enabled((enum log_sev)sev, 0));
    ck_assert(!log_sev_enabled(LOG_SEV_INFO, 0));
    ck_assert(log_sev_enabled(LOG_SEV_INFO, 1));
    ck_assert(!log_sev_enabled(LOG_SEV_DEBUG, 1));
    ck_assert(log_sev_enabled(LOG_SEV_DEBUG, 2));
    ck_assert(!log_sev_enabled(LOG_SEV_TRACE, 2));
    ck_assert(log_sev_enabled(LOG_SEV_TRACE, 3));
}
END_TEST

static const char *fmt_line(char *buf, size_t cap, enum log_sink sink, enum log_sev sev,
                            const struct timespec *ts, const char *msg)
{
    size_t n = log_format(buf, cap, sink, sev, ts, msg, strlen(msg));
    ck_assert_uint_lt(n, cap);
    buf[n] = '\0';
    return buf;
}

START_TEST(test_stderr_tags_only_error_and_warning)
{
    char b[256];
    ck_assert_str_eq(fmt_line(b, sizeof(b), LOG_SINK_STDERR, LOG_SEV_ERROR, NULL, "bad"),
                     "error: bad\n");
    ck_assert_str_eq(fmt_line(b, sizeof(b), LOG_SINK_STDERR, LOG_SEV_WARN, NULL, "hm"),
                     "warning: hm\n");
    ck_assert_str_eq(fmt_line(b, sizeof(b), LOG_SINK_STDERR, LOG_SEV_NOTICE, NULL, "n"), "n\n");
    ck_assert_str_eq(fmt_line(b, sizeof(b), LOG_SINK_STDERR, LOG_SEV_INFO, NULL, "i"), "i\n");
    ck_assert_str_eq(fmt_line(b, sizeof(b), LOG_SINK_STDERR, LOG_SEV_DEBUG, NULL, "<7 get a"),
                     "<7 get a\n");
}
END_TEST

START_TEST(test_journal_lines_carry_the_syslog_priority)
{
    char b[256];
    static const char *const want[] = {"<3>x\n", "<4>x\n", "<5>x\n", "<6>x\n", "<7>x\n", "<7>x\n"};
    for (int sev = LOG_SEV_ERROR; sev <= LOG_SEV_TRACE; sev++)
        ck_assert_str_eq(fmt_line(b, sizeof(b), LOG_SINK_JOURNAL, (enum log_sev)sev, NULL, "x"),
                         want[sev]);
}
END_TEST

START_TEST(test_file_lines_start_with_a_utc_timestamp_in_ms)
{
    char b[256];
    struct timespec ts = {1700000000, 123999999};   /* 2023-11-14 22:13:20.123 UTC */
    ck_assert_str_eq(fmt_line(b, sizeof(b), LOG_SINK_FILE, LOG_SEV_WARN, &ts, "w"),
                     "2023-11-14T22:13:20.123Z warning: w\n");
    ck_assert_str_eq(fmt_line(b, sizeof(b), LOG_SINK_FILE, LOG_SEV_DEBUG, &ts, "<9 get k"),
                     "2023-11-14T22:13:20.123Z <9 get k\n");
}
END_TEST

START_TEST(test_cr_and_lf_inside_a_message_become_spaces)
{
    char b[256];
    ck_assert_str_eq(fmt_line(b, sizeof(b), LOG_SINK_STDERR, LOG_SEV_ERROR, NULL, "a\nb\r\nc"),
                     "error: a b  c\n");
}
END_TEST

START_TEST(test_a_long_message_is_cut_with_dots_and_still_ends_the_line)
{
    char msg[300], b[64];
    memset(msg, 'm', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    size_t n = log_format(b, sizeof(b), LOG_SINK_STDERR, LOG_SEV_WARN, NULL, msg, strlen(msg));
    ck_assert_uint_eq(n, sizeof(b));
    ck_assert(memcmp(b, "warning: mmm", 12) == 0);
    ck_assert(memcmp(b + n - 4, "...\n", 4) == 0);
    /* exactly full: not cut */
    char fit[64];
    memset(fit, 'f', 63 - 9);
    n = log_format(b, sizeof(b), LOG_SINK_STDERR, LOG_SEV_WARN, NULL, fit, 63 - 9);
    ck_assert_uint_eq(n, 64);
    ck_assert(b[62] == 'f' && b[63] == '\n');
}
END_TEST

START_TEST(test_journal_stream_must_name_stderr_exactly)
{
    ck_assert(log_journal_stream("8:12345", 8, 12345));
    ck_assert(!log_journal_stream("8:12345", 8, 12346));
    ck_assert(!log_journal_stream("9:12345", 8, 12345));
    ck_assert(!log_journal_stream("8:12345x", 8, 12345));
    ck_assert(!log_journal_stream("8", 8, 12345));
    ck_assert(!log_journal_stream(":12345", 0, 12345));
    ck_assert(!log_journal_stream("", 0, 0));
}
END_TEST

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static char dir[] = "/tmp/kioku-check-log.XXXXXX";

static void make_dir(void)
{
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

START_TEST(test_info_is_written_only_at_v_and_lines_reach_the_file)
{
    char path[128], err[256];
    make_dir();
    snprintf(path, sizeof(path), "%s/log", dir);
    log_setup(0);
    ck_assert_int_eq(log_open(path, err, sizeof(err)), 0);
    ck_assert_str_eq(log_path(), path);
    log_info("hidden %d", 1);
    log_warn("shown %d", 2);
    log_level_set(1);
    log_info("shown %d", 3);
    log_level_set(2);
    log_command(12, "get a b\r\n", 9);
    const char *text = slurp(path);
    ck_assert_ptr_null(strstr(text, "hidden"));
    ck_assert_ptr_nonnull(strstr(text, "Z warning: shown 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "Z shown 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "Z <12 get a b\n"));
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_a_command_over_the_limit_is_cut_with_dots)
{
    char path[128], err[256];
    static char line[LOG_COMMAND_MAX + 100];
    make_dir();
    snprintf(path, sizeof(path), "%s/log", dir);
    log_setup(2);
    ck_assert_int_eq(log_open(path, err, sizeof(err)), 0);
    memset(line, 'k', sizeof(line));
    log_command(3, line, sizeof(line));
    const char *text = slurp(path);
    const char *start = strstr(text, "<3 ");
    ck_assert_ptr_nonnull(start);
    ck_assert_uint_eq(strlen(start), 3 + LOG_COMMAND_MAX + 3 + 1);
    ck_assert(memcmp(start + 3 + LOG_COMMAND_MAX, "...\n", 4) == 0);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_reopen_moves_writers_to_a_new_file_at_the_path)
{
    char path[128], moved[128], err[256];
    make_dir();
    snprintf(path, sizeof(path), "%s/log", dir);
    snprintf(moved, sizeof(moved), "%s/log.1", dir);
    log_setup(0);
    ck_assert_int_eq(log_reopen(err, sizeof(err)), 0);   /* stderr: nothing to do */
    ck_assert_int_eq(log_open(path, err, sizeof(err)), 0);
    log_warn("before");
    ck_assert_int_eq(rename(path, moved), 0);
    log_warn("renamed, not reopened");
    ck_assert_int_eq(log_reopen(err, sizeof(err)), 0);
    log_warn("after");
    const char *old = slurp(moved);
    ck_assert_ptr_nonnull(strstr(old, "before"));
    ck_assert_ptr_nonnull(strstr(old, "renamed, not reopened"));
    ck_assert_ptr_null(strstr(old, "after"));
    const char *now = slurp(path);
    ck_assert_ptr_nonnull(strstr(now, "warning: after\n"));
    ck_assert_ptr_null(strstr(now, "before"));
    /* The directory gone: reopen fails and says why; the old file stays. */
    unlink(path);
    unlink(moved);
    ck_assert_int_eq(rmdir(dir), 0);
    ck_assert_int_eq(log_reopen(err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot reopen the log file"));
}
END_TEST

START_TEST(test_open_fails_with_the_reason)
{
    char err[256];
    log_setup(0);
    ck_assert_int_eq(log_open("/nonexistent-kioku-dir/log", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "cannot open the log file /nonexistent-kioku-dir/log: "
                          "No such file or directory");
    ck_assert_str_eq(log_path(), "");
}
END_TEST

#define WRITERS 4
#define LINES 1000

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char body[301];
    memset(body, 'a' + id, sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    for (int i = 0; i < LINES; i++)
        log_warn("w%d %05d %s", id, i, body);
    return NULL;
}

START_TEST(test_concurrent_writers_never_interleave_within_a_line)
{
    char path[128], err[256];
    make_dir();
    snprintf(path, sizeof(path), "%s/log", dir);
    log_setup(0);
    ck_assert_int_eq(log_open(path, err, sizeof(err)), 0);
    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(t[i], NULL);
    char *text = slurp(path);
    int count[WRITERS] = {0};
    char *save = NULL;
    for (char *ln = strtok_r(text, "\n", &save); ln != NULL; ln = strtok_r(NULL, "\n", &save)) {
        /* Asserts only on a bad line: Check sends each passing assertion
         * to its parent, a slow round trip under TSan. */
        const char *w = strstr(ln, "Z warning: w");
        if (w == NULL)
            ck_abort_msg("line without its prefix: %.80s", ln);
        int id = w[12] - '0';
        if (id < 0 || id >= WRITERS)
            ck_abort_msg("no writer %d: %.80s", id, ln);
        const char *body = w + 12 + 1 + 1 + 5 + 1;
        char want[300];
        memset(want, 'a' + id, sizeof(want));
        if (strlen(body) != sizeof(want) || memcmp(body, want, sizeof(want)) != 0)
            ck_abort_msg("line of writer %d mixed with another: %.80s", id, ln);
        count[id]++;
    }
    for (int i = 0; i < WRITERS; i++)
        ck_assert_int_eq(count[i], LINES);
    unlink(path);
    rmdir(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_error_warning_notice_always_info_debug_trace_one_v_each);
    tcase_add_test(tc, test_stderr_tags_only_error_and_warning);
    tcase_add_test(tc, test_journal_lines_carry_the_syslog_priority);
    tcase_add_test(tc, test_file_lines_start_with_a_utc_timestamp_in_ms);
    tcase_add_test(tc, test_cr_and_lf_inside_a_message_become_spaces);
    tcase_add_test(tc, test_a_long_message_is_cut_with_dots_and_still_ends_the_line);
    tcase_add_test(tc, test_journal_stream_must_name_stderr_exactly);
    tcase_add_test(tc, test_info_is_written_only_at_v_and_lines_reach_the_file);
    tcase_add_test(tc, test_a_command_over_the_limit_is_cut_with_dots);
    tcase_add_test(tc, test_reopen_moves_writers_to_a_new_file_at_the_path);
    tcase_add_test(tc, test_open_fails_with_the_reason);
    tcase_add_test(tc, test_concurrent_writers_never_interleave_within_a_line);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
