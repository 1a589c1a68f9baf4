/*
 * Collections over the real store (storage/coll.c, coll_arena.c): typed
 * items whose blocks are slab chunks. Checks that a collection is linked
 * only when it is non-empty, that another type is refused, that every
 * block goes back to its class when the key is deleted, overwritten by a
 * memcached set, renamed, evicted or refused for memory, and that eviction
 * takes a hash whole or not at all.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/coll.h"
#include "storage/item.h"
#include "storage/storage.h"
#include "types/hash.h"
#include "util/clock.h"

#define MIB ((size_t)1024 * 1024)

static int64_t now;

static void start(bool evict)
{
    struct storage_config cfg;
    char err[256] = "";

    clock_setup();
    now = clock_now_ms();
    storage_config_default(&cfg);
    cfg.mem_limit = 4 * MIB;
    cfg.item_size_max = MIB;
    cfg.evict = evict;
    cfg.crawler = false;
    cfg.slab_automove = 0;
    ck_assert_msg(storage_setup(&cfg, err, sizeof(err)) == 0, "setup: %s", err);
}

static void setup_evict(void) { start(true); }
static void setup_noevict(void) { start(false); }
static void teardown(void) { storage_teardown(); }

/* Chunks in use in every class: blocks and items alike. */
static uint64_t used_chunks(void)
{
    uint64_t n = 0;
    for (unsigned id = 1; id <= storage_class_count(); id++) {
        struct storage_class_stats st;
        storage_class_stats(id, now, &st);
        n += st.used_chunks;
    }
    return n;
}

static const struct hash_limits lim = {512, 64};

/* Set fields 0..n-1 of hash key to values of vlen bytes; the number set. */
static int fill(const char *key, int n, size_t vlen)
{
    struct coll_handle h;
    char f[32], v[512];
    int done = 0;

    ck_assert_uint_lt(vlen, sizeof(v));
    if (coll_open(&h, key, strlen(key), COLL_HASH, true, now) != COLL_OK)
        return 0;
    for (int i = 0; i < n; i++) {
        memset(v, 'a' + i % 26, vlen);
        snprintf(f, sizeof(f), "field:%d", i);
        if (hash_set(coll_arena(&h), coll_root(&h), f, strlen(f), v, vlen, &lim) < 0)
            break;
        done++;
    }
    coll_close(&h);
    return done;
}

/* Fields of key (0 when absent); aborts on a field with a wrong value. */
static int count_fields(const char *key, size_t vlen)
{
    struct coll_handle h;
    int n = 0;

    ck_assert_int_eq(coll_open(&h, key, strlen(key), COLL_HASH, false, now), COLL_OK);
    if (coll_exists(&h)) {
        struct hash_root *r = coll_root(&h);
        n = (int)hash_len(r);
        for (int i = 0; i < n; i++) {
            char f[32];
            size_t vl;
            snprintf(f, sizeof(f), "field:%d", i);
            const char *v = hash_get(coll_arena(&h), r, f, strlen(f), &vl);
            /* Asserts only on a wrong field, naming the first wrong byte:
             * Check sends each passing assertion to its parent. */
            if (v == NULL)
                ck_abort_msg("%s %s: missing", key, f);
            if (vl != vlen)
                ck_abort_msg("%s %s: %zu bytes, want %zu", key, f, vl, vlen);
            size_t j = 0;
            while (j < vl && v[j] == 'a' + i % 26)
                j++;
            if (j < vl)
                ck_abort_msg("%s %s: byte %zu is 0x%02x, want '%c'", key, f, j, (unsigned char)v[j],
                             'a' + i % 26);
        }
    }
    coll_close(&h);
    return n;
}

static void del_key(const char *key)
{
    item_delete(key, strlen(key), 0, now);
}

START_TEST(test_created_collection_is_linked_only_when_non_empty)
{
    struct coll_handle h;
    uint64_t base = used_chunks();

    ck_assert_int_eq(coll_open(&h, "k", 1, COLL_HASH, true, now), COLL_OK);
    ck_assert(coll_exists(&h));
    coll_close(&h);
    ck_assert_int_eq(coll_open(&h, "k", 1, COLL_HASH, false, now), COLL_OK);
    ck_assert(!coll_exists(&h));
    coll_close(&h);
    ck_assert_uint_eq(used_chunks(), base);

    ck_assert_int_eq(fill("k", 3, 10), 3);
    struct item *it = item_get_any("k", 1, now, NULL);
    ck_assert_ptr_nonnull(it);
    ck_assert_int_eq(coll_type_of(it), COLL_HASH);
    ck_assert_str_eq(coll_type_name(coll_type_of(it)), "hash");
    item_put(it);
    ck_assert_int_eq(count_fields("k", 10), 3);
}
END_TEST

START_TEST(test_other_types_are_refused)
{
    enum item_alloc_status st;
    struct item *it = item_alloc("s", 1, 0, 0, 3, now, &st);
    struct coll_handle h;

    memcpy(item_value(it), "abc", 3);
    ck_assert_int_eq(item_store(it, STORE_SET, 0, now, NULL), ITEM_STORED);
    item_put(it);
    ck_assert_int_eq(coll_open(&h, "s", 1, COLL_HASH, true, now), COLL_WRONGTYPE);
    ck_assert_int_eq(fill("h", 2, 5), 2);
    ck_assert_int_eq(coll_open(&h, "h", 1, COLL_ZSET, true, now), COLL_WRONGTYPE);
    /* The lock was released: the key can be opened again. */
    ck_assert_int_eq(count_fields("h", 5), 2);
    ck_assert_int_eq(coll_open(&h, "s", 1, COLL_HASH, false, now), COLL_WRONGTYPE);
}
END_TEST

START_TEST(test_every_block_returns_on_delete)
{
    uint64_t base = used_chunks();

    /* A listpack, then a dictionary of several segments. */
    ck_assert_int_eq(fill("small", 10, 20), 10);
    ck_assert_int_eq(fill("large", 9000, 20), 9000);
    ck_assert_uint_gt(used_chunks(), base + 9000);
    del_key("small");
    del_key("large");
    ck_assert_uint_eq(used_chunks(), base);
}
END_TEST

START_TEST(test_last_field_deleted_removes_the_key)
{
    uint64_t base = used_chunks();
    struct coll_handle h;

    ck_assert_int_eq(fill("k", 600, 8), 600);
    ck_assert_int_eq(coll_open(&h, "k", 1, COLL_HASH, false, now), COLL_OK);
    for (int i = 0; i < 600; i++) {
        char f[32];
        snprintf(f, sizeof(f), "field:%d", i);
        ck_assert_int_eq(hash_del(coll_arena(&h), coll_root(&h), f, strlen(f)), 1);
    }
    coll_close(&h);
    ck_assert_ptr_null(item_get_any("k", 1, now, NULL));
    ck_assert_uint_eq(used_chunks(), base);
}
END_TEST

START_TEST(test_memcached_sees_a_miss_and_set_overwrites)
{
    uint64_t base = used_chunks();
    enum item_alloc_status st;

    ck_assert_int_eq(fill("k", 2000, 16), 2000);
    ck_assert_ptr_null(item_get("k", 1, now, NULL));
    struct item *it = item_alloc("k", 1, 0, 0, 1, now, &st);
    memcpy(item_value(it), "x", 1);
    ck_assert_int_eq(item_store(it, STORE_APPEND, 0, now, NULL), ITEM_NOT_STORED);
    ck_assert_int_eq(item_store(it, STORE_ADD, 0, now, NULL), ITEM_NOT_STORED);
    ck_assert_int_eq(item_store(it, STORE_REPLACE, 0, now, NULL), ITEM_NOT_STORED);
    ck_assert_int_eq(count_fields("k", 16), 2000);
    ck_assert_int_eq(item_store(it, STORE_SET, 0, now, NULL), ITEM_STORED);
    item_put(it);
    it = item_get("k", 1, now, NULL);
    ck_assert_ptr_nonnull(it);
    ck_assert_int_eq(coll_type_of(it), COLL_NONE);
    item_put(it);
    del_key("k");
    ck_assert_uint_eq(used_chunks(), base);
}
END_TEST

START_TEST(test_rename_moves_blocks_to_the_new_owner)
{
    uint64_t base = used_chunks();
    uint64_t h1 = item_hash("a", 1), h2 = item_hash("b", 1);

    ck_assert_int_eq(fill("a", 3000, 16), 3000);
    item_lock2(h1, h2);
    struct item *old = do_item_find("a", 1, h1, now, NULL);
    struct item *it = coll_rename(old, "b", 1, now);
    ck_assert_ptr_nonnull(it);
    do_item_link(it, h2);
    do_item_unlink(old, h1);
    item_unlock2(h1, h2);
    item_put(old);
    item_put(it);
    ck_assert_ptr_null(item_get_any("a", 1, now, NULL));
    ck_assert_int_eq(count_fields("b", 16), 3000);
    ck_assert_int_eq(fill("b", 3100, 16), 3100);
    ck_assert_int_eq(count_fields("b", 16), 3100);
    del_key("b");
    ck_assert_uint_eq(used_chunks(), base);
}
END_TEST

START_TEST(test_eviction_takes_a_hash_whole)
{
    char key[32];
    int made = 0;

    /* 4 MiB of memory, about 8 KiB per hash: evictions are certain. */
    for (int k = 0; k < 2000; k++) {
        snprintf(key, sizeof(key), "h:%d", k);
        ck_assert_int_eq(fill(key, 40, 200), 40);
        made++;
    }
    struct storage_stats st;
    storage_stats(&st);
    ck_assert_uint_gt(st.evictions, 0);
    int whole = 0;
    for (int k = 0; k < made; k++) {
        snprintf(key, sizeof(key), "h:%d", k);
        int n = count_fields(key, 200);
        ck_assert(n == 0 || n == 40);
        whole += n == 40;
    }
    ck_assert_int_gt(whole, 0);
    ck_assert_int_lt(whole, made);
    /* The newest survived. */
    ck_assert_int_eq(count_fields(key, 200), 40);
    for (int k = 0; k < made; k++) {
        snprintf(key, sizeof(key), "h:%d", k);
        del_key(key);
    }
    ck_assert_uint_eq(used_chunks(), 0);
}
END_TEST

START_TEST(test_no_memory_leaves_a_consistent_hash)
{
    char key[32];
    int k, n = 0;

    for (k = 0; k < 4000; k++) {
        snprintf(key, sizeof(key), "h:%d", k);
        n = fill(key, 40, 200);
        if (n < 40)
            break;
    }
    ck_assert_int_lt(k, 4000);
    /* The refused hash holds the fields that were set, each whole. */
    ck_assert_int_eq(count_fields(key, 200), n);
    ck_assert_int_eq(count_fields("h:0", 200), 40);
    for (int i = 0; i <= k; i++) {
        snprintf(key, sizeof(key), "h:%d", i);
        del_key(key);
    }
    ck_assert_uint_eq(used_chunks(), 0);
    ck_assert_int_eq(fill("again", 40, 200), 40);
}
END_TEST

static Suite *coll_suite(void)
{
    Suite *s = suite_create("coll");
    TCase *tc = tcase_create("evict");
    TCase *tn = tcase_create("noevict");

    tcase_add_checked_fixture(tc, setup_evict, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_created_collection_is_linked_only_when_non_empty);
    tcase_add_test(tc, test_other_types_are_refused);
    tcase_add_test(tc, test_every_block_returns_on_delete);
    tcase_add_test(tc, test_last_field_deleted_removes_the_key);
    tcase_add_test(tc, test_memcached_sees_a_miss_and_set_overwrites);
    tcase_add_test(tc, test_rename_moves_blocks_to_the_new_owner);
    tcase_add_test(tc, test_eviction_takes_a_hash_whole);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(tn, setup_noevict, teardown);
    tcase_set_timeout(tn, 60);
    tcase_add_test(tn, test_no_memory_leaves_a_consistent_hash);
    suite_add_tcase(s, tn);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(coll_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
