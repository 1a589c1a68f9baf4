/*
 * Sorted sets (issue 11) through hiredis, against a real server started
 * from $KIOKU_BIN: the reply types a C client sees, a pipelined build of a
 * set past the compact encoding checked member by member, 16 threads with
 * their own connections ZINCRBY-ing the same members (exact totals),
 * errors that leave the connection usable, the set operations on
 * skiplist-sized sets, and threads running them over the same keys in
 * opposite orders (no deadlock).
 *
 * One server for the TCase (unchecked fixture); each test gets a fresh
 * connection and an empty store. Expected replies are redis-server 7.0's.
 */
#include "harness.h"
#include "harness_resp.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct kh_server g_srv;
static redisContext *g_rc;

static void server_start(void)
{
    kh_server_must_start(&g_srv, NULL);
}

static void server_stop(void)
{
    kh_server_must_exit_cleanly(&g_srv, kh_scale_ms(10000));
}

static redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(g_rc, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "no reply to \"%s\" (%s)", fmt, g_rc->errstr);
    return r;
}

static void conn_open(void)
{
    g_rc = kh_resp_connect(g_srv.port);
    ck_assert_msg(g_rc != NULL && g_rc->err == 0, "cannot connect");
    freeReplyObject(cmd("FLUSHALL"));
}

static void conn_close(void)
{
    if (g_rc != NULL)
        redisFree(g_rc);
    g_rc = NULL;
    ck_assert_msg(kh_server_alive(&g_srv), "the server died during the test");
}

static void expect_int(long long want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(g_rc, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "no reply to \"%s\"", fmt);
    ck_assert_msg(r->type == REDIS_REPLY_INTEGER && r->integer == want,
                  "\"%s\": want :%lld, got type %d (%lld, %s)", fmt, want, r->type, r->integer,
                  r->str ? r->str : "");
    freeReplyObject(r);
}

static void expect_str(const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(g_rc, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "no reply to \"%s\"", fmt);
    ck_assert_msg(r->type == REDIS_REPLY_STRING && strcmp(r->str, want) == 0,
                  "\"%s\": want $%s, got type %d (%s)", fmt, want, r->type, r->str ? r->str : "");
    freeReplyObject(r);
}

static void expect_err(const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(g_rc, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "no reply to \"%s\"", fmt);
    ck_assert_msg(r->type == REDIS_REPLY_ERROR && strcmp(r->str, want) == 0,
                  "\"%s\": want -%s, got type %d (%s)", fmt, want, r->type, r->str ? r->str : "");
    freeReplyObject(r);
}

START_TEST(test_reply_types_of_the_lookups)
{
    expect_int(3, "ZADD lb 10 alice 20 bob 15 carol");
    expect_str("15", "ZSCORE lb carol");
    expect_int(1, "ZRANK lb carol");
    expect_int(0, "ZREVRANK lb bob");
    expect_int(3, "ZCARD lb");
    expect_int(2, "ZCOUNT lb (10 +inf");
    expect_str("20.5", "ZINCRBY lb 10.5 alice");

    redisReply *r = cmd("ZSCORE lb nobody");
    ck_assert_int_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    r = cmd("ZRANK lb nobody");
    ck_assert_int_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);

    /* WITHSCORES in RESP2: one flat array, scores as bulk strings. */
    r = cmd("ZREVRANGE lb 0 -1 WITHSCORES");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 6);
    const char *want[] = {"alice", "20.5", "bob", "20", "carol", "15"};
    for (size_t i = 0; i < 6; i++) {
        ck_assert_int_eq(r->element[i]->type, REDIS_REPLY_STRING);
        ck_assert_str_eq(r->element[i]->str, want[i]);
    }
    freeReplyObject(r);

    /* ZMSCORE: nil inside the array for a missing member. */
    r = cmd("ZMSCORE lb bob nobody");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 2);
    ck_assert_str_eq(r->element[0]->str, "20");
    ck_assert_int_eq(r->element[1]->type, REDIS_REPLY_NIL);
    freeReplyObject(r);

    /* ZSCAN: [cursor, [member, score, ...]]. */
    r = cmd("ZSCAN lb 0");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 2);
    ck_assert_str_eq(r->element[0]->str, "0");
    ck_assert_uint_eq(r->element[1]->elements, 6);
    freeReplyObject(r);

    /* Binary members: any byte, NUL included. */
    r = cmd("ZADD bin 1 %b", "a\0b", (size_t)3);
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    r = cmd("ZRANGE bin 0 -1");
    ck_assert_uint_eq(r->element[0]->len, 3);
    ck_assert(memcmp(r->element[0]->str, "a\0b", 3) == 0);
    freeReplyObject(r);
}
END_TEST

START_TEST(test_errors_leave_the_connection_usable)
{
    freeReplyObject(cmd("SET s v"));
    expect_err("WRONGTYPE Operation against a key holding the wrong kind of value", "ZADD s 1 a");
    expect_err("ERR value is not a valid float", "ZADD z x a");
    expect_err("ERR syntax error", "ZADD z 1 a 2");
    expect_err("ERR min or max is not a float", "ZRANGEBYSCORE z a b");
    expect_err("ERR min or max not valid string range item", "ZRANGEBYLEX z a b");
    expect_err("ERR wrong number of arguments for 'zadd' command", "ZADD z");
    expect_int(1, "ZADD z 1 a");
    expect_str("v", "GET s");
}
END_TEST

/* 5000 members in one pipeline: past the compact limit, every rank right. */
START_TEST(test_pipelined_build_past_the_compact_limit)
{
    const int n = 5000;
    /* The loops assert only on a failure: Check sends each passing
     * assertion to its parent. */
    for (int i = 0; i < n; i++)
        if (redisAppendCommand(g_rc, "ZADD big %d m%05d", (i * 7919) % n, i) != REDIS_OK)
            ck_abort_msg("ZADD %d: not queued", i);
    for (int i = 0; i < n; i++) {
        redisReply *r;
        if (redisGetReply(g_rc, (void **)&r) != REDIS_OK)
            ck_abort_msg("ZADD %d: no reply", i);
        if (r->type != REDIS_REPLY_INTEGER || r->integer != 1)
            ck_abort_msg("ZADD %d: reply type %d, %lld, want :1", i, r->type, (long long)r->integer);
        freeReplyObject(r);
    }
    expect_int(n, "ZCARD big");
    expect_str("skiplist", "OBJECT ENCODING big");
    redisReply *r = cmd("ZRANGE big 0 -1 WITHSCORES");
    ck_assert_uint_eq(r->elements, (size_t)n * 2);
    for (int k = 0; k < n; k++) {
        /* Score k belongs to the i with i * 7919 = k (mod n). */
        if (atoi(r->element[2 * k + 1]->str) != k)
            ck_abort_msg("rank %d: score %s", k, r->element[2 * k + 1]->str);
    }
    freeReplyObject(r);
    for (int i = 0; i < n; i += 97) {
        char m[16];
        snprintf(m, sizeof(m), "m%05d", i);
        expect_int((i * 7919) % n, "ZRANK big %s", m);
        expect_int(n - 1 - (i * 7919) % n, "ZREVRANK big %s", m);
    }
    expect_int(100, "ZREMRANGEBYRANK big 0 99");
    expect_int(n - 100, "ZCARD big");
    r = cmd("ZRANGE big 0 0 WITHSCORES");
    ck_assert_uint_eq(r->elements, 2);
    ck_assert_str_eq(r->element[1]->str, "100");
    freeReplyObject(r);
    r = cmd("ZRANK big m00000");
    ck_assert_int_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
}
END_TEST

#define THREADS 16
#define ROUNDS 500

struct worker {
    pthread_t tid;
    int id;
    int failures;
};

static void *zincr_worker(void *arg)
{
    struct worker *w = arg;
    redisContext *rc = kh_resp_connect(g_srv.port);
    if (rc == NULL || rc->err) {
        w->failures++;
        if (rc)
            redisFree(rc);
        return NULL;
    }
    for (int j = 0; j < ROUNDS; j++) {
        redisReply *r = redisCommand(rc, "ZINCRBY hot %d m%d", 1 + (j % 3), (w->id + j) % 4);
        if (r == NULL || r->type != REDIS_REPLY_STRING)
            w->failures++;
        if (r)
            freeReplyObject(r);
    }
    redisFree(rc);
    return NULL;
}

START_TEST(test_sixteen_threads_zincrby_exact_totals)
{
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i].id = i;
        w[i].failures = 0;
        ck_assert_int_eq(pthread_create(&w[i].tid, NULL, zincr_worker, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(w[i].tid, NULL);
        ck_assert_int_eq(w[i].failures, 0);
    }
    long long want[4] = {0};
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < ROUNDS; j++)
            want[(i + j) % 4] += 1 + (j % 3);
    for (int m = 0; m < 4; m++) {
        char s[32];
        snprintf(s, sizeof(s), "%lld", want[m]);
        expect_str(s, "ZSCORE hot m%d", m);
    }
}
END_TEST

/* ZUNIONSTORE / ZINTERSTORE of two skiplist-sized sets: the counts and
 * aggregated scores, ZRANGESTORE of a part, and errors in Redis's order. */
START_TEST(test_set_operations_on_big_sets)
{
    for (int i = 0; i < 1000; i++) {
        freeReplyObject(cmd("ZADD even %d e%d", 2 * i, 2 * i));
        freeReplyObject(cmd("ZADD three %d e%d", 3 * i, 3 * i));
    }
    /* Multiples of 6 below 2000 are in both: 334 of them. */
    expect_int(1000 + 1000 - 334, "ZUNIONSTORE u 2 even three WEIGHTS 1 10");
    expect_str("66", "ZSCORE u e6");        /* 6 + 10 * 6 */
    expect_str("30", "ZSCORE u e3");        /* only in three */
    expect_str("4", "ZSCORE u e4");         /* only in even */
    expect_int(334, "ZINTERSTORE i 2 even three AGGREGATE MIN");
    expect_str("12", "ZSCORE i e12");
    expect_int(334, "ZINTERCARD 2 even three");
    expect_int(10, "ZINTERCARD 2 even three LIMIT 10");
    expect_int(1000 - 334, "ZDIFFSTORE d 2 even three");
    redisReply *r = cmd("ZSCORE d e6");
    ck_assert_int_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    expect_int(5, "ZRANGESTORE top u 0 4 REV");
    r = cmd("ZRANGE top 0 -1");
    ck_assert_uint_eq(r->elements, 5);
    ck_assert_str_eq(r->element[4]->str, "e2997");   /* 10 * 2997, the highest */
    freeReplyObject(r);
    expect_int(0, "ZINTERSTORE top 2 even nokey");
    expect_int(0, "EXISTS top");
    freeReplyObject(cmd("SET s v"));
    expect_err("ERR at least 1 input key is needed for 'zunionstore' command", "ZUNIONSTORE u 0 even");
    expect_err("ERR syntax error", "ZUNIONSTORE u 3 even three");
    expect_err("WRONGTYPE Operation against a key holding the wrong kind of value", "ZUNION 2 even s WEIGHTS x");
    expect_err("ERR weight value is not a float", "ZUNION 2 even three WEIGHTS 1 x");
    expect_int(1000, "ZUNIONSTORE s 1 even");   /* a destination of any type is replaced */
}
END_TEST

/* Threads run ZUNIONSTORE over the same keys in opposite orders while
 * others ZINCRBY them: every command holds all its keys, so none may wait
 * for another forever (the join would time the test out). */
struct setop_worker {
    pthread_t tid;
    int id;
    int failures;
};

static void *setop_worker_run(void *arg)
{
    struct setop_worker *w = arg;
    redisContext *rc = kh_resp_connect(g_srv.port);
    if (rc == NULL || rc->err) {
        w->failures++;
        return NULL;
    }
    for (int j = 0; j < 300; j++) {
        const char *a = w->id % 2 ? "ka" : "kb", *b = w->id % 2 ? "kb" : "ka";
        redisReply *r = w->id % 3 == 0 ? redisCommand(rc, "ZINCRBY %s 1 m%d", a, j % 7)
                                       : redisCommand(rc, "ZUNIONSTORE %s 2 %s %s AGGREGATE MAX", a, b, a);
        if (r == NULL || r->type == REDIS_REPLY_ERROR)
            w->failures++;
        if (r != NULL)
            freeReplyObject(r);
    }
    redisFree(rc);
    return NULL;
}

START_TEST(test_threads_set_operations_in_opposite_key_orders)
{
    struct setop_worker w[8];
    freeReplyObject(cmd("ZADD ka 1 m0 2 m1"));
    freeReplyObject(cmd("ZADD kb 5 m1 6 m2"));
    for (int i = 0; i < 8; i++) {
        w[i].id = i;
        w[i].failures = 0;
        ck_assert_int_eq(pthread_create(&w[i].tid, NULL, setop_worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(w[i].tid, NULL);
        ck_assert_int_eq(w[i].failures, 0);
    }
    /* Both keys hold a superset of what they started with. */
    expect_int(3, "ZINTERCARD 2 ka kb LIMIT 3");
}
END_TEST

static Suite *zset_suite(void)
{
    Suite *s = suite_create("resp_zset");
    TCase *tc = tcase_create("hiredis");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, server_start, server_stop);
    tcase_add_checked_fixture(tc, conn_open, conn_close);
    tcase_add_test(tc, test_reply_types_of_the_lookups);
    tcase_add_test(tc, test_errors_leave_the_connection_usable);
    tcase_add_test(tc, test_pipelined_build_past_the_compact_limit);
    tcase_add_test(tc, test_sixteen_threads_zincrby_exact_totals);
    tcase_add_test(tc, test_set_operations_on_big_sets);
    tcase_add_test(tc, test_threads_set_operations_in_opposite_key_orders);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(zset_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
