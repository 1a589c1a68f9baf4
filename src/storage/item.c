/*
 * Items: memory layout, reference counting, CAS, expiry and the store
 * operations (get, store, delete, delta, touch, flush, scan).
 *
 * Layout (item.h has the header). A small item is one chunk: header, key,
 * value, "\r\n". An item whose header+key+value+CRLF exceeds SLAB_CHUNK_MAX
 * is chunked: its header chunk holds the key and then (4-aligned) a table of
 * 32-bit references to value chunks; each value chunk has a 32-byte header
 * naming its item (so the eviction sweep of any class can find the item a
 * chunk belongs to) and carries VALUE_PER_CHUNK bytes; every value chunk but
 * the last is a whole chunk of the largest class, the last comes from the
 * smallest class that fits what is left. The chunk classes follow from
 * nbytes alone, so nothing else is recorded.
 *
 * Ownership. item_alloc() hands out one reference; linking adds the hash
 * table's; whoever drops the last one frees the chunks. Readers take their
 * reference under the stripe lock, so with the stripe held a refcount of
 * "hash + mine" proves nobody else can look at the item (used by eviction
 * and by in-place incr/decr).
 *
 * Liveness. An item is dead when its exptime has passed or when it was linked
 * under an older flush generation of its stripe (flush_all bumps one counter
 * per stripe, not a walk over the items). The generation is kept apart from
 * the CAS because clients may choose a CAS (meta E flag). An item keeps the
 * low 8 bits of it; before a stripe's generation could wrap onto a stale
 * item's, assoc purges that stripe's stale items (see assoc_flush_now), so an
 * old item never looks live again. Dead items are unlinked when a lookup
 * meets them, when the crawler passes them, or when eviction needs memory.
 */
#include "storage/item.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "storage/assoc.h"
#include "storage/coll.h"
#include "storage/evict.h"
#include "storage/evict_int.h"
#include "storage/rebalance.h"
#include "storage/slab.h"
#include "storage/storage.h"
#include "util/clock.h"

#define HDR item_header_size()
#define VHDR sizeof(struct item)                    /* a value chunk's header */
#define VALUE_PER_CHUNK (SLAB_CHUNK_MAX - VHDR)
#define ALLOC_RETRIES 8
#define RESCUE_TRIES 2
/* In a free chunk: the crawler freed it from a dead item (item_release_dead). */
#define REFCOUNT_DEAD_MARK 0xdeadu
#define REL_EXPTIME_MAX (60 * 60 * 24 * 30)   /* memcached: 30 days */

/* Module state, set by item_setup_limits() before any request. */
struct item_layout item_layout;
static size_t size_max;
static size_t size_fit;         /* item_alloc_big(): half the memory limit */

void item_setup_limits(size_t item_size_max, size_t mem_limit, bool use_cas, int64_t epoch_ms)
{
    size_max = item_size_max;
    size_fit = mem_limit / 2;
    item_layout.cas_bytes = use_cas ? sizeof(uint64_t) : 0;
    item_layout.epoch_ms = epoch_ms;
}

static size_t align4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

static size_t item_ntotal(const struct item *it)
{
    return HDR + it->nkey + (size_t)it->nbytes + 2;
}

/* ---- chunked layout ---- */

static size_t nchunks_for(size_t total)
{
    return (total + VALUE_PER_CHUNK - 1) / VALUE_PER_CHUNK;
}

/* Offset of the chunk table from the start of the item. */
static size_t table_off(size_t nkey)
{
    return align4(HDR + nkey);
}

static size_t header_size(size_t nkey, size_t nchunks)
{
    return table_off(nkey) + nchunks * sizeof(uint32_t);
}

static uint32_t *chunk_table(const struct item *it)
{
    return (uint32_t *)(void *)((char *)(uintptr_t)it + table_off(it->nkey));
}

/* Bytes of value+CRLF in value chunk i of a value+CRLF of `total` bytes. */
static size_t chunk_len(size_t total, size_t i)
{
    size_t left = total - i * VALUE_PER_CHUNK;

    return left < VALUE_PER_CHUNK ? left : VALUE_PER_CHUNK;
}

static char *chunk_data(uint32_t ref)
{
    return (char *)slab_ptr(ref) + VHDR;
}

int item_value_iov(struct item *it, size_t off, struct iovec *iov, int max)
{
    size_t total = (size_t)it->nbytes + 2, i, n, nch;
    const uint32_t *tab;
    int filled = 0;

    if (off >= total || max <= 0)
        return 0;
    if (!item_is_chunked(it)) {
        iov[0].iov_base = item_value(it) + off;
        iov[0].iov_len = total - off;
        return 1;
    }
    tab = chunk_table(it);
    nch = nchunks_for(total);
    i = off / VALUE_PER_CHUNK;
    off %= VALUE_PER_CHUNK;
    for (; i < nch && filled < max; i++) {
        n = chunk_len(total, i);
        iov[filled].iov_base = chunk_data(tab[i]) + off;
        iov[filled].iov_len = n - off;
        filled++;
        off = 0;
    }
    return filled;
}

/* Copy between value+CRLF and a flat buffer, in either direction. */
static size_t value_copy(struct item *it, size_t off, char *buf, size_t n, bool to_item)
{
    struct iovec iov[8];
    size_t done = 0;
    int cnt, k;

    while (done < n) {
        cnt = item_value_iov(it, off + done, iov, 8);
        if (cnt == 0)
            break;
        for (k = 0; k < cnt && done < n; k++) {
            size_t len = iov[k].iov_len < n - done ? iov[k].iov_len : n - done;

            if (to_item)
                memcpy(iov[k].iov_base, buf + done, len);
            else
                memcpy(buf + done, iov[k].iov_base, len);
            done += len;
        }
    }
    return done;
}

size_t item_value_write(struct item *it, size_t off, const void *src, size_t n)
{
    return value_copy(it, off, (char *)(uintptr_t)src, n, true);
}

/* The iov walk needs a non-const item; reading never writes through it. */
size_t item_value_read(const struct item *it, size_t off, void *dst, size_t n)
{
    return value_copy((struct item *)(uintptr_t)it, off, dst, n, false);
}

/* Copy n bytes of src's value (from 0) into dst's value at doff. */
static void value_copy_item(struct item *dst, size_t doff, struct item *src, size_t n)
{
    struct iovec iov[8];
    size_t done = 0;
    int cnt, k;

    while (done < n) {
        cnt = item_value_iov(src, done, iov, 8);
        if (cnt == 0)
            break;
        for (k = 0; k < cnt && done < n; k++) {
            size_t len = iov[k].iov_len < n - done ? iov[k].iov_len : n - done;

            item_value_write(dst, doff + done, iov[k].iov_base, len);
            done += len;
        }
    }
}

/* ---- time ---- */

int64_t item_exptime_from_seconds(int64_t exptime, int64_t now)
{
    if (exptime == 0)
        return 0;
    if (exptime < 0)
        return ITEM_EXPIRED_MS;
    if (exptime <= REL_EXPTIME_MAX)
        return now + exptime * 1000;
    if (exptime > INT64_MAX / 1000)
        return INT64_MAX;
    if (exptime * 1000 <= now)
        return ITEM_EXPIRED_MS;
    return exptime * 1000;
}

uint32_t item_idle_seconds(const struct item *it, int64_t now)
{
    uint32_t at = __atomic_load_n(&it->access, __ATOMIC_RELAXED) >> 8;

    return (item_atime_of(now) - at) & ITEM_ATIME_MASK;
}

/* exptime (kioku ms, 0 never) as the 44-bit offset the header keeps. */
static uint64_t exp_rel(int64_t exptime)
{
    int64_t rel;

    if (exptime == 0)
        return 0;
    rel = exptime - item_layout.epoch_ms;
    if (rel <= 1)
        return 1;                       /* before start: long expired */
    if ((uint64_t)rel < ITEM_EXP_SECONDS)
        return (uint64_t)rel;
    /* Whole unix seconds, so an absolute time in seconds reads back exact;
     * fewer than 2^43 of them for any int64 of ms. */
    return ITEM_EXP_SECONDS | (uint64_t)(exptime / 1000 - item_layout.epoch_ms / 1000);
}

static void meta_store(struct item *it, uint64_t meta)
{
    __atomic_store_n(&it->meta, meta, __ATOMIC_RELAXED);
}

void item_set_exptime_unlinked(struct item *it, int64_t exptime)
{
    meta_store(it, (item_meta(it) & ~ITEM_EXP_MASK) | exp_rel(exptime));
}

/* ---- allocation and references ---- */

/* A chunk of class id, evicting from that class while memory is short. A
 * chunk the walk frees is handed to us directly, so a busy class cannot
 * starve this thread by taking every chunk it frees. When the class has
 * nothing to give, a page moves in from another class (rebalance.c). The
 * caller may hold one stripe. */
static void *alloc_chunk(unsigned id, size_t req, int64_t now)
{
    unsigned tries;
    void *p;

    for (tries = 0; tries < ALLOC_RETRIES; tries++) {
        void *reuse = NULL;

        size_t old_req = 0;

        /* As memcached, a dead item at the class's tail gives its chunk
         * before free memory is taken. */
        if (tries == 0 && evict_reclaim_tail(id, now, &reuse, &old_req) && reuse != NULL) {
            slab_requested_adjust(reuse, id, old_req, req);
            return reuse;
        }
        p = slab_alloc(id, req);
        if (p != NULL)
            return p;
        /* A fruitless sweep under noeviction (or a volatile policy with no
         * TTL left) stays fruitless; otherwise it may only have met busy
         * stripes: try again. */
        if (evict_reclaim(id, now, &reuse, &old_req) == 0 && !evict_may_retry())
            break;
        if (reuse != NULL) {
            slab_requested_adjust(reuse, id, old_req, req);
            return reuse;
        }
    }
    p = slab_alloc(id, req);
    /* Nothing here may go (e.g. a large value into a cache of small items):
     * take a page from another class. Another thread may take its chunks
     * first, hence a second try. */
    for (tries = 0; p == NULL && tries < RESCUE_TRIES && rebalance_rescue(id, now); tries++)
        p = slab_alloc(id, req);
    if (p == NULL)
        evict_note_oom(id);
    return p;
}

/* A chunk stops being an item (or value chunk) for the sweep before it
 * goes back to its free list. */
static void chunk_release(struct item *c, unsigned id, size_t req)
{
    __atomic_store_n(&c->iflags, 0, __ATOMIC_RELEASE);
    slab_free(c, id, req);
}

void item_release_dead(struct item *it)
{
    size_t req = item_ntotal(it);

    /* A free chunk's refcount is read by nobody but alloc_item(). */
    it->refcount = REFCOUNT_DEAD_MARK;
    chunk_release(it, it->clsid, req);
}

static void free_value_chunks(struct item *it, size_t upto)
{
    size_t total = (size_t)it->nbytes + 2, i;
    const uint32_t *tab = chunk_table(it);

    for (i = 0; i < upto; i++) {
        size_t len = chunk_len(total, i) + VHDR;

        chunk_release(slab_ptr(tab[i]), slab_clsid(len), len);
    }
}

size_t item_chunk_requested(const struct item *it)
{
    if (item_is_chunked(it))
        return header_size(it->nkey, nchunks_for((size_t)it->nbytes + 2));
    return item_ntotal(it);
}

static void value_chunk_init(struct item *vc, unsigned id, const struct item *owner);

/* Every block of a collection, newest first. */
static void free_blocks(struct item *it)
{
    struct coll_blocks *cb = item_typed_root(it);
    uint32_t r = cb->head;

    while (r != 0) {
        struct item *b = slab_ptr(r);
        uint32_t next = b->flags;

        item_block_free(b);
        r = next;
    }
    memset(cb, 0, sizeof(*cb));
}

struct item *item_block_alloc(size_t n, const struct item *owner, int64_t now)
{
    size_t req = VHDR + n;
    unsigned id = slab_clsid(req);
    struct item *b;

    if (id == 0 || n > UINT32_MAX)
        return NULL;
    b = alloc_chunk(id, req, now);
    if (b == NULL)
        return NULL;
    value_chunk_init(b, id, owner);
    __atomic_store_n(&b->access, (uint32_t)n, __ATOMIC_RELAXED);
    return b;
}

void item_block_free(struct item *b)
{
    chunk_release(b, b->clsid, VHDR + b->access);
}

static void item_free(struct item *it)
{
    if (item_is_typed(it))
        free_blocks(it);
    if (item_is_chunked(it))
        free_value_chunks(it, nchunks_for((size_t)it->nbytes + 2));
    chunk_release(it, it->clsid, item_chunk_requested(it));
}

/* A fresh value chunk of class id, naming its item. */
static void value_chunk_init(struct item *vc, unsigned id, const struct item *owner)
{
    /* The fields a sweep reads without a lock are written atomically. */
    vc->nbytes = vc->flags = vc->refcount = 0;
    vc->nkey = 0;
    vc->clsid = (uint8_t)id;
    __atomic_store_n(&vc->meta, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&vc->access, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&vc->freq, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&vc->h_next, slab_ref(owner), __ATOMIC_RELAXED);
    __atomic_store_n(&vc->iflags, ITEM_VALUE, __ATOMIC_RELEASE);
}

/* Take the header (and for a chunked item the value chunks). */
static struct item *alloc_layout(size_t nkey, size_t nbytes, int64_t now,
                                 enum item_alloc_status *st)
{
    size_t ntotal = HDR + nkey + nbytes + 2, total = nbytes + 2, nch, i, hsize;
    struct item *it;
    unsigned id;
    uint32_t *tab;

    if (ntotal <= SLAB_CHUNK_MAX) {
        id = slab_clsid(ntotal);
        it = alloc_chunk(id, ntotal, now);
        if (it == NULL)
            goto nomem;
        it->clsid = (uint8_t)id;
        __atomic_store_n(&it->iflags, 0, __ATOMIC_RELAXED);
        return it;
    }
    nch = nchunks_for(total);
    hsize = header_size(nkey, nch);
    id = slab_clsid(hsize);
    if (id == 0) {
        *st = ITEM_ALLOC_TOO_LARGE;
        return NULL;
    }
    it = alloc_chunk(id, hsize, now);
    if (it == NULL)
        goto nomem;
    it->clsid = (uint8_t)id;
    __atomic_store_n(&it->iflags, ITEM_CHUNKED, __ATOMIC_RELAXED);
    it->nkey = (uint8_t)nkey;
    it->nbytes = (uint32_t)nbytes;
    tab = chunk_table(it);
    for (i = 0; i < nch; i++) {
        size_t len = chunk_len(total, i) + VHDR;
        unsigned vid = slab_clsid(len);
        struct item *vc = alloc_chunk(vid, len, now);

        if (vc == NULL) {
            free_value_chunks(it, i);
            chunk_release(it, id, hsize);
            goto nomem;
        }
        value_chunk_init(vc, vid, it);
        tab[i] = slab_ref(vc);
    }
    return it;
nomem:
    *st = ITEM_ALLOC_NOMEM;
    return NULL;
}

static struct item *alloc_item(const char *key, size_t nkey, uint32_t flags,
                               int64_t exptime, size_t nbytes, int64_t now,
                               enum item_alloc_status *st)
{
    struct item *it;

    it = alloc_layout(nkey, nbytes, now, st);
    if (it == NULL)
        return NULL;
    if (it->refcount == REFCOUNT_DEAD_MARK)
        evict_note_reused(it->clsid);
    /* The chunk may just have been a value chunk or a collection's block,
     * whose owner field the sweep reads without a lock. */
    __atomic_store_n(&it->h_next, 0, __ATOMIC_RELAXED);
    it->nbytes = (uint32_t)nbytes;
    it->flags = flags;
    it->refcount = 1;
    meta_store(it, exp_rel(exptime));
    __atomic_store_n(&it->access, evict_access_init(now), __ATOMIC_RELAXED);
    __atomic_store_n(&it->freq, 0, __ATOMIC_RELAXED);
    it->nkey = (uint8_t)nkey;
    item_set_cas(it, 0);
    memcpy((char *)item_key(it), key, nkey);
    item_value_write(it, nbytes, "\r\n", 2);
    *st = ITEM_ALLOC_OK;
    return it;
}

struct item *item_alloc(const char *key, size_t nkey, uint32_t flags,
                        int64_t exptime, size_t nbytes, int64_t now,
                        enum item_alloc_status *st)
{
    if (nbytes > size_max || nkey > STORAGE_KEY_MAX) {
        *st = ITEM_ALLOC_TOO_LARGE;
        return NULL;
    }
    return alloc_item(key, nkey, flags, exptime, nbytes, now, st);
}

struct item *item_alloc_big(const char *key, size_t nkey, uint32_t flags,
                            int64_t exptime, size_t nbytes, size_t max, int64_t now,
                            enum item_alloc_status *st)
{
    if (nbytes > max || nbytes > ITEM_NBYTES_MAX || nkey > STORAGE_KEY_MAX) {
        *st = ITEM_ALLOC_TOO_LARGE;
        return NULL;
    }
    /* Taking it chunk by chunk would evict most of the cache before failing. */
    if (nbytes > size_fit) {
        *st = ITEM_ALLOC_NOMEM;
        return NULL;
    }
    return alloc_item(key, nkey, flags, exptime, nbytes, now, st);
}

void item_incref(struct item *it)
{
    __atomic_add_fetch(&it->refcount, 1, __ATOMIC_RELAXED);
}

/* The last reference frees. Acquire-release so the freeing thread sees every
 * write made by the others before they dropped theirs. */
void item_put(struct item *it)
{
    if (__atomic_sub_fetch(&it->refcount, 1, __ATOMIC_ACQ_REL) == 0)
        item_free(it);
}

/* ---- primitives: caller holds the key's stripe ---- */

uint64_t item_hash(const char *key, size_t nkey)
{
    return assoc_hash(key, nkey);
}

void item_prefetch(const uint64_t *hv, size_t n)
{
    assoc_prefetch(hv, n);
}

void item_lock(uint64_t hv)
{
    assoc_lock(hv);
}

void item_unlock(uint64_t hv)
{
    assoc_unlock(hv);
}

/* Two stripes, lower index first; see item.h. */
void item_lock2(uint64_t hv1, uint64_t hv2)
{
    unsigned a = assoc_stripe_index(hv1), b = assoc_stripe_index(hv2);

    if (a == b) {
        assoc_lock(hv1);
    } else if (a < b) {
        assoc_lock(hv1);
        assoc_lock(hv2);
    } else {
        assoc_lock(hv2);
        assoc_lock(hv1);
    }
}

void item_unlock2(uint64_t hv1, uint64_t hv2)
{
    assoc_unlock(hv1);
    if (assoc_stripe_index(hv1) != assoc_stripe_index(hv2))
        assoc_unlock(hv2);
}

_Static_assert(ASSOC_NSTRIPES == 64 * ITEM_LOCKSET_WORDS, "lock set size");

void item_lockset_add(struct item_lockset *set, uint64_t hv)
{
    unsigned idx = assoc_stripe_index(hv);
    set->bits[idx / 64] |= (uint64_t)1 << (idx % 64);
}

void item_lock_set(const struct item_lockset *set)
{
    /* Index order, the order item_lock2 uses too: no two callers deadlock. */
    for (unsigned w = 0; w < ITEM_LOCKSET_WORDS; w++)
        for (uint64_t b = set->bits[w]; b != 0; b &= b - 1)
            assoc_lock_at(w * 64 + (unsigned)__builtin_ctzll(b));
}

void item_lock_many(struct item_lockset *set, const uint64_t *hvs, size_t n)
{
    memset(set, 0, sizeof(*set));
    for (size_t i = 0; i < n; i++)
        item_lockset_add(set, hvs[i]);
    item_lock_set(set);
}

void item_unlock_many(const struct item_lockset *set)
{
    for (unsigned w = 0; w < ITEM_LOCKSET_WORDS; w++)
        for (uint64_t b = set->bits[w]; b != 0; b &= b - 1)
            assoc_unlock_at(w * 64 + (unsigned)__builtin_ctzll(b));
}

bool item_trylock_more(struct item_lockset *have, const struct item_lockset *want)
{
    struct item_lockset got;
    memset(&got, 0, sizeof(got));
    for (unsigned w = 0; w < ITEM_LOCKSET_WORDS; w++) {
        for (uint64_t b = want->bits[w] & ~have->bits[w]; b != 0; b &= b - 1) {
            unsigned idx = w * 64 + (unsigned)__builtin_ctzll(b);
            if (pthread_mutex_trylock(&assoc_stripe_at(idx)->lock) != 0) {
                item_unlock_many(&got);
                return false;
            }
            got.bits[w] |= (uint64_t)1 << (idx % 64);
        }
    }
    for (unsigned w = 0; w < ITEM_LOCKSET_WORDS; w++)
        have->bits[w] |= got.bits[w];
    return true;
}

void item_hold(const struct item_lockset *set)
{
    assoc_hold(set != NULL ? set->bits : NULL);
}

static unsigned gen_of(uint64_t meta)
{
    return (unsigned)(meta >> ITEM_GEN_SHIFT) & ITEM_GEN_MASK;
}

static bool is_flushed(const struct item *it, const struct assoc_stripe *s)
{
    return gen_of(item_meta(it)) != (s->flush_gen & ITEM_GEN_MASK);
}

bool do_item_is_dead(const struct item *it, uint64_t hv, int64_t now)
{
    return is_flushed(it, assoc_stripe(hv)) || item_exptime_passed(item_exptime(it), now);
}

struct item *do_item_find(const char *key, size_t nkey, uint64_t hv, int64_t now,
                          enum item_miss *miss)
{
    struct item *it = assoc_find(key, nkey, hv);
    enum item_miss why = ITEM_MISS_NONE;

    if (it == NULL)
        why = ITEM_MISS_ABSENT;
    else if (is_flushed(it, assoc_stripe(hv)))
        why = ITEM_MISS_FLUSHED;
    else if (item_exptime_passed(item_exptime(it), now))
        why = ITEM_MISS_EXPIRED;
    if (why == ITEM_MISS_FLUSHED || why == ITEM_MISS_EXPIRED) {
        do_item_unlink(it, hv);
        it = NULL;
    }
    if (it != NULL)
        item_incref(it);
    if (miss != NULL)
        *miss = why;
    return it;
}

struct item *do_item_find_value(const char *key, size_t nkey, uint64_t hv, int64_t now,
                                enum item_miss *miss)
{
    struct item *it = do_item_find(key, nkey, hv, now, miss);

    if (it != NULL && item_is_typed(it)) {
        item_put(it);
        it = NULL;
        if (miss != NULL)
            *miss = ITEM_MISS_ABSENT;
    }
    return it;
}

void do_item_link(struct item *it, uint64_t hv)
{
    struct assoc_stripe *s = assoc_stripe(hv);

    uint64_t meta = item_meta(it) & ITEM_EXP_MASK;

    item_set_cas(it, assoc_next_cas(s, assoc_stripe_index(hv)));
    meta |= (uint64_t)(s->flush_gen & ITEM_GEN_MASK) << ITEM_GEN_SHIFT;
    meta |= (uint64_t)assoc_stripe_index(hv) << ITEM_STRIPE_SHIFT;
    meta_store(it, meta);
    if ((meta & ITEM_EXP_MASK) != 0)
        s->nexpires++;
    s->bytes += item_ntotal(it);
    s->total_items++;
    assoc_insert(it, hv);
    item_incref(it);
    evict_on_link(it, hv);
    item_iflags_set(it, ITEM_LINKED);
}

static void unlink_common(struct item *it, uint64_t hv)
{
    struct assoc_stripe *s = assoc_stripe(hv);

    item_iflags_clear(it, ITEM_LINKED);
    if (is_flushed(it, s))
        s->stale--;
    else if (item_exptime(it) != 0)
        s->nexpires--;
    s->bytes -= item_ntotal(it);
    assoc_delete(it, hv);
    evict_on_unlink(it);
}

void do_item_set_exptime(struct item *it, uint64_t hv, int64_t exptime)
{
    struct assoc_stripe *s = assoc_stripe(hv);
    uint64_t meta = item_meta(it);

    if ((item_iflags(it) & ITEM_LINKED) && !is_flushed(it, s))
        s->nexpires += (uint64_t)(exptime != 0) - (uint64_t)((meta & ITEM_EXP_MASK) != 0);
    meta_store(it, (meta & ~ITEM_EXP_MASK) | exp_rel(exptime));
}

void do_item_unlink(struct item *it, uint64_t hv)
{
    if (!(item_iflags(it) & ITEM_LINKED))
        return;
    unlink_common(it, hv);
    item_put(it);
}

bool do_item_unlink_keep(struct item *it, uint64_t hv, bool keep)
{
    if (!(item_iflags(it) & ITEM_LINKED))
        return false;
    unlink_common(it, hv);
    if (!keep || item_is_chunked(it) || item_is_typed(it)) {
        item_put(it);
        return false;
    }
    if (__atomic_sub_fetch(&it->refcount, 1, __ATOMIC_ACQ_REL) == 0) {
        __atomic_store_n(&it->iflags, 0, __ATOMIC_RELEASE);
        return true;
    }
    return false;   /* a reader still holds it; it frees on their put */
}

void do_item_replace(struct item *old, struct item *new_it, uint64_t hv)
{
    if (old != NULL)
        do_item_unlink(old, hv);
    do_item_link(new_it, hv);
}

bool do_item_rescue(struct item *it, uint64_t hv)
{
    uint8_t keep = item_iflags(it) & (ITEM_FETCHED | ITEM_STALE | ITEM_TOKEN);
    size_t req = item_ntotal(it);
    uint64_t cas = item_cas(it);
    struct item *n;

    if (item_is_chunked(it) || !(item_iflags(it) & ITEM_LINKED))
        return false;
    n = slab_alloc_free(it->clsid, req);   /* never an eviction, never a new page */
    if (n == NULL)
        return false;
    /* As item_alloc writes a header: what the sweep reads, atomically. */
    n->clsid = it->clsid;
    __atomic_store_n(&n->iflags, 0, __ATOMIC_RELAXED);
    n->h_next = 0;
    n->nbytes = it->nbytes;
    n->flags = it->flags;
    n->refcount = 1;
    meta_store(n, item_meta(it) & ITEM_EXP_MASK);
    __atomic_store_n(&n->access, __atomic_load_n(&it->access, __ATOMIC_RELAXED),
                     __ATOMIC_RELAXED);
    __atomic_store_n(&n->freq, __atomic_load_n(&it->freq, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    n->nkey = it->nkey;
    memcpy((char *)item_key(n), item_key(it), req - HDR);
    do_item_unlink(it, hv);
    do_item_link(n, hv);
    item_set_cas(n, cas);
    item_iflags_set(n, keep);
    assoc_stripe(hv)->total_items--;   /* the same item, not a new one */
    item_put(n);
    return true;
}

void do_item_bump(struct item *it, int64_t now)
{
    /* Most hits find the bit set: skip the locked read-modify-write. */
    if (!(item_iflags(it) & ITEM_FETCHED))
        item_iflags_set(it, ITEM_FETCHED);
    /* And most find the access count full and the access time current:
     * then, outside the LFU policies, there is nothing to write. */
    if (__atomic_load_n(&it->freq, __ATOMIC_RELAXED) >= 3 &&
        __atomic_load_n(&it->access, __ATOMIC_RELAXED) >> 8 == item_atime_of(now) &&
        !evict_lfu_active())
        return;
    evict_on_hit(it, now);
}

/* ---- operations ---- */

struct item *item_get(const char *key, size_t nkey, int64_t now, enum item_miss *miss)
{
    return item_get_hashed(key, nkey, item_hash(key, nkey), now, miss);
}

struct item *item_get_hashed(const char *key, size_t nkey, uint64_t hv, int64_t now,
                             enum item_miss *miss)
{
    struct item *it;

    item_lock(hv);
    it = do_item_find_value(key, nkey, hv, now, miss);
    if (it != NULL)
        do_item_bump(it, now);
    item_unlock(hv);
    return it;
}

struct item *item_get_any(const char *key, size_t nkey, int64_t now, enum item_miss *miss)
{
    return item_get_any_hashed(key, nkey, item_hash(key, nkey), now, miss);
}

struct item *item_get_any_hashed(const char *key, size_t nkey, uint64_t hv, int64_t now,
                                 enum item_miss *miss)
{
    struct item *it;

    item_lock(hv);
    it = do_item_find(key, nkey, hv, now, miss);
    if (it != NULL)
        do_item_bump(it, now);
    item_unlock(hv);
    return it;
}

struct item *item_get_touch(const char *key, size_t nkey, int64_t exptime,
                            int64_t now, enum item_miss *miss)
{
    uint64_t hv = item_hash(key, nkey);
    struct item *it;

    item_lock(hv);
    it = do_item_find_value(key, nkey, hv, now, miss);
    if (it != NULL) {
        do_item_set_exptime(it, hv, exptime);
        do_item_bump(it, now);
    }
    item_unlock(hv);
    return it;
}

enum item_result item_touch_cls(const char *key, size_t nkey, int64_t exptime, int64_t now,
                                unsigned *cls)
{
    struct item *it = item_get_touch(key, nkey, exptime, now, NULL);

    if (it == NULL)
        return ITEM_NOT_FOUND;
    if (cls != NULL)
        *cls = item_class_id(it);
    item_put(it);
    return ITEM_TOUCHED;
}

enum item_result item_touch(const char *key, size_t nkey, int64_t exptime, int64_t now)
{
    return item_touch_cls(key, nkey, exptime, now, NULL);
}

/* APPEND/PREPEND: link a new item holding both values in place of old.
 * Caller holds the stripe; item_alloc() only trylocks other stripes. */
static enum item_result do_concat(struct item *old, struct item *it, bool append,
                                  uint64_t hv, int64_t now, uint64_t *cas_out)
{
    enum item_alloc_status st;
    size_t n = (size_t)old->nbytes + it->nbytes;
    struct item *nit;

    nit = item_alloc(item_key(old), old->nkey, old->flags, item_exptime(old), n, now, &st);
    if (nit == NULL)
        return st == ITEM_ALLOC_TOO_LARGE ? ITEM_TOO_LARGE : ITEM_NOMEM;
    if (append) {
        value_copy_item(nit, 0, old, old->nbytes);
        value_copy_item(nit, old->nbytes, it, it->nbytes);
    } else {
        value_copy_item(nit, 0, it, it->nbytes);
        value_copy_item(nit, it->nbytes, old, old->nbytes);
    }
    do_item_replace(old, nit, hv);
    *cas_out = item_cas(nit);
    item_put(nit);
    return ITEM_STORED;
}

/* The decision table of item_store(). Caller holds the stripe; old is the
 * live item under the key (referenced) or NULL. */
static enum item_result do_store(struct item *it, struct item *old, enum store_op op,
                                 uint64_t cas, uint64_t hv, int64_t now, uint64_t *cas_out)
{
    /* A collection is no memcached value: only set overwrites it (as
     * Redis's SET does) and add finds the key taken; to the other
     * operations it is absent, and nothing else may be linked beside it. */
    if (old != NULL && item_is_typed(old) && op != STORE_ADD && (op != STORE_SET || cas != 0))
        return op == STORE_CAS || cas != 0 ? ITEM_NOT_FOUND : ITEM_NOT_STORED;
    if (op == STORE_CAS || cas != 0) {
        if (old == NULL)
            return ITEM_NOT_FOUND;
        if (item_cas(old) != cas)
            return ITEM_EXISTS;
    }
    switch (op) {
    case STORE_ADD:
        if (old != NULL) {
            do_item_bump(old, now);
            return ITEM_NOT_STORED;
        }
        break;
    case STORE_REPLACE:
        if (old == NULL)
            return ITEM_NOT_STORED;
        break;
    case STORE_APPEND:
    case STORE_PREPEND:
        if (old == NULL)
            return ITEM_NOT_STORED;
        return do_concat(old, it, op == STORE_APPEND, hv, now, cas_out);
    case STORE_SET:
    case STORE_CAS:
        break;
    }
    do_item_replace(old, it, hv);
    *cas_out = item_cas(it);
    return ITEM_STORED;
}

enum item_result item_store(struct item *it, enum store_op op, uint64_t cas,
                            int64_t now, uint64_t *cas_out)
{
    uint64_t hv = item_hash(item_key(it), it->nkey);
    uint64_t newcas = 0;
    enum item_result res;
    struct item *old;

    item_lock(hv);
    old = do_item_find(item_key(it), it->nkey, hv, now, NULL);
    res = do_store(it, old, op, cas, hv, now, &newcas);
    if (old != NULL)
        item_put(old);
    item_unlock(hv);
    if (cas_out != NULL && res == ITEM_STORED)
        *cas_out = newcas;
    return res;
}

enum item_result item_delete(const char *key, size_t nkey, uint64_t cas, int64_t now)
{
    return item_delete_cls(key, nkey, cas, now, NULL);
}

enum item_result item_delete_cls(const char *key, size_t nkey, uint64_t cas, int64_t now,
                                 unsigned *cls)
{
    uint64_t hv = item_hash(key, nkey);
    enum item_result res = ITEM_DELETED;
    struct item *it;

    item_lock(hv);
    it = do_item_find(key, nkey, hv, now, NULL);
    if (it == NULL) {
        res = ITEM_NOT_FOUND;
    } else {
        if (cls != NULL)
            *cls = item_class_id(it);
        if (cas != 0 && cas != item_cas(it))
            res = ITEM_EXISTS;
        else
            do_item_unlink(it, hv);
        item_put(it);
    }
    item_unlock(hv);
    return res;
}

/* ---- incr/decr ---- */

/*
 * Read the value the way memcached's incr does (strtoull, then whitespace or
 * the end of the value): leading white space, an optional sign, decimal
 * digits up to 2^64-1, then anything after a white-space character is
 * ignored. A '-' is accepted only where strtoull's wrap-around leaves a
 * value below 2^63, as memcached does. Looks at no more than 128 bytes.
 */
bool item_parse_u64(const struct item *it, uint64_t *out)
{
    char buf[128];
    size_t n = item_value_read(it, 0, buf, it->nbytes < sizeof(buf) ? it->nbytes : sizeof(buf));
    size_t i = 0, ndig = 0;
    bool neg = false;
    uint64_t v = 0;

    while (i < n && (buf[i] == ' ' || (buf[i] >= '\t' && buf[i] <= '\r')))
        i++;
    if (i < n && (buf[i] == '+' || buf[i] == '-'))
        neg = buf[i++] == '-';
    for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++, ndig++) {
        unsigned d = (unsigned)(buf[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;                       /* ERANGE */
        v = v * 10 + d;
    }
    if (ndig == 0)
        return false;
    if (i == n && n == sizeof(buf) && it->nbytes > n)
        return false;                           /* digits run past what we read */
    if (i < n && !(buf[i] == ' ' || (buf[i] >= '\t' && buf[i] <= '\r')))
        return false;
    if (neg) {
        v = (uint64_t)0 - v;
        if (v > (uint64_t)INT64_MAX)
            return false;
    }
    *out = v;
    return true;
}

/* Absent key: create it holding `initial` (binary protocol's incr). */
static enum item_result do_delta_create(const char *key, size_t nkey, uint64_t initial,
                                        int64_t exptime, uint64_t hv, int64_t now,
                                        uint64_t *value_out, uint64_t *cas_out)
{
    enum item_alloc_status st;
    char buf[24];
    int len = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)initial);
    struct item *it = item_alloc(key, nkey, 0, exptime, (size_t)len, now, &st);

    if (it == NULL)
        return ITEM_NOMEM;
    item_value_write(it, 0, buf, (size_t)len);
    do_item_link(it, hv);
    *value_out = initial;
    *cas_out = item_cas(it);
    item_put(it);
    return ITEM_DELTA_OK;
}

/* Apply the delta to a live item (referenced by the caller, stripe held). */
static enum item_result do_delta(struct item *it, bool incr, uint64_t delta, uint64_t hv,
                                 int64_t now, uint64_t *value_out, uint64_t *cas_out)
{
    enum item_alloc_status st;
    struct item *nit;
    uint64_t v;
    char buf[24];
    int len;

    if (!item_parse_u64(it, &v))
        return ITEM_NON_NUMERIC;
    if (incr)
        v += delta;             /* wraps mod 2^64 */
    else
        v = v < delta ? 0 : v - delta;
    len = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    *value_out = v;
    /* hash's reference + ours, stripe held: no reader can see the bytes
     * change. A shorter number is padded with spaces, as memcached does. */
    if ((size_t)len <= it->nbytes && __atomic_load_n(&it->refcount, __ATOMIC_ACQUIRE) == 2) {
        item_value_write(it, 0, buf, (size_t)len);
        for (size_t pad = (size_t)len; pad < it->nbytes; pad++)
            item_value_write(it, pad, " ", 1);
        item_set_cas(it, assoc_next_cas(assoc_stripe(hv), assoc_stripe_index(hv)));
        *cas_out = item_cas(it);
        return ITEM_DELTA_OK;
    }
    nit = item_alloc(item_key(it), it->nkey, it->flags, item_exptime(it), (size_t)len, now,
                     &st);
    if (nit == NULL)
        return ITEM_NOMEM;
    item_value_write(nit, 0, buf, (size_t)len);
    do_item_replace(it, nit, hv);
    *cas_out = item_cas(nit);
    item_put(nit);
    return ITEM_DELTA_OK;
}

bool do_item_write_sole(struct item *it, uint64_t hv, size_t off, const void *src, size_t n)
{
    /* Readers take their reference under the stripe, which we hold. */
    if (off + n > it->nbytes || __atomic_load_n(&it->refcount, __ATOMIC_ACQUIRE) != 2)
        return false;
    item_value_write(it, off, src, n);
    item_set_cas(it, assoc_next_cas(assoc_stripe(hv), assoc_stripe_index(hv)));
    return true;
}

enum item_result item_delta(const char *key, size_t nkey, bool incr, uint64_t delta,
                            uint64_t cas, bool create, uint64_t initial, int64_t exptime,
                            int64_t now, uint64_t *value_out, uint64_t *cas_out)
{
    return item_delta_cls(key, nkey, incr, delta, cas, create, initial, exptime, now,
                          value_out, cas_out, NULL);
}

enum item_result item_delta_cls(const char *key, size_t nkey, bool incr, uint64_t delta,
                                uint64_t cas, bool create, uint64_t initial, int64_t exptime,
                                int64_t now, uint64_t *value_out, uint64_t *cas_out,
                                unsigned *cls)
{
    uint64_t hv = item_hash(key, nkey), v = 0, c = 0;
    enum item_result res;
    struct item *it;

    item_lock(hv);
    it = do_item_find(key, nkey, hv, now, NULL);
    if (it != NULL && item_is_typed(it)) {
        /* Absent to incr/decr, but not to be created beside. */
        res = ITEM_NOT_FOUND;
        item_put(it);
    } else if (it == NULL) {
        if (create && cas == 0)
            res = do_delta_create(key, nkey, initial, exptime, hv, now, &v, &c);
        else
            res = ITEM_NOT_FOUND;
    } else {
        if (cls != NULL)
            *cls = item_class_id(it);
        if (cas != 0 && cas != item_cas(it))
            res = ITEM_EXISTS;
        else
            res = do_delta(it, incr, delta, hv, now, &v, &c);
        item_put(it);
    }
    item_unlock(hv);
    if (res == ITEM_DELTA_OK) {
        if (value_out != NULL)
            *value_out = v;
        if (cas_out != NULL)
            *cas_out = c;
    }
    return res;
}

/* ---- warm restart ---- */

/* A collection's block list as a damaged file could leave it: every link a
 * chunk of the region, a block naming this owner and its predecessor, of
 * the class its size needs, no more blocks than the root counts. */
static bool blocks_valid(struct item *it)
{
    const struct coll_blocks *cb = item_typed_root(it);
    uint32_t r = cb->head, prev = 0, n = 0;

    while (r != 0) {
        const struct item *b = slab_ref_valid(r) ? slab_ptr(r) : NULL;

        if (b == NULL || ++n > cb->count || item_iflags(b) != ITEM_VALUE ||
            b->h_next != slab_ref(it) || b->nbytes != prev ||
            b->clsid != slab_clsid((size_t)VHDR + b->access))
            return false;
        prev = r;
        r = b->flags;
    }
    return n == cb->count;
}

bool item_restore_valid(struct item *it, unsigned id, uint32_t chunk_size, int64_t now)
{
    uint8_t f = item_iflags(it);
    size_t total = (size_t)it->nbytes + 2;

    if (!(f & ITEM_LINKED) || (f & ITEM_VALUE) || it->clsid != id || it->nkey == 0 ||
        it->nkey > STORAGE_KEY_MAX || it->nbytes > size_max ||
        item_exptime_passed(item_exptime(it), now))
        return false;
    if (f & ITEM_TYPED)
        return !(f & ITEM_CHUNKED) && item_ntotal(it) <= chunk_size && blocks_valid(it);
    if (!(f & ITEM_CHUNKED))
        return item_ntotal(it) <= chunk_size;
    if (header_size(it->nkey, nchunks_for(total)) > chunk_size)
        return false;
    const uint32_t *tab = chunk_table(it);
    for (size_t i = 0; i < nchunks_for(total); i++) {
        struct item *vc = slab_ref_valid(tab[i]) ? slab_ptr(tab[i]) : NULL;

        if (vc == NULL || item_iflags(vc) != ITEM_VALUE || vc->h_next != slab_ref(it) ||
            vc->clsid != slab_clsid(chunk_len(total, i) + VHDR))
            return false;
    }
    return true;
}

void item_restore_claim(struct item *it, void (*fn)(void *chunk, unsigned id, size_t req, void *arg),
                        void *arg)
{
    size_t total = (size_t)it->nbytes + 2;

    fn(it, it->clsid, item_chunk_requested(it), arg);
    if (item_is_typed(it)) {
        for (uint32_t r = ((const struct coll_blocks *)item_typed_root(it))->head; r != 0;) {
            struct item *b = slab_ptr(r);

            r = b->flags;
            fn(b, b->clsid, VHDR + b->access, arg);
        }
        return;
    }
    if (!item_is_chunked(it))
        return;
    const uint32_t *tab = chunk_table(it);
    for (size_t i = 0; i < nchunks_for(total); i++) {
        size_t len = chunk_len(total, i) + VHDR;

        fn(slab_ptr(tab[i]), slab_clsid(len), len, arg);
    }
}

void do_item_link_restored(struct item *it, uint64_t hv)
{
    uint64_t cas = item_cas(it);

    item_iflags_clear(it, ITEM_LINKED | ITEM_SMALL);
    it->refcount = 0;
    do_item_link(it, hv);
    /* Keep the CAS the client saw (restart_rebuild then moves every
     * stripe's sequence past the highest). */
    item_set_cas(it, cas);
}

/* ---- flush and scan ---- */

void item_flush(int64_t delay_ms, int64_t now)
{
    if (delay_ms <= 0)
        assoc_flush_now();
    else
        assoc_flush_at(now + delay_ms);
}

struct scan_ctx {
    void (*fn)(struct item *it, void *arg);
    void *arg;
    int64_t now;
};

static void scan_visit(struct item *it, struct assoc_stripe *s, void *arg)
{
    struct scan_ctx *ctx = arg;

    if (is_flushed(it, s) || item_exptime_passed(item_exptime(it), ctx->now))
        return;
    ctx->fn(it, ctx->arg);
}

uint64_t item_scan(uint64_t cursor, int64_t now,
                   void (*fn)(struct item *it, void *arg), void *arg)
{
    struct scan_ctx ctx = { fn, arg, now };

    return assoc_scan(cursor, scan_visit, &ctx);
}

uint64_t item_scan_batch(uint64_t cursor, int64_t now, struct item_scan_work *w,
                         void (*fn)(struct item *it, void *arg), void *arg)
{
    struct scan_ctx ctx = { fn, arg, now };
    struct assoc_scan_work aw = { .max_steps = w->max_steps, .max_items = w->max_items };

    cursor = assoc_scan_batch(cursor, &aw, scan_visit, &ctx);
    w->steps = aw.steps;
    w->items = aw.items;
    return cursor;
}

void item_table_load(uint64_t *nitems, uint64_t *nbuckets)
{
    unsigned power;

    assoc_load(nitems, &power);
    *nbuckets = (uint64_t)1 << power;
}
