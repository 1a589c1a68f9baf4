/*
 * Per-class LRU lists: linking, the tail walk that frees memory, and the
 * eviction statistics (kept under the class's LRU lock, which the walk holds
 * anyway, so counting costs no extra lock).
 *
 * The walk holds the LRU lock and trylocks each candidate's stripe, because
 * the allocating thread may already hold a stripe and stripes are otherwise
 * taken before the LRU lock. While the LRU lock is held no item can leave the
 * list, so a remembered candidate pointer stays valid; its state is checked
 * again under its stripe before it is evicted.
 */
#include "storage/lru.h"

#include <pthread.h>
#include <string.h>

#include "storage/assoc.h"
#include "storage/item.h"
#include "storage/slab.h"
#include "storage/storage.h"

struct lru {
    pthread_mutex_t lock;
    struct item *head;
    struct item *tail;
    uint64_t number;
    uint64_t evicted;
    uint64_t evicted_nonzero;
    uint64_t evicted_time;
    uint64_t evicted_unfetched;
    uint64_t evicted_active;
    uint64_t outofmemory;
    uint64_t reclaimed;
    uint64_t expired_unfetched;
    uint64_t reflocked;         /* tail items skipped because a reader held them */
} __attribute__((aligned(64)));

/* Module state, initialised by lru_setup(). */
static struct lru lrus[STORAGE_CLASS_MAX + 1];

void lru_setup(void)
{
    unsigned i;

    memset(lrus, 0, sizeof(lrus));
    for (i = 0; i <= STORAGE_CLASS_MAX; i++)
        pthread_mutex_init(&lrus[i].lock, NULL);
}

void lru_teardown(void)
{
    unsigned i;

    for (i = 0; i <= STORAGE_CLASS_MAX; i++)
        pthread_mutex_destroy(&lrus[i].lock);
}

unsigned lru_class_of(const struct item *it)
{
    return item_is_chunked(it) ? slab_largest() : it->clsid;
}

static void do_link(struct lru *l, struct item *it)
{
    it->prev = NULL;
    it->next = l->head;
    if (l->head != NULL)
        l->head->prev = it;
    l->head = it;
    if (l->tail == NULL)
        l->tail = it;
    l->number++;
}

static void do_unlink(struct lru *l, struct item *it)
{
    if (it->prev != NULL)
        it->prev->next = it->next;
    else
        l->head = it->next;
    if (it->next != NULL)
        it->next->prev = it->prev;
    else
        l->tail = it->prev;
    it->prev = it->next = NULL;
    l->number--;
}

void lru_link(struct item *it)
{
    struct lru *l = &lrus[lru_class_of(it)];

    pthread_mutex_lock(&l->lock);
    do_link(l, it);
    pthread_mutex_unlock(&l->lock);
}

void lru_unlink(struct item *it)
{
    struct lru *l = &lrus[lru_class_of(it)];

    pthread_mutex_lock(&l->lock);
    do_unlink(l, it);
    pthread_mutex_unlock(&l->lock);
}

void lru_unlink_locked(struct item *it)
{
    do_unlink(&lrus[lru_class_of(it)], it);
}

void lru_walk(unsigned id, bool (*visit)(void *arg, const struct item *it), void *arg)
{
    struct lru *l = &lrus[id];

    pthread_mutex_lock(&l->lock);
    for (const struct item *it = l->head; it != NULL && visit(arg, it); it = it->next) {
    }
    pthread_mutex_unlock(&l->lock);
}

static uint64_t refs(struct item *it)
{
    return __atomic_load_n(&it->refcount, __ATOMIC_ACQUIRE);
}

static uint8_t iflags_of(const struct item *it)
{
    return __atomic_load_n(&it->iflags, __ATOMIC_RELAXED);
}

/* Reclaim a dead item. Caller holds l->lock and the item's stripe. */
static bool reclaim(struct lru *l, struct item *it, uint64_t hv, bool keep)
{
    l->reclaimed++;
    if (!(iflags_of(it) & ITEM_FETCHED))
        l->expired_unfetched++;
    return do_item_unlink_lru_held(it, hv, keep);
}

/* Evict a live item. Caller holds l->lock and the item's stripe. */
static bool evict(struct lru *l, struct item *it, uint64_t hv, int64_t now, bool was_active,
                  bool keep)
{
    uint8_t fl = iflags_of(it);
    uint32_t t = item_atime_of(now);
    uint32_t at = __atomic_load_n(&it->atime, __ATOMIC_RELAXED);

    l->evicted++;
    if (!(fl & ITEM_FETCHED))
        l->evicted_unfetched++;
    if (was_active || (fl & ITEM_ACTIVE))
        l->evicted_active++;
    if (it->exptime != 0)
        l->evicted_nonzero++;
    l->evicted_time = t > at ? t - at : 0;
    return do_item_unlink_lru_held(it, hv, keep);
}

/* Evict the all-active fallback, if its stripe is free. Caller holds l->lock. */
static int evict_active(struct lru *l, struct item *it, uint64_t hv, int64_t now, void **reuse)
{
    int freed = 0;

    if (assoc_trylock(hv) != 0)
        return 0;
    if (refs(it) <= 1 && (iflags_of(it) & ITEM_LINKED)) {
        if (evict(l, it, hv, now, true, reuse != NULL && !item_is_chunked(it)))
            *reuse = it;
        freed = 1;
    }
    assoc_unlock(hv);
    return freed;
}

/*
 * Walk from the tail. The first dead item found is reclaimed at once; the
 * first evictable live one is kept (its stripe stays locked, so no reader can
 * take it meanwhile) and evicted only if no dead item turns up further on. If
 * every item seen was active, the oldest of them is evicted anyway
 * (evicted_active): a hot class must not fail allocations. Bounded by
 * LRU_WALK_MAX items. Holding the victim's stripe while trylocking others is
 * safe because the walk never blocks on a stripe.
 */
int lru_pull_tail(unsigned id, int64_t now, bool can_evict, void **reuse)
{
    struct lru *l = &lrus[id];
    struct item *it, *victim = NULL, *active = NULL;
    uint64_t victim_hv = 0, active_hv = 0;
    unsigned n;
    int freed = 0;
    bool keep;

    pthread_mutex_lock(&l->lock);
    it = l->tail;
    for (n = 0; it != NULL && n < LRU_WALK_MAX && freed == 0; n++) {
        struct item *prev = it->prev;
        uint64_t hv = assoc_hash(item_key(it), it->nkey);
        bool held = victim != NULL && assoc_stripe_index(hv) == assoc_stripe_index(victim_hv);

        if (!held && assoc_trylock(hv) != 0) {
            it = prev;
            continue;
        }
        keep = reuse != NULL && !item_is_chunked(it);
        if (refs(it) > 1) {
            l->reflocked++;   /* in use by a reader: never evicted */
        } else if (do_item_is_dead(it, hv, now)) {
            if (reclaim(l, it, hv, keep))
                *reuse = it;
            freed = 1;
        } else if (iflags_of(it) & ITEM_ACTIVE) {
            __atomic_and_fetch(&it->iflags, (uint8_t)~ITEM_ACTIVE, __ATOMIC_RELAXED);
            do_unlink(l, it);
            do_link(l, it);
            if (active == NULL) {
                active = it;
                active_hv = hv;
            }
        } else if (victim == NULL && can_evict) {
            victim = it;
            victim_hv = hv;
            held = true;        /* keep its stripe until the walk ends */
        }
        if (!held)
            assoc_unlock(hv);
        it = prev;
    }
    if (victim != NULL) {
        if (freed == 0) {
            keep = reuse != NULL && !item_is_chunked(victim);
            if (evict(l, victim, victim_hv, now, false, keep))
                *reuse = victim;
            freed = 1;
        }
        assoc_unlock(victim_hv);
    } else if (freed == 0 && can_evict && active != NULL) {
        freed = evict_active(l, active, active_hv, now, reuse);
    }
    pthread_mutex_unlock(&l->lock);
    return freed;
}

void lru_note_oom(unsigned id)
{
    struct lru *l = &lrus[id];

    pthread_mutex_lock(&l->lock);
    l->outofmemory++;
    pthread_mutex_unlock(&l->lock);
}

void lru_class_stats(unsigned id, int64_t now, struct storage_class_stats *out)
{
    struct lru *l = &lrus[id];

    pthread_mutex_lock(&l->lock);
    out->number = l->number;
    out->age_sec = 0;
    if (l->tail != NULL) {
        uint32_t t = item_atime_of(now);
        uint32_t at = __atomic_load_n(&l->tail->atime, __ATOMIC_RELAXED);

        out->age_sec = t > at ? t - at : 0;
    }
    out->evicted = l->evicted;
    out->evicted_nonzero = l->evicted_nonzero;
    out->evicted_time = l->evicted_time;
    out->evicted_unfetched = l->evicted_unfetched;
    out->evicted_active = l->evicted_active;
    out->outofmemory = l->outofmemory;
    out->tailrepairs = 0;
    out->reclaimed = l->reclaimed;
    out->expired_unfetched = l->expired_unfetched;
    pthread_mutex_unlock(&l->lock);
}

void lru_totals(struct storage_stats *out)
{
    unsigned i;

    for (i = 1; i <= STORAGE_CLASS_MAX; i++) {
        struct lru *l = &lrus[i];

        pthread_mutex_lock(&l->lock);
        out->evictions += l->evicted;
        out->evicted_unfetched += l->evicted_unfetched;
        out->evicted_active += l->evicted_active;
        out->expired_unfetched += l->expired_unfetched;
        out->reclaimed += l->reclaimed;
        out->outofmemory += l->outofmemory;
        out->lrutail_reflocked += l->reflocked;
        pthread_mutex_unlock(&l->lock);
    }
}

void lru_stats_reset(void)
{
    for (unsigned i = 0; i <= STORAGE_CLASS_MAX; i++) {
        struct lru *l = &lrus[i];
        pthread_mutex_lock(&l->lock);
        l->evicted = l->evicted_nonzero = l->evicted_time = 0;
        l->evicted_unfetched = l->evicted_active = l->outofmemory = 0;
        l->reclaimed = l->expired_unfetched = l->reflocked = 0;
        pthread_mutex_unlock(&l->lock);
    }
}
