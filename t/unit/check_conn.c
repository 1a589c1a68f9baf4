/*
 * The connection's output path, driven through a mock transport: replies are
 * gathered into as few writev calls as IOV limits allow, large values are
 * sent from the items themselves (no copy), and such an item stays
 * referenced until its bytes are written, even if it is deleted meanwhile.
 * Small values are copied, so a small reply is one segment and holds no
 * reference.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conn.h"
#include "core/worker.h"
#include "stats/stats.h"
#include "storage/item.h"
#include "storage/storage.h"
#include "util/clock.h"

/* conn.c reports to its worker; these tests have none. */
void worker_conn_added(struct worker *w, struct conn *c) { (void)w; (void)c; }
void worker_conn_removed(struct worker *w, struct conn *c) { (void)w; (void)c; }

#define SINK_MAX (4 * 1024 * 1024)
#define BASES_MAX 4096

static struct {
    int calls;
    size_t accept_left;         /* bytes to accept before EAGAIN; SIZE_MAX: all */
    char *sink;
    size_t len;
    const void *bases[BASES_MAX];
    int nbases;
} mock;

static ssize_t mock_read(struct conn *c, void *buf, size_t n)
{
    (void)c; (void)buf; (void)n;
    errno = EAGAIN;
    return -1;
}

static ssize_t mock_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    (void)c;
    mock.calls++;
    if (mock.accept_left == 0) {
        errno = EAGAIN;
        return -1;
    }
    size_t done = 0;
    for (int i = 0; i < iovcnt && mock.accept_left > 0; i++) {
        size_t n = iov[i].iov_len < mock.accept_left ? iov[i].iov_len : mock.accept_left;
        if (mock.nbases < BASES_MAX)
            mock.bases[mock.nbases++] = iov[i].iov_base;
        memcpy(mock.sink + mock.len, iov[i].iov_base, n);
        mock.len += n;
        done += n;
        if (mock.accept_left != SIZE_MAX)
            mock.accept_left -= n;
    }
    return (ssize_t)done;
}

static void mock_close(struct conn *c) { (void)c; }

static const struct transport mock_tp = {
    .name = "mock", .read = mock_read, .writev = mock_writev, .close = mock_close,
};

static struct conn conn;
static struct thread_stats tstats;
static int64_t now;

static void setup(void)
{
    struct storage_config cfg;
    char err[256];
    clock_setup();
    now = clock_now_ms();
    storage_config_default(&cfg);
    ck_assert_int_eq(storage_setup(&cfg, err, sizeof(err)), 0);
    memset(&conn, 0, sizeof(conn));
    ck_assert_int_eq(conn_buffers_init(&conn), 0);
    conn.tp = &mock_tp;
    conn.stats = &tstats;
    memset(&mock, 0, sizeof(mock));
    mock.sink = malloc(SINK_MAX);
    mock.accept_left = SIZE_MAX;
}

static void teardown(void)
{
    conn_set_limits((size_t)64 << 20, 0);   /* the defaults, for the next test */
    conn_buffers_free(&conn);
    free(mock.sink);
    storage_teardown();
}

/* Store key -> value and return a reader's reference to it. */
static struct item *put(const char *key, const char *val)
{
    enum item_alloc_status st;
    struct item *it = item_alloc(key, strlen(key), 0, 0, strlen(val), now, &st);
    ck_assert_ptr_nonnull(it);
    item_value_write(it, 0, val, strlen(val));
    ck_assert_int_eq(item_store(it, STORE_SET, 0, now, NULL), ITEM_STORED);
    return it;
}

/* A 1999-byte value of fill, too large to be copied into the output. */
static struct item *put_big(const char *key, char fill)
{
    char val[2000];
    memset(val, fill, sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    return put(key, val);
}

static uint32_t refs_of(const struct item *it)
{
    return __atomic_load_n(&it->refcount, __ATOMIC_RELAXED);
}

/* Queue a get reply for it as the text protocol does. */
static void queue_value(struct item *it, char *expect, size_t *elen)
{
    char hdr[300];
    int n = snprintf(hdr, sizeof(hdr), "VALUE %.*s 0 %u\r\n", it->nkey, item_key(it), it->nbytes);
    conn_out(&conn, hdr, (size_t)n);
    conn_out_item(&conn, it, 0, (size_t)it->nbytes + 2);
    memcpy(expect + *elen, hdr, (size_t)n);
    *elen += (size_t)n;
    memcpy(expect + *elen, item_value(it), (size_t)it->nbytes + 2);
    *elen += (size_t)it->nbytes + 2;
}

static bool sent_from_item(struct item *it)
{
    for (int i = 0; i < mock.nbases; i++)
        if (mock.bases[i] == (const void *)item_value(it))
            return true;
    return false;
}

START_TEST(test_multiget_of_100_values_leaves_in_one_writev)
{
    static char expect[256 * 1024];
    size_t elen = 0;
    struct item *items[100];
    for (int i = 0; i < 100; i++) {
        char key[32], val[1100];
        snprintf(key, sizeof(key), "key:%d", i);
        memset(val, 'a' + i % 26, sizeof(val) - 1);
        val[sizeof(val) - 1] = '\0';
        items[i] = put(key, val);
        queue_value(items[i], expect, &elen);
    }
    conn_out(&conn, "END\r\n", 5);
    memcpy(expect + elen, "END\r\n", 5);
    elen += 5;
    ck_assert_int_eq(conn_flush(&conn), FLUSH_DONE);
    ck_assert_int_eq(mock.calls, 1);
    ck_assert_uint_eq(mock.len, elen);
    ck_assert(memcmp(mock.sink, expect, elen) == 0);
    for (int i = 0; i < 100; i++) {
        ck_assert_msg(sent_from_item(items[i]), "value %d was copied, not sent from its item", i);
        ck_assert_uint_eq(refs_of(items[i]), 2);   /* hash + ours: the output let go */
        item_put(items[i]);
    }
    ck_assert_uint_eq(tstats.bytes_written, elen);
}
END_TEST

START_TEST(test_output_past_the_limit_is_dropped_and_the_conn_marked_for_closing)
{
    static char expect[64 * 1024];
    size_t elen = 0;
    char val[4000];
    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    struct item *it = put("big", val);
    conn_set_limits(10000, 0);
    queue_value(it, expect, &elen);                /* ~4 KB: under the limit */
    queue_value(it, expect, &elen);                /* ~8 KB */
    ck_assert(!conn.out_over && !conn.close_after_write);
    ck_assert_uint_eq(refs_of(it), 4);             /* hash + ours + two in the output */
    /* A value starting within the limit goes in whole, past 10000 bytes... */
    queue_value(it, expect, &elen);
    ck_assert(!conn.out_over && !conn.close_after_write);
    ck_assert_uint_gt(conn.out_bytes, 10000);
    /* ...and whatever follows it finds the limit passed. */
    conn_out(&conn, "END\r\n", 5);
    ck_assert(conn.out_over && conn.close_after_write);
    ck_assert(conn_out_full(&conn));               /* protocols stop */
    ck_assert_uint_eq(conn.out_bytes, 0);          /* dropped at once... */
    ck_assert_uint_eq(refs_of(it), 2);             /* ...with the items it held */
    ck_assert_uint_eq(tstats.output_limit_disconnects, 1);
    conn_out(&conn, "END\r\n", 5);                /* nothing more is queued */
    conn_out_item(&conn, it, 0, (size_t)it->nbytes + 2);
    conn_out_value_end(&conn);
    ck_assert_uint_eq(refs_of(it), 2);
    ck_assert_ptr_null(conn_out_reserve(&conn, 10));
    ck_assert_uint_eq(conn.out_bytes, 0);
    ck_assert_int_eq(conn_flush(&conn), FLUSH_DONE);
    ck_assert_uint_eq(mock.len, 0);
    ck_assert_uint_eq(tstats.output_limit_disconnects, 1);
    item_put(it);
}
END_TEST

START_TEST(test_one_value_larger_than_the_limit_is_sent_whole)
{
    static char val[20000];
    static char expect[64 * 1024];
    memset(val, 'w', sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    struct item *it = put("huge", val);
    conn_set_limits(10000, 0);
    /* A RESP GETRANGE of most of it: header, part of the value, CRLF. */
    conn_out(&conn, "$15000\r\n", 8);
    conn_out_item(&conn, it, 10, 15000);
    conn_out_value_end(&conn);
    ck_assert(!conn.out_over && !conn.close_after_write);
    ck_assert_uint_eq(conn.out_bytes, 8 + 15000 + 2);
    ck_assert_int_eq(conn_flush(&conn), FLUSH_DONE);
    memcpy(expect, "$15000\r\n", 8);
    memcpy(expect + 8, val + 10, 15000);
    memcpy(expect + 8 + 15000, "\r\n", 2);
    ck_assert_uint_eq(mock.len, 8 + 15000 + 2);
    ck_assert(memcmp(mock.sink, expect, mock.len) == 0);
    ck_assert_uint_eq(tstats.output_limit_disconnects, 0);
    ck_assert_uint_eq(refs_of(it), 2);
    item_put(it);
}
END_TEST

START_TEST(test_small_value_is_copied_into_one_segment)
{
    static char expect[1024];
    size_t elen = 0;
    struct item *it = put("small", "a short value");
    queue_value(it, expect, &elen);
    ck_assert_uint_eq(refs_of(it), 2);             /* hash + ours: the output took none */
    ck_assert_int_eq(conn.nrefs, 0);
    conn_out(&conn, "END\r\n", 5);
    memcpy(expect + elen, "END\r\n", 5);
    elen += 5;
    ck_assert_int_eq(conn_flush(&conn), FLUSH_DONE);
    ck_assert_int_eq(mock.calls, 1);
    ck_assert_int_eq(mock.nbases, 1);              /* header, value and END: one iovec */
    ck_assert(!sent_from_item(it));
    ck_assert_uint_eq(mock.len, elen);
    ck_assert(memcmp(mock.sink, expect, elen) == 0);
    item_put(it);
}
END_TEST

START_TEST(test_item_stays_referenced_until_written_even_if_deleted)
{
    static char expect[8192];
    size_t elen = 0;
    struct item *it = put_big("big", 'v');
    queue_value(it, expect, &elen);
    ck_assert_uint_eq(refs_of(it), 3);             /* hash + ours + the output */
    mock.accept_left = 100;                        /* the socket takes 100 bytes, then blocks */
    ck_assert_int_eq(conn_flush(&conn), FLUSH_BLOCKED);
    ck_assert_uint_eq(refs_of(it), 3);
    ck_assert_int_eq(item_delete("big", 3, 0, now), ITEM_DELETED);
    item_put(it);                                  /* only the output holds it now */
    ck_assert_uint_eq(refs_of(it), 1);
    mock.accept_left = SIZE_MAX;
    ck_assert_int_eq(conn_flush(&conn), FLUSH_DONE);   /* releases the last reference */
    ck_assert_uint_eq(mock.len, elen);
    ck_assert(memcmp(mock.sink, expect, elen) == 0);
    ck_assert_int_eq(conn.nrefs, 0);
}
END_TEST

/* CLIENT REPLY OFF: what a request queued is dropped, item references
 * with it; what came before stays, also when part of it was written. */
START_TEST(test_rollback_drops_what_was_queued_after_the_mark)
{
    static char expect[8192];
    struct item *it = put_big("rb", 'r');
    conn_out(&conn, "+OK\r\n", 5);
    memcpy(expect, "+OK\r\n", 5);
    size_t elen = 5;
    mock.accept_left = 2;                          /* "+O" is written */
    ck_assert_int_eq(conn_flush(&conn), FLUSH_BLOCKED);
    struct conn_out_mark m;
    conn_out_mark(&conn, &m);
    size_t queued = conn.out_bytes;
    conn_out(&conn, "dropped", 7);                 /* merges into the "+OK" entry */
    char tmp[8192];
    size_t tlen = 0;
    queue_value(it, tmp, &tlen);                   /* by reference: 2000 bytes */
    ck_assert_uint_eq(refs_of(it), 3);
    ck_assert(conn_out_rollback(&conn, &m));
    ck_assert_uint_eq(refs_of(it), 2);             /* the output's reference went */
    ck_assert_uint_eq(conn.out_bytes, queued);
    conn_out(&conn, "+PONG\r\n", 7);
    memcpy(expect + elen, "+PONG\r\n", 7);
    elen += 7;
    mock.accept_left = SIZE_MAX;
    ck_assert_int_eq(conn_flush(&conn), FLUSH_DONE);
    ck_assert_uint_eq(mock.len, elen);
    ck_assert(memcmp(mock.sink, expect, elen) == 0);
    item_put(it);
}
END_TEST

START_TEST(test_rollback_refuses_once_some_was_written)
{
    conn_out(&conn, "+OK\r\n", 5);
    struct conn_out_mark m;
    conn_out_mark(&conn, &m);
    conn_out(&conn, "+PONG\r\n", 7);
    mock.accept_left = 7;                          /* into the bytes after the mark */
    ck_assert_int_eq(conn_flush(&conn), FLUSH_BLOCKED);
    ck_assert(!conn_out_rollback(&conn, &m));
    mock.accept_left = SIZE_MAX;
    ck_assert_int_eq(conn_flush(&conn), FLUSH_DONE);
    ck_assert_uint_eq(mock.len, 12);
    ck_assert(memcmp(mock.sink, "+OK\r\n+PONG\r\n", 12) == 0);
    conn_out_mark(&conn, &m);                      /* after a flush emptied it */
    conn_out(&conn, "x", 1);
    ck_assert_int_eq(conn_flush(&conn), FLUSH_DONE);
    conn_out(&conn, "y", 1);
    ck_assert(!conn_out_rollback(&conn, &m));      /* another generation of output */
}
END_TEST

START_TEST(test_replies_beyond_iov_limits_take_few_writevs)
{
    static char expect[1024 * 1024];
    static char val[601];
    size_t elen = 0;
    memset(val, 'x', sizeof(val) - 1);             /* large enough to be sent from the item */
    for (int i = 0; i < 1000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "k%d", i);
        struct item *it = put(key, val);
        queue_value(it, expect, &elen);
        item_put(it);
    }
    ck_assert_int_eq(conn_flush(&conn), FLUSH_DONE);
    /* 2000 entries (header + value each), at most 512 per writev */
    ck_assert_int_eq(mock.calls, 4);
    ck_assert_uint_eq(mock.len, elen);
    ck_assert(memcmp(mock.sink, expect, elen) == 0);
}
END_TEST

START_TEST(test_chunked_value_is_sent_from_its_chunks)
{
    size_t n = 3 * 1024 * 1024 + 17;   /* larger than a slab page: chunked */
    char *val = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        val[i] = (char)('a' + i % 26);
    val[n] = '\0';
    struct storage_config cfg;
    char err[256];
    storage_teardown();
    storage_config_default(&cfg);
    cfg.item_size_max = 4 * 1024 * 1024;
    cfg.mem_limit = 64 * 1024 * 1024;
    ck_assert_int_eq(storage_setup(&cfg, err, sizeof(err)), 0);
    struct item *it = put("chunky", val);
    ck_assert(item_is_chunked(it));
    char *expect = malloc(n + 2);
    memcpy(expect, val, n);
    memcpy(expect + n, "\r\n", 2);
    conn_out_item(&conn, it, 0, n + 2);
    ck_assert_int_eq(conn_flush(&conn), FLUSH_DONE);
    ck_assert_uint_eq(mock.len, n + 2);
    ck_assert(memcmp(mock.sink, expect, n + 2) == 0);
    item_put(it);
    free(val);
    free(expect);
}
END_TEST

static Suite *conn_suite(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("output");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_multiget_of_100_values_leaves_in_one_writev);
    tcase_add_test(tc, test_small_value_is_copied_into_one_segment);
    tcase_add_test(tc, test_output_past_the_limit_is_dropped_and_the_conn_marked_for_closing);
    tcase_add_test(tc, test_one_value_larger_than_the_limit_is_sent_whole);
    tcase_add_test(tc, test_item_stays_referenced_until_written_even_if_deleted);
    tcase_add_test(tc, test_replies_beyond_iov_limits_take_few_writevs);
    tcase_add_test(tc, test_chunked_value_is_sent_from_its_chunks);
    tcase_add_test(tc, test_rollback_drops_what_was_queued_after_the_mark);
    tcase_add_test(tc, test_rollback_refuses_once_some_was_written);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conn_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
