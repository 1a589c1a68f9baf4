/*
 * Eviction policies and the crawler: a small memory limit and one item size,
 * so every item lands in one class and the class fills after a known number
 * of stores. Presence is checked with do_item_find() under the stripe, which
 * (unlike item_get) counts no access, so checking does not change the
 * eviction order under test. The crawler thread is off; tests drive its
 * step by hand.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "storage/evict.h"
#include "storage/evict_int.h"
#include "storage/item.h"
#include "storage/rebalance.h"
#include "storage/storage.h"
#include "storage/slab.h"
#include "util/clock.h"

#define MIB ((size_t)1024 * 1024)
#define VLEN 1000
#define MAX_KEYS 20000

static int64_t t0;

static void start_policy(enum evict_policy p)
{
    struct storage_config cfg;
    char err[256] = "";

    clock_setup();
    t0 = clock_now_ms();
    storage_config_default(&cfg);
    cfg.mem_limit = 4 * MIB;
    cfg.item_size_max = MIB;
    cfg.policy = p;
    cfg.crawler = false;
    cfg.slab_automove = 0;      /* tests move pages by hand */
    ck_assert_msg(storage_setup(&cfg, err, sizeof(err)) == 0, "setup: %s", err);
}

static void setup_evict(void)
{
    start_policy(EVICT_S3FIFO);
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


/* Evictions so far, cheaply: every key:NNNNNN item of VLEN bytes lives in
 * one class, and its stats take one lock, where storage_stats() takes every
 * stripe's. */
static uint64_t evictions(void)
{
    struct storage_class_stats cs;

    storage_slab_class_stats(slab_clsid(item_header_size() + strlen(key_of(0)) + VLEN + 2), t0, &cs);
    return cs.evicted;
}

/* Store keys from..to-1; returns how many were stored. */
static int put_range(int from, int to, int64_t exptime, int64_t now)
{
    int n = 0;

    for (int i = from; i < to; i++)
        n += put_at(i, exptime, now) == ITEM_STORED;
    return n;
}

static int count_present(int from, int to, int64_t now)
{
    int n = 0;

    for (int i = from; i < to; i++)
        n += present(i, now);
    return n;
}

static void read_key(int i, int64_t now)
{
    struct item *it = item_get(key_of(i), strlen(key_of(i)), now, NULL);

    /* Checked without a passing assertion: Check sends each one to its
     * parent, and the loops read thousands. */
    if (it == NULL)
        ck_abort_msg("%s is missing", key_of(i));
    item_put(it);
}

/* Store key 0, 1, ... until the first eviction; returns the count stored. */
static int fill_until_eviction(int64_t exptime)
{
    int i;

    for (i = 0; i < MAX_KEYS; i++) {
        enum item_result r = put_at(i, exptime, t0);

        if (r != ITEM_STORED)
            ck_abort_msg("%s: store result %d", key_of(i), (int)r);
        if (evictions() > 0)
            return i + 1;
    }
    ck_abort_msg("no eviction after %d items", MAX_KEYS);
    return 0;
}

static uint8_t iflags_of(int i)
{
    struct item *it = item_get(key_of(i), strlen(key_of(i)), t0, NULL);
    uint8_t f;

    ck_assert_ptr_nonnull(it);
    f = item_iflags(it);
    item_put(it);
    return f;
}

/* ---- layout ---- */

START_TEST(test_header_is_32_bytes_and_40_with_cas)
{
    enum item_alloc_status st;
    struct item *it;

    ck_assert_uint_eq(sizeof(struct item), 32);
    ck_assert_uint_eq(item_header_size(), 40);
    it = item_alloc("k", 1, 0xfffffffeu, t0 + 1234567, 3, t0, &st);
    ck_assert_ptr_nonnull(it);
    ck_assert_ptr_eq(item_key(it), (const char *)it + 40);
    ck_assert_int_eq(item_exptime(it), t0 + 1234567);      /* millisecond exact */
    ck_assert_uint_eq(item_flags(it), 0xfffffffeu);
    item_set_cas(it, UINT64_MAX - 5);
    ck_assert_uint_eq(item_cas(it), UINT64_MAX - 5);
    item_set_exptime_unlinked(it, t0 - 100000);             /* before start: stays expired */
    ck_assert(item_exptime_passed(item_exptime(it), t0));
    item_set_exptime_unlinked(it, t0 + 200LL * 365 * 86400 * 1000 + 7);   /* ms exact */
    ck_assert_int_eq(item_exptime(it), t0 + 200LL * 365 * 86400 * 1000 + 7);
    item_set_exptime_unlinked(it, 99999999999000LL);        /* year 5138: to the second */
    ck_assert_int_le(llabs(item_exptime(it) - 99999999999000LL), 1000);
    item_set_exptime_unlinked(it, 0);
    ck_assert_int_eq(item_exptime(it), 0);
    item_put(it);
}
END_TEST

START_TEST(test_header_is_32_bytes_without_cas)
{
    struct storage_config cfg;
    char err[256] = "";
    enum item_alloc_status st;
    struct item *it;

    storage_teardown();
    storage_config_default(&cfg);
    cfg.use_cas = false;
    cfg.crawler = false;
    ck_assert(storage_setup(&cfg, err, sizeof(err)) == 0);
    ck_assert_uint_eq(item_header_size(), 32);
    it = item_alloc("key", 3, 7, 0, 5, t0, &st);
    ck_assert_ptr_nonnull(it);
    ck_assert_ptr_eq(item_key(it), (const char *)it + 32);
    memcpy(item_value(it), "hello", 5);
    ck_assert_int_eq(item_store(it, STORE_SET, 0, t0, NULL), ITEM_STORED);
    item_set_cas(it, 99);
    ck_assert_uint_eq(item_cas(it), 0);
    ck_assert_uint_eq(item_clsid(it), 1);      /* 32 + 3 + 5 + 2 fits the smallest class */
    item_put(it);
}
END_TEST

/* ---- S3-FIFO ---- */

START_TEST(test_s3fifo_evicts_unread_new_items_first_in_insertion_order)
{
    int n = fill_until_eviction(0);

    ck_assert(!present(0, t0));
    ck_assert_int_eq(count_present(1, n, t0), n - 1);
    ck_assert_int_eq(put_at(n, 0, t0), ITEM_STORED);
    ck_assert(!present(1, t0));
    ck_assert(present(2, t0));
}
END_TEST

START_TEST(test_s3fifo_item_read_on_probation_is_promoted_not_evicted)
{
    int n = fill_until_eviction(0);

    ck_assert(iflags_of(5) & ITEM_SMALL);
    read_key(5, t0);
    /* Evict well past key 5's place. */
    put_range(n, n + 20, 0, t0);
    ck_assert(present(5, t0));
    ck_assert(!present(4, t0));
    ck_assert(!present(6, t0));
    ck_assert(!(iflags_of(5) & ITEM_SMALL));   /* now in main */
}
END_TEST

START_TEST(test_s3fifo_ghost_sends_a_returning_key_to_main)
{
    int n = fill_until_eviction(0);

    ck_assert(!present(0, t0));
    ck_assert_int_eq(put_at(0, 0, t0), ITEM_STORED);       /* key 0 comes back */
    ck_assert(!(iflags_of(0) & ITEM_SMALL));
    ck_assert(iflags_of(n - 1) & ITEM_SMALL);              /* a new key is on probation */
}
END_TEST

/* Every page of the ghost is the process's own from the start: a page
 * never written would map the shared zero page, whose reads a set paid
 * dearly for on a VM with shadow page tables. mincore() tells an untouched
 * anonymous page (not resident) from a written one. */
START_TEST(test_ghost_pages_are_written_at_setup)
{
    struct storage_config cfg;
    char err[256] = "";
    const void *base;
    size_t bytes, page = (size_t)sysconf(_SC_PAGESIZE);

    storage_teardown();
    storage_config_default(&cfg);
    cfg.mem_limit = 256 * MIB;   /* a 1 MiB ghost: calloc maps fresh pages */
    cfg.crawler = false;
    ck_assert_msg(storage_setup(&cfg, err, sizeof(err)) == 0, "setup: %s", err);
    evict_ghost_span(&base, &bytes);
    ck_assert_uint_ge(bytes, MIB);

    uintptr_t lo = ((uintptr_t)base + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t hi = ((uintptr_t)base + bytes) & ~(uintptr_t)(page - 1);
    size_t npages = (hi - lo) / page;
    unsigned char *vec = malloc(npages);
    ck_assert_ptr_nonnull(vec);
    ck_assert_int_eq(mincore((void *)lo, hi - lo, vec), 0);
    for (size_t i = 0; i < npages; i++)
        ck_assert_msg(vec[i] & 1, "ghost page %zu of %zu not resident", i, npages);
    free(vec);
}
END_TEST

START_TEST(test_s3fifo_hot_keys_survive_a_scan_of_cold_keys)
{
    int n = fill_until_eviction(0), hot = n / 4;

    /* The first quarter is read again and again; then a scan of five times
     * the memory in one-time keys. */
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < hot; i++)
            if (present(i, t0))
                read_key(i, t0);
        put_range(n + round * n, n + (round + 1) * n, 0, t0);
    }
    ck_assert_int_ge(count_present(0, hot, t0), hot * 9 / 10);
    ck_assert_int_le(count_present(n, 6 * n, t0), n);
}
END_TEST

START_TEST(test_item_with_reader_reference_is_not_evicted)
{
    int n = fill_until_eviction(0);
    const char *k1 = key_of(1);
    uint64_t hv = item_hash(k1, strlen(k1));
    struct item *held;

    item_lock(hv);
    held = do_item_find(k1, strlen(k1), hv, t0, NULL);   /* a reference, no access */
    item_unlock(hv);
    ck_assert_ptr_nonnull(held);
    ck_assert_uint_eq(stats().lrutail_reflocked, 0);
    ck_assert_int_eq(put_at(n, 0, t0), ITEM_STORED);
    ck_assert(present(1, t0));
    ck_assert(!present(2, t0));
    ck_assert_uint_eq(stats().lrutail_reflocked, 1);   /* memcached's name for the skip */
    item_put(held);
}
END_TEST

START_TEST(test_expired_items_reclaimed_before_live_ones_evicted)
{
    int64_t later = t0 + 5000;
    int n;
    uint64_t ev;

    /* The oldest ten keys have a TTL that has passed by `later`. */
    ck_assert_int_eq(put_range(0, 10, t0 + 1000, t0), 10);
    for (n = 10; evictions() == 0; n++)
        ck_assert_int_eq(put_at(n, 0, t0), ITEM_STORED);
    ev = stats().evictions;
    ck_assert_int_eq(put_range(n, n + 9, 0, later), 9);
    ck_assert_uint_eq(stats().evictions, ev);          /* the dead ones were enough */
    ck_assert_uint_eq(stats().reclaimed, 9);
    ck_assert_uint_eq(stats().expired_unfetched, 9);
    ck_assert_int_eq(count_present(10, n + 9, later), n - 1);
}
END_TEST

START_TEST(test_hot_class_still_evicts)
{
    int n = fill_until_eviction(0);

    for (int r = 0; r < 4; r++)
        for (int i = 0; i < n; i++)
            if (present(i, t0))
                read_key(i, t0);
    ck_assert_int_eq(put_range(n, n + 50, 0, t0), 50);
}
END_TEST

/* ---- noeviction and the volatile policies ---- */

START_TEST(test_noeviction_gives_nomem_and_keeps_all_items)
{
    int stored;

    storage_teardown();
    start_policy(EVICT_NOEVICTION);
    stored = put_range(0, MAX_KEYS, 0, t0);
    ck_assert_int_lt(stored, MAX_KEYS);
    ck_assert_int_eq(count_present(0, stored, t0), stored);
    ck_assert_uint_eq(stats().evictions, 0);
    ck_assert_uint_gt(stats().outofmemory, 0);
    /* Deletes and reads still work, and free room. */
    ck_assert_int_eq(item_delete(key_of(0), strlen(key_of(0)), 0, t0), ITEM_DELETED);
    ck_assert_int_eq(put_at(MAX_KEYS, 0, t0), ITEM_STORED);
}
END_TEST

static void check_volatile(enum evict_policy p)
{
    int n, keep;

    storage_teardown();
    start_policy(p);
    /* A quarter of memory without TTL, then keys with a TTL: 3x memory. */
    keep = 1000;
    ck_assert_int_eq(put_range(0, keep, 0, t0), keep);
    for (int i = keep; i < 4 * keep; i++) {
        enum item_result r = put_at(i, t0 + 3600000 + i, t0);

        if (r != ITEM_STORED)
            ck_abort_msg("%s: store result %d", key_of(i), (int)r);
    }
    n = put_range(4 * keep, 10 * keep, t0 + 3600000, t0);
    ck_assert_int_eq(n, 6 * keep);
    ck_assert_int_eq(count_present(0, keep, t0), keep);
    ck_assert_uint_gt(stats().evictions, 0);
    /* Only keys without a TTL left to take: writes fail, nothing is lost. */
    for (int i = keep; i < 10 * keep; i++)
        item_delete(key_of(i), strlen(key_of(i)), 0, t0);
    ck_assert_int_eq(put_range(20000, 20000 + 4 * keep, 0, t0) < 4 * keep, 1);
    ck_assert_int_eq(count_present(0, keep, t0), keep);
}

START_TEST(test_volatile_policies_never_evict_keys_without_ttl)
{
    check_volatile(EVICT_VOLATILE_LRU);
    check_volatile(EVICT_VOLATILE_LFU);
    check_volatile(EVICT_VOLATILE_TTL);
    check_volatile(EVICT_VOLATILE_RANDOM);
}
END_TEST

START_TEST(test_volatile_ttl_evicts_nearest_expiry_first)
{
    int n;

    storage_teardown();
    start_policy(EVICT_VOLATILE_TTL);
    evict_set_samples(16);
    /* Key i expires i seconds from now: the soonest should go first. */
    n = 0;
    while (evictions() == 0) {
        ck_assert_int_eq(put_at(n, t0 + 1000000 + (int64_t)n * 1000, t0), ITEM_STORED);
        n++;
    }
    put_range(MAX_KEYS - n / 2, MAX_KEYS, t0 + 100000000, t0);
    /* The later half of the first keys survives far better than the earlier. */
    ck_assert_int_gt(count_present(n / 2, n, t0), 2 * count_present(0, n / 2, t0));
}
END_TEST

START_TEST(test_allkeys_lru_keeps_recently_read_keys)
{
    int n;
    int64_t later = t0 + 100000;

    storage_teardown();
    start_policy(EVICT_ALLKEYS_LRU);
    n = fill_until_eviction(0);
    for (int i = 0; i < n; i += 5)
        if (present(i, t0))
            read_key(i, later);
    put_range(n, n + n / 2, 0, later);
    /* Read keys (a fifth) were idle 0 s, the rest 100 s. */
    int read = 0, kept = 0;
    for (int i = 0; i < n; i += 5) {
        read++;
        kept += present(i, later);
    }
    ck_assert_int_ge(kept, read * 9 / 10);
}
END_TEST

START_TEST(test_allkeys_lfu_keeps_hot_keys_through_a_scan)
{
    int n, hot;

    storage_teardown();
    start_policy(EVICT_ALLKEYS_LFU);
    n = fill_until_eviction(0);
    hot = n / 10;
    for (int r = 0; r < 30; r++)
        for (int i = 0; i < hot; i++)
            if (present(i, t0))
                read_key(i, t0);
    put_range(n, 3 * n, 0, t0);
    ck_assert_int_ge(count_present(0, hot, t0), hot * 9 / 10);
}
END_TEST

START_TEST(test_allkeys_random_evicts_and_keeps_storing)
{
    storage_teardown();
    start_policy(EVICT_ALLKEYS_RANDOM);
    int n = fill_until_eviction(0);
    ck_assert_int_eq(put_range(n, 3 * n, 0, t0), 2 * n);
    ck_assert_uint_ge(stats().evictions, (uint64_t)n);
}
END_TEST

START_TEST(test_lfu_counter_is_logarithmic_and_decays)
{
    enum item_alloc_status st;
    struct item *it;
    unsigned c100, c10k;

    evict_set_policy(EVICT_ALLKEYS_LFU);
    it = item_alloc("lfu", 3, 0, 0, 1, t0, &st);
    ck_assert_ptr_nonnull(it);
    ck_assert_uint_eq(it->access & 0xff, 5);          /* Redis's LFU_INIT_VAL */
    for (int i = 0; i < 100; i++)
        evict_on_hit(it, t0);
    c100 = it->access & 0xff;
    for (int i = 0; i < 10000; i++)
        evict_on_hit(it, t0);
    c10k = it->access & 0xff;
    /* Redis's table for lfu-log-factor 10: about 10 at 100 hits, 18 at 1k.
     * At 10k a simulation of Redis's rule gives 50 in median, 39-71 over
     * 2000 runs (60 was passed about one run in a hundred). The exact
     * distribution (the counter's Markov chain): c100 is 9 or 10 in
     * median, over 16 with probability 3.2e-6 (the old bound, flaky across
     * four CI runs of this test), over 20 with 2.4e-11; c10k is under 30
     * with 2.5e-10 and over 85 with 1.4e-15. */
    ck_assert_uint_ge(c100, 6);
    ck_assert_uint_le(c100, 20);
    ck_assert_uint_gt(c10k, c100);
    ck_assert_uint_ge(c10k, 30);
    ck_assert_uint_le(c10k, 85);
    /* One step down per lfu-decay-time (1 minute) idle, then a hit. */
    evict_on_hit(it, t0 + 5 * 60 * 1000);
    ck_assert_uint_le(it->access & 0xff, c10k - 4);
    ck_assert_uint_ge(it->access & 0xff, c10k - 5);
    evict_set_lfu_decay_time(0);                      /* 0: never decays */
    unsigned c = it->access & 0xff;
    evict_on_hit(it, t0 + 500 * 60 * 1000);
    ck_assert_uint_ge(it->access & 0xff, c);
    evict_set_lfu_decay_time(EVICT_LFU_DECAY_TIME_DEFAULT);
    item_put(it);
}
END_TEST

/* ---- crawler and flush ---- */

START_TEST(test_crawler_reclaims_expired_items_in_bounded_steps)
{
    struct storage_class_stats cs;
    unsigned id, freed = 0;
    int n = 500;

    ck_assert_int_eq(put_range(0, n, t0 + 1000, t0), n);
    ck_assert_int_eq(put_range(n, 2 * n, 0, t0), n);
    id = slab_clsid(item_header_size() + strlen(key_of(0)) + VLEN + 2);
    for (int step = 0; step < 100 && freed < (unsigned)n; step++) {
        unsigned f = evict_crawl_step(id, 64, t0 + 2000);
        ck_assert_uint_le(f, 64);
        freed += f;
    }
    ck_assert_uint_eq(freed, (unsigned)n);
    ck_assert_uint_eq(stats().curr_items, (uint64_t)n);
    ck_assert_uint_eq(stats().crawler_reclaimed, (uint64_t)n);
    ck_assert_uint_eq(stats().expired_unfetched, (uint64_t)n);
    storage_slab_class_stats(id, t0, &cs);
    ck_assert_uint_eq(cs.crawler_reclaimed, (uint64_t)n);
    ck_assert_int_eq(count_present(n, 2 * n, t0 + 2000), n);
}
END_TEST

START_TEST(test_flush_generation_wrap_never_revives_an_item)
{
    ck_assert_int_eq(put_at(1, 0, t0), ITEM_STORED);
    item_flush(0, t0);
    for (int i = 0; i < 300; i++) {     /* past 255: the 8-bit generation wraps */
        ck_assert(!present(1, t0));
        item_flush(0, t0);
    }
    ck_assert(!present(1, t0));
    ck_assert_int_eq(put_at(1, 0, t0), ITEM_STORED);
    ck_assert(present(1, t0));
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
                if (item_nbytes(it) != vlen || item_value(it)[0] != 'a' + k % 26 ||
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
        ck_assert_uint_eq(cs.used_chunks, cs.number);   /* no value chunks at these sizes */
    }
    ck_assert_uint_eq(listed, s.curr_items);
}
END_TEST


START_TEST(test_s3fifo_evicts_large_items_while_all_are_on_probation)
{
    struct storage_config cfg;
    char err[256] = "";

    /* Only chunked values, never read: their value chunks fill the largest
     * class while their headers (and so the probation counts) live in a
     * small one. New ones must still find room. */
    storage_teardown();
    storage_config_default(&cfg);
    cfg.mem_limit = 16 * MIB;
    cfg.item_size_max = 2 * MIB;
    cfg.crawler = false;
    cfg.slab_automove = 0;
    ck_assert(storage_setup(&cfg, err, sizeof(err)) == 0);
    for (int i = 0; i < 60; i++) {
        char key[32];
        enum item_alloc_status st;
        struct item *it;

        snprintf(key, sizeof(key), "big%d", i);
        it = item_alloc(key, strlen(key), 0, 0, i % 2 ? MIB + 5 : 700000, t0, &st);
        ck_assert_msg(it != NULL, "item %d: no memory", i);
        ck_assert_int_eq(item_store(it, STORE_SET, 0, t0, NULL), ITEM_STORED);
        item_put(it);
    }
    ck_assert_uint_gt(stats().evictions, 0);
}
END_TEST

/* ---- page moves ---- */

static enum item_result put_size(const char *prefix, int i, size_t vlen)
{
    char key[32];
    enum item_alloc_status st;
    struct item *it;
    enum item_result r;

    snprintf(key, sizeof(key), "%s%d", prefix, i);
    it = item_alloc(key, strlen(key), 0, 0, vlen, t0, &st);
    if (it == NULL)
        return ITEM_NOMEM;
    memset(item_value(it), 'z', vlen);
    r = item_store(it, STORE_SET, 0, t0, NULL);
    item_put(it);
    return r;
}

static struct storage_class_stats class_of_size(size_t vlen)
{
    struct storage_class_stats cs;

    storage_slab_class_stats(slab_clsid(item_header_size() + 8 + vlen + 2), t0, &cs);
    return cs;
}

START_TEST(test_page_move_empties_a_page_and_gives_it_to_another_class)
{
    struct storage_class_stats a0, b0, a1, b1;
    unsigned a, b;
    uint64_t items0;

    /* Fill memory with 1000-byte values, then give 20000-byte values room. */
    for (int i = 0; class_of_size(1000).evicted == 0; i++)
        ck_assert_int_eq(put_size("s", i, 1000), ITEM_STORED);
    for (int i = 0; i < 100; i++)
        put_size("L", i, 20000);
    a0 = class_of_size(1000);
    b0 = class_of_size(20000);
    a = a0.id;
    b = b0.id;
    items0 = stats().curr_items;
    ck_assert_uint_ge(a0.total_pages, 2);
    ck_assert(rebalance_move_now(a, b, t0, 100));
    a1 = class_of_size(1000);
    b1 = class_of_size(20000);
    ck_assert_uint_eq(a1.total_pages, a0.total_pages - 1);
    ck_assert_uint_eq(b1.total_pages, b0.total_pages + 1);
    ck_assert_uint_eq(b1.free_chunks, b0.free_chunks + b1.chunks_per_page);
    /* The moved page's items are gone, the counts agree, and the class that
     * got the page stores without evicting. */
    ck_assert_uint_lt(stats().curr_items, items0);
    ck_assert_uint_eq(a1.number, a1.used_chunks);
    ck_assert_uint_eq(stats().slabs_moved, 1);
    uint64_t ev = stats().evictions;
    for (int i = 1000; i < 1000 + (int)b1.chunks_per_page; i++)
        ck_assert_int_eq(put_size("L", i, 20000), ITEM_STORED);
    ck_assert_uint_eq(stats().evictions, ev);
    /* Every 1000-byte key still present reads back whole. */
    for (int i = 0; i < (int)items0; i++) {
        char key[32];
        struct item *it;

        snprintf(key, sizeof(key), "s%d", i);
        it = item_get(key, strlen(key), t0, NULL);
        if (it != NULL) {
            ck_assert_uint_eq(item_nbytes(it), 1000);
            ck_assert_int_eq(item_value(it)[999], 'z');
            item_put(it);
        }
    }
}
END_TEST

/* In a full class, a page's items that were read move to the chunks of
 * the policy's victims elsewhere in the class: only unread items go. */
START_TEST(test_page_move_keeps_read_items)
{
    struct storage_class_stats a0, a1;
    int n = 0, hot = 0, lost = -1;
    bool *was_read;

    for (; class_of_size(1000).evicted == 0; n++)
        ck_assert_int_eq(put_size("s", n, 1000), ITEM_STORED);
    put_size("L", 0, 20000);
    a0 = class_of_size(1000);
    ck_assert_uint_ge(a0.total_pages, 3);
    /* Read every other key still present. */
    was_read = calloc((size_t)n, sizeof(*was_read));
    for (int i = 0; i < n; i += 2) {
        char key[32];
        struct item *it;

        snprintf(key, sizeof(key), "s%d", i);
        it = item_get(key, strlen(key), t0, NULL);
        if (it != NULL) {
            was_read[i] = true;
            hot++;
            item_put(it);
        }
    }
    ck_assert(rebalance_move_now(a0.id, class_of_size(20000).id, t0, 100));
    a1 = class_of_size(1000);
    ck_assert_uint_eq(a1.total_pages, a0.total_pages - 1);
    ck_assert_uint_eq(a1.free_chunks, 0);
    /* A page's worth of items left the class, none of them read. */
    for (int i = 0; i < n && lost < 0; i++) {
        char key[32];
        struct item *it;

        if (!was_read[i])
            continue;
        snprintf(key, sizeof(key), "s%d", i);
        it = item_get(key, strlen(key), t0, NULL);
        if (it != NULL)
            item_put(it);
        else
            lost = i;
    }
    free(was_read);
    ck_assert_msg(lost < 0, "read key s%d was lost to the move", lost);
    ck_assert_uint_ge(stats().slab_reassign_rescues, (uint64_t)hot / (a0.total_pages + 1));
    ck_assert_uint_le(a1.number, a0.number - a0.chunks_per_page + 2);
}
END_TEST

START_TEST(test_page_move_waits_for_a_reader)
{
    struct storage_class_stats a0;
    struct item *held = NULL;

    for (int i = 0; class_of_size(1000).evicted == 0; i++)
        ck_assert_int_eq(put_size("s", i, 1000), ITEM_STORED);
    put_size("L", 0, 20000);
    a0 = class_of_size(1000);
    /* Hold every item of the class: the page under the hand cannot empty. */
    struct item **all = calloc(a0.number, sizeof(*all));
    unsigned n = 0;
    for (int i = 0; n < a0.number && i < 100000; i++) {
        char key[32];

        snprintf(key, sizeof(key), "s%d", i);
        all[n] = item_get(key, strlen(key), t0, NULL);
        if (all[n] != NULL)
            n++;
    }
    ck_assert(!rebalance_move_now(a0.id, class_of_size(20000).id, t0, 3));
    ck_assert_uint_eq(stats().slabs_moved, 0);
    /* Given up, the move leaves the page (and its free chunks) in service. */
    ck_assert_uint_eq(class_of_size(1000).total_pages, a0.total_pages);
    ck_assert_uint_eq(class_of_size(1000).free_chunks + class_of_size(1000).free_chunks_end,
                      a0.free_chunks + a0.free_chunks_end);
    held = all[0];
    for (unsigned i = 0; i < n; i++)
        item_put(all[i]);
    free(all);
    (void)held;
}
END_TEST

/* ---- a large value into a store full of small items ---- */

#define BIG_LEN (3 * MIB / 2 + 100000)  /* 3 whole chunks of the largest class: its first page has 2 */

/* Store a chunked value of BIG_LEN bytes (a pattern from seed). */
static enum item_result put_big(const char *key, unsigned seed)
{
    enum item_alloc_status st;
    struct item *it = item_alloc_big(key, strlen(key), 0, 0, BIG_LEN, 2 * MIB, t0, &st);
    enum item_result r;
    char buf[4096];

    if (it == NULL)
        return st == ITEM_ALLOC_NOMEM ? ITEM_NOMEM : ITEM_TOO_LARGE;
    for (size_t off = 0; off < BIG_LEN; off += sizeof(buf)) {
        size_t n = BIG_LEN - off < sizeof(buf) ? BIG_LEN - off : sizeof(buf);

        for (size_t k = 0; k < n; k++)
            buf[k] = (char)((off + k) * 31 + seed);
        item_value_write(it, off, buf, n);
    }
    r = item_store(it, STORE_SET, 0, t0, NULL);
    item_put(it);
    return r;
}

/* The value put_big() stored reads back byte for byte. */
static void assert_big(const char *key, unsigned seed)
{
    struct item *it = item_get(key, strlen(key), t0, NULL);
    char buf[4096];

    ck_assert_msg(it != NULL, "%s is missing", key);
    ck_assert_uint_eq(item_nbytes(it), BIG_LEN);
    for (size_t off = 0; off < BIG_LEN; off += sizeof(buf)) {
        size_t n = BIG_LEN - off < sizeof(buf) ? BIG_LEN - off : sizeof(buf);

        ck_assert_uint_eq(item_value_read(it, off, buf, n), n);
        /* One assertion per block: in fork mode Check sends each one to
         * its parent, and 1.6 million of them took most of this suite's
         * time (two minutes under TSan). */
        size_t k = 0;
        while (k < n && buf[k] == (char)((off + k) * 31 + seed))
            k++;
        ck_assert_msg(k == n, "%s: byte %zu differs", key, off + k);
    }
    item_put(it);
}

/* A page taken for a class's free chunks (automove's spare class, a page
 * given back to the pool) is the emptiest, not the one under the main
 * hand: a chunked value's chunks cannot move, so the hand's page would
 * cost a live value while whole pages lie free. */
START_TEST(test_spare_page_move_takes_a_free_page_not_a_live_value)
{
    struct storage_config cfg;
    char err[256] = "";
    unsigned big;
    struct storage_class_stats c0, c1;

    storage_teardown();
    storage_config_default(&cfg);
    cfg.mem_limit = 16 * MIB;
    cfg.item_size_max = MIB;
    cfg.crawler = false;
    cfg.slab_automove = 0;
    ck_assert(storage_setup(&cfg, err, sizeof(err)) == 0);
    big = slab_class_count();
    /* Three chunks each of the largest class (two a page): a fills the
     * first page, under the hand, and half the second; b's go free. */
    ck_assert_int_eq(put_big("a", 1), ITEM_STORED);
    ck_assert_int_eq(put_big("b", 2), ITEM_STORED);
    ck_assert_int_eq(put_big("c", 3), ITEM_STORED);
    ck_assert_int_eq(item_delete("b", 1, 0, t0), ITEM_DELETED);
    storage_slab_class_stats(big, t0, &c0);
    ck_assert_uint_ge(c0.total_pages, 4);
    ck_assert(rebalance_move_spare_now(big, 0, t0, 100));
    storage_slab_class_stats(big, t0, &c1);
    ck_assert_uint_eq(c1.total_pages, c0.total_pages - 1);
    ck_assert_uint_eq(stats().evictions, 0);
    ck_assert_uint_eq(stats().slab_reassign_evictions_nomem, 0);
    ck_assert_uint_eq(stats().slabs_moved, 1);
    assert_big("a", 1);
    assert_big("c", 3);
}
END_TEST

/* Small items until the class evicts (or, without eviction, refuses). */
static int fill_small(int64_t exptime)
{
    int i = 0;

    while (i < MAX_KEYS && evictions() == 0 && put_at(i, exptime, t0) == ITEM_STORED)
        i++;
    return i;
}

START_TEST(test_large_value_into_full_store_of_small_items_evicts_them)
{
    uint64_t items0, moved0, ev0, class_ev0;
    int n = fill_small(0);

    ck_assert_uint_gt(evictions(), 0);
    items0 = stats().curr_items;
    moved0 = stats().slabs_moved;
    ev0 = stats().evictions;
    class_ev0 = evictions();
    ck_assert_int_eq(put_big("big:a", 1), ITEM_STORED);
    assert_big("big:a", 1);
    ck_assert_uint_gt(stats().slabs_moved, moved0);
    ck_assert_uint_gt(stats().slab_reassign_evictions_nomem, 0);
    ck_assert_uint_eq(stats().curr_items, items0 + 1 - stats().slab_reassign_evictions_nomem);
    /* Counted as evictions, but not as the small class's own, which would
     * make automove think that class is short of memory. */
    ck_assert_uint_eq(stats().evictions, ev0 + stats().slab_reassign_evictions_nomem);
    ck_assert_uint_eq(evictions(), class_ev0);
    ck_assert_uint_eq(stats().outofmemory, 0);
    /* A second one (it may evict the first: eviction is per class). */
    ck_assert_int_eq(put_big("big:b", 2), ITEM_STORED);
    assert_big("big:b", 2);
    /* Small items still store and the survivors read back whole. */
    ck_assert_int_eq(put_at(n, 0, t0), ITEM_STORED);
    for (int i = 0; i <= n; i++) {
        struct item *it = item_get(key_of(i), strlen(key_of(i)), t0, NULL);

        if (it != NULL) {
            ck_assert_uint_eq(item_nbytes(it), VLEN);
            ck_assert_int_eq(item_value(it)[VLEN - 1], 'a' + i % 26);
            item_put(it);
        }
    }
}
END_TEST

START_TEST(test_large_value_under_noeviction_moves_no_page)
{
    int n;

    storage_teardown();
    start_policy(EVICT_NOEVICTION);
    n = fill_small(0);
    ck_assert_int_lt(n, MAX_KEYS);
    ck_assert_int_eq(put_big("big:a", 1), ITEM_NOMEM);
    ck_assert_uint_eq(stats().slabs_moved, 0);
    for (int i = 0; i < n; i++)
        ck_assert(present(i, t0));
}
END_TEST

START_TEST(test_large_value_under_volatile_takes_only_pages_of_items_with_ttl)
{
    int n;

    /* Nothing has a TTL: nothing may go, so no page moves. */
    storage_teardown();
    start_policy(EVICT_VOLATILE_LRU);
    n = fill_small(0);
    ck_assert_int_lt(n, MAX_KEYS);
    ck_assert_int_eq(put_big("big:a", 1), ITEM_NOMEM);
    ck_assert_uint_eq(stats().slabs_moved, 0);
    for (int i = 0; i < n; i++)
        ck_assert(present(i, t0));
    /* Every item has a TTL: pages move and the value is stored. */
    storage_teardown();
    start_policy(EVICT_VOLATILE_LRU);
    n = fill_small(t0 + 3600 * 1000);
    ck_assert_uint_gt(evictions(), 0);
    ck_assert_int_eq(put_big("big:a", 1), ITEM_STORED);
    assert_big("big:a", 1);
    ck_assert_uint_gt(stats().slabs_moved, 0);
}
END_TEST

START_TEST(test_large_value_skips_a_page_a_reader_holds)
{
    struct item *held[64];
    unsigned nh = 0;
    int n = fill_small(0);

    /* Readers hold an item in each of the first pages of the class: the
     * rescue gives those pages back and finds room elsewhere, or fails
     * cleanly; either way no chunk is lost. */
    for (int i = 0; i < n && nh < 64; i += 500) {
        held[nh] = item_get(key_of(i), strlen(key_of(i)), t0, NULL);
        if (held[nh] != NULL)
            nh++;
    }
    enum item_result r = put_big("big:a", 3);
    if (r == ITEM_STORED)
        assert_big("big:a", 3);
    for (unsigned i = 0; i < nh; i++) {
        ck_assert_uint_eq(item_nbytes(held[i]), VLEN);
        item_put(held[i]);
    }
    ck_assert_int_eq(put_big("big:b", 4), ITEM_STORED);
    assert_big("big:b", 4);
}
END_TEST

static Suite *evict_suite(void)
{
    Suite *s = suite_create("evict");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup_evict, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_header_is_32_bytes_and_40_with_cas);
    tcase_add_test(tc, test_header_is_32_bytes_without_cas);
    tcase_add_test(tc, test_s3fifo_evicts_unread_new_items_first_in_insertion_order);
    tcase_add_test(tc, test_s3fifo_item_read_on_probation_is_promoted_not_evicted);
    tcase_add_test(tc, test_s3fifo_ghost_sends_a_returning_key_to_main);
    tcase_add_test(tc, test_ghost_pages_are_written_at_setup);
    tcase_add_test(tc, test_s3fifo_hot_keys_survive_a_scan_of_cold_keys);
    tcase_add_test(tc, test_item_with_reader_reference_is_not_evicted);
    tcase_add_test(tc, test_expired_items_reclaimed_before_live_ones_evicted);
    tcase_add_test(tc, test_hot_class_still_evicts);
    tcase_add_test(tc, test_s3fifo_evicts_large_items_while_all_are_on_probation);
    tcase_add_test(tc, test_noeviction_gives_nomem_and_keeps_all_items);
    tcase_add_test(tc, test_volatile_policies_never_evict_keys_without_ttl);
    tcase_add_test(tc, test_volatile_ttl_evicts_nearest_expiry_first);
    tcase_add_test(tc, test_allkeys_lru_keeps_recently_read_keys);
    tcase_add_test(tc, test_allkeys_lfu_keeps_hot_keys_through_a_scan);
    tcase_add_test(tc, test_allkeys_random_evicts_and_keeps_storing);
    tcase_add_test(tc, test_lfu_counter_is_logarithmic_and_decays);
    tcase_add_test(tc, test_crawler_reclaims_expired_items_in_bounded_steps);
    tcase_add_test(tc, test_flush_generation_wrap_never_revives_an_item);
    tcase_add_test(tc, test_large_value_into_full_store_of_small_items_evicts_them);
    tcase_add_test(tc, test_large_value_under_noeviction_moves_no_page);
    tcase_add_test(tc, test_large_value_under_volatile_takes_only_pages_of_items_with_ttl);
    tcase_add_test(tc, test_large_value_skips_a_page_a_reader_holds);
    tcase_add_test(tc, test_page_move_empties_a_page_and_gives_it_to_another_class);
    tcase_add_test(tc, test_page_move_waits_for_a_reader);
    tcase_add_test(tc, test_page_move_keeps_read_items);
    tcase_add_test(tc, test_spare_page_move_takes_a_free_page_not_a_live_value);
    tcase_add_test(tc, test_concurrent_eviction_keeps_values_and_counts_consistent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(evict_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
