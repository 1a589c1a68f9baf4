/*
 * Slab allocator: class sizes from -n/-f, the memory limit, chunk reuse,
 * chunked items above the largest class, -I and set-up validation. Each test
 * sets storage up with the configuration it needs and tears it down.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/item.h"
#include "storage/rebalance.h"
#include "storage/slab.h"
#include "storage/storage.h"
#include "util/clock.h"

#define MIB ((size_t)1024 * 1024)
#define HDR item_header_size()

static int64_t t0;

static void start(struct storage_config *cfg)
{
    char err[256] = "";

    clock_setup();
    t0 = clock_now_ms();
    ck_assert_msg(storage_setup(cfg, err, sizeof(err)) == 0, "setup: %s", err);
}

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static uint32_t chunk_size(unsigned id)
{
    struct storage_class_stats cs;

    storage_class_stats(id, t0, &cs);
    return cs.chunk_size;
}

/* The next class size growing by g: at least one alignment step. */
static size_t grown(size_t size, double g)
{
    size_t next = align8((size_t)(size * g));

    return next > size ? next : size + 8;
}

/* Sizes grow by f from HDR + n, then (f below the knee) by the knee factor
 * from where the ids left would not reach the largest chunk otherwise; the
 * largest chunk comes last. Returns the first size grown by the knee (0
 * when none). */
static size_t check_classes(size_t n, double f)
{
    struct storage_config cfg;
    unsigned id, count;
    size_t want, knee = 0;
    double g = f;

    storage_config_default(&cfg);
    cfg.chunk_size_min = n;
    cfg.growth_factor = f;
    start(&cfg);
    count = storage_class_count();
    ck_assert_uint_ge(count, 2);
    ck_assert_uint_le(count, STORAGE_CLASS_MAX);
    want = align8(HDR + n);
    for (id = 1; id < count; id++) {
        ck_assert_uint_eq(chunk_size(id), want);
        if (id + 1 < count && knee == 0 && f < SLAB_KNEE_FACTOR &&
            chunk_size(id + 1) != grown(want, f)) {
            g = SLAB_KNEE_FACTOR;
            knee = chunk_size(id + 1);
        }
        ck_assert_uint_le(grown(want, g), STORAGE_PAGE_SIZE / 2);
        want = grown(want, g);
    }
    ck_assert_uint_eq(chunk_size(count), STORAGE_PAGE_SIZE / 2);
    ck_assert_uint_gt(chunk_size(count), chunk_size(count - 1));
    if (knee != 0)
        ck_assert_uint_eq(count, STORAGE_CLASS_MAX);
    storage_teardown();
    return knee;
}

START_TEST(test_class_sizes_follow_n_and_f_and_end_at_chunk_max)
{
    ck_assert_uint_eq(check_classes(48, 1.25), 0);
    ck_assert_uint_eq(check_classes(100, 2.0), 0);
    ck_assert_uint_ne(check_classes(16, 1.07), 0);
}
END_TEST

START_TEST(test_fine_factor_grows_by_the_knee_where_class_ids_would_run_out)
{
    struct storage_config cfg;

    /* The default is memcached's 1.25. At 1.10: 10 % steps up to about
     * 8 KiB, 25 % above, 63 classes in all, and no jump from a few KiB to
     * the largest chunk. */
    storage_config_default(&cfg);
    ck_assert(cfg.growth_factor > 1.249 && cfg.growth_factor < 1.251);
    size_t knee = check_classes(48, 1.10);
    ck_assert_uint_gt(knee, 6 * 1024);
    ck_assert_uint_lt(knee, 12 * 1024);
    /* Too fine to reach even 1 KiB before the knee: still ends at the
     * largest chunk, by 25 % steps. */
    ck_assert_uint_ne(check_classes(8, 1.01), 0);
}
END_TEST

START_TEST(test_clsid_is_the_smallest_class_that_fits)
{
    struct storage_config cfg;
    unsigned count;

    storage_config_default(&cfg);
    start(&cfg);
    count = slab_class_count();
    ck_assert_uint_eq(slab_clsid(0), 1);
    /* One assertion for the half million sizes, naming the first wrong
     * one: Check sends each passing assertion to its parent. */
    size_t size;
    unsigned id = 0;
    for (size = 1; size <= STORAGE_PAGE_SIZE / 2; size++) {
        id = slab_clsid(size);
        if (id < 1 || id > count || slab_chunk_size(id) < size || (id > 1 && slab_chunk_size(id - 1) >= size))
            break;
    }
    ck_assert_msg(size > STORAGE_PAGE_SIZE / 2, "size %zu: class %u of %u, chunk %u, the class below %u", size,
                  id, count, id >= 1 && id <= count ? slab_chunk_size(id) : 0,
                  id > 1 && id <= count ? slab_chunk_size(id - 1) : 0);
    ck_assert_uint_eq(slab_clsid(STORAGE_PAGE_SIZE / 2 + 1), 0);
    storage_teardown();
}
END_TEST

static struct item *alloc_kv(const char *key, size_t nbytes, enum item_alloc_status *st)
{
    return item_alloc(key, strlen(key), 0, 0, nbytes, t0, st);
}

START_TEST(test_memory_limit_respected_without_eviction)
{
    struct storage_config cfg;
    struct storage_stats ss;
    enum item_alloc_status st = ITEM_ALLOC_OK;
    struct storage_class_stats cs;
    char key[32];
    int i, stored = 0;
    unsigned id = 0;

    storage_config_default(&cfg);
    cfg.mem_limit = 4 * MIB;
    cfg.item_size_max = MIB;
    cfg.evict = false;
    start(&cfg);
    for (i = 0; i < 100000; i++) {
        struct item *it;

        snprintf(key, sizeof(key), "key%d", i);
        it = alloc_kv(key, 1000, &st);
        if (it == NULL)
            break;
        id = item_clsid(it);
        ck_assert_int_eq(item_store(it, STORE_SET, 0, t0, NULL), ITEM_STORED);
        item_put(it);
        stored++;
    }
    ck_assert_int_eq(st, ITEM_ALLOC_NOMEM);
    storage_stats(&ss);
    ck_assert_uint_le(ss.total_malloced, cfg.mem_limit);
    ck_assert_uint_eq(ss.curr_items, (uint64_t)stored);
    ck_assert_uint_eq(ss.evictions, 0);
    ck_assert_uint_ge(ss.outofmemory, 1);
    storage_slab_class_stats(id, t0, &cs);
    ck_assert_uint_eq(cs.total_pages, 4);
    ck_assert_uint_eq(cs.used_chunks, (uint64_t)stored);
    ck_assert_uint_eq((uint64_t)stored, 4 * cs.chunks_per_page);
    storage_teardown();
}
END_TEST

START_TEST(test_free_chunks_are_reused)
{
    struct storage_config cfg;
    struct storage_class_stats cs;
    enum item_alloc_status st;
    struct item *a, *b;
    unsigned id;
    int i;

    storage_config_default(&cfg);
    start(&cfg);
    a = alloc_kv("a", 100, &st);
    ck_assert_ptr_nonnull(a);
    id = a->clsid;
    item_put(a);
    b = alloc_kv("b", 100, &st);
    ck_assert_ptr_eq(a, b);
    item_put(b);
    /* One assertion for the loop: Check sends each passing one to its
     * parent. */
    enum item_result sr = ITEM_STORED;
    for (i = 0; i < 100000; i++) {
        a = alloc_kv("a", 100, &st);
        if (a == NULL)
            break;
        sr = item_store(a, STORE_SET, 0, t0, NULL);
        item_put(a);
        if (sr != ITEM_STORED)
            break;
    }
    ck_assert_msg(i == 100000, "set %d: alloc status %d, store returned %d", i, (int)st, (int)sr);
    storage_slab_class_stats(id, t0, &cs);
    ck_assert_uint_eq(cs.total_pages, 1);
    ck_assert_uint_eq(cs.used_chunks, 1);
    storage_teardown();
}
END_TEST

static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 31 + 7) ^ (i >> 11));
}

/* Store a value of n pattern bytes written in odd-sized pieces, read it back
 * through item_value_iov() and item_value_read(). */
static void roundtrip(size_t n, bool want_chunked)
{
    enum item_alloc_status st;
    struct iovec iov[64];
    unsigned char *buf = malloc(n + 2), *got = malloc(n + 2);
    struct item *it;
    size_t i, off, piece = 7777, total;
    int cnt, k;

    ck_assert_ptr_nonnull(buf);
    ck_assert_ptr_nonnull(got);
    for (i = 0; i < n; i++)
        buf[i] = pattern(i);
    it = alloc_kv("big", n, &st);
    ck_assert_msg(it != NULL, "alloc %zu: %d", n, (int)st);
    ck_assert_int_eq(item_is_chunked(it), want_chunked);
    for (off = 0; off < n; off += piece)
        ck_assert_uint_eq(item_value_write(it, off, buf + off, off + piece <= n ? piece : n - off),
                          off + piece <= n ? piece : n - off);
    ck_assert_int_eq(item_store(it, STORE_SET, 0, t0, NULL), ITEM_STORED);
    item_put(it);

    it = item_get("big", 3, t0, NULL);
    ck_assert_ptr_nonnull(it);
    ck_assert_uint_eq(item_nbytes(it), n);
    /* whole value + CRLF through iovecs, starting at an odd offset too */
    for (off = 0; off <= 1; off++) {
        total = 0;
        cnt = item_value_iov(it, off * 12345, iov, 64);
        for (k = 0; k < cnt; k++) {
            memcpy(got + total, iov[k].iov_base, iov[k].iov_len);
            total += iov[k].iov_len;
        }
        ck_assert_uint_eq(total, n + 2 - off * 12345);
        ck_assert(memcmp(got, buf + off * 12345, n - off * 12345) == 0);
        ck_assert(got[total - 2] == '\r' && got[total - 1] == '\n');
    }
    memset(got, 0, n + 2);
    for (off = 0; off < n + 2; off += 4099)
        item_value_read(it, off, got + off, off + 4099 <= n + 2 ? 4099 : n + 2 - off);
    ck_assert(memcmp(got, buf, n) == 0);
    ck_assert(got[n] == '\r' && got[n + 1] == '\n');
    ck_assert_uint_eq(item_value_read(it, n, got, 100), 2);
    item_put(it);
    free(buf);
    free(got);
}

START_TEST(test_chunked_items_round_trip_byte_exact)
{
    struct storage_config cfg;
    struct storage_stats ss;

    storage_config_default(&cfg);
    cfg.item_size_max = 4 * MIB;
    cfg.mem_limit = 64 * MIB;
    start(&cfg);
    roundtrip(500000, false);
    roundtrip(STORAGE_PAGE_SIZE / 2 - HDR - 3 - 2, false);  /* exactly one chunk */
    roundtrip(STORAGE_PAGE_SIZE / 2 - HDR - 3 - 1, true);   /* one byte over */
    roundtrip(STORAGE_PAGE_SIZE / 2 - 2, true);             /* value+CRLF fill one chunk */
    roundtrip(MIB + 3, true);
    roundtrip(3 * MIB + 17, true);
    roundtrip(4 * MIB, true);
    storage_stats(&ss);
    ck_assert_uint_eq(ss.curr_items, 1);
    ck_assert_uint_eq(ss.bytes, HDR + 3 + 4 * MIB + 2);
    storage_teardown();
}
END_TEST

START_TEST(test_chunked_item_memory_returns_on_delete)
{
    struct storage_config cfg;
    struct storage_class_stats cs;
    enum item_alloc_status st;
    struct item *it;
    unsigned top;

    storage_config_default(&cfg);
    cfg.item_size_max = 4 * MIB;
    start(&cfg);
    top = storage_class_count();
    it = alloc_kv("big", 3 * MIB, &st);
    ck_assert_ptr_nonnull(it);
    storage_class_stats(top, t0, &cs);
    ck_assert_uint_eq(cs.used_chunks, 6);
    item_store(it, STORE_SET, 0, t0, NULL);
    item_put(it);
    ck_assert_int_eq(item_delete("big", 3, 0, t0), ITEM_DELETED);
    storage_class_stats(top, t0, &cs);
    ck_assert_uint_eq(cs.used_chunks, 0);
    storage_teardown();
}
END_TEST

START_TEST(test_item_size_max_enforced)
{
    struct storage_config cfg;
    enum item_alloc_status st;
    char key[300];
    struct item *it;

    storage_config_default(&cfg);
    cfg.item_size_max = 2 * MIB;
    start(&cfg);
    it = alloc_kv("k", 2 * MIB, &st);
    ck_assert_ptr_nonnull(it);
    item_put(it);
    ck_assert_ptr_null(alloc_kv("k", 2 * MIB + 1, &st));
    ck_assert_int_eq(st, ITEM_ALLOC_TOO_LARGE);
    memset(key, 'k', sizeof(key));
    key[STORAGE_KEY_MAX + 1] = '\0';
    ck_assert_ptr_null(alloc_kv(key, 10, &st));
    ck_assert_int_eq(st, ITEM_ALLOC_TOO_LARGE);
    storage_teardown();
}
END_TEST

static void expect_rejected(const struct storage_config *cfg, const char *needle)
{
    char err[256] = "";

    ck_assert_int_eq(storage_setup(cfg, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);
}

START_TEST(test_setup_rejects_bad_configs)
{
    struct storage_config cfg;
    char err[256];

    clock_setup();
    storage_config_default(&cfg);
    cfg.growth_factor = 1.0;
    expect_rejected(&cfg, "-f");
    cfg.growth_factor = 0.5;
    expect_rejected(&cfg, "-f");
    storage_config_default(&cfg);
    cfg.item_size_max = 512;
    expect_rejected(&cfg, "-I");
    cfg.item_size_max = (size_t)2 * 1024 * MIB;
    cfg.mem_limit = (size_t)8 * 1024 * MIB;
    expect_rejected(&cfg, "1 GiB");
    storage_config_default(&cfg);
    cfg.item_size_max = 64 * MIB;
    expect_rejected(&cfg, "-m");
    cfg.item_size_max = 32 * MIB;   /* exactly half is fine */
    ck_assert_int_eq(storage_setup(&cfg, err, sizeof(err)), 0);
    storage_teardown();
}
END_TEST

START_TEST(test_prealloc_takes_all_pages_at_setup)
{
    struct storage_config cfg;
    struct storage_stats ss;
    enum item_alloc_status st;
    struct item *it;

    storage_config_default(&cfg);
    cfg.mem_limit = 8 * MIB;
    cfg.prealloc = true;
    start(&cfg);
    storage_stats(&ss);
    ck_assert_uint_eq(ss.total_malloced, 8 * MIB);
    ck_assert_uint_eq(ss.slab_global_page_pool, 8);
    it = alloc_kv("k", 10, &st);
    ck_assert_ptr_nonnull(it);
    storage_stats(&ss);
    ck_assert_uint_eq(ss.total_malloced, 8 * MIB);
    ck_assert_uint_eq(ss.slab_global_page_pool, 7);
    item_put(it);
    storage_teardown();
}
END_TEST

/* Fill class of 1000-byte values until the limit stops it; how many. */
static int fill_until_nomem(int from)
{
    enum item_alloc_status st = ITEM_ALLOC_OK;
    char key[32];
    int i;

    /* A store that fails ends the loop and is named below: Check sends
     * each passing assertion to its parent. */
    enum item_result sr = ITEM_STORED;
    for (i = from; i < from + 1000000; i++) {
        struct item *it;

        snprintf(key, sizeof(key), "key%d", i);
        it = alloc_kv(key, 1000, &st);
        if (it == NULL)
            break;
        sr = item_store(it, STORE_SET, 0, t0, NULL);
        item_put(it);
        if (sr != ITEM_STORED)
            break;
    }
    ck_assert_msg(sr == ITEM_STORED, "%s: store returned %d", key, (int)sr);
    ck_assert_int_eq(st, ITEM_ALLOC_NOMEM);
    return i - from;
}

/* Delete key0 .. key<n - 1>, stopping at the first that fails. */
static void delete_keys(int n)
{
    enum item_result r = ITEM_DELETED;
    char key[32];
    int i;

    for (i = 0; i < n && r == ITEM_DELETED; i++) {
        snprintf(key, sizeof(key), "key%d", i);
        r = item_delete(key, strlen(key), 0, t0);
    }
    ck_assert_msg(r == ITEM_DELETED, "delete %s: %d", key, (int)r);
}

START_TEST(test_raised_limit_grows_past_the_startup_region)
{
    struct storage_config cfg;
    struct storage_stats ss;
    int before, after;

    storage_config_default(&cfg);
    cfg.mem_limit = 4 * MIB;
    cfg.evict = false;
    cfg.slab_reassign = false;
    start(&cfg);
    before = fill_until_nomem(0);
    /* 4 pages plus one per class were mapped at set-up: 200 needs more. */
    ck_assert_int_eq(storage_set_mem_limit(200 * MIB), 0);
    ck_assert_uint_eq(storage_mem_limit(), 200 * MIB);
    after = fill_until_nomem(before);
    ck_assert_int_eq(after, before * 49);   /* 196 pages more than 4 */
    storage_stats(&ss);
    ck_assert_uint_eq(ss.total_malloced, 200 * MIB);
    ck_assert_uint_eq(ss.limit_maxbytes, 200 * MIB);
    ck_assert_uint_eq(ss.evictions, 0);
    storage_teardown();
}
END_TEST

START_TEST(test_lowered_limit_stops_pages_and_moves_give_them_back)
{
    struct storage_config cfg;
    struct storage_stats ss;
    enum item_alloc_status st;
    struct item *it;
    unsigned id;
    int n;

    storage_config_default(&cfg);
    cfg.mem_limit = 16 * MIB;
    cfg.evict = false;
    cfg.slab_reassign = false;      /* no mover thread: the test moves */
    start(&cfg);
    n = fill_until_nomem(0);
    it = item_get("key0", 4, t0, NULL);
    id = item_clsid(it);
    item_put(it);
    ck_assert_int_eq(storage_set_mem_limit(8 * MIB), 0);
    ck_assert(slab_over_limit());
    delete_keys(n);
    /* Free chunks are reused, but no page is taken over the lower limit. */
    ck_assert_int_eq(fill_until_nomem(0), n);
    delete_keys(n);
    while (slab_over_limit())
        ck_assert(rebalance_move_now(id, 0, t0, 100));
    storage_stats(&ss);
    ck_assert_uint_le(ss.total_malloced, 9 * MIB);
    ck_assert_uint_ge(ss.slab_global_page_pool, 7);
    /* The pages given back are taken again up to the limit, zeroed. */
    n = fill_until_nomem(0);
    storage_stats(&ss);
    ck_assert_uint_le(ss.total_malloced, 9 * MIB);
    it = item_get("key1", 4, t0, NULL);
    ck_assert_ptr_nonnull(it);
    ck_assert_uint_eq(item_nbytes(it), 1000);
    item_put(it);
    (void)st;
    storage_teardown();
}
END_TEST

START_TEST(test_limit_fixed_with_prealloc)
{
    struct storage_config cfg;

    storage_config_default(&cfg);
    cfg.mem_limit = 8 * MIB;
    cfg.prealloc = true;
    start(&cfg);
    ck_assert_int_eq(storage_set_mem_limit(16 * MIB), -1);
    ck_assert_uint_eq(storage_mem_limit(), 8 * MIB);
    storage_teardown();
}
END_TEST

/* Page moves below eviction: chunks taken straight from one class. */
static struct storage_class_stats class_stats(unsigned id)
{
    struct storage_class_stats cs;

    storage_slab_class_stats(id, t0, &cs);
    return cs;
}

START_TEST(test_cancelled_move_gives_every_free_chunk_back)
{
    struct storage_config cfg;
    struct storage_class_stats cs;
    unsigned id;
    uint32_t per, n;
    char **ch;

    storage_config_default(&cfg);
    cfg.mem_limit = 8 * MIB;
    cfg.crawler = false;
    cfg.slab_automove = 0;
    start(&cfg);
    id = slab_clsid(1000);
    per = slab_chunks_per_page(id);
    /* Two whole pages and a third carved a quarter of the way. */
    n = 2 * per + per / 4;
    ch = calloc(n, sizeof(*ch));
    for (uint32_t i = 0; i < n; i++) {
        ch[i] = slab_alloc(id, 1000);
        ck_assert_ptr_nonnull(ch[i]);
    }
    ck_assert_uint_eq(slab_class_pages(id), 3);
    /* Half of the second page free. */
    for (uint32_t i = per; i < per + per / 2; i++)
        slab_free(ch[i], id, 1000);
    cs = class_stats(id);
    ck_assert_uint_eq(cs.free_chunks, per / 2);
    ck_assert_uint_eq(cs.free_chunks_end, per - per / 4);

    /* Move the carving page: its used chunks are counted, and while it
     * moves none of its chunks is handed out, even after a free. */
    slab_move_begin(id, 2);
    ck_assert_uint_eq(slab_move_in_use(id), per / 4);
    slab_free(ch[2 * per], id, 1000);
    ck_assert_uint_eq(slab_move_in_use(id), per / 4 - 1);
    for (uint32_t i = 0; i < per / 2; i++) {
        char *p = slab_alloc(id, 1000);

        ck_assert_ptr_nonnull(p);
        ck_assert(p < slab_class_page(id, 2) || p >= slab_class_page(id, 2) + STORAGE_PAGE_SIZE);
        slab_free(p, id, 1000);
    }
    slab_move_cancel(id);
    ck_assert_ptr_null(slab_moving_page(id));

    /* Back in service: every chunk is used or listed free, none lost. */
    cs = class_stats(id);
    ck_assert_uint_eq(cs.total_pages, 3);
    ck_assert_uint_eq(cs.free_chunks_end, 0);
    ck_assert_uint_eq(cs.free_chunks, per / 2 + (per - per / 4) + 1);
    ck_assert_uint_eq(cs.used_chunks + cs.free_chunks, 3ull * per);
    ck_assert_uint_eq(cs.mem_requested, (uint64_t)cs.used_chunks * 1000);
    /* And they are handed out again before any new page is taken. */
    for (uint64_t i = 0; i < cs.free_chunks; i++)
        ck_assert_ptr_nonnull(slab_alloc(id, 1000));
    ck_assert_uint_eq(slab_class_pages(id), 3);
    ck_assert_uint_eq(class_stats(id).free_chunks, 0);
    free(ch);
    storage_teardown();
}
END_TEST

/* kioku reports memcached's classes; with a page of the limit for each
 * class, the smaller ones are split in two, and a reported class sums its
 * halves. */
static struct item *put_in(const char *key, unsigned id)
{
    enum item_alloc_status st;
    /* The largest value whose item fits class id. */
    size_t vlen = slab_chunk_size(id) - HDR - strlen(key) - 2;
    struct item *it = alloc_kv(key, vlen, &st);

    ck_assert_ptr_nonnull(it);
    ck_assert_uint_eq(item_clsid(it), id);
    ck_assert_int_eq(item_store(it, STORE_SET, 0, t0, NULL), ITEM_STORED);
    return it;
}

static bool count_dumped(void *arg, const struct storage_dump_entry *e)
{
    (void)e;
    (*(unsigned *)arg)++;
    return true;
}

static bool dump_one_only(void *arg, const struct storage_dump_entry *e)
{
    (void)e;
    (*(unsigned *)arg)++;
    return false;
}

START_TEST(test_reported_classes_are_memcacheds_and_the_smaller_are_split)
{
    struct storage_config cfg;
    struct storage_class_stats rs, ks;
    unsigned shown, first, last, r, split = 0, dumped = 0;
    uint32_t below = 0;
    char key[32];

    storage_config_default(&cfg);       /* 64 MiB */
    start(&cfg);
    shown = storage_class_count();
    ck_assert_uint_eq(slab_class_count(), STORAGE_CLASS_MAX);
    for (r = 1; r <= shown; r++) {
        ck_assert(slab_shown_range(r, &first, &last));
        ck_assert_uint_eq(slab_chunk_size(last), chunk_size(r));
        ck_assert_uint_le(last - first, 1);
        for (unsigned k = first; k <= last; k++) {
            ck_assert_uint_eq(slab_shown_of(k), r);
            ck_assert_uint_gt(slab_chunk_size(k), below);
        }
        if (first < last) {
            uint32_t half = (chunk_size(r) - below) / 2;

            split++;
            ck_assert_uint_ge(slab_chunk_size(first) - below, half);
            ck_assert_uint_le(slab_chunk_size(first) - below, half + 8);
            ck_assert_uint_eq(split, r - 1);    /* the smallest ones */
        }
        below = chunk_size(r);
    }
    ck_assert_uint_eq(split, STORAGE_CLASS_MAX - shown);
    ck_assert(!slab_shown_range(0, &first, &last));
    ck_assert(!slab_shown_range(shown + 1, &first, &last));

    /* Items of both halves of class 10, reported as class 10. */
    ck_assert(slab_shown_range(10, &first, &last) && first < last);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%03d", i);
        struct item *it = put_in(key, i < 70 ? first : last);
        ck_assert_uint_eq(item_class_id(it), 10);
        item_put(it);
    }
    storage_class_stats(10, t0, &rs);
    storage_slab_class_stats(first, t0, &ks);
    ck_assert_uint_eq(ks.number, 70);
    ck_assert_uint_eq(rs.number, 100);
    ck_assert_uint_eq(rs.used_chunks, 100);
    ck_assert_uint_eq(rs.total_pages, 2);
    ck_assert_uint_eq(rs.chunk_size, slab_chunk_size(last));
    ck_assert_uint_eq(rs.total_chunks, ks.total_chunks + slab_chunks_per_page(last));
    storage_class_dump(10, count_dumped, &dumped);
    ck_assert_uint_eq(dumped, 100);
    dumped = 0;     /* a visitor that stops stops the walk of both halves */
    storage_class_dump(10, dump_one_only, &dumped);
    ck_assert_uint_eq(dumped, 1);
    storage_teardown();

    /* Without a page of the limit for each class: memcached's alone. */
    cfg.mem_limit = 16 * MIB;
    start(&cfg);
    ck_assert_uint_eq(slab_class_count(), storage_class_count());
    storage_teardown();
    cfg.mem_limit = (shown + 5) * MIB;
    start(&cfg);
    ck_assert_uint_eq(slab_class_count(), shown + 5);
    storage_teardown();
}
END_TEST

/* `slabs reassign` names reported classes: the page comes from the half in
 * use, and goes to the half in use (the larger of an unused pair). */
START_TEST(test_reassign_moves_between_the_halves_in_use)
{
    struct storage_config cfg;
    struct storage_stats ss;
    unsigned first, last, dfirst, dlast;
    char key[32];
    int i;

    storage_config_default(&cfg);
    cfg.crawler = false;
    cfg.slab_automove = 0;
    start(&cfg);
    ck_assert(slab_shown_range(10, &first, &last) && first < last);
    ck_assert(slab_shown_range(20, &dfirst, &dlast) && dfirst < dlast);
    for (i = 0; slab_class_pages(first) < 3; i++) {
        snprintf(key, sizeof(key), "k%06d", i);
        item_put(put_in(key, first));
    }
    ck_assert_uint_eq(slab_class_pages(last), 0);
    ck_assert_int_eq(storage_slabs_reassign(10, 10), STORAGE_REASSIGN_SAME);
    ck_assert_int_eq(storage_slabs_reassign(10, (int)storage_class_count() + 1),
                     STORAGE_REASSIGN_BADCLASS);
    ck_assert_int_eq(storage_slabs_reassign(10, 20), STORAGE_REASSIGN_OK);
    for (int w = 0; w < 300; w++) {
        storage_stats(&ss);
        if (ss.slabs_moved > 0 && !ss.slab_reassign_running)
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    ck_assert_uint_eq(ss.slabs_moved, 1);
    ck_assert_uint_eq(slab_class_pages(first), 2);
    ck_assert_uint_eq(slab_class_pages(last), 0);
    ck_assert_uint_eq(slab_class_pages(dlast), 1);
    ck_assert_uint_eq(slab_class_pages(dfirst), 0);
    /* "Any class" to class 10: only 10's own halves have a page to spare,
     * and a page never moves between the halves of one class. */
    for (; slab_class_pages(last) < 2; i++) {
        snprintf(key, sizeof(key), "k%06d", i);
        item_put(put_in(key, last));
    }
    ck_assert_int_eq(storage_slabs_reassign(-1, 10), STORAGE_REASSIGN_BADCLASS);
    storage_teardown();
}
END_TEST

static Suite *slab_suite(void)
{
    Suite *s = suite_create("slab");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_class_sizes_follow_n_and_f_and_end_at_chunk_max);
    tcase_add_test(tc, test_fine_factor_grows_by_the_knee_where_class_ids_would_run_out);
    tcase_add_test(tc, test_clsid_is_the_smallest_class_that_fits);
    tcase_add_test(tc, test_reported_classes_are_memcacheds_and_the_smaller_are_split);
    tcase_add_test(tc, test_reassign_moves_between_the_halves_in_use);
    tcase_add_test(tc, test_memory_limit_respected_without_eviction);
    tcase_add_test(tc, test_free_chunks_are_reused);
    tcase_add_test(tc, test_chunked_items_round_trip_byte_exact);
    tcase_add_test(tc, test_chunked_item_memory_returns_on_delete);
    tcase_add_test(tc, test_item_size_max_enforced);
    tcase_add_test(tc, test_setup_rejects_bad_configs);
    tcase_add_test(tc, test_prealloc_takes_all_pages_at_setup);
    tcase_add_test(tc, test_raised_limit_grows_past_the_startup_region);
    tcase_add_test(tc, test_lowered_limit_stops_pages_and_moves_give_them_back);
    tcase_add_test(tc, test_limit_fixed_with_prealloc);
    tcase_add_test(tc, test_cancelled_move_gives_every_free_chunk_back);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(slab_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
