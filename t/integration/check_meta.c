/*
 * memcached meta commands (mg ms md ma mn me) against a real server from
 * $KIOKU_BIN, over raw sockets.
 *
 * Replies are asserted byte for byte, as memcached 1.6.45 sends them (the
 * spec is doc/protocol.txt, "Meta Commands"). Where a value depends on the
 * server's clock or its CAS counter (t, l, c), the test reads the number
 * and checks it against what it must be (a TTL at most 5 s below the one
 * set, the CAS the text protocol's gets reports, ...). Checks of kioku's
 * own choices (item sizes in me, errors where memcached 1.6.45 is lenient)
 * are gated with kh_server_is_kioku().
 *
 * The stampede tests open 16 connections, release them together with a
 * barrier and require that exactly one of them is told W ("you recache")
 * per window while all the others are told Z, for several windows in a row.
 */
#include "harness.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct kh_server g_srv;
static int g_fd = -1;

static void server_start(void)
{
    kh_server_must_start(&g_srv, NULL);
}

static void server_stop(void)
{
    kh_server_must_exit_cleanly(&g_srv, kh_scale_ms(10000));
}

static void conn_open_empty(void)
{
    g_fd = kh_connect(g_srv.port);
    ck_assert_msg(g_fd >= 0, "could not connect to port %d", g_srv.port);
    KH_EXPECT(g_fd, "flush_all\r\n", "OK\r\n");
}

/* E sets a client-chosen CAS: these tests get a server of their own and
 * no flush_all, because kioku's flush_all hides items by CAS (see the
 * report on E and flush_all). */
static void own_server_setup(void)
{
    server_start();
    g_fd = kh_connect(g_srv.port);
    ck_assert_msg(g_fd >= 0, "could not connect to port %d", g_srv.port);
}

static void conn_close(void)
{
    if (g_fd >= 0)
        close(g_fd);
    g_fd = -1;
    ck_assert_msg(kh_server_alive(&g_srv), "the server died during the test");
}

static void own_server_teardown(void)
{
    conn_close();
    server_stop();
}

/* ---- helpers ---- */

/* Send req and read one reply line (through "\r\n") into buf. */
static const char *line_of(int fd, const char *req, char *buf, size_t cap)
{
    ck_assert_int_eq(kh_send_all(fd, req, strlen(req)), 0);
    size_t n = kh_read_until(fd, buf, cap, "\r\n", kh_scale_ms(KH_IO_TIMEOUT_MS), NULL);
    ck_assert_msg(n >= 2 && strcmp(buf + n - 2, "\r\n") == 0, "no reply line to %s", req);
    return buf;
}

/* The number of returned flag `letter` (" <letter><num>") in a reply line;
 * LLONG_MIN when absent. */
static long long flag_num(const char *line, char letter)
{
    const char *p = line;
    while ((p = strchr(p, ' ')) != NULL) {
        p++;
        if (*p == letter && (p[1] == '-' || (p[1] >= '0' && p[1] <= '9')))
            return strtoll(p + 1, NULL, 10);
    }
    return LLONG_MIN;
}

/* Send req, require a reply line starting with `code` and return its
 * flag `letter`'s number. */
static long long req_num(int fd, const char *req, const char *code, char letter)
{
    char buf[1024];
    line_of(fd, req, buf, sizeof buf);
    ck_assert_msg(strncmp(buf, code, strlen(code)) == 0, "%s -> %s", req, buf);
    long long v = flag_num(buf, letter);
    ck_assert_msg(v != LLONG_MIN, "no %c flag in reply to %s: %s", letter, req, buf);
    return v;
}

static unsigned long long cas_of(int fd, const char *key)
{
    char req[300];
    snprintf(req, sizeof req, "mg %s c\r\n", key);
    return (unsigned long long)req_num(fd, req, "HD", 'c');
}

/* TTL the server reports must be at most what was set and at most 5 s
 * below it: one second covers a normal run, but a sanitizer build (TSan
 * runs this file) on a busy machine may stall longer between the set and
 * the read; 5 s still tells apart every TTL these tests set (30, 60, 100,
 * 200). */
#define ASSERT_TTL(got, set)                                                   \
    do {                                                                       \
        long long ttl_ = (got);                                                \
        ck_assert_msg(ttl_ <= (set) && ttl_ >= (set) - 5, "ttl %lld, set %d",  \
                      ttl_, (set));                                            \
    } while (0)

/* ---- mn, mg ---- */

START_TEST(test_mn_answers_MN)
{
    KH_EXPECT(g_fd, "mn\r\n", "MN\r\n");
}
END_TEST

START_TEST(test_mg_miss_is_EN_with_k_and_O_only)
{
    KH_EXPECT(g_fd, "mg nope v\r\n", "EN\r\n");
    KH_EXPECT(g_fd, "mg nope v t c f s k Oab\r\n", "EN knope Oab\r\n");
    KH_EXPECT(g_fd, "mg nope\r\n", "EN\r\n");
}
END_TEST

START_TEST(test_mg_q_hides_miss_but_not_hit)
{
    KH_EXPECT(g_fd, "mg nope q v\r\nmg nope q k\r\nmn\r\n", "MN\r\n");
    KH_EXPECT(g_fd, "ms there 2\r\nhi\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg there q v\r\n", "VA 2\r\nhi\r\n");
    KH_EXPECT(g_fd, "mg there q\r\n", "HD\r\n");
}
END_TEST

/* memcached 1.6.45: a client that holds the item's CAS gets HD, no value
 * (its t/metaget.t "mg returned HD because CAS matched"). */
START_TEST(test_mg_C_matching_cas_leaves_the_value_out)
{
    KH_EXPECT(g_fd, "ms vcas 2 E777\r\nva\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg vcas C777 v c\r\n", "HD c777\r\n");
    KH_EXPECT(g_fd, "mg vcas C776 v c\r\n", "VA 2 c777\r\nva\r\n");
    KH_EXPECT(g_fd, "mg vcas C777 s\r\n", "HD s2\r\n");
}
END_TEST

START_TEST(test_mg_returns_flags_in_request_order)
{
    KH_EXPECT(g_fd, "ms foo 3 F5\r\nbar\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg foo s v f k Oz\r\n", "VA 3 s3 f5 kfoo Oz\r\nbar\r\n");
    KH_EXPECT(g_fd, "mg foo Oq k f s\r\n", "HD Oq kfoo f5 s3\r\n");
    KH_EXPECT(g_fd, "mg foo\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg foo t\r\n", "HD t-1\r\n");
}
END_TEST

START_TEST(test_mg_t_reports_remaining_ttl)
{
    KH_EXPECT(g_fd, "ms foo 1 T100\r\nx\r\n", "HD\r\n");
    ASSERT_TTL(req_num(g_fd, "mg foo t\r\n", "HD", 't'), 100);
}
END_TEST

START_TEST(test_mg_T_updates_ttl)
{
    KH_EXPECT(g_fd, "ms foo 1\r\nx\r\n", "HD\r\n");
    ASSERT_TTL(req_num(g_fd, "mg foo T200 t\r\n", "HD", 't'), 200);
    ASSERT_TTL(req_num(g_fd, "mg foo t\r\n", "HD", 't'), 200);
    KH_EXPECT(g_fd, "mg foo T0 t\r\n", "HD t-1\r\n");
    KH_EXPECT(g_fd, "mg foo T-1 v\r\n", "VA 1\r\nx\r\n");
    KH_EXPECT(g_fd, "mg foo v\r\n", "EN\r\n");
}
END_TEST

START_TEST(test_mg_h_reports_hit_before_and_u_skips_it)
{
    KH_EXPECT(g_fd, "ms foo 1\r\nx\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg foo h u\r\n", "HD h0\r\n");
    KH_EXPECT(g_fd, "mg foo h\r\n", "HD h0\r\n");
    KH_EXPECT(g_fd, "mg foo h\r\n", "HD h1\r\n");
}
END_TEST

static long long mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec;
}

/* Whole seconds on either side, so one more than the time that passed may
 * show; the upper bounds are the time measured here, as a sanitizer build
 * on a busy machine may stall past a fixed one. */
START_TEST(test_mg_l_reports_seconds_since_access)
{
    long long t0 = mono_s();
    KH_EXPECT(g_fd, "ms foo 1\r\nx\r\n", "HD\r\n");
    long long l = req_num(g_fd, "mg foo l\r\n", "HD", 'l');
    ck_assert_msg(l >= 0 && l <= mono_s() - t0 + 1, "l%lld", l);
    sleep(2);
    l = req_num(g_fd, "mg foo l u\r\n", "HD", 'l');
    ck_assert_msg(l >= 1 && l <= mono_s() - t0 + 1, "l%lld after 2s (%lld s passed)", l,
                  mono_s() - t0);
}
END_TEST

START_TEST(test_mg_c_is_the_cas_gets_reports)
{
    char buf[256];
    KH_EXPECT(g_fd, "set foo 0 0 1\r\nx\r\n", "STORED\r\n");
    unsigned long long cas = cas_of(g_fd, "foo");
    snprintf(buf, sizeof buf, "VALUE foo 0 1 %llu\r\nx\r\nEND\r\n", cas);
    KH_EXPECT(g_fd, "gets foo\r\n", buf);
}
END_TEST

/* memcached 1.6 ignores a known flag that does not apply to the command. */
START_TEST(test_flags_that_do_not_apply_are_ignored)
{
    KH_EXPECT(g_fd, "ms foo 2 T0 F5 v R30 h\r\nhi\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg foo v f I x D3 J4 F9\r\n", "VA 2 f5\r\nhi\r\n");
    KH_EXPECT(g_fd, "md foo q c f v O7 k\r\nmn\r\n", "MN\r\n");
    KH_EXPECT(g_fd, "mg foo v\r\n", "EN\r\n");
    KH_EXPECT(g_fd, "me foo v Y\r\n", "EN\r\n");   /* me reads only a b after the key */
    KH_EXPECT(g_fd, "ma foo MDI N0 J5 v\r\n", "VA 1\r\n5\r\n");   /* M: its first character */
    KH_EXPECT(g_fd, "ma foo MDI v\r\n", "VA 1\r\n4\r\n");
}
END_TEST

START_TEST(test_mg_bad_flags_are_client_errors)
{
    KH_EXPECT(g_fd, "mg foo v v\r\n", "CLIENT_ERROR duplicate flag\r\n");
    KH_EXPECT(g_fd, "mg foo Y\r\n", "CLIENT_ERROR invalid flag\r\n");
    KH_EXPECT(g_fd, "mg foo Tabc\r\n", "CLIENT_ERROR bad token in command line format\r\n");
    KH_EXPECT(g_fd, "mg foo O123456789012345678901234567890123\r\n",
              "CLIENT_ERROR opaque token too long\r\n");
    KH_EXPECT(g_fd, "mn\r\n", "MN\r\n");
}
END_TEST

/* ---- stampede protection, one client ---- */

START_TEST(test_mg_N_vivifies_and_hands_out_one_win)
{
    KH_EXPECT(g_fd, "mg viv N30 v s f\r\n", "VA 0 s0 f0 W\r\n\r\n");
    KH_EXPECT(g_fd, "mg viv N30 v\r\n", "VA 0 Z\r\n\r\n");
    KH_EXPECT(g_fd, "mg viv v\r\n", "VA 0 Z\r\n\r\n");
    KH_EXPECT(g_fd, "mg viv N30 q k\r\n", "HD kviv Z\r\n");
    ASSERT_TTL(req_num(g_fd, "mg viv t\r\n", "HD", 't'), 30);
    /* The winner recaches: the new item has no token. */
    KH_EXPECT(g_fd, "ms viv 3 T60\r\nnew\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg viv N30 v\r\n", "VA 3\r\nnew\r\n");
}
END_TEST

START_TEST(test_mg_N_with_E_sets_the_cas)
{
    KH_EXPECT(g_fd, "mg viv N30 E4242 c\r\n", "HD c4242 W\r\n");
}
END_TEST

START_TEST(test_mg_R_wins_once_below_threshold)
{
    KH_EXPECT(g_fd, "ms r 3 T100\r\nold\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg r R30 v\r\n", "VA 3\r\nold\r\n");
    KH_EXPECT(g_fd, "ms r 3 T10\r\nold\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg r R30 v\r\n", "VA 3 W\r\nold\r\n");
    KH_EXPECT(g_fd, "mg r R30 v\r\n", "VA 3 Z\r\nold\r\n");
    KH_EXPECT(g_fd, "mg r v\r\n", "VA 3 Z\r\nold\r\n");
    /* no TTL: never wins */
    KH_EXPECT(g_fd, "ms r 3\r\nnew\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg r R30 v\r\n", "VA 3\r\nnew\r\n");
}
END_TEST

START_TEST(test_md_I_marks_stale_then_one_reader_wins)
{
    KH_EXPECT(g_fd, "ms st 3 T100\r\nold\r\n", "HD\r\n");
    unsigned long long c0 = cas_of(g_fd, "st");
    KH_EXPECT(g_fd, "md st I T30 k\r\n", "HD kst\r\n");
    KH_EXPECT(g_fd, "mg st v\r\n", "VA 3 X W\r\nold\r\n");
    KH_EXPECT(g_fd, "mg st v\r\n", "VA 3 Z X\r\nold\r\n");
    KH_EXPECT(g_fd, "mg st s\r\n", "HD s3 Z X\r\n");
    ASSERT_TTL(req_num(g_fd, "mg st t\r\n", "HD", 't'), 30);
    ck_assert_uint_gt(cas_of(g_fd, "st"), c0);     /* I bumps the CAS */
    /* A second invalidation opens a new window. */
    KH_EXPECT(g_fd, "md st I q\r\nmn\r\n", "MN\r\n");
    KH_EXPECT(g_fd, "mg st v\r\n", "VA 3 X W\r\nold\r\n");
    /* A plain set ends the staleness. */
    KH_EXPECT(g_fd, "ms st 3\r\nnew\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg st v\r\n", "VA 3\r\nnew\r\n");
}
END_TEST

START_TEST(test_ms_I_with_older_cas_stores_but_stays_stale)
{
    char req[128];
    KH_EXPECT(g_fd, "ms st 3 T100\r\nold\r\n", "HD\r\n");
    unsigned long long c0 = cas_of(g_fd, "st");
    KH_EXPECT(g_fd, "md st I\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg st\r\n", "HD X W\r\n");
    /* without I an old CAS is refused */
    snprintf(req, sizeof req, "ms st 3 C%llu\r\nnew\r\n", c0);
    KH_EXPECT(g_fd, req, "EX\r\n");
    snprintf(req, sizeof req, "ms st 3 I C%llu\r\nnew\r\n", c0);
    KH_EXPECT(g_fd, req, "HD\r\n");
    KH_EXPECT(g_fd, "mg st v\r\n", "VA 3 Z X\r\nnew\r\n");
    /* a CAS newer than the item's is refused even with I */
    snprintf(req, sizeof req, "ms st 3 I C%llu\r\nbad\r\n", cas_of(g_fd, "st") + 1000);
    KH_EXPECT(g_fd, req, "EX\r\n");
    /* the current CAS stores a fresh, valid item */
    snprintf(req, sizeof req, "ms st 3 C%llu\r\nfin\r\n", cas_of(g_fd, "st"));
    KH_EXPECT(g_fd, req, "HD\r\n");
    KH_EXPECT(g_fd, "mg st v\r\n", "VA 3\r\nfin\r\n");
}
END_TEST

/* ---- ms ---- */

START_TEST(test_ms_returns_c_s_k_O)
{
    KH_EXPECT(g_fd, "ms foo 2 s k Oq\r\nhi\r\n", "HD s2 kfoo Oq\r\n");
    long long c = req_num(g_fd, "ms foo 2 c\r\nho\r\n", "HD", 'c');
    ck_assert_uint_eq((unsigned long long)c, cas_of(g_fd, "foo"));
    KH_EXPECT(g_fd, "ms foo 3 ME c s k Oq\r\nhey\r\n", "NS c0 s3 kfoo Oq\r\n");
}
END_TEST

START_TEST(test_ms_F_T_set_flags_and_ttl)
{
    KH_EXPECT(g_fd, "ms foo 3 F4294967295 T100\r\nbar\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg foo f v\r\n", "VA 3 f4294967295\r\nbar\r\n");
    ASSERT_TTL(req_num(g_fd, "mg foo t\r\n", "HD", 't'), 100);
    KH_EXPECT(g_fd, "ms foo 3\r\nbaz\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg foo f t v\r\n", "VA 3 f0 t-1\r\nbaz\r\n");
    KH_EXPECT(g_fd, "ms foo 3 T-1\r\nbaz\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg foo v\r\n", "EN\r\n");
}
END_TEST

START_TEST(test_ms_modes)
{
    KH_EXPECT(g_fd, "ms m 1 MR\r\nr\r\n", "NS\r\n");
    KH_EXPECT(g_fd, "ms m 1 MA\r\na\r\n", "NS\r\n");
    KH_EXPECT(g_fd, "ms m 1 MP\r\np\r\n", "NS\r\n");
    KH_EXPECT(g_fd, "ms m 1 ME\r\ne\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "ms m 1 ME\r\nE\r\n", "NS\r\n");
    KH_EXPECT(g_fd, "ms m 1 MA s\r\na\r\n", "HD s2\r\n");
    KH_EXPECT(g_fd, "ms m 1 MP\r\np\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg m v\r\n", "VA 3\r\npea\r\n");
    KH_EXPECT(g_fd, "ms m 1 MR\r\nr\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg m v\r\n", "VA 1\r\nr\r\n");
    KH_EXPECT(g_fd, "ms m 1 MS\r\ns\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg m v\r\n", "VA 1\r\ns\r\n");
    KH_EXPECT(g_fd, "ms m 1 MX\r\nx\r\n", "CLIENT_ERROR invalid mode for ms M token\r\n");
    KH_EXPECT(g_fd, "mg m v\r\n", "VA 1\r\ns\r\n");
}
END_TEST

START_TEST(test_ms_append_keeps_flags_and_ttl)
{
    KH_EXPECT(g_fd, "ms m 1 F9 T100\r\na\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "ms m 1 MA F1 T5\r\nb\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg m f v\r\n", "VA 2 f9\r\nab\r\n");
    ASSERT_TTL(req_num(g_fd, "mg m t\r\n", "HD", 't'), 100);
}
END_TEST

START_TEST(test_ms_append_N_autovivifies)
{
    KH_EXPECT(g_fd, "ms m 3 MA N30\r\nhey\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg m v\r\n", "VA 3\r\nhey\r\n");
    ASSERT_TTL(req_num(g_fd, "mg m t\r\n", "HD", 't'), 30);
    KH_EXPECT(g_fd, "ms m 1 MA N30\r\n!\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg m v\r\n", "VA 4\r\nhey!\r\n");
}
END_TEST

START_TEST(test_ms_C_compares_cas)
{
    char req[128];
    KH_EXPECT(g_fd, "ms c 3 C5 c\r\nhey\r\n", "NF c0\r\n");
    KH_EXPECT(g_fd, "ms c 3 MR C5\r\nhey\r\n", "NF\r\n");
    KH_EXPECT(g_fd, "ms c 1\r\na\r\n", "HD\r\n");
    unsigned long long cas = cas_of(g_fd, "c");
    snprintf(req, sizeof req, "ms c 1 C%llu\r\nb\r\n", cas + 1);
    KH_EXPECT(g_fd, req, "EX\r\n");
    snprintf(req, sizeof req, "ms c 1 MA C%llu\r\nb\r\n", cas + 1);
    KH_EXPECT(g_fd, req, "EX\r\n");
    snprintf(req, sizeof req, "ms c 1 MA C%llu\r\nb\r\n", cas);
    KH_EXPECT(g_fd, req, "HD\r\n");
    KH_EXPECT(g_fd, "mg c v\r\n", "VA 2\r\nab\r\n");
    snprintf(req, sizeof req, "ms c 1 C%llu\r\nz\r\n", cas_of(g_fd, "c"));
    KH_EXPECT(g_fd, req, "HD\r\n");
    KH_EXPECT(g_fd, "mg c v\r\n", "VA 1\r\nz\r\n");
}
END_TEST

START_TEST(test_ms_E_sets_the_new_cas)
{
    KH_EXPECT(g_fd, "ms e 1 E500 c\r\na\r\n", "HD c500\r\n");
    KH_EXPECT(g_fd, "mg e c\r\n", "HD c500\r\n");
    KH_EXPECT(g_fd, "gets e\r\n", "VALUE e 0 1 500\r\na\r\nEND\r\n");
    KH_EXPECT(g_fd, "ms e 1 C500 E501\r\nb\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg e c v\r\n", "VA 1 c501\r\nb\r\n");
}
END_TEST

START_TEST(test_ms_q_hides_only_HD)
{
    KH_EXPECT(g_fd, "ms q 1 q\r\na\r\nms q 1 q ME\r\nb\r\nms q 1 q C1\r\nc\r\nmn\r\n",
              "NS\r\nEX\r\nMN\r\n");
    KH_EXPECT(g_fd, "mg q v\r\n", "VA 1\r\na\r\n");
}
END_TEST

START_TEST(test_ms_bad_data_chunk)
{
    KH_EXPECT(g_fd, "ms foo 3\r\nabcXY", "CLIENT_ERROR bad data chunk\r\n");
    KH_EXPECT(g_fd, "mn\r\n", "MN\r\n");
    KH_EXPECT(g_fd, "mg foo v\r\n", "EN\r\n");
}
END_TEST

START_TEST(test_ms_rejected_line_skips_its_data)
{
    KH_EXPECT(g_fd, "ms foo 2 Y\r\nmn\r\nmn\r\n", "CLIENT_ERROR invalid flag\r\nMN\r\n");
    KH_EXPECT(g_fd, "ms foo 3 Y\r\nabc\r\nmn\r\n", "CLIENT_ERROR invalid flag\r\nMN\r\n");
    KH_EXPECT(g_fd, "ms foo abc\r\nmn\r\n", "CLIENT_ERROR bad command line format\r\nMN\r\n");
    KH_EXPECT(g_fd, "mg foo v\r\n", "EN\r\n");
}
END_TEST

START_TEST(test_ms_too_large_is_refused_and_old_value_dropped)
{
    const size_t n = 2 * 1024 * 1024;
    char *big = malloc(n + 64);
    ck_assert_ptr_nonnull(big);
    KH_EXPECT(g_fd, "ms big 3\r\nold\r\n", "HD\r\n");
    int h = snprintf(big, 64, "ms big %zu\r\n", n);
    memset(big + h, 'x', n);
    memcpy(big + h + n, "\r\nmn\r\n", 6);
    KH_EXPECT_N(g_fd, big, (size_t)h + n + 6,
                "SERVER_ERROR object too large for cache\r\nMN\r\n",
                strlen("SERVER_ERROR object too large for cache\r\nMN\r\n"));
    free(big);
    KH_EXPECT(g_fd, "mg big v\r\n", "EN\r\n");
}
END_TEST

START_TEST(test_ms_large_value_reads_back)
{
    const size_t n = 900 * 1024;
    char *buf = malloc(n + 64);
    ck_assert_ptr_nonnull(buf);
    int h = snprintf(buf, 64, "ms big %zu\r\n", n);
    for (size_t i = 0; i < n; i++)
        buf[h + i] = (char)('a' + i % 26);
    memcpy(buf + h + n, "\r\n", 2);
    KH_EXPECT_N(g_fd, buf, (size_t)h + n + 2, "HD\r\n", 4);
    KH_EXPECT(g_fd, "ms big 1 MA\r\n!\r\n", "HD\r\n");
    char want[64];
    int wl = snprintf(want, sizeof want, "VA %zu\r\n", n + 1);
    memmove(buf + wl, buf + h, n);
    memcpy(buf, want, (size_t)wl);
    memcpy(buf + wl + n, "!\r\n", 3);
    KH_EXPECT_N(g_fd, "mg big v\r\n", 10, buf, (size_t)wl + n + 3);
    free(buf);
}
END_TEST

/* ---- md ---- */

START_TEST(test_md_deletes_and_reports)
{
    KH_EXPECT(g_fd, "md d\r\n", "NF\r\n");
    KH_EXPECT(g_fd, "md d q k Oo\r\n", "NF kd Oo\r\n");
    KH_EXPECT(g_fd, "ms d 1\r\na\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "md d k Oo\r\n", "HD kd Oo\r\n");
    KH_EXPECT(g_fd, "mg d v\r\n", "EN\r\n");
    KH_EXPECT(g_fd, "ms d 1\r\na\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "md d q\r\nmn\r\n", "MN\r\n");
    KH_EXPECT(g_fd, "mg d v\r\n", "EN\r\n");
}
END_TEST

START_TEST(test_md_C_compares_cas)
{
    char req[128];
    KH_EXPECT(g_fd, "ms d 1\r\na\r\n", "HD\r\n");
    unsigned long long cas = cas_of(g_fd, "d");
    snprintf(req, sizeof req, "md d q C%llu\r\n", cas + 1);
    KH_EXPECT(g_fd, req, "EX\r\n");
    snprintf(req, sizeof req, "md d C%llu\r\n", cas);
    KH_EXPECT(g_fd, req, "HD\r\n");
    KH_EXPECT(g_fd, "mg d\r\n", "EN\r\n");
}
END_TEST

START_TEST(test_md_x_keeps_an_empty_item)
{
    KH_EXPECT(g_fd, "ms d 3 F5 E700\r\nabc\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "md d x\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg d v f c\r\n", "VA 0 f0 c700\r\n\r\n");
}
END_TEST

START_TEST(test_md_I_with_E_sets_cas)
{
    KH_EXPECT(g_fd, "ms d 3\r\nabc\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "md d I E900\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg d c v\r\n", "VA 3 c900 X W\r\nabc\r\n");
}
END_TEST

/* ---- ma ---- */

START_TEST(test_ma_incr_decr_and_modes)
{
    KH_EXPECT(g_fd, "ma n\r\n", "NF\r\n");
    KH_EXPECT(g_fd, "ma n q k Oo\r\n", "NF kn Oo\r\n");
    KH_EXPECT(g_fd, "ms n 2\r\n10\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "ma n\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "ma n v\r\n", "VA 2\r\n12\r\n");
    KH_EXPECT(g_fd, "ma n v MI D8\r\n", "VA 2\r\n20\r\n");
    KH_EXPECT(g_fd, "ma n v M+ D80\r\n", "VA 3\r\n100\r\n");
    KH_EXPECT(g_fd, "ma n v MD D1\r\n", "VA 2\r\n99\r\n");
    KH_EXPECT(g_fd, "ma n v M- D1000\r\n", "VA 1\r\n0\r\n");
    KH_EXPECT(g_fd, "ma n v D18446744073709551615\r\n", "VA 20\r\n18446744073709551615\r\n");
    KH_EXPECT(g_fd, "ma n v D2\r\n", "VA 1\r\n1\r\n");
    KH_EXPECT(g_fd, "ma n MX\r\n", "CLIENT_ERROR invalid mode for ma M token\r\n");
    KH_EXPECT(g_fd, "ma n Dabc\r\n", "CLIENT_ERROR invalid or duplicate flag\r\n");
    KH_EXPECT(g_fd, "ms s 2\r\nab\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "ma s\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
}
END_TEST

START_TEST(test_ma_N_J_autovivify)
{
    KH_EXPECT(g_fd, "ma n N0 J10 v t k Oo\r\n", "VA 2 t-1 kn Oo\r\n10\r\n");
    KH_EXPECT(g_fd, "ma n N0 J10 v\r\n", "VA 2\r\n11\r\n");
    KH_EXPECT(g_fd, "ma m N100 J7 MD\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg m v\r\n", "VA 1\r\n7\r\n");
    ASSERT_TTL(req_num(g_fd, "mg m t\r\n", "HD", 't'), 100);
    KH_EXPECT(g_fd, "ma z N0 q\r\nmn\r\n", "MN\r\n");
    KH_EXPECT(g_fd, "mg z v\r\n", "VA 1\r\n0\r\n");
}
END_TEST

START_TEST(test_ma_C_E_T_c_t)
{
    char req[128];
    KH_EXPECT(g_fd, "ms n 1 T100\r\n5\r\n", "HD\r\n");
    unsigned long long cas = cas_of(g_fd, "n");
    snprintf(req, sizeof req, "ma n C%llu v\r\n", cas + 1);
    KH_EXPECT(g_fd, req, "EX\r\n");
    snprintf(req, sizeof req, "ma n C%llu c v\r\n", cas);
    long long c = req_num(g_fd, req, "VA 1", 'c');
    ck_assert_uint_eq((unsigned long long)c, cas_of(g_fd, "n"));
    ck_assert_uint_ne((unsigned long long)c, cas);
    ASSERT_TTL(req_num(g_fd, "ma n t\r\n", "HD", 't'), 100);
    KH_EXPECT(g_fd, "ma n T0 t\r\n", "HD t-1\r\n");
    KH_EXPECT(g_fd, "ma n E777 c v\r\n", "VA 1 c777\r\n9\r\n");
    KH_EXPECT(g_fd, "mg n c v\r\n", "VA 1 c777\r\n9\r\n");
}
END_TEST

START_TEST(test_ma_q_hides_HD_and_VA)
{
    KH_EXPECT(g_fd, "ms n 1\r\n1\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "ma n q\r\nma n q v\r\nma nope q\r\nmn\r\n", "NF\r\nMN\r\n");
    KH_EXPECT(g_fd, "mg n v\r\n", "VA 1\r\n3\r\n");
}
END_TEST

/* ---- base64 keys ---- */

START_TEST(test_b_keys_round_trip)
{
    /* "foo" is Zm9v: a base64 key names the same item as its bytes */
    KH_EXPECT(g_fd, "ms Zm9v 2 b k\r\nhi\r\n", "HD kZm9v b\r\n");
    KH_EXPECT(g_fd, "get foo\r\n", "VALUE foo 0 2\r\nhi\r\nEND\r\n");
    KH_EXPECT(g_fd, "mg Zm9v b k v\r\n", "VA 2 kZm9v b\r\nhi\r\n");
    KH_EXPECT(g_fd, "ma Zm9v b\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    KH_EXPECT(g_fd, "md Zm9v b k\r\n", "HD kZm9v b\r\n");
    KH_EXPECT(g_fd, "mg foo v\r\n", "EN\r\n");
    KH_EXPECT(g_fd, "ma Zm9v b N0 J3 v\r\n", "VA 1\r\n3\r\n");
}
END_TEST

START_TEST(test_b_binary_key_with_nul_and_spaces)
{
    /* bytes 00 20 0d 0a ff: "ACANCv8=" */
    KH_EXPECT(g_fd, "ms ACANCv8= 3 b\r\nbin\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "mg ACANCv8= b v k\r\n", "VA 3 kACANCv8= b\r\nbin\r\n");
    KH_EXPECT(g_fd, "mg ACANCv4= b v\r\n", "EN\r\n");
}
END_TEST

START_TEST(test_b_longest_binary_key)
{
    /* 186 bytes encode to 248 characters, the longest token under 250 */
    char key[186], enc[300], req[600];
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (char)(i * 7 + 1);
    size_t n = 0;
    for (size_t i = 0; i < sizeof key; i += 3) {
        unsigned v = ((unsigned char)key[i] << 16) | ((unsigned char)key[i + 1] << 8) |
                     (unsigned char)key[i + 2];
        enc[n++] = alpha[(v >> 18) & 63];
        enc[n++] = alpha[(v >> 12) & 63];
        enc[n++] = alpha[(v >> 6) & 63];
        enc[n++] = alpha[v & 63];
    }
    enc[n] = '\0';
    ck_assert_uint_eq(n, 248);
    snprintf(req, sizeof req, "ms %s 1 b\r\nx\r\n", enc);
    KH_EXPECT(g_fd, req, "HD\r\n");
    snprintf(req, sizeof req, "mg %s b v\r\n", enc);
    KH_EXPECT(g_fd, req, "VA 1\r\nx\r\n");
}
END_TEST

START_TEST(test_b_invalid_base64_is_client_error)
{
    KH_EXPECT(g_fd, "mg YWJ b\r\n", "CLIENT_ERROR error decoding key\r\n");
    KH_EXPECT(g_fd, "ms YWJ 2 b\r\nhi\r\nmn\r\n", "CLIENT_ERROR error decoding key\r\nMN\r\n");
    /* md: memcached 1.6.18 folded this into its flag error, 1.6.45 does not */
    KH_EXPECT(g_fd, "md YWJ b\r\n", "CLIENT_ERROR error decoding key\r\n");
    KH_EXPECT(g_fd, "mn\r\n", "MN\r\n");
}
END_TEST

/* ---- me ---- */

/* Parse "ME <key> exp=E la=L cas=C fetch=F cls=K size=S\r\n". */
static void me_parse(const char *line, const char *key, long long *exp, long long *la,
                     unsigned long long *cas, char fetch[4], unsigned *cls, unsigned long *size)
{
    char k[300];
    int n = sscanf(line, "ME %299s exp=%lld la=%lld cas=%llu fetch=%3s cls=%u size=%lu",
                   k, exp, la, cas, fetch, cls, size);
    ck_assert_msg(n == 7, "bad me reply: %s", line);
    ck_assert_str_eq(k, key);
}

START_TEST(test_me_prints_item_metadata)
{
    char buf[512], fetch[4];
    long long exp, la;
    unsigned long long cas, want_cas;
    unsigned cls;
    unsigned long size;

    KH_EXPECT(g_fd, "me nope\r\n", "EN\r\n");
    KH_EXPECT(g_fd, "ms foo 3 T100\r\nbar\r\n", "HD\r\n");
    want_cas = (unsigned long long)req_num(g_fd, "mg foo c u\r\n", "HD", 'c');
    me_parse(line_of(g_fd, "me foo\r\n", buf, sizeof buf), "foo", &exp, &la, &cas, fetch,
             &cls, &size);
    ASSERT_TTL(exp, 100);
    ck_assert_msg(la == 0 || la == 1, "la=%lld", la);
    ck_assert_uint_eq(cas, want_cas);
    ck_assert_str_eq(fetch, "no");
    ck_assert_uint_ge(cls, 1);
    ck_assert_uint_gt(size, 3 + 3);
    KH_EXPECT(g_fd, "mg foo\r\n", "HD\r\n");
    me_parse(line_of(g_fd, "me foo\r\n", buf, sizeof buf), "foo", &exp, &la, &cas, fetch,
             &cls, &size);
    ck_assert_str_eq(fetch, "yes");
    KH_EXPECT(g_fd, "ms bar 1\r\nx\r\n", "HD\r\n");
    me_parse(line_of(g_fd, "me bar\r\n", buf, sizeof buf), "bar", &exp, &la, &cas, fetch,
             &cls, &size);
    ck_assert_int_eq(exp, -1);
    if (kh_server_is_kioku()) {
        /* memcached 1.6.45 answers EN here (it decodes the key twice);
         * the spec says the key comes back base64-encoded. */
        me_parse(line_of(g_fd, "me YmFy b\r\n", buf, sizeof buf), "YmFy", &exp, &la, &cas,
                 fetch, &cls, &size);
        ck_assert_int_eq(exp, -1);
    }
}
END_TEST

/* ---- quiet pipelines ---- */

START_TEST(test_mn_flushes_a_quiet_pipeline)
{
    const char *req =
        "ms a 1 q\r\n1\r\n"
        "ms b 1 q\r\n2\r\n"
        "ms b 1 q ME\r\nx\r\n"
        "mg a q v Oa\r\n"
        "mg nope q v Ob\r\n"
        "md nope q\r\n"
        "md b q\r\n"
        "ma a q\r\n"
        "mg a q v\r\n"
        "mn\r\n";
    KH_EXPECT(g_fd, req, "NS\r\nVA 1 Oa\r\n1\r\nNF\r\nVA 1\r\n2\r\nMN\r\n");
}
END_TEST

/* ---- text <-> meta ---- */

START_TEST(test_text_set_reads_back_through_mg)
{
    char want[256];
    KH_EXPECT(g_fd, "set foo 123 100 5\r\nhello\r\n", "STORED\r\n");
    unsigned long long cas = cas_of(g_fd, "foo");
    snprintf(want, sizeof want, "VALUE foo 123 5 %llu\r\nhello\r\nEND\r\n", cas);
    KH_EXPECT(g_fd, "gets foo\r\n", want);
    KH_EXPECT(g_fd, "mg foo f s v\r\n", "VA 5 f123 s5\r\nhello\r\n");
    ASSERT_TTL(req_num(g_fd, "mg foo t\r\n", "HD", 't'), 100);
}
END_TEST

START_TEST(test_ms_reads_back_through_text)
{
    char want[256];
    long long c = req_num(g_fd, "ms foo 5 F77 T100 c\r\nhello\r\n", "HD", 'c');
    snprintf(want, sizeof want, "VALUE foo 77 5 %lld\r\nhello\r\nEND\r\n", c);
    KH_EXPECT(g_fd, "gets foo\r\n", want);
    KH_EXPECT(g_fd, "touch foo 0\r\n", "TOUCHED\r\n");
    KH_EXPECT(g_fd, "mg foo t\r\n", "HD t-1\r\n");
    snprintf(want, sizeof want, "cas foo 1 0 1 %lld\r\nx\r\n", c);
    KH_EXPECT(g_fd, want, "STORED\r\n");
    KH_EXPECT(g_fd, "mg foo f v\r\n", "VA 1 f1\r\nx\r\n");
    KH_EXPECT(g_fd, "incr foo 1\r\n",
              "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    KH_EXPECT(g_fd, "ms foo 1\r\n7\r\n", "HD\r\n");
    KH_EXPECT(g_fd, "incr foo 1\r\n", "8\r\n");
    KH_EXPECT(g_fd, "ma foo v\r\n", "VA 1\r\n9\r\n");
    KH_EXPECT(g_fd, "delete foo\r\n", "DELETED\r\n");
    KH_EXPECT(g_fd, "md foo\r\n", "NF\r\n");
}
END_TEST

/* ---- stampedes: several clients at once ---- */

#define CLIENTS 16
#define WINDOWS 10

struct racer {
    int fd;
    const char *req;
    pthread_barrier_t *go;
    char reply[256];
    int err;
};

static void *racer_run(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(r->go);
    if (kh_send_all(r->fd, r->req, strlen(r->req)) != 0) {
        r->err = 1;
        return NULL;
    }
    size_t n = kh_read_until(r->fd, r->reply, sizeof r->reply, "\r\n",
                             kh_scale_ms(KH_IO_TIMEOUT_MS), NULL);
    if (n < 2 || strcmp(r->reply + n - 2, "\r\n") != 0)
        r->err = 1;
    return NULL;
}

/* All clients send req at once; count the replies equal to win and to
 * lose. Every reply must be one of them. */
static void race(int fds[CLIENTS], const char *req, const char *win, const char *lose,
                 int *nwin, int *nlose)
{
    struct racer rs[CLIENTS];
    pthread_t th[CLIENTS];
    pthread_barrier_t go;

    pthread_barrier_init(&go, NULL, CLIENTS);
    for (int i = 0; i < CLIENTS; i++) {
        rs[i] = (struct racer){ .fd = fds[i], .req = req, .go = &go };
        ck_assert_int_eq(pthread_create(&th[i], NULL, racer_run, &rs[i]), 0);
    }
    *nwin = *nlose = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(!rs[i].err, "client %d got no reply", i);
        if (strcmp(rs[i].reply, win) == 0)
            (*nwin)++;
        else if (strcmp(rs[i].reply, lose) == 0)
            (*nlose)++;
        else
            ck_abort_msg("unexpected reply %s to %s", rs[i].reply, req);
    }
    pthread_barrier_destroy(&go);
}

static void open_clients(int fds[CLIENTS])
{
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = kh_connect(g_srv.port);
        ck_assert_int_ge(fds[i], 0);
    }
}

static void close_clients(int fds[CLIENTS])
{
    for (int i = 0; i < CLIENTS; i++)
        close(fds[i]);
}

START_TEST(test_stampede_N_one_winner_per_miss)
{
    int fds[CLIENTS], w, l;
    char req[64];
    open_clients(fds);
    for (int k = 0; k < WINDOWS; k++) {
        snprintf(req, sizeof req, "mg viv%d N30 s\r\n", k);
        race(fds, req, "HD s0 W\r\n", "HD s0 Z\r\n", &w, &l);
        ck_assert_msg(w == 1 && l == CLIENTS - 1, "window %d: %d winners", k, w);
        /* the winner recaches; then a miss (delete) opens the next window */
        snprintf(req, sizeof req, "ms viv%d 1\r\nv\r\n", k);
        KH_EXPECT(g_fd, req, "HD\r\n");
        snprintf(req, sizeof req, "mg viv%d N30 s\r\n", k);
        race(fds, req, "HD s1 W\r\n", "HD s1\r\n", &w, &l);
        ck_assert_msg(w == 0, "window %d: a win on a fresh item", k);
    }
    close_clients(fds);
}
END_TEST

START_TEST(test_stampede_R_one_winner_per_window)
{
    int fds[CLIENTS], w, l;
    open_clients(fds);
    for (int k = 0; k < WINDOWS; k++) {
        KH_EXPECT(g_fd, "ms hot 3 T20\r\nold\r\n", "HD\r\n");
        race(fds, "mg hot R30 s\r\n", "HD s3 W\r\n", "HD s3 Z\r\n", &w, &l);
        ck_assert_msg(w == 1 && l == CLIENTS - 1, "window %d: %d winners", k, w);
    }
    KH_EXPECT(g_fd, "ms hot 3 T100\r\nnew\r\n", "HD\r\n");
    race(fds, "mg hot R30 s\r\n", "HD s3 W\r\n", "HD s3\r\n", &w, &l);
    ck_assert_int_eq(w, 0);
    close_clients(fds);
}
END_TEST

START_TEST(test_stampede_stale_one_winner_per_invalidation)
{
    int fds[CLIENTS], w, l;
    open_clients(fds);
    KH_EXPECT(g_fd, "ms inv 3\r\nold\r\n", "HD\r\n");
    for (int k = 0; k < WINDOWS; k++) {
        KH_EXPECT(g_fd, "md inv I\r\n", "HD\r\n");
        race(fds, "mg inv s\r\n", "HD s3 X W\r\n", "HD s3 Z X\r\n", &w, &l);
        ck_assert_msg(w == 1 && l == CLIENTS - 1, "window %d: %d winners", k, w);
    }
    close_clients(fds);
}
END_TEST

/* ---- suite ---- */

int main(void)
{
    const struct kh_group groups[] = {
        { "mg", false, { test_mn_answers_MN, test_mg_miss_is_EN_with_k_and_O_only,
                  test_mg_q_hides_miss_but_not_hit, test_mg_returns_flags_in_request_order,
                  test_mg_C_matching_cas_leaves_the_value_out,
                  test_mg_t_reports_remaining_ttl, test_mg_T_updates_ttl,
                  test_mg_h_reports_hit_before_and_u_skips_it,
                  test_mg_l_reports_seconds_since_access, test_mg_c_is_the_cas_gets_reports,
                  test_mg_bad_flags_are_client_errors, test_flags_that_do_not_apply_are_ignored,
                  NULL } },
        { "stampede", false, { test_mg_N_vivifies_and_hands_out_one_win,
                        test_mg_R_wins_once_below_threshold,
                        test_md_I_marks_stale_then_one_reader_wins,
                        test_ms_I_with_older_cas_stores_but_stays_stale,
                        test_stampede_N_one_winner_per_miss,
                        test_stampede_R_one_winner_per_window,
                        test_stampede_stale_one_winner_per_invalidation, NULL } },
        { "ms", false, { test_ms_returns_c_s_k_O, test_ms_F_T_set_flags_and_ttl, test_ms_modes,
                  test_ms_append_keeps_flags_and_ttl, test_ms_append_N_autovivifies,
                  test_ms_C_compares_cas, test_ms_q_hides_only_HD,
                  test_ms_bad_data_chunk, test_ms_rejected_line_skips_its_data,
                  test_ms_too_large_is_refused_and_old_value_dropped,
                  test_ms_large_value_reads_back, NULL } },
        { "md_ma", false, { test_md_deletes_and_reports, test_md_C_compares_cas,
                            test_ma_incr_decr_and_modes, test_ma_N_J_autovivify,
                     test_ma_q_hides_HD_and_VA, NULL } },
        { "keys_me_mixed", false, { test_b_keys_round_trip, test_b_binary_key_with_nul_and_spaces,
                             test_b_longest_binary_key, test_b_invalid_base64_is_client_error,
                             test_me_prints_item_metadata, test_mn_flushes_a_quiet_pipeline,
                             test_text_set_reads_back_through_mg,
                             test_ms_reads_back_through_text, NULL } },
        { "cas_E", true, { test_mg_N_with_E_sets_the_cas, test_ms_E_sets_the_new_cas,
                           test_md_x_keeps_an_empty_item, test_md_I_with_E_sets_cas,
                           test_ma_C_E_T_c_t, NULL } },
    };
    static const struct kh_fixtures fixtures = {
        server_start, server_stop, conn_open_empty, conn_close,
        own_server_setup, own_server_teardown, 60,
    };
    return kh_run_suite(kh_group_suite("meta", groups, sizeof groups / sizeof groups[0], &fixtures));
}
