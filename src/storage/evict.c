/*
 * Eviction: choosing which item gives up its memory, by policy (evict.h),
 * and the crawler that frees expired items nobody asks for.
 *
 * There are no LRU lists. The items of a slab class are found by sweeping
 * the class's chunks in page order, so an item needs no queue links, a hit
 * takes no lock and moves nothing, and linking costs two relaxed counters.
 *
 * S3-FIFO (the default) over that order: a class keeps a main hand and a
 * small hand. When memory is short the chunk just freed at a hand gets the
 * new item, so in sweep order items stand in insertion order, and a sweep
 * is a FIFO walk. New items are marked small (probation), unless the ghost
 * (a table of fingerprints of keys recently evicted from probation)
 * remembers them, then they go straight to main. While small items are at
 * least a twentieth of the class, the small hand walks: a small item read
 * since it was stored is promoted to main in place, one never read is
 * evicted and its fingerprint goes to the ghost. Otherwise the main hand walks: an item
 * with a nonzero access count has it decremented and is passed over (FIFO
 * reinsertion), one at zero is evicted. A scan of one-time keys thus passes
 * through probation without pushing out the keys that are read again.
 *
 * The Redis policies sample: maxmemory-samples random chunks of the class,
 * the best candidate by idle time (LRU), logarithmic access counter with
 * decay (LFU, Redis's algorithm and defaults), nearest expiry (TTL), or the
 * first one (random); volatile-* consider only items with a TTL and, if the
 * samples found none, sweep for one before giving up.
 *
 * Safety without a lock: pages never change class and chunk headers are
 * read with atomics, so a sweep may look at any chunk. It learns the stripe
 * from the header, trylocks it (never blocks: the caller may hold a stripe)
 * and checks the item is still linked there before trusting anything else.
 * Each class's lock guards its hands and counters. Lock order: stripe ->
 * class eviction lock -> (trylock) stripe -> slab.
 */
#include "storage/evict.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/assoc.h"
#include "storage/evict_int.h"
#include "storage/item.h"
#include "storage/slab.h"
#include "storage/storage.h"
#include "util/clock.h"
#include "util/watch.h"

#define SMALL_WALK_MAX 256      /* slots the small hand may pass per call */
#define POOL_SIZE 16            /* Redis's eviction pool: best candidates kept */
#define FALLBACK_WALK_MAX 1024  /* slots a policy sweep may pass per call */
#define FREQ_MAX 3
/* Probation's share of a class, 1/n. Not the paper's tenth: on
 * bench/hitratio.sh's zipf and scan loads a twentieth scored 0.15 points
 * more, a thirtieth 0.03 more again, a fifth 0.4 less. */
#define SMALL_SHARE_DIV 20
#define LFU_INIT_VAL 5          /* Redis's counter for a new key */
#define CRAWL_BATCH 4096        /* items per class per crawler step */
#define CRAWL_SLOTS_PER_ITEM 16 /* and at most this many slots per item */
#define CRAWL_TICK_MS 100
#define CRAWL_REST_TICKS 5      /* ticks a class rests after a fruitless step */

struct hand {
    uint32_t page;
    uint32_t slot;
};

struct eclass {
    pthread_mutex_t lock;
    struct hand main, small;
    char *pool[POOL_SIZE];      /* slots of the best candidates seen so far */
    unsigned npool;
    uint64_t number;            /* atomic: linked items with their header here */
    uint64_t nsmall;            /* atomic: of those, in probation */
    uint64_t evicted;
    uint64_t evicted_nonzero;
    uint64_t evicted_time;
    uint64_t evicted_unfetched;
    uint64_t evicted_active;
    uint64_t outofmemory;
    uint64_t reclaimed;
    uint64_t expired_unfetched;
    uint64_t reflocked;
    uint64_t rescued;           /* evicted by page moves for an allocation */
    struct hand crawl;          /* crawler thread only */
    uint64_t crawler_reclaimed; /* atomic */
    uint64_t crawler_expired_unfetched; /* atomic */
    uint64_t crawler_checked;   /* atomic: items the crawler examined */
    uint64_t crawler_passes;    /* atomic: crawls of the class begun */
    uint64_t reused;            /* atomic: new items in chunks the crawler freed dead */
} __attribute__((aligned(64)));

/* Module state, set up by evict_setup(). */
static struct eclass ecl[STORAGE_CLASS_MAX + 1];
static uint32_t *ghost;
static uint64_t ghost_mask;
static pthread_t crawler;
static bool crawler_running;
static pthread_mutex_t crawl_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t crawl_cond;
static bool crawl_stop, crawl_paused;   /* crawl_lock */

/* ---- per-thread random numbers (xorshift64*), for sampling and LFU ---- */

static __thread uint64_t rng_state;

static uint64_t rnd(void)
{
    if (rng_state == 0)
        rng_state = (uint64_t)(uintptr_t)&rng_state ^ (uint64_t)clock_now_ms() ^
                    0x9e3779b97f4a7c15ULL;
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

/* ---- ghost: fingerprints of keys evicted from probation ---- */

static uint32_t ghost_fp(uint64_t hv)
{
    return (uint32_t)(hv >> 32) | 1;
}

static uint32_t *ghost_slot(uint64_t hv)
{
    return &ghost[(hv >> ASSOC_STRIPE_BITS) & ghost_mask];
}

static void ghost_add(uint64_t hv)
{
    __atomic_store_n(ghost_slot(hv), ghost_fp(hv), __ATOMIC_RELAXED);
}

/* True (and forgotten) if the ghost remembers the key. */
static bool ghost_take(uint64_t hv)
{
    uint32_t *g = ghost_slot(hv);

    if (__atomic_load_n(g, __ATOMIC_RELAXED) != ghost_fp(hv))
        return false;
    __atomic_store_n(g, 0, __ATOMIC_RELAXED);
    return true;
}

/* ---- hooks ---- */

void evict_on_link(struct item *it, uint64_t hv)
{
    struct eclass *e = &ecl[it->clsid];

    __atomic_add_fetch(&e->number, 1, __ATOMIC_RELAXED);
    if (ghost_take(hv)) {
        item_iflags_clear(it, ITEM_SMALL);
    } else {
        item_iflags_set(it, ITEM_SMALL);
        __atomic_add_fetch(&e->nsmall, 1, __ATOMIC_RELAXED);
    }
}

void evict_on_unlink(struct item *it)
{
    struct eclass *e = &ecl[it->clsid];

    __atomic_sub_fetch(&e->number, 1, __ATOMIC_RELAXED);
    if (item_iflags(it) & ITEM_SMALL) {
        item_iflags_clear(it, ITEM_SMALL);
        __atomic_sub_fetch(&e->nsmall, 1, __ATOMIC_RELAXED);
    }
}

uint32_t evict_access_init(int64_t now)
{
    return item_atime_of(now) << 8 | LFU_INIT_VAL;
}

static bool policy_lfu(enum evict_policy p)
{
    return p == EVICT_ALLKEYS_LFU || p == EVICT_VOLATILE_LFU;
}

bool evict_lfu_active(void)
{
    return policy_lfu(evict_get_policy());
}

/* Redis's LFU counter after decay: one step per lfu-decay-time minutes since
 * the last access. */
static unsigned lfu_decayed(uint32_t access, uint32_t now_s)
{
    unsigned counter = access & 0xff, decay = evict_get_lfu_decay_time();
    uint32_t idle = (now_s - (access >> 8)) & ITEM_ATIME_MASK;
    uint32_t periods = decay != 0 ? idle / 60 / decay : 0;

    return periods >= counter ? 0 : counter - periods;
}

/* Redis's logarithmic increment: the higher the counter, the less likely. */
static unsigned lfu_incr(unsigned counter)
{
    double base, p;

    if (counter >= 255)
        return 255;
    base = counter > LFU_INIT_VAL ? (double)(counter - LFU_INIT_VAL) : 0.0;
    p = 1.0 / (base * evict_get_lfu_log_factor() + 1.0);
    if ((double)(rnd() >> 11) * 0x1.0p-53 < p)
        counter++;
    return counter;
}

void evict_on_hit(struct item *it, int64_t now)
{
    uint8_t f = __atomic_load_n(&it->freq, __ATOMIC_RELAXED);
    uint32_t a = __atomic_load_n(&it->access, __ATOMIC_RELAXED), now_s = item_atime_of(now);
    uint32_t na;

    if (f < FREQ_MAX)
        __atomic_store_n(&it->freq, (uint8_t)(f + 1), __ATOMIC_RELAXED);
    if (policy_lfu(evict_get_policy()))
        na = now_s << 8 | lfu_incr(lfu_decayed(a, now_s));
    else
        na = now_s << 8 | (a & 0xff);
    if (na != a)
        __atomic_store_n(&it->access, na, __ATOMIC_RELAXED);
}

/* ---- finding and taking candidates ---- */

/* The item a slot belongs to, read without a lock; NULL if none is linked. */
static struct item *slot_item(char *slot)
{
    struct item *c = (struct item *)(void *)slot;
    uint8_t f = item_iflags(c);

    if (f & ITEM_VALUE) {
        c = slab_ptr(__atomic_load_n(&c->h_next, __ATOMIC_RELAXED));
        if (c == NULL)
            return NULL;
        f = item_iflags(c);
    }
    return (f & ITEM_LINKED) && !(f & ITEM_VALUE) ? c : NULL;
}

static unsigned stripe_of(const struct item *it)
{
    return (unsigned)(item_meta(it) >> ITEM_STRIPE_SHIFT);
}

/* Trylock the candidate's stripe and check it is still linked there (and,
 * when found through a value chunk, still owns it). On success the stripe
 * is held and *hv is the key's hash. */
static bool lock_cand(struct item *it, char *slot, uint64_t *hv)
{
    unsigned idx = stripe_of(it);
    struct assoc_stripe *s = assoc_stripe_at(idx);
    struct item *vc = (struct item *)(void *)slot;

    if (pthread_mutex_trylock(&s->lock) != 0)
        return false;
    if (!(item_iflags(it) & ITEM_LINKED) || stripe_of(it) != idx ||
        (slot != (char *)it && (!(item_iflags(vc) & ITEM_VALUE) ||
                                __atomic_load_n(&vc->h_next, __ATOMIC_RELAXED) != slab_ref(it)))) {
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    *hv = assoc_hash(item_key(it), it->nkey);
    return true;
}

/* Release what lock_cand() took. By the key's hash, not the header: the
 * item may have been freed (and its chunk reused) under the lock. */
static void unlock_cand(uint64_t hv)
{
    assoc_unlock(hv);
}

static bool in_use(const struct item *it)
{
    return __atomic_load_n(&it->refcount, __ATOMIC_ACQUIRE) > 1;
}

/* An eviction, for `watch evictions` (only called while someone watches). */
static void report_eviction(const struct item *it, int64_t now)
{
    int64_t exp = item_exptime(it);
    watch_eviction(item_key(it), item_nkey(it), (item_iflags(it) & ITEM_FETCHED) != 0,
                   exp == 0 ? -1 : (long long)((exp - now) / 1000), item_idle_seconds(it, now),
                   item_class_id(it), item_nbytes(it));
}

/* Unlink a dead or chosen item (stripe held, nobody else holds it) and
 * count it. Returns 1. */
static int take(struct eclass *e, unsigned id, struct item *it, uint64_t hv, bool dead,
                int64_t now, void **reuse, size_t *old_req)
{
    uint8_t f = item_iflags(it);
    bool keep = reuse != NULL && !(f & ITEM_CHUNKED) && it->clsid == id;
    size_t req = item_chunk_requested(it);

    if (dead) {
        e->reclaimed++;
        if (!(f & ITEM_FETCHED))
            e->expired_unfetched++;
    } else {
        e->evicted++;
        if (!(f & ITEM_FETCHED))
            e->evicted_unfetched++;
        if (__atomic_load_n(&it->freq, __ATOMIC_RELAXED) != 0)
            e->evicted_active++;
        if (item_exptime(it) != 0)
            e->evicted_nonzero++;
        e->evicted_time = item_idle_seconds(it, now);
        if (watch_on(WATCH_EVICTIONS))
            report_eviction(it, now);
    }
    if (do_item_unlink_keep(it, hv, keep)) {
        *reuse = it;
        *old_req = req;
    }
    return 1;
}

/* A page being moved out of the class is left to the mover. Caller holds
 * the class's eviction lock, under which the moving page is set. */
static bool in_moving(unsigned id, const char *slot)
{
    const char *page = slab_moving_page(id);

    return page != NULL && slot >= page && slot < page + STORAGE_PAGE_SIZE;
}

/* The hand is written with atomic stores: evict_reclaim_tail() reads the
 * main hand without the class's lock. */
static char *hand_next(struct hand *h, unsigned id, uint32_t npages)
{
    uint32_t page = h->page, sl = h->slot;
    char *slot;

    if (page >= npages)
        page = sl = 0;
    slot = slab_class_page(id, page) + (size_t)sl * slab_chunk_size(id);
    if (++sl >= slab_chunks_per_page(id)) {
        sl = 0;
        page++;
    }
    __atomic_store_n(&h->page, page, __ATOMIC_RELAXED);
    __atomic_store_n(&h->slot, sl, __ATOMIC_RELAXED);
    return slot;
}

/* A hand that reached the page being moved out goes on past it at once:
 * nothing there is the policy's to take, and a walk's budget spent on its
 * slots would leave a class whose hand stands at that page (a move takes
 * the page under the main hand) nothing to evict. */
static void hand_skip_page(struct hand *h)
{
    if (h->slot == 0)
        return;     /* hand_next() left the page already */
    __atomic_store_n(&h->page, h->page + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&h->slot, 0, __ATOMIC_RELAXED);
}

enum sweep_mode {
    SWEEP_MAIN,     /* S3-FIFO main queue */
    SWEEP_SMALL,    /* S3-FIFO small queue */
    SWEEP_DEAD,     /* only expired or flushed items (noeviction) */
    SWEEP_ANY,      /* the first evictable item */
    SWEEP_TTL,      /* the first evictable item with a TTL */
};

/*
 * Walk a hand over at most `max` slots of class id. Dead items are reclaimed
 * in every mode. Caller holds e->lock. In main mode an item at zero access
 * count is evicted; if every one had a count, the one with the lowest count
 * seen is evicted all the same, so a hot class still frees memory.
 */
static int sweep(struct eclass *e, unsigned id, struct hand *h, enum sweep_mode mode,
                 unsigned max, int64_t now, void **reuse, size_t *old_req)
{
    uint32_t npages = slab_class_pages(id);
    struct item *best = NULL;
    char *best_slot = NULL;
    unsigned best_freq = FREQ_MAX + 1;

    if (npages == 0)
        return 0;
    for (unsigned n = 0; n < max; n++) {
        char *slot = hand_next(h, id, npages);
        struct item *it;
        uint64_t hv;
        uint8_t f;
        unsigned fq;
        int64_t exp;

        if (in_moving(id, slot)) {
            hand_skip_page(h);
            continue;
        }
        it = slot_item(slot);
        if (it == NULL)
            continue;
        f = item_iflags(it);
        exp = item_exptime(it);
        fq = __atomic_load_n(&it->freq, __ATOMIC_RELAXED);
        if (!item_exptime_passed(exp, now)) {
            /* Cheap filters before taking a lock. */
            if ((mode == SWEEP_SMALL && !(f & ITEM_SMALL)) ||
                (mode == SWEEP_MAIN && (f & ITEM_SMALL)) || (mode == SWEEP_TTL && exp == 0))
                continue;
            if (mode == SWEEP_MAIN && fq > 0) {
                __atomic_store_n(&it->freq, (uint8_t)(fq - 1), __ATOMIC_RELAXED);
                if (fq - 1 < best_freq) {
                    best = it;
                    best_slot = slot;
                    best_freq = fq - 1;
                }
                continue;
            }
        }
        if (!lock_cand(it, slot, &hv))
            continue;
        if (in_use(it)) {
            e->reflocked++;
        } else if (do_item_is_dead(it, hv, now)) {
            int r = take(e, id, it, hv, true, now, reuse, old_req);
            unlock_cand(hv);
            return r;
        } else if (mode == SWEEP_SMALL && (item_iflags(it) & ITEM_SMALL) && fq > 0) {
            /* Read while on probation: promote to main, in place. */
            item_iflags_clear(it, ITEM_SMALL);
            __atomic_sub_fetch(&e->nsmall, 1, __ATOMIC_RELAXED);
        } else if (mode != SWEEP_DEAD) {
            if (mode == SWEEP_SMALL)
                ghost_add(hv);
            int r = take(e, id, it, hv, false, now, reuse, old_req);
            unlock_cand(hv);
            return r;
        }
        unlock_cand(hv);
    }
    uint64_t hv;

    if (best != NULL && lock_cand(best, best_slot, &hv)) {
        int r = 0;

        if (!in_use(best))
            r = take(e, id, best, hv, do_item_is_dead(best, hv, now), now, reuse, old_req);
        unlock_cand(hv);
        return r;
    }
    return 0;
}

static int s3fifo(struct eclass *e, unsigned id, int64_t now, void **reuse, size_t *old_req)
{
    uint64_t number = __atomic_load_n(&e->number, __ATOMIC_RELAXED);
    uint64_t nsmall = __atomic_load_n(&e->nsmall, __ATOMIC_RELAXED);
    bool small_first = nsmall > 0 && nsmall * SMALL_SHARE_DIV >= number;

    if (small_first && sweep(e, id, &e->small, SWEEP_SMALL, SMALL_WALK_MAX, now, reuse, old_req))
        return 1;
    if (sweep(e, id, &e->main, SWEEP_MAIN, EVICT_WALK_MAX, now, reuse, old_req))
        return 1;
    /* Nothing in main to take: a class whose chunks all belong to items on
     * probation (the value chunks of new large items are counted in their
     * header's class, so the ratio above cannot see them) still frees. */
    return !small_first &&
           sweep(e, id, &e->small, SWEEP_SMALL, SMALL_WALK_MAX, now, reuse, old_req);
}

/* How good a victim `it` is under policy p (higher is better). */
static uint64_t score(enum evict_policy p, const struct item *it, int64_t now)
{
    uint32_t a = __atomic_load_n(&it->access, __ATOMIC_RELAXED), now_s = item_atime_of(now);
    uint64_t idle = (now_s - (a >> 8)) & ITEM_ATIME_MASK;

    switch (p) {
    case EVICT_ALLKEYS_LFU:
    case EVICT_VOLATILE_LFU:
        return (uint64_t)(255 - lfu_decayed(a, now_s)) << 32 | idle;
    case EVICT_VOLATILE_TTL:
        return UINT64_MAX - (uint64_t)item_exptime(it);
    case EVICT_ALLKEYS_RANDOM:
    case EVICT_VOLATILE_RANDOM:
        return rnd();
    default:
        return idle;
    }
}

struct cand {
    char *slot;
    struct item *it;
    uint64_t score;
};

static int cand_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct cand *)a)->score, y = ((const struct cand *)b)->score;

    return x < y ? 1 : x > y ? -1 : 0;
}

/* Consider the item at slot as a victim: NULL if it is none; an expired
 * one is reclaimed on the spot (*done set). */
static struct item *consider(struct eclass *e, unsigned id, char *slot, bool vol, int64_t now,
                             void **reuse, size_t *old_req, int *done)
{
    struct item *it = in_moving(id, slot) ? NULL : slot_item(slot);
    uint64_t hv;
    int64_t exp;

    if (it == NULL)
        return NULL;
    exp = item_exptime(it);
    if (item_exptime_passed(exp, now)) {
        if (lock_cand(it, slot, &hv)) {
            if (!in_use(it))
                *done = take(e, id, it, hv, true, now, reuse, old_req);
            unlock_cand(hv);
        }
        return NULL;
    }
    return vol && exp == 0 ? NULL : it;
}

/*
 * The sampling policies: maxmemory-samples random chunks, plus the best
 * candidates kept from earlier calls (Redis's eviction pool, which makes the
 * approximation close to the exact policy), ranked by score; the best one
 * that can be taken is evicted and the next best are kept.
 */
static int sampled(struct eclass *e, unsigned id, enum evict_policy p, int64_t now,
                   void **reuse, size_t *old_req)
{
    uint32_t npages = slab_class_pages(id), per = slab_chunks_per_page(id);
    bool vol = evict_policy_volatile(p);
    bool random = p == EVICT_ALLKEYS_RANDOM || p == EVICT_VOLATILE_RANDOM;
    unsigned want = random ? 1 : evict_get_samples(), tries = want * (vol ? 8 : 2), got = 0;
    struct cand c[POOL_SIZE + 64];
    unsigned n = 0;
    int done = 0;
    uint64_t hv;

    if (npages == 0)
        return 0;
    for (unsigned i = 0; !random && i < e->npool; i++) {
        struct item *it = consider(e, id, e->pool[i], vol, now, reuse, old_req, &done);

        if (done)
            return done;
        if (it != NULL)
            c[n++] = (struct cand){e->pool[i], it, score(p, it, now)};
    }
    for (unsigned t = 0; t < tries && got < want; t++) {
        uint64_t r = rnd();
        char *slot = slab_class_page(id, (uint32_t)(r % npages)) +
                     (size_t)((r >> 32) % per) * slab_chunk_size(id);
        struct item *it = consider(e, id, slot, vol, now, reuse, old_req, &done);

        if (done)
            return done;
        if (it == NULL)
            continue;
        got++;
        c[n++] = (struct cand){slot, it, score(p, it, now)};
    }
    qsort(c, n, sizeof(c[0]), cand_cmp);
    e->npool = 0;
    for (unsigned i = 0; i < n; i++) {
        struct item *it = c[i].it;

        if (done == 0 && lock_cand(it, c[i].slot, &hv)) {
            if (!in_use(it) && (!vol || item_exptime(it) != 0))
                done = take(e, id, it, hv, do_item_is_dead(it, hv, now), now, reuse, old_req);
            unlock_cand(hv);
            if (done)
                continue;
        }
        /* Keep the rest (a slot may repeat; harmless). */
        if (!random && e->npool < POOL_SIZE)
            e->pool[e->npool++] = c[i].slot;
    }
    if (done)
        return done;
    /* The samples were busy or (volatile) had no TTL: look further. */
    return sweep(e, id, &e->main, vol ? SWEEP_TTL : SWEEP_ANY, FALLBACK_WALK_MAX, now, reuse,
                 old_req);
}

int evict_reclaim(unsigned id, int64_t now, void **reuse, size_t *old_req)
{
    struct eclass *e = &ecl[id];
    enum evict_policy p = evict_get_policy();
    int freed;

    pthread_mutex_lock(&e->lock);
    if (p == EVICT_S3FIFO)
        freed = s3fifo(e, id, now, reuse, old_req);
    else if (p == EVICT_NOEVICTION)
        freed = sweep(e, id, &e->main, SWEEP_DEAD, EVICT_WALK_MAX, now, reuse, old_req);
    else
        freed = sampled(e, id, p, now, reuse, old_req);
    pthread_mutex_unlock(&e->lock);
    return freed;
}

bool evict_may_retry(void)
{
    return evict_get_policy() != EVICT_NOEVICTION;
}

void evict_note_oom(unsigned id)
{
    struct eclass *e = &ecl[id];

    pthread_mutex_lock(&e->lock);
    e->outofmemory++;
    pthread_mutex_unlock(&e->lock);
}

/* ---- crawler ---- */

/* Whether an item looks dead, read without its stripe: expired, or linked
 * under an older flush generation of its stripe. Checked again locked. */
static bool looks_dead(const struct item *it, int64_t now)
{
    uint64_t meta = item_meta(it);
    unsigned gen = (unsigned)(meta >> ITEM_GEN_SHIFT) & ITEM_GEN_MASK;
    uint32_t cur = __atomic_load_n(&assoc_stripe_at(stripe_of(it))->flush_gen, __ATOMIC_RELAXED);

    return item_exptime_passed(item_exptime(it), now) || gen != (cur & ITEM_GEN_MASK);
}

/*
 * memcached's look at the LRU tail before an allocation. A hand is where
 * the class's next victim stands (memcached's tail): if the first item
 * there, past at most EVICT_TAIL_PEEK empty slots, is dead, it is
 * reclaimed and the hand moves past it, as its sweep would have done, so
 * the new item that takes the chunk stands behind the hand, in FIFO order.
 * A live item stops the look without moving the hand, so the policy sees
 * nothing of it. The look is lock-free; only a dead item found costs the
 * class's lock (trylocked: a busy class is left to its sweep) and its
 * stripe.
 */
static bool dead_at(unsigned id, struct hand h, int64_t now)
{
    uint32_t npages = slab_class_pages(id);

    for (unsigned n = 0; npages > 0 && n < EVICT_TAIL_PEEK; n++) {
        char *slot = hand_next(&h, id, npages);
        struct item *it = slot_item(slot);

        if (it != NULL)
            return slot == (char *)it && looks_dead(it, now);
    }
    return false;
}

/* The same under the class's lock, moving the hand. */
static int take_dead_at(struct eclass *e, unsigned id, struct hand *h, int64_t now,
                        void **reuse, size_t *old_req)
{
    uint32_t npages = slab_class_pages(id);
    int r = 0;

    for (unsigned n = 0; npages > 0 && n < EVICT_TAIL_PEEK; n++) {
        struct hand before = *h;
        char *slot = hand_next(h, id, npages);
        struct item *it = in_moving(id, slot) ? NULL : slot_item(slot);
        uint64_t hv;

        if (it == NULL)
            continue;
        if (slot == (char *)it && lock_cand(it, slot, &hv)) {
            if (!in_use(it) && do_item_is_dead(it, hv, now))
                r = take(e, id, it, hv, true, now, reuse, old_req);
            unlock_cand(hv);
        }
        if (r == 0) {
            __atomic_store_n(&h->page, before.page, __ATOMIC_RELAXED);
            __atomic_store_n(&h->slot, before.slot, __ATOMIC_RELAXED);
        }
        return r;
    }
    return 0;
}

int evict_reclaim_tail(unsigned id, int64_t now, void **reuse, size_t *old_req)
{
    struct eclass *e = &ecl[id];
    struct hand hands[2];
    int r = 0;

    for (int i = 0; i < 2; i++) {
        const struct hand *h = i == 0 ? &e->main : &e->small;

        hands[i].page = __atomic_load_n(&h->page, __ATOMIC_RELAXED);
        hands[i].slot = __atomic_load_n(&h->slot, __ATOMIC_RELAXED);
    }
    if (!dead_at(id, hands[0], now) && !dead_at(id, hands[1], now))
        return 0;
    if (pthread_mutex_trylock(&e->lock) != 0)
        return 0;
    r = take_dead_at(e, id, &e->main, now, reuse, old_req);
    if (r == 0)
        r = take_dead_at(e, id, &e->small, now, reuse, old_req);
    pthread_mutex_unlock(&e->lock);
    return r;
}

void evict_note_reused(unsigned id)
{
    __atomic_add_fetch(&ecl[id].reused, 1, __ATOMIC_RELAXED);
}

unsigned evict_crawl_step(unsigned id, unsigned max, int64_t now)
{
    struct eclass *e = &ecl[id];
    uint32_t npages;
    unsigned freed = 0, checked = 0;
    uint64_t slots = (uint64_t)max * CRAWL_SLOTS_PER_ITEM;

    pthread_mutex_lock(&e->lock);
    npages = slab_class_pages(id);
    /* Bounded by items examined, so a sparse class (a page of small chunks
     * holding a few items) is crossed in one step, and by slots. */
    for (uint64_t k = 0; npages > 0 && checked < max && k < slots; k++) {
        if (e->crawl.slot == 0 && (e->crawl.page == 0 || e->crawl.page >= npages)) {
            if (k > 0)
                break;      /* one pass a step at most */
            __atomic_add_fetch(&e->crawler_passes, 1, __ATOMIC_RELAXED);
        }
        char *slot = hand_next(&e->crawl, id, npages);
        struct item *it = in_moving(id, slot) ? NULL : slot_item(slot);
        uint64_t hv;

        /* Value chunks are reached through their item's own slot; a live
         * item costs two atomic loads, no lock. */
        if (it == NULL || slot != (char *)it)
            continue;
        checked++;
        if (!looks_dead(it, now) || !lock_cand(it, slot, &hv))
            continue;
        if (!in_use(it) && do_item_is_dead(it, hv, now)) {
            if (!(item_iflags(it) & ITEM_FETCHED))
                __atomic_add_fetch(&e->crawler_expired_unfetched, 1, __ATOMIC_RELAXED);
            /* Its chunk is marked, for `reclaimed` when a new item takes it. */
            if (do_item_unlink_keep(it, hv, true))
                item_release_dead(it);
            __atomic_add_fetch(&e->crawler_reclaimed, 1, __ATOMIC_RELAXED);
            freed++;
        }
        unlock_cand(hv);
    }
    __atomic_add_fetch(&e->crawler_checked, checked, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&e->lock);
    return freed;
}

/* ---- page moves: the eviction side (rebalance.c decides) ---- */

/* Whether page has a live item (or a chunk of one) without a TTL. Read
 * without locks, so only a hint: the clearing pass checks again. */
static bool page_has_untimed(unsigned id, const char *page, int64_t now)
{
    for (uint32_t i = 0; i < slab_chunks_per_page(id); i++) {
        struct item *it = slot_item((char *)page + (size_t)i * slab_chunk_size(id));

        if (it != NULL && item_exptime(it) == 0 && !looks_dead(it, now))
            return true;
    }
    return false;
}

bool evict_move_begin(unsigned id, uint32_t skip, bool ttl_only, int64_t now)
{
    struct eclass *e = &ecl[id];
    uint32_t npages, pi;
    bool ok = false;

    pthread_mutex_lock(&e->lock);
    npages = slab_class_pages(id);
    if (npages >= 2 && slab_moving_page(id) == NULL) {
        /* The page under the main hand: its items are the next to go (or
         * `skip` pages on). With ttl_only, the first from there whose items
         * all have a TTL. */
        pi = ((e->main.page < npages ? e->main.page : 0) + skip) % npages;
        for (uint32_t k = 1; ttl_only && page_has_untimed(id, slab_class_page(id, pi), now);
             k++) {
            if (k >= npages || k >= EVICT_TTL_PAGES_MAX) {
                pthread_mutex_unlock(&e->lock);
                return false;
            }
            pi = (pi + 1) % npages;
        }
        /* The pool forgets its candidates, which may lie in that page. */
        slab_move_begin(id, pi);
        e->npool = 0;
        ok = true;
    }
    pthread_mutex_unlock(&e->lock);
    return ok;
}

/* Live items in a page (a value chunk counts for its item), at most
 * `enough`: a lock-free hint, as page_has_untimed(). */
static uint32_t page_live(unsigned id, const char *page, int64_t now, uint32_t enough)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < slab_chunks_per_page(id) && n < enough; i++) {
        struct item *it = slot_item((char *)page + (size_t)i * slab_chunk_size(id));

        if (it != NULL && !looks_dead(it, now))
            n++;
    }
    return n;
}

bool evict_move_begin_spare(unsigned id, int64_t now)
{
    struct eclass *e = &ecl[id];
    uint32_t npages = slab_class_pages(id), start, best, best_n = UINT32_MAX;
    bool ok = false;

    if (npages < 2)
        return false;
    /* A chunked item's value chunks cannot move (only unchunked items are
     * rescued), and the hand's page may hold one while whole pages lie
     * free: a large value deleted or replaced leaves them so. The look
     * takes no lock (workers evicting here wait for the class's): a page
     * moved meanwhile only makes the choice a worse one. */
    start = best = __atomic_load_n(&e->main.page, __ATOMIC_RELAXED) % npages;
    for (uint32_t k = 0; k < npages && k < EVICT_SPARE_PAGES_MAX && best_n > 0; k++) {
        uint32_t pi = (start + k) % npages;
        uint32_t n = page_live(id, slab_class_page(id, pi), now, best_n);

        if (n < best_n) {
            best = pi;
            best_n = n;
        }
    }
    pthread_mutex_lock(&e->lock);
    if (slab_class_pages(id) >= 2 && slab_moving_page(id) == NULL) {
        slab_move_begin(id, best < slab_class_pages(id) ? best : 0);
        e->npool = 0;
        ok = true;
    }
    pthread_mutex_unlock(&e->lock);
    return ok;
}

/* An item of a page being moved that the policy would keep over its
 * next victim: one read since it was stored (under S3-FIFO, since the main
 * hand last passed it). The others of the page are as good victims as
 * any. */
static bool worth_keeping(const struct item *it)
{
    if (evict_get_policy() == EVICT_S3FIFO)
        return __atomic_load_n(&it->freq, __ATOMIC_RELAXED) > 0;
    return (item_iflags(it) & ITEM_FETCHED) != 0;
}

/* Free a chunk of class id outside the moving page, as an allocation
 * would: the policy's victim, so that an item of the page worth keeping
 * can move there. A page leaving a full class then costs the class its
 * coldest items, not the read ones among its own. Caller holds e->lock. */
static bool make_room(struct eclass *e, unsigned id, int64_t now)
{
    enum evict_policy p = evict_get_policy();
    size_t old_req = 0;

    if (p == EVICT_S3FIFO)
        return s3fifo(e, id, now, NULL, &old_req) != 0;
    if (p == EVICT_NOEVICTION)
        return false;
    return sampled(e, id, p, now, NULL, &old_req) != 0;
}

uint32_t evict_clear_moving_page(unsigned id, bool ttl_only, bool room, int64_t now,
                                 uint64_t *evicted, uint64_t *rescued)
{
    struct eclass *e = &ecl[id];
    uint32_t left;
    char *page;

    pthread_mutex_lock(&e->lock);
    page = slab_moving_page(id);
    for (uint32_t i = 0; page != NULL && i < slab_chunks_per_page(id); i++) {
        char *slot = page + (size_t)i * slab_chunk_size(id);
        struct item *it = slot_item(slot);
        uint64_t hv;

        /* Workers evicting in this class wait for the lock: let them in
         * now and then (the page stays out of their sweeps meanwhile). */
        if (room && i % 64 == 63) {
            pthread_mutex_unlock(&e->lock);
            pthread_mutex_lock(&e->lock);
        }
        if (it == NULL || !lock_cand(it, slot, &hv))
            continue;
        if (!in_use(it)) {
            /* A live item whose header is here moves (see evict_int.h);
             * what cannot is evicted, unless a volatile policy may not take
             * it (no TTL): then it keeps the page in its class (the caller
             * cancels). */
            if (do_item_is_dead(it, hv, now)) {
                do_item_unlink_keep(it, hv, false);
            } else if (slot == (char *)it &&
                       (do_item_rescue(it, hv) ||
                        (room && worth_keeping(it) && make_room(e, id, now) &&
                         do_item_rescue(it, hv)))) {
                (*rescued)++;
            } else if (!ttl_only || item_exptime(it) != 0) {
                (*evicted)++;
                if (watch_on(WATCH_EVICTIONS))
                    report_eviction(it, now);
                do_item_unlink_keep(it, hv, false);
            }
        }
        unlock_cand(hv);
    }
    left = slab_move_in_use(id);
    pthread_mutex_unlock(&e->lock);
    return left;
}

void evict_move_cancel(unsigned id)
{
    struct eclass *e = &ecl[id];

    pthread_mutex_lock(&e->lock);
    slab_move_cancel(id);
    pthread_mutex_unlock(&e->lock);
}

void evict_move_end(unsigned id, unsigned dst)
{
    struct eclass *e = &ecl[id];

    pthread_mutex_lock(&e->lock);
    slab_move_end(id, dst);
    pthread_mutex_unlock(&e->lock);
}

void evict_note_rescued(unsigned id, uint64_t n)
{
    struct eclass *e = &ecl[id];

    pthread_mutex_lock(&e->lock);
    e->rescued += n;
    pthread_mutex_unlock(&e->lock);
}

uint64_t evict_class_evictions(unsigned id)
{
    struct eclass *e = &ecl[id];
    uint64_t n;

    pthread_mutex_lock(&e->lock);
    n = e->evicted;
    pthread_mutex_unlock(&e->lock);
    return n;
}

void evict_crawler_pause(bool paused)
{
    pthread_mutex_lock(&crawl_lock);
    crawl_paused = paused;
    pthread_mutex_unlock(&crawl_lock);
}

static void crawl_wait(int64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&crawl_cond, &crawl_lock, &ts);
}

/* Each tick, a bounded step over every class (a class where a step found
 * nothing dead rests five ticks); no step holds a stripe longer than one
 * item. So a class is crawled at about 6800 items a second at least,
 * 40960 while it yields, and empty slots cost next to nothing: a key that
 * expires in a lightly filled class is gone within about 0.6 s (Redis
 * expects that within 2 s). */
static void *crawler_main(void *arg)
{
    unsigned rest[STORAGE_CLASS_MAX + 1] = {0};

    (void)arg;
    pthread_setname_np(pthread_self(), "kioku-crawler");
    pthread_mutex_lock(&crawl_lock);
    while (!crawl_stop) {
        crawl_wait(CRAWL_TICK_MS);
        if (crawl_stop)
            break;
        if (crawl_paused)
            continue;
        pthread_mutex_unlock(&crawl_lock);
        for (unsigned id = 1; id <= slab_class_count(); id++) {
            if (rest[id] > 0) {
                rest[id]--;
                continue;
            }
            if (evict_crawl_step(id, CRAWL_BATCH, clock_now_ms()) == 0)
                rest[id] = CRAWL_REST_TICKS;
        }
        pthread_mutex_lock(&crawl_lock);
    }
    pthread_mutex_unlock(&crawl_lock);
    return NULL;
}

/* ---- set-up, walk, stats ---- */

int evict_setup(size_t ghost_entries, char *errbuf, size_t errlen)
{
    size_t n = 1024;

    memset(ecl, 0, sizeof(ecl));
    for (unsigned i = 0; i <= STORAGE_CLASS_MAX; i++)
        pthread_mutex_init(&ecl[i].lock, NULL);
    while (n < ghost_entries && n < ((size_t)1 << 30))
        n <<= 1;
    ghost = calloc(n, sizeof(*ghost));
    if (ghost == NULL) {
        snprintf(errbuf, errlen, "out of memory for the eviction ghost (%zu entries)", n);
        return -1;
    }
    /* Write every page now. Untouched, they all read through the kernel's
     * shared zero page until written, and on a virtual machine with shadow
     * page tables each set's read of such a slot cost as much as the rest
     * of the set (measured: 1.9-3.1 us a set against 1.1-1.3 us). */
    for (size_t i = 0; i < n; i += 4096 / sizeof(*ghost))   /* a word a 4 KiB page */
        __atomic_store_n(&ghost[i], 0, __ATOMIC_RELAXED);
    ghost_mask = n - 1;
    crawl_stop = crawl_paused = false;
    crawler_running = false;
    return 0;
}

void evict_ghost_span(const void **base, size_t *bytes)
{
    *base = ghost;
    *bytes = ghost != NULL ? (ghost_mask + 1) * sizeof(*ghost) : 0;
}

int evict_start_crawler(char *errbuf, size_t errlen)
{
    pthread_condattr_t ca;

    pthread_mutex_lock(&crawl_lock);
    crawl_stop = false;     /* lru_crawler enable after a disable */
    pthread_mutex_unlock(&crawl_lock);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&crawl_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&crawler, NULL, crawler_main, NULL) != 0) {
        snprintf(errbuf, errlen, "cannot start the crawler thread");
        pthread_cond_destroy(&crawl_cond);
        return -1;
    }
    crawler_running = true;
    return 0;
}

void evict_stop_crawler(void)
{
    if (crawler_running) {
        pthread_mutex_lock(&crawl_lock);
        crawl_stop = true;
        pthread_cond_signal(&crawl_cond);
        pthread_mutex_unlock(&crawl_lock);
        pthread_join(crawler, NULL);
        pthread_cond_destroy(&crawl_cond);
        crawler_running = false;
    }
}

void evict_teardown(void)
{
    for (unsigned i = 0; i <= STORAGE_CLASS_MAX; i++)
        pthread_mutex_destroy(&ecl[i].lock);
    free(ghost);
    ghost = NULL;
}

/* Backwards from the main hand: items just behind it are the newest (new
 * items take the chunks the hand frees, or are carved after the last). */
void evict_walk(unsigned id, bool (*visit)(void *arg, const struct item *it), void *arg)
{
    uint32_t npages = slab_class_pages(id), per = slab_chunks_per_page(id);
    size_t size = slab_chunk_size(id);
    struct hand h;

    if (npages == 0)
        return;
    /* The class lock keeps the page list still (a page move changes it). */
    pthread_mutex_lock(&ecl[id].lock);
    npages = slab_class_pages(id);
    h = ecl[id].main;
    if (h.page >= npages)
        h.page = h.slot = 0;
    for (uint64_t n = (uint64_t)npages * per; n > 0; n--) {
        char *slot;
        struct item *it;
        uint64_t hv;
        bool more;

        if (h.slot == 0) {
            h.page = h.page == 0 ? npages - 1 : h.page - 1;
            h.slot = per;
        }
        h.slot--;
        slot = slab_class_page(id, h.page) + h.slot * size;
        it = slot_item(slot);
        if (it == NULL || slot != (char *)it)
            continue;
        /* A busy stripe is worth skipping in a listing, not waiting for. */
        if (!lock_cand(it, slot, &hv))
            continue;
        more = visit(arg, it);
        unlock_cand(hv);
        if (!more)
            break;
    }
    pthread_mutex_unlock(&ecl[id].lock);
}

void evict_class_stats(unsigned id, int64_t now, struct storage_class_stats *out)
{
    struct eclass *e = &ecl[id];
    uint32_t npages;

    pthread_mutex_lock(&e->lock);
    npages = slab_class_pages(id);
    out->number = __atomic_load_n(&e->number, __ATOMIC_RELAXED);
    out->number_small = __atomic_load_n(&e->nsmall, __ATOMIC_RELAXED);
    out->age_sec = 0;
    if (npages > 0 && out->number > 0) {
        /* The oldest of the next few items the main hand will reach. */
        struct hand h = e->main;

        for (unsigned n = 0; n < 16; n++) {
            char *slot = hand_next(&h, id, npages);
            struct item *it = in_moving(id, slot) ? NULL : slot_item(slot);

            if (it != NULL && item_idle_seconds(it, now) > out->age_sec)
                out->age_sec = item_idle_seconds(it, now);
        }
    }
    out->evicted = e->evicted;
    out->evicted_nonzero = e->evicted_nonzero;
    out->evicted_time = e->evicted_time;
    out->evicted_unfetched = e->evicted_unfetched;
    out->evicted_active = e->evicted_active;
    out->outofmemory = e->outofmemory;
    out->tailrepairs = 0;
    out->reclaimed = e->reclaimed + __atomic_load_n(&e->reused, __ATOMIC_RELAXED);
    out->expired_unfetched =
        e->expired_unfetched + __atomic_load_n(&e->crawler_expired_unfetched, __ATOMIC_RELAXED);
    out->crawler_reclaimed = __atomic_load_n(&e->crawler_reclaimed, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&e->lock);
}

void evict_totals(struct storage_stats *out)
{
    for (unsigned i = 1; i <= STORAGE_CLASS_MAX; i++) {
        struct eclass *e = &ecl[i];

        pthread_mutex_lock(&e->lock);
        out->evictions += e->evicted + e->rescued;
        out->evicted_unfetched += e->evicted_unfetched;
        out->evicted_active += e->evicted_active;
        out->expired_unfetched +=
            e->expired_unfetched + __atomic_load_n(&e->crawler_expired_unfetched, __ATOMIC_RELAXED);
        out->reclaimed += e->reclaimed + __atomic_load_n(&e->reused, __ATOMIC_RELAXED);
        out->crawler_reclaimed += __atomic_load_n(&e->crawler_reclaimed, __ATOMIC_RELAXED);
        out->crawler_items_checked += __atomic_load_n(&e->crawler_checked, __ATOMIC_RELAXED);
        out->lru_crawler_starts += __atomic_load_n(&e->crawler_passes, __ATOMIC_RELAXED);
        out->outofmemory += e->outofmemory;
        out->lrutail_reflocked += e->reflocked;
        pthread_mutex_unlock(&e->lock);
    }
}

void evict_stats_reset(void)
{
    for (unsigned i = 0; i <= STORAGE_CLASS_MAX; i++) {
        struct eclass *e = &ecl[i];

        pthread_mutex_lock(&e->lock);
        e->evicted = e->evicted_nonzero = e->evicted_time = 0;
        e->evicted_unfetched = e->evicted_active = e->outofmemory = 0;
        e->reclaimed = e->expired_unfetched = e->reflocked = e->rescued = 0;
        __atomic_store_n(&e->crawler_reclaimed, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&e->crawler_expired_unfetched, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&e->crawler_checked, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&e->crawler_passes, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&e->reused, 0, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&e->lock);
    }
}
