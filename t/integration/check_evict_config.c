/*
 * The configuration and reporting surface of the eviction policies, end to
 * end against a real server from $KIOKU_BIN: every way to choose a policy
 * (--maxmemory-policy, -o maxmemory_policy=, -M, RESP's CONFIG SET) must
 * show the same policy in the three places an operator looks (memcached's
 * "stats settings", Redis's CONFIG GET and INFO memory); --maxmemory takes
 * Redis's units; bad values are usage errors (exit 64) or Redis's exact
 * CONFIG SET errors. Which item a policy evicts is the storage engine's
 * business and is tested there.
 *
 * Each test starts its own server with its own flags; RESP is spoken on the
 * main port (a first byte '*' selects it), the text protocol on a second
 * connection. Expected error texts are redis-server 7.0's, checked over a
 * socket.
 */
#include "harness.h"
#include "harness_resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct kh_server g_srv;
static redisContext *g_rc;
static int g_fd = -1;

#define POLICY_ERR(arg) \
    "-ERR CONFIG SET failed (possibly related to argument '" arg "') - "
#define REDIS_POLICY_LIST \
    "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, " \
    "volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"

/* ---- fixtures ---- */

static void start(const char *const *args)
{
    kh_server_must_start(&g_srv, args);
    g_rc = kh_resp_connect(g_srv.port);
    ck_assert_msg(g_rc != NULL && g_rc->err == 0, "cannot connect to port %d", g_srv.port);
    g_fd = kh_connect(g_srv.port);
    ck_assert_msg(g_fd >= 0, "cannot connect to port %d", g_srv.port);
}

static void stop_expect_clean_exit(void)
{
    redisFree(g_rc);
    g_rc = NULL;
    close(g_fd);
    g_fd = -1;
    ck_assert_msg(kh_server_alive(&g_srv), "the server died during the test");
    kh_server_must_exit_cleanly(&g_srv, kh_scale_ms(10000));
}

/* Safety net for a test that fails before stopping its server. */
static void teardown(void)
{
    if (g_rc != NULL)
        redisFree(g_rc);
    g_rc = NULL;
    if (g_fd >= 0)
        close(g_fd);
    g_fd = -1;
    if (g_srv.pid > 0)
        kh_server_stop(&g_srv, kh_scale_ms(10000));
}

/* ---- RESP ---- */

static void ex(const char *want, const char *fmt, ...)
{
    char got[4096];
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(g_rc, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "no reply to \"%s\" (%s)", fmt, g_rc->errstr);
    kh_resp_render(r, got, sizeof(got));
    freeReplyObject(r);
    ck_assert_msg(strcmp(got, want) == 0, "\"%s\": want <%s>, got <%s>", fmt, want, got);
}

/* The value of field in "INFO section", or "" when absent. */
static void info_field(const char *section, const char *field, char *out, size_t cap)
{
    redisReply *r = redisCommand(g_rc, "INFO %s", section);
    ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STRING, "INFO %s: no bulk reply", section);
    size_t flen = strlen(field);
    out[0] = '\0';
    const char *p = r->str;
    while (p != NULL) {
        if (strncmp(p, field, flen) == 0 && p[flen] == ':') {
            size_t n = strcspn(p + flen + 1, "\r\n");
            snprintf(out, cap, "%.*s", (int)n, p + flen + 1);
            break;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    freeReplyObject(r);
}

/* ---- text protocol ---- */

static void stats_setting(const char *name, char *out, size_t cap)
{
    static char st[65536];
    ck_assert_uint_gt(kh_stats_fetch(g_fd, "stats settings", st, sizeof st), 0);
    ck_assert_msg(kh_stats_find(st, name, out, cap), "stats settings lacks %s", name);
}

static long long stat_num(const char *name)
{
    static char st[65536];
    ck_assert_uint_gt(kh_stats_fetch(g_fd, "stats", st, sizeof st), 0);
    return kh_stats_num(st, name);
}

/* ---- the three views agree ---- */

static void expect_policy_everywhere(const char *policy)
{
    char v[256], want[256];
    stats_setting("maxmemory_policy", v, sizeof v);
    ck_assert_msg(strcmp(v, policy) == 0, "stats settings maxmemory_policy %s, want %s", v, policy);
    stats_setting("evictions", v, sizeof v);
    const char *on = strcmp(policy, "noeviction") == 0 ? "off" : "on";
    ck_assert_msg(strcmp(v, on) == 0, "stats settings evictions %s with %s, want %s", v, policy, on);
    snprintf(want, sizeof want, "[$maxmemory-policy,$%s]", policy);
    ex(want, "CONFIG GET maxmemory-policy");
    info_field("memory", "maxmemory_policy", v, sizeof v);
    ck_assert_msg(strcmp(v, policy) == 0, "INFO maxmemory_policy %s, want %s", v, policy);
}

static void expect_knobs_everywhere(const char *log_factor, const char *decay, const char *samples)
{
    static const char *const stat[] = {"lfu_log_factor", "lfu_decay_time", "maxmemory_samples"};
    static const char *const param[] = {"lfu-log-factor", "lfu-decay-time", "maxmemory-samples"};
    const char *want[] = {log_factor, decay, samples};
    for (int i = 0; i < 3; i++) {
        char v[64], w[128];
        stats_setting(stat[i], v, sizeof v);
        ck_assert_msg(strcmp(v, want[i]) == 0, "stats settings %s %s, want %s", stat[i], v, want[i]);
        snprintf(w, sizeof w, "[$%s,$%s]", param[i], want[i]);
        ex(w, "CONFIG GET %s", param[i]);
    }
}

/* ---- tests ---- */

START_TEST(test_default_policy_is_allkeys_s3fifo_with_redis_knob_defaults)
{
    start(NULL);
    expect_policy_everywhere("allkeys-s3fifo");
    expect_knobs_everywhere("10", "1", "5");
    stop_expect_clean_exit();
}
END_TEST

START_TEST(test_long_flag_sets_the_policy_everywhere)
{
    static const char *const args[] = {"--maxmemory-policy", "allkeys-lfu", "--lfu-log-factor",
                                       "20", "--lfu-decay-time=0", "--maxmemory-samples=10", NULL};
    start(args);
    expect_policy_everywhere("allkeys-lfu");
    expect_knobs_everywhere("20", "0", "10");
    stop_expect_clean_exit();
}
END_TEST

START_TEST(test_long_flag_with_equals_sets_a_volatile_policy)
{
    static const char *const args[] = {"--maxmemory-policy=volatile-lru", NULL};
    start(args);
    expect_policy_everywhere("volatile-lru");
    stop_expect_clean_exit();
}
END_TEST

START_TEST(test_o_form_sets_the_policy_and_knobs_everywhere)
{
    static const char *const args[] = {
        "-o", "maxmemory_policy=volatile-ttl,lfu_log_factor=3,lfu_decay_time=7,maxmemory_samples=9",
        NULL};
    start(args);
    expect_policy_everywhere("volatile-ttl");
    expect_knobs_everywhere("3", "7", "9");
    stop_expect_clean_exit();
}
END_TEST

START_TEST(test_M_shows_noeviction)
{
    static const char *const args[] = {"-M", NULL};
    start(args);
    expect_policy_everywhere("noeviction");
    stop_expect_clean_exit();
}
END_TEST

START_TEST(test_noeviction_policy_flag_turns_evictions_off)
{
    static const char *const args[] = {"--maxmemory-policy", "noeviction", NULL};
    start(args);
    expect_policy_everywhere("noeviction");
    stop_expect_clean_exit();
}
END_TEST

START_TEST(test_config_set_changes_the_policy_everywhere)
{
    start(NULL);
    static const char *const names[] = {"volatile-lru", "allkeys-lru", "noeviction",
                                        "allkeys-random", "volatile-random", "volatile-lfu",
                                        "volatile-ttl", "allkeys-lfu", "allkeys-s3fifo"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        ex("+OK", "CONFIG SET maxmemory-policy %s", names[i]);
        expect_policy_everywhere(names[i]);
    }
    ex("+OK", "CONFIG SET MAXMEMORY-POLICY ALLKEYS-LRU");   /* as Redis: any case */
    expect_policy_everywhere("allkeys-lru");
    stop_expect_clean_exit();
}
END_TEST

START_TEST(test_config_set_unknown_policy_gets_redis_error_and_changes_nothing)
{
    start(NULL);
    ex("+OK", "CONFIG SET maxmemory-policy volatile-ttl");
    ex(POLICY_ERR("maxmemory-policy") REDIS_POLICY_LIST, "CONFIG SET maxmemory-policy allkeys-lru2");
    ex(POLICY_ERR("maxmemory-policy") REDIS_POLICY_LIST, "CONFIG SET maxmemory-policy %s", "");
    ex(POLICY_ERR("maxmemory-policy") REDIS_POLICY_LIST, "CONFIG SET Maxmemory-Policy s3fifo");
    /* several pairs are all or nothing: the good one before the bad one stays unset */
    ex(POLICY_ERR("lfu-log-factor") "argument couldn't be parsed into an integer",
       "CONFIG SET maxmemory-policy allkeys-lru lfu-log-factor x");
    ex(POLICY_ERR("maxmemory-policy") "duplicate parameter",
       "CONFIG SET maxmemory-policy allkeys-lru maxmemory-policy noeviction");
    ex("-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'",
       "CONFIG SET lfu-log-factor x nosuch 1");
    expect_policy_everywhere("volatile-ttl");
    expect_knobs_everywhere("10", "1", "5");
    ex("+OK", "CONFIG SET maxmemory-policy allkeys-lfu lfu-log-factor 4 lfu-decay-time 2");
    expect_policy_everywhere("allkeys-lfu");
    expect_knobs_everywhere("4", "2", "5");
    stop_expect_clean_exit();
}
END_TEST

START_TEST(test_config_set_lfu_knobs_and_samples_with_redis_validation)
{
    start(NULL);
    ex("+OK", "CONFIG SET lfu-log-factor 0");
    ex("+OK", "CONFIG SET lfu-decay-time 2147483647");
    ex("+OK", "CONFIG SET maxmemory-samples 1");
    expect_knobs_everywhere("0", "2147483647", "1");
    ex(POLICY_ERR("lfu-log-factor") "argument must be between 0 and 2147483647 inclusive",
       "CONFIG SET lfu-log-factor -1");
    ex(POLICY_ERR("lfu-log-factor") "argument must be between 0 and 2147483647 inclusive",
       "CONFIG SET lfu-log-factor 2147483648");
    ex(POLICY_ERR("lfu-decay-time") "argument couldn't be parsed into an integer",
       "CONFIG SET lfu-decay-time 1.5");
    ex(POLICY_ERR("lfu-decay-time") "argument couldn't be parsed into an integer",
       "CONFIG SET lfu-decay-time 05");
    ex(POLICY_ERR("maxmemory-samples") "argument must be between 1 and 2147483647 inclusive",
       "CONFIG SET maxmemory-samples 0");
    ex(POLICY_ERR("maxmemory-samples") "argument couldn't be parsed into an integer",
       "CONFIG SET maxmemory-samples %s", "");
    expect_knobs_everywhere("0", "2147483647", "1");
    /* Redis accepts any positive count; kioku samples at most 64 and says so */
    ex("+OK", "CONFIG SET maxmemory-samples 1000");
    expect_knobs_everywhere("0", "2147483647", "64");
    stop_expect_clean_exit();
}
END_TEST

START_TEST(test_maxmemory_64mb_equals_m_64_in_limit_maxbytes)
{
    static const char *const m64[] = {"-m", "64", NULL};
    start(m64);
    long long want = stat_num("limit_maxbytes");
    ck_assert_int_eq(want, 64LL << 20);
    stop_expect_clean_exit();

    static const char *const forms[][3] = {
        {"--maxmemory", "64mb", NULL}, {"--maxmemory", "64MB", NULL},
        {"--maxmemory=67108864", NULL, NULL}, {"--maxmemory", "65536kb", NULL},
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        start(forms[i]);
        ck_assert_msg(stat_num("limit_maxbytes") == want, "%s %s: limit_maxbytes %lld, want %lld",
                      forms[i][0], forms[i][1] ? forms[i][1] : "", stat_num("limit_maxbytes"), want);
        ex("[$maxmemory,$67108864]", "CONFIG GET maxmemory");
        stop_expect_clean_exit();
    }
    /* m is 10^6 as in Redis, not a mebibyte */
    static const char *const m100[] = {"--maxmemory", "100m", NULL};
    start(m100);
    ck_assert_int_eq(stat_num("limit_maxbytes"), 100000000LL);
    stop_expect_clean_exit();
}
END_TEST

static void expect_usage_error(const char *const *args, const char *const *mentions)
{
    char out[4096];
    int st = kh_run_capture(args, out, sizeof out, kh_scale_ms(10000));
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 64,
                  "%s %s: wait status 0x%x (want exit 64), output: %s", args[0],
                  args[1] ? args[1] : "", (unsigned)st, out);
    for (int i = 0; mentions[i] != NULL; i++)
        ck_assert_msg(strstr(out, mentions[i]) != NULL, "%s %s: message lacks \"%s\": %s",
                      args[0], args[1] ? args[1] : "", mentions[i], out);
}

START_TEST(test_bad_maxmemory_is_a_usage_error)
{
    static const char *const bad[] = {"64xb", "mb", "-1", "0", "1.5gb"};
    static const char *const mentions[] = {"--maxmemory", "--help", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *args[] = {"--maxmemory", bad[i], NULL};
        expect_usage_error(args, mentions);
    }
}
END_TEST

START_TEST(test_unknown_policy_flag_is_a_usage_error_naming_the_valid_ones)
{
    static const char *const mentions[] = {"lru3", "allkeys-s3fifo", "allkeys-lru", "allkeys-lfu",
                                           "allkeys-random", "volatile-lru", "volatile-lfu",
                                           "volatile-ttl", "volatile-random", "noeviction",
                                           "--help", NULL};
    static const char *const a1[] = {"--maxmemory-policy", "lru3", NULL};
    static const char *const a2[] = {"-o", "maxmemory_policy=lru3", NULL};
    expect_usage_error(a1, mentions);
    expect_usage_error(a2, mentions);
    static const char *const a3[] = {"--maxmemory-samples", "0", NULL};
    static const char *const m3[] = {"maxmemory_samples", NULL};
    expect_usage_error(a3, m3);
    static const char *const a4[] = {"-o", "lfu_log_factor=-1", NULL};
    static const char *const m4[] = {"lfu_log_factor", NULL};
    expect_usage_error(a4, m4);
}
END_TEST

START_TEST(test_info_evicted_keys_is_the_storage_eviction_total)
{
    static const char *const args[] = {"-m", "4", "--maxmemory-policy", "allkeys-lru", NULL};
    static char val[10 * 1024];
    start(args);
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 1200; i++) {   /* 12 MB into 4 MB */
        redisReply *r = redisCommand(g_rc, "SET key:%d %b", i, val, sizeof val);
        ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STATUS, "SET key:%d failed", i);
        freeReplyObject(r);
    }
    long long ev = stat_num("evictions");
    char v[64];
    info_field("stats", "evicted_keys", v, sizeof v);
    ck_assert_msg(ev > 0, "12 MB stored into -m 4 but evictions = %lld", ev);
    ck_assert_msg(atoll(v) == ev, "INFO evicted_keys %s, stats evictions %lld", v, ev);
    stop_expect_clean_exit();
}
END_TEST

int main(void)
{
    if (!kh_server_is_kioku()) {
        fprintf(stderr, "check_evict_config: %s is not kioku; skipped\n", kh_server_bin());
        return 77;
    }
    Suite *s = suite_create("evict_config");
    TCase *tc = tcase_create("policy");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    const TTest *const tests[] = {
        test_default_policy_is_allkeys_s3fifo_with_redis_knob_defaults,
        test_long_flag_sets_the_policy_everywhere,
        test_long_flag_with_equals_sets_a_volatile_policy,
        test_o_form_sets_the_policy_and_knobs_everywhere,
        test_M_shows_noeviction,
        test_noeviction_policy_flag_turns_evictions_off,
        test_config_set_changes_the_policy_everywhere,
        test_config_set_unknown_policy_gets_redis_error_and_changes_nothing,
        test_config_set_lfu_knobs_and_samples_with_redis_validation,
        test_maxmemory_64mb_equals_m_64_in_limit_maxbytes,
        test_bad_maxmemory_is_a_usage_error,
        test_unknown_policy_flag_is_a_usage_error_naming_the_valid_ones,
        test_info_evicted_keys_is_the_storage_eviction_total,
    };
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return kh_run_suite(s);
}
