/*
 * Hashes (issue 11) against a real server from $KIOKU_BIN, driven by
 * hiredis, libmemcached and redis-cli: every reply is rendered to compact
 * text and compared exactly with what redis-server 7.0 answers (checked
 * over a socket). Also: 16 threads, each with its own connection, doing
 * HINCRBY on the same fields get the exact totals; a hash is a miss to a
 * memcached client, which cannot change it.
 */
#include "harness.h"
#include "harness_resp.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

static void expect(const char *want, const char *fmt, ...)
{
    char got[8192];
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(g_rc, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "no reply to \"%s\"", fmt);
    kh_resp_render(r, got, sizeof(got));
    freeReplyObject(r);
    ck_assert_msg(strcmp(got, want) == 0, "\"%s\": want <%s>, got <%s>", fmt, want, got);
}

static void conn_open(void)
{
    g_rc = kh_resp_connect(g_srv.port);
    ck_assert(g_rc != NULL && g_rc->err == 0);
    expect("+OK", "FLUSHALL");
}

static void conn_close(void)
{
    if (g_rc != NULL)
        redisFree(g_rc);
    g_rc = NULL;
    ck_assert_msg(kh_server_alive(&g_srv), "the server died during the test");
}

START_TEST(test_hash_commands_answer_as_redis)
{
    expect(":2", "HSET h a 1 b 2");
    expect(":1", "HSET h a 10 c 3");
    expect("-ERR wrong number of arguments for 'hset' command", "HSET h a");
    expect("+OK", "HMSET h d 4");
    expect(":0", "HSETNX h a x");
    expect(":1", "HSETNX h e 5");
    expect("$10", "HGET h a");
    expect("(nil)", "HGET h zz");
    expect("[$10,(nil),$2]", "HMGET h a zz b");
    expect("[$a,$10,$b,$2,$c,$3,$d,$4,$e,$5]", "HGETALL h");
    expect("[$a,$b,$c,$d,$e]", "HKEYS h");
    expect("[$10,$2,$3,$4,$5]", "HVALS h");
    expect(":5", "HLEN h");
    expect(":1", "HEXISTS h a");
    expect(":0", "HEXISTS h zz");
    expect(":2", "HSTRLEN h a");
    expect(":15", "HINCRBY h a 5");
    expect(":1", "HSET ht t abc");
    expect("-ERR hash value is not an integer", "HINCRBY ht t 1");
    expect("-ERR value is not an integer or out of range", "HINCRBY h a x");
    expect("$15.5", "HINCRBYFLOAT h a 0.5");
    expect("-ERR value is not a valid float", "HINCRBYFLOAT h a x");
    expect(":2", "HDEL h a b zz");
    expect("[$c,$3,$d,$4,$e,$5]", "HGETALL h");
    expect("[$0,[$c,$3,$d,$4,$e,$5]]", "HSCAN h 0");
    expect("[$0,[$d,$4]]", "HSCAN h 0 MATCH d*");
    expect("-ERR syntax error", "HSCAN h 0 COUNT 0");
    expect("-ERR invalid cursor", "HSCAN h x");
    expect("[]", "HRANDFIELD h 0");
    expect("[]", "HGETALL nokey");
    expect("+hash", "TYPE h");
    expect("$listpack", "OBJECT ENCODING h");
    expect(":3", "HDEL h c d e");
    expect(":0", "EXISTS h");
}
END_TEST

START_TEST(test_wrong_type_both_ways)
{
    const char *wt = "-WRONGTYPE Operation against a key holding the wrong kind of value";
    expect("+OK", "SET s v");
    expect(wt, "HSET s a 1");
    expect(wt, "HGET s a");
    expect(wt, "HGETALL s");
    expect(":1", "HSET h a 1");
    expect(wt, "GET h");
    expect(wt, "APPEND h x");
    expect(wt, "INCR h");
    expect(wt, "STRLEN h");
    expect("[(nil),$v]", "MGET h s");
    expect("+OK", "SET h v");
    expect("$v", "GET h");
}
END_TEST

START_TEST(test_conversion_at_the_thresholds)
{
    char big[66];
    memset(big, 'x', 65);
    big[65] = '\0';
    expect(":1", "HSET h f %s", "short");
    expect("$listpack", "OBJECT ENCODING h");
    expect(":1", "HSET h g %s", big);
    expect("$hashtable", "OBJECT ENCODING h");
    expect(":1", "HDEL h g");
    expect("$hashtable", "OBJECT ENCODING h");
    expect("+OK", "CONFIG SET hash-max-listpack-entries 2");
    expect(":2", "HSET k 1 1 2 2");
    expect("$listpack", "OBJECT ENCODING k");
    expect(":1", "HSET k 3 3");
    expect("$hashtable", "OBJECT ENCODING k");
    expect("+OK", "CONFIG SET hash-max-ziplist-entries 512");
    expect("[$hash-max-listpack-entries,$512]", "CONFIG GET hash-max-listpack-entries");
}
END_TEST

struct worker {
    int id, n;
    bool ok;
};

static void *incr_worker(void *arg)
{
    struct worker *w = arg;
    redisContext *rc = kh_resp_connect(g_srv.port);
    w->ok = rc != NULL && rc->err == 0;
    for (int i = 0; i < w->n && w->ok; i++) {
        redisReply *r = redisCommand(rc, "HINCRBY counters shared 1");
        w->ok = r != NULL && r->type == REDIS_REPLY_INTEGER;
        if (r != NULL)
            freeReplyObject(r);
        r = redisCommand(rc, "HINCRBY counters own:%d 3", w->id);
        w->ok = w->ok && r != NULL && r->type == REDIS_REPLY_INTEGER;
        if (r != NULL)
            freeReplyObject(r);
    }
    if (rc != NULL)
        redisFree(rc);
    return NULL;
}

START_TEST(test_sixteen_clients_get_exact_totals)
{
    enum { NT = 16, PER = 500 };
    pthread_t t[NT];
    struct worker w[NT];
    for (int i = 0; i < NT; i++) {
        w[i] = (struct worker){i, PER, false};
        ck_assert_int_eq(pthread_create(&t[i], NULL, incr_worker, &w[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(w[i].ok, "worker %d failed", i);
    }
    char want[32];
    snprintf(want, sizeof(want), "$%d", NT * PER);
    expect(want, "HGET counters shared");
    snprintf(want, sizeof(want), "$%d", 3 * PER);
    for (int i = 0; i < NT; i++) {
        char f[16];
        snprintf(f, sizeof(f), "own:%d", i);
        expect(want, "HGET counters %s", f);
    }
    expect(":17", "HLEN counters");
}
END_TEST

START_TEST(test_memcached_client_sees_a_miss)
{
    memcached_st *mc = memcached_create(NULL);
    memcached_server_add(mc, "127.0.0.1", (in_port_t)g_srv.port);
    expect(":2", "HSET mh a 1 b 2");
    size_t len;
    uint32_t flags;
    memcached_return_t rc;
    char *v = memcached_get(mc, "mh", 2, &len, &flags, &rc);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(rc, MEMCACHED_NOTFOUND);
    ck_assert_int_ne(memcached_append(mc, "mh", 2, "x", 1, 0, 0), MEMCACHED_SUCCESS);
    ck_assert_int_ne(memcached_add(mc, "mh", 2, "x", 1, 0, 0), MEMCACHED_SUCCESS);
    expect("[$a,$1,$b,$2]", "HGETALL mh");
    ck_assert_int_eq(memcached_set(mc, "mh", 2, "y", 1, 0, 0), MEMCACHED_SUCCESS);
    expect("+string", "TYPE mh");
    expect("$y", "GET mh");
    memcached_free(mc);
}
END_TEST

static bool run_cli(const char *args, const char *want)
{
    char cmdline[512], out[1024] = "";
    snprintf(cmdline, sizeof(cmdline), "timeout 10 redis-cli -p %d %s 2>&1", g_srv.port, args);
    FILE *f = popen(cmdline, "r");
    if (f == NULL)
        return false;
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    pclose(f);
    if (strcmp(out, want) != 0)
        fprintf(stderr, "redis-cli %s: want <%s>, got <%s>\n", args, want, out);
    return strcmp(out, want) == 0;
}

START_TEST(test_redis_cli)
{
    if (system("command -v redis-cli >/dev/null 2>&1") != 0)
        return;   /* redis_tools.sh reports the skip */
    ck_assert(run_cli("hset cli name ann role admin", "2\n"));
    ck_assert(run_cli("hgetall cli", "name\nann\nrole\nadmin\n"));
    ck_assert(run_cli("hincrby cli visits 3", "3\n"));
    ck_assert(run_cli("type cli", "hash\n"));
    ck_assert(run_cli("--no-raw hget cli name", "\"ann\"\n"));
    /* RESP3: a map, printed as "field value" lines when not on a terminal. */
    ck_assert(run_cli("-3 hgetall cli", "name ann\nrole admin\nvisits 3\n"));
    ck_assert(run_cli("get cli", "WRONGTYPE Operation against a key holding the wrong kind of value\n\n"));
}
END_TEST

static Suite *hash_suite(void)
{
    Suite *s = suite_create("resp_hash");
    TCase *tc = tcase_create("hash");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, server_start, server_stop);
    tcase_add_checked_fixture(tc, conn_open, conn_close);
    tcase_add_test(tc, test_hash_commands_answer_as_redis);
    tcase_add_test(tc, test_wrong_type_both_ways);
    tcase_add_test(tc, test_conversion_at_the_thresholds);
    tcase_add_test(tc, test_sixteen_clients_get_exact_totals);
    tcase_add_test(tc, test_memcached_client_sees_a_miss);
    tcase_add_test(tc, test_redis_cli);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (!kh_server_is_kioku()) {
        fprintf(stderr, "check_resp_hash: %s is not kioku; skipped\n", kh_server_bin());
        return 77;
    }
    SRunner *sr = srunner_create(hash_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
