/*
 * Items: layout, reference counts, CAS, and the store operations.
 *
 * An item is one slab chunk: a 32-byte header, the CAS (8 bytes, absent with
 * -C), the key, then the value followed by "\r\n" (so a text or RESP reply
 * can send value+CRLF as one iovec straight from the item). A value too large
 * for the largest slab class is chunked: after the key comes a table of
 * 32-bit chunk references, and the value+CRLF is spread across those chunks
 * in order (ITEM_CHUNKED); each value chunk starts with a header of its own
 * that names the item (ITEM_VALUE). Use item_value_iov() and the copy
 * helpers, never item_value(), on a chunked item.
 *
 * The header, 32 bytes (memcached's is 48, plus 8 for CAS):
 *
 *    0  h_next    u32  hash chain: chunk reference of the next item (stripe
 *                      lock); in a value chunk, the reference of its item
 *    4  nbytes    u32  value length, without the CRLF
 *    8  flags     u32  client flags (a free chunk keeps its free-list link here)
 *   12  refcount  u32  atomic; the hash table holds one, each reader one
 *   16  meta      u64  bits 0-43 exptime after clock_start_ms(): ms up to 278
 *                      years, seconds beyond (bit 43 set); 0 never, 1 before
 *                      start; 44-51 the stripe's flush
 *                      generation when linked, 52-63 the key's stripe index
 *   24  access    u32  bits 8-31 last access, seconds after start (wraps
 *                      after 194 days, as Redis's LRU clock); bits 0-7 the
 *                      LFU counter (Redis's logarithmic counter)
 *   28  iflags    u8   ITEM_*; atomic
 *
 * A block of a collection (ITEM_VALUE, owner ITEM_TYPED) uses the same
 * header: h_next names the owner, nbytes and flags are the previous and
 * next block on the owner's list, access is the block's usable size.
 *   29  nkey      u8
 *   30  clsid     u8   slab class of this chunk
 *   31  freq      u8   S3-FIFO access count, 0..3; atomic
 *   32  [cas u64]      unless -C
 *       key, value+CRLF | chunk table
 *
 * meta and iflags are only ever written with atomic stores, and the eviction
 * sweep reads them (and h_next of a value chunk) without a lock to find the
 * stripe to try; everything else it reads only after taking that stripe and
 * checking the item is still linked under it.
 *
 * Reference counts: the hash table holds one reference to a linked item; every
 * reader holds one while it uses the item (e.g. until a reply that points into
 * the item has been written). Memory returns to its slab class when the count
 * reaches zero. Items with a reader's reference are never evicted.
 *
 * Locking: the hash table is guarded by striped mutexes chosen by the key's
 * hash. The item_* operations below take and release the stripe themselves.
 * The do_item_* primitives expect the caller to hold item_lock(hv) for the
 * key's hash: protocols with compound operations (meta commands, RESP) build
 * on them. Lock order: stripe -> class eviction lock -> slab. At most one
 * stripe is held at a time, except through item_lock2() and
 * item_lock_many(), which take stripes in index order; eviction only
 * trylocks stripes.
 *
 * Times: the API speaks kioku milliseconds (util/clock.h); exptime 0 means
 * never. CAS values are unique per stored update and increase per key.
 */
#ifndef KIOKU_ITEM_H
#define KIOKU_ITEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "storage/slab.h"

enum {
    ITEM_LINKED  = 1 << 0,  /* in the hash table */
    ITEM_FETCHED = 1 << 1,  /* read at least once since stored */
    ITEM_SMALL   = 1 << 2,  /* S3-FIFO: still in the small (probation) queue */
    ITEM_CHUNKED = 1 << 3,  /* value lives in a chunk table, see above */
    ITEM_STALE   = 1 << 4,  /* meta: invalidated with I, served with X */
    ITEM_TOKEN   = 1 << 5,  /* meta: a client was given the W (win) flag */
    ITEM_VALUE   = 1 << 6,  /* not an item: a value chunk of a chunked item,
                               or a block of a collection */
    ITEM_TYPED   = 1 << 7,  /* a collection (storage/coll.h): flags holds its
                               type, the value its root; never a string */
};

struct item {
    uint32_t h_next;
    uint32_t nbytes;
    uint32_t flags;
    uint32_t refcount;
    uint64_t meta;
    uint32_t access;
    uint8_t iflags;
    uint8_t nkey;
    uint8_t clsid;
    uint8_t freq;
    char data[];
};
_Static_assert(sizeof(struct item) == 32, "item header is 32 bytes");

#define ITEM_EXP_BITS 44
#define ITEM_EXP_MASK (((uint64_t)1 << ITEM_EXP_BITS) - 1)
#define ITEM_EXP_SECONDS ((uint64_t)1 << (ITEM_EXP_BITS - 1))   /* far future: in seconds */
#define ITEM_GEN_SHIFT 44
#define ITEM_GEN_MASK 0xffu
#define ITEM_STRIPE_SHIFT 52

/* Read-only after storage_setup(): the layout's variable parts. */
struct item_layout {
    size_t cas_bytes;       /* 8, or 0 with -C */
    int64_t epoch_ms;       /* clock_start_ms(): exptimes are stored after it */
};
extern struct item_layout item_layout;

/* Bytes before the key: 32, or 40 with CAS. */
static inline size_t item_header_size(void)
{
    return sizeof(struct item) + item_layout.cas_bytes;
}

/* iflags change under the stripe lock but are read outside it (e.g. by
 * item_is_chunked on a held reference, or the eviction sweep): always go
 * through these. Setting is a release, so a sweep that sees ITEM_LINKED with
 * an acquire load also sees the header and key written before. */
static inline uint8_t item_iflags(const struct item *it)
{
    return __atomic_load_n(&it->iflags, __ATOMIC_ACQUIRE);
}
static inline void item_iflags_set(struct item *it, uint8_t f)
{
    __atomic_or_fetch(&it->iflags, f, __ATOMIC_RELEASE);
}
static inline void item_iflags_clear(struct item *it, uint8_t f)
{
    __atomic_and_fetch(&it->iflags, (uint8_t)~f, __ATOMIC_RELEASE);
}

static inline uint64_t item_meta(const struct item *it)
{
    return __atomic_load_n(&it->meta, __ATOMIC_RELAXED);
}

static inline size_t item_nkey(const struct item *it) { return it->nkey; }
static inline uint32_t item_nbytes(const struct item *it) { return it->nbytes; }
static inline uint32_t item_flags(const struct item *it) { return it->flags; }
static inline unsigned item_clsid(const struct item *it) { return it->clsid; }
/* The class id as stats, watch and `me` report it (memcached's classes,
 * which may hold two of kioku's: slab.c build_classes). */
static inline unsigned item_class_id(const struct item *it) { return slab_shown_of(it->clsid); }
/* Last access (bits 8-31) and the LFU counter (bits 0-7), see above. */
static inline uint32_t item_access(const struct item *it)
{
    return __atomic_load_n(&it->access, __ATOMIC_RELAXED);
}

static inline const char *item_key(const struct item *it)
{
    return it->data + item_layout.cas_bytes;
}
/* Contiguous value (nbytes + CRLF). Only for !(iflags & ITEM_CHUNKED). */
static inline char *item_value(struct item *it)
{
    return it->data + item_layout.cas_bytes + it->nkey;
}
/* iflags may change under the stripe while a reader looks: load atomically. */
static inline bool item_is_chunked(const struct item *it)
{
    return item_iflags(it) & ITEM_CHUNKED;
}

/* CAS: 0 with -C. Changed only under the stripe (or before linking). */
static inline uint64_t item_cas(const struct item *it)
{
    uint64_t v = 0;

    if (item_layout.cas_bytes != 0)
        memcpy(&v, it->data, sizeof(v));
    return v;
}
static inline void item_set_cas(struct item *it, uint64_t cas)
{
    if (item_layout.cas_bytes != 0)
        memcpy(it->data, &cas, sizeof(cas));
}

/* Expiry in kioku ms, 0 never. Safe to read on a referenced item without
 * the stripe (the word is written atomically). */
static inline int64_t item_exptime(const struct item *it)
{
    uint64_t rel = item_meta(it) & ITEM_EXP_MASK;

    /* 1 stands for any time before start: long expired. */
    if (rel <= 1)
        return (int64_t)rel;
    if (rel & ITEM_EXP_SECONDS)
        return (item_layout.epoch_ms / 1000 + (int64_t)(rel & ~ITEM_EXP_SECONDS)) * 1000;
    return item_layout.epoch_ms + (int64_t)rel;
}
/* Set the expiry of an item nobody else can see yet (not linked). A linked
 * item's TTL changes only through do_item_set_exptime(). */
void item_set_exptime_unlinked(struct item *it, int64_t exptime);

/* Seconds since the item was last read or stored. */
uint32_t item_idle_seconds(const struct item *it, int64_t now);

/* memcached's rule for protocol expiry given in seconds:
 * 0 never; negative already expired; up to 30 days relative to now;
 * larger values are an absolute unix time (in the past: already expired).
 * Returns kioku ms (0 for never, ITEM_EXPIRED_MS for already expired). */
#define ITEM_EXPIRED_MS ((int64_t)1)
int64_t item_exptime_from_seconds(int64_t exptime, int64_t now);

/* True if an item with this exptime is expired at `now`. */
static inline bool item_exptime_passed(int64_t exptime, int64_t now)
{
    return exptime != 0 && exptime <= now;
}


/* Fill at most `max` iovecs with the segments of value+CRLF starting at
 * byte `off` (0 <= off <= nbytes + 2). Returns the number filled. */
int item_value_iov(struct item *it, size_t off, struct iovec *iov, int max);
/* Copy into / out of value+CRLF at `off`; return bytes copied (clipped). */
size_t item_value_write(struct item *it, size_t off, const void *src, size_t n);
size_t item_value_read(const struct item *it, size_t off, void *dst, size_t n);

enum item_alloc_status { ITEM_ALLOC_OK, ITEM_ALLOC_TOO_LARGE, ITEM_ALLOC_NOMEM };

/*
 * Allocate an unlinked item with the key copied in and "\r\n" written after
 * the (uninitialised) value. The caller owns the one reference. May evict
 * (unless -M). Returns NULL with *st set when the value exceeds -I
 * (TOO_LARGE) or no memory can be had (NOMEM). Takes no stripe lock the
 * caller holds; safe to call with one stripe held (eviction only trylocks).
 */
struct item *item_alloc(const char *key, size_t nkey, uint32_t flags,
                        int64_t exptime, size_t nbytes, int64_t now,
                        enum item_alloc_status *st);

/*
 * item_alloc() for a value bounded by the caller's own limit `max` (RESP's
 * proto-max-bulk-len) instead of -I; the memcached protocols keep -I. A
 * value over half the memory limit (the bound -I itself has) is refused
 * with NOMEM at once, evicting nothing, since making room for it would
 * empty most of the cache and could still fail.
 */
#define ITEM_NBYTES_MAX ((size_t)UINT32_MAX - 2)
struct item *item_alloc_big(const char *key, size_t nkey, uint32_t flags,
                            int64_t exptime, size_t nbytes, size_t max, int64_t now,
                            enum item_alloc_status *st);

void item_incref(struct item *it);
/* Drop a reference; frees the item when it was the last and it is unlinked. */
void item_put(struct item *it);

/* Results of the operations below. */
enum item_result {
    ITEM_STORED, ITEM_NOT_STORED, ITEM_EXISTS, ITEM_NOT_FOUND, ITEM_DELETED,
    ITEM_TOUCHED, ITEM_TOO_LARGE, ITEM_NOMEM, ITEM_NON_NUMERIC, ITEM_DELTA_OK,
};

/* Why a get missed, for get_expired / get_flushed stats. */
enum item_miss { ITEM_MISS_NONE, ITEM_MISS_ABSENT, ITEM_MISS_EXPIRED, ITEM_MISS_FLUSHED };

/*
 * Look a key up (a collection reads as absent: the memcached protocols
 * serve only strings). Returns a referenced item, or NULL (with *miss set if
 * miss != NULL). A hit marks the item fetched and active and updates atime.
 * Dead items (expired, flushed) are unlinked when found.
 */
struct item *item_get(const char *key, size_t nkey, int64_t now, enum item_miss *miss);
/* The same, with hv = item_hash(key, nkey) already computed (a pipelined
 * batch hashes its keys once, to prefetch them). */
struct item *item_get_hashed(const char *key, size_t nkey, uint64_t hv, int64_t now,
                             enum item_miss *miss);
/* item_get for the memcached protocols: a collection (ITEM_TYPED) is a
 * miss there. item_get_any also returns collections (RESP: WRONGTYPE). */
struct item *item_get_any(const char *key, size_t nkey, int64_t now, enum item_miss *miss);
struct item *item_get_any_hashed(const char *key, size_t nkey, uint64_t hv, int64_t now,
                                 enum item_miss *miss);
/* Get and set a new exptime in one step (gat/gats); a collection is a miss. */
struct item *item_get_touch(const char *key, size_t nkey, int64_t exptime,
                            int64_t now, enum item_miss *miss);
/* ITEM_TOUCHED or ITEM_NOT_FOUND. */
enum item_result item_touch(const char *key, size_t nkey, int64_t exptime, int64_t now);
/* The same, also reporting the slab class of the item found (for the
 * per-class counters of `stats slabs`); *cls is left alone on a miss. */
enum item_result item_touch_cls(const char *key, size_t nkey, int64_t exptime, int64_t now,
                                unsigned *cls);

enum store_op { STORE_SET, STORE_ADD, STORE_REPLACE, STORE_APPEND, STORE_PREPEND, STORE_CAS };

/*
 * Store `it` (the caller keeps its own reference) under its key.
 * With cas != 0 (any op; always for STORE_CAS) the current item must exist
 * (else ITEM_NOT_FOUND) and carry that CAS (else ITEM_EXISTS).
 * ADD: ITEM_NOT_STORED if a live item exists (memcached also bumps it).
 * REPLACE/APPEND/PREPEND: ITEM_NOT_STORED if none exists. APPEND/PREPEND
 * keep the existing flags and exptime and may fail with ITEM_TOO_LARGE or
 * ITEM_NOMEM. Returns ITEM_STORED and the new CAS in *cas_out (if not NULL).
 */
enum item_result item_store(struct item *it, enum store_op op, uint64_t cas,
                            int64_t now, uint64_t *cas_out);

/* ITEM_DELETED, ITEM_NOT_FOUND, or ITEM_EXISTS (cas != 0 and it differs). */
enum item_result item_delete(const char *key, size_t nkey, uint64_t cas, int64_t now);
enum item_result item_delete_cls(const char *key, size_t nkey, uint64_t cas, int64_t now,
                                 unsigned *cls);

/*
 * memcached incr/decr: the value must be a decimal uint64 (else
 * ITEM_NON_NUMERIC). incr wraps at 2^64, decr stops at 0. If absent:
 * ITEM_NOT_FOUND, unless `create` (binary protocol), then the item is created
 * holding `initial` with `exptime` (and *value_out = initial). With cas != 0
 * the current CAS must match (ITEM_EXISTS). Returns ITEM_DELTA_OK with the
 * new value and CAS, or ITEM_NOMEM.
 */
enum item_result item_delta(const char *key, size_t nkey, bool incr, uint64_t delta,
                            uint64_t cas, bool create, uint64_t initial, int64_t exptime,
                            int64_t now, uint64_t *value_out, uint64_t *cas_out);
enum item_result item_delta_cls(const char *key, size_t nkey, bool incr, uint64_t delta,
                                uint64_t cas, bool create, uint64_t initial, int64_t exptime,
                                int64_t now, uint64_t *value_out, uint64_t *cas_out,
                                unsigned *cls);

/* A collection's value: the block list header (struct coll_blocks) at the
 * first 8-aligned byte of the value, then the type's root. */
static inline void *item_typed_root(struct item *it)
{
    uintptr_t p = (uintptr_t)item_value(it);
    return (void *)((p + 7) & ~(uintptr_t)7);
}
static inline bool item_is_typed(const struct item *it)
{
    return item_iflags(it) & ITEM_TYPED;
}

/*
 * Blocks of collections (coll_arena.c): a chunk of the class that holds
 * 32 + n bytes, marked ITEM_VALUE and naming owner, or NULL when no memory
 * can be had (may evict, like item_alloc). Its list links are the caller's.
 */
struct item *item_block_alloc(size_t n, const struct item *owner, int64_t now);
void item_block_free(struct item *b);

/* The value as a memcached incr/decr operand (strtoull rules); false if
 * it is not one. */
bool item_parse_u64(const struct item *it, uint64_t *out);

/*
 * flush_all: every item stored before the flush takes effect is dead from
 * then on. delay_ms 0 takes effect before this returns; a later call replaces
 * a pending delayed flush. Cost is bounded by the number of stripes, not items.
 */
void item_flush(int64_t delay_ms, int64_t now);

/*
 * Pipelined requests: before running a batch, a protocol may pass the
 * hashes (item_hash) of the keys it is about to look up, and the memory
 * they need is fetched in parallel rather than one miss per request.
 * A hint: nothing is locked or looked up; at most n steps.
 */
void item_prefetch(const uint64_t *hv, size_t n);

/* ---- primitives for compound operations: caller holds item_lock(hv) ---- */

uint64_t item_hash(const char *key, size_t nkey);
void item_lock(uint64_t hv);
void item_unlock(uint64_t hv);
/*
 * For an operation on two keys (RESP RENAME): lock both keys' stripes in
 * stripe-index order (once if they share one), so two callers cannot
 * deadlock; nothing else ever waits for a stripe while holding one. The
 * do_item_* primitives may then be used on either key, and item_alloc()
 * too (eviction only trylocks). Release with item_unlock2(hv1, hv2).
 */
void item_lock2(uint64_t hv1, uint64_t hv2);
void item_unlock2(uint64_t hv1, uint64_t hv2);
/*
 * For an operation on many keys at once (RESP MSET, MSETNX): lock every
 * stripe the hashes fall in, each once, in index order (so it composes with
 * item_lock2 without deadlock). While held, the do_item_* primitives may be
 * used on any of those keys. Release with item_unlock_many(set).
 */
#define ITEM_LOCKSET_WORDS 64
struct item_lockset { uint64_t bits[ITEM_LOCKSET_WORDS]; };
void item_lock_many(struct item_lockset *set, const uint64_t *hvs, size_t n);
void item_unlock_many(const struct item_lockset *set);
/*
 * Scripts (issue 11) hold the stripes of their keys for the whole script.
 * item_lockset_add() names a key's stripe in a set (nothing is locked);
 * item_lock_set() locks a set in index order while this thread holds no
 * stripe; item_trylock_more() trylocks the stripes of want not in have and
 * adds them to have, or takes none and returns false. While item_hold(set)
 * is in force (until item_hold(NULL)), item_lock/unlock, item_lock2 and
 * item_lock_many on this thread skip the stripes in set, so commands run
 * inside the hold; trylocks find those stripes busy.
 */
void item_lockset_add(struct item_lockset *set, uint64_t hv);
void item_lock_set(const struct item_lockset *set);
bool item_trylock_more(struct item_lockset *have, const struct item_lockset *want);
void item_hold(const struct item_lockset *set);
/* Find a live item (unlinking a dead one found on the way); referenced. */
struct item *do_item_find(const char *key, size_t nkey, uint64_t hv, int64_t now,
                          enum item_miss *miss);
/* do_item_find for the memcached protocols: a collection reads as absent
 * (it stays linked: never link another item under its key). */
struct item *do_item_find_value(const char *key, size_t nkey, uint64_t hv, int64_t now,
                                enum item_miss *miss);
/* Link a new item (assigns its CAS); it must not be linked already. */
void do_item_link(struct item *it, uint64_t hv);
void do_item_unlink(struct item *it, uint64_t hv);
/* Unlink old (if not NULL), link new (new gets a fresh CAS). */
void do_item_replace(struct item *old, struct item *new_it, uint64_t hv);
/* A page move (memcached's rescue): copy linked, live, unchunked `it`,
 * which no reader holds, into a free chunk of its class (the moving page's
 * are not on the free list) and link the copy in its place with the same
 * CAS, expiry, flags and fetched state. False when no chunk is free then:
 * the caller evicts it. Caller holds the stripe. */
bool do_item_rescue(struct item *it, uint64_t hv);
/* Change an item's exptime (linked or not); keeps the per-stripe count of
 * items with a TTL right. Every TTL change of a linked item goes through it. */
void do_item_set_exptime(struct item *it, uint64_t hv, int64_t exptime);
/* Mark a hit (fetched, access count, access time) as item_get does. */
void do_item_bump(struct item *it, int64_t now);
/* Overwrite n bytes of linked `it`'s value at off in place (off + n <=
 * nbytes) and give it a fresh CAS, but only while the hash table and the
 * caller hold its only references, so no reader sees the bytes change.
 * False, and nothing written, otherwise: the caller makes a new item.
 * Caller holds the stripe. */
bool do_item_write_sole(struct item *it, uint64_t hv, size_t off, const void *src, size_t n);

/*
 * Redis-style SCAN over all linked, live items: visits the bucket(s) named by
 * `cursor` (in both tables while the table grows), calling fn on each item
 * with its stripe held (fn must not call item_* functions; it may incref).
 * Returns the next cursor, 0 when the iteration is complete. Every item
 * present for a whole iteration is visited at least once, also across growth.
 */
uint64_t item_scan(uint64_t cursor, int64_t now,
                   void (*fn)(struct item *it, void *arg), void *arg);
/*
 * item_scan() for several cursor steps under a single hold of one stripe's
 * lock: it stops when the cursor leaves the stripe or reaches 0, or after
 * w->max_steps steps, or once w->max_items linked items (live or not) were
 * visited, each checked after a whole step. So a hold is bounded by the
 * stripe's share of the table. w->steps and w->items say what was done.
 * Same guarantee as item_scan().
 */
struct item_scan_work {
    uint64_t max_steps;     /* >= 1 */
    uint64_t max_items;     /* >= 1 */
    uint64_t steps;
    uint64_t items;
};
uint64_t item_scan_batch(uint64_t cursor, int64_t now, struct item_scan_work *w,
                         void (*fn)(struct item *it, void *arg), void *arg);
/* Linked items and buckets of the hash table, read without locks: how
 * sparse the table is, for sizing scan work. */
void item_table_load(uint64_t *nitems, uint64_t *nbuckets);

#endif
