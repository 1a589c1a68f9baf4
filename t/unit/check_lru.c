/*
 * LRU and eviction: a small memory limit and one item size, so every item
 * lands in one class and the class fills after a known number of stores.
 * Presence is checked with do_item_find() under the stripe, which (unlike
 * item_get) does not mark the item active, so checking does not change the
 * eviction order under test.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/item.h"
#include "storage/storage.h"
#include "util/clock.h"

#define MIB ((size_t)1024 * 1024)
#define VLEN 1000
#define MAX_KEYS 20000

static int64_t t0;

static void start(bool evict)
{
    struct storage_config cfg;
    char err[256] = "";

    clock_setup();
    t0 = clock_now_ms();
    storage_config_default(&cfg);
    cfg.mem_limit = 4 * MIB;
    cfg.item_size_max = MIB;
    cfg.evict = evict;
    ck_assert_msg(storage_setup(&cfg, err, sizeof(err)) == 0, "setup: %s", err);
}

static void setup_evict(void)
{
    start(true);
}

static void teardown(void)
{
    storage_teardown();
}

static const char *key_of(int i)
{
    static char key[32];

    snprintf(key, sizeof(key), "key:%06d", i);
    return key;
}

static enum item_result put_at(int i, int64_t exptime, int64_t now)
{
    const char *key = key_of(i);
    enum item_alloc_status st;
    struct item *it = item_alloc(key, strlen(key), 0, exptime, VLEN, now, &st);
    enum item_result r;

    if (it == NULL)
        return st == ITEM_ALLOC_NOMEM ? ITEM_NOMEM : ITEM_TOO_LARGE;
    memset(item_value(it), 'a' + i % 26, VLEN);
    r = item_store(it, STORE_SET, 0, now, NULL);
    item_put(it);
    return r;
}

/* Present and live, without bumping it. */
static bool present(int i, int64_t now)
{
    const char *key = key_of(i);
    uint64_t hv = item_hash(key, strlen(key));
    struct item *it;

    item_lock(hv);
    it = do_item_find(key, strlen(key), hv, now, NULL);
    item_unlock(hv);
    if (it != NULL)
        item_put(it);
    return it != NULL;
}

static struct storage_stats stats(void)
{
    struct storage_stats s;

    storage_stats(&s);
    return s;
}

/* Store key 0, 1, ... until the first eviction; returns the count stored. */
static int fill_until_eviction(int64_t exptime)
{
    int i;

    for (i = 0; i < MAX_KEYS; i++) {
        ck_assert_int_eq(put_at(i, exptime, t0), ITEM_STORED);
        if (stats().evictions > 0)
            return i + 1;
    }
    ck_abort_msg("no eviction after %d items", MAX_KEYS);
    return 0;
}

START_TEST(test_eviction_removes_least_recently_stored_first)
{
    int n = fill_until_eviction(0), i;

    ck_assert_int_gt(n, 100);
    ck_assert(!present(0, t0));
    for (i = 1; i < n; i++)
        ck_assert(present(i, t0));
    for (i = n; i < n + 5; i++)
        ck_assert_int_eq(put_at(i, 0, t0), ITEM_STORED);
    ck_assert_uint_eq(stats().evictions, 6);
    for (i = 0; i < 6; i++)
        ck_assert(!present(i, t0));
    for (i = 6; i < n + 5; i++)
        ck_assert(present(i, t0));
}
END_TEST

START_TEST(test_item_read_since_stored_gets_second_chance)
{
    int n = fill_until_eviction(0), i;
    struct item *it;

    /* key 1 is now the tail; a hit marks it active */
    it = item_get(key_of(1), strlen(key_of(1)), t0, NULL);
    ck_assert_ptr_nonnull(it);
    item_put(it);
    ck_assert_int_eq(put_at(n, 0, t0), ITEM_STORED);
    ck_assert(present(1, t0));
    ck_assert(!present(2, t0));
    ck_assert_int_eq(put_at(n + 1, 0, t0), ITEM_STORED);
    ck_assert(present(1, t0));
    ck_assert(!present(3, t0));
    for (i = 4; i <= n + 1; i++)
        ck_assert(present(i, t0));
}
END_TEST

START_TEST(test_item_with_reader_reference_is_not_evicted)
{
    int n = fill_until_eviction(0);
    const char *k1 = key_of(1);
    uint64_t hv = item_hash(k1, strlen(k1));
    struct item *held;

    item_lock(hv);
    held = do_item_find(k1, strlen(k1), hv, t0, NULL);   /* a reference, no bump */
    item_unlock(hv);
    ck_assert_ptr_nonnull(held);
    ck_assert_uint_eq(stats().lrutail_reflocked, 0);
    ck_assert_int_eq(put_at(n, 0, t0), ITEM_STORED);
    ck_assert(present(1, t0));
    ck_assert(!present(2, t0));
    ck_assert_uint_eq(stats().lrutail_reflocked, 1);   /* memcached's name for the skip */
    item_put(held);
    ck_assert_int_eq(put_at(n + 1, 0, t0), ITEM_STORED);
    ck_assert(!present(1, t0));     /* once released it is the oldest again */
}
END_TEST

START_TEST(test_expired_items_reclaimed_before_live_ones_evicted)
{
    int64_t later = t0 + 5000;
    struct storage_stats s;
    int i, n;

    /* keys 5 and 9 expire at t0 + 1 s, the rest never */
    for (i = 0; i < MAX_KEYS; i++) {
        ck_assert_int_eq(put_at(i, (i == 5 || i == 9) ? t0 + 1000 : 0, t0), ITEM_STORED);
        if (stats().evictions > 0)
            break;
    }
    n = i + 1;
    ck_assert(!present(0, t0));
    ck_assert_int_eq(put_at(n, 0, later), ITEM_STORED);
    ck_assert_int_eq(put_at(n + 1, 0, later), ITEM_STORED);
    s = stats();
    ck_assert_uint_eq(s.evictions, 1);
    ck_assert_uint_eq(s.reclaimed, 2);
    ck_assert_uint_eq(s.expired_unfetched, 2);
    ck_assert(present(1, later));
    ck_assert(present(n, later) && present(n + 1, later));
    ck_assert_int_eq(put_at(n + 2, 0, later), ITEM_STORED);
    ck_assert_uint_eq(stats().evictions, 2);
    ck_assert(!present(1, later));
}
END_TEST

START_TEST(test_no_evict_gives_nomem_and_keeps_all_items)
{
    enum item_result r = ITEM_STORED;
    struct storage_stats s;
    int i, n = 0;

    storage_teardown();
    start(false);
    for (i = 0; i < MAX_KEYS && r == ITEM_STORED; i++) {
        r = put_at(i, 0, t0);
        if (r == ITEM_STORED)
            n++;
    }
    ck_assert_int_eq(r, ITEM_NOMEM);
    ck_assert_int_gt(n, 100);
    ck_assert_int_eq(put_at(n + 1, 0, t0), ITEM_NOMEM);
    s = stats();
    ck_assert_uint_eq(s.evictions, 0);
    ck_assert_uint_eq(s.curr_items, (uint64_t)n);
    ck_assert_uint_ge(s.outofmemory, 2);
    for (i = 0; i < n; i++)
        ck_assert(present(i, t0));
    /* dead items are still reclaimed without eviction */
    item_flush(0, t0);
    ck_assert_int_eq(put_at(n + 1, 0, t0), ITEM_STORED);
    ck_assert_uint_eq(stats().reclaimed, 1);
}
END_TEST

START_TEST(test_eviction_counters)
{
    struct storage_class_stats cs;
    int64_t later = t0 + 7000;
    struct storage_stats s;
    int n, i;
    unsigned id;
    struct item *it;

    n = fill_until_eviction(t0 + 3600 * 1000);
    it = item_get(key_of(1), strlen(key_of(1)), t0, NULL);   /* fetched */
    ck_assert_ptr_nonnull(it);
    id = it->clsid;
    item_put(it);
    for (i = n; i < n + 3; i++)
        ck_assert_int_eq(put_at(i, 0, later), ITEM_STORED);
    s = stats();
    ck_assert_uint_eq(s.evictions, 4);          /* keys 0, 2, 3, 4 */
    ck_assert_uint_eq(s.evicted_unfetched, 4);
    ck_assert_uint_eq(s.evicted_active, 0);
    storage_class_stats(id, later, &cs);
    ck_assert_uint_eq(cs.evicted, 4);
    ck_assert_uint_eq(cs.evicted_nonzero, 4);
    ck_assert_uint_eq(cs.evicted_time, 7);
    ck_assert_uint_eq(cs.evicted_unfetched, 4);
    ck_assert_uint_eq(cs.number, (uint64_t)n - 1);
    ck_assert_uint_eq(cs.age_sec, 7);
}
END_TEST

START_TEST(test_all_active_tail_still_evicts)
{
    int n = fill_until_eviction(0), i;
    struct item *it;

    for (i = 1; i < n; i++) {
        it = item_get(key_of(i), strlen(key_of(i)), t0, NULL);
        ck_assert_ptr_nonnull(it);
        item_put(it);
    }
    ck_assert_int_eq(put_at(n, 0, t0), ITEM_STORED);
    ck_assert_uint_eq(stats().evictions, 2);
    ck_assert_uint_eq(stats().evicted_active, 1);
}
END_TEST

/* ---- concurrency: eviction while other threads read, write and delete ---- */

enum { NTHREADS = 4, OPS = 20000, KEYSPACE = 8000 };

struct worker {
    pthread_t tid;
    unsigned seed;
    int errors;
    int nomem;
};

/* Values are the key's byte repeated, so any reader can check what it got. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    enum item_alloc_status st;
    char key[32];
    int i;

    for (i = 0; i < OPS; i++) {
        int k = (int)(rand_r(&w->seed) % KEYSPACE), op = (int)(rand_r(&w->seed) % 10);
        size_t vlen = 200 + (size_t)(k % 7) * 300;
        struct item *it;

        snprintf(key, sizeof(key), "c%d", k);
        if (op < 5) {
            it = item_alloc(key, strlen(key), 0, 0, vlen, t0, &st);
            if (it == NULL) {
                w->nomem++;
                continue;
            }
            memset(item_value(it), 'a' + k % 26, vlen);
            if (item_store(it, STORE_SET, 0, t0, NULL) != ITEM_STORED)
                w->errors++;
            item_put(it);
        } else if (op < 9) {
            it = item_get(key, strlen(key), t0, NULL);
            if (it != NULL) {
                if (it->nbytes != vlen || item_value(it)[0] != 'a' + k % 26 ||
                    item_value(it)[vlen - 1] != 'a' + k % 26 || item_value(it)[vlen] != '\r')
                    w->errors++;
                item_put(it);
            }
        } else {
            item_delete(key, strlen(key), 0, t0);
        }
    }
    return NULL;
}

START_TEST(test_concurrent_eviction_keeps_values_and_counts_consistent)
{
    static struct worker w[NTHREADS];
    struct storage_class_stats cs;
    struct storage_stats s;
    uint64_t listed = 0;
    unsigned id;
    int t;

    for (t = 0; t < NTHREADS; t++) {
        w[t].seed = (unsigned)t * 7919u + 1;
        ck_assert_int_eq(pthread_create(&w[t].tid, NULL, worker_main, &w[t]), 0);
    }
    for (t = 0; t < NTHREADS; t++)
        pthread_join(w[t].tid, NULL);
    for (t = 0; t < NTHREADS; t++) {
        ck_assert_msg(w[t].errors == 0, "thread %d: %d bad values", t, w[t].errors);
        ck_assert_int_eq(w[t].nomem, 0);
    }
    storage_stats(&s);
    ck_assert_uint_gt(s.evictions, 0);
    for (id = 1; id <= storage_class_count(); id++) {
        storage_class_stats(id, t0, &cs);
        listed += cs.number;
        ck_assert_uint_eq(cs.used_chunks, cs.number);
    }
    ck_assert_uint_eq(listed, s.curr_items);
}
END_TEST

static Suite *lru_suite(void)
{
    Suite *s = suite_create("lru");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup_evict, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_eviction_removes_least_recently_stored_first);
    tcase_add_test(tc, test_item_read_since_stored_gets_second_chance);
    tcase_add_test(tc, test_item_with_reader_reference_is_not_evicted);
    tcase_add_test(tc, test_expired_items_reclaimed_before_live_ones_evicted);
    tcase_add_test(tc, test_no_evict_gives_nomem_and_keeps_all_items);
    tcase_add_test(tc, test_eviction_counters);
    tcase_add_test(tc, test_all_active_tail_still_evicts);
    tcase_add_test(tc, test_concurrent_eviction_keeps_values_and_counts_consistent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lru_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
