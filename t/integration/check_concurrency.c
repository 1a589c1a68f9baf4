/*
 * Many clients at once against one server started with -t 4.
 *
 * Each client is a pthread with its own connection. Threads never call
 * Check's assertions (they are not thread-safe); they record the first
 * problem they see and the main thread asserts on the records after join.
 * All threads connect first and then start together at a barrier, so the
 * load is really concurrent. Work is bounded: a fixed number of operations
 * per thread, each bounded by the harness I/O timeout.
 *
 * What is proved:
 *  - a key only one client writes reads back exactly what that client last
 *    wrote, during the run and afterwards (no lost or crossed writes);
 *  - a shared key never reads back a torn value (value and flags of a
 *    single write belong together);
 *  - incr on one counter is atomic: the replies to N increments by 1 are
 *    exactly the numbers 1..N, each once, and the final value is N;
 *  - no reply is ever malformed or unexpected, and the server survives
 *    (and exits 0 on SIGTERM) after all of it, including connection churn.
 */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NTHREADS 200
#define NOPS 200
#define NPRIV 4
#define NSHARED 10
#define STACK_SIZE (256 * 1024)

static struct kh_server g_srv;

static void server_start(void)
{
    static const char *const args[] = { "-t", "4", "-c", "1024", NULL };
    kh_server_must_start(&g_srv, args);
}

static void server_stop(void)
{
    bool alive = kh_server_alive(&g_srv);
    kh_server_must_exit_cleanly(&g_srv, kh_scale_ms(15000));
    ck_assert_msg(alive, "the server died during the test (wait status 0x%x)",
                  (unsigned)g_srv.status);
}

struct worker {
    pthread_t tid;
    int id;
    int fd;
    pthread_barrier_t *start;
    /* results */
    int errors;
    char first_error[1024];
    int incrs;                   /* successful "incr counter 1" */
    bool present[NPRIV];         /* what this thread believes is stored */
    char last[NPRIV][96];
};

static void record_error(struct worker *w, const char *what,
                         const char *detail)
{
    if (w->errors++ == 0)
        snprintf(w->first_error, sizeof w->first_error,
                 "thread %d: %.100s%.880s", w->id, what, detail ? detail : "");
}

/* Send req; the reply must be exactly want. */
static bool exact(struct worker *w, const char *req, const char *want)
{
    char why[4096];
    if (kh_transact(w->fd, req, strlen(req), want, strlen(want), why,
                    sizeof why))
        return true;
    record_error(w, "", why);
    return false;
}

/* Send an incr/decr; parse the numeric reply. */
static bool arith(struct worker *w, const char *req, uint64_t *out)
{
    char buf[128];
    bool closed;
    if (kh_send_all(w->fd, req, strlen(req)) != 0) {
        record_error(w, "send failed: ", req);
        return false;
    }
    size_t n = kh_read_until(w->fd, buf, sizeof buf, "\r\n",
                             kh_scale_ms(KH_IO_TIMEOUT_MS), &closed);
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    if (n < 3 || end == buf || strcmp(end, "\r\n") != 0) {
        char esc[300], msg[400];
        kh_escape(buf, n, esc, sizeof esc);
        snprintf(msg, sizeof msg, "%s-> \"%s\"", req, esc);
        record_error(w, "bad arithmetic reply: ", msg);
        return false;
    }
    *out = v;
    return true;
}

static void priv_key(char *k, size_t cap, int id, int j)
{
    snprintf(k, cap, "priv:%d:%d", id, j);
}

/* Check a private key against this thread's record. */
static void check_private(struct worker *w, int j)
{
    char key[64], val[256], why[4096];
    size_t vlen;
    priv_key(key, sizeof key, w->id, j);
    int r = kh_get(w->fd, key, val, sizeof val - 1, &vlen, NULL, why,
                   sizeof why);
    if (r < 0) {
        record_error(w, "", why);
        return;
    }
    val[r == 1 ? vlen : 0] = '\0';
    if (r == 0 && w->present[j])
        record_error(w, "private key lost: ", key);
    else if (r == 1 && !w->present[j])
        record_error(w, "deleted private key came back: ", key);
    else if (r == 1 && strcmp(val, w->last[j]) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s = \"%s\", last written \"%s\"", key,
                 val, w->last[j]);
        record_error(w, "private key has a foreign value: ", msg);
    }
}

/* A shared value is "shared:<id>:<op>" stored with flags id*1000+op. */
static void check_shared(struct worker *w, int j)
{
    char key[32], val[128], why[4096];
    size_t vlen;
    uint32_t flags;
    snprintf(key, sizeof key, "shared:%d", j);
    int r = kh_get(w->fd, key, val, sizeof val - 1, &vlen, &flags, why,
                   sizeof why);
    if (r < 0) {
        record_error(w, "", why);
        return;
    }
    if (r == 0)
        return;
    val[vlen] = '\0';
    int id, op, used = 0;
    if (sscanf(val, "shared:%d:%d%n", &id, &op, &used) != 2 ||
        (size_t)used != vlen || flags != (uint32_t)(id * 1000 + op)) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s = \"%s\" flags %u", key, val, flags);
        record_error(w, "torn shared value: ", msg);
    }
}

static void *mixed_worker(void *arg)
{
    struct worker *w = arg;
    char req[256], key[64];
    pthread_barrier_wait(w->start);
    if (w->fd < 0) {
        record_error(w, "could not connect", NULL);
        return NULL;
    }
    for (int i = 0; i < NOPS && w->errors == 0; i++) {
        int j = i % NPRIV, s = (i * 7 + w->id) % NSHARED;
        priv_key(key, sizeof key, w->id, j);
        switch (i % 10) {
        case 0:
        case 1: {
            char val[96];
            /* Lengths vary so items move between size classes. */
            int pad = (w->id * 13 + i * 5) % 60;
            snprintf(val, sizeof val, "t%d:op%d:%.*s", w->id, i, pad,
                     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
            snprintf(req, sizeof req, "set %s 0 0 %zu\r\n%s\r\n", key,
                     strlen(val), val);
            if (exact(w, req, "STORED\r\n")) {
                w->present[j] = true;
                strcpy(w->last[j], val);
            }
            break;
        }
        case 2:
        case 8:
            check_private(w, j);
            break;
        case 3:
        case 7: {
            uint64_t v;
            if (arith(w, "incr counter 1\r\n", &v))
                w->incrs++;
            break;
        }
        case 4: {
            char val[64];
            int n = snprintf(val, sizeof val, "shared:%d:%d", w->id, i);
            snprintf(req, sizeof req, "set shared:%d %d 0 %d\r\n%s\r\n", s,
                     w->id * 1000 + i, n, val);
            exact(w, req, "STORED\r\n");
            break;
        }
        case 5:
            check_shared(w, s);
            break;
        case 6:
            snprintf(req, sizeof req, "delete %s\r\n", key);
            if (exact(w, req, w->present[j] ? "DELETED\r\n" : "NOT_FOUND\r\n"))
                w->present[j] = false;
            break;
        case 9: {
            /* add only succeeds on a key this thread deleted. */
            snprintf(req, sizeof req, "add %s 0 0 5\r\nadded\r\n", key);
            if (exact(w, req, w->present[j] ? "NOT_STORED\r\n" : "STORED\r\n")
                && !w->present[j]) {
                w->present[j] = true;
                strcpy(w->last[j], "added");
            }
            break;
        }
        }
    }
    return NULL;
}

/* Replies to "incr atomic 1", per thread, in order. */
static uint64_t g_values[NTHREADS][NOPS];

static void *incr_worker(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(w->start);
    if (w->fd < 0) {
        record_error(w, "could not connect", NULL);
        return NULL;
    }
    for (int i = 0; i < NOPS && w->errors == 0; i++) {
        uint64_t v;
        if (arith(w, "incr atomic 1\r\n", &v))
            g_values[w->id][w->incrs++] = v;
    }
    return NULL;
}

static void *churn_worker(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(w->start);
    for (int i = 0; i < 10 && w->errors == 0; i++) {
        char req[128], want[128];
        w->fd = kh_connect(g_srv.port);
        if (w->fd < 0) {
            record_error(w, "could not connect", NULL);
            break;
        }
        snprintf(req, sizeof req, "set churn:%d 0 0 %d\r\n%04d\r\nget churn:%d\r\n",
                 w->id, 4, i, w->id);
        snprintf(want, sizeof want, "STORED\r\nVALUE churn:%d 0 4\r\n%04d\r\nEND\r\n",
                 w->id, i);
        exact(w, req, want);
        if (i % 2 == 0)
            exact(w, "quit\r\n", ""); /* server closes */
        close(w->fd);
        w->fd = -1;
    }
    return NULL;
}

/*
 * Run fn in NTHREADS threads (connections opened first when connect is
 * true), join them all, and fail the test with the first recorded error.
 */
static struct worker *run_workers(void *(*fn)(void *), bool connect)
{
    static struct worker ws[NTHREADS];
    pthread_barrier_t start;
    pthread_attr_t attr;
    memset(ws, 0, sizeof ws);
    pthread_barrier_init(&start, NULL, NTHREADS + 1);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, STACK_SIZE);
    int started = 0;
    for (int i = 0; i < NTHREADS; i++) {
        ws[i].id = i;
        ws[i].start = &start;
        ws[i].fd = connect ? kh_connect(g_srv.port) : -1;
        if (pthread_create(&ws[i].tid, &attr, fn, &ws[i]) != 0)
            break;
        started++;
    }
    if (started < NTHREADS) {
        /* The barrier can never fill: cannot release the threads safely. */
        ck_abort_msg("only %d of %d threads could be created", started,
                     NTHREADS);
    }
    pthread_barrier_wait(&start);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(ws[i].tid, NULL);
    pthread_barrier_destroy(&start);
    pthread_attr_destroy(&attr);

    int bad = 0, first = -1;
    for (int i = 0; i < NTHREADS; i++) {
        if (ws[i].errors > 0) {
            bad++;
            if (first < 0)
                first = i;
        }
    }
    if (bad > 0) {
        for (int i = 0; i < NTHREADS; i++)
            if (ws[i].fd >= 0)
                close(ws[i].fd);
        ck_abort_msg("%d of %d clients saw errors; first: %s", bad, NTHREADS,
                     ws[first].first_error);
    }
    return ws;
}

static void close_all(struct worker *ws)
{
    for (int i = 0; i < NTHREADS; i++)
        if (ws[i].fd >= 0)
            close(ws[i].fd);
}

START_TEST(test_200_clients_mixed_ops_keep_private_keys_and_exact_incr_total)
{
    int fd = kh_connect(g_srv.port);
    ck_assert_int_ge(fd, 0);
    KH_EXPECT(fd, "set counter 0 0 1\r\n0\r\n", "STORED\r\n");

    struct worker *ws = run_workers(mixed_worker, true);
    close_all(ws);

    /* Every private key holds what its owner last wrote. */
    long long incrs = 0;
    for (int i = 0; i < NTHREADS; i++) {
        incrs += ws[i].incrs;
        for (int j = 0; j < NPRIV; j++) {
            char key[64], val[256], why[4096];
            size_t vlen;
            priv_key(key, sizeof key, i, j);
            int r = kh_get(fd, key, val, sizeof val - 1, &vlen, NULL, why,
                           sizeof why);
            ck_assert_msg(r >= 0, "%s", why);
            ck_assert_msg(r == (ws[i].present[j] ? 1 : 0),
                          "%s: %s after the run", key,
                          r ? "present but deleted" : "missing");
            if (r == 1) {
                val[vlen] = '\0';
                ck_assert_msg(strcmp(val, ws[i].last[j]) == 0,
                              "%s = \"%s\", owner last wrote \"%s\"", key, val,
                              ws[i].last[j]);
            }
        }
    }
    ck_assert_int_eq(incrs, (long long)NTHREADS * NOPS / 5);
    char want[64];
    snprintf(want, sizeof want, "VALUE counter 0 %d\r\n%lld\r\nEND\r\n",
             snprintf(NULL, 0, "%lld", incrs), incrs);
    KH_EXPECT(fd, "get counter\r\n", want);
    close(fd);
}
END_TEST

START_TEST(test_concurrent_incr_replies_are_each_number_exactly_once)
{
    int fd = kh_connect(g_srv.port);
    ck_assert_int_ge(fd, 0);
    KH_EXPECT(fd, "set atomic 0 0 1\r\n0\r\n", "STORED\r\n");

    struct worker *res = run_workers(incr_worker, true);
    close_all(res);

    static unsigned char seen[NTHREADS * NOPS + 1];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < NTHREADS; i++) {
        ck_assert_int_eq(res[i].incrs, NOPS);
        for (int k = 0; k < NOPS; k++) {
            uint64_t v = g_values[i][k];
            ck_assert_msg(v >= 1 && v <= NTHREADS * NOPS,
                          "incr replied %llu, outside 1..%d",
                          (unsigned long long)v, NTHREADS * NOPS);
            ck_assert_msg(!seen[v], "incr replied %llu twice: increments "
                          "were lost or not atomic", (unsigned long long)v);
            seen[v] = 1;
        }
    }
    char want[64];
    snprintf(want, sizeof want, "VALUE atomic 0 %d\r\n%d\r\nEND\r\n",
             snprintf(NULL, 0, "%d", NTHREADS * NOPS), NTHREADS * NOPS);
    KH_EXPECT(fd, "get atomic\r\n", want);
    close(fd);
}
END_TEST

START_TEST(test_connection_churn_by_200_clients_leaves_server_serving)
{
    int fd = kh_connect(g_srv.port);
    ck_assert_int_ge(fd, 0);
    char st[65536];
    ck_assert_uint_gt(kh_stats_fetch(fd, "stats", st, sizeof st), 0);
    long long total0 = kh_stats_num(st, "total_connections");

    run_workers(churn_worker, false);

    ck_assert_uint_gt(kh_stats_fetch(fd, "stats", st, sizeof st), 0);
    long long total1 = kh_stats_num(st, "total_connections");
    ck_assert_msg(total1 - total0 >= NTHREADS * 10,
                  "total_connections grew by %lld, expected >= %d",
                  total1 - total0, NTHREADS * 10);
    /* All churned connections are eventually closed on the server side. */
    long long curr = -1;
    /* 5 s, stretched for sanitizer builds (TSan runs this one). */
    for (int i = 0; i < kh_scale_ms(5000) / 50; i++) {
        ck_assert_uint_gt(kh_stats_fetch(fd, "stats", st, sizeof st), 0);
        curr = kh_stats_num(st, "curr_connections");
        if (curr >= 0 && curr <= 2)
            break;
        struct timespec ts = { 0, 50 * 1000000L };
        nanosleep(&ts, NULL);
    }
    ck_assert_msg(curr >= 0 && curr <= 2,
                  "curr_connections stays at %lld after all clients left", curr);
    KH_EXPECT(fd, "get churn:0\r\n", "VALUE churn:0 0 4\r\n0009\r\nEND\r\n");
    close(fd);
}
END_TEST

static Suite *concurrency_suite(void)
{
    Suite *s = suite_create("concurrency");
    TCase *tc = tcase_create("clients");
    tcase_add_checked_fixture(tc, server_start, server_stop);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_200_clients_mixed_ops_keep_private_keys_and_exact_incr_total);
    tcase_add_test(tc, test_concurrent_incr_replies_are_each_number_exactly_once);
    tcase_add_test(tc, test_connection_churn_by_200_clients_leaves_server_serving);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    kh_server_bin();
    SRunner *sr = srunner_create(concurrency_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
