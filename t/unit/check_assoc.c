/*
 * Hash table: lookups, incremental growth (driven by hand for exact
 * interleavings, and by the maintenance thread with concurrent requests),
 * and the scan cursor across growth. The smallest table has 2^12 buckets
 * (one per stripe), so a few thousand keys are enough to make it grow.
 *
 * The concurrent test is meant to be run under ThreadSanitizer too; its
 * worker threads count mismatches and the main thread asserts on the counts
 * (Check's assertions belong in the test's own thread).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/assoc.h"
#include "storage/item.h"
#include "storage/storage.h"
#include "util/clock.h"

#define NSTABLE 6000

static int64_t t0;

static void setup(void)
{
    struct storage_config cfg;
    char err[256] = "";

    clock_setup();
    t0 = clock_now_ms();
    storage_config_default(&cfg);
    cfg.hashpower = 1;      /* raised to the minimum, 2^12 */
    ck_assert_msg(storage_setup(&cfg, err, sizeof(err)) == 0, "setup: %s", err);
}

static void teardown(void)
{
    storage_teardown();
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* Store key -> value (the key itself, so a lookup can check it got its own). */
static bool put(const char *key)
{
    enum item_alloc_status st;
    size_t n = strlen(key);
    struct item *it = item_alloc(key, n, 0, 0, n, t0, &st);
    enum item_result r;

    if (it == NULL)
        return false;
    item_value_write(it, 0, key, n);
    r = item_store(it, STORE_SET, 0, t0, NULL);
    item_put(it);
    return r == ITEM_STORED;
}

/* 1 found with the right value, 0 absent, -1 found with a wrong value. */
static int lookup(const char *key)
{
    size_t n = strlen(key);
    struct item *it = item_get(key, n, t0, NULL);
    char buf[64];
    int r;

    if (it == NULL)
        return 0;
    r = item_nbytes(it) == n && item_value_read(it, 0, buf, n) == n && memcmp(buf, key, n) == 0
        ? 1 : -1;
    item_put(it);
    return r;
}

static const char *kname(char *buf, size_t len, char prefix, int i)
{
    snprintf(buf, len, "%c%06d", prefix, i);
    return buf;
}

static struct storage_stats stats(void)
{
    struct storage_stats s;

    storage_stats(&s);
    return s;
}

/* Every key alive[i] is findable with its value, every other one is not. */
static void verify(const bool *alive, int n, char prefix)
{
    char key[32];
    int i, r = 0;

    /* One assertion per call, for the first wrong key: Check sends each
     * passing assertion to its parent, and this checks a million keys. */
    for (i = 0; i < n; i++) {
        r = lookup(kname(key, sizeof(key), prefix, i));
        if (r != (alive[i] ? 1 : 0))
            break;
    }
    ck_assert_msg(i == n, "key %s: lookup %d, alive %d", key, r, alive[i]);
}

/* Hash flooding: every set-up draws a new seed, so the bucket (and the
 * stripe) of a key cannot be known from outside the process. */
START_TEST(test_each_setup_draws_a_new_random_hash_seed)
{
    char err[256] = "";
    struct storage_config cfg;
    uint64_t seed1 = assoc_seed(), h1 = assoc_hash("flood", 5);
    int differ = 0;

    storage_teardown();
    storage_config_default(&cfg);
    cfg.hashpower = 1;
    ck_assert_msg(storage_setup(&cfg, err, sizeof(err)) == 0, "setup: %s", err);
    ck_assert_uint_ne(assoc_seed(), seed1);
    ck_assert_uint_ne(assoc_seed(), 0);
    ck_assert_uint_ne(assoc_hash("flood", 5), h1);
    /* Not only the hash moves but the bucket: of 64 keys, most change
     * bucket in a 2^12 table (any fixed placement would keep them all). */
    for (int i = 0; i < 64; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        uint64_t mask = (1u << ASSOC_POWER_MIN) - 1;
        storage_teardown();
        ck_assert(storage_setup(&cfg, err, sizeof(err)) == 0);
        uint64_t b1 = assoc_hash(key, strlen(key)) & mask;
        storage_teardown();
        ck_assert(storage_setup(&cfg, err, sizeof(err)) == 0);
        differ += (assoc_hash(key, strlen(key)) & mask) != b1;
    }
    ck_assert_int_ge(differ, 60);
}
END_TEST

START_TEST(test_insert_find_delete_many_keys)
{
    enum { N = 50000 };
    static bool alive[N];
    char key[32];
    int i;

    /* Asserts only on a failure: Check sends each passing assertion to
     * its parent. */
    for (i = 0; i < N; i++) {
        if (!put(kname(key, sizeof(key), 'k', i)))
            ck_abort_msg("put %s failed", key);
        alive[i] = true;
    }
    verify(alive, N, 'k');
    for (i = 0; i < N; i += 2) {
        int r = item_delete(kname(key, sizeof(key), 'k', i), 7, 0, t0);

        if (r != ITEM_DELETED)
            ck_abort_msg("delete %s: %d", key, r);
        alive[i] = false;
    }
    verify(alive, N, 'k');
    ck_assert_uint_eq(stats().curr_items, N / 2);
}
END_TEST

/* One hand-driven growth, mutating and verifying between migration steps. */
static void grow_by_hand(bool *alive, int *n, int cap)
{
    char key[32];
    unsigned steps = 0, power = (unsigned)stats().hash_power_level;
    int i;

    ck_assert(assoc_expand_begin());
    ck_assert(stats().hash_is_expanding);
    ck_assert_uint_eq(stats().hash_power_level, power + 1);
    verify(alive, *n, 'k');
    while (assoc_expand_step(16)) {
        if (++steps >= 1u << 20)
            ck_abort_msg("still growing after %u steps", steps);
        if (steps % 97 == 0) {
            for (i = (int)steps % 13; i < *n; i += 13) {        /* remove some */
                item_delete(kname(key, sizeof(key), 'k', i), 7, 0, t0);
                alive[i] = false;
            }
            for (i = 0; i < 50 && *n < cap; i++, (*n)++) {      /* add some */
                if (!put(kname(key, sizeof(key), 'k', *n)))
                    ck_abort_msg("put %s failed", key);
                alive[*n] = true;
            }
        }
        if (steps % 500 == 0)
            verify(alive, *n, 'k');
    }
    verify(alive, *n, 'k');
    assoc_expand_end();
    ck_assert(!stats().hash_is_expanding);
    ck_assert_uint_eq(stats().hash_power_level, power + 1);
    verify(alive, *n, 'k');
}

START_TEST(test_growth_by_hand_keeps_every_live_key_findable)
{
    enum { CAP = 30000 };
    static bool alive[CAP];
    char key[32];
    int n;

    assoc_pause_growth(true);
    for (n = 0; n < 8000; n++) {
        if (!put(kname(key, sizeof(key), 'k', n)))
            ck_abort_msg("put %s failed", key);
        alive[n] = true;
    }
    ck_assert_uint_eq(stats().hash_power_level, ASSOC_POWER_MIN);
    grow_by_hand(alive, &n, CAP);
    grow_by_hand(alive, &n, CAP);
    ck_assert_uint_eq(stats().hash_power_level, ASSOC_POWER_MIN + 2);
}
END_TEST

static void wait_growth_settled(unsigned power)
{
    int i;

    for (i = 0; i < 500; i++) {
        struct storage_stats s = stats();

        if (s.hash_power_level >= power && !s.hash_is_expanding)
            return;
        sleep_ms(20);
    }
    ck_abort_msg("table did not grow to 2^%u", power);
}

START_TEST(test_growth_by_thread_while_adding_and_removing)
{
    enum { N = 40000 };
    static bool alive[N];
    char key[32];
    int i, expanding_seen = 0;

    /* Asserts only on a failure: Check sends each passing assertion to
     * its parent. */
    for (i = 0; i < N; i++) {
        if (!put(kname(key, sizeof(key), 'k', i)))
            ck_abort_msg("put %s failed", key);
        alive[i] = true;
        if (i % 3 == 0 && i >= 100) {
            int r = item_delete(kname(key, sizeof(key), 'k', i - 100), 7, 0, t0);

            if (r != ITEM_DELETED)
                ck_abort_msg("delete %s: %d", key, r);
            alive[i - 100] = false;
        }
        if (i % 2000 == 0) {
            expanding_seen += stats().hash_is_expanding;
            verify(alive, i + 1, 'k');
        }
    }
    /* ~26700 live keys need 2^15 buckets at 1.5 per bucket */
    wait_growth_settled(ASSOC_POWER_MIN + 3);
    verify(alive, N, 'k');
}
END_TEST

static uint64_t khash(const char *key)
{
    return item_hash(key, strlen(key));
}

/* item_prefetch is a hint: present, absent and locked keys, in the middle
 * of a growth (stripes on either view), change nothing a lookup sees. */
START_TEST(test_prefetch_is_a_hint_even_mid_growth_and_on_held_stripes)
{
    uint64_t hv[32];
    char key[32];
    int n;

    assoc_pause_growth(true);
    for (n = 0; n < 7000; n++)
        if (!put(kname(key, sizeof(key), 'p', n)))
            ck_abort_msg("put %s failed", key);
    ck_assert(assoc_expand_begin());
    ck_assert(assoc_expand_step(ASSOC_NSTRIPES));   /* some stripes switched, most not */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 32; i++)
            hv[i] = khash(kname(key, sizeof(key), i % 2 ? 'p' : 'x', i * 211));
        /* a stripe this thread holds is skipped, not waited for */
        item_lock(hv[0]);
        item_prefetch(hv, 32);
        item_unlock(hv[0]);
        item_prefetch(hv, 0);
        for (int i = 0; i < 32; i++)
            ck_assert_int_eq(lookup(kname(key, sizeof(key), i % 2 ? 'p' : 'x', i * 211)),
                             i % 2 ? 1 : 0);
        while (assoc_expand_step(ASSOC_NSTRIPES))
            ;
        assoc_expand_end();
    }
    ck_assert_uint_eq(stats().hash_power_level, ASSOC_POWER_MIN + 1);
    for (n = 0; n < 7000; n++)
        ck_assert_int_eq(lookup(kname(key, sizeof(key), 'p', n)), 1);
}
END_TEST

/* ---- concurrency ---- */

enum { NTHREADS = 4, PER_THREAD = 12000 };

struct worker {
    pthread_t tid;
    int id;
    int errors;
    bool alive[PER_THREAD];
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char key[32], other[32];
    int i, r;

    for (i = 0; i < PER_THREAD; i++) {
        snprintf(key, sizeof(key), "t%d-%d", w->id, i);
        if (!put(key))
            w->errors++;
        w->alive[i] = true;
        if (i % 5 == 0) {
            if (item_delete(key, strlen(key), 0, t0) != ITEM_DELETED)
                w->errors++;
            w->alive[i] = false;
        }
        /* re-read one of my earlier keys: must match what I did */
        snprintf(key, sizeof(key), "t%d-%d", w->id, i / 2);
        /* and someone else's: may be there or not, but never wrong;
         * both prefetched first, as a pipelined batch is, racing growth */
        snprintf(other, sizeof(other), "t%d-%d", (w->id + 1) % NTHREADS, i);
        uint64_t hv[2] = { khash(key), khash(other) };
        item_prefetch(hv, 2);
        r = lookup(key);
        if (r != (w->alive[i / 2] ? 1 : 0))
            w->errors++;
        if (lookup(other) < 0)
            w->errors++;
    }
    return NULL;
}

START_TEST(test_concurrent_get_store_delete_during_growth)
{
    static struct worker w[NTHREADS];
    char key[32];
    int t, i;

    for (t = 0; t < NTHREADS; t++) {
        w[t].id = t;
        w[t].errors = 0;
        ck_assert_int_eq(pthread_create(&w[t].tid, NULL, worker_main, &w[t]), 0);
    }
    for (t = 0; t < NTHREADS; t++)
        pthread_join(w[t].tid, NULL);
    for (t = 0; t < NTHREADS; t++)
        ck_assert_msg(w[t].errors == 0, "thread %d: %d errors", t, w[t].errors);
    /* 38400 live keys: at least two doublings from 2^12 */
    wait_growth_settled(ASSOC_POWER_MIN + 2);
    for (t = 0; t < NTHREADS; t++) {
        for (i = 0; i < PER_THREAD; i++) {
            snprintf(key, sizeof(key), "t%d-%d", t, i);
            int r = lookup(key);

            /* Asserts only on a wrong key: Check sends each passing
             * assertion to its parent. */
            if (r != (w[t].alive[i] ? 1 : 0))
                ck_abort_msg("key %s: lookup %d, alive %d", key, r, w[t].alive[i]);
        }
    }
    ck_assert_uint_eq(stats().curr_items, NTHREADS * PER_THREAD * 4 / 5);
}
END_TEST

/* ---- scan ---- */

struct seen {
    int count[NSTABLE];
    int others;
};

static void on_item(struct item *it, void *arg)
{
    struct seen *s = arg;
    char buf[16];

    if (it->nkey == 7 && item_key(it)[0] == 's') {
        memcpy(buf, item_key(it) + 1, 6);
        buf[6] = '\0';
        s->count[atoi(buf)]++;
    } else {
        s->others++;
    }
}

START_TEST(test_scan_returns_every_key_once_without_growth)
{
    static struct seen seen;
    uint64_t cursor = 0;
    char key[32];
    unsigned calls = 0;
    int i;

    assoc_pause_growth(true);
    for (i = 0; i < NSTABLE; i++)
        if (!put(kname(key, sizeof(key), 's', i)))
            ck_abort_msg("put %s failed", key);
    for (i = 0; i < 100; i++)
        if (!put(kname(key, sizeof(key), 'x', i)))
            ck_abort_msg("put %s failed", key);
    for (i = 0; i < 100; i++)
        item_delete(kname(key, sizeof(key), 'x', i), 7, 0, t0);
    do {
        cursor = item_scan(cursor, t0, on_item, &seen);
        ck_assert_uint_le(++calls, 1u << ASSOC_POWER_MIN);
    } while (cursor != 0);
    ck_assert_uint_eq(calls, 1u << ASSOC_POWER_MIN);
    for (i = 0; i < NSTABLE; i++)
        if (seen.count[i] != 1)
            ck_abort_msg("key %d seen %d times", i, seen.count[i]);
    ck_assert_int_eq(seen.others, 0);
}
END_TEST

START_TEST(test_scan_returns_every_key_during_growth)
{
    static struct seen seen;
    uint64_t cursor = 0;
    unsigned calls = 0, growths = 0;
    bool growing = false;
    char key[32];
    int i, v = 0;

    assoc_pause_growth(true);
    for (i = 0; i < NSTABLE; i++)
        if (!put(kname(key, sizeof(key), 's', i)))
            ck_abort_msg("put %s failed", key);
    do {
        cursor = item_scan(cursor, t0, on_item, &seen);
        calls++;
        if (calls >= 1u << 20)
            ck_abort_msg("scan not done after %u calls", calls);
        /* start a growth early in, and a second as soon as it is done */
        if (!growing && (calls == 100 || (growths == 1 && cursor != 0))) {
            ck_assert(assoc_expand_begin());
            growing = true;
            growths++;
        }
        if (growing && (!assoc_expand_step(2) || !assoc_expand_step(2))) {
            assoc_expand_end();
            growing = false;
        }
        /* churn that the scan may or may not report */
        if (calls % 3 == 0 && v < 20000)
            if (!put(kname(key, sizeof(key), 'v', v++)))
                ck_abort_msg("put %s failed", key);
        if (calls % 7 == 0 && v > 10)
            item_delete(kname(key, sizeof(key), 'v', v - 10), 7, 0, t0);
    } while (cursor != 0);
    ck_assert_uint_eq(growths, 2);
    for (i = 0; i < NSTABLE; i++)
        if (seen.count[i] < 1)
            ck_abort_msg("key %d never seen", i);
}
END_TEST

START_TEST(test_scan_skips_dead_items)
{
    static struct seen seen;
    uint64_t cursor = 0;
    char key[32];
    int i;

    for (i = 0; i < 10; i++)
        if (!put(kname(key, sizeof(key), 's', i)))
            ck_abort_msg("put %s failed", key);
    item_flush(0, t0);
    ck_assert(put(kname(key, sizeof(key), 's', 3)));
    do {
        cursor = item_scan(cursor, t0, on_item, &seen);
    } while (cursor != 0);
    for (i = 0; i < 10; i++)
        ck_assert_int_eq(seen.count[i], i == 3);
}
END_TEST

static void count_item(struct item *it, void *arg)
{
    (void)it;
    (*(unsigned *)arg)++;
}

/* item_scan_batch (issue 14, SCAN's COUNT): one call walks a stripe's whole
 * run of buckets under one hold and stops where the stripe ends, so a walk
 * of 2^14 buckets is 4096 holds, and every key comes back exactly once. */
START_TEST(test_scan_batch_walks_one_stripe_run_per_hold)
{
    static struct seen seen;
    uint64_t cursor = 0, bytes;
    unsigned calls = 0, power;
    bool growing;
    char key[32];
    int i;

    assoc_pause_growth(true);
    for (i = 0; i < NSTABLE; i++)
        if (!put(kname(key, sizeof(key), 's', i)))
            ck_abort_msg("put %s failed", key);
    for (i = 0; i < 2; i++) {   /* 2^14 buckets: four per stripe */
        ck_assert(assoc_expand_begin());
        while (assoc_expand_step(64))
            ;
        assoc_expand_end();
    }
    assoc_table_info(&power, &bytes, &growing);
    ck_assert_uint_eq(power, ASSOC_POWER_MIN + 2);
    do {
        struct item_scan_work w = { .max_steps = UINT64_MAX, .max_items = UINT64_MAX };
        uint64_t from = cursor;

        cursor = item_scan_batch(cursor, t0, &w, on_item, &seen);
        ck_assert_uint_eq(w.steps, 4);
        ck_assert(cursor == 0 ||
                  (cursor & (ASSOC_NSTRIPES - 1)) != (from & (ASSOC_NSTRIPES - 1)));
        ck_assert_uint_le(++calls, ASSOC_NSTRIPES);
    } while (cursor != 0);
    ck_assert_uint_eq(calls, ASSOC_NSTRIPES);
    for (i = 0; i < NSTABLE; i++)
        if (seen.count[i] != 1)
            ck_abort_msg("key %d seen %d times", i, seen.count[i]);
}
END_TEST

/* The bounds of a batch: max_steps, and max_items checked after each whole
 * step, so a batch ends with the first step that reaches it. */
START_TEST(test_scan_batch_stops_at_max_steps_and_max_items)
{
    struct item_scan_work w = { .max_steps = 3, .max_items = UINT64_MAX };
    uint64_t cursor = 0;
    unsigned n = 0;
    char key[32];
    int i;

    assoc_pause_growth(true);
    for (i = 0; i < NSTABLE; i++)
        if (!put(kname(key, sizeof(key), 's', i)))
            ck_abort_msg("put %s failed", key);
    for (i = 0; i < 2; i++) {   /* 2^14 buckets: four per stripe */
        ck_assert(assoc_expand_begin());
        while (assoc_expand_step(64))
            ;
        assoc_expand_end();
    }
    item_scan_batch(0, t0, &w, count_item, &n);
    ck_assert_uint_eq(w.steps, 3);
    ck_assert_uint_eq(w.items, n);
    do {
        unsigned per_step[4] = { 0, 0, 0, 0 }, first = 0;
        uint64_t next = cursor;

        for (i = 0; i < 4; i++)
            next = item_scan(next, t0, count_item, &per_step[i]);
        while (first < 3 && per_step[first] == 0)
            first++;
        w = (struct item_scan_work){ .max_steps = UINT64_MAX, .max_items = 1 };
        n = 0;
        uint64_t after = item_scan_batch(cursor, t0, &w, count_item, &n);
        ck_assert_uint_eq(w.steps, first + 1);
        ck_assert_uint_eq(w.items, per_step[first]);
        if (first == 3)
            ck_assert_uint_eq(after, next);   /* the stripe's end came first */
        cursor = next;
    } while (cursor != 0);
}
END_TEST

static Suite *assoc_suite(void)
{
    Suite *s = suite_create("assoc");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_each_setup_draws_a_new_random_hash_seed);
    tcase_add_test(tc, test_insert_find_delete_many_keys);
    tcase_add_test(tc, test_growth_by_hand_keeps_every_live_key_findable);
    tcase_add_test(tc, test_growth_by_thread_while_adding_and_removing);
    tcase_add_test(tc, test_prefetch_is_a_hint_even_mid_growth_and_on_held_stripes);
    tcase_add_test(tc, test_concurrent_get_store_delete_during_growth);
    tcase_add_test(tc, test_scan_returns_every_key_once_without_growth);
    tcase_add_test(tc, test_scan_returns_every_key_during_growth);
    tcase_add_test(tc, test_scan_skips_dead_items);
    tcase_add_test(tc, test_scan_batch_walks_one_stripe_run_per_hold);
    tcase_add_test(tc, test_scan_batch_stops_at_max_steps_and_max_items);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(assoc_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
