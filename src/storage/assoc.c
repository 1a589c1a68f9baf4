/*
 * Hash table with striped locks and incremental growth.
 *
 * Chained buckets, 2^power of them, keyed by a seeded XXH3 (the seed comes
 * from getrandom() at set-up, so clients cannot aim keys at one bucket).
 * Locking is by stripe, not by bucket: ASSOC_NSTRIPES padded mutexes, and a
 * key's stripe is the low bits of its hash. Because every table has at least
 * as many buckets as there are stripes, bucket b of any table belongs to
 * stripe b & (ASSOC_NSTRIPES - 1): the stripes partition every table, and a
 * key's bucket in the old and in the new table share one stripe.
 *
 * That partition lets each stripe carry its own view of the table (where
 * inserts go, and the old table while its buckets are being moved), changed
 * only under that stripe's lock. Growth is done by a maintenance thread,
 * never by a request: when linked items exceed 1.5 per bucket it allocates a
 * table twice as large (no lock held), then walks the stripes in order; for
 * each it takes that one stripe, switches the stripe's view to the new table
 * (keeping the old as a second place to look), moves the old buckets the
 * stripe owns in bounded batches (releasing and yielding between batches),
 * and drops the old view once they are all moved. Lookups in a stripe being
 * migrated search both tables; inserts go to the new one. When every stripe
 * is done nobody can reach the old table and it is freed. A request waits at
 * most for one batch, and no pass ever holds more than one stripe. (Taking
 * every stripe at once to publish the new table would work too, but stalls
 * all requests together and exceeds what ThreadSanitizer can track.)
 *
 * The same thread runs delayed flushes at their kioku time.
 */
#include "storage/assoc.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <xxhash.h>

#include "storage/item.h"
#include "storage/slab.h"
#include "util/clock.h"

#define MIGRATE_BATCH 64        /* old buckets moved per stripe hold */
#define MAINT_TICK_MS 100

/* Module state: set up by assoc_setup(). */
static struct assoc_stripe *stripes;
static XXH64_hash_t seed;

/* The growth in progress, all guarded by grow_lock (stripes have their own
 * view, see struct assoc_stripe). */
static pthread_mutex_t grow_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t *g_tab;         /* newest table: chunk references */
static unsigned g_power;
static uint32_t *g_old;         /* table being emptied, NULL when not growing */
static unsigned g_old_power;
static uint64_t migrate_next;   /* next old bucket, stripe-major */

static pthread_t maint_thread;
static bool maint_running;
static pthread_mutex_t maint_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t maint_cond;
static bool maint_stop;         /* maint_lock; also read atomically */
static bool growth_paused;      /* maint_lock */
static int64_t flush_pending;   /* kioku ms of a delayed flush, 0 none; maint_lock */
static uint64_t flush_count;    /* atomic */

static void *maint_main(void *arg);

static uint64_t mask_of(unsigned power)
{
    return ((uint64_t)1 << power) - 1;
}

uint64_t assoc_hash(const char *key, size_t nkey)
{
    return XXH3_64bits_withSeed(key, nkey, seed);
}

uint64_t assoc_seed(void)
{
    return seed;
}

struct assoc_stripe *assoc_stripe(uint64_t hv)
{
    return &stripes[assoc_stripe_index(hv)];
}

struct assoc_stripe *assoc_stripe_at(unsigned idx)
{
    return &stripes[idx];
}

/* Stripes this thread holds for a whole script (assoc_hold), else NULL:
 * the commands a script runs lock and unlock those as no-ops, so they run
 * inside the script's hold instead of deadlocking on it. The normal path
 * pays one thread-local test. */
static __thread const uint64_t *held;

static inline bool held_here(unsigned idx)
{
    return __builtin_expect(held != NULL, 0) && ((held[idx / 64] >> (idx % 64)) & 1) != 0;
}

void assoc_hold(const uint64_t *bits)
{
    held = bits;
}

void assoc_lock_at(unsigned idx)
{
    if (!held_here(idx))
        pthread_mutex_lock(&stripes[idx].lock);
}

void assoc_unlock_at(unsigned idx)
{
    if (!held_here(idx))
        pthread_mutex_unlock(&stripes[idx].lock);
}

void assoc_lock(uint64_t hv)
{
    assoc_lock_at(assoc_stripe_index(hv));
}

void assoc_unlock(uint64_t hv)
{
    assoc_unlock_at(assoc_stripe_index(hv));
}

int assoc_trylock(uint64_t hv)
{
    /* A held stripe is busy, as when this thread holds it the usual way. */
    unsigned idx = assoc_stripe_index(hv);
    return held_here(idx) ? EBUSY : pthread_mutex_trylock(&stripes[idx].lock);
}

static void seed_setup(void)
{
    ssize_t got = getrandom(&seed, sizeof(seed), GRND_NONBLOCK);

    /* Early boot without entropy: a time-based seed is still better than 0. */
    if (got != (ssize_t)sizeof(seed))
        seed = (XXH64_hash_t)time(NULL) ^ (XXH64_hash_t)(uintptr_t)&seed;
}

int assoc_setup(unsigned hashpower, char *errbuf, size_t errlen)
{
    pthread_condattr_t ca;
    unsigned i;

    if (hashpower < ASSOC_POWER_MIN)
        hashpower = ASSOC_POWER_MIN;
    if (hashpower > ASSOC_POWER_MAX) {
        snprintf(errbuf, errlen, "hash power must be at most %d", ASSOC_POWER_MAX);
        return -1;
    }
    stripes = aligned_alloc(64, sizeof(*stripes) * ASSOC_NSTRIPES);
    g_tab = calloc((size_t)1 << hashpower, sizeof(*g_tab));
    if (stripes == NULL || g_tab == NULL) {
        snprintf(errbuf, errlen, "out of memory for a hash table of 2^%u buckets", hashpower);
        free(stripes);
        free(g_tab);
        stripes = NULL;
        g_tab = NULL;
        return -1;
    }
    memset(stripes, 0, sizeof(*stripes) * ASSOC_NSTRIPES);
    for (i = 0; i < ASSOC_NSTRIPES; i++) {
        pthread_mutex_init(&stripes[i].lock, NULL);
        stripes[i].tab = g_tab;
        stripes[i].power = hashpower;
    }
    seed_setup();
    g_power = hashpower;
    g_old = NULL;
    g_old_power = 0;
    migrate_next = 0;
    maint_stop = false;
    growth_paused = false;
    flush_pending = 0;
    flush_count = 0;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&maint_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&maint_thread, NULL, maint_main, NULL) != 0) {
        snprintf(errbuf, errlen, "cannot start the hash maintenance thread");
        pthread_cond_destroy(&maint_cond);
        assoc_teardown();
        return -1;
    }
    maint_running = true;
    return 0;
}

void assoc_teardown(void)
{
    unsigned i;

    if (maint_running) {
        pthread_mutex_lock(&maint_lock);
        __atomic_store_n(&maint_stop, true, __ATOMIC_RELAXED);
        pthread_cond_signal(&maint_cond);
        pthread_mutex_unlock(&maint_lock);
        pthread_join(maint_thread, NULL);
        pthread_cond_destroy(&maint_cond);
        maint_running = false;
    }
    if (stripes != NULL) {
        for (i = 0; i < ASSOC_NSTRIPES; i++)
            pthread_mutex_destroy(&stripes[i].lock);
    }
    free(stripes);
    free(g_tab);
    free(g_old);
    stripes = NULL;
    g_tab = g_old = NULL;
}

/* ---- lookups: the caller holds the key's stripe ---- */

static struct item *item_at(uint32_t ref)
{
    return slab_ptr(ref);
}

/* The hottest loop of a lookup: the region base and key offset are read
 * once, not per hop. */
static inline __attribute__((always_inline)) struct item *
chain_find(uint32_t ref, const char *key, size_t nkey)
{
    const char *base = slab_region.ref_base;
    unsigned shift = slab_region.shift;
    size_t koff = item_header_size();

    while (ref != 0) {
        struct item *it = (struct item *)(void *)(base + ((size_t)ref << shift));

        if (it->nkey == nkey && memcmp((const char *)it + koff, key, nkey) == 0)
            return it;
        ref = it->h_next;
    }
    return NULL;
}

/*
 * Three passes, so the misses of one pass overlap across keys: the
 * stripes (lock word and table view), then the buckets, then the head item
 * of each chain (header with the key, and the next line, where a small
 * value ends). The bucket address comes from the stripe's view read with
 * atomics (the growth switches it with atomic stores), since
 * taking each lock here would serialise the misses; reading the bucket's
 * word itself needs the lock, as the table may be freed after a switch.
 * So the last pass trylocks every stripe first, then reads all the
 * buckets, then unlocks: a locked instruction waits for the loads issued
 * before it, and a trylock between two bucket reads would have made their
 * misses one after the other.
 */
#define PREFETCH_GROUP 32   /* stripes held at once (TSan tracks 64) */

static void prefetch_heads(const uint64_t *hv, size_t n)
{
    const char *base = slab_region.ref_base;
    unsigned shift = slab_region.shift;
    unsigned held_idx[PREFETCH_GROUP];
    uint32_t heads[PREFETCH_GROUP];
    bool ok[PREFETCH_GROUP];
    size_t i, nheld = 0;

    for (i = 0; i < n; i++) {
        unsigned idx = assoc_stripe_index(hv[i]);
        size_t k;

        ok[i] = false;
        if (held_here(idx))
            continue;
        for (k = 0; k < nheld && held_idx[k] != idx; k++)
            ;
        if (k == nheld) {
            if (pthread_mutex_trylock(&stripes[idx].lock) != 0)
                continue;
            held_idx[nheld++] = idx;
        }
        ok[i] = true;
    }
    for (i = 0; i < n; i++) {
        struct assoc_stripe *s;

        if (!ok[i])
            continue;
        s = &stripes[assoc_stripe_index(hv[i])];
        heads[i] = s->tab[hv[i] & mask_of(s->power)];
        if (heads[i] != 0) {
            const char *it = base + ((size_t)heads[i] << shift);
            __builtin_prefetch(it, 0, 3);
            __builtin_prefetch(it + 64, 0, 3);
        }
    }
    /* The second item of each chain too: at 0.75 to 1.5 items a bucket, a
     * hit finds its item behind the head often enough that those misses,
     * one after another in the lookups, cost more than all the others. */
    for (i = 0; i < n; i++) {
        if (!ok[i] || heads[i] == 0)
            continue;
        uint32_t next = ((const struct item *)(const void *)(base + ((size_t)heads[i] << shift)))->h_next;
        if (next != 0)
            __builtin_prefetch(base + ((size_t)next << shift), 0, 3);
    }
    for (i = 0; i < nheld; i++)
        pthread_mutex_unlock(&stripes[held_idx[i]].lock);
}

void assoc_prefetch(const uint64_t *hv, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        struct assoc_stripe *s = assoc_stripe(hv[i]);
        __builtin_prefetch(s, 1, 3);
        __builtin_prefetch((const char *)s + 64, 0, 3);
    }
    for (i = 0; i < n; i++) {
        struct assoc_stripe *s = assoc_stripe(hv[i]);
        unsigned power = __atomic_load_n(&s->power, __ATOMIC_ACQUIRE);
        const uint32_t *tab = __atomic_load_n(&s->tab, __ATOMIC_RELAXED);
        __builtin_prefetch(&tab[hv[i] & mask_of(power)], 0, 3);
    }
    for (i = 0; i < n; i += PREFETCH_GROUP)
        prefetch_heads(hv + i, n - i < PREFETCH_GROUP ? n - i : PREFETCH_GROUP);
}

struct item *assoc_find(const char *key, size_t nkey, uint64_t hv)
{
    struct assoc_stripe *s = assoc_stripe(hv);
    struct item *it = chain_find(s->tab[hv & mask_of(s->power)], key, nkey);

    if (it == NULL && s->old != NULL)
        it = chain_find(s->old[hv & mask_of(s->old_power)], key, nkey);
    return it;
}

void assoc_insert(struct item *it, uint64_t hv)
{
    struct assoc_stripe *s = assoc_stripe(hv);
    uint32_t *b = &s->tab[hv & mask_of(s->power)];

    /* Atomic: a sweep may still read this word from when the chunk was a
     * value chunk or a collection's block (see evict.c slot_item). */
    __atomic_store_n(&it->h_next, *b, __ATOMIC_RELAXED);
    *b = slab_ref(it);
    __atomic_store_n(&s->nitems, s->nitems + 1, __ATOMIC_RELAXED);
}

static bool chain_remove(uint32_t *pp, struct item *it)
{
    uint32_t ref = slab_ref(it);

    for (; *pp != 0; pp = &item_at(*pp)->h_next) {
        if (*pp == ref) {
            *pp = it->h_next;
            __atomic_store_n(&it->h_next, 0, __ATOMIC_RELAXED);
            return true;
        }
    }
    return false;
}

void assoc_delete(struct item *it, uint64_t hv)
{
    struct assoc_stripe *s = assoc_stripe(hv);
    bool found = chain_remove(&s->tab[hv & mask_of(s->power)], it);

    if (!found && s->old != NULL)
        found = chain_remove(&s->old[hv & mask_of(s->old_power)], it);
    if (found)
        __atomic_store_n(&s->nitems, s->nitems - 1, __ATOMIC_RELAXED);
}

void assoc_cas_floor(uint64_t seq)
{
    for (unsigned i = 0; i < ASSOC_NSTRIPES; i++) {
        pthread_mutex_lock(&stripes[i].lock);
        if (stripes[i].cas_seq < seq)
            stripes[i].cas_seq = seq;
        pthread_mutex_unlock(&stripes[i].lock);
    }
}

uint64_t assoc_next_cas(struct assoc_stripe *s, unsigned idx)
{
    return (++s->cas_seq << ASSOC_STRIPE_BITS) | idx;
}

/* ---- scan ---- */

static uint64_t rev64(uint64_t v)
{
    v = ((v >> 1) & 0x5555555555555555ULL) | ((v & 0x5555555555555555ULL) << 1);
    v = ((v >> 2) & 0x3333333333333333ULL) | ((v & 0x3333333333333333ULL) << 2);
    v = ((v >> 4) & 0x0F0F0F0F0F0F0F0FULL) | ((v & 0x0F0F0F0F0F0F0F0FULL) << 4);
    return __builtin_bswap64(v);
}

static void visit_chain(uint32_t ref, struct assoc_stripe *s,
                        void (*visit)(struct item *, struct assoc_stripe *, void *), void *arg)
{
    struct item *it = item_at(ref);

    while (it != NULL) {
        struct item *next = item_at(it->h_next);  /* visit must not unlink, but be safe */

        visit(it, s, arg);
        it = next;
    }
}

/* Counts what a batch visited, so it can stop once it has seen enough. */
struct counting_visit {
    void (*visit)(struct item *it, struct assoc_stripe *s, void *arg);
    void *arg;
    uint64_t n;
};

static void count_visit(struct item *it, struct assoc_stripe *s, void *arg)
{
    struct counting_visit *cv = arg;

    cv->n++;
    cv->visit(it, s, cv->arg);
}

/*
 * The cursor counts with its bits reversed over the smaller table's mask:
 * incrementing the high bits first means that when the table doubles, the
 * buckets already visited map to expansions that are all "behind" the cursor,
 * so no bucket is missed (one may be seen twice). While growing, a step
 * visits the smaller table's bucket and all its expansions in the larger.
 */
uint64_t assoc_scan(uint64_t cursor,
                    void (*visit)(struct item *it, struct assoc_stripe *s, void *arg),
                    void *arg)
{
    struct assoc_scan_work w = { .max_steps = 1, .max_items = UINT64_MAX };

    return assoc_scan_batch(cursor, &w, visit, arg);
}

/*
 * Consecutive cursors share their low (stripe) bits until the high bits
 * wrap, so a run of steps stays in one stripe: the batch takes that stripe
 * once for the whole run instead of once per bucket. The hold is bounded by
 * the stripe's share of the table (2^(power - ASSOC_STRIPE_BITS) steps) and
 * by w->max_steps.
 */
uint64_t assoc_scan_batch(uint64_t cursor, struct assoc_scan_work *w,
                          void (*visit)(struct item *it, struct assoc_stripe *s, void *arg),
                          void *arg)
{
    unsigned idx = (unsigned)(cursor & (ASSOC_NSTRIPES - 1));
    struct assoc_stripe *s = &stripes[idx];
    struct counting_visit cv = { visit, arg, 0 };

    w->steps = 0;
    w->items = 0;
    pthread_mutex_lock(&s->lock);
    do {
        uint64_t v = cursor, m0;

        if (s->old == NULL) {
            m0 = mask_of(s->power);
            visit_chain(s->tab[v & m0], s, count_visit, &cv);
        } else {
            uint64_t m1 = mask_of(s->power);

            m0 = mask_of(s->old_power);
            visit_chain(s->old[v & m0], s, count_visit, &cv);
            /* Every bucket of the larger table whose low bits are v & m0. */
            do {
                visit_chain(s->tab[v & m1], s, count_visit, &cv);
                v = (((v | m0) + 1) & ~m0) | (v & m0);
            } while (v & (m0 ^ m1));
        }
        v |= ~m0;
        v = rev64(v);
        v++;
        cursor = rev64(v);
        w->steps++;
    } while (cursor != 0 && (cursor & (ASSOC_NSTRIPES - 1)) == idx &&
             w->steps < w->max_steps && cv.n < w->max_items);
    pthread_mutex_unlock(&s->lock);
    w->items = cv.n;
    return cursor;
}

/* ---- flush ---- */

/*
 * Items keep only 8 bits of their stripe's flush generation. Before the
 * stripe's generation can come round to a stale item's again, unlink every
 * item of the stripe (all are stale: a flush just ran). The crawler frees
 * flushed items long before, so this runs only when flush_all is called
 * some 255 times faster than the crawler passes. Caller holds the stripe.
 */
static void purge_one_table(uint32_t *tab, unsigned power, unsigned idx)
{
    if (tab == NULL)
        return;
    for (uint64_t b = idx; b < ((uint64_t)1 << power); b += ASSOC_NSTRIPES) {
        while (tab[b] != 0) {
            struct item *it = item_at(tab[b]);

            do_item_unlink(it, assoc_hash(item_key(it), it->nkey));
        }
    }
}

static void purge_stripe(struct assoc_stripe *s, unsigned idx)
{
    purge_one_table(s->tab, s->power, idx);
    purge_one_table(s->old, s->old_power, idx);
    s->stale = 0;
    s->stale_base = s->flush_gen;
}

void assoc_flush_now(void)
{
    unsigned i;

    pthread_mutex_lock(&maint_lock);
    flush_pending = 0;
    pthread_mutex_unlock(&maint_lock);
    for (i = 0; i < ASSOC_NSTRIPES; i++) {
        struct assoc_stripe *s = &stripes[i];

        pthread_mutex_lock(&s->lock);
        if (s->stale == 0)
            s->stale_base = s->flush_gen;
        /* Atomic: the crawler compares generations without the lock. */
        __atomic_store_n(&s->flush_gen, s->flush_gen + 1, __ATOMIC_RELAXED);
        s->stale = s->nitems;   /* every linked item is now of an older generation */
        s->nexpires = 0;
        if (s->stale != 0 && s->flush_gen - s->stale_base >= ITEM_GEN_MASK)
            purge_stripe(s, i);
        pthread_mutex_unlock(&s->lock);
    }
    __atomic_add_fetch(&flush_count, 1, __ATOMIC_RELAXED);
}

void assoc_flush_at(int64_t at)
{
    pthread_mutex_lock(&maint_lock);
    flush_pending = at > 0 ? at : 1;
    pthread_cond_signal(&maint_cond);
    pthread_mutex_unlock(&maint_lock);
}

uint64_t assoc_flush_count(void)
{
    return __atomic_load_n(&flush_count, __ATOMIC_RELAXED);
}

/* No stripe lock: a sum of relaxed loads, so a moment's inserts may be
 * missed. Good enough for growth and for sizing a SCAN step. */
void assoc_load(uint64_t *nitems, unsigned *power)
{
    uint64_t total = 0;

    for (unsigned i = 0; i < ASSOC_NSTRIPES; i++)
        total += __atomic_load_n(&stripes[i].nitems, __ATOMIC_RELAXED);
    *nitems = total;
    pthread_mutex_lock(&grow_lock);
    *power = g_power;
    pthread_mutex_unlock(&grow_lock);
}

void assoc_table_info(unsigned *power, uint64_t *bytes, bool *growing)
{
    pthread_mutex_lock(&grow_lock);
    *power = g_power;
    *bytes = ((uint64_t)1 << g_power) * sizeof(*g_tab);
    if (g_old != NULL)
        *bytes += ((uint64_t)1 << g_old_power) * sizeof(*g_old);
    *growing = g_old != NULL;
    pthread_mutex_unlock(&grow_lock);
}

/* ---- growth ---- */

void assoc_pause_growth(bool paused)
{
    pthread_mutex_lock(&maint_lock);
    growth_paused = paused;
    pthread_mutex_unlock(&maint_lock);
}

/* Allocate the larger table; stripes switch to it one by one as the
 * migration reaches them. Caller holds grow_lock. */
static bool do_expand_begin(void)
{
    uint32_t *tab;

    if (g_old != NULL || g_power >= ASSOC_POWER_MAX)
        return false;
    tab = calloc((size_t)1 << (g_power + 1), sizeof(*tab));
    if (tab == NULL)
        return false;
    g_old = g_tab;
    g_old_power = g_power;
    g_tab = tab;
    g_power++;
    migrate_next = 0;
    return true;
}

bool assoc_expand_begin(void)
{
    bool ok;

    pthread_mutex_lock(&grow_lock);
    ok = do_expand_begin();
    pthread_mutex_unlock(&grow_lock);
    return ok;
}

/* Move one old bucket's chain into the new table. Caller holds its stripe. */
static void migrate_bucket(struct assoc_stripe *s, uint64_t b)
{
    struct item *it = item_at(s->old[b]);
    uint64_t m1 = mask_of(s->power);

    while (it != NULL) {
        struct item *next = item_at(it->h_next);
        uint32_t *dst = &s->tab[assoc_hash(item_key(it), it->nkey) & m1];

        __atomic_store_n(&it->h_next, *dst, __ATOMIC_RELAXED);
        *dst = slab_ref(it);
        it = next;
    }
    s->old[b] = 0;
}

/*
 * Old buckets are migrated in stripe-major order (stripe i owns buckets
 * i, i + NSTRIPES, ...), so one batch needs one stripe. The first batch of a
 * stripe switches its view to the new table; the last drops the old one.
 */
bool assoc_expand_step(unsigned max_buckets)
{
    uint64_t nold, per, idx, j;
    struct assoc_stripe *s;
    unsigned n = 0;
    bool more;

    pthread_mutex_lock(&grow_lock);
    if (g_old == NULL) {
        pthread_mutex_unlock(&grow_lock);
        return false;
    }
    nold = (uint64_t)1 << g_old_power;
    per = nold / ASSOC_NSTRIPES;
    if (migrate_next < nold) {
        idx = migrate_next / per;
        s = &stripes[idx];
        pthread_mutex_lock(&s->lock);
        if (s->old == NULL && s->tab == g_old) {
            s->old = g_old;
            s->old_power = g_old_power;
            /* Atomic: assoc_prefetch reads the view without the lock; one
             * that sees the new power sees the new table too, so it never
             * aims past the end of the old one. */
            __atomic_store_n(&s->tab, g_tab, __ATOMIC_RELAXED);
            __atomic_store_n(&s->power, g_power, __ATOMIC_RELEASE);
        }
        for (j = migrate_next % per; n < max_buckets && j < per; j++, n++)
            migrate_bucket(s, idx + j * ASSOC_NSTRIPES);
        migrate_next = idx * per + j;
        if (j == per) {
            s->old = NULL;
            s->old_power = 0;
        }
        pthread_mutex_unlock(&s->lock);
    }
    more = migrate_next < nold;
    pthread_mutex_unlock(&grow_lock);
    return more;
}

/* Every stripe has dropped its view of the old table: nobody can reach it. */
void assoc_expand_end(void)
{
    uint32_t *old = NULL;

    pthread_mutex_lock(&grow_lock);
    if (g_old != NULL && migrate_next >= ((uint64_t)1 << g_old_power)) {
        old = g_old;
        g_old = NULL;
        g_old_power = 0;
    }
    pthread_mutex_unlock(&grow_lock);
    free(old);
}

/* ---- maintenance thread ---- */

static bool stopping(void)
{
    return __atomic_load_n(&maint_stop, __ATOMIC_RELAXED);
}

static bool needs_growth(void)
{
    uint64_t total;
    unsigned power;

    assoc_load(&total, &power);
    return total > ((uint64_t)3 << power) / 2;
}

/* Run a delayed flush if its time has come. Takes maint_lock briefly. */
static void run_due_flush(void)
{
    bool due = false;

    pthread_mutex_lock(&maint_lock);
    if (flush_pending != 0 && clock_now_ms() >= flush_pending) {
        flush_pending = 0;
        due = true;
    }
    pthread_mutex_unlock(&maint_lock);
    if (due)
        assoc_flush_now();
}

/* One whole growth; returns early (leaving the table growing) on stop. */
static void grow(void)
{
    unsigned batches = 0;

    if (!assoc_expand_begin())
        return;
    while (!stopping() && assoc_expand_step(MIGRATE_BATCH)) {
        if (++batches % 64 == 0)
            run_due_flush();
        sched_yield();
    }
    assoc_expand_end();
}

static void wait_tick(void)
{
    struct timespec ts;
    int64_t wait_ms = MAINT_TICK_MS;

    if (flush_pending != 0) {
        int64_t left = flush_pending - clock_now_ms();

        wait_ms = left < 0 ? 0 : (left < wait_ms ? left : wait_ms);
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += wait_ms / 1000;
    ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&maint_cond, &maint_lock, &ts);
}

static void *maint_main(void *arg)
{
    pthread_setname_np(pthread_self(), "kioku-maint");
    (void)arg;
    pthread_mutex_lock(&maint_lock);
    while (!maint_stop) {
        bool paused;

        wait_tick();
        if (maint_stop)
            break;
        paused = growth_paused;
        pthread_mutex_unlock(&maint_lock);
        run_due_flush();
        if (!paused && needs_growth())
            grow();
        pthread_mutex_lock(&maint_lock);
    }
    pthread_mutex_unlock(&maint_lock);
    return NULL;
}
