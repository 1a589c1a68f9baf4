/*
 * Item semantics: expiry rules, the store operations and their results, CAS,
 * incr/decr, touch, flush (immediate and delayed) and reference counting.
 * Every test sets storage up with defaults and drives it with explicit kioku
 * times, so expiry is tested without sleeping (only the delayed flush, which
 * the maintenance thread runs on the real clock, waits).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/item.h"
#include "storage/storage.h"
#include "util/clock.h"

#define DAY_S (60 * 60 * 24)

static int64_t t0;

static void setup(void)
{
    struct storage_config cfg;
    char err[256];

    clock_setup();
    storage_config_default(&cfg);
    ck_assert_int_eq(storage_setup(&cfg, err, sizeof(err)), 0);
    t0 = clock_now_ms();
}

static void teardown(void)
{
    storage_teardown();
}

static struct item *mk(const char *key, const char *val, uint32_t flags, int64_t exptime,
                       int64_t now)
{
    enum item_alloc_status st;
    struct item *it = item_alloc(key, strlen(key), flags, exptime, strlen(val), now, &st);

    ck_assert_ptr_nonnull(it);
    ck_assert_int_eq(st, ITEM_ALLOC_OK);
    item_value_write(it, 0, val, strlen(val));
    return it;
}

static enum item_result store_x(const char *key, const char *val, uint32_t flags,
                                int64_t exptime, enum store_op op, uint64_t cas,
                                uint64_t *cas_out, int64_t now)
{
    struct item *it = mk(key, val, flags, exptime, now);
    enum item_result r = item_store(it, op, cas, now, cas_out);

    item_put(it);
    return r;
}

static enum item_result store(const char *key, const char *val, enum store_op op,
                              uint64_t cas, uint64_t *cas_out)
{
    return store_x(key, val, 0, 0, op, cas, cas_out, t0);
}

/* True if the item holds exactly `want` followed by CRLF. */
static bool item_holds(struct item *it, const char *want)
{
    size_t n = strlen(want);
    char buf[256];

    if (item_nbytes(it) != n || n + 2 > sizeof(buf))
        return false;
    item_value_read(it, 0, buf, n + 2);
    return memcmp(buf, want, n) == 0 && buf[n] == '\r' && buf[n + 1] == '\n';
}

static bool value_is(const char *key, const char *want, int64_t now)
{
    struct item *it = item_get(key, strlen(key), now, NULL);
    bool ok;

    if (it == NULL)
        return false;
    ok = item_holds(it, want);
    item_put(it);
    return ok;
}

static enum item_miss miss_of(const char *key, int64_t now)
{
    enum item_miss miss = ITEM_MISS_NONE;
    struct item *it = item_get(key, strlen(key), now, &miss);

    if (it != NULL)
        item_put(it);
    return miss;
}

static uint64_t cas_of(const char *key, int64_t now)
{
    struct item *it = item_get(key, strlen(key), now, NULL);
    uint64_t cas;

    ck_assert_ptr_nonnull(it);
    cas = item_cas(it);
    item_put(it);
    return cas;
}

/* ---- expiry ---- */

START_TEST(test_exptime_zero_never_expires)
{
    ck_assert_int_eq(item_exptime_from_seconds(0, t0), 0);
    ck_assert_int_eq(store_x("k", "v", 0, 0, STORE_SET, 0, NULL, t0), ITEM_STORED);
    ck_assert(value_is("k", "v", t0 + (int64_t)3650 * DAY_S * 1000));
}
END_TEST

START_TEST(test_exptime_negative_is_already_expired)
{
    int64_t e = item_exptime_from_seconds(-1, t0);

    ck_assert_int_eq(e, ITEM_EXPIRED_MS);
    ck_assert_int_eq(store_x("k", "v", 0, e, STORE_SET, 0, NULL, t0), ITEM_STORED);
    ck_assert_int_eq(miss_of("k", t0), ITEM_MISS_EXPIRED);
}
END_TEST

START_TEST(test_exptime_up_to_30_days_is_relative)
{
    int64_t e = item_exptime_from_seconds(100, t0);

    ck_assert_int_eq(e, t0 + 100000);
    ck_assert_int_eq(item_exptime_from_seconds(30 * DAY_S, t0), t0 + (int64_t)30 * DAY_S * 1000);
    store_x("k", "v", 0, e, STORE_SET, 0, NULL, t0);
    ck_assert(value_is("k", "v", t0 + 99999));
    ck_assert_int_eq(miss_of("k", t0 + 100000), ITEM_MISS_EXPIRED);
    /* once found expired it is gone for good, even at an earlier time */
    ck_assert_int_eq(miss_of("k", t0), ITEM_MISS_ABSENT);
}
END_TEST

START_TEST(test_exptime_over_30_days_is_absolute_unix_time)
{
    int64_t future_s = t0 / 1000 + 3600, e;

    /* 30 days + 1 s is read as a unix time: 1970, long past. */
    ck_assert_int_eq(item_exptime_from_seconds(30 * DAY_S + 1, t0), ITEM_EXPIRED_MS);
    ck_assert_int_eq(item_exptime_from_seconds(t0 / 1000 - 10, t0), ITEM_EXPIRED_MS);
    e = item_exptime_from_seconds(future_s, t0);
    ck_assert_int_eq(e, future_s * 1000);
    store_x("k", "v", 0, e, STORE_SET, 0, NULL, t0);
    ck_assert(value_is("k", "v", future_s * 1000 - 1));
    ck_assert_int_eq(miss_of("k", future_s * 1000), ITEM_MISS_EXPIRED);
}
END_TEST

START_TEST(test_expired_item_is_never_returned_by_any_op)
{
    int64_t later = t0 + 2000;
    uint64_t v;

    store_x("a", "1", 0, t0 + 1000, STORE_SET, 0, NULL, t0);
    store_x("b", "1", 0, t0 + 1000, STORE_SET, 0, NULL, t0);
    store_x("c", "1", 0, t0 + 1000, STORE_SET, 0, NULL, t0);
    store_x("d", "1", 0, t0 + 1000, STORE_SET, 0, NULL, t0);
    ck_assert_int_eq(item_touch("a", 1, 0, later), ITEM_NOT_FOUND);
    ck_assert_int_eq(item_delta("b", 1, true, 1, 0, false, 0, 0, later, &v, NULL), ITEM_NOT_FOUND);
    ck_assert_int_eq(store_x("c", "x", 0, 0, STORE_REPLACE, 0, NULL, later), ITEM_NOT_STORED);
    ck_assert_int_eq(store_x("d", "x", 0, 0, STORE_ADD, 0, NULL, later), ITEM_STORED);
    ck_assert(value_is("d", "x", later));
    ck_assert_ptr_null(item_get_touch("c", 1, 0, later, NULL));
    ck_assert_int_eq(item_delete("c", 1, 0, later), ITEM_NOT_FOUND);
}
END_TEST

/* ---- store operations ---- */

START_TEST(test_add_stores_only_when_absent)
{
    ck_assert_int_eq(store("k", "one", STORE_ADD, 0, NULL), ITEM_STORED);
    ck_assert_int_eq(store("k", "two", STORE_ADD, 0, NULL), ITEM_NOT_STORED);
    ck_assert(value_is("k", "one", t0));
}
END_TEST

START_TEST(test_replace_stores_only_when_present)
{
    ck_assert_int_eq(store("k", "one", STORE_REPLACE, 0, NULL), ITEM_NOT_STORED);
    ck_assert_int_eq(miss_of("k", t0), ITEM_MISS_ABSENT);
    ck_assert_int_eq(store("k", "one", STORE_SET, 0, NULL), ITEM_STORED);
    ck_assert_int_eq(store("k", "two", STORE_REPLACE, 0, NULL), ITEM_STORED);
    ck_assert(value_is("k", "two", t0));
}
END_TEST

START_TEST(test_set_overwrites_value_flags_and_exptime)
{
    struct item *it;

    store_x("k", "one", 1, t0 + 1000, STORE_SET, 0, NULL, t0);
    store_x("k", "two", 2, 0, STORE_SET, 0, NULL, t0);
    it = item_get("k", 1, t0 + 5000, NULL);
    ck_assert_ptr_nonnull(it);
    ck_assert(item_holds(it, "two"));
    ck_assert_uint_eq(it->flags, 2);
    ck_assert_int_eq(item_exptime(it), 0);
    item_put(it);
}
END_TEST

START_TEST(test_append_prepend_keep_flags_and_exptime)
{
    int64_t e = t0 + 60000;
    struct item *it;

    ck_assert_int_eq(store("k", "x", STORE_APPEND, 0, NULL), ITEM_NOT_STORED);
    ck_assert_int_eq(store("k", "x", STORE_PREPEND, 0, NULL), ITEM_NOT_STORED);
    ck_assert_int_eq(miss_of("k", t0), ITEM_MISS_ABSENT);
    store_x("k", "mid", 42, e, STORE_SET, 0, NULL, t0);
    ck_assert_int_eq(store_x("k", "END", 7, 0, STORE_APPEND, 0, NULL, t0), ITEM_STORED);
    ck_assert_int_eq(store_x("k", "start", 9, 0, STORE_PREPEND, 0, NULL, t0), ITEM_STORED);
    it = item_get("k", 1, t0, NULL);
    ck_assert_ptr_nonnull(it);
    ck_assert(item_holds(it, "startmidEND"));
    ck_assert_uint_eq(it->flags, 42);
    ck_assert_int_eq(item_exptime(it), e);
    item_put(it);
}
END_TEST

START_TEST(test_cas_store_results)
{
    uint64_t c1, c2;

    ck_assert_int_eq(store("k", "v", STORE_CAS, 12345, NULL), ITEM_NOT_FOUND);
    ck_assert_int_eq(store("k", "one", STORE_SET, 0, &c1), ITEM_STORED);
    ck_assert_uint_eq(c1, cas_of("k", t0));
    ck_assert_int_eq(store("k", "bad", STORE_CAS, c1 + 1, NULL), ITEM_EXISTS);
    ck_assert(value_is("k", "one", t0));
    ck_assert_int_eq(store("k", "two", STORE_CAS, c1, &c2), ITEM_STORED);
    ck_assert(value_is("k", "two", t0));
    ck_assert_uint_ne(c1, c2);
    ck_assert_int_eq(store("k", "three", STORE_CAS, c1, NULL), ITEM_EXISTS);
    /* a set carrying a cas behaves as cas */
    ck_assert_int_eq(store("k", "four", STORE_SET, c1, NULL), ITEM_EXISTS);
    ck_assert_int_eq(store("k", "four", STORE_SET, c2, NULL), ITEM_STORED);
    ck_assert_int_eq(store("nokey", "x", STORE_SET, c2, NULL), ITEM_NOT_FOUND);
    ck_assert(value_is("k", "four", t0));
}
END_TEST

START_TEST(test_delete_results)
{
    uint64_t c;

    ck_assert_int_eq(item_delete("k", 1, 0, t0), ITEM_NOT_FOUND);
    store("k", "v", STORE_SET, 0, &c);
    ck_assert_int_eq(item_delete("k", 1, c + 1, t0), ITEM_EXISTS);
    ck_assert(value_is("k", "v", t0));
    ck_assert_int_eq(item_delete("k", 1, c, t0), ITEM_DELETED);
    ck_assert_int_eq(miss_of("k", t0), ITEM_MISS_ABSENT);
    store("k", "v", STORE_SET, 0, NULL);
    ck_assert_int_eq(item_delete("k", 1, 0, t0), ITEM_DELETED);
    ck_assert_int_eq(item_delete("k", 1, 0, t0), ITEM_NOT_FOUND);
}
END_TEST

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

START_TEST(test_cas_unique_and_increasing_per_key)
{
    enum { NKEYS = 2000, NSETS = 50 };
    static uint64_t all[NKEYS + NSETS];
    uint64_t prev = 0, c;
    char key[32];
    int i;

    for (i = 0; i < NSETS; i++) {
        ck_assert_int_eq(store("same", "v", STORE_SET, 0, &c), ITEM_STORED);
        ck_assert_uint_gt(c, prev);
        prev = c;
        all[i] = c;
    }
    for (i = 0; i < NKEYS; i++) {
        snprintf(key, sizeof(key), "key%d", i);
        ck_assert_int_eq(store(key, "v", STORE_SET, 0, &c), ITEM_STORED);
        ck_assert_uint_ne(c, 0);
        all[NSETS + i] = c;
    }
    qsort(all, NKEYS + NSETS, sizeof(all[0]), cmp_u64);
    for (i = 1; i < NKEYS + NSETS; i++)
        ck_assert_uint_ne(all[i], all[i - 1]);
}
END_TEST

/* ---- incr/decr ---- */

START_TEST(test_incr_wraps_at_2_64)
{
    uint64_t v = 1;

    store("n", "18446744073709551615", STORE_SET, 0, NULL);
    ck_assert_int_eq(item_delta("n", 1, true, 1, 0, false, 0, 0, t0, &v, NULL), ITEM_DELTA_OK);
    ck_assert_uint_eq(v, 0);
    /* written in place, padded with spaces to the old length, as memcached */
    ck_assert(value_is("n", "0                   ", t0));
    store("m", "18446744073709551610", STORE_SET, 0, NULL);
    ck_assert_int_eq(item_delta("m", 1, true, 10, 0, false, 0, 0, t0, &v, NULL), ITEM_DELTA_OK);
    ck_assert_uint_eq(v, 4);
}
END_TEST

START_TEST(test_decr_stops_at_zero)
{
    uint64_t v = 1;

    store("n", "5", STORE_SET, 0, NULL);
    ck_assert_int_eq(item_delta("n", 1, false, 10, 0, false, 0, 0, t0, &v, NULL), ITEM_DELTA_OK);
    ck_assert_uint_eq(v, 0);
    ck_assert(value_is("n", "0", t0));
    ck_assert_int_eq(item_delta("n", 1, false, 1, 0, false, 0, 0, t0, &v, NULL), ITEM_DELTA_OK);
    ck_assert_uint_eq(v, 0);
}
END_TEST

/* memcached reads the operand with strtoull: leading white space and a sign
 * are fine, and anything after a white-space character is ignored. */
START_TEST(test_delta_rejects_non_numeric)
{
    static const char *bad[] = {
        "abc", "12a", "-1", "18446744073709551616", "", "1.5", " ", "+", "0x10",
    };
    size_t i;
    uint64_t v;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        store("n", bad[i], STORE_SET, 0, NULL);
        ck_assert_msg(item_delta("n", 1, true, 1, 0, false, 0, 0, t0, &v, NULL) == ITEM_NON_NUMERIC,
                      "value '%s' accepted", bad[i]);
        ck_assert(value_is("n", bad[i], t0));
    }
    static const struct { const char *val; uint64_t then; } good[] = {
        {"12  ", 13}, {" 12", 13}, {"+5", 6}, {"5\r\n", 6}, {"1 2", 2}, {"7\tx", 8},
        {"000000000000000000001", 2}, {"018446744073709551614", 18446744073709551615ULL},
        {"-0", 1},
    };
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        store("n", good[i].val, STORE_SET, 0, NULL);
        ck_assert_msg(item_delta("n", 1, true, 1, 0, false, 0, 0, t0, &v, NULL) == ITEM_DELTA_OK,
                      "value '%s' refused", good[i].val);
        ck_assert_uint_eq(v, good[i].then);
    }
    store("n", "18446744073709551615", STORE_SET, 0, NULL);
    ck_assert_int_eq(item_delta("n", 1, false, 1, 0, false, 0, 0, t0, &v, NULL), ITEM_DELTA_OK);
    ck_assert_uint_eq(v, 18446744073709551614ULL);
}
END_TEST

START_TEST(test_delta_changes_length_and_cas)
{
    uint64_t v, c0, c1, c2;

    store("n", "99", STORE_SET, 0, &c0);
    ck_assert_int_eq(item_delta("n", 1, true, 1, 0, false, 0, 0, t0, &v, &c1), ITEM_DELTA_OK);
    ck_assert_uint_eq(v, 100);
    ck_assert(value_is("n", "100", t0));
    ck_assert_uint_gt(c1, c0);
    /* shorter: written in place, padded with a space, still a new cas */
    ck_assert_int_eq(item_delta("n", 1, false, 1, 0, false, 0, 0, t0, &v, &c2), ITEM_DELTA_OK);
    ck_assert(value_is("n", "99 ", t0));
    ck_assert_uint_gt(c2, c1);
    ck_assert_int_eq(item_delta("n", 1, true, 5, 0, false, 0, 0, t0, &v, &c2), ITEM_DELTA_OK);
    ck_assert(value_is("n", "104", t0));
    ck_assert_uint_eq(c2, cas_of("n", t0));
    ck_assert_int_eq(item_delta("n", 1, true, 1, c1, false, 0, 0, t0, &v, NULL), ITEM_EXISTS);
    ck_assert_int_eq(item_delta("n", 1, true, 1, c2, false, 0, 0, t0, &v, NULL), ITEM_DELTA_OK);
    ck_assert_uint_eq(v, 105);
}
END_TEST

START_TEST(test_delta_keeps_flags_and_exptime)
{
    int64_t e = t0 + 50000;
    struct item *it;
    uint64_t v;

    store_x("n", "9", 77, e, STORE_SET, 0, NULL, t0);
    ck_assert_int_eq(item_delta("n", 1, true, 1, 0, false, 0, 0, t0, &v, NULL), ITEM_DELTA_OK);
    it = item_get("n", 1, t0, NULL);
    ck_assert_ptr_nonnull(it);
    ck_assert(item_holds(it, "10"));
    ck_assert_uint_eq(it->flags, 77);
    ck_assert_int_eq(item_exptime(it), e);
    item_put(it);
}
END_TEST

START_TEST(test_delta_with_reader_reference_leaves_reader_copy)
{
    struct item *held;
    uint64_t v;

    store("n", "10", STORE_SET, 0, NULL);
    held = item_get("n", 1, t0, NULL);
    ck_assert_ptr_nonnull(held);
    ck_assert_int_eq(item_delta("n", 1, true, 1, 0, false, 0, 0, t0, &v, NULL), ITEM_DELTA_OK);
    ck_assert(item_holds(held, "10"));
    ck_assert(value_is("n", "11", t0));
    item_put(held);
}
END_TEST

START_TEST(test_delta_create_stores_initial_value)
{
    uint64_t v = 0, c = 0;
    struct item *it;

    ck_assert_int_eq(item_delta("n", 1, true, 5, 0, false, 7, 0, t0, &v, &c), ITEM_NOT_FOUND);
    ck_assert_int_eq(item_delta("n", 1, true, 5, 0, true, 1234, t0 + 1000, t0, &v, &c),
                     ITEM_DELTA_OK);
    ck_assert_uint_eq(v, 1234);
    ck_assert_uint_ne(c, 0);
    it = item_get("n", 1, t0, NULL);
    ck_assert_ptr_nonnull(it);
    ck_assert(item_holds(it, "1234"));
    ck_assert_uint_eq(item_cas(it), c);
    item_put(it);
    ck_assert_int_eq(item_delta("n", 1, true, 5, 0, true, 1234, 0, t0, &v, &c), ITEM_DELTA_OK);
    ck_assert_uint_eq(v, 1239);
    ck_assert_int_eq(miss_of("n", t0 + 1000), ITEM_MISS_EXPIRED);
}
END_TEST

/* ---- touch ---- */

START_TEST(test_touch_changes_expiry)
{
    store_x("k", "v", 0, t0 + 10000, STORE_SET, 0, NULL, t0);
    ck_assert_int_eq(item_touch("k", 1, t0 + 100000, t0), ITEM_TOUCHED);
    ck_assert(value_is("k", "v", t0 + 50000));
    ck_assert_int_eq(item_touch("k", 1, t0 + 60000, t0), ITEM_TOUCHED);
    ck_assert_int_eq(miss_of("k", t0 + 60000), ITEM_MISS_EXPIRED);
    ck_assert_int_eq(item_touch("nokey", 5, 0, t0), ITEM_NOT_FOUND);
}
END_TEST

START_TEST(test_get_touch_returns_item_and_changes_expiry)
{
    struct item *it;

    store_x("k", "v", 0, t0 + 10000, STORE_SET, 0, NULL, t0);
    it = item_get_touch("k", 1, 0, t0, NULL);
    ck_assert_ptr_nonnull(it);
    ck_assert(item_holds(it, "v"));
    ck_assert_int_eq(item_exptime(it), 0);
    item_put(it);
    ck_assert(value_is("k", "v", t0 + 20000));
    it = item_get_touch("k", 1, t0 + 30000, t0 + 20000, NULL);
    ck_assert_ptr_nonnull(it);
    item_put(it);
    ck_assert_int_eq(miss_of("k", t0 + 30000), ITEM_MISS_EXPIRED);
}
END_TEST

/* ---- flush ---- */

START_TEST(test_flush_immediate_kills_older_items_only)
{
    struct storage_stats st;

    store("a", "1", STORE_SET, 0, NULL);
    store("b", "2", STORE_SET, 0, NULL);
    item_flush(0, t0);
    store("c", "3", STORE_SET, 0, NULL);
    /* c took a's chunk: a, flushed, was at its class's tail (memcached's
     * reclaim); b is found flushed. */
    ck_assert_int_eq(miss_of("a", t0), ITEM_MISS_ABSENT);
    ck_assert_int_eq(miss_of("b", t0), ITEM_MISS_FLUSHED);
    storage_stats(&st);
    ck_assert_uint_eq(st.reclaimed, 1);
    ck_assert(value_is("c", "3", t0));
    ck_assert_int_eq(store("a", "x", STORE_ADD, 0, NULL), ITEM_STORED);
    ck_assert(value_is("a", "x", t0));
    storage_stats(&st);
    ck_assert_uint_eq(st.curr_flush_gen, 1);
}
END_TEST

/* A client may choose an item's CAS (meta E): flush must not depend on it. */
START_TEST(test_flush_kills_items_whatever_cas_the_client_chose)
{
    uint64_t hv = item_hash("hi", 2), hv2 = item_hash("lo", 2);
    struct item *it;

    store("hi", "1", STORE_SET, 0, NULL);
    store("lo", "2", STORE_SET, 0, NULL);
    item_lock(hv);
    it = do_item_find("hi", 2, hv, t0, NULL);
    ck_assert_ptr_nonnull(it);
    item_set_cas(it, UINT64_MAX - 1);           /* far above any sequence */
    item_put(it);
    item_unlock(hv);
    item_flush(0, t0);
    ck_assert_int_eq(miss_of("hi", t0), ITEM_MISS_FLUSHED);
    ck_assert_int_eq(miss_of("lo", t0), ITEM_MISS_FLUSHED);
    /* and one stored after the flush with a tiny chosen CAS stays alive */
    store("lo", "3", STORE_SET, 0, NULL);
    item_lock(hv2);
    it = do_item_find("lo", 2, hv2, t0, NULL);
    ck_assert_ptr_nonnull(it);
    item_set_cas(it, 1);
    item_put(it);
    item_unlock(hv2);
    ck_assert(value_is("lo", "3", t0));
}
END_TEST

START_TEST(test_key_counts_follow_links_ttls_and_flushes)
{
    uint64_t keys, expires, hv = item_hash("a", 1);
    struct item *it;

    store("a", "1", STORE_SET, 0, NULL);
    store_x("b", "2", 0, t0 + 100000, STORE_SET, 0, NULL, t0);
    storage_key_counts(&keys, &expires);
    ck_assert_uint_eq(keys, 2);
    ck_assert_uint_eq(expires, 1);
    ck_assert_int_eq(item_touch("a", 1, t0 + 5000, t0), ITEM_TOUCHED);   /* gains a TTL */
    storage_key_counts(&keys, &expires);
    ck_assert_uint_eq(expires, 2);
    item_lock(hv);
    it = do_item_find("a", 1, hv, t0, NULL);
    do_item_set_exptime(it, hv, 0);                                      /* persists */
    item_put(it);
    item_unlock(hv);
    storage_key_counts(&keys, &expires);
    ck_assert_uint_eq(expires, 1);
    ck_assert_int_eq(item_delete("b", 1, 0, t0), ITEM_DELETED);
    storage_key_counts(&keys, &expires);
    ck_assert_uint_eq(keys, 1);
    ck_assert_uint_eq(expires, 0);
    store_x("c", "3", 0, t0 + 100000, STORE_SET, 0, NULL, t0);
    item_flush(0, t0);
    storage_key_counts(&keys, &expires);
    ck_assert_uint_eq(keys, 0);                    /* flushed: gone at once */
    ck_assert_uint_eq(expires, 0);
    ck_assert_int_eq(miss_of("c", t0), ITEM_MISS_FLUSHED);   /* reclaiming keeps it right */
    store("d", "4", STORE_SET, 0, NULL);
    storage_key_counts(&keys, &expires);
    ck_assert_uint_eq(keys, 1);
}
END_TEST

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

START_TEST(test_flush_delayed_takes_effect_at_its_time)
{
    int64_t start = clock_now_ms();
    int i;

    store_x("a", "1", 0, 0, STORE_SET, 0, NULL, start);
    item_flush(300, start);
    store_x("b", "2", 0, 0, STORE_SET, 0, NULL, clock_now_ms());
    ck_assert(value_is("a", "1", clock_now_ms()));
    ck_assert(value_is("b", "2", clock_now_ms()));
    /* Wait (bounded) until the flush ran; it must not run early. */
    for (i = 0; i < 100 && miss_of("a", clock_now_ms()) == ITEM_MISS_NONE; i++)
        sleep_ms(20);
    ck_assert_int_ge(clock_now_ms() - start, 300);
    ck_assert_int_eq(miss_of("a", clock_now_ms()), ITEM_MISS_ABSENT);
    ck_assert_int_eq(miss_of("b", clock_now_ms()), ITEM_MISS_FLUSHED);
    store_x("c", "3", 0, 0, STORE_SET, 0, NULL, clock_now_ms());
    ck_assert(value_is("c", "3", clock_now_ms()));
}
END_TEST

START_TEST(test_flush_later_call_replaces_pending_one)
{
    int64_t start = clock_now_ms();

    store_x("a", "1", 0, 0, STORE_SET, 0, NULL, start);
    item_flush(200, start);
    item_flush(100000, start);      /* pushes the pending flush far away */
    sleep_ms(500);
    ck_assert(value_is("a", "1", clock_now_ms()));
    item_flush(0, clock_now_ms());  /* and an immediate one cancels it */
    ck_assert_int_eq(miss_of("a", clock_now_ms()), ITEM_MISS_FLUSHED);
}
END_TEST

/* ---- references ---- */

START_TEST(test_unlinked_item_readable_until_put)
{
    struct storage_class_stats cs;
    struct item *held;
    uint64_t used;
    unsigned id;

    store("k", "old value", STORE_SET, 0, NULL);
    held = item_get("k", 1, t0, NULL);
    ck_assert_ptr_nonnull(held);
    id = held->clsid;
    ck_assert_int_eq(item_delete("k", 1, 0, t0), ITEM_DELETED);
    store("k", "new value", STORE_SET, 0, NULL);
    ck_assert(item_holds(held, "old value"));
    ck_assert(value_is("k", "new value", t0));
    storage_slab_class_stats(id, t0, &cs);
    used = cs.used_chunks;
    item_put(held);     /* the last reference frees the chunk */
    storage_slab_class_stats(id, t0, &cs);
    ck_assert_uint_eq(cs.used_chunks, used - 1);
}
END_TEST

START_TEST(test_replaced_item_readable_until_put)
{
    struct item *held;

    store("k", "first", STORE_SET, 0, NULL);
    held = item_get("k", 1, t0, NULL);
    ck_assert_ptr_nonnull(held);
    store("k", "second", STORE_SET, 0, NULL);
    store("k", "+", STORE_APPEND, 0, NULL);
    ck_assert(item_holds(held, "first"));
    ck_assert(!(held->iflags & ITEM_LINKED));
    ck_assert(value_is("k", "second+", t0));
    item_put(held);
}
END_TEST

START_TEST(test_stats_count_items_and_bytes)
{
    struct storage_stats st;

    store("a", "12345", STORE_SET, 0, NULL);
    store("b", "1", STORE_SET, 0, NULL);
    store("b", "22", STORE_SET, 0, NULL);
    storage_stats(&st);
    ck_assert_uint_eq(st.curr_items, 2);
    ck_assert_uint_eq(st.total_items, 3);
    ck_assert_uint_eq(st.bytes, 2 * item_header_size() + 1 + 5 + 2 + 1 + 2 + 2);
    item_delete("a", 1, 0, t0);
    storage_stats(&st);
    ck_assert_uint_eq(st.curr_items, 1);
}
END_TEST

/* ---- concurrency: read-modify-write operations are atomic per key ---- */

enum { RMW_THREADS = 4, RMW_OPS = 3000 };

static int rmw_errors[RMW_THREADS];

static void *rmw_main(void *arg)
{
    int id = (int)(intptr_t)arg, i;
    uint64_t v;

    for (i = 0; i < RMW_OPS; i++) {
        if (item_delta("ctr", 3, true, 1, 0, false, 0, 0, t0, &v, NULL) != ITEM_DELTA_OK)
            rmw_errors[id]++;
        if (store("log", "x", STORE_APPEND, 0, NULL) != ITEM_STORED)
            rmw_errors[id]++;
        /* a reader holding the counter forces some incrs onto a new item */
        if (i % 3 == 0) {
            struct item *it = item_get("ctr", 3, t0, NULL);

            if (it == NULL)
                rmw_errors[id]++;
            else
                item_put(it);
        }
    }
    return NULL;
}

START_TEST(test_concurrent_incr_and_append_lose_no_update)
{
    pthread_t tid[RMW_THREADS];
    struct item *it;
    uint64_t v;
    int t;

    store("ctr", "0", STORE_SET, 0, NULL);
    store("log", "", STORE_SET, 0, NULL);
    for (t = 0; t < RMW_THREADS; t++)
        ck_assert_int_eq(pthread_create(&tid[t], NULL, rmw_main, (void *)(intptr_t)t), 0);
    for (t = 0; t < RMW_THREADS; t++)
        pthread_join(tid[t], NULL);
    for (t = 0; t < RMW_THREADS; t++)
        ck_assert_int_eq(rmw_errors[t], 0);
    ck_assert_int_eq(item_delta("ctr", 3, true, 0, 0, false, 0, 0, t0, &v, NULL), ITEM_DELTA_OK);
    ck_assert_uint_eq(v, RMW_THREADS * RMW_OPS);
    it = item_get("log", 3, t0, NULL);
    ck_assert_ptr_nonnull(it);
    ck_assert_uint_eq(item_nbytes(it), RMW_THREADS * RMW_OPS);
    item_put(it);
}
END_TEST

static Suite *item_suite(void)
{
    Suite *s = suite_create("item");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_exptime_zero_never_expires);
    tcase_add_test(tc, test_exptime_negative_is_already_expired);
    tcase_add_test(tc, test_exptime_up_to_30_days_is_relative);
    tcase_add_test(tc, test_exptime_over_30_days_is_absolute_unix_time);
    tcase_add_test(tc, test_expired_item_is_never_returned_by_any_op);
    tcase_add_test(tc, test_add_stores_only_when_absent);
    tcase_add_test(tc, test_replace_stores_only_when_present);
    tcase_add_test(tc, test_set_overwrites_value_flags_and_exptime);
    tcase_add_test(tc, test_append_prepend_keep_flags_and_exptime);
    tcase_add_test(tc, test_cas_store_results);
    tcase_add_test(tc, test_delete_results);
    tcase_add_test(tc, test_cas_unique_and_increasing_per_key);
    tcase_add_test(tc, test_incr_wraps_at_2_64);
    tcase_add_test(tc, test_decr_stops_at_zero);
    tcase_add_test(tc, test_delta_rejects_non_numeric);
    tcase_add_test(tc, test_delta_changes_length_and_cas);
    tcase_add_test(tc, test_delta_keeps_flags_and_exptime);
    tcase_add_test(tc, test_delta_with_reader_reference_leaves_reader_copy);
    tcase_add_test(tc, test_delta_create_stores_initial_value);
    tcase_add_test(tc, test_touch_changes_expiry);
    tcase_add_test(tc, test_get_touch_returns_item_and_changes_expiry);
    tcase_add_test(tc, test_flush_immediate_kills_older_items_only);
    tcase_add_test(tc, test_flush_kills_items_whatever_cas_the_client_chose);
    tcase_add_test(tc, test_key_counts_follow_links_ttls_and_flushes);
    tcase_add_test(tc, test_flush_delayed_takes_effect_at_its_time);
    tcase_add_test(tc, test_flush_later_call_replaces_pending_one);
    tcase_add_test(tc, test_unlinked_item_readable_until_put);
    tcase_add_test(tc, test_replaced_item_readable_until_put);
    tcase_add_test(tc, test_stats_count_items_and_bytes);
    tcase_add_test(tc, test_concurrent_incr_and_append_lose_no_update);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(item_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
