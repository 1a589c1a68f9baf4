/*
 * Slab page rebalancing: the mover thread, `slabs reassign`, and automove.
 *
 * A move asks evict.c to take the page under the source class's main hand
 * out of service (no chunk of it is handed out again), then clears it in
 * passes: each pass moves every live item in the page that no reader holds
 * to a free chunk of the class, as memcached rescues them (same CAS), or,
 * in a full class, to the chunk of the item the policy evicts instead; a
 * reader's item is left for the next pass, 1 ms later. When no chunk of the
 * page is in use, it is zeroed and listed in the destination class. Workers
 * never wait for a move: they only find one page fewer to allocate from.
 *
 * Automove looks once per window (1 s) at each class's evictions:
 *   1 (default): once a class has evicted in three windows in a row, and
 *     for as long as it goes on (of several, the one whose items leave
 *     youngest, then the one that evicted most), take up to ten pages a
 *     window from a class
 *     that evicted nothing and whose oldest items have been idle at least
 *     twice as long as the evicting class's, or that has more than two pages
 *     of free chunks; and when no class is starved so, balance the
 *     classes of a full cache by the hits a page buys in each
 *     (balance_decide());
 *   2 (aggressive, as memcached's): any eviction in a window moves pages
 *     from the class with the oldest items.
 * A decision stands for its window; it moves a page per 50 ms tick, at most
 * ten (a balancing move, as many as the receiver can fill), while the
 * source still has a page to spare.
 *
 * After the limit was lowered (cache_memlimit, CONFIG SET maxmemory) and
 * while more pages are held than it allows, a window with no automove
 * decision gives pages of a class with more than two pages of free chunks
 * back to the page pool (dst 0), as memcached's mover returns such pages to
 * its global pool and frees them. A full cache keeps its pages until items
 * are deleted or expire, as in memcached.
 *
 * A page taken for its class's free chunks (a spare class's, or one given
 * back) is the emptiest near the main hand, not the hand's own: a chunked
 * value's chunks cannot be rescued, so the hand's page could cost a live
 * large value while whole pages of the class lie free.
 *
 * A rescue does not wait for a window: an allocation whose class has
 * nothing it may evict (a large value's chunks in a cache full of small
 * items) moves a page itself, on the worker, with few passes and a few
 * pages tried, as the eviction policy allows. A page that will not empty
 * in time is given back to its class.
 */
#include "storage/rebalance.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "storage/evict.h"
#include "storage/evict_int.h"
#include "storage/slab.h"
#include "storage/storage.h"
#include "util/clock.h"

#define WINDOW_MS 1000
#define PAGES_PER_WINDOW 10     /* at most, one a 50 ms tick */
#define PASS_MS 1
#define STREAK 3
#define RESCUE_PAGES 6          /* pages one rescue may try to empty */
#define RESCUE_PAGES_PER_CLASS 3
#define RESCUE_PASSES 2         /* passes over each (1 ms apart) */

/* Module state, set up by rebalance_setup(); the request and counters are
 * guarded by lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static pthread_t mover;
static bool running_thread, stop, enabled;
static int req_src, req_dst;            /* a queued `slabs reassign`, src 0 none */
static bool moving;                     /* a move is under way */
static unsigned automove;               /* atomic */
static uint64_t moved, reassign_evictions, busy_items, rescues;
static uint64_t last_evicted[STORAGE_CLASS_MAX + 1];
/* Windows in a row each class evicted in: a new size's items spread over
 * several classes (at -f 1.10 each is 10 % wide), which take turns at
 * evicting most. */
static unsigned streak[STORAGE_CLASS_MAX + 1];

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Empty one page of src (begun already) in passes 1 ms apart, at most
 * max_passes, then give it to dst; on giving up, the page serves src
 * again. Counts the move and the items it evicted (for a rescue, in
 * `evictions` too). */
static bool move_page(unsigned src, unsigned dst, bool rescue, bool ttl_only, int64_t now,
                      unsigned max_passes)
{
    uint64_t ev = 0, resc = 0;
    bool done = false;

    for (unsigned pass = 0;; pass++) {
        /* A rescue is an allocation waiting on a worker: it frees the
         * page's own items rather than look for victims for each. */
        uint32_t left = evict_clear_moving_page(src, ttl_only, !rescue, now, &ev, &resc);

        if (left == 0) {
            done = true;
            break;
        }
        pthread_mutex_lock(&lock);
        busy_items += left;
        pthread_mutex_unlock(&lock);
        /* A reader still holds an item of the page (or, ttl_only, an item
         * without a TTL stays). */
        if (pass >= max_passes || __atomic_load_n(&stop, __ATOMIC_RELAXED))
            break;
        sleep_ms(PASS_MS);
        now = clock_now_ms();
    }
    if (done)
        evict_move_end(src, dst);
    else
        evict_move_cancel(src);
    if (rescue && ev > 0)
        evict_note_rescued(src, ev);
    pthread_mutex_lock(&lock);
    moved += done;
    reassign_evictions += ev;
    rescues += resc;
    pthread_mutex_unlock(&lock);
    return done;
}

bool rebalance_move_now(unsigned src, unsigned dst, int64_t now, unsigned max_passes)
{
    return evict_move_begin(src, 0, false, now) &&
           move_page(src, dst, false, false, now, max_passes);
}

bool rebalance_move_spare_now(unsigned src, unsigned dst, int64_t now, unsigned max_passes)
{
    return evict_move_begin_spare(src, now) &&
           move_page(src, dst, false, false, now, max_passes);
}

/*
 * Balance of a full cache whose classes all evict: a page should go where
 * it buys the most hits. A class's items stay about T = items / evictions
 * per second, and a byte of its last page earns about as many hits as its
 * marginal item is read, per chunk byte. If that item were read once per
 * T, the products T * chunk size would be equal at the best split; under
 * Zipf the read rate at the margin falls faster than 1 / T, and both a
 * model (Che's approximation of this workload) and bench/hitratio.sh put
 * the best split at equal T * chunk size^1.5. Pages go from the class with
 * the largest product to the one with the smallest until they meet (within
 * BALANCE_SLACK, never past each other). Small items thus stay longer than
 * large ones: more items, and more hits, from the same memory when how
 * often a key is read does not depend on its size. The products are
 * compared squared, T^2 * size^3, to need no square root.
 */
#define BALANCE_MIN_EVICTIONS 64    /* a window's evictions worth trusting */
#define BALANCE_SLACK 1.25
#define BALANCE_QUIET 3             /* windows a class that took a page is no source */

static unsigned took_page_window[STORAGE_CLASS_MAX + 1];
static unsigned gave_page_window[STORAGE_CLASS_MAX + 1];
/* Evictions a window, smoothed (each window weighs half). */
static double ev_rate[STORAGE_CLASS_MAX + 1];
static unsigned window_no;

/* A class that took a page lately is still filling it: its free chunks
 * are not spare. */
static bool filling(unsigned id)
{
    return took_page_window[id] != 0 && window_no - took_page_window[id] <= BALANCE_QUIET;
}

/* The class (other than dst) with the oldest items and a page to spare. */
static unsigned oldest_class(unsigned dst, int64_t now, uint64_t *age_out)
{
    unsigned best = 0;
    uint64_t best_age = 0;

    for (unsigned id = 1; id <= slab_class_count(); id++) {
        struct storage_class_stats cs;

        if (id == dst || slab_class_pages(id) < 2 || filling(id))
            continue;
        storage_slab_class_stats(id, now, &cs);
        if (best == 0 || cs.age_sec > best_age) {
            best = id;
            best_age = cs.age_sec;
        }
    }
    *age_out = best_age;
    return best;
}

/* A class with more than two pages of free chunks, other than dst. */
static unsigned spare_class(unsigned dst, int64_t now)
{
    for (unsigned id = 1; id <= slab_class_count(); id++) {
        struct storage_class_stats cs;

        if (id == dst || slab_class_pages(id) < 2 || filling(id))
            continue;
        storage_slab_class_stats(id, now, &cs);
        if (cs.free_chunks > 2ull * cs.chunks_per_page)
            return id;
    }
    return 0;
}

static unsigned mode_now(void)
{
    return __atomic_load_n(&automove, __ATOMIC_RELAXED);
}

/* At the limit, memcached's automover parks pages of a class with more
 * than 2.5 pages of free chunks that did not evict in the window, for any
 * class to take. */
static unsigned idle_spare_class(int64_t now)
{
    for (unsigned id = 1; id <= slab_class_count(); id++) {
        struct storage_class_stats cs;

        if (slab_class_pages(id) < 2 || filling(id) ||
            evict_class_evictions(id) != last_evicted[id])
            continue;
        storage_slab_class_stats(id, now, &cs);
        if (cs.free_chunks * 2 > 5ull * cs.chunks_per_page)
            return id;
    }
    return 0;
}

/* The balancing move of a window, if one is due: *pages pages from *src
 * to *dst. */
static void balance_decide(int64_t now, unsigned *src, unsigned *dst, unsigned *pages)
{
    double lo = 0, hi = 0;
    unsigned lo_id = 0, hi_id = 0, fill = 1;
    uint32_t lo_pages = 0, hi_pages = 0;

    if (!slab_at_limit())
        return;
    for (unsigned id = 1; id <= slab_class_count(); id++) {
        struct storage_class_stats cs;
        uint32_t np = slab_class_pages(id);
        double score;

        /* Evicting for a while, or its rate means nothing yet (a class
         * that just ran out of free chunks evicts little at first). */
        if (np == 0 || streak[id] < STREAK || ev_rate[id] < 1)
            continue;
        storage_slab_class_stats(id, now, &cs);
        /* Filling a page it was given, or short of items: not at its
         * steady state, so its T means nothing yet. */
        if (cs.free_chunks > cs.chunks_per_page || cs.number == 0)
            continue;
        double t = (double)cs.number / ev_rate[id], size = cs.chunk_size;

        score = t * t * size * size * size;
        if (ev_rate[id] >= BALANCE_MIN_EVICTIONS && window_no - gave_page_window[id] > 1 &&
            (lo_id == 0 || score < lo)) {
            lo = score;
            lo_id = id;
            lo_pages = np;
            /* Pages it can fill in two windows: more would lie idle. */
            fill = (unsigned)(2 * ev_rate[id] / cs.chunks_per_page);
        }
        if (np >= 2 && !filling(id) &&
            (hi_id == 0 || score > hi)) {
            hi = score;
            hi_id = id;
            hi_pages = np;
        }
    }
    if (lo_id == 0 || hi_id == 0 || lo_id == hi_id)
        return;
    /* T scales with the pages a class holds: move k pages while the
     * source, k pages poorer, still earns less a byte than the
     * destination, k pages richer. */
    unsigned k = 0;

    for (; k < PAGES_PER_WINDOW && (k == 0 || k < fill) && k + 1 < hi_pages; k++) {
        double shrink = (double)(hi_pages - k - 1) / hi_pages;
        double grow = (double)(lo_pages + k + 1) / lo_pages;

        if (hi * shrink * shrink < BALANCE_SLACK * BALANCE_SLACK * lo * grow * grow)
            break;
    }
    if (k == 0)
        return;
    *src = hi_id;
    *dst = lo_id;
    *pages = k;
    took_page_window[lo_id] = window_no;
    gave_page_window[hi_id] = window_no;
}

/* One automove window: choose a move, or none (src 0), and how many pages
 * it may move. */
static void automove_decide(unsigned mode, int64_t now, unsigned *src, unsigned *dst,
                            unsigned *pages, bool *spare)
{
    uint64_t top = 0, young = UINT64_MAX, ev[STORAGE_CLASS_MAX + 1] = {0};
    unsigned cand = 0, n = slab_class_count();

    *src = *dst = 0;
    *pages = PAGES_PER_WINDOW;
    *spare = false;
    window_no++;
    for (unsigned id = 1; id <= n; id++) {
        uint64_t total = evict_class_evictions(id);

        ev[id] = total - last_evicted[id];
        last_evicted[id] = total;
        streak[id] = ev[id] > 0 ? streak[id] + 1 : 0;
        /* Not while it fills a page it took, nor the window after it gave
         * one: the move itself evicted, to keep the page's hot items. */
        if (!filling(id) && window_no - gave_page_window[id] > 1)
            ev_rate[id] = streak[id] > 1 ? (ev_rate[id] + (double)ev[id]) / 2 : (double)ev[id];
        if (mode == 2 ? ev[id] > top : streak[id] >= STREAK) {
            uint64_t age = 0;

            /* The most starved: a class a size shift left with one page
             * evicts its items as soon as they come, while a wider one
             * beside it may evict more and keep them for seconds. */
            if (mode != 2) {
                struct storage_class_stats cs;

                storage_slab_class_stats(id, now, &cs);
                age = cs.age_sec;
                if (age > young || (age == young && ev[id] <= top))
                    continue;
            }
            young = age;
            top = ev[id];
            cand = id;
        }
    }
    if (cand == 0) {
        if (mode == 1)
            balance_decide(now, src, dst, pages);
        return;
    }
    if (mode == 2) {
        uint64_t age;

        *src = oldest_class(cand, now, &age);
    } else {
        struct storage_class_stats dcs;
        uint64_t age;
        unsigned old;

        storage_slab_class_stats(cand, now, &dcs);
        *src = spare_class(cand, now);
        *spare = *src != 0;
        old = oldest_class(cand, now, &age);
        if (*src == 0 && old != 0 && ev[old] == 0 && age >= 2 * dcs.age_sec && age > 0)
            *src = old;
    }
    /* The streak is kept: while the class goes on evicting, a page a window. */
    if (*src != 0)
        *dst = cand;
    else if (mode == 1)
        balance_decide(now, src, dst, pages);
}

static void *mover_main(void *arg)
{
    int64_t next_window = clock_now_ms() + WINDOW_MS;
    unsigned auto_src = 0, auto_dst = 0, auto_pages = 0, budget = 0, release_budget = 0;
    bool auto_spare = false;

    (void)arg;
    pthread_setname_np(pthread_self(), "kioku-slabmove");
    pthread_mutex_lock(&lock);
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        struct timespec ts;
        unsigned src = 0, dst = 0;
        bool spare = false;     /* src was chosen for its free chunks */
        int64_t now;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 50 * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        if (req_src == 0)
            pthread_cond_timedwait(&cond, &lock, &ts);
        if (__atomic_load_n(&stop, __ATOMIC_RELAXED))
            break;
        now = clock_now_ms();
        if (req_src != 0) {
            src = (unsigned)req_src;
            dst = (unsigned)req_dst;
            req_src = 0;
        } else if (now >= next_window) {
            unsigned mode = __atomic_load_n(&automove, __ATOMIC_RELAXED);

            next_window = now + WINDOW_MS;
            budget = release_budget = 0;
            auto_dst = 0;
            if (mode != 0) {
                pthread_mutex_unlock(&lock);
                automove_decide(mode, now, &auto_src, &auto_dst, &auto_pages, &auto_spare);
                pthread_mutex_lock(&lock);
                if (auto_dst != 0)
                    budget = auto_pages;
            }
            if (auto_dst == 0)
                release_budget = PAGES_PER_WINDOW;
        }
        /* A decision holds for its window: a page a tick while it lasts,
         * so a big shift of sizes is followed within seconds. */
        if (src == 0 && budget > 0 && slab_class_pages(auto_src) >= 2) {
            src = auto_src;
            dst = auto_dst;
            spare = auto_spare;
            budget--;
        }
        if (src == 0 && release_budget > 0) {
            release_budget--;
            pthread_mutex_unlock(&lock);
            if (slab_over_limit())
                src = spare_class(0, now);
            else if (mode_now() != 0 && slab_at_limit())
                src = idle_spare_class(now);
            pthread_mutex_lock(&lock);
            if (src == 0)
                release_budget = 0;
            spare = true;
        }
        if (src == 0)
            continue;
        moving = true;
        pthread_mutex_unlock(&lock);
        if (spare)
            rebalance_move_spare_now(src, dst, now, UINT32_MAX);
        else
            rebalance_move_now(src, dst, now, UINT32_MAX);
        pthread_mutex_lock(&lock);
        moving = false;
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int rebalance_setup(bool on, unsigned mode, char *errbuf, size_t errlen)
{
    pthread_condattr_t ca;

    enabled = on;
    moving = false;
    __atomic_store_n(&stop, false, __ATOMIC_RELAXED);
    req_src = req_dst = 0;
    moved = reassign_evictions = busy_items = rescues = 0;
    memset(last_evicted, 0, sizeof(last_evicted));
    memset(streak, 0, sizeof(streak));
    memset(took_page_window, 0, sizeof(took_page_window));
    memset(gave_page_window, 0, sizeof(gave_page_window));
    memset(ev_rate, 0, sizeof(ev_rate));
    window_no = 0;
    __atomic_store_n(&automove, mode, __ATOMIC_RELAXED);
    running_thread = false;
    if (!on)
        return 0;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&mover, NULL, mover_main, NULL) != 0) {
        snprintf(errbuf, errlen, "cannot start the slab mover thread");
        pthread_cond_destroy(&cond);
        return -1;
    }
    running_thread = true;
    return 0;
}

void rebalance_teardown(void)
{
    if (!running_thread)
        return;
    pthread_mutex_lock(&lock);
    __atomic_store_n(&stop, true, __ATOMIC_RELAXED);
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    pthread_join(mover, NULL);
    pthread_cond_destroy(&cond);
    running_thread = false;
}

/*
 * A page for class dst, taken now from the class whose items are idlest
 * (then the others, most pages first), for an allocation that found dst
 * with nothing to evict. Bounded: at most RESCUE_PAGES pages tried (round
 * robin over the classes, RESCUE_PAGES_PER_CLASS each), RESCUE_PASSES passes
 * each, so a page that cannot empty (a reader's item, one in the stripe the
 * caller holds, the caller's own chunks) costs a millisecond or two, not a
 * wait.
 */
bool rebalance_rescue(unsigned dst, int64_t now)
{
    enum evict_policy p = evict_get_policy();
    bool ttl_only = evict_policy_volatile(p);
    unsigned n = slab_class_count(), order[STORAGE_CLASS_MAX], cnt = 0;
    uint64_t age[STORAGE_CLASS_MAX + 1] = {0};

    if (!enabled || p == EVICT_NOEVICTION)
        return false;
    for (unsigned id = 1; id <= n; id++) {
        struct storage_class_stats cs;

        if (id == dst || slab_class_pages(id) < 2)
            continue;
        storage_slab_class_stats(id, now, &cs);
        age[id] = cs.age_sec;
        /* Insertion sort: idlest first, then more pages. */
        unsigned k = cnt++;
        for (; k > 0; k--) {
            unsigned o = order[k - 1];

            if (age[o] > age[id] ||
                (age[o] == age[id] && slab_class_pages(o) >= slab_class_pages(id)))
                break;
            order[k] = o;
        }
        order[k] = id;
    }
    /* The next page of a class that failed: a page fails for a reason of
     * its own (an item the caller's stripe guards, a reader's item), and
     * under a volatile policy the scan goes on from there. */
    for (unsigned k = 0, tries = 0; k < RESCUE_PAGES_PER_CLASS; k++) {
        for (unsigned i = 0; i < cnt && i < RESCUE_PAGES && tries < RESCUE_PAGES; i++) {
            uint32_t skip = k * (ttl_only ? EVICT_TTL_PAGES_MAX : 1);

            if (skip >= slab_class_pages(order[i]) ||
                !evict_move_begin(order[i], skip, ttl_only, now))
                continue;
            tries++;
            if (move_page(order[i], dst, true, ttl_only, now, RESCUE_PASSES))
                return true;
        }
    }
    return false;
}

/* ---- storage.h entry points ---- */

/* Of the classes a reported class is made of, the one holding the most
 * pages (the larger on a tie): the one in use. */
static int class_in(int shown)
{
    unsigned first, last, best;

    if (shown <= 0 || !slab_shown_range((unsigned)shown, &first, &last))
        return shown;
    best = last;
    for (unsigned k = first; k < last; k++)
        if (slab_class_pages(k) > slab_class_pages(best))
            best = k;
    return (int)best;
}

/* src and dst are reported class ids (memcached's), 0 the page pool, src
 * -1 any class. */
enum storage_reassign storage_slabs_reassign(int src, int dst)
{
    unsigned n = slab_class_count(), shown = slab_shown_count();
    enum storage_reassign r = STORAGE_REASSIGN_OK;

    if (!enabled)
        return STORAGE_REASSIGN_DISABLED;
    if (src == dst)
        return STORAGE_REASSIGN_SAME;
    /* 0: memcached's global page pool, the parked pages. */
    if (dst < 0 || (unsigned)dst > shown || (src != -1 && (src < 0 || (unsigned)src > shown)))
        return STORAGE_REASSIGN_BADCLASS;
    src = class_in(src);
    dst = class_in(dst);
    if (src == 0) {
        /* Nothing to empty: the page changes hands at once. */
        if (slab_parked_pages() < 2 || !slab_unpark((unsigned)dst))
            return STORAGE_REASSIGN_NOSPARE;
        pthread_mutex_lock(&lock);
        moved++;
        pthread_mutex_unlock(&lock);
        return STORAGE_REASSIGN_OK;
    }
    if (src == -1) {
        /* memcached's "any class": the one with the most pages, if one
         * has a page to spare. */
        uint32_t most = 1;

        for (unsigned id = 1; id <= n; id++) {
            /* Never a half of the destination's reported class. */
            if (slab_shown_of(id) != slab_shown_of((unsigned)dst) &&
                slab_class_pages(id) > most) {
                most = slab_class_pages(id);
                src = (int)id;
            }
        }
    }
    if (src == -1)
        return STORAGE_REASSIGN_BADCLASS;   /* as memcached: no class to pick */
    if (slab_class_pages((unsigned)src) < 2)
        return STORAGE_REASSIGN_NOSPARE;
    pthread_mutex_lock(&lock);
    if (moving || req_src != 0) {
        r = STORAGE_REASSIGN_BUSY;
    } else {
        req_src = src;
        req_dst = dst;
        pthread_cond_signal(&cond);
    }
    pthread_mutex_unlock(&lock);
    return r;
}

void storage_slabs_automove(unsigned mode)
{
    __atomic_store_n(&automove, mode, __ATOMIC_RELAXED);
}

void rebalance_stats(struct storage_stats *out)
{
    pthread_mutex_lock(&lock);
    out->slabs_moved = moved;
    out->slab_reassign_running = moving || req_src != 0;
    out->slab_reassign_evictions_nomem = reassign_evictions;
    out->slab_reassign_busy_items = busy_items;
    out->slab_reassign_rescues = rescues;
    out->slab_automove = __atomic_load_n(&automove, __ATOMIC_RELAXED);
    out->slab_reassign = enabled;
    pthread_mutex_unlock(&lock);
}
