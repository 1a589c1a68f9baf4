/*
 * adict: chained hash dictionary in an arena. The design is in adict.h;
 * here, the bucket addressing (flat block or directory of segments), the
 * incremental resize that relinks entries by their stored hash, and the
 * scan cursor over one or two tables.
 */
#include "types/adict.h"

#include <stdbool.h>
#include <string.h>
#include <xxhash.h>

#define SEG_LOG2 12u                    /* ADICT_SEG_BUCKETS == 1 << SEG_LOG2 */
#define MIN_LOG2 2u                     /* ADICT_MIN_BUCKETS */
/* A directory block of 2^16 segment refs is 256 KiB, ARENA_ALLOC_MAX. */
#define MAX_LOG2 (SEG_LOG2 + 16u)

struct ent {
    uint32_t next;
    uint32_t hash;
    uint32_t klen;
    uint32_t vlen;
    /* value[vlen], then key[klen] */
};

static inline struct ent *ent_at(const struct arena *a, uint32_t ref)
{
    return (struct ent *)arena_ptr(a, ref);
}

static inline unsigned char *ent_val(struct ent *e)
{
    return (unsigned char *)(e + 1);
}

static inline unsigned char *ent_key(struct ent *e)
{
    return ent_val(e) + e->vlen;
}

static inline size_t ent_size(size_t klen, size_t vlen)
{
    return ADICT_ENTRY_HDR + klen + vlen;
}

static uint32_t hash_key(const struct adict *d, const void *key, size_t klen)
{
    return (uint32_t)XXH3_64bits_withSeed(key, klen, d->seed);
}

/* The bucket slot i of a table of 2^log2 buckets at ref. */
static uint32_t *slot_of(const struct arena *a, uint32_t table, unsigned log2, uint64_t i)
{
    if (log2 <= SEG_LOG2)
        return (uint32_t *)arena_ptr(a, table) + i;
    const uint32_t *dir = arena_ptr(a, table);
    return (uint32_t *)arena_ptr(a, dir[i >> SEG_LOG2]) + (i & (ADICT_SEG_BUCKETS - 1));
}

static void table_free(struct arena *a, uint32_t table, unsigned log2)
{
    if (log2 <= SEG_LOG2) {
        arena_free(a, table, ((size_t)1 << log2) * sizeof(uint32_t));
        return;
    }
    size_t nseg = (size_t)1 << (log2 - SEG_LOG2);
    const uint32_t *dir = arena_ptr(a, table);
    for (size_t s = 0; s < nseg; s++)
        arena_free(a, dir[s], ADICT_SEG_BUCKETS * sizeof(uint32_t));
    arena_free(a, table, nseg * sizeof(uint32_t));
}

/* An empty table of 2^log2 buckets, or ARENA_NONE (nothing kept). */
static uint32_t table_alloc(struct arena *a, unsigned log2)
{
    if (log2 <= SEG_LOG2) {
        size_t n = ((size_t)1 << log2) * sizeof(uint32_t);
        uint32_t t = arena_alloc(a, n);
        if (t != ARENA_NONE)
            memset(arena_ptr(a, t), 0, n);
        return t;
    }
    size_t nseg = (size_t)1 << (log2 - SEG_LOG2);
    uint32_t dir = arena_alloc(a, nseg * sizeof(uint32_t));
    if (dir == ARENA_NONE)
        return ARENA_NONE;
    for (size_t s = 0; s < nseg; s++) {
        uint32_t seg = arena_alloc(a, ADICT_SEG_BUCKETS * sizeof(uint32_t));
        if (seg == ARENA_NONE) {
            uint32_t *d = arena_ptr(a, dir);
            while (s-- > 0)
                arena_free(a, d[s], ADICT_SEG_BUCKETS * sizeof(uint32_t));
            arena_free(a, dir, nseg * sizeof(uint32_t));
            return ARENA_NONE;
        }
        memset(arena_ptr(a, seg), 0, ADICT_SEG_BUCKETS * sizeof(uint32_t));
        ((uint32_t *)arena_ptr(a, dir))[s] = seg;
    }
    return dir;
}

static inline uint64_t mask_of(unsigned log2)
{
    return ((uint64_t)1 << log2) - 1;
}

/* Move the chain of old bucket i to the new table. */
static void move_bucket(struct arena *a, struct adict *d, uint64_t i)
{
    uint32_t *b = slot_of(a, d->old, d->old_log2, i), r = *b;
    uint64_t nmask = mask_of(d->log2);

    while (r != ARENA_NONE) {
        struct ent *e = ent_at(a, r);
        uint32_t next = e->next;
        uint32_t *s = slot_of(a, d->table, d->log2, e->hash & nmask);
        e->next = *s;
        *s = r;
        r = next;
    }
    *b = ARENA_NONE;
}

static void finish_old(struct arena *a, struct adict *d)
{
    table_free(a, d->old, d->old_log2);
    d->old = ARENA_NONE;
    d->rehash = 0;
}

/* Move up to n non-empty buckets of the old table (visiting at most 10*n
 * empty ones), and free it once it is empty. */
static void rehash_step(struct arena *a, struct adict *d, unsigned n)
{
    unsigned empty = n * 10;
    uint64_t osize = (uint64_t)1 << d->old_log2;

    while (d->old != ARENA_NONE && n > 0 && empty > 0) {
        if (d->rehash >= osize) {
            finish_old(a, d);
            return;
        }
        if (*slot_of(a, d->old, d->old_log2, d->rehash) == ARENA_NONE) {
            empty--;
        } else {
            move_bucket(a, d, d->rehash);
            n--;
        }
        d->rehash++;
    }
    if (d->old != ARENA_NONE && d->rehash >= osize)
        finish_old(a, d);
}

/* Start moving into a table of 2^log2 buckets; without memory the table
 * stays as it is (only chain lengths suffer). */
static void start_resize(struct arena *a, struct adict *d, unsigned log2)
{
    if (d->old != ARENA_NONE || log2 == d->log2)
        return;
    uint32_t nt = table_alloc(a, log2);
    if (nt == ARENA_NONE)
        return;
    d->old = d->table;
    d->old_log2 = d->log2;
    d->rehash = 0;
    d->table = nt;
    d->log2 = (uint8_t)log2;
    rehash_step(a, d, ADICT_REHASH_STEP);
}

/* No entries left: drop any old table and go back to the minimal one. */
static void reset_empty(struct arena *a, struct adict *d)
{
    if (d->old != ARENA_NONE)
        finish_old(a, d);
    if (d->log2 > MIN_LOG2) {
        uint32_t nt = table_alloc(a, MIN_LOG2);
        if (nt != ARENA_NONE) {
            table_free(a, d->table, d->log2);
            d->table = nt;
            d->log2 = MIN_LOG2;
        }
    }
}

int adict_init(struct arena *a, struct adict *d)
{
    uint32_t t = table_alloc(a, MIN_LOG2);
    if (t == ARENA_NONE)
        return -1;
    uintptr_t mix[2] = { (uintptr_t)d, (uintptr_t)arena_ptr(a, t) };
    memset(d, 0, sizeof(*d));
    d->table = t;
    d->log2 = MIN_LOG2;
    /* Addresses vary per process (ASLR): enough that clients cannot plan
     * collisions for a dictionary they cannot see. */
    d->seed = (uint32_t)XXH3_64bits(mix, sizeof(mix));
    return 0;
}

static void free_table_entries(struct arena *a, uint32_t table, unsigned log2, uint64_t from)
{
    uint64_t n = (uint64_t)1 << log2;
    for (uint64_t i = from; i < n; i++) {
        uint32_t r = *slot_of(a, table, log2, i);
        while (r != ARENA_NONE) {
            struct ent *e = ent_at(a, r);
            uint32_t next = e->next;
            arena_free(a, r, ent_size(e->klen, e->vlen));
            r = next;
        }
    }
    table_free(a, table, log2);
}

void adict_free(struct arena *a, struct adict *d)
{
    if (d->table == ARENA_NONE)
        return;
    if (d->old != ARENA_NONE)
        free_table_entries(a, d->old, d->old_log2, d->rehash);
    free_table_entries(a, d->table, d->log2, 0);
    d->table = d->old = ARENA_NONE;
    d->count = d->rehash = 0;
}

/* The slot that holds the reference to key's entry (it may be the bucket
 * or a previous entry's next), or NULL. */
static uint32_t *chain_find(struct arena *a, uint32_t *s, const void *key, size_t klen, uint32_t h)
{
    while (*s != ARENA_NONE) {
        struct ent *e = ent_at(a, *s);
        if (e->hash == h && e->klen == klen && (klen == 0 || memcmp(ent_key(e), key, klen) == 0))
            return s;
        s = &e->next;
    }
    return NULL;
}

static uint32_t *find(struct arena *a, const struct adict *d, const void *key, size_t klen, uint32_t h)
{
    if (d->old != ARENA_NONE) {
        uint64_t i = h & mask_of(d->old_log2);
        /* Buckets before the rehash index are already moved (empty). */
        uint32_t *s = i >= d->rehash ? chain_find(a, slot_of(a, d->old, d->old_log2, i), key, klen, h) : NULL;
        if (s != NULL)
            return s;
    }
    return chain_find(a, slot_of(a, d->table, d->log2, h & mask_of(d->log2)), key, klen, h);
}

void *adict_get(struct arena *a, const struct adict *d, const void *key, size_t klen, size_t *vlen)
{
    if (d->count == 0)
        return NULL;
    uint32_t *s = find(a, d, key, klen, hash_key(d, key, klen));
    if (s == NULL)
        return NULL;
    struct ent *e = ent_at(a, *s);
    if (vlen != NULL)
        *vlen = e->vlen;
    return ent_val(e);
}

void *adict_set(struct arena *a, struct adict *d, const void *key, size_t klen, const void *val, size_t vlen,
                int *created)
{
    if (klen > ADICT_KV_MAX || vlen > ADICT_KV_MAX - klen)
        return NULL;
    if (d->old != ARENA_NONE)
        rehash_step(a, d, ADICT_REHASH_STEP);
    uint32_t h = hash_key(d, key, klen);
    uint32_t *s = find(a, d, key, klen, h);
    struct ent *e;
    if (s != NULL) {
        e = ent_at(a, *s);
        if (e->vlen != vlen) {
            /* A new size: a new entry in the old one's place in the chain. */
            uint32_t r = arena_alloc(a, ent_size(klen, vlen));
            if (r == ARENA_NONE)
                return NULL;
            struct ent *ne = ent_at(a, r);
            ne->next = e->next;
            ne->hash = h;
            ne->klen = (uint32_t)klen;
            ne->vlen = (uint32_t)vlen;
            if (klen > 0)
                memcpy(ent_key(ne), key, klen);
            uint32_t old = *s;
            *s = r;
            arena_free(a, old, ent_size(e->klen, e->vlen));
            e = ne;
        }
        if (created != NULL)
            *created = 0;
    } else {
        uint32_t r = arena_alloc(a, ent_size(klen, vlen));
        if (r == ARENA_NONE)
            return NULL;
        e = ent_at(a, r);
        e->hash = h;
        e->klen = (uint32_t)klen;
        e->vlen = (uint32_t)vlen;
        if (klen > 0)
            memcpy(ent_key(e), key, klen);
        uint32_t *b = slot_of(a, d->table, d->log2, h & mask_of(d->log2));
        e->next = *b;
        *b = r;
        d->count++;
        if (created != NULL)
            *created = 1;
        if (d->count > ((uint64_t)1 << d->log2) && d->log2 < MAX_LOG2)
            start_resize(a, d, d->log2 + 1u);
    }
    if (val != NULL && vlen > 0)
        memcpy(ent_val(e), val, vlen);
    return ent_val(e);
}

int adict_del(struct arena *a, struct adict *d, const void *key, size_t klen)
{
    if (d->count == 0)
        return 0;
    if (d->old != ARENA_NONE)
        rehash_step(a, d, ADICT_REHASH_STEP);
    uint32_t *s = find(a, d, key, klen, hash_key(d, key, klen));
    if (s == NULL)
        return 0;
    uint32_t r = *s;
    struct ent *e = ent_at(a, r);
    *s = e->next;
    arena_free(a, r, ent_size(e->klen, e->vlen));
    d->count--;
    if (d->count == 0) {
        reset_empty(a, d);
    } else if (d->log2 > MIN_LOG2 && d->count < ((uint64_t)1 << d->log2) / 8) {
        unsigned log2 = MIN_LOG2;
        while (((uint64_t)1 << log2) < d->count)
            log2++;
        start_resize(a, d, log2);
    }
    return 1;
}

static void visit_chain(struct arena *a, uint32_t r, adict_visit_fn fn, void *arg)
{
    while (r != ARENA_NONE) {
        struct ent *e = ent_at(a, r);
        fn(arg, ent_key(e), e->klen, ent_val(e), e->vlen);
        r = e->next;
    }
}

static uint64_t rev64(uint64_t v)
{
    v = ((v >> 1) & 0x5555555555555555ULL) | ((v & 0x5555555555555555ULL) << 1);
    v = ((v >> 2) & 0x3333333333333333ULL) | ((v & 0x3333333333333333ULL) << 2);
    v = ((v >> 4) & 0x0F0F0F0F0F0F0F0FULL) | ((v & 0x0F0F0F0F0F0F0F0FULL) << 4);
    v = ((v >> 8) & 0x00FF00FF00FF00FFULL) | ((v & 0x00FF00FF00FF00FFULL) << 8);
    v = ((v >> 16) & 0x0000FFFF0000FFFFULL) | ((v & 0x0000FFFF0000FFFFULL) << 16);
    return (v >> 32) | (v << 32);
}

/* Increment the reversed cursor over the bits of mask. */
static uint64_t cursor_next(uint64_t v, uint64_t mask)
{
    v |= ~mask;
    v = rev64(v);
    v++;
    return rev64(v);
}

uint64_t adict_scan(struct arena *a, const struct adict *d, uint64_t cursor, adict_visit_fn fn, void *arg)
{
    if (d->count == 0)
        return 0;
    if (d->old == ARENA_NONE) {
        uint64_t mask = mask_of(d->log2);
        visit_chain(a, *slot_of(a, d->table, d->log2, cursor & mask), fn, arg);
        /* The buckets a visited bucket splits into (growth) or merges with
         * (shrink) keep their place in the reversed order, so nothing
         * present throughout is missed. */
        return cursor_next(cursor, mask);
    }
    /* Mid-resize: the cursor's bucket in the smaller table, then every
     * bucket of the larger one that it expands to, so the cursor steps
     * by the smaller table's order. */
    uint32_t ts = d->table, tl = d->old;
    unsigned ls = d->log2, ll = d->old_log2;
    if (ls > ll) {
        ts = d->old;
        tl = d->table;
        ls = d->old_log2;
        ll = d->log2;
    }
    uint64_t ms = mask_of(ls), ml = mask_of(ll);
    visit_chain(a, *slot_of(a, ts, ls, cursor & ms), fn, arg);
    do {
        visit_chain(a, *slot_of(a, tl, ll, cursor & ml), fn, arg);
        cursor = cursor_next(cursor, ml);
    } while (cursor & (ms ^ ml));
    return cursor;
}

void adict_foreach(struct arena *a, const struct adict *d, adict_visit_fn fn, void *arg)
{
    if (d->count == 0)
        return;
    if (d->old != ARENA_NONE)
        for (uint64_t i = d->rehash, n = (uint64_t)1 << d->old_log2; i < n; i++)
            visit_chain(a, *slot_of(a, d->old, d->old_log2, i), fn, arg);
    for (uint64_t i = 0, n = (uint64_t)1 << d->log2; i < n; i++)
        visit_chain(a, *slot_of(a, d->table, d->log2, i), fn, arg);
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Rejection sampling: a random bucket and a random slot among FAIR_SLOTS
 * (or the chain's length if longer); the pick counts only if the chain has
 * an entry in that slot. So every entry is equally likely, except in a
 * chain longer than FAIR_SLOTS: at a load of at most 1 about one bucket in
 * a million has one (with 4 slots, one in 300 did, and a seed that made one
 * showed in HRANDFIELD counts). At a load of 1/8 (the lowest before a
 * shrink) a probe lands once in 64 on average. */
#define FAIR_SLOTS 8u
#define FAIR_PROBES 2000

/* Bucket i of the two tables seen as one: the new table's first. */
static uint32_t bucket_any(struct arena *a, const struct adict *d, uint64_t i)
{
    uint64_t n = (uint64_t)1 << d->log2;
    if (i < n)
        return *slot_of(a, d->table, d->log2, i);
    return *slot_of(a, d->old, d->old_log2, i - n);
}

int adict_random(struct arena *a, const struct adict *d, uint64_t rnd, const void **k, size_t *klen,
                 const void **v, size_t *vlen)
{
    if (d->count == 0)
        return -1;
    uint64_t total = ((uint64_t)1 << d->log2) + (d->old != ARENA_NONE ? (uint64_t)1 << d->old_log2 : 0);
    uint32_t pick = ARENA_NONE;
    /* Callers may pass consecutive numbers: start from a scrambled one. */
    rnd = splitmix(&rnd) ^ 0x6A09E667F3BCC909ULL;
    for (int i = 0; i < FAIR_PROBES && pick == ARENA_NONE; i++) {
        uint64_t x = splitmix(&rnd), y = splitmix(&rnd);
        uint32_t head = bucket_any(a, d, x % total);
        if (head == ARENA_NONE)
            continue;
        size_t len = 0;
        for (uint32_t r = head; r != ARENA_NONE; r = ent_at(a, r)->next)
            len++;
        size_t slot = (size_t)(y % (len > FAIR_SLOTS ? len : FAIR_SLOTS));
        if (slot >= len)
            continue;
        pick = head;
        while (slot-- > 0)
            pick = ent_at(a, pick)->next;
    }
    /* Bounded: past the probes, the first entry from a random bucket on. */
    for (uint64_t i = splitmix(&rnd) % total, n = 0; pick == ARENA_NONE && n < total; n++, i = (i + 1) % total)
        pick = bucket_any(a, d, i);
    struct ent *e = ent_at(a, pick);
    *k = ent_key(e);
    *klen = e->klen;
    *v = ent_val(e);
    *vlen = e->vlen;
    return 0;
}
